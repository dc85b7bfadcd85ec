"""Batched context sampling: ``B`` contexts of one generator at once, as a ContextBatch.

Each batched sampler wraps an exact generator (:mod:`mechgym.envs.model.generators`,
:class:`~mechgym.envs.model.states.StatesGenerator`,
:class:`~mechgym.envs.model.market.MarketGenerator`) and draws from the *same distribution*
with whole-batch numpy draws from the ``numpy.random.Generator`` passed in. The random
stream is not the exact generator's (the exact generator draws one context after another),
so the same seed gives different contexts on the two paths; ``tests/test_batched_generators``
compares the distributions. Every context of a batch is valid: ``batch.context(b)`` passes
the validating constructors.

:func:`make_batch_generator` reads the spec strings of
:func:`~mechgym.envs.model.generators.make_generator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ContextError
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.model.generators import (
    WRONG_RATE,
    AdditiveGenerator,
    AuctionGenerator,
    CatsGenerator,
    SingleMindedGenerator,
    UniformGenerator,
    make_generator,
)

__all__ = ["BatchGenerator", "coalition_labels", "make_batch_generator"]


def _bits(m: int) -> np.ndarray:
    """``(2**m, m)`` membership: entry ``[S, g]`` is 1 iff good ``g`` is in ``S``."""
    return (np.arange(1 << m)[:, None] >> np.arange(m)[None, :]) & 1


def coalition_labels(mode: str, B: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(B, n)`` coalition labels (smallest member's index) drawn as the exact generators'
    collusion layer: ``"independent"``, ``"random"`` (each player draws a label in
    ``0..n-1``; equal labels collude), ``"pair"`` (players 0 and 1) or ``"grand"``."""
    if mode == "independent":
        return np.broadcast_to(np.arange(n, dtype=np.int64), (B, n)).copy()
    if mode == "pair":
        row = np.arange(n, dtype=np.int64)
        row[1] = 0
        return np.broadcast_to(row, (B, n)).copy()
    if mode == "grand":
        return np.zeros((B, n), dtype=np.int64)
    if mode != "random":
        raise ContextError("coalitions", f"{mode!r} is not one of independent, random, pair, grand")
    drawn = rng.integers(0, n, size=(B, n))
    # the first player holding each drawn label names the coalition
    return np.argmax(drawn[:, :, None] == drawn[:, None, :], axis=2).astype(np.int64)


def _check_rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"sample needs a numpy.random.Generator, got {type(rng).__name__}")
    return rng


