"""Seeded generators of auction contexts: values, then beliefs, then coalitions.

Every random draw comes from the ``numpy.random.Generator`` handed to ``sample``; the same
generator state gives the same context. Four value families (:data:`GENERATORS`) share a
belief layer and a collusion layer:

- ``belief``: ``"none"`` (zero lower bounds on the others), ``"exact"`` (lower bounds equal
  the truth), ``"noisy"`` (``floor(value * u)``, ``u ~ U[1 - belief_noise, 1)`` per entry,
  always correct) or ``"wrong"`` (noisy, but each entry with probability 0.3 is raised
  above the truth by ``1..value_cap // 4 + 1``, capped at ``value_cap``; at least one wrong
  entry whenever one is possible).
- ``coalitions``: ``"independent"``, ``"random"`` (each player draws a label in ``0..n-1``;
  equal labels collude; not uniform over set partitions), ``"pair"`` (players 0 and 1) or
  ``"grand"`` (everyone).

All values and lower bounds lie in ``0..value_cap``. :func:`make_generator` builds a
generator from a compact spec such as ``"uniform:n=3,m=2,cap=20,belief=noisy"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.errors import ContextError
from mechgym.envs.model.bundles import bundle_of
from mechgym.envs.model.context import AuctionContext, Partition, singletons
from mechgym.envs.model.limits import MAX_AMOUNT, MAX_BELIEF_ENTRIES, MAX_GOODS, MAX_PLAYERS

__all__ = [
    "BELIEFS",
    "COALITIONS",
    "GENERATORS",
    "MAX_GOODS",
    "AdditiveGenerator",
    "AuctionGenerator",
    "CatsGenerator",
    "SingleMindedGenerator",
    "UniformGenerator",
    "make_generator",
]

BELIEFS = ("none", "exact", "noisy", "wrong")
COALITIONS = ("independent", "random", "pair", "grand")
WRONG_RATE = 0.3


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


@dataclass(frozen=True)
class AuctionGenerator:
    """Base of the auction generators: validation, belief and collusion layers.

    Parameters
    ----------
    n : int
        Number of players, at least 2.
    m : int
        Number of goods, 1..12.
    value_cap : int
        Largest value or lower bound a sample can hold (sizes action spaces).
    belief : {"none", "exact", "noisy", "wrong"}
        How lower bounds on the other players are drawn.
    belief_noise : float
        In [0, 1]; lower bounds are at least ``1 - belief_noise`` times the truth (rounded
        down) for ``"noisy"`` and the correct entries of ``"wrong"``.
    coalitions : {"independent", "random", "pair", "grand"}
        The collusion structure.
    shared_reward : bool
        Whether coalition members are rewarded with the coalition's total utility.
    """

    n: int
    m: int
    value_cap: int = 20
    belief: str = "noisy"
    belief_noise: float = 0.5
    coalitions: str = "independent"
    shared_reward: bool = True

    context_class: ClassVar[type[AuctionContext]] = AuctionContext
    kind: ClassVar[str] = "auction"
    family: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not _is_int(self.n) or not 2 <= self.n <= MAX_PLAYERS:
            raise ContextError("n", f"must be an integer >= 2 and <= {MAX_PLAYERS}, got {self.n!r}")
        if not _is_int(self.m) or not 1 <= self.m <= MAX_GOODS:
            raise ContextError("m", f"must be an integer in 1..{MAX_GOODS}, got {self.m!r}")
        if int(self.n) ** 2 << int(self.m) > MAX_BELIEF_ENTRIES:
            raise ContextError(
                "n",
                f"{self.n} players and {self.m} goods need {int(self.n) ** 2 << int(self.m)} "
                f"belief entries; at most {MAX_BELIEF_ENTRIES} are supported",
            )
        if not _is_int(self.value_cap) or not 1 <= self.value_cap <= MAX_AMOUNT:
            raise ContextError(
                "value_cap", f"must be an integer >= 1 and <= 2**53, got {self.value_cap!r}"
            )
        if self.belief not in BELIEFS:
            raise ContextError("belief", f"{self.belief!r} is not one of {', '.join(BELIEFS)}")
        noise = self.belief_noise
        ok = isinstance(noise, int | float | np.floating) and not isinstance(noise, bool)
        if not ok or not 0.0 <= float(noise) <= 1.0:
            raise ContextError("belief_noise", f"must be a number in [0, 1], got {noise!r}")
        if self.coalitions not in COALITIONS:
            raise ContextError(
                "coalitions", f"{self.coalitions!r} is not one of {', '.join(COALITIONS)}"
            )
        if not isinstance(self.shared_reward, bool | np.bool_):
            raise ContextError(
                "shared_reward", f"must be true or false, got {self.shared_reward!r}"
            )
        # Canonical Python types keep equality, hashing and spec() stable.
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "m", int(self.m))
        object.__setattr__(self, "value_cap", int(self.value_cap))
        object.__setattr__(self, "belief_noise", float(noise))
        object.__setattr__(self, "shared_reward", bool(self.shared_reward))

    # -- public ----------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> AuctionContext:
        """Draw one context: values, then beliefs, then coalitions, all from ``rng``.

        Parameters
        ----------
        rng : numpy.random.Generator
            The only source of randomness (an int is accepted as a seed for convenience).
        """
        if _is_int(rng):
            rng = np.random.default_rng(int(rng))
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"sample needs a numpy.random.Generator, got {type(rng).__name__}")
        values = self._values(rng)
        lower = self._beliefs(values, rng)
        coalitions = self._coalitions(rng)
        # valid by construction; tests/test_generators.py checks it against the validator
        return AuctionContext.trusted(values, lower, coalitions, self.shared_reward, self.spec())

    def spec(self) -> str:
        """The spec string that :func:`make_generator` turns back into this generator."""
        return (
            f"{self.family}:n={self.n},m={self.m},cap={self.value_cap},belief={self.belief},"
            f"noise={self.belief_noise!r},coalitions={self.coalitions},"
            f"shared={'true' if self.shared_reward else 'false'}"
        )

    # -- layers ----------------------------------------------------------------------------
    def _values(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _beliefs(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, size = values.shape
        truth = np.broadcast_to(values[None, :, :], (n, n, size))
        if self.belief == "none":
            lower = np.zeros((n, n, size), dtype=np.int64)
        elif self.belief == "exact":
            lower = truth.copy()
        else:
            u = rng.uniform(1.0 - self.belief_noise, 1.0, size=(n, n, size))
            # u <= 1, so the floor never exceeds the truth.
            lower = np.minimum(np.floor(truth * u).astype(np.int64), truth)
            if self.belief == "wrong":
                cap = self.value_cap
                flip = rng.random((n, n, size)) < WRONG_RATE
                bump = rng.integers(1, cap // 4 + 2, size=(n, n, size))
                eligible = truth < cap
                eligible[np.arange(n), np.arange(n)] = False
                eligible[:, :, 0] = False
                flip &= eligible
                if not flip.any() and eligible.any():
                    where = np.flatnonzero(eligible)
                    flip.flat[where[rng.integers(where.size)]] = True
                lower = np.where(flip, np.minimum(truth + bump, cap), lower)
        lower[np.arange(n), np.arange(n)] = values
        lower[:, :, 0] = 0
        return lower

    def _coalitions(self, rng: np.random.Generator) -> Partition:
        n = self.n
        if self.coalitions == "independent":
            return singletons(n)
        if self.coalitions == "pair":
            return ((0, 1), *((i,) for i in range(2, n)))
        if self.coalitions == "grand":
            return (tuple(range(n)),)
        labels = rng.integers(0, n, size=n)
        blocks: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            blocks.setdefault(int(label), []).append(i)
        return tuple(sorted(tuple(b) for b in blocks.values()))


def _bits(m: int) -> np.ndarray:
    """Membership matrix, shape ``(2**m, m)``: entry ``[S, g]`` is 1 iff good g is in S."""
    return (np.arange(1 << m)[:, None] >> np.arange(m)[None, :]) & 1


@dataclass(frozen=True)
class UniformGenerator(AuctionGenerator):
    """Unrestricted values: every non-empty bundle iid uniform in ``0..value_cap``."""

    family: ClassVar[str] = "uniform"

    def _values(self, rng: np.random.Generator) -> np.ndarray:
        values = np.zeros((self.n, 1 << self.m), dtype=np.int64)
        values[:, 1:] = rng.integers(0, self.value_cap + 1, size=(self.n, (1 << self.m) - 1))
        return values


@dataclass(frozen=True)
class AdditiveGenerator(AuctionGenerator):
    """Additive values: each good uniform in ``0..value_cap // m``; a bundle is the sum.

    So every bundle is worth at most ``m * (value_cap // m) <= value_cap`` (all zero when
    ``value_cap < m``).
    """

    family: ClassVar[str] = "additive"

    def _values(self, rng: np.random.Generator) -> np.ndarray:
        per_good = rng.integers(0, self.value_cap // self.m + 1, size=(self.n, self.m))
        return (per_good @ _bits(self.m).T).astype(np.int64)


@dataclass(frozen=True)
class SingleMindedGenerator(AuctionGenerator):
    """Single-minded values: player ``i`` wants a uniform non-empty bundle ``D_i`` at a
    value uniform in ``1..value_cap``, and gets it from any superset (free disposal)."""

    family: ClassVar[str] = "single-minded"

    def _values(self, rng: np.random.Generator) -> np.ndarray:
        size = 1 << self.m
        desired = rng.integers(1, size, size=self.n)
        worth = rng.integers(1, self.value_cap + 1, size=self.n)
        masks = np.arange(size)[None, :]
        contains = (masks & desired[:, None]) == desired[:, None]
        return np.where(contains, worth[:, None], 0).astype(np.int64)


@dataclass(frozen=True)
class CatsGenerator(AuctionGenerator):
    """CATS-style related bundles (a simplified "paths on a ring" scenario).

    Goods sit on a ring and have common base prices uniform in ``1..max(1, value_cap // L)``
    with ``L = min(m, 3)``. Each player picks a home good and bids on 1..3 bundles, each an
    arc of ``1..L`` consecutive goods through its home good, valued at the sum of the base
    prices times a noise factor uniform in [0.8, 1.2), rounded down, kept in
    ``1..value_cap`` (the larger bid wins when two arcs coincide). Every other bundle is
    worth 0 (no free disposal).
    """

    family: ClassVar[str] = "cats"

    def _values(self, rng: np.random.Generator) -> np.ndarray:
        n, m, cap = self.n, self.m, self.value_cap
        longest = min(m, 3)
        base = rng.integers(1, max(1, cap // longest) + 1, size=m)
        values = np.zeros((n, 1 << m), dtype=np.int64)
        for i in range(n):
            home = int(rng.integers(m))
            for _ in range(int(rng.integers(1, 4))):
                length = int(rng.integers(1, longest + 1))
                start = home - int(rng.integers(length))
                goods = [(start + t) % m for t in range(length)]
                price = math.floor(int(base[goods].sum()) * float(rng.uniform(0.8, 1.2)))
                mask = bundle_of(goods)
                values[i, mask] = max(int(values[i, mask]), min(cap, max(1, price)))
        return values


GENERATORS: dict[str, type[AuctionGenerator]] = {
    "uniform": UniformGenerator,
    "additive": AdditiveGenerator,
    "single-minded": SingleMindedGenerator,
    "cats": CatsGenerator,
}
"""Family name (as in spec strings) -> generator class."""

# Spec key -> dataclass field.
_SPEC_KEYS = {
    "n": "n",
    "m": "m",
    "cap": "value_cap",
    "belief": "belief",
    "noise": "belief_noise",
    "coalitions": "coalitions",
    "shared": "shared_reward",
}
_FIELD_KEYS = {v: k for k, v in _SPEC_KEYS.items()}
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


def _parse_spec_value(key: str, text: str, field: str) -> Any:
    if key in ("n", "m", "cap"):
        try:
            return int(text)
        except ValueError:
            raise ContextError(field, f"{text!r} is not an integer") from None
    if key == "noise":
        try:
            value = float(text)
        except ValueError:
            raise ContextError(field, f"{text!r} is not a number in [0, 1]") from None
        if not math.isfinite(value):
            raise ContextError(field, f"{text!r} is not a number in [0, 1]")
        return value
    if key == "shared":
        low = text.lower()
        if low not in _TRUE + _FALSE:
            raise ContextError(field, f"{text!r} is not one of true, false")
        return low in _TRUE
    return text


def make_generator(spec: str) -> AuctionGenerator:
    """Build a generator from a compact spec, as used by the CLI's ``--generate``.

    Parameters
    ----------
    spec : str
        ``"<family>:<key>=<value>,..."``, e.g. ``"uniform:n=3,m=2,cap=20,belief=noisy,
        coalitions=random"``. Families: the keys of :data:`GENERATORS`. Keys: ``n`` and ``m``
        (required), ``cap``, ``belief``, ``noise``, ``coalitions``, ``shared``.

    Raises
    ------
    ContextError
        Naming the unknown family, unknown key or bad value (field ``generator.<key>``) and
        listing what is allowed.
    """
    if not isinstance(spec, str):
        raise ContextError("generator", f"a spec must be a string, got {type(spec).__name__}")
    head, _, rest = spec.strip().partition(":")
    family = head.strip().lower().replace("_", "-")
    if family in OTHER_KINDS:
        return _make_other(family, rest)
    if family not in GENERATORS:
        raise ContextError(
            "generator",
            f"unknown family {head.strip()!r}; available: {', '.join([*GENERATORS, *OTHER_KINDS])}",
        )
    kwargs: dict[str, Any] = {}
    for item in rest.split(","):
        if not item.strip():
            continue
        key, eq, text = (part.strip() for part in item.partition("="))
        field = f"generator.{key}"
        if key not in _SPEC_KEYS:
            raise ContextError(field, f"unknown key; allowed keys: {', '.join(_SPEC_KEYS)}")
        if not eq or not text:
            raise ContextError(field, f"needs a value, as in {key}=...")
        if _SPEC_KEYS[key] in kwargs:
            raise ContextError(field, "is given twice")
        kwargs[_SPEC_KEYS[key]] = _parse_spec_value(key, text, field)
    for key in ("n", "m"):
        if key not in kwargs:
            raise ContextError(f"generator.{key}", f"is required, e.g. '{family}:n=3,m=2'")
    try:
        return GENERATORS[family](**kwargs)
    except ContextError as exc:
        raise ContextError(
            f"generator.{_FIELD_KEYS.get(exc.field, exc.field)}", exc.problem
        ) from None


#: generators of the other context kinds: spec family -> (module, class, key -> field)
OTHER_KINDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "states": (
        "states",
        "StatesGenerator",
        {
            "n": "n",
            "m": "m",
            "cap": "value_cap",
            "coalitions": "coalitions",
            "shared": "shared_reward",
            "positive": "positive_welfare",
        },
    ),
    "market": (
        "market",
        "MarketGenerator",
        {
            "n": "n",
            "m": "m",
            "k": "k",
            "coalitions": "coalitions",
            "shared": "shared_reward",
            "negative": "negative",
        },
    ),
}


def _make_other(family: str, rest: str) -> Any:
    """``states:n=3,m=2,cap=3`` or ``market:n=3,m=2,k=3`` (m = states, resp. goods)."""
    import importlib

    module, cls, keys = OTHER_KINDS[family]
    kwargs: dict[str, Any] = {}
    for item in rest.split(","):
        if not item.strip():
            continue
        key, eq, text = (part.strip() for part in item.partition("="))
        field = f"generator.{key}"
        if key not in keys:
            raise ContextError(field, f"unknown key for {family}; allowed keys: {', '.join(keys)}")
        if not eq or not text:
            raise ContextError(field, f"needs a value, as in {key}=...")
        low = text.lower()
        if low in ("true", "false"):
            value: Any = low == "true"
        elif text.lstrip("-").isdigit() and text.isascii():
            value = int(text)
        else:
            value = text
        kwargs[keys[key]] = value
    for key in ("n", "m"):
        if key not in kwargs:
            raise ContextError(f"generator.{key}", f"is required, e.g. '{family}:n=3,m=2'")
    gen_cls = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    return gen_cls(**kwargs)
