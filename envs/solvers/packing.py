"""Exact weighted set packing and the benchmarks built on it (MSW, BB_i, MIEW, MKW_C).

Every benchmark is a weighted set packing: given a weight matrix ``W`` of shape ``(k, 2**m)``
(row ``j`` = what giving bundle ``S`` to row ``j`` is worth, ``W[:, 0] == 0``), maximise
``Σ_j W[j, A_j]`` over pairwise disjoint bundles ``A_j``; goods may stay unallocated.

Canonical optimum
-----------------
An allocation is *admissible* if every non-empty bundle it hands out has positive weight
(``A_j != 0`` implies ``W[j, A_j] > 0``). Dropping a bundle of weight ≤ 0 never lowers the
value, so an optimal admissible allocation always exists; rows whose weights are all ≤ 0
receive ∅. Among the optimal admissible allocations, :func:`pack_dp` and :func:`pack_brute`
return the one whose *owner vector* ``(owner of good 0, owner of good 1, ...)`` is
lexicographically smallest, an unallocated good counting as owner ``k`` (after every row).
That allocation is unique. :func:`pack_milp` returns an optimal admissible allocation, not
necessarily the canonical one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ContextError, ParameterError, SolverError

DP_MAX_GOODS = 12
"""``max_packing(method="auto")`` uses the subset DP up to this many goods, the MILP above."""

_DP_HARD_MAX_GOODS = 14  # 3**14 pairs already take ~150 MB of index arrays
_BRUTE_MAX_CASES = 5_000_000
_NEG = -(1 << 62)  # weight of inadmissible bundles; far below any reachable sum
_SUM_LIMIT = 1 << 61  # keeps every DP sum, _NEG included, inside int64
_MILP_SUM_LIMIT = 1 << 52  # HiGHS works in doubles; sums above this are not exact
_KEY_LIMIT = 1 << 62


@dataclass(frozen=True)
class Packing:
    """An optimal weighted set packing.

    Attributes
    ----------
    value : int
        The exact optimum ``Σ_j W[j, alloc[j]]``.
    alloc : tuple[int, ...]
        Bundle bitmask per row of ``W``, pairwise disjoint.
    """

    value: int
    alloc: tuple[int, ...]


@dataclass(frozen=True)
class Benchmark:
    """A benchmark value with a witness outcome.

    Attributes
    ----------
    value : int
        The benchmark (BB_i, MKW_C, ...).
    alloc : tuple[int, ...]
        Bundle per player (``n`` entries), pairwise disjoint.
    prices : tuple[int, ...]
        Take-it-or-leave-it price per player: a positive integer where a priced player gets a
        bundle, 0 where it gets ∅. Members of the agent of MKW_C are priced 0 throughout.
    """

    value: int
    alloc: tuple[int, ...]
    prices: tuple[int, ...]


# -- input ---------------------------------------------------------------------------------


def _check_weights(W: Any) -> np.ndarray:
    """Validate a weight matrix and return it as a read-only int64 array."""
    try:
        arr = np.asarray(W)
    except Exception as exc:  # ragged lists and the like
        raise ContextError("W", f"cannot be read as an integer array ({exc})") from None
    if arr.ndim != 2:
        raise ContextError("W", f"must be a 2-d array (rows x bundles), got {arr.ndim}-d")
    k, size = arr.shape
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
    arr = arr.astype(np.int64)
    if k and np.any(arr[:, 0] != 0):
        j = int(np.flatnonzero(arr[:, 0])[0])
        raise ContextError(f"W[{j}]", f"the empty bundle must weigh 0, got {int(arr[j, 0])}")
    arr.setflags(write=False)
    return arr


def _positive_total(W: np.ndarray) -> int:
    """Upper bound on any packing value: the sum of the rows' best positive weights."""
    return sum(max(0, int(row.max())) for row in W) if W.size else 0


def _check_alloc(W: np.ndarray, alloc: Sequence[int]) -> int:
    """Verify an allocation is disjoint and return its exact value."""
    used = 0
    total = 0
    for j, bundle in enumerate(alloc):
        if used & bundle:
            raise SolverError(f"solver returned overlapping bundles (row {j})")
        used |= bundle
        total += int(W[j, bundle])
    return total


