"""Abstract-state contexts with perfect knowledge (seed 003): finite states, integer types.

A :class:`StateContext` has ``n`` players, ``K`` abstract states ``0..K-1`` (optionally
labelled) and a type table ``types[i, ω] = θ_i(ω) ∈ Z≥0``. The null state ⊥ is written
``-1`` in :attr:`~mechgym.envs.model.outcome.Outcome.state` and is worth 0 to everyone. The type
profile and the collusion structure are common knowledge among the players (not to the
mechanism), so every player's private information is the whole table plus its coalition.

Sizes: the engine's :class:`~mechgym.envs.engine.game.EnvSpec` has fields ``n`` and ``m``; for a
states context **``m`` is the number of states K** (``ctx.m == K``), so that
``EnvSpec(n, m=K, ...)`` sizes every array of a states mechanism and
``private_size(n, m) = n·m + n`` depends on ``(n, m)`` only.

Auctions are the special case whose states are allocations: :meth:`StateContext.from_auction`
enumerates the owner vectors of an auction context as states.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.errors import ContextError
from mechgym.envs.model.context import Collusion, Partition, check_partition, membership, singletons
from mechgym.envs.model.limits import MAX_AMOUNT, MAX_PLAYERS
from mechgym.envs.model.outcome import Outcome

__all__ = [
    "COALITION_MODES",
    "MAX_STATES",
    "StateContext",
    "StatesGenerator",
    "draw_coalitions",
    "states_from_dict",
    "states_to_dict",
]

#: largest number of states a context may have (from_auction refuses bigger enumerations)
MAX_STATES = 1 << 16
#: collusion structures the generators draw (as in :mod:`mechgym.envs.model.generators`)
COALITION_MODES = ("independent", "random", "pair", "grand")
NULL_STATE = -1


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def draw_coalitions(mode: str, n: int, rng: np.random.Generator) -> Partition:
    """A collusion structure: ``"independent"``, ``"random"`` (each player draws a label in
    ``0..n-1``; equal labels collude), ``"pair"`` (players 0 and 1) or ``"grand"``."""
    if mode == "independent":
        return singletons(n)
    if mode == "pair":
        return ((0, 1), *((i,) for i in range(2, n)))
    if mode == "grand":
        return (tuple(range(n)),)
    if mode != "random":
        raise ContextError("coalitions", f"{mode!r} is not one of {', '.join(COALITION_MODES)}")
    labels = rng.integers(0, n, size=n)
    blocks: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        blocks.setdefault(int(label), []).append(i)
    return tuple(sorted(tuple(b) for b in blocks.values()))


@dataclass(frozen=True, eq=False)
class StateContext(Collusion):
    """A perfect-knowledge context over abstract states (seed 003, Section 2).

    Parameters
    ----------
    types : array-like of int, shape (n, K)
        ``types[i, ω]`` = θ_i(ω) ≥ 0. The null state ⊥ (index -1) is worth 0 to all.
    labels : sequence of str, optional
        A name per state (default ``"s0", "s1", ...``).
    coalitions : sequence of sequences of int, optional
        A partition of the players; default all independent. Seed 003 assumes the partition
        is not the grand coalition; the context allows it (the guarantee then does not apply).
    shared_reward : bool
        Whether coalition members are rewarded with the coalition's total utility.
    name : str
        A label for reports.
    allocations : tuple of tuple of int, optional
        For contexts built by :meth:`from_auction`: the allocation (bundle per player) of
        every state.
    """

    types: np.ndarray
    labels: tuple[str, ...] | None = None
    coalitions: Partition | None = None
    shared_reward: bool = True
    name: str = ""
    allocations: tuple[tuple[int, ...], ...] | None = None

    kind: ClassVar[str] = "states"

    def __post_init__(self) -> None:
        try:
            arr = np.asarray(self.types)
        except Exception as exc:  # ragged lists and the like
            raise ContextError("types", f"cannot be read as an integer array ({exc})") from None
        if arr.ndim != 2:
            raise ContextError("types", f"must be a 2-d array (players x states), got {arr.ndim}-d")
        n, k = arr.shape
        if n < 2:
            raise ContextError("players", f"a mechanism needs at least 2 players, got {n}")
        if not 1 <= k <= MAX_STATES:
            raise ContextError("states", f"needs 1..{MAX_STATES} states, got {k}")
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise ContextError("types", "types must be integers")
        elif arr.dtype.kind not in "iu" and arr.size:
            raise ContextError("types", f"must hold integers, got dtype {arr.dtype}")
        if arr.size and np.abs(arr.astype(np.float64)).max() >= 2.0**53:
            raise ContextError("types", "values must be below 2**53")
        types = arr.astype(np.int64, copy=True)
        if np.any(types < 0):
            i, s = (int(x) for x in np.argwhere(types < 0)[0])
            raise ContextError(f"types[{i}]", f"state {s} has a negative value; types are >= 0")
        types.setflags(write=False)
        if self.labels is None:
            labels = tuple(f"s{s}" for s in range(k))
        else:
            labels = tuple(self.labels)
            if len(labels) != k:
                raise ContextError("labels", f"needs one label per state ({k}), got {len(labels)}")
            for s, lab in enumerate(labels):
                if not isinstance(lab, str):
                    raise ContextError(f"labels[{s}]", f"must be a string, got {lab!r}")
            if len(set(labels)) != k:
                raise ContextError("labels", "state labels must be distinct")
        coalitions = (
            singletons(n) if self.coalitions is None else check_partition(self.coalitions, n)
        )
        if not isinstance(self.shared_reward, bool | np.bool_):
            raise ContextError(
                "shared_reward", f"must be true or false, got {self.shared_reward!r}"
            )
        if not isinstance(self.name, str):
            raise ContextError("name", f"must be a string, got {self.name!r}")
        if self.allocations is not None and len(self.allocations) != k:
            raise ContextError("allocations", f"needs one allocation per state ({k})")
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "coalitions", coalitions)
        object.__setattr__(self, "shared_reward", bool(self.shared_reward))
        object.__setattr__(self, "_coalition_index", membership(coalitions, n))
        object.__setattr__(
            self, "_columns", tuple(tuple(int(x) for x in types[:, s]) for s in range(k))
        )

    # -- shape ---------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of players."""
        return int(self.types.shape[0])

    @property
    def num_states(self) -> int:
        """Number of (non-null) states K."""
        return int(self.types.shape[1])

    @property
    def m(self) -> int:
        """The size ``EnvSpec.m`` of a states context: the number of states K."""
        return self.num_states

    @property
    def value_cap(self) -> int:
        """Largest value in the table (at least 1)."""
        return max(1, int(self.types.max()))

    def value(self, i: int, state: int) -> int:
        """θ_i(state), with θ_i(⊥) = 0 for ``state == -1``."""
        return 0 if state == NULL_STATE else int(self.types[i, state])

    # -- collusion -------------------------------------------------------------------------
    @property
    def collusive(self) -> bool:
        """Whether some shared-reward coalition has two or more members."""
        return self.shared_reward and any(len(c) > 1 for c in self.coalitions)

    # -- benchmarks ------------------------------------------------------------------------
    def welfare_of(self, state: int) -> int:
        """Σ_i θ_i(state) (0 at ⊥)."""
        return 0 if state == NULL_STATE else int(self.types[:, state].sum())

    def best_state(self) -> int:
        """The lexicographically first (lowest-index) welfare-maximising state."""
        return int(np.argmax(self.types.sum(axis=0)))

    def msw(self) -> int:
        """Maximum social welfare max_ω Σ_i θ_i(ω)."""
        return int(self.types.sum(axis=0).max())

    # -- outcomes --------------------------------------------------------------------------
    def _state_of(self, outcome: Outcome) -> int:
        s = outcome.state
        if s is None or not _is_int(s) or not -1 <= int(s) < self.num_states:
            raise ContextError(
                "outcome.state", f"{s!r} is not a state index in -1..{self.num_states - 1}"
            )
        if len(outcome.prices) != self.n:
            raise ContextError(
                "outcome.prices", f"needs {self.n} prices, got {len(outcome.prices)}"
            )
        return int(s)

    def utilities(self, outcome: Outcome) -> tuple[Fraction, ...]:
        """Quasi-linear utilities θ_i(ω) − P_i, exact."""
        s = self._state_of(outcome)
        if s == NULL_STATE:
            return tuple(-p for p in outcome.prices)
        return tuple(v - p for v, p in zip(self._columns[s], outcome.prices, strict=True))

    def welfare(self, outcome: Outcome) -> int:
        """Social welfare Σ θ_i(ω) of the outcome's state (0 at ⊥)."""
        return self.welfare_of(self._state_of(outcome))

    # -- observations ----------------------------------------------------------------------
    @staticmethod
    def private_size(n: int, m: int) -> int:
        """Length of :meth:`private_features` for ``n`` players and ``m`` = K states."""
        return n * m + n

    def private_features(self, i: int) -> np.ndarray:
        """The whole type table (common knowledge), flattened, then 1 for each member of
        ``i``'s coalition."""
        member = np.zeros(self.n, dtype=np.int64)
        member[list(self.coalition_of(i))] = 1
        return np.concatenate([self.types.ravel(), member])

    # -- construction helpers ----------------------------------------------------------------
    def with_coalitions(
        self, coalitions: Iterable[Iterable[int]], shared_reward: bool | None = None
    ) -> StateContext:
        """A copy with another collusion structure."""
        return StateContext(
            types=self.types,
            labels=self.labels,
            coalitions=tuple(tuple(c) for c in coalitions),
            shared_reward=self.shared_reward if shared_reward is None else shared_reward,
            name=self.name,
            allocations=self.allocations,
        )

    @classmethod
    def from_auction(cls, auction: Any, **kwargs: Any) -> StateContext:
        """The states view of an auction context: one state per allocation.

        States are the owner vectors ``(owner of good 0, ..., owner of good m-1)`` with owner
        ``0`` = unallocated and ``j + 1`` = player ``j``, in lexicographic order (so state 0
        allocates nothing). ``θ_i(state) = values[i, bundle of i]``. Beliefs are dropped
        (seed 003 assumes perfect knowledge); the coalitions and reward sharing are kept
        unless overridden in ``kwargs``.
        """
        n, m = int(auction.n), int(auction.m)
        count = (n + 1) ** m
        if count > MAX_STATES:
            raise ContextError(
                "goods",
                f"{n} players and {m} goods give {count} allocations; at most {MAX_STATES} "
                "states are supported",
            )
        allocs: list[tuple[int, ...]] = []
        labels: list[str] = []
        for owners in itertools.product(range(n + 1), repeat=m):
            bundles = [0] * n
            for g, o in enumerate(owners):
                if o:
                    bundles[o - 1] |= 1 << g
            allocs.append(tuple(bundles))
            labels.append("owners=" + "".join("-" if o == 0 else str(o - 1) for o in owners))
        values = np.asarray(auction.values)
        types = np.array([[int(values[i, a[i]]) for a in allocs] for i in range(n)], dtype=np.int64)
        opts: dict[str, Any] = {
            "coalitions": auction.coalitions,
            "shared_reward": auction.shared_reward,
            "name": auction.name,
        }
        opts.update(kwargs)
        return cls(types=types, labels=tuple(labels), allocations=tuple(allocs), **opts)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        return {
            "kind": self.kind,
            "name": self.name,
            "players": self.n,
            "states": self.num_states,
            "coalitions": [list(c) for c in self.coalitions],
            "shared_reward": self.shared_reward,
            "msw": self.msw(),
            "best_state": self.labels[self.best_state()],
        }


