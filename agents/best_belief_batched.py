"""Batched scripted play of M1 (best-belief) and M2 (normal form): the batched twin of
:mod:`mechgym.agents.best_belief`.

Predicted play: announce a favourite bundle (M1) or the true valuation (M2) and the
BB_i-optimal offer at the player's lower bounds; answer YES iff θ_i(α) ≥ π, or always YES
when the winner is in the player's shared-reward coalition. The deviations carry the exact
agents' names; the menu has the exact menu's entries in the same order.

The array layout cannot express a price above ``price_cap`` (nor a report above
``value_cap``). Where an exact scripted action would need one (overbidding a price near the
top of the grid), the batched policy writes the top of the grid instead, and the batched
menu marks the entry invalid.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.mechanisms.best_belief import BestBelief
from mechgym.envs.mechanisms.offer_rules import encode_offers, offer_on_grid
from mechgym.envs.solvers.batched import best_belief_batch, pack_batch

from .batched import (
    AnnounceThenAnswer,
    BatchedAgents,
    ByPhase,
    RandomBatched,
    answer_entries,
    offered_values,
    register_batched_agents,
)
from .offers import MENU_FACTORS

ANNOUNCE, RESPOND = 0, 1


def scale_offers(
    alloc: np.ndarray, prices: np.ndarray, factor: Fraction, min_price: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Batched :func:`mechgym.agents.offers.scale_offer`: every price times ``factor``
    (down: floor, up: ceil); entries below ``min_price`` are withdrawn. Any shape."""
    f = Fraction(factor)
    a, b = f.numerator, f.denominator
    q = (prices * a) // b if f < 1 else -((-prices * a) // b)
    keep = (alloc != 0) & (q >= min_price) & ((q > 0) | (min_price == 0)) & (f > 0)
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
        order = np.argsort(-values, axis=2, kind="stable")  # lowest bundle first on ties
        out[:, :, layout.index["bundle"]] = order[:, :, rank]
    else:
        report = values // 2 if report_half else values
        first = layout.index["value_1"]
        out[:, :, first : first + values.shape[2] - 1] = np.minimum(
            report[:, :, 1:], spec.value_cap
        )
    return out


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


class BatchedSeed000(AnnounceThenAnswer):
    """Predicted play of M1 and M2 over a batch, optionally with announced prices scaled
    (``factor``) and answers fixed (``answer`` = ``"truthful"``, ``"yes"`` or ``"no"``)."""

    own_rule = "truthful"

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


def menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.best_belief.menu` over a batch.

    Returns ``(actions (B, 14, L), valid (B, 14))``: at ``announce`` the 14 entries (value
    rank 0/1, or true/halved report, × the menu's price factors); at ``respond`` entries 0
    and 1 are NO and YES, the rest invalid. Entries are invalid where ``player`` does not act
    or where the entry's prices leave the grid.
    """
    spec, layout = rules.spec, rules.layout
    B, L = len(state.phase), len(layout)
    k = MENU_ANNOUNCE
    acts = np.zeros((B, k, L), dtype=np.int64)
    valid = np.zeros((B, k), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == ANNOUNCE) & acting)
    if len(idx):
        # only this player's announcements: its own BB_i offer, its own rows of the layout;
        # the offers of the price factors are encoded once and shared by both ranks/reports
        base_alloc, base_prices = bb_offer_of(ctx, idx, player)
        N, F = len(idx), len(MENU_FACTORS)
        alloc = np.empty((N, F, spec.n), dtype=np.int64)
        prices = np.empty_like(alloc)
        for j, f in enumerate(MENU_FACTORS):
            alloc[:, j], prices[:, j] = scale_offers(base_alloc, base_prices, f)
        offers = np.zeros((N, F, L), dtype=np.int64)
        encode_offers(alloc, np.minimum(prices, spec.price_cap), offers, spec, layout)
        on_grid = offer_on_grid(alloc, prices, spec)  # (N, F)
        ann = np.concatenate([offers, offers], axis=1)  # entries: rank/report 0, then 1
        ok = np.concatenate([on_grid, on_grid], axis=1)
        values = ctx.values[idx, player]
        if isinstance(rules.mech, BestBelief):
            order = np.argsort(-values, axis=1, kind="stable")  # lowest bundle first on ties
            ann[:, :F, layout.index["bundle"]] = order[:, 0:1]
            ann[:, F:, layout.index["bundle"]] = order[:, 1:2]
        else:
            first = layout.index["value_1"]
            for r in (0, 1):
                report = values // (2 if r else 1)
                ann[:, r * F : (r + 1) * F, first : first + values.shape[1] - 1] = np.minimum(
                    report[:, None, 1:], spec.value_cap
                )
                ok[:, r * F : (r + 1) * F] &= (report <= spec.value_cap).all(axis=1)[:, None]
        acts[idx] = ann
        valid[idx] = ok
    if len(rules.phases) > 1:
        resp = np.flatnonzero((state.phase == RESPOND) & acting)
        answer_entries(rules, acts, valid, resp)
    return acts, valid


def _agents() -> BatchedAgents:
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
        menu=menu,
    )


for _name in ("best_belief", "normal_form"):
    register_batched_agents(_name, _agents())