# -- subset DP -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _subset_pairs(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All ``3**m`` pairs ``T ⊆ S`` grouped by ``S``.

    Returns ``(S, T, R, starts, counts)`` with ``R = S \\ T``; the pairs of bundle ``S`` are
    ``starts[S] : starts[S] + counts[S]``.
    """
    S = np.zeros(1, dtype=np.intp)
    T = np.zeros(1, dtype=np.intp)
    starts = np.zeros(1, dtype=np.intp)
    counts = np.ones(1, dtype=np.intp)
    for g in range(m):
        # Bundles S < 2**g keep their blocks; the block of S | bit is the block of S with T
        # both without and with the new good, so the pairs stay grouped without sorting.
        bit = 1 << g
        p = np.arange(len(S), dtype=np.intp)
        lo = p + starts[S]
        hi = lo + counts[S]
        S_hi = np.empty(2 * len(S), dtype=np.intp)
        T_hi = np.empty(2 * len(S), dtype=np.intp)
        S_hi[lo] = S | bit
        S_hi[hi] = S | bit
        T_hi[lo] = T
        T_hi[hi] = T | bit
        S = np.concatenate((S, S_hi))
        T = np.concatenate((T, T_hi))
        starts = np.concatenate((starts, len(p) + 2 * starts))
        counts = np.concatenate((counts, 2 * counts))
    R = S ^ T
    for a in (S, T, R, starts, counts):
        a.setflags(write=False)
    return S, T, R, starts, counts


def _tie_keys(m: int, digit_base: int) -> list[np.ndarray]:
    """Per-bundle place values of the owner-vector code, split into int64-sized chunks.

    Good ``g`` is a digit of a base-``digit_base`` number, good 0 most significant. Each good
    lies in at most one bundle, so digits never carry and the chunks can be compared
    one after another.
    """
    per_key = 1
    while digit_base ** (per_key + 1) <= _KEY_LIMIT:
        per_key += 1
    bundles = np.arange(1 << m, dtype=np.int64)
    keys = []
    for lo in range(0, m, per_key):
        hi = min(m, lo + per_key)
        key = np.zeros(1 << m, dtype=np.int64)
        for g in range(lo, hi):
            key += ((bundles >> g) & 1) * digit_base ** (hi - 1 - g)
        keys.append(key)
    return keys


_ENUM_MAX_CASES = 1024
"""Instances with at most this many owner vectors are solved by vectorised enumeration."""


@functools.lru_cache(maxsize=64)
def _owner_bundles(k: int, m: int) -> np.ndarray:
    """Every owner vector over ``m`` goods in lexicographic order (owner ``k`` = nobody),
    as the bundle each row receives: shape ``((k+1)**m, k)``."""
    digits = np.indices((k + 1,) * m).reshape(m, -1).T  # lexicographic: good 0 most significant
    bits = np.left_shift(1, np.arange(m))
    out = np.stack([((digits == j) * bits).sum(axis=1) for j in range(k)], axis=1)
    out.setflags(write=False)
    return out


def _enumerable(W: np.ndarray) -> bool:
    """Whether ``W`` is small enough for :func:`_pack_enum`."""
    k, size = W.shape
    m = size.bit_length() - 1
    return k > 0 and m > 0 and (k + 1) ** m <= _ENUM_MAX_CASES and _positive_total(W) < _SUM_LIMIT


def _enum_totals(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every owner vector's bundles and its total weight (``_NEG`` when inadmissible)."""
    k = W.shape[0]
    B = _owner_bundles(k, W.shape[1].bit_length() - 1)
    gains = W[np.arange(k), B]
    ok = np.all((B == 0) | (gains > 0), axis=1)
    return B, np.where(ok, gains.sum(axis=1), _NEG)


