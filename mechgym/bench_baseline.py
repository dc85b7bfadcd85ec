"""``mechgym bench --baseline REV``: an earlier revision's figures, measured in the same run.

Speed claims such as "the batched rules are at least as fast as in 0.2" only hold when both
sides are measured on the same machine at the same time. The baseline revision is read from
the checkout's git history (``git archive``, nothing in the checkout changes), installed
without dependencies into a temporary folder, and its own ``run_bench`` runs in a child
process against the same installed libraries; only its env throughput and batched-rules
figures are asked for (the training runs differ between revisions), and each shared key
gets the ratio current / baseline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mechgym.envs.engine.errors import ParameterError

#: seconds allowed to build the baseline and to run its bench (each)
BUILD_TIMEOUT = 600
RUN_TIMEOUT = 1800

_RUN = (
    "import json, sys\n"
    "from mechgym.bench import run_bench\n"
    "r = run_bench(seconds=float(sys.argv[1]), training=False, quick=sys.argv[2] == '1')\n"
    "print(json.dumps({'throughput': r['throughput'], 'batched': r['batched']}))\n"
)


def checkout_root() -> Path:
    """The git checkout mechgym runs from.

    Raises
    ------
    ParameterError
        When mechgym is not installed from a git checkout.
    """
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        raise ParameterError(
            "--baseline", "needs mechgym installed from a git checkout (pip install -e .)"
        ) from None
    return Path(out.stdout.strip())


def resolve_revision(root: Path, rev: str) -> str:
    """The full commit id of ``rev`` in the checkout at ``root``."""
    if not rev or rev.startswith("-"):
        raise ParameterError("--baseline", f"{rev!r} is not a git revision")
    res = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise ParameterError(
            "--baseline", f"{rev!r} is no commit of {root} (try a hash from 'git log')"
        )
    return res.stdout.strip()


def build_baseline(root: Path, commit: str, work: Path) -> Path:
    """Install ``commit`` of the checkout (no dependencies) under ``work``; returns the folder
    to put on ``PYTHONPATH``."""
    src, site = work / "src", work / "site"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    # the installed setuptools first (offline); an isolated build where it is too old
    for extra in (["--no-build-isolation"], []):
        res = subprocess.run(
            [*pip, *extra, str(src)], capture_output=True, text=True, timeout=BUILD_TIMEOUT
        )
        if res.returncode == 0:
            break
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ParameterError("--baseline", f"could not install {commit[:10]}: {tail[0]}")
    return site


def baseline_figures(site: Path, seconds: float, quick: bool, cwd: Path) -> dict[str, Any]:
    """The baseline's env throughput and batched-rules figures, from its own ``run_bench``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    res = subprocess.run(
        [sys.executable, "-c", _RUN, repr(float(seconds)), "1" if quick else "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,  # not the checkout: its folders would shadow the baseline's package
        timeout=RUN_TIMEOUT,
    )
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ParameterError("--baseline", f"the baseline's bench failed: {tail[0]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare(current: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Ratios current / baseline for every env and mechanism both measured."""

    def ratios(cur: dict[str, Any], old: dict[str, Any], key: str) -> dict[str, float]:
        out = {}
        for name, r in cur.items():
            o = old.get(name)
            if isinstance(r, dict) and isinstance(o, dict) and r.get(key) and o.get(key):
                out[name] = float(r[key]) / float(o[key])
        return out

    batched = ratios(current.get("batched", {}), base.get("batched", {}), "decisions_per_second")
    envs = ratios(
        current["throughput"].get("envs", {}),
        base["throughput"].get("envs", {}),
        "steps_per_second",
    )
    return {
        "batched": batched,
        "throughput": envs,
        "batched_min": min(batched.values()) if batched else None,
        "throughput_min": min(envs.values()) if envs else None,
    }


def measure_baseline(rev: str, seconds: float, quick: bool) -> dict[str, Any]:
    """Build revision ``rev`` and measure its figures (see the module docstring)."""
    root = checkout_root()
    commit = resolve_revision(root, rev)
    with tempfile.TemporaryDirectory(prefix="mechgym-baseline-") as tmp:
        work = Path(tmp)
        try:
            site = build_baseline(root, commit, work)
            figures = baseline_figures(site, seconds, quick, work)
        except subprocess.TimeoutExpired as exc:
            raise ParameterError(
                "--baseline", f"building or measuring {rev} took over {exc.timeout:.0f} s"
            ) from None
        except (subprocess.CalledProcessError, json.JSONDecodeError, IndexError) as exc:
            raise ParameterError("--baseline", f"could not measure {rev}: {exc}") from None
    return {"revision": rev, "commit": commit, **figures}
