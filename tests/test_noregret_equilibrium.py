"""No-regret learners and the field's equilibrium-distance metrics, against brute force."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from mechgym.envs.engine.game import EnvSpec, evaluate_exact
from mechgym.envs.mechanisms.vcg import VCG
from mechgym.envs.model.context import AuctionContext
from mechgym.training.equilibrium import (
    TooManyOptions,
    count_full_options,
    equilibrium_metrics,
    full_options,
    full_space_exploitability,
    mixed_value,
    uniform_over,
)
from mechgym.training.learner_env import group_value
from mechgym.training.noregret import RULES, NoRegretLearner

from mechgym.benchmark.scoring import setup
from mechgym.benchmark.tasks import TASKS


class Report:
    """A fixed VCG report for one player."""

    def __init__(self, report: tuple[int, ...]) -> None:
        self.report = report

    def act(self, mech, ctx, state, player):
        return self.report


def _tiny_vcg():
    ctx = AuctionContext(values=[[0, 3], [0, 2]])
    return VCG(), EnvSpec(n=2, m=1, value_cap=4, price_cap=4), ctx


def _value(mech, ctx, reports, player):
    ev = evaluate_exact(mech, ctx, {i: Report(r) for i, r in enumerate(reports)})
    return sum((p * group_value(ctx, o, (player,)) for p, o in ev.outcomes), Fraction(0))


def test_full_action_space_is_every_legal_report() -> None:
    mech, spec, ctx = _tiny_vcg()
    state = mech.start(ctx)
    opts = full_options(mech, spec)(ctx, state, 0)
    assert count_full_options(mech, spec, state, 0) == len(opts) == 5
    assert sorted(opts) == [(0, v) for v in range(5)]


def test_nash_conv_matches_brute_force_on_tiny_vcg() -> None:
    mech, spec, ctx = _tiny_vcg()
    reports = [(0, 1), (0, 2)]  # player 0 underbids and loses; truthful 3 would win
    prof = lambda c: {0: Report(reports[0]), 1: Report(reports[1])}  # noqa: E731
    truth = lambda c: {0: Report((0, 3)), 1: Report((0, 2))}  # noqa: E731
    m = equilibrium_metrics(mech, spec, [ctx], prof, truth, [(0,), (1,)], action_space="full")
    assert m.action_space == "full"
    gains = []
    for i in range(2):
        cur = _value(mech, ctx, reports, i)
        best = max(
            _value(mech, ctx, [(0, v) if j == i else reports[j] for j in range(2)], i)
            for v in range(5)
        )
        gains.append(float(best - cur))
    assert m.exploitability == {"0": gains[0], "1": gains[1]}
    assert m.nash_conv == pytest.approx(sum(gains))
    assert gains[0] == 1.0  # winning at price 2 with value 3
    # truthful VCG is an equilibrium: NashConv 0 over the full space
    t = equilibrium_metrics(mech, spec, [ctx], truth, truth, [(0,), (1,)], action_space="full")
    assert t.nash_conv == 0.0 and t.relative_utility_loss["0"] == 0.0


def test_full_space_exploitability_is_the_brute_force_gain() -> None:
    mech, spec, ctx = _tiny_vcg()
    reports = [(0, 1), (0, 2)]
    prof = lambda c: {0: Report(reports[0]), 1: Report(reports[1])}  # noqa: E731
    got = full_space_exploitability(mech, spec, [ctx], prof, [(0,), (1,)])
    gains = {}
    for i in range(2):
        cur = _value(mech, ctx, reports, i)
        best = max(
            _value(mech, ctx, [(0, v) if j == i else reports[j] for j in range(2)], i)
            for v in range(5)
        )
        gains[str(i)] = float(best - cur)
    assert got == gains and got["0"] == 1.0


def test_full_space_exploitability_refuses_a_node_beyond_the_limit() -> None:
    mech, spec, ctx = _tiny_vcg()
    truth = lambda c: {0: Report((0, 3)), 1: Report((0, 2))}  # noqa: E731
    assert full_space_exploitability(mech, spec, [ctx], truth, [(0,)], limit=5) == {"0": 0.0}
    # 5 legal reports at the node: a limit of 4 leaves the search to the menus
    assert full_space_exploitability(mech, spec, [ctx], truth, [(0,)], limit=4) is None
    with pytest.raises(TooManyOptions):
        full_options(mech, spec, limit=4)(ctx, mech.start(ctx), 0)


def test_relative_utility_loss_is_bnelearns() -> None:
    mech, spec, ctx = _tiny_vcg()
    truth = lambda c: {0: Report((0, 3)), 1: Report((0, 2))}  # noqa: E731
    under = lambda c: {0: Report((0, 1)), 1: Report((0, 2))}  # noqa: E731
    m = equilibrium_metrics(mech, spec, [ctx], under, truth, [(0,)], action_space="full")
    star = _value(mech, ctx, [(0, 3), (0, 2)], 0)
    dev = _value(mech, ctx, [(0, 1), (0, 2)], 0)
    assert m.relative_utility_loss["0"] == pytest.approx(float(1 - dev / star))


def test_mixed_value_is_the_average_over_pure_profiles() -> None:
    mech, spec, ctx = _tiny_vcg()
    opts = full_options(mech, spec)
    mixed = uniform_over(opts)
    got = mixed_value(mech, ctx, {1: Report((0, 2))}, (0,), {0: mixed})
    want = sum(_value(mech, ctx, [(0, v), (0, 2)], 0) for v in range(5)) / 5
    assert got == want
    both = mixed_value(mech, ctx, {}, (1,), {0: mixed, 1: mixed})
    brute = (
        sum(
            _value(mech, ctx, [(0, a), (0, b)], 1) for a, b in itertools.product(range(5), repeat=2)
        )
        / 25
    )
    assert both == brute


@pytest.mark.parametrize("rule", RULES)
def test_no_regret_drops_dominated_answers(rule: str) -> None:
    s = setup(TASKS["budget-balanced-market-v0"])
    learner = NoRegretLearner(
        s.mech,
        s.contexts,
        [(0,)],
        s.background,
        s.encoding.options,
        rule=rule,
        rng=np.random.default_rng(1),
    )
    learner.run(60)
    pol = learner.policy()
    agree = []
    for ctx in s.contexts:
        ev = evaluate_exact(s.mech, ctx, {**s.background(ctx), 0: pol})
        pred = s.agents.predicted(ctx)
        for v in ev.visits:
            if 0 in v.node.players:
                agree.append(v.actions[0] == pred.act(s.mech, ctx, v.state, 0))
    assert agree and np.mean(agree) == 1.0


@pytest.mark.parametrize("rule", RULES)
def test_joint_coalition_learns_the_collusive_overbid_in_vcg(rule: str) -> None:
    s = setup(TASKS["vcg-collusion-v0"])
    ctx = s.contexts[0]
    for seed in range(3):
        learner = NoRegretLearner(
            s.mech,
            s.contexts,
            [(1, 2)],
            s.background,
            s.encoding.options,
            rule=rule,
            rng=np.random.default_rng(seed),
        )
        learner.run(30)
        pol = learner.policy()
        ev = evaluate_exact(s.mech, ctx, {**s.background(ctx), 1: pol, 2: pol})
        assert ev.expected_revenue == 0  # Ausubel-Milgrom: the losers take both goods for free
        assert ev.coalition_utility((1, 2)) == 10


def test_separate_members_can_miss_the_coalitions_best_reply() -> None:
    # members learning their own tables on the shared payoff face a coordination game:
    # one overbidder alone pays 15 > 5, so fictitious play stays truthful
    s = setup(TASKS["vcg-collusion-v0"])
    ctx = s.contexts[0]
    learner = NoRegretLearner(
        s.mech,
        s.contexts,
        [(1, 2)],
        s.background,
        s.encoding.options,
        rule="fictitious_play",
        rng=np.random.default_rng(0),
        joint=False,
    )
    learner.run(30)
    pol = learner.policy()
    ev = evaluate_exact(s.mech, ctx, {**s.background(ctx), 1: pol, 2: pol})
    assert ev.coalition_utility((1, 2)) == 0


def test_learners_are_seeded() -> None:
    s = setup(TASKS["best-belief-v0"])

    def run(seed: int) -> list[dict[str, float]]:
        lr = NoRegretLearner(
            s.mech,
            s.contexts[:2],
            [(0,)],
            s.background,
            s.encoding.options,
            rng=np.random.default_rng(seed),
        )
        lr.run(5)
        return lr.history

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_train_and_converge_take_the_no_regret_rules(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from mechgym.cli import app

    runner = CliRunner()
    out = tmp_path / "train"
    res = runner.invoke(
        app,
        [
            "train",
            "budget_balanced_market",
            "--algo",
            "regret_matching",
            "--rounds",
            "40",
            "--eval-contexts",
            "4",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["algo"] == "regret_matching" and len(report["history"]) == 40
    assert report["final"]["agreement"]["propose"] == 1.0  # the truthful proposal is learned
    conv = tmp_path / "conv"
    res = runner.invoke(
        app,
        [
            "converge",
            "vcg",
            "--algo",
            "hedge",
            "--quick",
            "--jobs",
            "1",
            "--out",
            str(conv),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((conv / "summary.json").read_text())
    assert summary["config"]["algo"] == "hedge"
    assert summary["mechanisms"]["vcg"]["status"] != "failed"
