"""n-m-k market contexts (seed 004, Section 3.3): endowments, signed values, coalitions.

``m`` goods are initially partitioned among the ``n`` players: the endowment ``E`` gives every
good to exactly one player (a player may bring nothing). An allocation ``A = (A_0, A_1..A_n)``
partitions the goods into destroyed goods ``A_0`` and the players' bundles; an outcome stores
the players' bundles in :attr:`~mechgym.envs.model.outcome.Outcome.alloc` and the destroyed goods in
:attr:`~mechgym.envs.model.outcome.Outcome.destroyed` (any good in neither is destroyed too).

Values are integers in ``(-2^{k-1}, 2^{k-1})``, possibly negative, with θ_i(∅) = 0; ``B = 2^{k-1}``.
Utility: ``u_i = θ_i(A_i) − θ_i(E_i) − P_i``; welfare: ``SW(A) = Σ_i θ_i(A_i)`` (destroyed goods
count nothing). Valuations and the endowment are common knowledge among the players.

Sizes: ``value_cap`` of a market is ``B = 2^{k-1}``, the (exclusive) bound on every |value|;
the market mechanisms size their price grids from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.errors import ContextError
from mechgym.envs.model.bundles import format_bundle, goods_of, parse_bundle
from mechgym.envs.model.context import Collusion, Partition, check_partition, membership, singletons
from mechgym.envs.model.limits import MAX_PLAYERS
from mechgym.envs.model.outcome import Outcome
from mechgym.envs.model.states import (
    COALITION_MODES,
    _type_name,
    check_keys,
    draw_coalitions,
    read_coalitions,
    read_common,
    read_int,
)

__all__ = [
    "MAX_BITS",
    "MAX_MARKET_GOODS",
    "MarketContext",
    "MarketGenerator",
    "market_from_dict",
    "market_msw",
    "market_to_dict",
]

MAX_MARKET_GOODS = 12
MAX_BITS = 52


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def _check_endowment(endowment: Any, n: int, m: int) -> tuple[int, ...]:
    if isinstance(endowment, str) or not isinstance(endowment, Sequence | np.ndarray):
        raise ContextError("endowment", "must be a sequence of one bundle (bitmask) per player")
    if len(endowment) != n:
        raise ContextError("endowment", f"needs one bundle per player ({n}), got {len(endowment)}")
    used = 0
    out = []
    for i, b in enumerate(endowment):
        if not _is_int(b) or not 0 <= int(b) < 1 << m:
            raise ContextError(f"endowment[{i}]", f"{b!r} is not a bundle over {m} goods")
        b = int(b)
        if used & b:
            g = goods_of(used & b)[0]
            raise ContextError(f"endowment[{i}]", f"good {g} is already owned by another player")
        used |= b
        out.append(b)
    missing = goods_of(((1 << m) - 1) & ~used)
    if missing:
        raise ContextError(
            "endowment",
            f"goods {list(missing)} are owned by nobody; the endowment partitions all goods "
            "among the players",
        )
    return tuple(out)


@dataclass(frozen=True, eq=False)
class MarketContext(Collusion):
    """An n-m-k market context ``(E, θ, 𝒞)``.

    Parameters
    ----------
    values : array-like of int, shape (n, 2**m)
        ``values[i, S]`` = θ_i(S) ∈ (−2^{k−1}, 2^{k−1}), 0 on the empty bundle.
    endowment : sequence of int
        Bundle (bitmask) per player; pairwise disjoint and covering every good.
    k : int
        Bits per value (``B = 2^{k−1}``), at least 1.
    coalitions : sequence of sequences of int, optional
        A partition of the players; default all independent.
    shared_reward : bool
        Whether coalition members are rewarded with the coalition's total utility.
    name : str
    """

    values: np.ndarray
    endowment: tuple[int, ...]
    k: int
    coalitions: Partition | None = None
    shared_reward: bool = True
    name: str = ""

    kind: ClassVar[str] = "market"

    def __post_init__(self) -> None:
        if not _is_int(self.k) or not 1 <= int(self.k) <= MAX_BITS:
            raise ContextError("bits", f"k must be an integer in 1..{MAX_BITS}, got {self.k!r}")
        k = int(self.k)
        bound = 1 << (k - 1)
        try:
            v = np.asarray(self.values)
        except Exception as exc:
            raise ContextError("values", f"cannot be read as an integer array ({exc})") from None
        if v.ndim != 2:
            raise ContextError("values", f"must be a 2-d array (players x bundles), got {v.ndim}-d")
        n, size = v.shape
        if n < 2:
            raise ContextError("players", f"a mechanism needs at least 2 players, got {n}")
        m = size.bit_length() - 1
        if size < 2 or 1 << m != size:
            raise ContextError("values", f"needs 2**m columns (one per bundle, m >= 1), got {size}")
        if m > MAX_MARKET_GOODS:
            raise ContextError("goods", f"at most {MAX_MARKET_GOODS} goods are supported, got {m}")
        if v.dtype.kind == "f":
            if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
                raise ContextError("values", "values must be integers")
        elif v.dtype.kind not in "iu":
            raise ContextError("values", f"must hold integers, got dtype {v.dtype}")
        if np.any(np.abs(v.astype(np.float64)) >= float(bound)):
            i, s = (int(x) for x in np.argwhere(np.abs(v.astype(np.float64)) >= float(bound))[0])
            raise ContextError(
                f"values[{i}]",
                f"bundle {s} is worth {int(v[i, s])}, outside ({-bound}, {bound}) = "
                f"(-2^(k-1), 2^(k-1)) for k = {k}",
            )
        values = v.astype(np.int64, copy=True)
        if np.any(values[:, 0] != 0):
            i = int(np.flatnonzero(values[:, 0])[0])
            raise ContextError(f"values[{i}]", "the empty bundle must be worth 0")
        values.setflags(write=False)
        endowment = _check_endowment(self.endowment, n, m)
        coalitions = (
            singletons(n) if self.coalitions is None else check_partition(self.coalitions, n)
        )
        if not isinstance(self.shared_reward, bool | np.bool_):
            raise ContextError(
                "shared_reward", f"must be true or false, got {self.shared_reward!r}"
            )
        if not isinstance(self.name, str):
            raise ContextError("name", f"must be a string, got {self.name!r}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "endowment", endowment)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "coalitions", coalitions)
        object.__setattr__(self, "shared_reward", bool(self.shared_reward))
        object.__setattr__(self, "_coalition_index", membership(coalitions, n))
        object.__setattr__(self, "_endowed", tuple(int(values[i, endowment[i]]) for i in range(n)))

    # -- shape ---------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of players."""
        return int(self.values.shape[0])

    @property
    def m(self) -> int:
        """Number of goods."""
        return int(self.values.shape[1]).bit_length() - 1

    @property
    def B(self) -> int:
        """``B = 2^{k−1}``: every |value| is below B."""
        return 1 << (self.k - 1)

    @property
    def value_cap(self) -> int:
        """``B``, the exclusive bound on |values| (sizes the market mechanisms' price grids)."""
        return self.B

    @property
    def endowment_owner(self) -> tuple[int, ...]:
        """Owner (player index) of every good under ``E``."""
        owner = [0] * self.m
        for i, b in enumerate(self.endowment):
            for g in goods_of(b):
                owner[g] = i
        return tuple(owner)

    def endowed_value(self, i: int) -> int:
        """θ_i(E_i)."""
        return self._endowed[i]

    # -- collusion -------------------------------------------------------------------------
    # -- welfare ---------------------------------------------------------------------------
    def welfare_of(self, alloc: Sequence[int]) -> int:
        """SW(A) = Σ_i θ_i(A_i)."""
        return int(sum(int(self.values[i, b]) for i, b in enumerate(alloc)))

    @property
    def endowment_welfare(self) -> int:
        """SW(E)."""
        return int(sum(self._endowed))

    def msw(self) -> int:
        """Maximum social welfare over allocations (goods may be destroyed)."""
        return market_msw(self)[0]

    # -- outcomes --------------------------------------------------------------------------
    def _alloc_of(self, outcome: Outcome) -> tuple[int, ...]:
        a = outcome.alloc
        if len(a) != self.n or len(outcome.prices) != self.n:
            raise ContextError(
                "outcome", f"a market outcome needs {self.n} bundles and {self.n} prices"
            )
        return a

    def utilities(self, outcome: Outcome) -> tuple[Fraction, ...]:
        """``θ_i(A_i) − θ_i(E_i) − P_i``, exact."""
        a = self._alloc_of(outcome)
        v = self.values
        return tuple(
            int(v[i, a[i]]) - self._endowed[i] - Fraction(outcome.prices[i]) for i in range(self.n)
        )

    def welfare(self, outcome: Outcome) -> int:
        """Social welfare Σ θ_i(A_i) of the outcome's allocation."""
        return self.welfare_of(self._alloc_of(outcome))

    # -- observations ----------------------------------------------------------------------
    @staticmethod
    def private_size(n: int, m: int) -> int:
        """Length of :meth:`private_features`: ``n·2^m + m + n``."""
        return (n << m) + m + n

    def private_features(self, i: int) -> np.ndarray:
        """Every valuation (common knowledge among players), the endowment's owner of each
        good, then 1 for each member of ``i``'s coalition."""
        member = np.zeros(self.n, dtype=np.int64)
        member[list(self.coalition_of(i))] = 1
        return np.concatenate(
            [self.values.ravel(), np.asarray(self.endowment_owner, dtype=np.int64), member]
        )

    # -- helpers ---------------------------------------------------------------------------
    def with_coalitions(
        self, coalitions: Iterable[Iterable[int]], shared_reward: bool | None = None
    ) -> MarketContext:
        """A copy with another collusion structure."""
        return MarketContext(
            values=self.values,
            endowment=self.endowment,
            k=self.k,
            coalitions=tuple(tuple(c) for c in coalitions),
            shared_reward=self.shared_reward if shared_reward is None else shared_reward,
            name=self.name,
        )

    @classmethod
    def from_owners(
        cls, values: Any, owners: Sequence[int], k: int, **kwargs: Any
    ) -> MarketContext:
        """Build a market from the endowment's owner of each good."""
        v = np.asarray(values)
        n = v.shape[0] if v.ndim == 2 else 0
        bundles = [0] * n
        for g, o in enumerate(owners):
            if not _is_int(o) or not 0 <= int(o) < n:
                raise ContextError(
                    f"endowment[{g}]", f"owner {o!r} is not a player index in 0..{n - 1}"
                )
            bundles[int(o)] |= 1 << g
        return cls(values=v, endowment=tuple(bundles), k=k, **kwargs)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        best, _ = market_msw(self)
        return {
            "kind": self.kind,
            "name": self.name,
            "players": self.n,
            "goods": self.m,
            "bits": self.k,
            "endowment": [format_bundle(b) for b in self.endowment],
            "coalitions": [list(c) for c in self.coalitions],
            "shared_reward": self.shared_reward,
            "msw": best,
            "endowment_welfare": self.endowment_welfare,
        }