@dataclass(frozen=True)
class BatchGenerator:
    """Draws batches from the distribution of an exact generator.

    Parameters
    ----------
    base : generator
        The exact generator (an :class:`AuctionGenerator` subclass, a ``StatesGenerator`` or
        a ``MarketGenerator``): its validated fields are the batch's parameters.
    """

    base: Any

    def __post_init__(self) -> None:
        kind = getattr(self.base, "kind", None)
        if kind == "auction" and type(self.base) not in _VALUES:
            raise ContextError("generator", f"no batched sampler for {type(self.base).__name__}")
        if kind not in ("auction", "states", "market"):
            raise ContextError("generator", f"no batched sampler for {self.base!r}")

    @property
    def kind(self) -> str:
        """``"auction"``, ``"states"`` or ``"market"``."""
        return str(self.base.kind)

    @property
    def n(self) -> int:
        """Players."""
        return int(self.base.n)

    @property
    def m(self) -> int:
        """Goods (auctions, markets) or states."""
        return int(self.base.m)

    def spec(self) -> str:
        """The exact generator's spec string."""
        return str(self.base.spec())

    def sample(self, B: int, rng: np.random.Generator) -> ContextBatch:
        """Draw ``B`` contexts at once, every random draw from ``rng``.

        Parameters
        ----------
        B : int
            Batch size, at least 1.
        rng : numpy.random.Generator
            The only source of randomness (an int is accepted as a seed).
        """
        if isinstance(B, bool) or not isinstance(B, int | np.integer) or B < 1:
            raise ContextError("batch", f"the batch size must be an integer >= 1, got {B!r}")
        rng = _check_rng(rng)
        B = int(B)
        if self.kind == "states":
            return self._states(B, rng)
        if self.kind == "market":
            return self._market(B, rng)
        return self._auction(B, rng)

    # -- kinds -----------------------------------------------------------------------------
    def _auction(self, B: int, rng: np.random.Generator) -> ContextBatch:
        g: AuctionGenerator = self.base
        values = _VALUES[type(g)](g, B, rng)
        lower = _beliefs(g, values, rng)
        labels = coalition_labels(g.coalitions, B, g.n, rng)
        shared = np.full(B, bool(g.shared_reward))
        return ContextBatch("auction", values, labels, shared, lower=lower)

    def _states(self, B: int, rng: np.random.Generator) -> ContextBatch:
        g = self.base
        types = rng.integers(0, g.value_cap + 1, size=(B, g.n, g.m))
        if g.positive_welfare:
            # Redrawing the zero-welfare episodes is rejection sampling: the kept types have
            # the exact generator's conditional distribution (types ≠ 0).
            for _ in range(10_000):
                zero = np.flatnonzero(types.sum(axis=(1, 2)) == 0)
                if zero.size == 0:
                    break
                types[zero] = rng.integers(0, g.value_cap + 1, size=(zero.size, g.n, g.m))
            else:  # pragma: no cover - probability (value_cap+1)**(-n*m*10000)
                raise ContextError("positive_welfare", "could not draw a context with MSW > 0")
        labels = coalition_labels(g.coalitions, B, g.n, rng)
        shared = np.full(B, bool(g.shared_reward))
        return ContextBatch("states", types.astype(np.int64), labels, shared)

    def _market(self, B: int, rng: np.random.Generator) -> ContextBatch:
        g = self.base
        hi = g.value_cap - 1
        lo = -hi if g.negative else 0
        size = 1 << g.m
        values = np.zeros((B, g.n, size), dtype=np.int64)
        values[:, :, 1:] = rng.integers(lo, hi + 1, size=(B, g.n, size - 1))
        owners = rng.integers(0, g.n, size=(B, g.m))
        goods = np.left_shift(1, np.arange(g.m, dtype=np.int64))
        endowment = ((owners[:, None, :] == np.arange(g.n)[None, :, None]) * goods).sum(axis=2)
        labels = coalition_labels(g.coalitions, B, g.n, rng)
        shared = np.full(B, bool(g.shared_reward))
        return ContextBatch(
            "market", values, labels, shared, endowment=endowment.astype(np.int64), k=int(g.k)
        )


# -- value families ----------------------------------------------------------------------------


def _uniform(g: AuctionGenerator, B: int, rng: np.random.Generator) -> np.ndarray:
    size = 1 << g.m
    values = np.zeros((B, g.n, size), dtype=np.int64)
    values[:, :, 1:] = rng.integers(0, g.value_cap + 1, size=(B, g.n, size - 1))
    return values