# -- generator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatesGenerator:
    """Seeded generator of perfect-knowledge state contexts: types iid uniform in
    ``0..value_cap``, then a collusion structure.

    Parameters
    ----------
    n : int
        Players, at least 2.
    m : int
        Number of states K (``EnvSpec.m`` of a states context), at least 1.
    value_cap : int
        Largest value a type may take.
    coalitions : {"independent", "random", "pair", "grand"}
    shared_reward : bool
    positive_welfare : bool
        Redraw the types until MSW > 0 (seed 003's unique equilibrium needs a positive-revenue
        proposal; with MSW = 0 every zero-price proposal halts at the same null outcome).
    """

    n: int
    m: int
    value_cap: int = 3
    coalitions: str = "independent"
    shared_reward: bool = True
    positive_welfare: bool = False

    context_class: ClassVar[type[StateContext]] = StateContext
    kind: ClassVar[str] = "states"

    def __post_init__(self) -> None:
        if not _is_int(self.n) or not 2 <= self.n <= MAX_PLAYERS:
            raise ContextError("n", f"must be an integer >= 2 and <= {MAX_PLAYERS}, got {self.n!r}")
        if not _is_int(self.m) or not 1 <= self.m <= MAX_STATES:
            raise ContextError(
                "m", f"must be a number of states in 1..{MAX_STATES}, got {self.m!r}"
            )
        if not _is_int(self.value_cap) or not 1 <= self.value_cap <= MAX_AMOUNT:
            raise ContextError(
                "value_cap", f"must be an integer >= 1 and <= 2**53, got {self.value_cap!r}"
            )
        if self.coalitions not in COALITION_MODES:
            raise ContextError(
                "coalitions", f"{self.coalitions!r} is not one of {', '.join(COALITION_MODES)}"
            )
        if not isinstance(self.shared_reward, bool | np.bool_):
            raise ContextError(
                "shared_reward", f"must be true or false, got {self.shared_reward!r}"
            )
        if not isinstance(self.positive_welfare, bool | np.bool_):
            raise ContextError(
                "positive_welfare", f"must be true or false, got {self.positive_welfare!r}"
            )
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "m", int(self.m))
        object.__setattr__(self, "value_cap", int(self.value_cap))

    def sample(self, rng: np.random.Generator) -> StateContext:
        """Draw one context from ``rng`` (an int is accepted as a seed)."""
        if _is_int(rng):
            rng = np.random.default_rng(int(rng))
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"sample needs a numpy.random.Generator, got {type(rng).__name__}")
        for _ in range(10_000):
            types = rng.integers(0, self.value_cap + 1, size=(self.n, self.m))
            if not self.positive_welfare or types.sum() > 0:
                break
        else:  # pragma: no cover - probability (value_cap+1)**(-n*m*10000)
            raise ContextError("positive_welfare", "could not draw a context with MSW > 0")
        coalitions = draw_coalitions(self.coalitions, self.n, rng)
        return StateContext(
            types=types, coalitions=coalitions, shared_reward=self.shared_reward, name=self.spec()
        )

    def spec(self) -> str:
        """A compact description, e.g. ``states:n=3,m=2,cap=3,coalitions=independent``."""
        return (
            f"states:n={self.n},m={self.m},cap={self.value_cap},coalitions={self.coalitions},"
            f"shared={'true' if self.shared_reward else 'false'}"
        )


