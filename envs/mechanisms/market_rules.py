"""Rules shared by the market mechanisms (M6 and the Naive markets of seed 004) over a batch.

Reductions over a short last axis, the market codec (owners of goods), the terminal outcome
kept in ``state.data['out_*']`` (prices in the rules' money), batch checks and fast action
checks. Every function takes arrays with a leading batch axis and loops at most over players
or goods.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    check_actions,
)
from mechgym.envs.engine.errors import ContextError, OutOfSpaceError
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout

# -- reductions over a short last axis ---------------------------------------------------------
# numpy's reductions along a short last axis cost per row; a loop over the few columns
# (players, goods) runs whole-batch column operations instead.


def row_all(x: np.ndarray) -> np.ndarray:
    """``x.all(axis=-1)`` for a short last axis."""
    out = x[..., 0].copy()
    for j in range(1, x.shape[-1]):
        out &= x[..., j]
    return out


def row_any(x: np.ndarray) -> np.ndarray:
    """``x.any(axis=-1)`` for a short last axis (False when it is empty)."""
    out = np.zeros(x.shape[:-1], dtype=bool)
    for j in range(x.shape[-1]):
        out |= x[..., j]
    return out


def row_sum(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=-1)`` (int64; exact amounts stay exact) for a short last axis."""
    if x.dtype == object:
        return x.sum(axis=-1)
    out = np.zeros(x.shape[:-1], dtype=np.int64)
    for j in range(x.shape[-1]):
        out += x[..., j]
    return out


def row_or(x: np.ndarray) -> np.ndarray:
    """``np.bitwise_or.reduce(x, axis=-1)`` for a short last axis."""
    out = np.zeros(x.shape[:-1], dtype=np.int64)
    for j in range(x.shape[-1]):
        out |= x[..., j]
    return out


# -- market codec ------------------------------------------------------------------------------


def decode_owners(vecs: np.ndarray, layout: ActionLayout, n: int, m: int) -> np.ndarray:
    """Bundles ``(..., n)`` int64 from the ``owner_g`` fields of actions ``(..., L)``
    (0 = destroyed, ``j + 1`` = player ``j``)."""
    alloc = np.zeros((*vecs.shape[:-1], n), dtype=np.int64)
    players = np.arange(1, n + 1)
    for g in range(m):
        owner = vecs[..., layout.index[f"owner_{g}"]]
        alloc |= (owner[..., None] == players).astype(np.int64) << g
    return alloc


def encode_owners(alloc: np.ndarray, out: np.ndarray, layout: ActionLayout, m: int) -> None:
    """Write bundles ``alloc`` ``(..., n)`` (pairwise disjoint) into the ``owner_g`` fields of
    ``out`` ``(..., L)`` in place."""
    n = alloc.shape[-1]
    players = np.arange(1, n + 1)
    for g in range(m):
        out[..., layout.index[f"owner_{g}"]] = (((alloc >> g) & 1) * players).sum(axis=-1)


def owners_of(alloc: np.ndarray, m: int) -> np.ndarray:
    """``(..., m)`` owner+1 of every good (0 = in no bundle), as the public views write it."""
    n = alloc.shape[-1]
    bits = (alloc[..., :, None] >> np.arange(m)) & 1  # (..., n, m)
    return (bits * np.arange(1, n + 1)[:, None]).sum(axis=-2)


def destroyed_of(alloc: np.ndarray, m: int) -> np.ndarray:
    """``(...,)`` bitmask of the goods in no bundle of ``alloc`` ``(..., n)``."""
    used = row_or(alloc)
    return ((1 << m) - 1) & ~used


def bundle_bits(bundle: np.ndarray, m: int) -> np.ndarray:
    """``(..., m)`` 0/1 membership of every good in ``bundle`` ``(...,)``."""
    out = np.empty((*bundle.shape, m), dtype=np.int64)
    for g in range(m):
        out[..., g] = (bundle >> g) & 1
    return out


def put_onehot(out: np.ndarray, pos: int, idx: np.ndarray, size: int) -> None:
    """Write the one-hot of ``idx`` ``(B,)`` into ``out[:, pos : pos + size]`` (all zeros
    where ``idx < 0``)."""
    for i in range(size):
        out[:, pos + i] = idx == i


def finish(
    d: dict[str, np.ndarray],
    where: np.ndarray,
    alloc: np.ndarray,
    prices: np.ndarray,
    destroyed: np.ndarray | int,
) -> None:
    """Write terminal outcomes into ``d['out_*']`` for the episodes ``where`` ``(B,)``."""
    if not where.any():
        return
    d["out_alloc"] = np.where(where[:, None], alloc, d["out_alloc"])
    d["out_prices"] = np.where(where[:, None], prices, d["out_prices"])
    d["out_destroyed"] = np.where(where, destroyed, d["out_destroyed"])


