"""Batched scripted play of M4 (collusion leveraging, seed 002): the batched twin of the M4
part of :mod:`mechgym.agents.collusion_leveraging`.

Predicted play: every member of an agent C (a shared-reward coalition, or an independent
player) declares C, announces S = BA^C and Ω = RK_C (the relevant knowledge on C's pooled
lower bounds); an asker outside ★'s agent answers YES iff θ_i(α^★_i) ≥ π^★_i, inside it
always YES. The deviations carry the exact agents' names; the menu has the exact menu's
entries in the same order.

RK_C and BA^C come from the batched canonical packing
(:func:`mechgym.envs.solvers.batched.pack_batch`), which returns the exact solvers'
allocation. The array layout cannot express a price above ``price_cap``: where an exact
scripted action would need one (overbidding near the top of the grid), the batched policy
writes the top of the grid instead, and the batched menu marks the entry invalid.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
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
from .offers import MENU_FACTORS

ANNOUNCE, RESPOND = 0, 1
MENU_ANNOUNCE = 2 * len(MENU_FACTORS)


def acting_members(ctx: ContextBatch, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
    """``(b, n, n)``: ``[b, i, j]`` iff ``j`` is in player ``i``'s agent (its coalition when
    rewards are shared, else ``{i}``), as :func:`acting_coalition_of`."""
    lab = ctx.coalition[idx]
    n = lab.shape[1]
    same = lab[:, :, None] == lab[:, None, :]
    return same & ctx.shared_reward[idx][:, None, None] | np.eye(n, dtype=bool)


def knowledge(
    ctx: ContextBatch, idx: np.ndarray, members: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RK_C and BA^C for every coalition ``members[b, r]`` (``(len(idx), k, n)`` bool) of
    episodes ``idx``: ``rk_alloc``, ``rk_prices``, ``ba`` ``(len(idx), k, n)``.

    RK_C packs C's pooled knowledge (members at their true values, outsiders at the best
    lower bound any member holds) and prices everyone at their weight there; BA^C packs the
    members' true values.
    """
    assert ctx.lower is not None
    values, lower = ctx.values[idx], ctx.lower[idx]
    b, n, size = values.shape
    k = members.shape[1]
    floor = np.iinfo(np.int64).min
    pooled = np.where(members[:, :, :, None, None], lower[:, None], floor).max(axis=2)
    K = np.where(members[:, :, :, None], values[:, None], pooled)  # (b, k, j, S)
    flat = K.reshape(b * k, n, size)
    _, rk = pack_batch(flat)
    prices = np.take_along_axis(flat, rk[:, :, None], axis=2)[:, :, 0]
    W = np.where(members[:, :, :, None], values[:, None], 0).reshape(b * k, n, size)
    _, ba = pack_batch(W)
    return rk.reshape(b, k, n), prices.reshape(b, k, n), ba.reshape(b, k, n)


def scale_prices(prices: np.ndarray, factor: Fraction) -> np.ndarray:
    """Batched :func:`mechgym.agents.collusion_leveraging.scale_prices`: every price times
    ``factor`` (down: floor, up: ceil), bundles kept."""
    f = Fraction(factor)
    a, b = f.numerator, f.denominator
    return (prices * a) // b if f < 1 else -((-prices * a) // b)


def _owners(alloc: np.ndarray, g: int) -> np.ndarray:
    """Owner field of good ``g`` (``j + 1``, 0 = nobody) for bundles ``(..., n)``."""
    return (((alloc >> g) & 1) * np.arange(1, alloc.shape[-1] + 1)).sum(axis=-1)


def write_announcements(
    rules: BatchedRules,
    ally: np.ndarray,
    salloc: np.ndarray,
    alloc: np.ndarray,
    prices: np.ndarray,
) -> np.ndarray:
    """Announcement arrays ``(..., L)`` from alleged coalitions ``ally``, allocations S,
    outcomes (``alloc``, ``prices``), all ``(..., n)``; prices beyond the grid are written at
    its top."""
    spec, ix = rules.spec, rules.layout.index
    out = np.zeros((*ally.shape[:-1], len(rules.layout)), dtype=np.int64)
    n = spec.n
    out[..., ix["ally_0"] : ix["ally_0"] + n] = ally
    for g in range(spec.m):
        out[..., ix[f"salloc_{g}"]] = _owners(salloc, g)
        out[..., ix[f"owner_{g}"]] = _owners(alloc, g)
    out[..., ix["price_0"] : ix["price_0"] + n] = np.minimum(prices, spec.price_cap)
    return out


