"""The scripted answers of M5, M6 and the naive market foils read the question on the table
from the mechanism (``Mechanism.pending_offer``, ``BatchedRules.pending_offers``), not from
the state: at every question of random play the predicted answer is the dominant answer to
the offer the mechanism states, and moving that offer's price (the state untouched) moves
the answer with it, on the exact and on the batched path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# importing the agent modules registers their agents
import mechgym.agents.budget_balanced_market
import mechgym.agents.foils
import mechgym.agents.perfect_revenue  # noqa: F401
import numpy as np
import pytest
from batched_support import batched_policy, context_batch, rules_for, walk_exact
from mechgym.agents.base import AGENTS
from mechgym.envs.engine.batched import (
    BatchedRules,
    BatchState,
    ContextBatch,
    batched_rules,
    rollout,
    sample_actions,
)
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism, PendingOffer
from mechgym.envs.mechanisms.budget_balanced_market import BudgetBalancedMarket
from mechgym.envs.mechanisms.foils import NaiveMarket2, NaiveMarket3, NaiveMarket4
from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue
from mechgym.envs.model.states import StatesGenerator

#: independent players: every answer is the player's own take-it-or-leave-it rule
MARKET = "market:n=3,m=2,k=3,coalitions=independent"
BIG = 10**6

CASES: dict[str, tuple[Callable[[], Mechanism], str]] = {
    "perfect_revenue": (PerfectRevenue, "states"),
    "budget_balanced_market": (BudgetBalancedMarket, MARKET),
    "naive_market_2": (NaiveMarket2, MARKET),
    "naive_market_3": (NaiveMarket3, MARKET),
    "naive_market_4": (NaiveMarket4, MARKET),
}


def _setup(case: str, B: int, seed: int) -> tuple[BatchedRules, ContextBatch]:
    make, source = CASES[case]
    mech = make()
    if source == "states":
        gen = StatesGenerator(3, 3, 3)
        rng = np.random.default_rng(seed)
        ctx = ContextBatch.from_contexts([gen.sample(rng) for _ in range(B)])
        return batched_rules(mech, EnvSpec(3, 3, 3, mech.default_price_cap(3, 3))), ctx
    return rules_for(mech, source), context_batch(source, B, seed)


def _gain(ctx: Any, player: int, item: int) -> int:
    """What ``player`` gains from the offered item, before its price."""
    if ctx.kind == "states":
        return int(ctx.types[player, item])
    return int(ctx.values[player, item]) - int(ctx.endowed_value(player))


def _batched_gain(ctx: ContextBatch, item: np.ndarray) -> np.ndarray:
    got = np.take_along_axis(ctx.values, item[:, :, None], axis=2)[:, :, 0]
    if ctx.kind == "states":
        return got
    assert ctx.endowment is not None
    return got - np.take_along_axis(ctx.values, ctx.endowment[:, :, None], axis=2)[:, :, 0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_exact_answers_are_to_the_mechanisms_offer(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, batch = _setup(case, 60, seed=3)
    ro = rollout(rules, batch, np.random.default_rng(4))
    mech = rules.mech
    asked = 0

    def visit(t: int, s: Any, node: Decision, ctx: Any) -> None:
        nonlocal asked
        pol = AGENTS[case].predicted(ctx)
        for p in node.players:
            q = mech.pending_offer(s, p)
            if q is None:
                continue
            asked += 1
            assert pol.act(mech, ctx, s, p) is (_gain(ctx, p, q.item) >= q.price), (t, p)
            # the mechanism states its questions once (the rules' pending_offers, which its
            # exact face's pending_offer reads): move the price in both statements
            exact_rules = mech.rules(ctx.n, ctx.m)
            asked_now, item_now, price_now = exact_rules.pending_offers(s.state)
            for shift, want in ((BIG, False), (-BIG, True)):
                moved = PendingOffer(q.item, q.price + shift)
                price = price_now.copy()
                price[0, p] += shift
                stated = (asked_now, item_now, price)
                monkeypatch.setattr(mech, "pending_offer", lambda s, p, moved=moved: moved)
                monkeypatch.setattr(exact_rules, "pending_offers", lambda st, q=stated: q)
                assert pol.act(mech, ctx, s, p) is want, (t, p, shift)
                monkeypatch.undo()

    for b in range(batch.B):
        walk_exact(rules, ro, b, visit)
    assert asked > 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_batched_answers_are_to_the_rules_offers(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, ctx = _setup(case, 300, seed=5)
    pol = batched_policy(case, "predicted")
    players = list(range(rules.spec.n))
    i_answer = rules.layout.index["answer"]
    rng = np.random.default_rng(9)
    seen = 0

    def policy(state: BatchState, masks: np.ndarray) -> np.ndarray:
        nonlocal seen
        asked, item, price = rules.pending_offers(state)
        if asked.any():
            seen += int(asked.sum())
            yes = pol.act(rules, ctx, state, players, rng)[:, :, i_answer].astype(bool)
            want = _batched_gain(ctx, item) >= price
            np.testing.assert_array_equal(yes[asked], want[asked])
            for shift, answer in ((BIG, False), (-BIG, True)):
                moved = (asked, item, price + shift)
                monkeypatch.setattr(rules, "pending_offers", lambda state, moved=moved: moved)
                yes = pol.act(rules, ctx, state, players, rng)[:, :, i_answer].astype(bool)
                monkeypatch.undo()
                assert (yes[asked] == answer).all(), shift
        return sample_actions(rules.layout, masks, rng)

    rollout(rules, ctx, rng, policy=policy)
    assert seen > 0
