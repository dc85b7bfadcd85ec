"""Scripted play of M3 (knowledge benchmark, seed 001): the predictions of Claims 1–5 and
documented deviations.

Predicted:

* Stage 1 (Claims 4–5): an independent player announces S_i = a favourite bundle (lowest
  bitmask on ties) and a MIEW_i-optimal canonical outcome priced at its lower bounds, so
  REV(Ω_i) = MIEW_i(K_i) (the witness of the benchmark at its lower bounds). The claims say
  nothing about collusive players' announcements; they announce the same way from their own
  knowledge.
* Stage 2 (Claims 1–3): YES iff TV_i(α^★_i) ≥ π^★_i (ties YES). A member of the star's
  shared-reward coalition always answers YES: a NO fines its own star by π ≥ 1 on both coin
  sides, while a YES costs the coalition nothing on tails (the price is paid to ★) and brings
  the bundle, so YES is the coalition's strict best response whenever π ≥ 1 or TV_i(α) > 0.

Strictness: with the footnote-4 variant (``eps > 0``) every predicted answer of an agent
outside the star's coalition is a strict best response; with ``eps = 0`` the answer at
TV_i(α) = π is a tie (the paper resolves it as YES).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import Offer, favourite_bundle
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.knowledge_benchmark import KBAnnouncement
from mechgym.envs.solvers.packing import best_belief

from .base import MechanismAgents, PhasePolicy, RandomPolicy, register_agents
from .offers import MENU_FACTORS, ranked_bundles, scale_offer


def miew_offer(ctx: Any, i: int) -> Offer:
    """Player ``i``'s MIEW_i-optimal canonical outcome, priced at its lower bounds."""
    b = best_belief(ctx, i)
    return Offer(tuple(b.alloc), tuple(b.prices))


def star_coalition_answer(mech: Mechanism, ctx: Any, state: Any, player: int) -> bool:
    """The predicted answer of ``player`` to its pending offer (from Ω_★) in M3 (see the
    module docstring)."""
    from .knowledge_benchmark_batched import predicted_answers

    # one rule for both paths: the batched answer on the exact state's batch of one
    rules = mech.rules(ctx.n, ctx.m)
    return bool(predicted_answers(rules, state.batch, state.state)[0, player])


class PredictedM3:
    """The predicted profile of M3, optionally with announced prices scaled or answers fixed.

    Parameters
    ----------
    ctx : AuctionContext
    factor : Fraction, default 1
        Scales every announced price (down: floor, up: ceil; entries below 1 are withdrawn).
    answer : {"predicted", "yes", "no"}
    """

    def __init__(self, ctx: Any, factor: Any = 1, answer: str = "predicted") -> None:
        self.ctx = ctx
        self.factor = factor
        self.answer = answer
        self._offers: dict[int, Offer] = {}

    def offer(self, i: int) -> Offer:
        if i not in self._offers:
            o = miew_offer(self.ctx, i)
            self._offers[i] = o if self.factor == 1 else scale_offer(o, self.factor)
        return self._offers[i]

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase == "announce":
            return KBAnnouncement(favourite_bundle(ctx.values[player]), self.offer(player))
        if self.answer == "yes":
            return True
        if self.answer == "no":
            return False
        return star_coalition_answer(mech, ctx, state, player)


def menu_size(phase: str, spec: EnvSpec) -> int:
    """Announce: 2 bundles × 7 price factors; respond: NO, YES."""
    return 2 * len(MENU_FACTORS) if phase == "announce" else 2


@lru_cache(maxsize=256)
def _ranked(values_bytes: bytes, size: int) -> tuple[int, ...]:
    return tuple(ranked_bundles(np.frombuffer(values_bytes, dtype=np.int64)[:size]))


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions from private information: (favourite or runner-up bundle) × (the
    MIEW_i-optimal outcome with prices scaled by a factor); NO/YES when asked."""
    node = mech.node(state)
    if node.phase == "respond":
        return [("NO", False), ("YES", True)]
    values = np.ascontiguousarray(ctx.values[player], dtype=np.int64)
    ranked = _ranked(values.tobytes(), len(values))
    base = miew_offer(ctx, player)
    return [
        (
            f"S=rank{r} offer*{f}",
            KBAnnouncement(ranked[min(r, len(ranked) - 1)], scale_offer(base, f)),
        )
        for r in (0, 1)
        for f in MENU_FACTORS
    ]


def bound(mech: Mechanism, ctx: Any, state: Any, player: int, action: Any) -> tuple[int, int]:
    """Claim 4: an independent player announces REV(Ω_i) ≥ MIEW_i(K_i); nothing is required
    of collusive players (required = 0)."""
    required = best_belief(ctx, player).value if len(ctx.coalition_of(player)) == 1 else 0
    return action.offer.revenue, required


def _spec_of(ctx: Any) -> EnvSpec:
    cap = ctx.value_cap
    return EnvSpec(ctx.n, ctx.m, cap, cap)


DEVIATIONS = {
    "overbid": lambda ctx, rng: PredictedM3(ctx, factor=MENU_FACTORS[5]),
    "underbid": lambda ctx, rng: PredictedM3(ctx, factor=MENU_FACTORS[1]),
    "always_yes": lambda ctx, rng: PredictedM3(ctx, answer="yes"),
    "always_no": lambda ctx, rng: PredictedM3(ctx, answer="no"),
    "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
    "random_answers": lambda ctx, rng: PhasePolicy(
        PredictedM3(ctx), {"respond": RandomPolicy(rng, _spec_of(ctx))}
    ),
}

AGENTS = MechanismAgents(
    predicted=PredictedM3,
    deviations=DEVIATIONS,
    menu=menu,
    menu_size=menu_size,
    bound_phases={"announce": "REV(Omega_i) >= MIEW_i (independent players)"},
    bound=bound,
)

register_agents("knowledge_benchmark", AGENTS)