def predicted_answers(rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
    """``(B, n)`` Lemmas 2–3: YES inside ★'s agent, else YES iff θ_i(α^★_i) ≥ π^★_i (the
    pending offer)."""
    d = state.data
    _, item, price = rules.pending_offers(state)
    value = offered_values(ctx, item)
    rows = np.arange(len(item))
    inside = acting_members(ctx)[rows, :, d["star"]]
    return inside | (value >= price)


class BatchedM4(AnnounceThenAnswer):
    """Predicted play of M4 over a batch and its deviations, as
    :class:`mechgym.agents.collusion_leveraging.PredictedM4`.

    Parameters
    ----------
    factor : Fraction, default 1
        Scales the announced prices.
    answer : {"predicted", "yes", "no"}
    declare : {"coalition", "alone", "inconsistent"}
        ``"alone"``: everyone declares itself alone and announces RK_{i}, BA^{i}.
        ``"inconsistent"``: as predicted, except that player 0 adds player 1 to its alleged
        coalition and player 1 declares itself alone.
    """

    def __init__(
        self, factor: Fraction = Fraction(1), answer: str = "predicted", declare: str = "coalition"
    ) -> None:
        self.factor = Fraction(factor)
        self.answer = answer
        self.declare = declare

    def announcements(self, rules: BatchedRules, ctx: ContextBatch, idx: np.ndarray) -> np.ndarray:
        """``(len(idx), n, L)`` announcements of every player of episodes ``idx``."""
        n = rules.spec.n
        eye = np.broadcast_to(np.eye(n, dtype=bool), (len(idx), n, n))
        members = eye if self.declare == "alone" else acting_members(ctx, idx).copy()
        if self.declare == "inconsistent":
            members[:, 1] = eye[:, 1]
        rk, prices, ba = knowledge(ctx, idx, members)
        if self.factor != 1:
            prices = scale_prices(prices, self.factor)
        ally = members.copy()
        if self.declare == "inconsistent":
            ally[:, 0, 1] = True
        return write_announcements(rules, ally, ba, rk, prices)

    def own_answers(self, rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        return predicted_answers(rules, ctx, state)


def menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.collusion_leveraging.m4_menu` over a batch.

    Returns ``(actions (B, 14, L), valid (B, 14))``: at ``announce`` the 14 entries (declare
    the agent or oneself alone, × the menu's price factors); at ``respond`` entries 0 and 1
    are NO and YES, the rest invalid. Entries are invalid where ``player`` does not act or
    where a price leaves the grid.
    """
    spec = rules.spec
    L, B, n = len(rules.layout), len(state.phase), spec.n
    acts = np.zeros((B, MENU_ANNOUNCE, L), dtype=np.int64)
    valid = np.zeros((B, MENU_ANNOUNCE), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == ANNOUNCE) & acting)
    if len(idx):
        j = 0
        for members in (
            acting_members(ctx, idx)[:, player],
            np.broadcast_to(np.arange(n) == player, (len(idx), n)),
        ):
            rk, base, ba = knowledge(ctx, idx, members[:, None, :])
            for f in MENU_FACTORS:
                prices = base[:, 0] if f == 1 else scale_prices(base[:, 0], f)
                acts[idx, j] = write_announcements(rules, members, ba[:, 0], rk[:, 0], prices)
                valid[idx, j] = (prices <= spec.price_cap).all(axis=1)
                j += 1
    resp = np.flatnonzero((state.phase == RESPOND) & acting)
    answer_entries(rules, acts, valid, resp)
    return acts, valid


register_batched_agents(
    "collusion_leveraging",
    BatchedAgents(
        predicted=BatchedM4(),
        deviations={
            "inconsistent": BatchedM4(declare="inconsistent"),
            "alone": BatchedM4(declare="alone"),
            "underbid": BatchedM4(factor=MENU_FACTORS[1]),
            "overbid": BatchedM4(factor=MENU_FACTORS[5]),
            "always_yes": BatchedM4(answer="yes"),
            "always_no": BatchedM4(answer="no"),
            "random": RandomBatched(),
            "random_answers": ByPhase(BatchedM4(), {"respond": RandomBatched()}),
        },
        menu=menu,
    ),
)
