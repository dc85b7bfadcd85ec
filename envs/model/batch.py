"""``B`` contexts of one kind and size as arrays: the model data of the batched path.

:class:`ContextBatch` is re-exported by :mod:`mechgym.envs.engine.batched`, where it was
defined before; it lives in the model layer because generators and solvers build and read
it without the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["BatchedOutcome", "ContextBatch"]


class BatchedOutcome(Protocol):
    """What :meth:`ContextBatch.utilities` reads of a batch of outcomes (the engine's
    :class:`~mechgym.envs.engine.batched.BatchOutcome`)."""

    alloc: np.ndarray
    prices: np.ndarray
    state: np.ndarray


# -- contexts ------------------------------------------------------------------------------
@dataclass
class ContextBatch:
    """``B`` contexts of one kind and size as arrays.

    Attributes
    ----------
    kind : str
        ``"auction"``, ``"states"`` or ``"market"``.
    values : ndarray, int64
        Auctions and markets: ``(B, n, 2^m)`` values θ_i(S). States: ``(B, n, K)`` types
        θ_i(ω).
    lower : ndarray or None
        Auctions: ``(B, n, n, 2^m)`` lower envelopes of beliefs.
    coalition : ndarray, int64, shape (B, n)
        Label of each player's coalition: the smallest member's index.
    shared_reward : ndarray, bool, shape (B,)
    endowment : ndarray or None
        Markets: ``(B, n)`` endowed bundle per player.
    k : int or None
        Markets: the value range parameter (values in (−2^{k−1}, 2^{k−1})).
    contexts : list or None
        The exact contexts, when the batch was built from them.
    """

    kind: str
    values: np.ndarray
    coalition: np.ndarray
    shared_reward: np.ndarray
    lower: np.ndarray | None = None
    endowment: np.ndarray | None = None
    k: int | None = None
    contexts: list[Any] | None = field(default=None, repr=False)

    @property
    def B(self) -> int:
        """Number of episodes."""
        return int(self.values.shape[0])

    @property
    def n(self) -> int:
        """Number of players."""
        return int(self.values.shape[1])

    @property
    def m(self) -> int:
        """Goods (auctions, markets) or states (states contexts)."""
        size = int(self.values.shape[2])
        return size if self.kind == "states" else size.bit_length() - 1

    @classmethod
    def from_contexts(cls, ctxs: Sequence[Any]) -> ContextBatch:
        """Stack exact contexts of one kind and size."""
        if not ctxs:
            raise ValueError("a batch needs at least one context")
        kind = ctxs[0].kind
        if any(c.kind != kind for c in ctxs):
            raise ValueError("every context of a batch must be of one kind")
        coalition = np.array(
            [[min(c.coalition_of(i)) for i in range(c.n)] for c in ctxs], dtype=np.int64
        )
        shared = np.array([bool(c.shared_reward) for c in ctxs], dtype=bool)
        if kind == "states":
            values = np.stack([np.asarray(c.types, dtype=np.int64) for c in ctxs])
            return cls(kind, values, coalition, shared, contexts=list(ctxs))
        values = np.stack([np.asarray(c.values, dtype=np.int64) for c in ctxs])
        if kind == "market":
            endow = np.array([list(c.endowment) for c in ctxs], dtype=np.int64)
            return cls(
                kind,
                values,
                coalition,
                shared,
                endowment=endow,
                k=int(ctxs[0].k),
                contexts=list(ctxs),
            )
        lower = np.stack([np.asarray(c.lower, dtype=np.int64) for c in ctxs])
        return cls(kind, values, coalition, shared, lower=lower, contexts=list(ctxs))

    def coalitions_of(self, b: int) -> tuple[tuple[int, ...], ...]:
        """Episode ``b``'s partition, as sorted tuples ordered by smallest member."""
        lab = self.coalition[b]
        return tuple(
            tuple(int(j) for j in np.flatnonzero(lab == c)) for c in sorted(set(lab.tolist()))
        )

    def context(self, b: int) -> Any:
        """Episode ``b`` as an exact context (the original object when there is one)."""
        if self.contexts is not None:
            return self.contexts[b]
        coalitions = self.coalitions_of(b)
        shared = bool(self.shared_reward[b])
        if self.kind == "states":
            from mechgym.envs.model.states import StateContext

            return StateContext(self.values[b], coalitions=coalitions, shared_reward=shared)
        if self.kind == "market":
            from mechgym.envs.model.market import MarketContext

            assert self.endowment is not None and self.k is not None
            return MarketContext(
                self.values[b],
                tuple(int(e) for e in self.endowment[b]),
                self.k,
                coalitions=coalitions,
                shared_reward=shared,
            )
        from mechgym.envs.model.context import AuctionContext

        return AuctionContext.trusted(
            self.values[b], self.lower[b], coalitions, shared_reward=shared
        )

    def take(self, idx: np.ndarray) -> ContextBatch:
        """The sub-batch of episodes ``idx``."""
        return ContextBatch(
            self.kind,
            self.values[idx],
            self.coalition[idx],
            self.shared_reward[idx],
            None if self.lower is None else self.lower[idx],
            None if self.endowment is None else self.endowment[idx],
            self.k,
            None if self.contexts is None else [self.contexts[int(i)] for i in np.atleast_1d(idx)],
        )

    def put(self, idx: np.ndarray, other: ContextBatch) -> None:
        """Overwrite episodes ``idx`` with ``other`` (same kind and sizes), in place."""
        self.values[idx] = other.values
        self.coalition[idx] = other.coalition
        self.shared_reward[idx] = other.shared_reward
        if self.lower is not None:
            self.lower[idx] = other.lower
        if self.endowment is not None:
            self.endowment[idx] = other.endowment
        if self.contexts is not None:
            if other.contexts is None:
                self.contexts = None
            else:
                for j, i in enumerate(np.atleast_1d(idx)):
                    self.contexts[int(i)] = other.contexts[j]

    # -- outcomes ------------------------------------------------------------------------
    def utilities(self, out: BatchedOutcome) -> np.ndarray:
        """``(B, n)`` float64 utilities, as the exact context's ``utilities``."""
        B, n = self.B, self.n
        rows = np.arange(B)[:, None]
        cols = np.arange(n)[None, :]
        if self.kind == "states":
            s = out.state
            gained = np.where(
                (s >= 0)[:, None],
                self.values[rows, cols, np.maximum(s, 0)[:, None]],
                0,
            )
            return gained.astype(np.float64) - out.prices
        gained = self.values[rows, cols, out.alloc].astype(np.float64)
        if self.kind == "market":
            assert self.endowment is not None
            gained -= self.values[rows, cols, self.endowment]
        return gained - out.prices

    def welfare(self, out: BatchedOutcome) -> np.ndarray:
        """``(B,)`` social welfare of the outcomes (Σ θ_i of what each player ends with)."""
        B, n = self.B, self.n
        rows = np.arange(B)[:, None]
        cols = np.arange(n)[None, :]
        if self.kind == "states":
            s = out.state
            w = self.values[rows, cols, np.maximum(s, 0)[:, None]].sum(axis=1)
            return np.where(s >= 0, w, 0).astype(np.float64)
        return self.values[rows, cols, out.alloc].sum(axis=1).astype(np.float64)

    def rewards(self, utilities: np.ndarray) -> np.ndarray:
        """Per-player rewards: utilities, or coalition totals where rewards are shared."""
        lab = self.coalition
        same = lab[:, :, None] == lab[:, None, :]  # (B, n, n)
        totals = np.einsum("bij,bj->bi", same.astype(np.float64), utilities)
        return np.where(self.shared_reward[:, None], totals, utilities)