def _pack_enum(W: np.ndarray) -> Packing:
    """Canonical packing of a tiny instance by enumerating owner vectors with numpy.

    Owner vectors come in lexicographic order, so the first optimal admissible one is the
    canonical optimum of the module docstring.
    """
    B, total = _enum_totals(W)
    v = int(np.argmax(total))
    return Packing(int(total[v]), tuple(int(b) for b in B[v]))


def pack_without_each(W: Any) -> tuple[Packing, tuple[int, ...]]:
    """The canonical optimum of ``W`` and, for every row ``j``, the optimum with row ``j``
    given nothing (what VCG's Clarke payments need), from one enumeration when tiny."""
    W = _check_weights(W)
    k = W.shape[0]
    if not _enumerable(W):
        best = _pack_subsets(W)
        rest = []
        for j in range(k):
            others = W.copy()
            others[j] = 0
            rest.append(_pack_subsets(others).value)
        return best, tuple(rest)
    B, total = _enum_totals(W)
    v = int(np.argmax(total))
    best = Packing(int(total[v]), tuple(int(b) for b in B[v]))
    rest = tuple(int(np.where(B[:, j] == 0, total, _NEG).max()) for j in range(k))
    return best, rest


def pack_dp(W: Any) -> Packing:
    """Exact weighted set packing by dynamic programming over subsets, ``O(k·3^m)``.

    Tiny instances (at most ``_ENUM_MAX_CASES`` owner vectors) are enumerated instead, which
    is faster there and returns the same canonical allocation.

    Parameters
    ----------
    W : array-like of int, shape (k, 2**m)
        Row weights per bundle, ``W[:, 0] == 0``; entries may be negative.

    Returns
    -------
    Packing
        The optimum and the canonical optimal allocation (see the module docstring).
    """
    W = _check_weights(W)
    if _enumerable(W):
        return _pack_enum(W)
    return _pack_subsets(W)


def _pack_subsets(W: np.ndarray) -> Packing:
    """The subset DP behind :func:`pack_dp` (``W`` already checked)."""
    k, size = W.shape
    m = size.bit_length() - 1
    if m > _DP_HARD_MAX_GOODS:
        raise SolverError(
            f"pack_dp handles at most {_DP_HARD_MAX_GOODS} goods, got {m}; use pack_milp"
        )
    if _positive_total(W) >= _SUM_LIMIT:
        raise SolverError("weights too large for exact int64 dynamic programming")
    active = [j for j in range(k) if W[j].max() > 0]
    alloc = [0] * k
    if not active:
        return Packing(0, tuple(alloc))

    S_of, T_of, R_of, starts, counts = _subset_pairs(m)
    # Rows that get nothing cannot own goods, so the owner code only needs digits for the
    # active rows (rank r -> digit a - r, unallocated -> 0) and the digits stay small.
    a = len(active)
    place = _tie_keys(m, a + 1)
    span = (a + 1) ** m  # owner codes lie in 0..span-1
    merged = (_positive_total(W) + 1) * span <= _KEY_LIMIT
    row_keys = []
    for r, j in enumerate(active):
        admissible = W[j] > 0
        admissible[0] = True
        if merged:
            # Value and owner code fit in one int64 as value * span + code: one pass per row.
            (p,) = place
            row_keys.append([np.where(admissible, np.maximum(W[j], 0) * span + (a - r) * p, _NEG)])
        else:
            row_keys.append([np.where(admissible, W[j], _NEG)] + [(a - r) * p for p in place])

    # best[r] = per-key values of the lexicographically best packing of rows active[r:]
    # into each bundle S; ties on value are settled by the owner code, which is unique.
    zero = np.zeros(size, dtype=np.int64)
    best: list[list[np.ndarray]] = [[] for _ in range(a + 1)]
    best[a] = [zero] * len(row_keys[0])
    for r in range(a - 1, 0, -1):
        tied = None
        layer: list[np.ndarray] = []
        for key_w, key_next in zip(row_keys[r], best[r + 1], strict=True):
            cand = key_w[T_of] + key_next[R_of]
            if tied is not None:
                cand = np.where(tied, cand, _NEG)
            top = np.maximum.reduceat(cand, starts)
            if len(layer) + 1 < len(row_keys[r]):
                tied = cand == top[S_of]
            layer.append(top)
        best[r] = layer

    S = size - 1
    optimum = 0
    for r, j in enumerate(active):
        lo = int(starts[S])
        sl = slice(lo, lo + int(counts[S]))
        T, R = T_of[sl], R_of[sl]
        pick = np.ones(len(T), dtype=bool)
        for q, (key_w, key_next) in enumerate(zip(row_keys[r], best[r + 1], strict=True)):
            cand = np.where(pick, key_w[T] + key_next[R], _NEG)
            top = int(cand.max())
            if r == 0 and q == 0:
                optimum = top // span if merged else top
            pick = cand == top
        (i,) = np.flatnonzero(pick)
        alloc[j] = int(T[i])
        S = int(R[i])
    value = _check_alloc(W, alloc)
    if value != optimum:  # an internal bug, not a property of the input
        raise SolverError(f"pack_dp rebuilt an allocation worth {value}, not its optimum {optimum}")
    return Packing(value, tuple(alloc))


