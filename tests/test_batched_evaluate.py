"""``mechgym evaluate --batched``: batched estimates with standard errors, tied to --exact."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from mechgym.envs.engine.batched import BATCHED_MODULES
from mechgym.envs.mechanisms.catalogue import SPECS
from mechgym.envs.pettingzoo.registry import available
from typer.testing import CliRunner

from mechgym.batched_eval import batched_profile, batched_reports, pooled_stderr
from mechgym.cli import app

CATALOGUE = [e.name for e in available()]
STDERR_KEYS = ("expected_revenue_stderr", "expected_welfare_stderr", "expected_utilities_stderr")


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _needs_batched_rules(name: str) -> None:
    # every mechanism's rules are written once, in its own module: importable, never skipped
    assert _importable(BATCHED_MODULES[name]), name


def _run(*args: str) -> dict:
    res = CliRunner().invoke(app, ["evaluate", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _exact_keys(name: str) -> set[str]:
    return set(_run(name, "--episodes", "2").keys())


@pytest.mark.parametrize("name", CATALOGUE)
def test_every_mechanism_evaluates_batched(name: str) -> None:
    _needs_batched_rules(name)
    out = _run(name, "--batched", "--episodes", "300", "--agents", "random", "--seed", "1")
    # the sampled report's keys, plus the standard errors and the batched flag
    assert _exact_keys(name) | set(STDERR_KEYS) | {"batched"} == set(out)
    assert out["batched"] is True and out["exact"] is False and out["episodes"] == 300
    n = out["context"]["players"]
    assert len(out["expected_utilities"]) == n == len(out["expected_utilities_stderr"])
    for key in ("expected_revenue", "expected_welfare"):
        assert np.isfinite(out[key]) and out[f"{key}_stderr"] >= 0
    assert out["revenue_stderr"] == out["expected_revenue_stderr"]


@pytest.mark.parametrize("name", CATALOGUE)
def test_predicted_play_agrees_with_exact(name: str) -> None:
    """The batched estimate of the predicted profile lies within a few standard errors of
    the exact expectation, on each mechanism's default example."""
    _needs_batched_rules(name)
    assert _importable(SPECS[name].batched_agents_module), name
    exact = _run(name, "--exact")
    out = _run(name, "--batched", "--episodes", "4000", "--seed", "3")
    for key in ("expected_revenue", "expected_welfare"):
        se = out[f"{key}_stderr"]
        assert abs(out[key] - exact[key]) <= 4 * se + 1e-9, (key, out[key], exact[key], se)
    for got, want, se in zip(
        out["expected_utilities"],
        exact["expected_utilities"],
        out["expected_utilities_stderr"],
        strict=True,
    ):
        assert abs(got - want) <= 4 * se + 1e-9


def test_best_belief_worked_example_within_standard_errors() -> None:
    exact = _run("best_belief", "--example", "chen-micali-2016", "--exact")
    out = _run("best_belief", "--example", "chen-micali-2016", "--batched", "--episodes", "20000")
    assert exact["expected_revenue_exact"] == "594135391/7930520"  # seed 000, Sec. 3 example
    se = out["expected_revenue_stderr"]
    assert 0.1 < se < 2  # the coin makes revenue vary
    assert abs(out["expected_revenue"] - exact["expected_revenue"]) <= 3 * se
    assert (
        abs(out["expected_welfare"] - exact["expected_welfare"])
        <= 3 * out["expected_welfare_stderr"]
    )
    assert out["benchmarks"] == exact["benchmarks"]
    assert out["guarantee"]["sampled"] is True
    assert out["guarantee"]["statement"] == exact["guarantee"]["statement"]


@pytest.mark.parametrize("agents", ["underbid", "always_no", "predicted,underbid,always_yes"])
def test_deviations_agree_with_exact(agents: str) -> None:
    src = ("--example", "chen-micali-2016", "--agents", agents)
    exact = _run("best_belief", *src, "--exact")
    out = _run("best_belief", *src, "--batched", "--episodes", "4000", "--seed", "5")
    for key in ("expected_revenue", "expected_welfare"):
        se = out[f"{key}_stderr"]
        assert abs(out[key] - exact[key]) <= 4 * se + 1e-9, (key, out[key], exact[key], se)


