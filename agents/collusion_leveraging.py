"""Scripted play of M4 (collusion leveraging, seed 002), of the second-price bundle auction A'
and of their mixture M'; predictions and documented deviations.

M4, predicted (Lemmas 1–5 and the dominating strategies σ̂_C of their proofs):

* every member of an agent C (a shared-reward coalition, or an independent player) declares
  C_i = C (consistent, inside the true coalition: Lemma 1), S^i = BA^C (a welfare-maximising
  allocation among C's members, the paper's σ̂_C) and Ω^i = RK_C, the relevant knowledge of C
  on its pooled lower bounds (members priced at their true values, outsiders at K^C). So
  every member has REV(Ω^i) = HiddenV_C(Ω^i) = MKW_C, the top announcer in particular
  (Lemmas 4–5); announcing the same outcome also maximises every member's ε2-reward and is
  what σ̂_C announces for the top member j.
* an asker outside the star's agent answers YES iff TV_i(α^★_i) ≥ π^★_i (Lemma 2; strict,
  thanks to the ε2 discount); an asker inside the star's agent always says YES (Lemma 3).

A', predicted: an independent player bids max_S θ_i(S) on its favourite bundle (dominant, as
in a Vickrey auction); in a coalition only the member with the highest such value bids (the
lowest index on ties), the others abstain (bid 0 on the empty bundle), so the coalition
never raises its own price.

The mixture M' plays the predicted strategy of whichever branch the chance node drew.
"""

from __future__ import annotations

import math
import weakref
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import Offer, favourite_bundle
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.collusion_leveraging import (
    CLAnnouncement,
    CollusionLeveraging,
    acting_coalition_of,
    best_allocation,
    hidden_value,
    relevant_knowledge,
)
from mechgym.envs.mechanisms.second_price_bundle import BundleBid, Mixture, SecondPriceBundle
from mechgym.envs.solvers.packing import best_knowledge

from .base import MechanismAgents, PhasePolicy, RandomPolicy, register_agents
from .offers import MENU_FACTORS, ranked_bundles


def scale_prices(offer: Offer, factor: Fraction) -> Offer:
    """Scale every price of a reasonable outcome (down: floor, up: ceil), keeping the bundles."""
    rnd = math.floor if factor < 1 else math.ceil
    return Offer(offer.alloc, tuple(int(rnd(p * factor)) for p in offer.prices))


class _Knowledge:
    """Per-context memo of RK_C and BA^C (contexts are immutable)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._rk: dict[tuple[int, ...], Offer] = {}
        self._ba: dict[tuple[int, ...], tuple[int, ...]] = {}

    def rk(self, coalition: tuple[int, ...]) -> Offer:
        if coalition not in self._rk:
            self._rk[coalition] = relevant_knowledge(self.ctx, coalition)
        return self._rk[coalition]

    def ba(self, coalition: tuple[int, ...]) -> tuple[int, ...]:
        if coalition not in self._ba:
            self._ba[coalition] = best_allocation(self.ctx, coalition)
        return self._ba[coalition]


_KNOWLEDGE: weakref.WeakKeyDictionary[Any, _Knowledge] = weakref.WeakKeyDictionary()


def knowledge_of(ctx: Any) -> _Knowledge:
    """The shared memo of a context's RK_C and BA^C."""
    know = _KNOWLEDGE.get(ctx)
    if know is None:
        know = _KNOWLEDGE[ctx] = _Knowledge(ctx)
    return know


def predicted_announcement(
    know: _Knowledge, player: int, coalition: tuple[int, ...], factor: Any = 1
) -> CLAnnouncement:
    """Declare ``coalition``, announce S = BA^coalition and Ω = RK_coalition (prices scaled)."""
    offer = know.rk(coalition)
    if factor != 1:
        offer = scale_prices(offer, Fraction(factor))
    return CLAnnouncement(coalition, know.ba(coalition), offer)


def m4_answer(mech: Mechanism, ctx: Any, state: Any, player: int) -> bool:
    """Lemmas 2–3: YES inside the star's agent, else YES iff TV_i(α^★_i) ≥ π^★_i (the
    pending offer)."""
    from .collusion_leveraging_batched import predicted_answers

    # one rule for both paths: the batched answer on the exact state's batch of one
    rules = mech.rules(ctx.n, ctx.m)
    return bool(predicted_answers(rules, state.batch, state.state)[0, player])


