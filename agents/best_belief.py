"""Scripted play of M1 (best-belief) and M2 (normal form): the predictions of seed 000 and
documented deviations.

Predicted (Lemmas 1–4): announce a favourite bundle (M1) or the true valuation (M2), and an
offer that is BB_i-optimal at the player's lower bounds; answer YES iff θ_i(α) ≥ π. Inside a
shared-reward coalition that contains the winner, a member always answers YES: a refusal
would charge the price to its own coalition's winner, while acceptance costs π − ε/n and
brings the bundle (values are ≥ 0), so YES is the coalition's strict best response.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import Offer, favourite_bundle
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.best_belief import BBAnnouncement, BestBelief
from mechgym.envs.mechanisms.normal_form import NormalAnnouncement
from mechgym.envs.solvers.packing import best_belief

from .base import MechanismAgents, PhasePolicy, RandomPolicy, register_agents
from .offers import MENU_FACTORS, ranked_bundles, scale_offer


def bb_offer(ctx: Any, i: int) -> Offer:
    """Player ``i``'s BB_i-optimal offer priced at its lower bounds."""
    b = best_belief(ctx, i)
    return Offer(tuple(b.alloc), tuple(b.prices))


class _ContextCache:
    """Per-context memo of each player's optimal offer (contexts are immutable)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._offers: dict[int, Offer] = {}

    def offer(self, i: int) -> Offer:
        if i not in self._offers:
            self._offers[i] = bb_offer(self.ctx, i)
        return self._offers[i]


def truthful_answer(mech: Mechanism, ctx: Any, state: Any, player: int) -> bool:
    """M1's answer: YES iff θ_i(α_i) ≥ π_i for the pending offer (the leading one: the
    winner's, or the seller's reserve), or always YES when the winner is in i's shared-reward
    coalition."""
    from .best_belief_batched import truthful_answers

    # one rule for both paths: the batched answer on the exact state's batch of one
    rules = mech.rules(ctx.n, ctx.m)
    return bool(truthful_answers(rules, state.batch, state.state)[0, player])


class PredictedSeed000:
    """The predicted profile of M1 and M2, optionally with announced prices scaled."""

    def __init__(self, ctx: Any, factor: Any = 1, answer: str = "truthful") -> None:
        self.ctx = ctx
        self.cache = _ContextCache(ctx)
        self.factor = factor
        self.answer = answer

    def offer(self, i: int) -> Offer:
        o = self.cache.offer(i)
        return o if self.factor == 1 else scale_offer(o, self.factor)

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase == "announce":
            if isinstance(mech, BestBelief):
                return BBAnnouncement(favourite_bundle(ctx.values[player]), self.offer(player))
            return NormalAnnouncement(tuple(int(x) for x in ctx.values[player]), self.offer(player))
        if self.answer == "yes":
            return True
        if self.answer == "no":
            return False
        return truthful_answer(mech, ctx, state, player)


def bb_bound(mech: Mechanism, ctx: Any, state: Any, player: int, action: Any) -> tuple[int, int]:
    """Lemmas 2 and 4: an undominated announcement has REV(ω^i) ≥ BB_i."""
    return action.offer.revenue, best_belief(ctx, player).value


def menu_size(phase: str, spec: EnvSpec) -> int:
    """Announce: 2 bundles/valuations × 7 price factors; respond: NO, YES."""
    return 2 * len(MENU_FACTORS) if phase == "announce" else 2


@lru_cache(maxsize=64)
def _ranked(values_bytes: bytes, size: int) -> tuple[int, ...]:
    return tuple(ranked_bundles(np.frombuffer(values_bytes, dtype=np.int64)[:size]))


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions: (favourite or runner-up bundle) × (optimal offer scaled by a factor);
    for M2 the first reports the true valuation and the second halves it."""
    node = mech.node(state)
    if node.phase == "respond":
        return [("NO", False), ("YES", True)]
    values = ctx.values[player]
    base = bb_offer(ctx, player)
    ranked = _ranked(values.tobytes(), len(values))
    out: list[tuple[str, Any]] = []
    for r in (0, 1):
        for f in MENU_FACTORS:
            offer = scale_offer(base, f)
            if isinstance(mech, BestBelief):
                out.append((f"xi=rank{r} offer*{f}", BBAnnouncement(ranked[r], offer)))
            else:
                report = (
                    tuple(int(x) for x in values) if r == 0 else tuple(int(x) // 2 for x in values)
                )
                out.append(
                    (
                        f"report={'truth' if r == 0 else 'half'} offer*{f}",
                        NormalAnnouncement(report, offer),
                    )
                )
    return out


def _deviations() -> dict[str, Any]:
    return {
        "overbid": lambda ctx, rng: PredictedSeed000(ctx, factor=MENU_FACTORS[5]),
        "underbid": lambda ctx, rng: PredictedSeed000(ctx, factor=MENU_FACTORS[1]),
        "always_yes": lambda ctx, rng: PredictedSeed000(ctx, answer="yes"),
        "always_no": lambda ctx, rng: PredictedSeed000(ctx, answer="no"),
        "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
        "random_answers": lambda ctx, rng: PhasePolicy(
            PredictedSeed000(ctx), {"respond": RandomPolicy(rng, _spec_of(ctx))}
        ),
    }


def _spec_of(ctx: Any) -> EnvSpec:
    cap = ctx.value_cap
    return EnvSpec(ctx.n, ctx.m, cap, cap)


for _name in ("best_belief", "normal_form"):
    register_agents(
        _name,
        MechanismAgents(
            predicted=PredictedSeed000,
            deviations=_deviations(),
            menu=menu,
            menu_size=menu_size,
            bound_phases={"announce": "BB_i"},
            bound=bb_bound,
        ),
    )