def test_probability_guarantee_uses_sampled_outcomes() -> None:
    """M6's guarantee is a probability: the batched report estimates it from the empirical
    distribution of outcomes, within a few binomial standard errors of the exact one."""
    _needs_batched_rules("budget_balanced_market")
    exact = _run("budget_balanced_market", "--exact")["guarantee"]
    out = _run("budget_balanced_market", "--batched", "--episodes", "20000", "--seed", "2")
    g = out["guarantee"]
    assert g["statement"] == exact["statement"] and g["sampled"] is True
    p = exact["value"]
    assert 0 < p < 1  # the coin c0 makes the event random
    assert abs(g["value"] - p) <= 4 * np.sqrt(p * (1 - p) / 20000)


def test_a_deviation_moves_the_estimate() -> None:
    src = ("--example", "chen-micali-2016", "--batched", "--episodes", "4000")
    base = _run("best_belief", *src)
    under = _run("best_belief", *src, "--agents", "underbid")
    no = _run("best_belief", *src, "--agents", "always_no")
    assert (
        under["expected_revenue"] < base["expected_revenue"] - 10 * base["expected_revenue_stderr"]
    )
    assert no["expected_welfare"] < base["expected_welfare"] - 10 * base["expected_welfare_stderr"]


def test_generator_uses_batched_contexts_and_summarises() -> None:
    out = _run(
        "best_belief",
        "--generate",
        "uniform:n=3,m=2,cap=10,belief=noisy,coalitions=random",
        "--batched",
        "--contexts",
        "3",
        "--episodes",
        "200",
        "--batch-size",
        "128",
    )
    assert out["contexts"] == 3 and out["batched"] is True and len(out["results"]) == 3
    for r in out["results"]:
        assert r["episodes"] == 200 and set(STDERR_KEYS) <= set(r)
        assert r["context"]["players"] == 3
    means = [r["expected_revenue"] for r in out["results"]]
    assert out["mean_expected_revenue"] == pytest.approx(np.mean(means))
    assert out["mean_expected_revenue_stderr"] == pytest.approx(
        np.sqrt(sum(r["expected_revenue_stderr"] ** 2 for r in out["results"])) / 3
    )


def test_batches_accumulate_per_context() -> None:
    """Deterministic play without chance: every batch split gives the exact value, error 0."""
    from mechgym.envs.mechanisms.vcg import VCG
    from mechgym.envs.model.examples import example

    ctx = example("chen-micali-2016")
    exact = _run("vcg", "--exact")
    for batch_size in (7, 64):
        (r,) = batched_reports(VCG(), ctx, "predicted", 20, 1, np.random.default_rng(0), batch_size)
        assert r["expected_welfare"] == pytest.approx(exact["expected_welfare"])
        assert r["expected_revenue"] == pytest.approx(exact["expected_revenue"])
        assert r["expected_welfare_stderr"] == 0 and r["expected_revenue_stderr"] == 0
    (one,) = batched_reports(VCG(), ctx, "predicted", 1, 1, np.random.default_rng(0))
    assert one["expected_revenue_stderr"] is None and one["expected_utilities_stderr"] is None
    assert pooled_stderr([one], "expected_revenue") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exact", "--batched"], "give only one"),
        (["--batched", "--agents", "psychic"], "unknown agent 'psychic'"),
        (["--batched", "--agents", "random,random"], "one name or 3 names"),
    ],
)
def test_user_errors(args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["evaluate", "best_belief", *args, "--json"])
    assert res.exit_code == 2
    assert message in res.output


def test_random_play_needs_no_scripted_agents() -> None:
    from mechgym.agents.batched import RandomBatched

    ((pol, players),) = batched_profile("no_such_mechanism", 3, "random")
    assert isinstance(pol, RandomBatched) and players == [0, 1, 2]
    with pytest.raises(ValueError, match="no batched agents"):
        batched_profile("no_such_mechanism", 3, "predicted")
