"""VCG with Clarke pivot payments over a batch: the batched twin of
:mod:`mechgym.envs.mechanisms.vcg`.

One decision (phase ``report``, index 0). The allocation is the canonical optimum of the
reported welfare (:func:`mechgym.envs.solvers.batched.pack_without_each_batch`, the same tie
rule as the exact solver), and player ``i`` pays the others' best welfare without ``i`` minus
their welfare at the chosen allocation.

``state.data``: ``reports`` ``(B, n, 2^m)``; ``alloc`` ``(B, n)``; ``prices`` ``(B, n)``
float64; ``reported`` ``(B,)``.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    register_batched,
)
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.mechanisms.normal_form_batched import decode_valuations
from mechgym.envs.mechanisms.offer_rules_batched import PhaseMasks
from mechgym.envs.mechanisms.vcg import VCG
from mechgym.envs.solvers.batched import pack_without_each_batch

REPORT = 0


def vcg_outcome(reports: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical welfare-maximising allocation of ``reports`` ``(B, n, 2^m)`` and Clarke
    payments: ``alloc`` ``(B, n)`` int64, ``prices`` ``(B, n)`` float64 (as
    :func:`mechgym.envs.mechanisms.vcg.vcg_outcome`)."""
    value, alloc, without = pack_without_each_batch(reports)
    own = np.take_along_axis(reports, alloc[:, :, None], axis=2)[:, :, 0]
    prices = without - (value[:, None] - own)
    return alloc, prices.astype(np.float64)


@register_batched
class VCGBatched(BatchedRules):
    """Batched rules of :class:`~mechgym.envs.mechanisms.vcg.VCG`."""

    mechanism = VCG

    def __init__(self, mech: VCG, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        everything = dict.fromkeys(self.layout.names, True)
        self.masker = PhaseMasks(
            [np.stack([self.layout.mask(everything)] * spec.n)], self.layout.mask({})
        )

    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        B, n, size = ctx.B, self.spec.n, 1 << self.spec.m
        data = {
            "reports": np.zeros((B, n, size), dtype=np.int64),
            "alloc": np.zeros((B, n), dtype=np.int64),
            "prices": np.zeros((B, n), dtype=np.float64),
            "reported": np.zeros(B, dtype=bool),
        }
        return BatchState(np.full(B, REPORT, dtype=np.int64), np.ones((B, n), dtype=bool), data)

    def masks(self, state: BatchState) -> np.ndarray:
        return self.masker(state.phase, state.acting)

    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        live = state.phase == REPORT
        if not live.any():
            return state
        d = dict(state.data)
        idx = np.flatnonzero(live)
        reports = d["reports"].copy()
        reports[idx] = decode_valuations(actions[idx], self.spec, 0)
        alloc, prices = d["alloc"].copy(), d["prices"].copy()
        alloc[idx], prices[idx] = vcg_outcome(reports[idx])
        d.update(reports=reports, alloc=alloc, prices=prices, reported=d["reported"] | live)
        phase = np.where(live, TERMINAL, state.phase)
        return BatchState(phase, state.acting & ~live[:, None], d, list(state.chance))

    def outcome(self, state: BatchState) -> BatchOutcome:
        d = state.data
        return BatchOutcome.of_bundles(d["alloc"], d["prices"])

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        return np.zeros((len(state.phase), 0), dtype=np.float32)
