"""``mechgym bench --baseline REV``: a revision of the checkout measured in the same run."""

from __future__ import annotations

import pytest
from mechgym.envs.engine.errors import ParameterError
from typer.testing import CliRunner

from mechgym.bench_baseline import checkout_root, compare, measure_baseline, resolve_revision
from mechgym.cli import app


@pytest.fixture(scope="module")
def root():
    try:
        return checkout_root()
    except ParameterError:
        pytest.skip("mechgym is not installed from a git checkout here")


def test_a_revision_is_built_and_measured_apart(root) -> None:
    """HEAD, built from git (not the working tree) and run in a child process, reports the
    same keys as the current code; the ratios cover every key both measured."""
    from mechgym.bench import run_bench

    base = measure_baseline("HEAD", 0.02, quick=True)
    assert base["commit"] == resolve_revision(root, "HEAD") and len(base["commit"]) == 40
    cur = run_bench(quick=True)
    assert set(base["batched"]) == set(cur["batched"])
    assert base["batched"]["best_belief"]["decisions_per_second"] > 0
    vs = compare(cur, base)
    assert set(vs["batched"]) == {k for k, r in cur["batched"].items() if "skipped" not in r}
    assert set(vs["throughput"]) == set(cur["throughput"]["envs"])
    assert vs["batched_min"] == min(vs["batched"].values()) > 0


def test_compare_is_current_over_baseline() -> None:
    cur = {
        "batched": {"a": {"decisions_per_second": 30.0}, "b": {"skipped": "x"}},
        "throughput": {"envs": {"a": {"steps_per_second": 10.0}}},
    }
    old = {
        "batched": {"a": {"decisions_per_second": 20.0}, "b": {"decisions_per_second": 1.0}},
        "throughput": {"envs": {"c": {"steps_per_second": 5.0}}},
    }
    vs = compare(cur, old)
    assert vs["batched"] == {"a": 1.5} and vs["throughput"] == {}
    assert vs["batched_min"] == 1.5 and vs["throughput_min"] is None


def test_an_unknown_revision_is_refused_in_one_line(root) -> None:
    with pytest.raises(ParameterError, match="no commit"):
        resolve_revision(root, "no-such-revision-anywhere")
    with pytest.raises(ParameterError, match="not a git revision"):
        resolve_revision(root, "--all")
    result = CliRunner().invoke(app, ["bench", "--quick", "--baseline", "no-such-rev"])
    assert result.exit_code != 0
    assert "no commit" in result.output and "Traceback" not in result.output