def market_msw(ctx: MarketContext) -> tuple[int, tuple[int, ...]]:
    """MSW of a market and a welfare-maximising allocation (bundle per player; goods in no
    bundle are destroyed): the canonical optimum of :func:`mechgym.envs.solvers.packing.max_packing`
    (values may be negative; an unallocated good is a destroyed one)."""
    from mechgym.envs.solvers.packing import max_packing

    p = max_packing(ctx.values)
    return int(p.value), tuple(int(b) for b in p.alloc)


# -- generator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketGenerator:
    """Seeded generator of n-m-k markets.

    Every non-empty bundle's value is uniform in ``-(B−1)..(B−1)`` (``0..B−1`` when
    ``negative`` is false), each good is endowed to a uniform player, then a collusion
    structure is drawn.

    Parameters
    ----------
    n, m : int
        Players (>= 2) and goods (1..12).
    k : int
        Bits per value; ``B = 2^{k−1}`` (``value_cap`` = B).
    coalitions : {"independent", "random", "pair", "grand"}
    shared_reward : bool
    negative : bool
        Whether values may be negative.
    """

    n: int
    m: int
    k: int = 3
    coalitions: str = "independent"
    shared_reward: bool = True
    negative: bool = True

    context_class: ClassVar[type[MarketContext]] = MarketContext
    kind: ClassVar[str] = "market"

    def __post_init__(self) -> None:
        if not _is_int(self.n) or not 2 <= self.n <= MAX_PLAYERS:
            raise ContextError("n", f"must be an integer >= 2 and <= {MAX_PLAYERS}, got {self.n!r}")
        if not _is_int(self.m) or not 1 <= self.m <= MAX_MARKET_GOODS:
            raise ContextError("m", f"must be an integer in 1..{MAX_MARKET_GOODS}, got {self.m!r}")
        if not _is_int(self.k) or not 1 <= self.k <= 30:
            raise ContextError("k", f"must be an integer in 1..30, got {self.k!r}")
        if self.coalitions not in COALITION_MODES:
            raise ContextError(
                "coalitions", f"{self.coalitions!r} is not one of {', '.join(COALITION_MODES)}"
            )
        for field in ("shared_reward", "negative"):
            if not isinstance(getattr(self, field), bool | np.bool_):
                raise ContextError(field, f"must be true or false, got {getattr(self, field)!r}")
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "m", int(self.m))
        object.__setattr__(self, "k", int(self.k))

    @property
    def value_cap(self) -> int:
        """``B = 2^{k−1}``."""
        return 1 << (self.k - 1)

    def sample(self, rng: np.random.Generator) -> MarketContext:
        """Draw one market from ``rng`` (an int is accepted as a seed)."""
        if _is_int(rng):
            rng = np.random.default_rng(int(rng))
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"sample needs a numpy.random.Generator, got {type(rng).__name__}")
        hi = self.value_cap - 1
        lo = -hi if self.negative else 0
        values = np.zeros((self.n, 1 << self.m), dtype=np.int64)
        values[:, 1:] = rng.integers(lo, hi + 1, size=(self.n, (1 << self.m) - 1))
        owners = rng.integers(0, self.n, size=self.m)
        coalitions = draw_coalitions(self.coalitions, self.n, rng)
        return MarketContext.from_owners(
            values,
            [int(o) for o in owners],
            self.k,
            coalitions=coalitions,
            shared_reward=self.shared_reward,
            name=self.spec(),
        )

    def spec(self) -> str:
        """A compact description, e.g. ``market:n=3,m=2,k=3,coalitions=independent``."""
        return (
            f"market:n={self.n},m={self.m},k={self.k},coalitions={self.coalitions},"
            f"shared={'true' if self.shared_reward else 'false'},"
            f"negative={'true' if self.negative else 'false'}"
        )


