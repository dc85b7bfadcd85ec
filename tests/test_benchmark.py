"""The benchmark protocol: tasks, shipped reference scores, exact scoring, runs, CLI."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.pettingzoo.registry import entry
from typer.testing import CliRunner

from mechgym.benchmark.run import interval_estimates, run_task
from mechgym.benchmark.scoring import (
    focal_return,
    load_reference,
    normalized,
    predicted_policy,
    random_return,
    reference,
    setup,
)
from mechgym.benchmark.tasks import TASKS, task
from mechgym.cli import app

runner = CliRunner()


def test_registry_covers_the_mechanisms_coalitions_and_wrong_beliefs() -> None:
    assert len(TASKS) >= 12
    assert all(t.id.endswith("-v0") for t in TASKS.values())
    mechs = {t.mechanism for t in TASKS.values()}
    for name in (
        "best_belief",
        "normal_form",
        "knowledge_benchmark",
        "collusion_leveraging",
        "perfect_revenue",
        "budget_balanced_market",
        "vcg",
    ):
        assert name in mechs
    coalition = {t.mechanism for t in TASKS.values() if t.coalition}
    for name in (
        "best_belief",
        "knowledge_benchmark",
        "collusion_leveraging",
        "perfect_revenue",
        "budget_balanced_market",
    ):
        assert name in coalition
    assert any("belief=wrong" in t.family for t in TASKS.values())
    for t in TASKS.values():
        entry(t.mechanism)  # every task names a catalogue mechanism
        assert t.steps > 0 and t.rounds > 0 and t.eval_seeds


def test_unknown_task_is_a_typed_error() -> None:
    with pytest.raises(ParameterError, match="benchmark list"):
        task("no-such-task-v0")


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_shipped_reference_is_what_the_script_builds(task_id: str) -> None:
    shipped = load_reference()[task_id]
    built = reference(TASKS[task_id])
    assert shipped["random"] == built["random"]
    assert shipped["predicted"] == built["predicted"]
    assert shipped["bound"] == built["bound"]


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_predicted_scores_one_and_random_zero_exactly(task_id: str) -> None:
    s = setup(TASKS[task_id])
    ref = load_reference()[task_id]
    pred = focal_return(s, predicted_policy(s))
    rand = random_return(s)
    assert normalized(pred, ref) == 1.0
    assert normalized(rand, ref) == 0.0
    assert Fraction(ref["predicted"]) == pred and Fraction(ref["random"]) == rand


def test_interval_estimates_are_seeded_and_bracket_the_iqm() -> None:
    x = {"score": np.array([0.1, 0.4, 0.5, 0.6, 2.0])}
    a = interval_estimates(x, seed=3, reps=500)
    b = interval_estimates(x, seed=3, reps=500)
    assert a == b
    s = a["score"]
    assert s["ci_low"] <= s["iqm"] <= s["ci_high"]
    assert s["iqm"] == pytest.approx(0.5)  # IQM of five values: mean of the middle three


def test_no_regret_run_writes_marl_eval_layout(tmp_path) -> None:
    summary = run_task(
        TASKS["budget-balanced-market-v0"],
        "regret_matching",
        seeds=2,
        quick=True,
        out=tmp_path,
        progress=False,
    )
    raw = json.loads((tmp_path / "results.json").read_text())
    runs = raw["mechgym"]["budget-balanced-market-v0"]["regret_matching"]
    assert set(runs) == {"seed_0", "seed_1"}
    assert "normalized" in runs["seed_0"]["absolute_metrics"]
    assert runs["seed_0"]["step_0"]["step_count"] == 1
    for name in ("per_seed.csv", "aggregate.json", "aggregate.csv", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    agg = summary["aggregate"]["normalized"]
    assert agg["ci_low"] <= agg["iqm"] <= agg["ci_high"]
    assert summary["machine"]["versions"]["numpy"] == np.__version__


def test_cli_list_score_and_run(tmp_path) -> None:
    res = runner.invoke(app, ["benchmark", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["tasks"]
    assert len(rows) == len(TASKS) and rows[0]["reference"]["predicted_float"] is not None
    res = runner.invoke(app, ["benchmark", "score", "vcg-v0", "--agents", "random", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["normalized"] == 0.0
    res = runner.invoke(app, ["benchmark", "score", "nope-v0"])
    assert res.exit_code == 2 and "unknown task" in res.output
    out = tmp_path / "run"
    args = ["benchmark", "run", "vcg-collusion-v0", "--seeds", "2", "--quick", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (out / "aggregate.json").exists()
    res = runner.invoke(app, args)  # never overwrite silently
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(app, [*args, "--overwrite", "--algo", "nope"])
    assert res.exit_code == 2 and "unknown algorithm" in res.output