def _additive(g: AuctionGenerator, B: int, rng: np.random.Generator) -> np.ndarray:
    per_good = rng.integers(0, g.value_cap // g.m + 1, size=(B, g.n, g.m))
    return (per_good @ _bits(g.m).T).astype(np.int64)


def _single_minded(g: AuctionGenerator, B: int, rng: np.random.Generator) -> np.ndarray:
    size = 1 << g.m
    desired = rng.integers(1, size, size=(B, g.n))
    worth = rng.integers(1, g.value_cap + 1, size=(B, g.n))
    masks = np.arange(size)[None, None, :]
    contains = (masks & desired[:, :, None]) == desired[:, :, None]
    return np.where(contains, worth[:, :, None], 0).astype(np.int64)


def _cats(g: AuctionGenerator, B: int, rng: np.random.Generator) -> np.ndarray:
    """Paths on a ring, as :class:`CatsGenerator`: per player a home good and 1..3 arcs."""
    n, m, cap = g.n, g.m, g.value_cap
    longest = min(m, 3)
    base = rng.integers(1, max(1, cap // longest) + 1, size=(B, m))
    values = np.zeros((B, n, 1 << m), dtype=np.int64)
    home = rng.integers(0, m, size=(B, n))
    bids = rng.integers(1, 4, size=(B, n))
    rows = np.arange(B)[:, None]
    b_idx = np.broadcast_to(rows, (B, n))
    p_idx = np.broadcast_to(np.arange(n)[None, :], (B, n))
    for t in range(3):
        length = rng.integers(1, longest + 1, size=(B, n))
        start = home - rng.integers(0, length)  # offset uniform in 0..length-1
        mask = np.zeros((B, n), dtype=np.int64)
        total = np.zeros((B, n), dtype=np.int64)
        for s in range(longest):
            good = (start + s) % m
            on = s < length
            mask |= np.where(on, np.left_shift(1, good), 0)
            total += np.where(on, base[rows, good], 0)
        noise = rng.uniform(0.8, 1.2, size=(B, n))
        price = np.clip(np.floor(total * noise).astype(np.int64), 1, cap)
        live = t < bids  # the t-th arc exists only for players bidding on more than t
        current = values[b_idx, p_idx, mask]
        values[b_idx, p_idx, mask] = np.where(live, np.maximum(current, price), current)
    return values


_VALUES = {
    UniformGenerator: _uniform,
    AdditiveGenerator: _additive,
    SingleMindedGenerator: _single_minded,
    CatsGenerator: _cats,
}


def _beliefs(g: AuctionGenerator, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The belief layer of :class:`AuctionGenerator` over a batch: ``(B, n, n, 2^m)``."""
    B, n, size = values.shape
    truth = np.broadcast_to(values[:, None, :, :], (B, n, n, size))
    diag = np.arange(n)
    if g.belief == "none":
        lower = np.zeros((B, n, n, size), dtype=np.int64)
    elif g.belief == "exact":
        lower = truth.copy()
    else:
        # u ~ U[1 - noise, 1), scaled in place (the generic uniform() is slower)
        u = rng.random((B, n, n, size))
        u *= g.belief_noise
        u += 1.0 - g.belief_noise
        np.multiply(truth, u, out=u)
        lower = np.minimum(np.floor(u, out=u).astype(np.int64), truth)
        if g.belief == "wrong":
            cap = g.value_cap
            flip = rng.random((B, n, n, size)) < WRONG_RATE
            bump = rng.integers(1, cap // 4 + 2, size=(B, n, n, size))
            eligible = truth < cap
            eligible[:, diag, diag] = False
            eligible[..., 0] = False
            flip &= eligible
            # At least one wrong entry whenever one is possible: flip one eligible entry
            # chosen uniformly (the largest of iid uniform keys over the eligible entries).
            flat_el = eligible.reshape(B, -1)
            need = ~flip.reshape(B, -1).any(axis=1) & flat_el.any(axis=1)
            keys = np.where(flat_el, rng.random(flat_el.shape), -1.0)
            pick = np.argmax(keys, axis=1)
            flat_flip = flip.reshape(B, -1)
            flat_flip[np.flatnonzero(need), pick[need]] = True
            lower = np.where(flip, np.minimum(truth + bump, cap), lower)
    lower[:, diag, diag] = values
    lower[..., 0] = 0
    return lower


def make_batch_generator(spec: str) -> BatchGenerator:
    """A batched sampler from a spec string, as :func:`make_generator` reads it.

    Parameters
    ----------
    spec : str
        E.g. ``"uniform:n=3,m=2,cap=20,belief=noisy,coalitions=random"``,
        ``"states:n=3,m=2,cap=3"`` or ``"market:n=3,m=2,k=3"``.

    Raises
    ------
    ContextError
        As :func:`make_generator` for a bad spec.
    """
    return BatchGenerator(make_generator(spec))
