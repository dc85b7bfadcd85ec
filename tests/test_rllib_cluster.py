"""RLlib on a Ray cluster of two nodes on loopback addresses: a head and a second node
started with ``ray start``, reached through ``RAY_ADDRESS``; PPO samples on two env runners,
one per node, and both of them sample. The cluster is stopped whatever happens.

Ray rewrites ``127.0.0.1`` (and ``localhost``) given as a node or cluster address to the
machine's routable address, so the head takes ``127.0.0.2``; the second node, joining it,
sees itself at ``127.0.0.1``. Both are loopback: no traffic leaves the machine.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray.rllib")

import ray

RAY = str(Path(sys.executable).with_name("ray"))
HEAD = "127.0.0.2"  # loopback, and not rewritten by Ray (see the module docstring)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HEAD, 0))
        return int(s.getsockname()[1])


def _ray(*args: str, timeout: float = 120) -> None:
    subprocess.run([RAY, *args], check=True, timeout=timeout, capture_output=True, text=True)


@pytest.fixture
def loopback_cluster(monkeypatch: pytest.MonkeyPatch):
    """A head and a second node, one CPU each, on loopback addresses, with a token of their
    own; ``RAY_ADDRESS`` points at the head."""
    assert not ray.is_initialized()
    address = f"{HEAD}:{_free_port()}"
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        _ray(
            "start",
            "--head",
            f"--port={address.split(':')[1]}",
            f"--node-ip-address={HEAD}",
            "--include-dashboard=false",
            *common,
        )
        _ray("start", f"--address={address}", *common)
        monkeypatch.setenv("RAY_ADDRESS", address)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], timeout=120, capture_output=True)


# the driver runs in a process of its own, which reads RAY_ADDRESS and the cluster's token
DRIVER = """
import json, ray
from mechgym.integrations.rllib import connect, ppo_config, runner_report
connect()  # through RAY_ADDRESS
alive = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
config = ppo_config("best_belief", seed=0, num_env_runners=2, train_batch_size=256,
                    batched=True, num_envs_per_env_runner=8)
algo = config.build_algo()
try:
    result = algo.train()
    report = runner_report(algo)
finally:
    algo.stop()
print(json.dumps({"nodes": alive, "runners": config.num_env_runners, "report": report,
                  "sampled": result["env_runners"]["num_env_steps_sampled_lifetime"]}))
"""


def _run(args: list[str]) -> subprocess.CompletedProcess:
    run = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return run


def test_ppo_samples_on_two_env_runners_of_a_two_node_cluster(
    loopback_cluster: str, tmp_path: Path
) -> None:
    out = json.loads(_run([sys.executable, "-c", DRIVER]).stdout.strip().splitlines()[-1])
    assert len(out["nodes"]) == 2 and all(ip.startswith("127.") for ip in out["nodes"])
    assert out["runners"] == 2 and out["sampled"] >= 256
    report = out["report"]
    assert sorted(r["worker_index"] for r in report) == [1, 2]
    assert len({r["pid"] for r in report}) == 2  # two processes ...
    assert len({r["node_id"] for r in report}) == 2  # ... on the two nodes
    assert all(r["env_steps_sampled"] > 0 for r in report)  # and both sampled

    # the CLI on the same cluster, by --address
    train = tmp_path / "train"
    _run(
        [
            str(Path(sys.executable).with_name("mechgym")),
            "train",
            "best_belief",
            "--backend",
            "rllib",
            "--address",
            loopback_cluster,
            "--num-env-runners",
            "2",
            "--n-envs",
            "8",
            "--steps",
            "128",
            "--eval-contexts",
            "2",
            "--no-progress",
            "--out",
            str(train),
        ]
    )
    summary = json.loads((train / "metrics.json").read_text())
    assert summary["backend"] == "rllib" and summary["num_env_runners"] == 2
    assert summary["steps"] >= 128