# -- files ------------------------------------------------------------------------------------

_KEYS = ("kind", "name", "players", "states", "types", "coalitions", "shared_reward")


def _type_name(raw: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if raw is None:
        return "null"
    return names.get(type(raw), f"{type(raw).__name__} {raw!r}")


def check_keys(
    data: Mapping[Any, Any], allowed: tuple[str, ...], required: tuple[str, ...]
) -> None:
    """Reject unknown keys and missing required ones (ContextError naming the key)."""
    for key in data:
        if key not in allowed:
            raise ContextError(str(key), f"unknown key; allowed keys: {', '.join(allowed)}")
    for key in required:
        if key not in data:
            raise ContextError(key, "is required but missing")


def read_int(raw: Any, field: str, lo: int, hi: int) -> int:
    """An integer in ``lo..hi`` (integral floats accepted), else ContextError."""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ContextError(field, f"must be an integer, got {_type_name(raw)}")
    if not lo <= raw <= hi:
        raise ContextError(field, f"must lie in {lo}..{hi}, got {raw}")
    return int(raw)


def read_coalitions(raw: Any, n: int) -> Partition | None:
    """An optional list of lists of players forming a partition."""
    if raw is None:
        return None
    if not isinstance(raw, list | tuple):
        raise ContextError(
            "coalitions",
            f"must be a list of lists of players, e.g. [[0], [1, 2]]; got {_type_name(raw)}",
        )
    for k, block in enumerate(raw):
        if not isinstance(block, list | tuple):
            raise ContextError(
                f"coalitions[{k}]", f"must be a list of player indices; got {_type_name(block)}"
            )
    return check_partition(raw, n)


def read_common(data: Mapping[str, Any]) -> tuple[bool, str]:
    """``shared_reward`` (default true) and ``name`` (default empty)."""
    shared = data.get("shared_reward", True)
    if not isinstance(shared, bool):
        raise ContextError("shared_reward", f"must be true or false, got {shared!r}")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise ContextError("name", f"must be a string, got {_type_name(name)}")
    return shared, name


def states_from_dict(data: Mapping[str, Any]) -> StateContext:
    """Build a :class:`StateContext` from a decoded document, raising :class:`ContextError`.

    Format (0-based players and states)::

        {"kind": "states", "players": 3, "states": ["a", "b"],   # or a count: "states": 2
         "types": [[1, 0], [0, 2], [1, 1]],                      # types[i][s] = θ_i(s) >= 0
         "coalitions": [[0], [1, 2]], "shared_reward": true, "name": "demo"}
    """
    if not isinstance(data, Mapping):
        raise ContextError("(top level)", f"must be an object; got {_type_name(data)}")
    check_keys(data, _KEYS, required=("players", "states", "types"))
    if data.get("kind", "states") != "states":
        raise ContextError("kind", f"expected 'states', got {data.get('kind')!r}")
    n = read_int(data["players"], "players", 2, MAX_PLAYERS)
    raw_states = data["states"]
    if isinstance(raw_states, list | tuple):
        labels: tuple[str, ...] | None = tuple(raw_states)
        for s, lab in enumerate(raw_states):
            if not isinstance(lab, str):
                raise ContextError(
                    f"states[{s}]", f"a state label must be a string, got {_type_name(lab)}"
                )
        k = len(raw_states)
        if not 1 <= k <= MAX_STATES:
            raise ContextError("states", f"needs 1..{MAX_STATES} states, got {k}")
    else:
        labels = None
        k = read_int(raw_states, "states", 1, MAX_STATES)
    rows = data["types"]
    if not isinstance(rows, list | tuple):
        raise ContextError(
            "types", f"must be a list with one row per player; got {_type_name(rows)}"
        )
    if len(rows) != n:
        raise ContextError("types", f"has {len(rows)} rows but players is {n}")
    table = np.zeros((n, k), dtype=np.int64)
    for i, row in enumerate(rows):
        if not isinstance(row, list | tuple):
            raise ContextError(
                f"types[{i}]", f"must be a list of {k} integers; got {_type_name(row)}"
            )
        if len(row) != k:
            raise ContextError(f"types[{i}]", f"has {len(row)} entries but there are {k} states")
        for s, x in enumerate(row):
            table[i, s] = read_int(x, f"types[{i}][{s}]", 0, (1 << 53) - 1)
    coalitions = read_coalitions(data.get("coalitions"), n)
    shared, name = read_common(data)
    return StateContext(
        types=table, labels=labels, coalitions=coalitions, shared_reward=shared, name=name
    )


def states_to_dict(ctx: StateContext) -> dict[str, Any]:
    """A JSON-ready dict, the inverse of :func:`states_from_dict`."""
    out: dict[str, Any] = {"kind": "states"}
    if ctx.name:
        out["name"] = ctx.name
    out["players"] = ctx.n
    out["states"] = list(ctx.labels)
    out["types"] = [[int(x) for x in row] for row in ctx.types]
    out["coalitions"] = [list(c) for c in ctx.coalitions]
    out["shared_reward"] = bool(ctx.shared_reward)
    json.dumps(out)  # fail here, not in a caller, if something is not JSON-ready
    return out