# -- files ------------------------------------------------------------------------------------

_KEYS = (
    "kind",
    "name",
    "players",
    "goods",
    "bits",
    "values",
    "endowment",
    "coalitions",
    "shared_reward",
)


def _read_value_row(raw: Any, m: int, bound: int, field: str) -> np.ndarray:
    if not isinstance(raw, Mapping):
        raise ContextError(
            field,
            'must be an object mapping bundles to values, e.g. {"0,1": -3}; '
            f"got {_type_name(raw)}",
        )
    row = np.zeros(1 << m, dtype=np.int64)
    seen: set[int] = set()
    for key, amount in raw.items():
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str):
            raise ContextError(field, f"key {key!r} is not a bundle")
        here = f'{field}["{key}"]'
        try:
            mask = parse_bundle(key, m, here)
        except ContextError:
            raise
        except ValueError:
            raise ContextError(
                here, f"bundle {key!r} must list goods as comma-separated integers"
            ) from None
        if mask in seen:
            raise ContextError(here, "this bundle is listed twice")
        seen.add(mask)
        if mask == 0:
            raise ContextError(here, "the empty bundle is always worth 0; leave it out")
        value = read_int(amount, here, -(1 << 62), 1 << 62)
        if not -bound < value < bound:
            raise ContextError(
                here,
                f"value {value} is outside (-2^(k-1), 2^(k-1)) = ({-bound}, {bound}); raise bits",
            )
        row[mask] = value
    return row