class PredictedM4:
    """The predicted profile of M4 and its documented deviations.

    Parameters
    ----------
    ctx : AuctionContext
    factor : Fraction, default 1
        Scales the announced prices (underbidding / overbidding).
    answer : {"predicted", "yes", "no"}
    declare : {"coalition", "alone", "inconsistent"}
        ``"coalition"``: the predicted consistent declaration. ``"alone"``: every player
        declares itself alone and announces its own RK_{i}, BA^{i} (coalitions that do not
        coordinate). ``"inconsistent"``: as predicted, except that player 0 adds player 1 to
        its alleged coalition and player 1 declares itself alone (the consistency check then
        fines and aborts).
    """

    def __init__(
        self, ctx: Any, factor: Any = 1, answer: str = "predicted", declare: str = "coalition"
    ) -> None:
        self.ctx = ctx
        self.know = knowledge_of(ctx)
        self.factor = factor
        self.answer = answer
        self.declare = declare

    def announce(self, ctx: Any, player: int) -> CLAnnouncement:
        if self.declare == "alone":
            return predicted_announcement(self.know, player, (player,), self.factor)
        coalition = acting_coalition_of(ctx, player)
        if self.declare == "inconsistent":
            if player == 1:
                return predicted_announcement(self.know, player, (1,), self.factor)
            if player == 0:
                ann = predicted_announcement(self.know, player, coalition, self.factor)
                return CLAnnouncement(tuple(sorted({*coalition, 1})), ann.alloc, ann.offer)
        return predicted_announcement(self.know, player, coalition, self.factor)

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase == "announce":
            return self.announce(ctx, player)
        if self.answer == "yes":
            return True
        if self.answer == "no":
            return False
        return m4_answer(mech, ctx, state, player)


# -- A' and the mixture ------------------------------------------------------------------------


def _abstain() -> BundleBid:
    return BundleBid(0, 0)


class PredictedSecondPrice:
    """Predicted play of A' (truthful favourite bid, coalitions let only their top member bid)
    and of the mixture M' (the revenue branch's predicted play).

    Parameters
    ----------
    ctx : AuctionContext
    factor : Fraction, default 1
        Scales the bid value (down: floor, up: ceil).
    collude : bool, default True
        Whether coalition members other than the top one abstain.
    revenue : dict, optional
        Keyword arguments for the revenue branch's predicted policy.
    """

    def __init__(
        self, ctx: Any, factor: Any = 1, collude: bool = True, revenue: dict[str, Any] | None = None
    ) -> None:
        self.ctx = ctx
        self.factor = Fraction(factor)
        self.collude = collude
        self.revenue_kwargs = revenue or {}
        self._revenue: dict[type, Any] = {}

    def bid(self, ctx: Any, player: int) -> BundleBid:
        values = ctx.values
        if self.collude:
            coalition = acting_coalition_of(ctx, player)
            top = max(coalition, key=lambda j: (int(values[j].max()), -j))
            if top != player:
                return _abstain()
        v = int(values[player].max())
        rnd = math.floor if self.factor < 1 else math.ceil
        return BundleBid(int(rnd(v * self.factor)), favourite_bundle(values[player]))

    def revenue_policy(self, mech: Mechanism) -> Any:
        pol = self._revenue.get(type(mech))
        if pol is None:
            pol = revenue_policy_for(mech, self.ctx, **self.revenue_kwargs)
            self._revenue[type(mech)] = pol
        return pol

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        if isinstance(mech, Mixture):
            inner_mech, inner = mech.branch(state)
            if not isinstance(inner_mech, SecondPriceBundle):
                return self.revenue_policy(inner_mech).act(inner_mech, ctx, inner, player)
            mech, state = inner_mech, inner
        return self.bid(ctx, player)


def revenue_policy_for(mech: Mechanism, ctx: Any, **kwargs: Any) -> Any:
    """The predicted policy of a mixture's revenue branch."""
    if isinstance(mech, CollusionLeveraging):
        return PredictedM4(ctx, **kwargs)
    from mechgym.envs.mechanisms.knowledge_benchmark import KnowledgeBenchmark

    if isinstance(mech, KnowledgeBenchmark):
        from .knowledge_benchmark import PredictedM3

        return PredictedM3(ctx, **kwargs)
    from .best_belief import PredictedSeed000

    return PredictedSeed000(ctx, **kwargs)


# -- menus and bounds --------------------------------------------------------------------------


def m4_menu_size(phase: str, spec: EnvSpec) -> int:
    """Announce: 2 declarations × 7 price factors; respond: NO, YES."""
    return 2 * len(MENU_FACTORS) if phase == "announce" else 2


def m4_menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions from the agent's (pooled) private knowledge: declare the true coalition
    (announce RK_C, BA^C) or declare oneself alone (RK_{i}, BA^{i}), × the announced prices
    scaled by a factor; NO/YES when asked."""
    node = mech.node(state)
    if node.phase == "respond":
        return [("NO", False), ("YES", True)]
    know = knowledge_of(ctx)
    out = []
    for label, coalition in (("coalition", acting_coalition_of(ctx, player)), ("alone", (player,))):
        for f in MENU_FACTORS:
            out.append(
                (f"declare={label} offer*{f}", predicted_announcement(know, player, coalition, f))
            )
    return out


def m4_bound(mech: Mechanism, ctx: Any, state: Any, player: int, action: Any) -> tuple[int, int]:
    """Lemma 4: HiddenV_C(Ω^i) ≥ MKW_C (binding for C's top announcer; the predicted play
    meets it for every member, all announcing RK_C)."""
    coalition = acting_coalition_of(ctx, player)
    return hidden_value(ctx, coalition, action.offer), best_knowledge(ctx, coalition).value


@lru_cache(maxsize=256)
def _ranked(values_bytes: bytes, size: int) -> tuple[int, ...]:
    return tuple(ranked_bundles(np.frombuffer(values_bytes, dtype=np.int64)[:size]))


def sp_menu_size(phase: str, spec: EnvSpec) -> int:
    """Bid: 2 bundles × 7 value factors (factor 0 = abstain); the mixture's revenue phases as M4."""
    if phase == "bid":
        return 2 * len(MENU_FACTORS)
    return m4_menu_size(phase, spec)


