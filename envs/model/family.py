"""A fixed family of contexts, drawn uniformly: one definition for both paths.

:class:`ContextFamily` is a generator look-alike for the exact path (``sample(rng)`` returns
one context, as :class:`~mechgym.envs.model.generators.AuctionGenerator` does) and, through
:class:`FamilySampler`, a batched context source (``sample(B, rng)`` returns a
:class:`~mechgym.envs.model.batch.ContextBatch`), as a batched generator wraps an exact one.
Both draw with the same rule (:meth:`ContextFamily.draw`), so a seeded generator picks the
same contexts on either path: ``rng.integers(k, size=B)``, which consumes nothing for a
family of one context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ContextError

from .batch import ContextBatch

__all__ = ["ContextFamily", "FamilySampler"]


@dataclass(frozen=True)
class ContextFamily:
    """A fixed, non-empty list of contexts of one kind, ``n`` and ``m``, drawn uniformly."""

    contexts: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.contexts:
            raise ContextError("contexts", "a family needs at least one context")
        first = self.contexts[0]
        for k, c in enumerate(self.contexts):
            if (c.n, c.m) != (first.n, first.m) or type(c) is not type(first):
                raise ContextError(
                    f"contexts[{k}]", "every context of a family needs the same kind, n and m"
                )

    @property
    def n(self) -> int:
        return self.contexts[0].n

    @property
    def m(self) -> int:
        return self.contexts[0].m

    @property
    def value_cap(self) -> int:
        return max(c.value_cap for c in self.contexts)

    @property
    def context_class(self) -> type:
        return type(self.contexts[0])

    @property
    def kind(self) -> str:
        return self.contexts[0].kind

    def draw(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """``k`` indices into the family, uniform and independent (the one draw rule)."""
        return rng.integers(len(self.contexts), size=k)

    def sample(self, rng: np.random.Generator) -> Any:
        """One context (the exact generator protocol)."""
        return self.contexts[int(self.draw(1, rng)[0])]

    def map(self, fn: Any) -> ContextFamily:
        """The family of ``fn(context)`` for each context, in order."""
        return ContextFamily(tuple(fn(c) for c in self.contexts))


@dataclass
class FamilySampler:
    """A :class:`ContextFamily` as a batched context source (``sample(B, rng)``)."""

    family: ContextFamily
    batch: ContextBatch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.batch = ContextBatch.from_contexts(list(self.family.contexts))

    @property
    def contexts(self) -> tuple[Any, ...]:
        return self.family.contexts

    @property
    def n(self) -> int:
        return self.batch.n

    @property
    def m(self) -> int:
        return self.batch.m

    def sample(self, B: int, rng: np.random.Generator) -> ContextBatch:
        return self.batch.take(self.family.draw(B, rng))