def market_from_dict(data: Mapping[str, Any]) -> MarketContext:
    """Build a :class:`MarketContext` from a decoded document, raising :class:`ContextError`.

    Format (0-based players and goods; bundles written ``"0,2"``; absent bundles are worth 0)::

        {"kind": "market", "players": 2, "goods": 2, "bits": 3,
         "values": [{"0": 3, "0,1": -1}, {"1": 2}],
         "endowment": [[0], [1]],                 # goods each player brings; a partition
         "coalitions": [[0], [1]], "shared_reward": true, "name": "demo"}
    """
    if not isinstance(data, Mapping):
        raise ContextError("(top level)", f"must be an object; got {_type_name(data)}")
    check_keys(data, _KEYS, required=("players", "goods", "bits", "values", "endowment"))
    if data.get("kind", "market") != "market":
        raise ContextError("kind", f"expected 'market', got {data.get('kind')!r}")
    n = read_int(data["players"], "players", 2, MAX_PLAYERS)
    m = read_int(data["goods"], "goods", 1, MAX_MARKET_GOODS)
    k = read_int(data["bits"], "bits", 1, MAX_BITS)
    bound = 1 << (k - 1)
    rows = data["values"]
    if not isinstance(rows, list | tuple):
        raise ContextError(
            "values", f"must be a list with one object per player; got {_type_name(rows)}"
        )
    if len(rows) != n:
        raise ContextError("values", f"has {len(rows)} entries but players is {n}")
    values = np.stack([_read_value_row(r, m, bound, f"values[{i}]") for i, r in enumerate(rows)])
    raw_e = data["endowment"]
    if not isinstance(raw_e, list | tuple) or len(raw_e) != n:
        raise ContextError("endowment", f"must be a list of {n} lists of goods (one per player)")
    bundles = []
    for i, goods in enumerate(raw_e):
        if not isinstance(goods, list | tuple):
            raise ContextError(
                f"endowment[{i}]", f"must be a list of goods; got {_type_name(goods)}"
            )
        b = 0
        for g in goods:
            g = read_int(g, f"endowment[{i}]", 0, m - 1)
            if b >> g & 1:
                raise ContextError(f"endowment[{i}]", f"good {g} is listed twice")
            b |= 1 << g
        bundles.append(b)
    coalitions = read_coalitions(data.get("coalitions"), n)
    shared, name = read_common(data)
    return MarketContext(
        values=values,
        endowment=tuple(bundles),
        k=k,
        coalitions=coalitions,
        shared_reward=shared,
        name=name,
    )


def market_to_dict(ctx: MarketContext) -> dict[str, Any]:
    """A JSON-ready dict, the inverse of :func:`market_from_dict`."""
    out: dict[str, Any] = {"kind": "market"}
    if ctx.name:
        out["name"] = ctx.name
    out["players"] = ctx.n
    out["goods"] = ctx.m
    out["bits"] = ctx.k
    out["values"] = [
        {format_bundle(int(s)): int(ctx.values[i, s]) for s in np.flatnonzero(ctx.values[i])}
        for i in range(ctx.n)
    ]
    out["endowment"] = [list(goods_of(b)) for b in ctx.endowment]
    out["coalitions"] = [list(c) for c in ctx.coalitions]
    out["shared_reward"] = bool(ctx.shared_reward)
    json.dumps(out)
    return out
