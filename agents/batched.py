"""Scripted agents on the batched path: one call acts for a whole batch.

A *batched policy* fills the actions of the players it controls for every live episode at
once, in the env's array layout; it never loops over episodes in Python. Each mechanism's
agents module ``agents/<name>.py`` registers, beside its exact agents (the same rules of
play on a batch of one), its batched predicted play, its named deviations (the same names
as the exact agents' ``deviations``) and its batched menu.
Random legal play is generic (:class:`RandomBatched`).

A *batched menu* is the exact menu (:mod:`mechgym.agents.base`) over a batch:
``menu(rules, ctx, state, player) -> (actions (B, k, L) int64, valid (B, k) bool)``, entry
``j`` of episode ``b`` being the array form of the exact menu's ``j``-th action there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch


class BatchedPolicy(Protocol):
    """Acts for ``players`` in every episode of a batch."""

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        """``(B, n, L)`` actions; rows of ``players`` that act are filled, others are 0."""
        ...


class RandomBatched:
    """Uniformly random legal play (each field uniform among its allowed values)."""

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        acts = rules.random_actions(state, rng)
        acts[:, ~player_mask(acts.shape[1], players)] = 0
        return acts


class ByPhase:
    """Plays ``by_phase[name]`` at decision nodes of that phase and ``base`` elsewhere (the
    batched :class:`mechgym.agents.base.PhasePolicy`)."""

    def __init__(self, base: object, by_phase: dict[str, object]) -> None:
        self.base = base
        self.by_phase = by_phase

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        acts = self.base.act(rules, ctx, state, players, rng)  # type: ignore[attr-defined]
        for name, policy in self.by_phase.items():
            if name not in rules.phases:
                continue
            here = state.phase == rules.phases.index(name)
            if here.any():
                other = policy.act(rules, ctx, state, players, rng)  # type: ignore[attr-defined]
                acts = np.where(here[:, None, None], other, acts)
        return acts


class AnnounceThenAnswer:
    """The batched scripted play of the mechanisms where players announce (or propose) at
    phase 0 and the players asked answer YES/NO at :attr:`answer_phases`: M1–M4 (M2 has
    phase 0 only), M6 and the Naive markets.

    Subclasses give :meth:`announcements` and :meth:`own_answers` and set ``self.answer``:
    ``"yes"`` or ``"no"`` (always), or any other value for their own rule
    (:meth:`own_answers`, which may read it).
    """

    answer: str
    #: the phases whose acting players answer the offer put to them
    answer_phases: tuple[int, ...] = (1,)

    def announcements(self, rules: BatchedRules, ctx: ContextBatch, idx: np.ndarray) -> np.ndarray:
        """``(len(idx), n, L)`` announcements of every player of episodes ``idx`` (rows of
        players who do not act there are ignored)."""
        raise NotImplementedError

    def own_answers(self, rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        """``(B, n)`` bool: YES by the agent's own rule (to the offers of
        :meth:`~mechgym.envs.engine.batched.BatchedRules.pending_offers`)."""
        raise NotImplementedError

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        B, n, L = len(state.phase), rules.spec.n, len(rules.layout)
        acts = np.zeros((B, n, L), dtype=np.int64)
        mine = acting_players(state, players)
        idx = np.flatnonzero((state.phase == 0) & mine.any(axis=1))
        if len(idx):
            acts[idx] = self.announcements(rules, ctx, idx)
        respond = np.isin(state.phase, self.answer_phases)[:, None] & mine
        if respond.any():
            if self.answer in ("yes", "no"):
                yes = np.full((B, n), self.answer == "yes")
            else:
                yes = self.own_answers(rules, ctx, state)
            acts[:, :, rules.layout.index["answer"]] = np.where(respond, yes, 0)
        acts[~mine] = 0
        return acts


def offered_values(ctx: ContextBatch, item: np.ndarray) -> np.ndarray:
    """``(B, n)`` θ_i(item_i) of auction bundles ``item`` ``(B, n)`` (as from
    :meth:`~mechgym.envs.engine.batched.BatchedRules.pending_offers`)."""
    return np.take_along_axis(ctx.values, item[:, :, None], axis=2)[:, :, 0]


def answer_entries(
    rules: BatchedRules, acts: np.ndarray, valid: np.ndarray, asked: np.ndarray
) -> None:
    """Write a batched menu's answer entries at the episodes ``asked`` (indices or a ``(B,)``
    mask): entry 0 is NO, entry 1 YES, as in the exact menus."""
    acts[asked, 1, rules.layout.index["answer"]] = 1
    valid[asked, :2] = True


def player_mask(n: int, players: Iterable[int]) -> np.ndarray:
    """``(n,)`` bool: which of the ``n`` players are among ``players``."""
    sel = np.zeros(n, dtype=bool)
    sel[list(players)] = True
    return sel


def acting_players(state: BatchState, players: Iterable[int]) -> np.ndarray:
    """``(B, n)`` bool: where one of ``players`` acts at its episode's pending decision."""
    return state.acting & player_mask(state.acting.shape[1], players)[None, :]


MenuBatchFn = Callable[[BatchedRules, ContextBatch, BatchState, int], tuple[np.ndarray, np.ndarray]]


@dataclass
class BatchedAgents:
    """The batched scripted agents and menu of one mechanism.

    Attributes
    ----------
    predicted : BatchedPolicy
        The theorems' play (coalitions included), as the exact ``predicted`` agent.
    deviations : dict name -> BatchedPolicy
        The exact agents' named deviations, over a batch.
    menu : MenuBatchFn or None
        The exact menu over a batch.
    """

    predicted: Any
    deviations: dict[str, Any] = field(default_factory=dict)
    menu: MenuBatchFn | None = None


BATCHED_AGENTS: dict[str, BatchedAgents] = {}


def register_batched_agents(mechanism_name: str, agents: BatchedAgents) -> None:
    """Register the batched agents of a mechanism under its registry name."""
    BATCHED_AGENTS[mechanism_name] = agents


def batched_agents(mechanism_name: str) -> BatchedAgents:
    """The batched agents of a mechanism (imports its module on first use)."""
    import importlib

    if mechanism_name not in BATCHED_AGENTS:
        from mechgym.envs.mechanisms.catalogue import SPECS

        spec = SPECS.get(mechanism_name)
        module = spec.agents_module if spec is not None else f"mechgym.agents.{mechanism_name}"
        importlib.import_module(module)
    return BATCHED_AGENTS[mechanism_name]
