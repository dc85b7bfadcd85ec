"""The benchmark results script and the budget overrides of ``run_task`` it relies on."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from mechgym.envs.engine.errors import ParameterError

from mechgym.benchmark.run import run_task
from mechgym.benchmark.scoring import setup
from mechgym.benchmark.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "benchmark_results", ROOT / "experiments" / "benchmark_results.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_run_task_budget_overrides_and_shared_setup(tmp_path) -> None:
    t = TASKS["budget-balanced-market-v0"]
    s = setup(t)
    summary = run_task(
        t, "regret_matching", seeds=2, out=tmp_path, progress=False, rounds=2, task_setup=s
    )
    assert summary["budget"] == 2 and summary["budget_unit"] == "rounds"
    with (tmp_path / "per_seed.csv").open() as fh:
        assert [int(r["budget"]) for r in csv.DictReader(fh)] == [2, 2]
    with pytest.raises(ParameterError):
        run_task(TASKS["vcg-v0"], "hedge", seeds=1, out=tmp_path / "x", task_setup=s)
    with pytest.raises(ParameterError):
        run_task(t, "hedge", seeds=1, out=tmp_path / "y", rounds=0, task_setup=s)


def test_script_writes_tables_plot_and_reuses_finished_runs(tmp_path) -> None:
    mod = _script()
    out, docs = tmp_path / "raw", tmp_path / "docs"
    argv = ["--quick", "--tasks", "vcg-collusion-v0", "--algos", "regret_matching,hedge"]
    argv += ["--out", str(out), "--docs", str(docs)]
    assert mod.main(argv) == 0
    md = (docs / "results.md").read_text(encoding="utf-8")
    assert "`vcg-collusion-v0`" in md and "predicted (untrained)" in md and "numpy:" in md
    with (docs / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["learner"] for r in rows] == [
        "random (untrained)",
        "predicted (untrained)",
        "regret_matching",
        "hedge",
    ]
    assert float(rows[0]["normalized_iqm"]) == 0.0 and float(rows[1]["normalized_iqm"]) == 1.0
    assert (docs / "normalized.png").stat().st_size > 0
    first = json.loads((out / "all.json").read_text())
    assert mod.main([*argv, "--reuse"]) == 0
    again = json.loads((out / "all.json").read_text())
    assert again[0]["runs"]["hedge"]["reused"] is True
    assert again[0]["runs"]["hedge"]["aggregate"] == first[0]["runs"]["hedge"]["aggregate"]
    assert mod.main(["--tasks", "nope-v0", "--out", str(out), "--docs", str(docs)]) == 2
