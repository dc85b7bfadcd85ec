"""``mechgym bench --json``: the batched figures sit beside rps_v2 for every mechanism."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mechgym.envs.engine.batched import batched_rules
from mechgym.envs.model.batched_generators import make_batch_generator
from mechgym.envs.pettingzoo.registry import available
from typer.testing import CliRunner

from mechgym.bench import MIXTURE, QUICK_BATCH_SIZE, batched_decisions_per_second
from mechgym.cli import app


@pytest.fixture(scope="module")
def quick() -> dict:
    res = CliRunner().invoke(app, ["bench", "--json", "--quick"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_batched_keys_for_every_mechanism(quick: dict) -> None:
    names = {e.name for e in available()} | set(MIXTURE)
    assert set(quick["batched"]) == names
    ref = quick["throughput"]["rps_v2"]
    for name, r in quick["batched"].items():
        assert "skipped" not in r, (name, r)
        assert r["decisions_per_second"] > 0 and (r["n"], r["m"]) == (3, 2)
        assert r["episodes"] >= r["batch_size"] == QUICK_BATCH_SIZE
        if ref:
            assert r["ratio_to_rps"] == pytest.approx(r["decisions_per_second"] / ref)
        else:
            assert r["ratio_to_rps"] is None


def test_quick_keeps_the_other_keys(quick: dict) -> None:
    assert set(quick) >= {"throughput", "batched", "solvers", "training"}
    assert set(quick["throughput"]["envs"]) == {e.name for e in available()}
    assert quick["solvers"] and quick["training"] is None


def test_decisions_are_counted_per_acting_player() -> None:
    """VCG is one simultaneous report by every player: 3 decisions per episode at n = 3."""
    from mechgym.envs.engine.game import EnvSpec
    from mechgym.envs.mechanisms.vcg import VCG

    sampler = make_batch_generator("uniform:n=3,m=2,cap=5")
    rules = batched_rules(VCG(), EnvSpec(3, 2, 5, 5))
    rng = np.random.default_rng(0)
    dps, episodes = batched_decisions_per_second(rules, sampler, 32, 0.0, rng)
    assert episodes == 32 and dps > 0
    state = rules.reset(sampler.sample(32, rng), rng)
    assert int(state.acting.sum()) == 3 * 32


def test_bench_table_shows_batched_figures(quick: dict) -> None:
    from io import StringIO

    from rich.console import Console

    from mechgym.bench import show_bench

    buf = StringIO()
    show_bench(quick, Console(file=buf, width=200))
    text = buf.getvalue()
    assert "decisions per second" in text and "mixture" in text
