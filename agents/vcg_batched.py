"""Batched scripted play of VCG: the batched twin of :mod:`mechgym.agents.vcg`.

Predicted play reports the true valuation; the deviations are the collusive overbid of
non-singleton coalitions at each context's ``value_cap`` (Ausubel–Milgrom), the halved
report and random play. Reports above the env's ``value_cap`` cannot be written in the
array layout: policies write the top of the grid there, and the menu marks such entries
invalid.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch

from .batched import BatchedAgents, RandomBatched, acting_players, register_batched_agents


def context_caps(ctx: ContextBatch) -> np.ndarray:
    """``(B,)`` each context's ``value_cap``: its largest value or belief, at least 1."""
    top = ctx.values.reshape(ctx.B, -1).max(axis=1)
    if ctx.lower is not None:
        top = np.maximum(top, ctx.lower.reshape(ctx.B, -1).max(axis=1))
    return np.maximum(top, 1)


def overbid_reports(ctx: ContextBatch) -> np.ndarray:
    """``(B, n, 2^m)``: the context's cap on every bundle a player values, 0 elsewhere."""
    return np.where(ctx.values > 0, context_caps(ctx)[:, None, None], 0)


def _write(rules: BatchedRules, reports: np.ndarray) -> np.ndarray:
    """Report arrays ``(..., L)`` from valuations ``(..., 2^m)`` (capped at the grid)."""
    return np.minimum(reports[..., 1:], rules.spec.value_cap).astype(np.int64)


class ReportBatched:
    """Reports a function of the true valuations: ``truthful``, ``half`` (rounded down) or
    ``collusive_overbid`` (members of non-singleton coalitions overbid, the others truthful)."""

    def __init__(self, kind: str = "truthful") -> None:
        if kind not in ("truthful", "half", "collusive_overbid"):
            raise ValueError(f"unknown report kind {kind!r}")
        self.kind = kind

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        v = ctx.values
        if self.kind == "half":
            reports = v // 2
        elif self.kind == "collusive_overbid":
            lab = ctx.coalition
            colluding = (lab[:, :, None] == lab[:, None, :]).sum(axis=2) > 1
            reports = np.where(colluding[:, :, None], overbid_reports(ctx), v)
        else:
            reports = v
        acts = _write(rules, reports)
        acts[~acting_players(state, players)] = 0
        return acts


def menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.vcg.menu` over a batch: ``(actions (B, 4, L), valid
    (B, 4))``, entries truth, half, zero, overbid; invalid where ``player`` does not act or a
    report exceeds the grid."""
    v = ctx.values[:, player]
    reports = np.stack(
        [v, v // 2, np.zeros_like(v), overbid_reports(ctx)[:, player]], axis=1
    )  # (B, 4, 2^m)
    acting = state.acting[:, player]
    valid = (reports <= rules.spec.value_cap).all(axis=2) & acting[:, None]
    acts = np.where(acting[:, None, None], _write(rules, reports), 0)
    return acts, valid


register_batched_agents(
    "vcg",
    BatchedAgents(
        predicted=ReportBatched("truthful"),
        deviations={
            "collusive_overbid": ReportBatched("collusive_overbid"),
            "underbid": ReportBatched("half"),
            "random": RandomBatched(),
        },
        menu=menu,
    ),
)
