"""Auction contexts: true values, beliefs as lower envelopes, and the collusion structure.

A valuation is an integer array over bundle bitmasks, shape ``(n, 2**m)``, with value 0 on the
empty bundle. A player's belief about the others is stored as its lower envelope
``lower[i, j, S]``: the highest price at which player ``i`` is sure ``j`` would buy ``S``. A
take-it-or-leave-it offer of ``S`` at price ``p`` to ``j`` is sure for ``i`` iff
``p <= lower[i, j, S]``. ``lower[i, i]`` equals ``values[i]``. Beliefs may be wrong (seed 000
allows it): ``lower[i, j, S] > values[j, S]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ContextError
from mechgym.envs.model.limits import MAX_AMOUNT
from mechgym.envs.model.outcome import Outcome

Partition = tuple[tuple[int, ...], ...]


def singletons(n: int) -> Partition:
    """The collusion structure in which every player is independent."""
    return tuple((i,) for i in range(n))


def check_partition(
    coalitions: Iterable[Iterable[int]], n: int, field: str = "coalitions"
) -> Partition:
    """Validate and normalise a partition of ``0..n-1`` (each block sorted, blocks by minimum)."""
    blocks: list[tuple[int, ...]] = []
    seen: set[int] = set()
    for k, block in enumerate(coalitions):
        members = []
        for p in block:
            if isinstance(p, bool) or not isinstance(p, int | np.integer):
                raise ContextError(f"{field}[{k}]", f"member {p!r} is not a player index")
            p = int(p)
            if not 0 <= p < n:
                raise ContextError(f"{field}[{k}]", f"player {p} is outside 0..{n - 1}")
            if p in seen:
                raise ContextError(f"{field}[{k}]", f"player {p} is in two coalitions")
            seen.add(p)
            members.append(p)
        if not members:
            raise ContextError(f"{field}[{k}]", "a coalition must have at least one member")
        blocks.append(tuple(sorted(members)))
    missing = sorted(set(range(n)) - seen)
    if missing:
        raise ContextError(field, f"players {missing} are in no coalition; list them as singletons")
    return tuple(sorted(blocks))


def _int_array(a: Any, shape: tuple[int, ...], field: str) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise ContextError(field, f"cannot be read as an integer array ({exc})") from None
    if arr.shape != shape:
        raise ContextError(field, f"has shape {arr.shape}, expected {shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ContextError(field, "values and prices must be integers")
    elif arr.dtype.kind not in "iu":
        raise ContextError(field, f"must hold integers, got dtype {arr.dtype}")
    # checked before the cast: 2**70 as a float must not wrap around in int64
    if arr.size and np.abs(arr.astype(np.float64)).max() > MAX_AMOUNT:
        raise ContextError(field, "values and lower bounds must be at most 2**53")
    arr = arr.astype(np.int64, copy=True)
    arr.setflags(write=False)
    return arr


def membership(coalitions: Partition, n: int) -> np.ndarray:
    """``owner[i]`` = index of the coalition of player ``i``."""
    owner = np.empty(n, dtype=np.int64)
    for k, block in enumerate(coalitions):
        owner[list(block)] = k
    return owner


class Collusion:
    """The collusion structure every context kind shares: coalitions and shared rewards.

    Needs ``coalitions``, ``shared_reward``, ``_coalition_index`` (see :func:`membership`),
    ``n`` and a ``utilities(outcome)`` method on the class it is mixed into.
    """

    coalitions: Partition
    shared_reward: bool
    _coalition_index: np.ndarray

    def coalition_of(self, i: int) -> tuple[int, ...]:
        """The coalition (sorted members) that player ``i`` belongs to."""
        return self.coalitions[int(self._coalition_index[i])]

    @property
    def acting_coalitions(self) -> Partition:
        """The agents of the game: the coalitions when rewards are shared (members maximise
        the coalition's total), else every player alone (each is rewarded, so acts, alone).

        The one definition of who colludes that every mechanism's guarantee, benchmark and
        predicted play reads.
        """
        return self.coalitions if self.shared_reward else singletons(self.n)  # type: ignore[attr-defined]

    @property
    def independent(self) -> tuple[int, ...]:
        """Players who act alone: singleton acting coalitions (see :attr:`acting_coalitions`)."""
        return tuple(c[0] for c in self.acting_coalitions if len(c) == 1)

    @property
    def collusive(self) -> bool:
        """Whether some acting coalition has two or more members."""
        return any(len(c) > 1 for c in self.acting_coalitions)

    def rewards(self, outcome: Outcome) -> tuple[Fraction, ...]:
        """Per-player rewards: utilities, or coalition totals when rewards are shared."""
        u = self.utilities(outcome)  # type: ignore[attr-defined]
        if not self.shared_reward or len(self.coalitions) == len(u):
            return u
        totals = [sum((u[j] for j in c), Fraction(0)) for c in self.coalitions]
        return tuple(totals[int(k)] for k in self._coalition_index)


@dataclass(frozen=True, eq=False)
class AuctionContext(Collusion):
    """A combinatorial auction: ``n`` players, ``m`` goods, values, beliefs, coalitions.

    Parameters
    ----------
    values : array-like, shape (n, 2**m)
        ``values[i, S]`` = θ_i(S), non-negative integers, 0 on the empty bundle.
    lower : array-like, shape (n, n, 2**m), optional
        Lower envelopes of beliefs; defaults to knowing nothing (zeros) about others.
    coalitions : sequence of sequences of int, optional
        A partition of the players; default all independent.
    shared_reward : bool
        Whether members of a coalition are rewarded with the coalition's total utility.
    name : str
        A label for reports.
    """

    values: np.ndarray
    lower: np.ndarray | None = None
    coalitions: Partition | None = None
    shared_reward: bool = True
    name: str = ""

    kind = "auction"

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim != 2:
            raise ContextError("values", f"must be a 2-d array (players x bundles), got {v.ndim}-d")
        n, size = v.shape
        if n < 2:
            raise ContextError("players", f"a mechanism needs at least 2 players, got {n}")
        m = size.bit_length() - 1
        if size < 2 or 1 << m != size:
            raise ContextError("values", f"needs 2**m columns (one per bundle), got {size}")
        values = _int_array(v, (n, size), "values")
        if np.any(values[:, 0] != 0):
            i = int(np.flatnonzero(values[:, 0])[0])
            raise ContextError(f"values[{i}]", "the empty bundle must be worth 0")
        if np.any(values < 0):
            i, s = (int(x) for x in np.argwhere(values < 0)[0])
            raise ContextError(
                f"values[{i}]", f"bundle {s} has a negative value; auctions need values >= 0"
            )
        if self.lower is None:
            lower = np.zeros((n, n, size), dtype=np.int64)
            lower[np.arange(n), np.arange(n)] = values
        else:
            lower = _int_array(self.lower, (n, n, size), "beliefs").copy()
            diag = np.arange(n)
            if not np.array_equal(lower[diag, diag], values):
                i = int(np.flatnonzero(np.any(lower[diag, diag] != values, axis=1))[0])
                raise ContextError(
                    f"beliefs[{i}][{i}]", "a player's belief about itself must equal its values"
                )
            if np.any(lower < 0):
                i, j, s = (int(x) for x in np.argwhere(lower < 0)[0])
                raise ContextError(f"beliefs[{i}][{j}]", f"bundle {s} has a negative lower bound")
            if np.any(lower[:, :, 0] != 0):
                i, j = (int(x) for x in np.argwhere(lower[:, :, 0] != 0)[0])
                raise ContextError(f"beliefs[{i}][{j}]", "the empty bundle must have lower bound 0")
        lower.setflags(write=False)
        coalitions = (
            singletons(n) if self.coalitions is None else check_partition(self.coalitions, n)
        )
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "coalitions", coalitions)
        object.__setattr__(self, "_coalition_index", membership(coalitions, n))

    @classmethod
    def trusted(
        cls,
        values: np.ndarray,
        lower: np.ndarray,
        coalitions: Partition,
        shared_reward: bool = True,
        name: str = "",
    ) -> AuctionContext:
        """Build without validation, for generators whose output is valid by construction
        (their tests compare against the validating constructor)."""
        ctx = object.__new__(cls)
        coalitions = tuple(sorted(tuple(sorted(int(p) for p in b)) for b in coalitions))
        values = np.asarray(values, dtype=np.int64)
        lower = np.asarray(lower, dtype=np.int64)
        values.setflags(write=False)
        lower.setflags(write=False)
        owner = membership(coalitions, values.shape[0])
        for key, val in (
            ("values", values),
            ("lower", lower),
            ("coalitions", coalitions),
            ("shared_reward", shared_reward),
            ("name", name),
            ("_coalition_index", owner),
        ):
            object.__setattr__(ctx, key, val)
        return ctx

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
    def value_cap(self) -> int:
        """Largest value or belief in the context (at least 1)."""
        return max(1, int(self.values.max()), int(self.lower.max()))

    # -- beliefs ---------------------------------------------------------------------------
    def beliefs_correct(self) -> bool:
        """True iff every lower bound is below the true value (001/002 assume this)."""
        return bool(np.all(self.lower <= self.values[None, :, :]))

    # -- outcomes --------------------------------------------------------------------------
    def utilities(self, outcome: Outcome) -> tuple[Fraction, ...]:
        """Quasi-linear utilities θ_i(A_i) − P_i, exact."""
        return tuple(
            int(self.values[i, outcome.alloc[i]]) - outcome.prices[i] for i in range(self.n)
        )

    def welfare(self, outcome: Outcome) -> int:
        """Social welfare Σ θ_i(A_i)."""
        return int(sum(int(self.values[i, outcome.alloc[i]]) for i in range(self.n)))

    # -- observations ----------------------------------------------------------------------
    @staticmethod
    def private_size(n: int, m: int) -> int:
        """Length of :meth:`private_features` for ``n`` players and ``m`` goods."""
        return (n + 1) << m

    def private_features(self, i: int) -> np.ndarray:
        """What player ``i`` privately knows: own values, then its lower bounds on everyone."""
        return np.concatenate([self.values[i], self.lower[i].ravel()])

    # -- construction helpers ----------------------------------------------------------------
    @classmethod
    def from_candidates(
        cls,
        values: Any,
        candidates: Sequence[Sequence[Any]],
        **kwargs: Any,
    ) -> AuctionContext:
        """Build a context from finite belief sets (seed 000's B_i).

        ``candidates[i]`` is a list of full value profiles (each shape ``(n, 2**m)``) that
        player ``i`` deems possible; the lower envelope is their pointwise minimum, with
        player ``i``'s own row replaced by its true values.
        """
        v = np.asarray(values, dtype=np.int64)
        n = v.shape[0]
        if len(candidates) != n:
            raise ContextError(
                "beliefs", f"needs one candidate set per player, got {len(candidates)}"
            )
        lower = np.zeros((n, n, v.shape[1]), dtype=np.int64)
        for i, cand in enumerate(candidates):
            if len(cand) == 0:
                raise ContextError(f"beliefs[{i}]", "a candidate set must not be empty")
            arr = np.asarray(cand)
            if arr.ndim != 3 or arr.shape[1:] != v.shape:
                raise ContextError(f"beliefs[{i}]", f"each candidate must have shape {v.shape}")
            lower[i] = arr.min(axis=0)
            lower[i, i] = v[i]
        return cls(values=v, lower=lower, **kwargs)

    def with_coalitions(
        self, coalitions: Iterable[Iterable[int]], shared_reward: bool | None = None
    ) -> AuctionContext:
        """A copy with another collusion structure."""
        return AuctionContext(
            values=self.values,
            lower=self.lower,
            coalitions=tuple(tuple(c) for c in coalitions),
            shared_reward=self.shared_reward if shared_reward is None else shared_reward,
            name=self.name,
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        return {
            "kind": self.kind,
            "name": self.name,
            "players": self.n,
            "goods": self.m,
            "coalitions": [list(c) for c in self.coalitions],
            "shared_reward": self.shared_reward,
            "beliefs_correct": self.beliefs_correct(),
        }
