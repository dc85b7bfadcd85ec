"""Scripted play of M1 (best-belief) and M2 (normal form), written once: the predictions of
seed 000 and documented deviations.

Predicted (Lemmas 1–4): announce a favourite bundle (M1) or the true valuation (M2), and an
offer that is BB_i-optimal at the player's lower bounds; answer YES iff θ_i(α) ≥ π. Inside a
shared-reward coalition that contains the winner, a member always answers YES: a refusal
would charge the price to its own coalition's winner, while acceptance costs π − ε/n and
brings the bundle (values are ≥ 0), so YES is the coalition's strict best response.

Each rule of play is written once over a batch of contexts (the offers, their scaling, the
ranked bundles, the answers, the menu's entries); the exact agents play the row of their
context as a batch of one (:func:`~mechgym.envs.engine.episode.batch_of_one`), the batched
agents write the rows into the env's array layout. The layout cannot express a price above
``price_cap`` (nor a report above ``value_cap``): where a scripted action would need one
(overbidding a price near the top of the grid), the batched policy writes the top of the
grid instead, and the batched menu marks the entry invalid.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.engine.episode import EVERY, batch_of_one
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.best_belief import BBAnnouncement, BestBelief
from mechgym.envs.mechanisms.normal_form import NormalAnnouncement
from mechgym.envs.mechanisms.offer_rules import encode_offers, offer_on_grid
from mechgym.envs.solvers.batched import best_belief_batch, pack_batch

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
from .offers import MENU_FACTORS, scale_amounts

ANNOUNCE, RESPOND = 0, 1


# -- the rules of play, over a batch ---------------------------------------------------------
def scale_offers(
    alloc: np.ndarray, prices: np.ndarray, factor: Fraction, min_price: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Every price times ``factor`` (:func:`~mechgym.agents.offers.scale_amounts`); entries
    below ``min_price`` are withdrawn. Any shape."""
    q = scale_amounts(prices, factor)
    keep = (alloc != 0) & (q >= min_price) & ((q > 0) | (min_price == 0)) & (Fraction(factor) > 0)
    return np.where(keep, alloc, 0), np.where(keep, q, 0)


