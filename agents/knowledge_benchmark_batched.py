"""Batched scripted play of M3 (knowledge benchmark, seed 001): the batched twin of
:mod:`mechgym.agents.knowledge_benchmark`.

Predicted play: announce a favourite bundle (lowest bitmask on ties) and the MIEW_i-optimal
canonical outcome at the player's lower bounds; answer YES iff θ_i(α^★_i) ≥ π^★_i, or always
YES when ★ is in the player's shared-reward coalition. The deviations carry the exact
agents' names; the menu has the exact menu's entries in the same order.

The array layout cannot express a price above ``price_cap``. Where an exact scripted action
would need one (overbidding near the top of the grid), the batched policy writes the top of
the grid instead, and the batched menu marks the entry invalid.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.mechanisms.offer_rules import encode_offers
from mechgym.envs.solvers.batched import pack_batch

from .batched import (
    AnnounceThenAnswer,
    BatchedAgents,
    ByPhase,
    RandomBatched,
    answer_entries,
    offered_values,
    register_batched_agents,
)
from .best_belief import bb_offers, scale_offers
from .offers import MENU_FACTORS

ANNOUNCE, RESPOND = 0, 1
MENU_ANNOUNCE = 2 * len(MENU_FACTORS)


def ranked(values: np.ndarray) -> np.ndarray:
    """Bundles by decreasing own value, lowest bitmask first on ties (last axis)."""
    return np.argsort(-values, axis=-1, kind="stable")


def on_grid(rules: BatchedRules, alloc: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """Whether offers ``(..., n)`` fit M3's price grid ``min_price..price_cap``."""
    lo = rules.mech.min_price  # type: ignore[attr-defined]
    ok = (alloc == 0) | ((prices >= lo) & (prices <= rules.spec.price_cap))
    return ok.all(axis=-1)


def miew_offer(ctx: ContextBatch, idx: np.ndarray, player: int) -> tuple[np.ndarray, np.ndarray]:
    """``player``'s MIEW_i-optimal canonical outcome at its lower bounds in episodes ``idx``
    (as :func:`mechgym.agents.knowledge_benchmark.miew_offer`): ``alloc``, ``prices``
    ``(len(idx), n)``. Packs only this player's beliefs, not every player's."""
    assert ctx.lower is not None
    W = ctx.lower[idx, player].copy()
    W[:, player] = 0
    _, alloc = pack_batch(W)
    return alloc, np.take_along_axis(W, alloc[:, :, None], axis=2)[:, :, 0]


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


def predicted_answers(rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
    """``(B, n)`` Claims 1–3: YES iff TV_i(α^★_i) ≥ π^★_i (the pending offer), always YES in
    ★'s shared-reward coalition."""
    d = state.data
    _, item, price = rules.pending_offers(state)
    value = offered_values(ctx, item)
    rows = np.arange(len(item))
    ally = (ctx.coalition == ctx.coalition[rows, d["star"]][:, None]) & ctx.shared_reward[:, None]
    return ally | (value >= price)


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


def menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.knowledge_benchmark.menu` over a batch.

    Returns ``(actions (B, 14, L), valid (B, 14))``: at ``announce`` the 14 entries
    (favourite or runner-up bundle × the MIEW_i offer scaled by the menu's factors); at
    ``respond`` entries 0 and 1 are NO and YES, the rest invalid. Entries are invalid where
    ``player`` does not act or where the entry's prices leave the grid.
    """
    L = len(rules.layout)
    B = len(state.phase)
    acts = np.zeros((B, MENU_ANNOUNCE, L), dtype=np.int64)
    valid = np.zeros((B, MENU_ANNOUNCE), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == ANNOUNCE) & acting)
    if len(idx):
        base_alloc, base_prices = miew_offer(ctx, idx, player)
        order = ranked(ctx.values[idx, player])
        j = 0
        for r in (0, 1):
            for f in MENU_FACTORS:
                alloc, prices = scale_offers(base_alloc, base_prices, f)
                acts[idx, j] = write_announcements(rules, order[:, r], alloc, prices)
                valid[idx, j] = on_grid(rules, alloc, prices)
                j += 1
    resp = np.flatnonzero((state.phase == RESPOND) & acting)
    answer_entries(rules, acts, valid, resp)
    return acts, valid


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
        menu=menu,
    ),
)
