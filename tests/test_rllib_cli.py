"""``train`` and ``converge`` with ``--backend rllib``: the SB3 backend's files and metrics,
sized runners, and one-line refusals."""

from __future__ import annotations

import csv
import json
import time

import pytest
import typer
from mechgym.training.commands import add_commands
from typer.testing import CliRunner

pytest.importorskip("ray.rllib")


def _app() -> typer.Typer:
    app = typer.Typer()
    add_commands(app)
    return app


@pytest.fixture(scope="module", autouse=True)
def _ray_once():
    import ray

    yield
    if ray.is_initialized():
        ray.shutdown()


def test_train_rllib_writes_the_sb3_files(tmp_path) -> None:
    out = tmp_path / "train"
    res = CliRunner().invoke(
        _app(),
        [
            "train",
            "best_belief",
            "--backend",
            "rllib",
            "--num-env-runners",
            "0",
            "--n-envs",
            "16",
            "--steps",
            "256",
            "--eval-every",
            "128",
            "--eval-contexts",
            "2",
            "--no-progress",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) >= 2 and {"steps", "learner_value", "exploitability"} <= set(rows[0])
    report = json.loads((out / "metrics.json").read_text())
    assert report["backend"] == "rllib" and report["learner"] == [0]
    assert report["steps"] >= 256 and report["final"]["agreement"]
    assert report["reference"]["agreement"]
    assert (out / "rllib_checkpoint").is_dir()


def test_converge_rllib_writes_summary_metrics_and_plots(tmp_path) -> None:
    out = tmp_path / "conv"
    res = CliRunner().invoke(
        _app(),
        [
            "converge",
            "best_belief",
            "--backend",
            "rllib",
            "--num-env-runners",
            "0",
            "--seeds",
            "1",
            "--rounds",
            "1",
            "--steps",
            "128",
            "--family",
            "2",
            "--n-envs",
            "16",
            "--no-progress",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    s = summary["mechanisms"]["best_belief"]
    assert s["status"] == "ok", s
    assert summary["config"]["backend"] == "rllib"
    assert s["steps_per_seed"] >= 3 * 128  # every player, one round
    rounds = {r["round"] for r in csv.DictReader((out / "metrics.csv").open())}
    assert rounds == {"0", "1"}
    assert {"best_belief_agreement.png", "best_belief_revenue.png"} <= set(s["plots"])
    assert all((out / f).exists() for f in s["plots"])


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["train", "best_belief", "--backend", "rllib", "--num-env-runners", "64"],
            "64 env runners",
        ),
        (
            ["converge", "--backend", "rllib", "--num-env-runners", "64", "--quick"],
            "64 env runners",
        ),
        (["train", "best_belief", "--backend", "torch"], "not one of sb3, rllib"),
        (["train", "best_belief", "--num-env-runners", "2"], "need --backend rllib"),
        (["converge", "--address", "127.0.0.1:1"], "need --backend rllib"),
        (["train", "best_belief", "--backend", "rllib", "--algo", "dqn"], "masked PPO"),
        (["train", "vcg", "--backend", "rllib", "--learner", "1,2"], "one player"),
    ],
)
def test_refusals_are_one_line_and_fast(tmp_path, args: list[str], needle: str) -> None:
    t0 = time.perf_counter()
    res = CliRunner().invoke(_app(), [*args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not (tmp_path / "o" / "summary.json").exists()
    assert time.perf_counter() - t0 < 120  # refused, not left waiting for CPUs
