"""Weighted set packing and the benchmarks built on it, over a batch of instances.

:func:`pack_batch` solves ``B`` packings ``W`` ``(B, k, 2^m)`` at once and returns exactly what
:func:`mechgym.envs.solvers.packing.pack_dp` returns per row: the optimum and the *canonical*
optimal allocation (among optimal admissible allocations, the lexicographically smallest
owner vector, an unallocated good counting as owner ``k``; see the packing module).

Small instances, at most :data:`BATCH_ENUM_MAX_CASES` owner vectors ``(k+1)^m``, are solved by
enumerating every owner vector for the whole batch with numpy: owner vectors come in
lexicographic order, so the first optimal admissible one of each row is the canonical
optimum. Larger instances fall back to the exact solver one episode at a time (the subset DP
of :func:`~mechgym.envs.solvers.packing.pack_dp`), which returns the same canonical optimum.

The benchmarks (:func:`msw_batch`, :func:`best_belief_batch`, :func:`miew_batch`,
:func:`best_knowledge_batch`, :func:`mkw_batch`) are the packing module's ``msw``,
``best_belief``/``best_beliefs``, ``miew``, ``best_knowledge`` and ``mkw`` over a
:class:`~mechgym.envs.engine.batched.ContextBatch`, witnesses included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ContextError
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.solvers.packing import (
    _NEG,
    _SUM_LIMIT,
    _owner_bundles,
    pack_dp,
    pack_without_each,
)

__all__ = [
    "BATCH_ENUM_MAX_CASES",
    "BatchBenchmark",
    "bb_batch",
    "best_belief_batch",
    "best_knowledge_batch",
    "miew_batch",
    "mkw_batch",
    "msw_batch",
    "pack_batch",
    "pack_without_each_batch",
]

BATCH_ENUM_MAX_CASES = 4096
"""Instances with at most this many owner vectors ``(k+1)^m`` are enumerated for the whole
batch (e.g. k = 3, m ≤ 6; k = 7, m ≤ 4); larger ones are solved per episode by the exact DP."""

_CHUNK_ELEMENTS = 1 << 22  # episodes × owner vectors × rows per enumeration chunk (~32 MB)


@dataclass(frozen=True)
class BatchBenchmark:
    """Benchmark values with witness outcomes, over a batch.

    Attributes
    ----------
    value : ndarray, int64
        The benchmark per episode and per index (player or coalition), e.g. ``(B, n)``.
    alloc : ndarray, int64
        Witness bundle per player, one more trailing axis of size ``n``.
    prices : ndarray, int64
        Witness take-it-or-leave-it prices, the shape of ``alloc``.
    """

    value: np.ndarray
    alloc: np.ndarray
    prices: np.ndarray


# -- input ---------------------------------------------------------------------------------


def _check_batch(W: Any) -> np.ndarray:
    """Validate a batch of weight matrices and return it as int64 ``(B, k, 2^m)``."""
    try:
        arr = np.asarray(W)
    except Exception as exc:  # ragged lists and the like
        raise ContextError("W", f"cannot be read as an integer array ({exc})") from None
    if arr.ndim != 3:
        raise ContextError("W", f"must be a 3-d array (batch x rows x bundles), got {arr.ndim}-d")
    size = arr.shape[2]
    m = size.bit_length() - 1
    if size < 1 or 1 << m != size:
        raise ContextError("W", f"needs 2**m columns (one per bundle), got {size}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ContextError("W", "weights must be integers")
        if arr.size and np.abs(arr).max() >= 2.0**63:
            raise ContextError("W", "weights must fit in int64")
    elif arr.dtype.kind not in "iu":
        raise ContextError("W", f"must hold integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() >= 1 << 63:
        raise ContextError("W", "weights must fit in int64")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and np.any(arr[:, :, 0] != 0):
        b, j = (int(x) for x in np.argwhere(arr[:, :, 0] != 0)[0])
        raise ContextError(
            f"W[{b}][{j}]", f"the empty bundle must weigh 0, got {int(arr[b, j, 0])}"
        )
    return arr


def _enum_rows(W: np.ndarray) -> np.ndarray:
    """Which episodes of a checked batch the enumeration may solve (sums stay in int64)."""
    B, k, size = W.shape
    m = size.bit_length() - 1
    if k == 0 or m == 0 or (k + 1) ** m > BATCH_ENUM_MAX_CASES:
        return np.zeros(B, dtype=bool)
    # The sum of the rows' best positive weights bounds every admissible total; summed in
    # float (no overflow) with a margin for rounding. Episodes near the limit go to the
    # exact solver, which decides them exactly (or refuses them, as pack_dp does).
    positive = np.maximum(W.max(axis=2), 0).astype(np.float64).sum(axis=1)
    return positive < _SUM_LIMIT * (1.0 - 1e-9)


def _solve(W: np.ndarray, without_each: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimum, canonical allocation and (if asked) the optimum without each row."""
    B, k, size = W.shape
    value = np.zeros(B, dtype=np.int64)
    alloc = np.zeros((B, k), dtype=np.int64)
    without = np.zeros((B, k), dtype=np.int64)
    if B == 0 or k == 0:
        return value, alloc, without
    fast = _enum_rows(W)
    if fast.any():
        owners = _owner_bundles(k, size.bit_length() - 1)  # (C, k), lexicographic
        empty = owners == 0
        flat_idx = np.arange(k) * size + owners  # (C, k): column of W[b].ravel()
        idx = np.flatnonzero(fast)
        step = max(1, _CHUNK_ELEMENTS // (owners.shape[0] * k))
        for lo in range(0, len(idx), step):
            rows = idx[lo : lo + step]
            gains = W[rows].reshape(len(rows), k * size)[:, flat_idx]  # (b, C, k)
            ok = np.all(empty[None] | (gains > 0), axis=2)
            total = np.where(ok, gains.sum(axis=2), _NEG)
            v = np.argmax(total, axis=1)  # first maximum: the smallest owner vector
            value[rows] = total[np.arange(len(rows)), v]
            alloc[rows] = owners[v]
            if without_each:
                without[rows] = np.where(empty[None], total[:, :, None], _NEG).max(axis=1)
    for b in np.flatnonzero(~fast):
        if without_each:
            best, rest = pack_without_each(W[b])
            without[b] = rest
        else:
            best = pack_dp(W[b])
        value[b] = best.value
        alloc[b] = best.alloc
    return value, alloc, without


# -- packing -------------------------------------------------------------------------------


def pack_batch(W: Any) -> tuple[np.ndarray, np.ndarray]:
    """Canonical weighted set packing of every instance of a batch.

    Parameters
    ----------
    W : array-like of int, shape (B, k, 2**m)
        Row weights per bundle for each episode, ``W[:, :, 0] == 0``; entries may be
        negative.

    Returns
    -------
    value : ndarray, int64, shape (B,)
        The optimum of each episode.
    alloc : ndarray, int64, shape (B, k)
        The canonical optimal allocation (as :func:`~mechgym.envs.solvers.packing.pack_dp`).

    Raises
    ------
    ContextError
        If ``W`` is not a batch of weight matrices.
    SolverError
        If an episode's weights are too large for exact int64 arithmetic (as ``pack_dp``).
    """
    value, alloc, _ = _solve(_check_batch(W), without_each=False)
    return value, alloc


def pack_without_each_batch(W: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pack_batch` and, per row ``j``, the optimum with row ``j`` given nothing.

    Parameters
    ----------
    W : array-like of int, shape (B, k, 2**m)

    Returns
    -------
    value : ndarray, int64, shape (B,)
    alloc : ndarray, int64, shape (B, k)
        As :func:`pack_batch`.
    without : ndarray, int64, shape (B, k)
        ``without[b, j]``: the optimum of episode ``b`` with row ``j`` given nothing (what
        VCG's Clarke payments need), as :func:`~mechgym.envs.solvers.packing.pack_without_each`.
    """
    return _solve(_check_batch(W), without_each=True)


# -- benchmarks ----------------------------------------------------------------------------


def _auction(ctx: ContextBatch, what: str) -> np.ndarray:
    if ctx.kind != "auction" or ctx.lower is None:
        raise ContextError("context", f"{what} needs auction contexts (beliefs), got {ctx.kind!r}")
    return ctx.lower


def msw_batch(ctx: ContextBatch) -> tuple[np.ndarray, np.ndarray]:
    """Maximum social welfare per episode and a welfare-maximising allocation.

    Auctions and markets: the canonical packing of ``values`` (as ``msw`` and ``market_msw``;
    a market's unallocated goods are destroyed). States: ``max_ω Σ_i θ_i(ω)`` and the first
    state reaching it, returned as ``(B, 1)``.

    Returns
    -------
    value : ndarray, int64, shape (B,)
    alloc : ndarray, int64, shape (B, n) (states: (B, 1), the chosen state)
    """
    if ctx.kind == "states":
        total = ctx.values.sum(axis=1)  # (B, K)
        s = np.argmax(total, axis=1)
        return total[np.arange(ctx.B), s].astype(np.int64), s[:, None].astype(np.int64)
    return pack_batch(ctx.values)


def best_belief_batch(ctx: ContextBatch) -> BatchBenchmark:
    """BB_i for every player of every episode, with witnesses (as ``best_beliefs``).

    Returns
    -------
    BatchBenchmark
        ``value`` ``(B, n)`` = BB_i; ``alloc`` and ``prices`` ``(B, n, n)``: player ``i``'s
        witness gives ``i`` nothing and offers each other player its bundle at ``i``'s lower
        bound (0 where it gets ∅).
    """
    lower = _auction(ctx, "BB_i")
    B, n, size = ctx.B, ctx.n, lower.shape[-1]
    W = lower.copy()
    W[:, np.arange(n), np.arange(n)] = 0
    flat = W.reshape(B * n, n, size)
    value, alloc = pack_batch(flat)
    prices = np.take_along_axis(flat, alloc[:, :, None], axis=2)[:, :, 0]
    return BatchBenchmark(value.reshape(B, n), alloc.reshape(B, n, n), prices.reshape(B, n, n))


def bb_batch(ctx: ContextBatch) -> np.ndarray:
    """``(B,)`` the best-belief benchmark BB = max_i BB_i."""
    return best_belief_batch(ctx).value.max(axis=1)


def _independent(ctx: ContextBatch) -> np.ndarray:
    """``(B, n)`` whether each player is in a singleton coalition."""
    lab = ctx.coalition
    return (lab[:, :, None] == lab[:, None, :]).sum(axis=2) == 1


def miew_batch(ctx: ContextBatch, bb: np.ndarray | None = None) -> np.ndarray:
    """``(B,)`` MIEW: max of BB_i over independent players, 0 where there are none.

    ``bb`` may pass the ``(B, n)`` values of :func:`best_belief_batch` already computed.
    """
    if bb is None:
        bb = best_belief_batch(ctx).value
    return np.where(_independent(ctx), bb, 0).max(axis=1, initial=0)


def best_knowledge_batch(ctx: ContextBatch) -> BatchBenchmark:
    """MKW_C of the coalition of every player, with witnesses (as ``best_knowledge``).

    Returns
    -------
    BatchBenchmark
        ``value`` ``(B, n)``: entry ``[b, i]`` is MKW_C for ``C`` the coalition of player
        ``i`` in episode ``b`` (members of one coalition share the entry). ``alloc`` and
        ``prices`` ``(B, n, n)``: the witness RK_C; outsiders priced at the pooled
        knowledge ``K^C_j(A_j)``, members at 0.
    """
    lower = _auction(ctx, "MKW_C")
    B, n, size = ctx.B, ctx.n, lower.shape[-1]
    lab = ctx.coalition
    same = lab[:, :, None] == lab[:, None, :]  # (B, n, n): [b, i, j] j in C(i)
    # K[b, i, j, S] = max over members q of C(i) of lower[b, q, j, S] (i is its own member)
    K = lower.copy()
    for q in range(n):
        K = np.where(same[:, :, q, None, None], np.maximum(K, lower[:, q, None]), K)
    K = np.where(same[:, :, :, None], ctx.values[:, None], K)
    flat = K.reshape(B * n, n, size)
    value, alloc = pack_batch(flat)
    weight = np.take_along_axis(flat, alloc[:, :, None], axis=2)[:, :, 0].reshape(B, n, n)
    prices = np.where(same, 0, weight)
    return BatchBenchmark(value.reshape(B, n), alloc.reshape(B, n, n), prices)


def mkw_batch(ctx: ContextBatch) -> np.ndarray:
    """``(B,)`` MKW: max of MKW_C over the coalitions of each episode."""
    return best_knowledge_batch(ctx).value.max(axis=1)
