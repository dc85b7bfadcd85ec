"""What every mechanism's agents module provides, and the registry the CLI and trainers read.

A *policy* is any object with ``act(mech, ctx, state, player) -> action`` returning the
mechanism's structured action. One policy object may play for every player (it receives the
player index), which is also how a coalition controller drives several members with one joint
rule. Deterministic policies can be evaluated exactly by
:func:`mechgym.envs.engine.game.evaluate_exact`.

A *menu* is the compact action encoding used for tractable learning: at a decision node,
``menu(mech, ctx, state, player)`` returns a fixed-length list of ``(label, action)`` pairs
built from the player's private information (offers at its private optimum scaled by fixed
factors, bundles ranked by own value, YES/NO, ...). It always contains the predicted action;
its length depends only on the phase and the env's sizes (``menu_size``), never on the
context, so a ``Discrete`` action space can be fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mechgym.envs.engine.batched import sample_actions
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism

MenuFn = Callable[[Mechanism, Any, Any, int], list[tuple[str, Any]]]


@dataclass
class MechanismAgents:
    """The scripted agents and menu of one mechanism.

    Attributes
    ----------
    predicted : callable ctx -> policy
        The play the theorems single out (all players, coalitions included).
    deviations : dict name -> (callable (ctx, rng) -> policy)
        Documented deviations (over/under-bidding, always-NO, random, ...), each a policy all
        players may follow; ``rng`` is a seeded ``numpy.random.Generator``.
    menu : MenuFn
        Compact action encoding (see module docstring).
    menu_size : callable (phase, EnvSpec) -> int
        Fixed menu length per phase.
    bound_phases : dict phase -> str
        Phases whose prediction is a bound rather than a point (e.g. ``{"announce": "BB_i"}``).
    bound : callable (mech, ctx, state, player, action) -> (achieved, required), optional
        For bound phases: what the action achieves (e.g. REV(ω^i)) and what the theory
        requires of it (e.g. BB_i); the prediction holds iff achieved >= required.
    reference : callable ctx -> policy, optional
        What agreement is measured against where ``predicted`` is not an equilibrium at every
        node: for M5 with coalitions the exact subgame-perfect profile (Θ̄ matches it on the
        equilibrium path only). ``None``: ``predicted``.
    """

    predicted: Callable[[Any], Any]
    deviations: dict[str, Callable[[Any, np.random.Generator], Any]] = field(default_factory=dict)
    menu: MenuFn | None = None
    menu_size: Callable[[str, EnvSpec], int] | None = None
    bound_phases: dict[str, str] = field(default_factory=dict)
    bound: Callable[[Mechanism, Any, Any, int, Any], tuple[Any, Any]] | None = None
    reference: Callable[[Any], Any] | None = None


AGENTS: dict[str, MechanismAgents] = {}


def register_agents(mechanism_name: str, agents: MechanismAgents) -> None:
    """Register the agents of a mechanism under its registry name."""
    AGENTS[mechanism_name] = agents


class RandomPolicy:
    """Uniformly random legal play through the env's array encoding (seeded generator): each
    field uniform among its allowed values, drawn by the batched path's
    :func:`~mechgym.envs.engine.batched.sample_actions` on one mask."""

    def __init__(self, rng: np.random.Generator, spec: EnvSpec) -> None:
        self.rng = rng
        self.spec = spec

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        layout = mech.layout(self.spec)
        mask = mech.action_mask(state, player, self.spec, layout)
        vec = sample_actions(layout, mask, self.rng)
        return mech.decode(state, player, vec, self.spec, layout)


class MaskSampler:
    """:func:`~mechgym.envs.engine.batched.sample_actions` on one flat mask at a time, with
    the legal values of each distinct mask indexed once (a draw is then one lookup, for the
    throughput bench): the same rule and the same draws from the same generator."""

    def __init__(self, rng: np.random.Generator, sizes: np.ndarray, offsets: np.ndarray) -> None:
        self.rng = rng
        self.sizes = sizes
        self.offsets = offsets
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        key = mask.tobytes()
        entry = self._cache.get(key)
        if entry is None:
            legal = [
                np.flatnonzero(mask[a:b])
                for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)
            ]
            legal = [x if x.size else np.zeros(1, dtype=np.int64) for x in legal]
            counts = np.array([x.size for x in legal], dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            entry = (np.concatenate(legal).astype(np.int64), starts, counts)
            self._cache[key] = entry
        flat, starts, counts = entry
        pick = (self.rng.random(counts.size) * counts).astype(np.int64)
        return flat[starts + pick]


class PhasePolicy:
    """Plays ``by_phase[phase]`` (a policy) at nodes of that phase, ``base`` elsewhere."""

    def __init__(self, base: Any, by_phase: dict[str, Any]) -> None:
        self.base = base
        self.by_phase = by_phase

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        pol = self.by_phase.get(node.phase, self.base) if isinstance(node, Decision) else self.base
        return pol.act(mech, ctx, state, player)


class PerPlayer:
    """Different policies for different players: ``policies[player]``."""

    def __init__(self, policies: dict[int, Any]) -> None:
        self.policies = policies

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        return self.policies[player].act(mech, ctx, state, player)


def profile(policy: Any, n: int) -> dict[int, Any]:
    """The profile in which every player follows ``policy``."""
    return dict.fromkeys(range(n), policy)