# -- MILP ----------------------------------------------------------------------------------


def pack_milp(W: Any) -> Packing:
    """Exact weighted set packing as a binary MILP solved by HiGHS (``scipy.optimize.milp``).

    One binary ``x[j, S]`` per non-empty bundle with ``W[j, S] > 0``; each row takes at most
    one bundle and each good is used at most once. The value is recomputed exactly from the
    integer solution.

    Parameters
    ----------
    W : array-like of int, shape (k, 2**m)
        Row weights per bundle, ``W[:, 0] == 0``; entries may be negative.

    Returns
    -------
    Packing
        The optimum and an optimal admissible allocation (not necessarily the canonical one).

    Raises
    ------
    SolverError
        If HiGHS does not report an optimal solution.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array, vstack

    W = _check_weights(W)
    k, size = W.shape
    m = size.bit_length() - 1
    if _positive_total(W) >= _MILP_SUM_LIMIT:
        raise SolverError("weights too large for an exact MILP in double precision")
    rows, bundles = np.nonzero(W > 0)
    alloc = [0] * k
    nv = len(rows)
    if nv == 0:
        return Packing(0, tuple(alloc))
    var = np.arange(nv)
    row_con = coo_array((np.ones(nv), (rows, var)), shape=(k, nv))
    bits = (bundles[:, None] >> np.arange(m)[None, :]) & 1
    v_idx, goods = np.nonzero(bits)
    good_con = coo_array((np.ones(len(v_idx)), (goods, v_idx)), shape=(m, nv))
    A = vstack([row_con, good_con]).tocsr()
    res = milp(
        c=-W[rows, bundles].astype(np.float64),
        constraints=LinearConstraint(A, -np.inf, 1.0),
        integrality=np.ones(nv),
        bounds=Bounds(0.0, 1.0),
        # The default relative gap (1e-4) may stop at a suboptimal packing.
        options={"mip_rel_gap": 0.0},
    )
    if res.status != 0 or res.x is None:
        raise SolverError(f"HiGHS MILP failed (status {res.status}): {res.message}")
    for v in np.flatnonzero(res.x > 0.5):
        j = int(rows[v])
        if alloc[j]:
            raise SolverError(f"HiGHS MILP gave row {j} two bundles")
        alloc[j] = int(bundles[v])
    value = _check_alloc(W, alloc)
    if abs(value + res.fun) > 0.5:
        raise SolverError(f"HiGHS MILP objective {-res.fun} does not match its solution {value}")
    return Packing(value, tuple(alloc))


# -- brute force ---------------------------------------------------------------------------


def pack_brute(W: Any) -> Packing:
    """Weighted set packing by enumerating all ``(k+1)**m`` owner vectors (tests only).

    Owner vectors are visited in lexicographic order, so the first optimal admissible one is
    the canonical optimum of the module docstring.

    Parameters
    ----------
    W : array-like of int, shape (k, 2**m)
        Row weights per bundle, ``W[:, 0] == 0``; entries may be negative.

    Returns
    -------
    Packing
        The optimum and the canonical optimal allocation.
    """
    W = _check_weights(W)
    k, size = W.shape
    m = size.bit_length() - 1
    if k == 0 or m == 0:
        return Packing(0, (0,) * k)
    cases = (k + 1) ** m
    if cases > _BRUTE_MAX_CASES:
        raise SolverError(f"pack_brute would enumerate {cases} owner vectors; use pack_dp")
    if _positive_total(W) >= _SUM_LIMIT:
        raise SolverError("weights too large for exact int64 enumeration")
    code = np.arange(cases, dtype=np.int64)
    owners = np.stack([(code // (k + 1) ** (m - 1 - g)) % (k + 1) for g in range(m)], axis=1)
    values = np.zeros(cases, dtype=np.int64)
    admissible = np.ones(cases, dtype=bool)
    bundles = np.zeros((cases, k), dtype=np.int64)
    shift = np.arange(m, dtype=np.int64)
    for j in range(k):
        bundles[:, j] = ((owners == j).astype(np.int64) << shift).sum(axis=1)
        w = W[j, bundles[:, j]]
        admissible &= (bundles[:, j] == 0) | (w > 0)
        values += np.where(admissible, w, 0)
    values[~admissible] = _NEG
    # argmax returns the first maximum, i.e. the lexicographically smallest owner vector.
    first = int(np.argmax(values))
    return Packing(int(values[first]), tuple(int(b) for b in bundles[first]))


def max_packing(W: Any, method: str = "auto") -> Packing:
    """Exact weighted set packing.

    Parameters
    ----------
    W : array-like of int, shape (k, 2**m)
        Row weights per bundle, ``W[:, 0] == 0``; entries may be negative.
    method : {"auto", "dp", "milp", "brute"}
        ``"auto"`` runs the DP when ``m <= DP_MAX_GOODS`` and the MILP otherwise.

    Returns
    -------
    Packing
    """
    if method == "auto":
        W = _check_weights(W)
        method = "dp" if W.shape[1].bit_length() - 1 <= DP_MAX_GOODS else "milp"
    solvers = {"dp": pack_dp, "milp": pack_milp, "brute": pack_brute}
    if method not in solvers:
        raise ParameterError(
            "method", f"unknown packing method {method!r}; use one of auto, dp, milp, brute"
        )
    return solvers[method](W)


# -- benchmarks ----------------------------------------------------------------------------


def _check_player(ctx: Any, i: Any) -> int:
    if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= int(i) < ctx.n:
        raise ContextError("player", f"{i!r} is not a player index in 0..{ctx.n - 1}")
    return int(i)


def _check_coalition(ctx: Any, coalition: Any) -> tuple[int, ...]:
    if isinstance(coalition, int | np.integer):
        raise ContextError("coalition", f"must be a sequence of players, e.g. ({coalition},)")
    members = tuple(sorted(_check_player(ctx, p) for p in coalition))
    if not members:
        raise ContextError("coalition", "a coalition must have at least one member")
    if len(set(members)) != len(members):
        raise ContextError("coalition", f"{list(coalition)} lists a player twice")
    return members


def _benchmark(W: np.ndarray, priced: Sequence[bool], method: str) -> Benchmark:
    """Pack ``W`` and price each ``priced`` row at its weight, the others at 0."""
    p = max_packing(W, method)
    prices = tuple(int(W[j, b]) if priced[j] else 0 for j, b in enumerate(p.alloc))
    return Benchmark(value=p.value, alloc=p.alloc, prices=prices)


def msw(ctx: Any, method: str = "auto") -> Packing:
    """Maximum social welfare MSW(θ) with a welfare-maximising allocation."""
    return max_packing(ctx.values, method)


def best_belief(ctx: Any, i: int, method: str = "auto") -> Benchmark:
    """BB_i (seed 000): the most revenue player ``i`` is sure to raise selling to the others.

    Parameters
    ----------
    ctx : AuctionContext
    i : int
        The player whose beliefs ``ctx.lower[i]`` are used.
    method : str
        Packing method, see :func:`max_packing`.

    Returns
    -------
    Benchmark
        ``value`` = BB_i; the witness gives ``i`` nothing and offers every other player its
        bundle at ``i``'s lower bound, a positive integer; players offered nothing pay 0.
    """
    i = _check_player(ctx, i)
    W = np.array(ctx.lower[i], dtype=np.int64)
    W[i] = 0
    return _benchmark(W, [True] * ctx.n, method)


def best_beliefs(ctx: Any, method: str = "auto") -> list[Benchmark]:
    """BB_i with witnesses for every player ``i``."""
    return [best_belief(ctx, i, method) for i in range(ctx.n)]


def bb(ctx: Any, method: str = "auto") -> int:
    """The best-belief benchmark BB = max_i BB_i (seed 000)."""
    return max(b.value for b in best_beliefs(ctx, method))


def miew(ctx: Any, method: str = "auto") -> int:
    """MIEW (seed 001): max of BB_i over independent players, 0 if there are none."""
    return max((best_belief(ctx, i, method).value for i in ctx.independent), default=0)


def pooled_lower(ctx: Any, coalition: Sequence[int]) -> np.ndarray:
    """Pooled knowledge ``K^C`` of a coalition, shape ``(n, 2**m)``.

    ``K^C_j = max_{i ∈ C} lower[i, j]`` for outsiders ``j``; members' rows are their true
    values θ_j (a coalition knows its members, whatever they believe of each other).
    """
    members = list(_check_coalition(ctx, coalition))
    K = np.asarray(ctx.lower)[members].max(axis=0)
    K[members] = np.asarray(ctx.values)[members]
    return K


def best_knowledge(ctx: Any, coalition: Sequence[int], method: str = "auto") -> Benchmark:
    """MKW_C (seed 002) with a witness outcome RK_C.

    Parameters
    ----------
    ctx : AuctionContext
    coalition : sequence of int
        The agent ``C``: a coalition, or a singleton for an independent player.
    method : str
        Packing method, see :func:`max_packing`.

    Returns
    -------
    Benchmark
        ``value`` = MKW_C = max over allocations of Σ_{j∈C} θ_j(A_j) + Σ_{j∉C} K^C_j(A_j).
        Outsiders are priced at ``K^C_j(A_j) > 0`` (∅ and 0 otherwise); members at 0, their
        share of the value being θ_j(A_j).
    """
    members = set(_check_coalition(ctx, coalition))
    W = pooled_lower(ctx, sorted(members))
    return _benchmark(W, [j not in members for j in range(ctx.n)], method)


def mkw(ctx: Any, method: str = "auto") -> int:
    """MKW (seed 002): max of MKW_C over the agents (coalitions) of ``ctx``."""
    return max(best_knowledge(ctx, c, method).value for c in ctx.coalitions)


def hidden_value(
    ctx: Any, coalition: Sequence[int], alloc: Sequence[int], prices: Sequence[Any]
) -> Fraction | int:
    """HiddenV_C(Ω) = Σ_{j∈C} θ_j(A_j) + Σ_{j∉C} P_j (seed 002), exact.

    Returns an ``int`` when the total is integral, a ``Fraction`` otherwise.
    """
    members = set(_check_coalition(ctx, coalition))
    n = ctx.n
    if len(alloc) != n or len(prices) != n:
        raise ContextError(
            "outcome", f"needs {n} bundles and {n} prices, got {len(alloc)} and {len(prices)}"
        )
    total: Fraction | int = 0
    for j in range(n):
        if j in members:
            total += int(ctx.values[j, int(alloc[j])])
        else:
            p = prices[j]
            if isinstance(p, np.integer):
                p = int(p)
            if isinstance(p, bool) or not isinstance(p, int | Fraction):
                raise ContextError(
                    f"prices[{j}]", f"must be an int or Fraction, got {type(p).__name__}"
                )
            total += p
    if isinstance(total, Fraction) and total.denominator == 1:
        return int(total)
    return total
