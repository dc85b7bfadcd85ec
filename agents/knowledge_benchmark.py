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

Written once, as M1's play (:mod:`mechgym.agents.best_belief`): each rule over a batch of
contexts; the exact agents play their context's row of a batch of one, the batched agents
write the rows into the layout (prices beyond the grid at its top; such menu entries
invalid).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.engine.episode import EVERY, batch_of_one
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.knowledge_benchmark import KBAnnouncement
from mechgym.envs.mechanisms.offer_rules import encode_offers

from .base import MechanismAgents, PhasePolicy, RandomPolicy, register_agents
from .batched import (
    AnnounceThenAnswer,
    BatchedAgents,
    ByPhase,
    RandomBatched,
    answer_entries,
    offered_values,
    register_batched_agents,
)
from .best_belief import bb_offer_of, bb_offers, ranked, scale_offers
from .offers import MENU_FACTORS

ANNOUNCE, RESPOND = 0, 1
MENU_ANNOUNCE = 2 * len(MENU_FACTORS)


# -- the rules of play, over a batch ---------------------------------------------------------
def predicted_answers(rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
    """``(B, n)`` Claims 1–3: YES iff TV_i(α^★_i) ≥ π^★_i (the pending offer), always YES in
    ★'s shared-reward coalition."""
    d = state.data
    _, item, price = rules.pending_offers(state)
    value = offered_values(ctx, item)
    rows = np.arange(len(item))
    ally = (ctx.coalition == ctx.coalition[rows, d["star"]][:, None]) & ctx.shared_reward[:, None]
    return ally | (value >= price)


def menu_rows(
    ctx: ContextBatch, idx: np.ndarray, player: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The menu's announcements of ``player`` in episodes ``idx`` (uncapped): the MIEW_i
    offers ``alloc``, ``prices`` ``(N, F, n)`` per price factor and the favourite and
    runner-up bundles ``(N, 2)``."""
    base_alloc, base_prices = bb_offer_of(ctx, idx, player)  # MIEW_i's packing is BB_i's
    N, F = len(idx), len(MENU_FACTORS)
    alloc = np.empty((N, F, ctx.n), dtype=np.int64)
    prices = np.empty_like(alloc)
    for j, f in enumerate(MENU_FACTORS):
        alloc[:, j], prices[:, j] = scale_offers(base_alloc, base_prices, f)
    return alloc, prices, ranked(ctx.values[idx, player])[:, :2]


# -- the exact face ----------------------------------------------------------------------------
def miew_offer(ctx: Any, i: int) -> Offer:
    """Player ``i``'s MIEW_i-optimal canonical outcome, priced at its lower bounds."""
    alloc, prices = bb_offer_of(batch_of_one(ctx), EVERY, i)
    return Offer(tuple(int(x) for x in alloc[0]), tuple(int(x) for x in prices[0]))


def star_coalition_answer(mech: Mechanism, ctx: Any, state: Any, player: int) -> bool:
    """The predicted answer of ``player`` to its pending offer (from Ω_★) in M3
    (:func:`predicted_answers` on the state's batch of one)."""
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
        self.factor = Fraction(factor)
        self.answer = answer
        self._offers: tuple[np.ndarray, np.ndarray] | None = None

    def offer(self, i: int) -> Offer:
        """Player ``i``'s announced outcome (scaled by ``factor``)."""
        if self._offers is None:
            alloc, prices = bb_offers(batch_of_one(self.ctx), EVERY)
            if self.factor != 1:
                alloc, prices = scale_offers(alloc, prices, self.factor)
            self._offers = (alloc[0], prices[0])
        alloc, prices = self._offers
        return Offer(tuple(int(x) for x in alloc[i]), tuple(int(x) for x in prices[i]))

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase == "announce":
            favourite = int(ranked(np.asarray(ctx.values[player]))[0])
            return KBAnnouncement(favourite, self.offer(player))
        if self.answer == "yes":
            return True
        if self.answer == "no":
            return False
        return star_coalition_answer(mech, ctx, state, player)


def menu_size(phase: str, spec: EnvSpec) -> int:
    """Announce: 2 bundles × 7 price factors; respond: NO, YES."""
    return 2 * len(MENU_FACTORS) if phase == "announce" else 2


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions from private information: (favourite or runner-up bundle) × (the
    MIEW_i-optimal outcome with prices scaled by a factor); NO/YES when asked."""
    node = mech.node(state)
    if node.phase == "respond":
        return [("NO", False), ("YES", True)]
    alloc, prices, bundles = (x[0] for x in menu_rows(batch_of_one(ctx), EVERY, player))
    out: list[tuple[str, Any]] = []
    for r in (0, 1):
        for j, f in enumerate(MENU_FACTORS):
            offer = Offer(tuple(int(x) for x in alloc[j]), tuple(int(x) for x in prices[j]))
            out.append((f"S=rank{r} offer*{f}", KBAnnouncement(int(bundles[r]), offer)))
    return out


def bound(mech: Mechanism, ctx: Any, state: Any, player: int, action: Any) -> tuple[int, int]:
    """Claim 4: an independent player announces REV(Ω_i) ≥ MIEW_i(K_i); nothing is required
    of collusive players (required = 0)."""
    required = miew_offer(ctx, player).revenue if len(ctx.coalition_of(player)) == 1 else 0
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


# -- the batched face --------------------------------------------------------------------------
def on_grid(rules: BatchedRules, alloc: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """Whether offers ``(..., n)`` fit M3's price grid ``min_price..price_cap``."""
    lo = rules.mech.min_price  # type: ignore[attr-defined]
    ok = (alloc == 0) | ((prices >= lo) & (prices <= rules.spec.price_cap))
    return ok.all(axis=-1)


def write_announcements(
    rules: BatchedRules, bundle: np.ndarray, alloc: np.ndarray, prices: np.ndarray
) -> np.ndarray:
    """Announcement arrays ``(..., L)`` from bundles ``(...)`` and offers ``(..., n)``; prices
    beyond the grid are written at its top."""
    spec, layout = rules.spec, rules.layout
    out = np.zeros((*bundle.shape, len(layout)), dtype=np.int64)
    lo = rules.mech.min_price  # type: ignore[attr-defined]
    encode_offers(alloc, np.minimum(prices, spec.price_cap), out, spec, layout, lo)
    out[..., layout.index["bundle"]] = bundle
    return out


class BatchedM3(AnnounceThenAnswer):
    """Predicted play of M3 over a batch, optionally with announced prices scaled
    (``factor``) and answers fixed (``answer`` = ``"predicted"``, ``"yes"`` or ``"no"``)."""

    def __init__(self, factor: Fraction = Fraction(1), answer: str = "predicted") -> None:
        self.factor = Fraction(factor)
        self.answer = answer

    def announcements(self, rules: BatchedRules, ctx: ContextBatch, idx: np.ndarray) -> np.ndarray:
        alloc, prices = bb_offers(ctx, idx)
        if self.factor != 1:
            alloc, prices = scale_offers(alloc, prices, self.factor)
        favourite = ranked(ctx.values[idx])[:, :, 0]
        return write_announcements(rules, favourite, alloc, prices)

    def own_answers(self, rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        return predicted_answers(rules, ctx, state)


def batched_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`menu` over a batch: ``(actions (B, 14, L), valid (B, 14))``; at ``respond``
    entries 0 and 1 are NO and YES, the rest invalid. Entries are invalid where ``player``
    does not act or where the entry's prices leave the grid."""
    L = len(rules.layout)
    B = len(state.phase)
    acts = np.zeros((B, MENU_ANNOUNCE, L), dtype=np.int64)
    valid = np.zeros((B, MENU_ANNOUNCE), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == ANNOUNCE) & acting)
    if len(idx):
        alloc, prices, bundles = menu_rows(ctx, idx, player)
        F = len(MENU_FACTORS)
        for r in (0, 1):
            for j in range(F):
                acts[idx, r * F + j] = write_announcements(
                    rules, bundles[:, r], alloc[:, j], prices[:, j]
                )
                valid[idx, r * F + j] = on_grid(rules, alloc[:, j], prices[:, j])
    resp = np.flatnonzero((state.phase == RESPOND) & acting)
    answer_entries(rules, acts, valid, resp)
    return acts, valid


register_agents("knowledge_benchmark", AGENTS)
register_batched_agents(
    "knowledge_benchmark",
    BatchedAgents(
        predicted=BatchedM3(),
        deviations={
            "overbid": BatchedM3(factor=MENU_FACTORS[5]),
            "underbid": BatchedM3(factor=MENU_FACTORS[1]),
            "always_yes": BatchedM3(answer="yes"),
            "always_no": BatchedM3(answer="no"),
            "random": RandomBatched(),
            "random_answers": ByPhase(BatchedM3(), {"respond": RandomBatched()}),
        },
        menu=batched_menu,
    ),
)
