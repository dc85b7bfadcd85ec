"""The second-price bundle auction A' of seed 002 and the mixture M' with a revenue mechanism."""

from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from mechgym.agents.base import AGENTS, RandomPolicy, profile
from mechgym.agents.collusion_leveraging import PredictedSecondPrice, sp_menu, sp_menu_size
from mechgym.envs import second_price_bundle_v0
from mechgym.envs.engine.batched import sample_actions
from mechgym.envs.engine.errors import MalformedAnnouncementError, ParameterError
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Terminal,
    evaluate_exact,
    step_decision,
)
from mechgym.envs.mechanisms.collusion_leveraging import CLAnnouncement, CollusionLeveraging
from mechgym.envs.mechanisms.knowledge_benchmark import KBAnnouncement, KnowledgeBenchmark
from mechgym.envs.mechanisms.second_price_bundle import (
    BundleBid,
    Mixture,
    SecondPriceBundle,
)
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.model.generators import UniformGenerator
from mechgym.envs.solvers.packing import best_knowledge
from pettingzoo.test import api_test, parallel_api_test, seed_test

warnings.filterwarnings("ignore", module="pettingzoo")

COALITIONS = ("independent", "random", "grand", "pair")


def contexts(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for k in range(count):
        gen = UniformGenerator(
            2 + k % 4,
            1 + (k // 4) % 3,
            value_cap=10,
            belief=("noisy", "exact")[k % 2],
            coalitions=COALITIONS[(k // 2) % 4],
        )
        yield gen.sample(rng)


def _played(bids: tuple[BundleBid, ...]) -> Any:
    mech = SecondPriceBundle()
    ctx = AuctionContext(values=np.zeros((3, 4), dtype=np.int64))
    s = mech.start(ctx)
    return mech.node(step_decision(mech, s, mech.node(s), dict(enumerate(bids)))).outcome


def test_highest_value_wins_its_bundle_and_pays_the_second():
    out = _played((BundleBid(5, 1), BundleBid(9, 3), BundleBid(7, 2)))
    assert out.alloc == (0, 3, 0) and out.prices == (0, 7, 0) and out.rule == "second_price"
    tie = _played((BundleBid(4, 1), BundleBid(9, 2), BundleBid(9, 1)))
    assert tie.alloc == (0, 2, 0) and tie.prices == (0, 9, 0)  # lowest index wins the tie


def test_predicted_play_and_collusion():
    values = np.array([[0, 3, 1, 4], [0, 8, 2, 6], [0, 0, 7, 7]])
    mech = SecondPriceBundle()
    alone = AuctionContext(values=values)
    ev = evaluate_exact(mech, alone, profile(PredictedSecondPrice(alone), 3))
    assert ev.outcomes[0][1].alloc == (0, 1, 0) and ev.expected_revenue == 7
    pair = alone.with_coalitions([(1, 2), (0,)])
    ev2 = evaluate_exact(mech, pair, profile(PredictedSecondPrice(pair), 3))
    assert ev2.expected_welfare == 8 and ev2.expected_revenue == 4  # 2 abstains: 1 pays 0's 4
    assert mech.guarantee(pair, ev2).holds and mech.guarantee(pair, ev2).exact
    ev3 = evaluate_exact(
        mech, pair, profile(AGENTS["second_price_bundle"].deviations["no_collusion"](pair, None), 3)
    )
    assert ev3.expected_revenue == 7 and ev2.coalition_utility((1, 2)) > ev3.coalition_utility(
        (1, 2)
    )


def test_guarantee_exact_on_generated_contexts():
    mech = SecondPriceBundle()
    for ctx in contexts(120, seed=21):
        ev = evaluate_exact(mech, ctx, profile(PredictedSecondPrice(ctx), ctx.n))
        g = mech.guarantee(ctx, ev)
        assert g.holds and g.bound == int(ctx.values.max())


def test_bad_bids_raise_typed_errors():
    mech = SecondPriceBundle()
    s = mech.start(AuctionContext(values=np.zeros((2, 4), dtype=np.int64)))
    for action, message in [
        (BundleBid(-1, 1), "a bid value must be an integer >= 0, got -1"),
        (BundleBid(2.5, 1), "a bid value must be an integer >= 0, got 2.5"),
        (BundleBid(2, 4), "bid bundle 4 is not a bitmask over 2 goods"),
        ((2, 1), "expected a BundleBid, got tuple"),
    ]:
        with pytest.raises(MalformedAnnouncementError, match=message) as info:
            mech.validate(s, 1, action)
        assert info.value.agent == "player_1" and info.value.phase == "bid"


# -- the mixture -----------------------------------------------------------------------------


def test_constructor_parameter_builds_the_mixture():
    mix = SecondPriceBundle(mixture="collusion_leveraging", c=1, eps="1/20")
    assert isinstance(mix, Mixture) and mix.name == "second_price_bundle"
    assert isinstance(mix.mechs[0], CollusionLeveraging) and mix.mechs[0].eps == Fraction(1, 20)
    assert mix.p == Fraction(1, 2) and mix.phases == ("announce", "respond", "bid")
    assert isinstance(SecondPriceBundle(), SecondPriceBundle)
    with pytest.raises(ParameterError, match="unknown revenue mechanism 'vcg'"):
        SecondPriceBundle(mixture="vcg")
    with pytest.raises(ParameterError, match="parameter c: must be positive"):
        SecondPriceBundle(mixture="m3", c=0)
    with pytest.raises(ParameterError, match="eps"):
        second_price_bundle_v0.env(eps="1/10")  # constants only with a mixture
    with pytest.raises(ParameterError, match="bogus"):
        second_price_bundle_v0.env(mixture="m4", bogus=1)


def test_mixture_draws_a_branch_then_runs_it():
    ctx = next(contexts(1, seed=22))
    mix = Mixture(KnowledgeBenchmark(), "1/2")
    s = mix.start(ctx)
    node = mix.node(s)
    assert (
        isinstance(node, Chance)
        and node.name == "mix"
        and node.probs == (Fraction(2, 3), Fraction(1, 3))
    )
    s_rev, s_auc = mix.chance(s, 0), mix.chance(s, 1)
    assert mix.node(s_rev) == Decision(tuple(range(ctx.n)), "announce")
    assert mix.node(s_auc) == Decision(tuple(range(ctx.n)), "bid")
    with pytest.raises(MalformedAnnouncementError, match="expected a BundleBid"):
        mix.validate(s_auc, 0, KBAnnouncement(0, None))
    bids = {i: BundleBid(i, 1) for i in range(ctx.n)}
    out = mix.node(mix.resolve(s_auc, bids))
    assert isinstance(out, Terminal) and out.outcome.alloc[ctx.n - 1] == 1


@pytest.mark.parametrize("revenue", ["knowledge_benchmark", "collusion_leveraging"])
def test_mixture_guarantee_under_predicted_play(revenue):
    mix = SecondPriceBundle(mixture=revenue, c="1/2")
    for ctx in contexts(80, seed=23):
        ev = evaluate_exact(mix, ctx, profile(PredictedSecondPrice(ctx), ctx.n))
        g = mix.guarantee(ctx, ev)
        assert g.holds, (g, ctx.values)
        if revenue == "knowledge_benchmark":
            # seed 002: the mixture of [7] with A' achieves MKW_I / 3 (c = 1/2).
            mkw_i = max((best_knowledge(ctx, (i,)).value for i in ctx.independent), default=0)
            assert g.bound >= Fraction(mkw_i, 3)
            assert mix.benchmarks(ctx)["MKW_I"] == mkw_i


def test_mixture_encodings_and_menus():
    mix = SecondPriceBundle(mixture="collusion_leveraging")
    for ctx in contexts(16, seed=24):
        spec = EnvSpec(ctx.n, ctx.m, 10, 10)
        layout = mix.layout(spec)
        assert {"bid_value", "bid_bundle", "answer", "ally_0", "price_0"} <= set(layout.names)
        pol = PredictedSecondPrice(ctx)
        rng = np.random.default_rng(0)
        for branch, phase in ((0, "announce"), (1, "bid")):
            s = mix.chance(mix.start(ctx), branch)
            for i in range(ctx.n):
                a = pol.act(mix, ctx, s, i)
                assert isinstance(a, CLAnnouncement if branch == 0 else BundleBid)
                mask = mix.action_mask(s, i, spec, layout)
                vec = mix.encode(s, i, a, spec, layout)
                layout.check(vec, mask, f"player_{i}", phase)
                assert mix.decode(s, i, vec, spec, layout) == a
                rnd = sample_actions(layout, mask, rng)
                b = mix.decode(s, i, rnd, spec, layout)
                assert mix.validate(s, i, b) == b
                items = sp_menu(mix, ctx, s, i)
                assert len(items) == sp_menu_size(phase, spec) == 14 and a in [x for _, x in items]
            assert len(mix.public_features(s, 0, spec)) == mix.public_size(spec)


def test_random_policy_plays_the_mixture():
    mix = SecondPriceBundle(mixture="knowledge_benchmark")
    ctx = next(contexts(1, seed=25))
    pol = RandomPolicy(np.random.default_rng(1), EnvSpec(ctx.n, ctx.m, 10, 10))
    for branch in (0, 1):
        s = mix.chance(mix.start(ctx), branch)
        while isinstance(mix.node(s), Decision):
            node = mix.node(s)
            s = mix.resolve(
                s, {i: mix.validate(s, i, pol.act(mix, ctx, s, i)) for i in node.players}
            )
            while isinstance(mix.node(s), Chance):
                s = mix.chance(s, 0)
        assert isinstance(mix.node(s), Terminal)


# -- environments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m", "cap", "coalitions", "kwargs"),
    [
        (2, 1, 3, "independent", {}),
        (5, 2, 3, "random", {}),
        (2, 2, 2, "pair", {"mixture": "collusion_leveraging", "c": "1/2"}),
        (5, 1, 2, "random", {"mixture": "collusion_leveraging", "eps": "1/5"}),
        (3, 2, 2, "grand", {"mixture": "knowledge_benchmark", "eps": "1/100"}),
    ],
)
def test_pettingzoo_api(n, m, cap, coalitions, kwargs):
    gen = UniformGenerator(n, m, value_cap=cap, belief="noisy", coalitions=coalitions)
    api_test(second_price_bundle_v0.env(generator=gen, seed=0, **kwargs), num_cycles=30)
    seed_test(lambda: second_price_bundle_v0.env(generator=gen, **kwargs), num_cycles=10)
    parallel_api_test(
        second_price_bundle_v0.parallel_env(generator=gen, seed=0, **kwargs), num_cycles=30
    )