def bb_offers(ctx: ContextBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every player's BB_i-optimal offer at its lower bounds for episodes ``idx``:
    ``alloc``, ``prices`` ``(len(idx), n, n)`` (announcer, player)."""
    assert ctx.lower is not None
    sub = ContextBatch(
        ctx.kind, ctx.values[idx], ctx.coalition[idx], ctx.shared_reward[idx], ctx.lower[idx]
    )
    bb = best_belief_batch(sub)
    return bb.alloc, bb.prices


def bb_offer_of(ctx: ContextBatch, idx: np.ndarray, player: int) -> tuple[np.ndarray, np.ndarray]:
    """``player``'s row of :func:`bb_offers` (its BB_i-optimal offer, ``(len(idx), n)``),
    solving only that player's packing."""
    assert ctx.lower is not None
    W = ctx.lower[idx, player].copy()
    W[:, player] = 0
    _, alloc = pack_batch(W)
    prices = np.take_along_axis(W, alloc[:, :, None], axis=2)[:, :, 0]
    return alloc, prices


def ranked(values: np.ndarray) -> np.ndarray:
    """Bundles by decreasing value along the last axis, lowest bitmask first on ties."""
    return np.argsort(-values, axis=-1, kind="stable")


def truthful_answers(rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
    """``(B, n)`` M1's answers: YES iff θ_i(α_i) ≥ π_i for the pending offer (the leading
    one), or YES when the winner (not the seller) is in the player's shared-reward coalition."""
    d = state.data
    _, item, price = rules.pending_offers(state)
    value = offered_values(ctx, item)
    rows = np.arange(len(item))
    ally = (ctx.coalition == ctx.coalition[rows, d["winner"]][:, None]) & (
        ctx.shared_reward & ~d["seller_leads"]
    )[:, None]
    return ally | (value >= price)


def menu_rows(
    ctx: ContextBatch, idx: np.ndarray, player: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The menu's announcements of ``player`` in episodes ``idx`` (uncapped): the offers
    ``alloc``, ``prices`` ``(N, F, n)`` per price factor, the favourite and runner-up bundles
    ``(N, 2)`` (M1) and the true and halved reports ``(N, 2, 2^m)`` (M2)."""
    base_alloc, base_prices = bb_offer_of(ctx, idx, player)
    N, F = len(idx), len(MENU_FACTORS)
    alloc = np.empty((N, F, ctx.n), dtype=np.int64)
    prices = np.empty_like(alloc)
    for j, f in enumerate(MENU_FACTORS):
        alloc[:, j], prices[:, j] = scale_offers(base_alloc, base_prices, f)
    values = ctx.values[idx, player]
    order = ranked(values)
    bundles = order[:, :2] if order.shape[1] > 1 else np.repeat(order[:, :1], 2, axis=1)
    reports = np.stack([values, values // 2], axis=1)
    return alloc, prices, bundles, reports


# -- the exact face ----------------------------------------------------------------------------
def bb_offer(ctx: Any, i: int) -> Offer:
    """Player ``i``'s BB_i-optimal offer priced at its lower bounds."""
    alloc, prices = bb_offer_of(batch_of_one(ctx), EVERY, i)
    return Offer(tuple(int(x) for x in alloc[0]), tuple(int(x) for x in prices[0]))


def truthful_answer(mech: Mechanism, ctx: Any, state: Any, player: int) -> bool:
    """M1's answer of ``player`` (:func:`truthful_answers` on the state's batch of one)."""
    rules = mech.rules(ctx.n, ctx.m)
    return bool(truthful_answers(rules, state.batch, state.state)[0, player])


class PredictedSeed000:
    """The predicted profile of M1 and M2, optionally with announced prices scaled."""

    def __init__(self, ctx: Any, factor: Any = 1, answer: str = "truthful") -> None:
        self.ctx = ctx
        self.factor = Fraction(factor)
        self.answer = answer
        self._offers: tuple[np.ndarray, np.ndarray] | None = None

    def offer(self, i: int) -> Offer:
        """Player ``i``'s announced offer (scaled by ``factor``)."""
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
            values = np.asarray(ctx.values[player])
            if isinstance(mech, BestBelief):
                return BBAnnouncement(int(ranked(values)[0]), self.offer(player))
            return NormalAnnouncement(tuple(int(x) for x in values), self.offer(player))
        if self.answer == "yes":
            return True
        if self.answer == "no":
            return False
        return truthful_answer(mech, ctx, state, player)


def bb_bound(mech: Mechanism, ctx: Any, state: Any, player: int, action: Any) -> tuple[int, int]:
    """Lemmas 2 and 4: an undominated announcement has REV(ω^i) ≥ BB_i."""
    return action.offer.revenue, bb_offer(ctx, player).revenue


def menu_size(phase: str, spec: EnvSpec) -> int:
    """Announce: 2 bundles/valuations × 7 price factors; respond: NO, YES."""
    return 2 * len(MENU_FACTORS) if phase == "announce" else 2


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions: (favourite or runner-up bundle) × (optimal offer scaled by a factor);
    for M2 the first reports the true valuation and the second halves it."""
    node = mech.node(state)
    if node.phase == "respond":
        return [("NO", False), ("YES", True)]
    alloc, prices, bundles, reports = (x[0] for x in menu_rows(batch_of_one(ctx), EVERY, player))
    out: list[tuple[str, Any]] = []
    for r in (0, 1):
        for j, f in enumerate(MENU_FACTORS):
            offer = Offer(tuple(int(x) for x in alloc[j]), tuple(int(x) for x in prices[j]))
            if isinstance(mech, BestBelief):
                out.append((f"xi=rank{r} offer*{f}", BBAnnouncement(int(bundles[r]), offer)))
            else:
                label = f"report={'truth' if r == 0 else 'half'} offer*{f}"
                out.append((label, NormalAnnouncement(tuple(int(x) for x in reports[r]), offer)))
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


# -- the batched face --------------------------------------------------------------------------
def write_announcements(
    rules: BatchedRules,
    ctx: ContextBatch,
    idx: np.ndarray,
    alloc: np.ndarray,
    prices: np.ndarray,
    report_half: bool | np.ndarray = False,
    rank: int = 0,
) -> np.ndarray:
    """Announcement arrays ``(len(idx), n, L)`` for episodes ``idx`` with the offers ``alloc``,
    ``prices`` ``(len(idx), n, n)``: M1 adds the bundle of the given value ``rank`` (0 =
    favourite), M2 the true valuation (halved with ``report_half``). Prices beyond the grid
    are written at its top."""
    spec, layout = rules.spec, rules.layout
    values = ctx.values[idx]
    out = np.zeros((len(idx), spec.n, len(layout)), dtype=np.int64)
    encode_offers(alloc, np.minimum(prices, spec.price_cap), out, spec, layout)
    if isinstance(rules.mech, BestBelief):
        out[:, :, layout.index["bundle"]] = ranked(values)[:, :, rank]
    else:
        report = values // 2 if report_half else values
        first = layout.index["value_1"]
        out[:, :, first : first + values.shape[2] - 1] = np.minimum(
            report[:, :, 1:], spec.value_cap
        )
    return out


class BatchedSeed000(AnnounceThenAnswer):
    """Predicted play of M1 and M2 over a batch, optionally with announced prices scaled
    (``factor``) and answers fixed (``answer`` = ``"truthful"``, ``"yes"`` or ``"no"``)."""

    def __init__(self, factor: Fraction = Fraction(1), answer: str = "truthful") -> None:
        self.factor = Fraction(factor)
        self.answer = answer

    def announcements(self, rules: BatchedRules, ctx: ContextBatch, idx: np.ndarray) -> np.ndarray:
        alloc, prices = bb_offers(ctx, idx)
        if self.factor != 1:
            alloc, prices = scale_offers(alloc, prices, self.factor)
        return write_announcements(rules, ctx, idx, alloc, prices)

    def own_answers(self, rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        return truthful_answers(rules, ctx, state)


MENU_ANNOUNCE = 2 * len(MENU_FACTORS)


def batched_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`menu` over a batch: ``(actions (B, 14, L), valid (B, 14))``; at ``respond``
    entries 0 and 1 are NO and YES, the rest invalid. Entries are invalid where ``player``
    does not act or where the entry's prices (or reports) leave the grid."""
    spec, layout = rules.spec, rules.layout
    B, L = len(state.phase), len(layout)
    k = MENU_ANNOUNCE
    acts = np.zeros((B, k, L), dtype=np.int64)
    valid = np.zeros((B, k), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == ANNOUNCE) & acting)
    if len(idx):
        alloc, prices, bundles, reports = menu_rows(ctx, idx, player)
        N, F = len(idx), len(MENU_FACTORS)
        # the offers of the price factors are encoded once and shared by both ranks/reports
        offers = np.zeros((N, F, L), dtype=np.int64)
        encode_offers(alloc, np.minimum(prices, spec.price_cap), offers, spec, layout)
        on_grid = offer_on_grid(alloc, prices, spec)  # (N, F)
        ann = np.concatenate([offers, offers], axis=1)  # entries: rank/report 0, then 1
        ok = np.concatenate([on_grid, on_grid], axis=1)
        if isinstance(rules.mech, BestBelief):
            ann[:, :F, layout.index["bundle"]] = bundles[:, 0:1]
            ann[:, F:, layout.index["bundle"]] = bundles[:, 1:2]
        else:
            first = layout.index["value_1"]
            for r in (0, 1):
                report = reports[:, r]
                ann[:, r * F : (r + 1) * F, first : first + report.shape[1] - 1] = np.minimum(
                    report[:, None, 1:], spec.value_cap
                )
                ok[:, r * F : (r + 1) * F] &= (report <= spec.value_cap).all(axis=1)[:, None]
        acts[idx] = ann
        valid[idx] = ok
    if len(rules.phases) > 1:
        resp = np.flatnonzero((state.phase == RESPOND) & acting)
        answer_entries(rules, acts, valid, resp)
    return acts, valid


def _batched_agents() -> BatchedAgents:
    return BatchedAgents(
        predicted=BatchedSeed000(),
        deviations={
            "overbid": BatchedSeed000(factor=MENU_FACTORS[5]),
            "underbid": BatchedSeed000(factor=MENU_FACTORS[1]),
            "always_yes": BatchedSeed000(answer="yes"),
            "always_no": BatchedSeed000(answer="no"),
            "random": RandomBatched(),
            "random_answers": ByPhase(BatchedSeed000(), {"respond": RandomBatched()}),
        },
        menu=batched_menu,
    )


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
    register_batched_agents(_name, _batched_agents())