def sp_menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """A': (favourite or runner-up bundle) × (own top value scaled; factor 0 abstains, the
    predicted bid of a non-top coalition member). Mixture: the drawn branch's menu."""
    if isinstance(mech, Mixture):
        inner_mech, inner = mech.branch(state)
        if not isinstance(inner_mech, SecondPriceBundle):
            return _revenue_menu(inner_mech)(inner_mech, ctx, inner, player)
    values = np.ascontiguousarray(ctx.values[player], dtype=np.int64)
    ranked = _ranked(values.tobytes(), len(values))
    top = int(values.max())
    out = []
    for r in (0, 1):
        for f in MENU_FACTORS:
            if f == 0:
                out.append((f"abstain#{r}", _abstain()))
            else:
                rnd = math.floor if f < 1 else math.ceil
                out.append(
                    (
                        f"bid=top*{f} S=rank{r}",
                        BundleBid(int(rnd(top * f)), ranked[min(r, len(ranked) - 1)]),
                    )
                )
    return out


def _revenue_menu(mech: Mechanism) -> Any:
    if isinstance(mech, CollusionLeveraging):
        return m4_menu
    from mechgym.envs.mechanisms.best_belief import BestBelief

    if isinstance(mech, BestBelief):
        from . import best_belief

        return best_belief.menu
    from . import knowledge_benchmark

    return knowledge_benchmark.menu


def sp_bound(mech: Mechanism, ctx: Any, state: Any, player: int, action: Any) -> tuple[Any, Any]:
    """The revenue branch's bound (only the mixture's announce phase has one)."""
    inner_mech, inner = mech.branch(state)
    if isinstance(inner_mech, CollusionLeveraging):
        return m4_bound(inner_mech, ctx, inner, player, action)
    from mechgym.envs.mechanisms.best_belief import BestBelief

    if isinstance(inner_mech, BestBelief):
        from .best_belief import bb_bound

        return bb_bound(inner_mech, ctx, inner, player, action)
    from . import knowledge_benchmark

    return knowledge_benchmark.bound(inner_mech, ctx, inner, player, action)


def _spec_of(ctx: Any) -> EnvSpec:
    cap = ctx.value_cap
    return EnvSpec(ctx.n, ctx.m, cap, cap)


M4_DEVIATIONS = {
    "inconsistent": lambda ctx, rng: PredictedM4(ctx, declare="inconsistent"),
    "alone": lambda ctx, rng: PredictedM4(ctx, declare="alone"),
    "underbid": lambda ctx, rng: PredictedM4(ctx, factor=MENU_FACTORS[1]),
    "overbid": lambda ctx, rng: PredictedM4(ctx, factor=MENU_FACTORS[5]),
    "always_yes": lambda ctx, rng: PredictedM4(ctx, answer="yes"),
    "always_no": lambda ctx, rng: PredictedM4(ctx, answer="no"),
    "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
    "random_answers": lambda ctx, rng: PhasePolicy(
        PredictedM4(ctx), {"respond": RandomPolicy(rng, _spec_of(ctx))}
    ),
}

SP_DEVIATIONS = {
    "no_collusion": lambda ctx, rng: PredictedSecondPrice(ctx, collude=False),
    "underbid": lambda ctx, rng: PredictedSecondPrice(
        ctx, factor=MENU_FACTORS[1], revenue={"factor": MENU_FACTORS[1]}
    ),
    "overbid": lambda ctx, rng: PredictedSecondPrice(
        ctx, factor=MENU_FACTORS[5], revenue={"factor": MENU_FACTORS[5]}
    ),
    "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
}

register_agents(
    "collusion_leveraging",
    MechanismAgents(
        predicted=PredictedM4,
        deviations=M4_DEVIATIONS,
        menu=m4_menu,
        menu_size=m4_menu_size,
        bound_phases={"announce": "HiddenV_C(Omega^i) >= MKW_C"},
        bound=m4_bound,
    ),
)

register_agents(
    "second_price_bundle",
    MechanismAgents(
        predicted=PredictedSecondPrice,
        deviations=SP_DEVIATIONS,
        menu=sp_menu,
        menu_size=sp_menu_size,
        bound_phases={"announce": "revenue branch of the mixture: as its mechanism"},
        bound=sp_bound,
    ),
)