def _end(
    d: dict[str, np.ndarray],
    idx: np.ndarray,
    alloc: np.ndarray,
    prices: np.ndarray | float,
    destroyed: np.ndarray | int,
) -> None:
    """Write terminal outcomes into ``d['out_*']`` (arrays the new state owns) for the
    episodes ``idx``; ``prices`` may be one row or one number for all of them."""
    if idx.size:
        d["out_alloc"][idx] = alloc
        d["out_prices"][idx] = prices
        d["out_destroyed"][idx] = destroyed


def _rows(mask: np.ndarray) -> slice | np.ndarray | None:
    """The episodes of ``mask`` ``(B,)`` as an index: ``None`` if none, a full slice if all
    (every episode of a batch starts in the same phase; slices avoid fancy indexing)."""
    if mask.all():
        return slice(None)
    rows = np.flatnonzero(mask)
    return rows if rows.size else None


def check_batch(rules: BatchedRules, ctx: ContextBatch) -> None:
    """Refuse a batch of the wrong kind or size (:class:`ContextError`)."""
    if ctx.kind != "market":
        raise ContextError(
            "context", f"{rules.mech.title} needs 'market' contexts, got {ctx.kind!r}"
        )
    if (ctx.n, ctx.m) != (rules.spec.n, rules.spec.m):
        raise ContextError(
            "context",
            f"the batch has n={ctx.n}, m={ctx.m}; these rules were built for "
            f"n={rules.spec.n}, m={rules.spec.m}",
        )


class FieldRanges:
    """Legal values of every field as one range ``lo..hi−1`` per phase and player, read off
    mask tables in which each field allows a contiguous range (true of the market layouts):
    checking a batch of actions is then two comparisons instead of a mask lookup.

    Parameters
    ----------
    layout : ActionLayout
    rows : list of ndarray
        Per phase, ``(n, mask_size)`` masks of the acting players.
    """

    def __init__(self, layout: ActionLayout, rows: list[np.ndarray]) -> None:
        n, L = rows[0].shape[0], len(layout)
        # the last entry (index TERMINAL) allows only 0; nobody acts there anyway
        self.lo = np.zeros((len(rows) + 1, n, L), dtype=np.int64)
        self.hi = np.ones((len(rows) + 1, n, L), dtype=np.int64)
        for p, table in enumerate(rows):
            for i in range(n):
                for k in range(L):
                    legal = np.flatnonzero(table[i, layout.offsets[k] : layout.offsets[k + 1]])
                    if legal.size == 0 or legal[-1] - legal[0] + 1 != legal.size:
                        raise ValueError(f"field '{layout.names[k]}' is not a contiguous range")
                    self.lo[p, i, k], self.hi[p, i, k] = legal[0], legal[-1] + 1

    def legal(self, phase: np.ndarray, acting: np.ndarray, actions: np.ndarray) -> bool:
        """Whether every acting player's action ``(B, n, L)`` is within its ranges."""
        for p in range(self.lo.shape[0] - 1):
            rows = _rows(phase == p)
            if rows is not None:
                a = actions[rows]
                ok = (a >= self.lo[p]) & (a < self.hi[p])
                if not (ok | ~acting[rows][:, :, None]).all():
                    return False
        # nobody acts at an ended episode
        return not acting[phase == TERMINAL].any()


def checked(
    rules: BatchedRules, state: BatchState, actions: np.ndarray, ranges: FieldRanges
) -> np.ndarray:
    """``actions`` as int64, or a typed error from :func:`check_actions` if some acting
    player's action is out of its space or masked (``ranges`` answers the common case)."""
    actions = np.asarray(actions)
    if actions.dtype.kind not in "iu":
        if actions.dtype.kind == "b" or (
            actions.dtype.kind == "f" and np.all(actions == np.round(actions))
        ):
            actions = actions.astype(np.int64)
        else:
            raise OutOfSpaceError("batch", "-", f"actions must be integers, got {actions.dtype}")
    actions = actions.astype(np.int64, copy=False)
    if actions.shape == (*state.acting.shape, len(rules.layout)) and ranges.legal(
        state.phase, state.acting, actions
    ):
        return actions
    names = np.asarray([*rules.phases, "terminal"])
    check_actions(rules.layout, rules.masks(state), actions, state.acting, names[state.phase])
    return actions  # pragma: no cover - the ranges are the masks: check_actions raised


def fresh_outcome(B: int, n: int, money: Money = FLOAT) -> dict[str, np.ndarray]:
    """Zeroed ``out_*`` arrays (prices in ``money``)."""
    return {
        "out_alloc": np.zeros((B, n), dtype=np.int64),
        "out_prices": money.zeros((B, n)),
        "out_destroyed": np.zeros(B, dtype=np.int64),
    }


def read_outcome(d: dict[str, np.ndarray]) -> BatchOutcome:
    """The ``out_*`` arrays as a :class:`BatchOutcome`."""
    B = d["out_alloc"].shape[0]
    return BatchOutcome(
        d["out_alloc"], d["out_prices"], np.full(B, -1, dtype=np.int64), d["out_destroyed"]
    )
