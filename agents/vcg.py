"""Scripted play of VCG, written once: truthful reports (dominant) and its deviations.

Each report rule is one function of a batch of contexts, :func:`reports` (uncapped integer
valuations ``(B, n, 2^m)``); the exact agents play its row of the context as a batch of one
(:func:`~mechgym.envs.engine.episode.batch_of_one`), the batched agents write it into the
env's array layout (reports above the env's ``value_cap`` cannot be written: policies write
the top of the grid there, and the batched menu marks such entries invalid).

Collusive overbidding (Ausubel–Milgrom): every member of a non-singleton coalition reports
the context's ``value_cap`` (its largest value or belief) on each bundle it values
positively; independent players stay truthful. With two losers who each want one good of a
pair that an independent bidder values as a whole, VCG then gives each loser its good at
price 0 and collects nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.engine.episode import batch_of_one
from mechgym.envs.engine.game import EnvSpec, Mechanism

from .base import MechanismAgents, RandomPolicy, register_agents
from .batched import BatchedAgents, RandomBatched, acting_players, register_batched_agents

KINDS = ("truthful", "half", "zero", "collusive_overbid")
"""The report rules of :func:`reports`."""

MENU = (("truth", "truthful"), ("half", "half"), ("zero", "zero"), ("overbid", "overbid"))
"""The compact menu: (label, report rule); ``overbid`` is the overbid of every player."""


def context_caps(ctx: ContextBatch) -> np.ndarray:
    """``(B,)`` each context's ``value_cap``: its largest value or belief, at least 1."""
    top = ctx.values.reshape(ctx.B, -1).max(axis=1)
    if ctx.lower is not None:
        top = np.maximum(top, ctx.lower.reshape(ctx.B, -1).max(axis=1))
    return np.maximum(top, 1)


def reports(ctx: ContextBatch, kind: str) -> np.ndarray:
    """``(B, n, 2^m)`` reported valuations of rule ``kind`` (see :data:`KINDS`; ``overbid``:
    every player overbids, the menu's entry)."""
    v = ctx.values
    if kind == "truthful":
        return v
    if kind == "half":
        return v // 2
    if kind == "zero":
        return np.zeros_like(v)
    overbid = np.where(v > 0, context_caps(ctx)[:, None, None], 0)
    if kind == "overbid":
        return overbid
    if kind == "collusive_overbid":
        lab = ctx.coalition
        colluding = (lab[:, :, None] == lab[:, None, :]).sum(axis=2) > 1
        return np.where(colluding[:, :, None], overbid, v)
    raise ValueError(f"unknown report kind {kind!r}")


def _write(rules: BatchedRules, reps: np.ndarray) -> np.ndarray:
    """Report arrays ``(..., L)`` from valuations ``(..., 2^m)`` (capped at the grid)."""
    return np.minimum(reps[..., 1:], rules.spec.value_cap).astype(np.int64)


class Report:
    """Report rule ``kind`` in one episode (the exact face of :class:`ReportBatched`)."""

    def __init__(self, ctx: Any, kind: str = "truthful") -> None:
        self.kind = kind

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        return tuple(int(x) for x in reports(batch_of_one(ctx), self.kind)[0, player])


class Truthful(Report):
    """Report the true valuation."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx, "truthful")


class CollusiveOverbid(Report):
    """Members of non-singleton coalitions overbid at the context's ``value_cap``."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx, "collusive_overbid")


class ReportBatched:
    """Report rule ``kind`` over a batch."""

    def __init__(self, kind: str = "truthful") -> None:
        if kind not in KINDS:
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
        acts = _write(rules, reports(ctx, self.kind))
        acts[~acting_players(state, players)] = 0
        return acts


def _menu_reports(ctx: ContextBatch, player: int) -> np.ndarray:
    """``(B, len(MENU), 2^m)`` the menu's reports of ``player``."""
    return np.stack([reports(ctx, kind)[:, player] for _, kind in MENU], axis=1)


def menu_size(phase: str, spec: EnvSpec) -> int:
    """Truth, half, zero, and the overbid."""
    return len(MENU)


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact reports: truthful, halved, all zero, overbid at the cap on valued bundles."""
    rows = _menu_reports(batch_of_one(ctx), player)[0]
    return [(label, tuple(int(x) for x in row)) for (label, _), row in zip(MENU, rows, strict=True)]


def batched_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`menu` over a batch: ``(actions (B, 4, L), valid (B, 4))``; invalid where
    ``player`` does not act or a report exceeds the grid."""
    reps = _menu_reports(ctx, player)
    acting = state.acting[:, player]
    valid = (reps <= rules.spec.value_cap).all(axis=2) & acting[:, None]
    acts = np.where(acting[:, None, None], _write(rules, reps), 0)
    return acts, valid


register_agents(
    "vcg",
    MechanismAgents(
        predicted=Truthful,
        deviations={
            "collusive_overbid": lambda ctx, rng: CollusiveOverbid(ctx),
            "underbid": lambda ctx, rng: Report(ctx, "half"),
            "random": lambda ctx, rng: RandomPolicy(
                rng, EnvSpec(ctx.n, ctx.m, ctx.value_cap, ctx.value_cap)
            ),
        },
        menu=menu,
        menu_size=menu_size,
    ),
)

register_batched_agents(
    "vcg",
    BatchedAgents(
        predicted=ReportBatched("truthful"),
        deviations={
            "collusive_overbid": ReportBatched("collusive_overbid"),
            "underbid": ReportBatched("half"),
            "random": RandomBatched(),
        },
        menu=batched_menu,
    ),
)
