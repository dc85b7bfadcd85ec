"""Who is asked what: ``Mechanism.pending_offer`` and ``BatchedRules.pending_offers`` agree at
every node of random play, for every mechanism with batched rules; the learner's pending
question reads them on both paths (regression: M1's seller reserve leading used to show no
question, or the winner's offer instead of the reserve)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from batched_support import context_batch, rules_for, walk_exact
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.batched import (
    BatchedRules,
    BatchState,
    ContextBatch,
    batched_rules,
    rollout,
    sample_actions,
)
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism, PendingOffer, step_decision
from mechgym.envs.mechanisms.best_belief import BBAnnouncement, BestBelief
from mechgym.envs.mechanisms.budget_balanced_market import BudgetBalancedMarket
from mechgym.envs.mechanisms.collusion_leveraging import CollusionLeveraging
from mechgym.envs.mechanisms.foils import (
    HopeForTheBest,
    NaiveMarket1,
    NaiveMarket2,
    NaiveMarket3,
    NaiveMarket4,
)
from mechgym.envs.mechanisms.knowledge_benchmark import KnowledgeBenchmark
from mechgym.envs.mechanisms.normal_form import NormalForm
from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue
from mechgym.envs.mechanisms.second_price_bundle import Mixture, SecondPriceBundle
from mechgym.envs.mechanisms.vcg import VCG
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.model.examples import example
from mechgym.envs.model.states import StatesGenerator
from mechgym.training.encodings import ObservationBuilder, make_encoding, symlog

AUCTION = "uniform:n=3,m=2,cap=4,belief=wrong,coalitions=random,shared=true"
MARKET = "market:n=3,m=2,k=3,coalitions=random,shared=true"

CASES: dict[str, tuple[Callable[[], Mechanism], str]] = {
    "best_belief": (BestBelief, AUCTION),
    "best_belief_reserve": (
        lambda: BestBelief(reserve=Offer((1, 2, 0), (2, 3, 0))),
        AUCTION,
    ),
    "normal_form": (NormalForm, AUCTION),
    "vcg": (VCG, AUCTION),
    "knowledge_benchmark": (KnowledgeBenchmark, AUCTION),
    "knowledge_benchmark_fn4": (lambda: KnowledgeBenchmark(eps="1/5"), AUCTION),
    "collusion_leveraging": (CollusionLeveraging, AUCTION),
    "second_price_bundle": (SecondPriceBundle, AUCTION),
    "mixture_m1": (lambda: SecondPriceBundle(mixture="best_belief"), AUCTION),
    "mixture_m3": (lambda: Mixture(KnowledgeBenchmark(), "1/3"), AUCTION),
    "mixture_m4": (lambda: SecondPriceBundle(mixture="collusion_leveraging"), AUCTION),
    "perfect_revenue": (PerfectRevenue, "states"),
    "hope_for_the_best": (HopeForTheBest, "states"),
    "budget_balanced_market": (BudgetBalancedMarket, MARKET),
    "naive_market_1": (NaiveMarket1, MARKET),
    "naive_market_2": (NaiveMarket2, MARKET),
    "naive_market_3": (NaiveMarket3, MARKET),
    "naive_market_4": (NaiveMarket4, MARKET),
}


def _setup(case: str, B: int, seed: int) -> tuple[BatchedRules, ContextBatch]:
    make, source = CASES[case]
    mech = make()
    if source == "states":
        gen = StatesGenerator(3, 3, 3, "random", True)
        rng = np.random.default_rng(seed)
        ctx = ContextBatch.from_contexts([gen.sample(rng) for _ in range(B)])
        return batched_rules(mech, EnvSpec(3, 3, 3, mech.default_price_cap(3, 3))), ctx
    return rules_for(mech, source), context_batch(source, B, seed)


class _Recorder:
    """Random legal play that records ``pending_offers`` before every step."""

    def __init__(self, rules: BatchedRules, rng: np.random.Generator) -> None:
        self.rules, self.rng = rules, rng
        self.offers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __call__(self, state: BatchState, masks: np.ndarray) -> np.ndarray:
        self.offers.append(self.rules.pending_offers(state))
        return sample_actions(self.rules.layout, masks, self.rng)


@pytest.mark.parametrize("case", sorted(CASES))
def test_batched_pending_offers_match_the_exact_ones(case: str) -> None:
    rules, ctx = _setup(case, 300, seed=5)
    rec = _Recorder(rules, np.random.default_rng(9))
    ro = rollout(rules, ctx, rec.rng, policy=rec)
    mech, n = rules.mech, rules.spec.n
    asked_total = 0

    def visit(t: int, s: Any, node: Decision, ectx: Any, b: int = 0) -> None:
        nonlocal asked_total
        asked, item, price = rec.offers[t]
        for p in range(n):
            want = mech.pending_offer(s, p)
            if want is None:
                assert not asked[b, p], (case, b, t, p)
                continue
            assert p in node.players
            assert asked[b, p], (case, b, t, p)
            assert PendingOffer(int(item[b, p]), int(price[b, p])) == want, (case, b, t, p)
            asked_total += 1

    for b in range(ctx.B):
        walk_exact(rules, ro, b, lambda t, s, node, ectx, b=b: visit(t, s, node, ectx, b))
    silent = {"normal_form", "vcg", "second_price_bundle", "hope_for_the_best", "naive_market_1"}
    if case in silent:
        assert asked_total == 0
    else:
        assert asked_total > 0


# -- regression: the seller's reserve leads ------------------------------------------------------


def test_learner_sees_the_reserve_question_on_both_paths() -> None:
    from mechgym.training.batched_obs import BatchedObservationBuilder

    ctx = example("chen-micali-2016")
    # the reserve sells good 0 to player 0 at 5; every announcement is empty (REV 0 < 5)
    mech = BestBelief(reserve=Offer((1, 0, 0), (5, 0, 0)))
    spec = EnvSpec(ctx.n, ctx.m, ctx.value_cap, mech.default_price_cap(ctx.n, ctx.value_cap))
    empty = BBAnnouncement(0, Offer((0, 0, 0), (0, 0, 0)))
    s = mech.start(ctx)
    s = step_decision(mech, s, mech.node(s), dict.fromkeys(range(ctx.n), empty))
    s = mech.chance(s, 1)  # tails
    # nobody announced anything, so only the reserve can ask player 0
    assert mech.node(s).players == (0,)
    assert mech.pending_offer(s, 0) == PendingOffer(1, 5)
    assert mech.pending_offer(s, 1) is None
    enc = make_encoding("raw", "best_belief", mech, spec, None)
    builder = ObservationBuilder(enc, (0,), AuctionContext, "symlog", True)
    value = float(ctx.values[0][1])
    want = np.array([1.0, *symlog(np.array([value, 5.0, value - 5.0]))], dtype=np.float32)
    np.testing.assert_allclose(builder.build(ctx, s, 0)[-4:], want)

    rules = batched_rules(mech, spec)
    batch = ContextBatch.from_contexts([ctx] * 64)
    rng = np.random.default_rng(0)
    state = rules.reset(batch, rng)
    acts = np.stack([mech.encode(mech.start(ctx), 0, empty, spec, rules.layout)] * ctx.n)
    state = rules.step(batch, state, np.broadcast_to(acts, (64, *acts.shape)).copy(), rng)
    tails = state.data["coin"] == 1
    assert tails.any() and (~tails).any()
    obs = BatchedObservationBuilder(builder, rules).build(batch, state, 0)
    np.testing.assert_allclose(obs[tails, -4:], np.broadcast_to(want, (int(tails.sum()), 4)))
    assert not obs[~tails, -4:].any()
