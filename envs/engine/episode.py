"""One definition per mechanism: the exact engine's face of batched rules run on a batch of one.

A mechanism written once subclasses :class:`MoveRules` (its rules over a batch of ``B``
episodes: ``reset``, ``decode_moves`` from the array layout, ``apply`` on decoded moves,
``outcome``, masks, features) and :class:`BatchOfOne` (its exact face: constants, checks of
structured actions, benchmarks, the theorem). :class:`BatchOfOne` derives the exact
engine's state machine from the rules: a state is a batch of one with :data:`EXACT` money;
a decision is resolved by ``apply`` on the moves of the structured actions; chance is
explicit: the rules ask a :class:`~mechgym.envs.engine.batched.ForcedChance` for each
outcome, and a node it cannot answer becomes the exact :class:`Chance` node, resumed by
re-running the step with the chosen outcome appended. The float path (``batched_rules``)
runs the same rules on ``B`` episodes with float64 money and drawn chance.
"""

from __future__ import annotations

import weakref
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ChanceRequest,
    ContextBatch,
    ForcedChance,
    SampledChance,
    rules_class,
)
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Mechanism,
    Node,
    PendingOffer,
    Terminal,
    sample_chance,
)
from mechgym.envs.engine.money import EXACT, FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.model.outcome import Outcome

Moves = dict[str, np.ndarray]
"""Decoded moves of one decision over a batch: the mechanism's own arrays, leading axis B."""


class MoveRules(BatchedRules):
    """Batched rules split at the array layout: ``step`` = ``apply(decode_moves(actions))``.

    ``apply`` is the rule; it reads decoded moves only, so the exact face can feed it the
    moves of structured actions of any size (no value or price cap). Chance is drawn with
    :func:`~mechgym.envs.engine.batched.draw` from ``rng``, naming the node.
    """

    def __init__(self, mech: Mechanism, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec)
        self.money = money

    @abstractmethod
    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        """The moves of array actions ``(B, n, L)`` at each episode's pending decision."""

    @abstractmethod
    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        """Resolve the pending decision of every live episode with ``moves``, then the chance
        nodes that follow (drawn from ``rng``: a Generator or a ForcedChance)."""

    def step(
        self, ctx: ContextBatch, state: BatchState, actions: np.ndarray, rng: Any
    ) -> BatchState:
        return self.apply(ctx, state, self.decode_moves(state, actions), rng)

    def public_features_all(self, state: BatchState) -> np.ndarray:
        """``(B, n, public_size)`` every player's public features (default: one call each)."""
        n = state.acting.shape[1]
        return np.stack([self.public_features(state, p) for p in range(n)], axis=1)

    def outcome_rule(self, state: BatchState) -> str:
        """The step that produced episode 0's outcome (``Outcome.rule``)."""
        return self.mech.name


@dataclass(frozen=True, eq=False)
class Episode:
    """A state of the exact engine for a mechanism written once: a batch of one.

    ``state`` is the batch state (exact money); ``pending`` a step waiting for chance:
    ``(moves, outcomes so far, the chance node)``, ``moves`` ``None`` for ``reset``.
    Equal when their arrays are equal (exact deviation checks compare states).
    """

    ctx: Any
    batch: ContextBatch
    state: BatchState
    pending: tuple[Moves | None, tuple[int, ...], Chance] | None = None
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def key(self) -> tuple[Any, ...]:
        if "key" not in self.memo:
            s = self.state
            data = tuple((k, _frozen(v)) for k, v in sorted(s.data.items()))
            pend = None
            if self.pending is not None:
                moves, outcomes, node = self.pending
                pend = (
                    None if moves is None else tuple((k, _frozen(v)) for k, v in moves.items()),
                    outcomes,
                    node,
                )
            self.memo["key"] = (_frozen(s.phase), _frozen(s.acting), data, pend)
        return self.memo["key"]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Episode):
            return NotImplemented
        return self is other or (self.ctx is other.ctx and self.key() == other.key())

    def __hash__(self) -> int:
        return hash(self.key())


EVERY = np.zeros(1, dtype=np.int64)
"""The index of the one episode of a batch of one (rows ``idx`` of a batched rule)."""

_BATCHES: weakref.WeakKeyDictionary[Any, ContextBatch] = weakref.WeakKeyDictionary()


def batch_of_one(ctx: Any) -> ContextBatch:
    """``ctx`` as a batch of one, built once per context (contexts are immutable; an env
    plays many episodes on the same one)."""
    try:
        batch = _BATCHES.get(ctx)
    except TypeError:  # a context that cannot be weakly referenced
        return ContextBatch.from_contexts([ctx])
    if batch is None:
        batch = _BATCHES[ctx] = ContextBatch.from_contexts([ctx])
    return batch


def _frozen(a: np.ndarray) -> tuple[Any, ...]:
    return (a.shape, tuple(a.ravel().tolist()))


class BatchOfOne(Mechanism):
    """The exact face of a mechanism whose rules are a :class:`MoveRules` (registered with
    :func:`~mechgym.envs.engine.batched.register_batched` for this class)."""

    @abstractmethod
    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        """The moves (batch of one) of validated structured ``actions`` at ``s``'s decision."""

    # -- rules, derived ------------------------------------------------------------------------
    def rules(self, n: int, m: int, spec: EnvSpec | None = None) -> MoveRules:
        """The rules with exact money, for the env sizes ``spec`` (masks, features) or, without
        one, for ``n`` players and ``m`` goods (the rules themselves read no cap)."""
        key = spec if spec is not None else (n, m)
        cache = self.__dict__.setdefault("_exact_rules", {})
        if key not in cache:
            sizes = spec if spec is not None else EnvSpec(n, m, 1, 1)
            cache[key] = rules_class(self)(self, sizes, EXACT)
        return cache[key]

    def start(self, ctx: Any) -> Episode:
        batch = batch_of_one(ctx)
        empty = BatchState(np.zeros(1, np.int64), np.zeros((1, ctx.n), bool), {})
        return self._advance(Episode(ctx, batch, empty), None, ())

    def _advance(self, s: Episode, moves: Moves | None, outcomes: tuple[int, ...]) -> Episode:
        rules = self.rules(s.ctx.n, s.ctx.m)
        chance = ForcedChance(outcomes)
        try:
            if moves is None:
                new = rules.reset(s.batch, chance)
            else:
                new = rules.apply(s.batch, s.state, moves, chance)
        except ChanceRequest as req:
            return Episode(s.ctx, s.batch, s.state, (moves, outcomes, req.node))
        return Episode(s.ctx, s.batch, new)

    def node(self, s: Episode) -> Node:
        if s.pending is not None:
            return s.pending[2]
        st = s.state
        if st.phase[0] == TERMINAL:
            if "outcome" not in s.memo:
                s.memo["outcome"] = self._outcome(s)
            return Terminal(s.memo["outcome"])
        players = tuple(int(i) for i in np.flatnonzero(st.acting[0]))
        return Decision(players, self.phases[int(st.phase[0])])

    def _outcome(self, s: Episode) -> Outcome:
        rules = self.rules(s.ctx.n, s.ctx.m)
        out: BatchOutcome = rules.outcome(s.state)
        if any(isinstance(p, float) for p in out.prices[0]):
            # a rule divided two exact amounts with "/" instead of Money.ratio
            raise TypeError(f"{self.name}: exact money produced a float price")
        prices = tuple(Fraction(p) for p in out.prices[0])
        rule = rules.outcome_rule(s.state)
        if s.ctx.kind == "states":
            return Outcome((), prices, state=int(out.state[0]), rule=rule)
        alloc = tuple(int(a) for a in out.alloc[0])
        return Outcome(alloc, prices, destroyed=int(out.destroyed[0]), rule=rule)

    def resolve(self, s: Episode, actions: Mapping[int, Any]) -> Episode:
        return self._advance(s, self.moves(s, actions), ())

    def sample_chances(
        self, s: Episode, rng: np.random.Generator
    ) -> tuple[Episode, list[tuple[Chance, int]]]:
        """As :meth:`Mechanism.sample_chances` (the same draws from the same stream), in one
        run of the pending step instead of one per chance node."""
        if s.pending is None:
            return s, []
        moves, outcomes, node = s.pending
        k = sample_chance(node, rng)
        source = SampledChance((*outcomes, k), rng)
        rules = self.rules(s.ctx.n, s.ctx.m)
        if moves is None:
            new = rules.reset(s.batch, source)
        else:
            new = rules.apply(s.batch, s.state, moves, source)
        return Episode(s.ctx, s.batch, new), [(node, k), *source.drawn]

    def chance(self, s: Episode, index: int) -> Episode:
        if s.pending is None:
            raise ValueError("no chance node is pending")
        moves, outcomes, _ = s.pending
        return self._advance(Episode(s.ctx, s.batch, s.state), moves, (*outcomes, index))

    # -- encodings, derived ------------------------------------------------------------------
    def action_mask(
        self, s: Episode, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        return self.rules(spec.n, spec.m, spec).masks(s.state)[0, player]

    def public_features(self, s: Episode, player: int, spec: EnvSpec) -> np.ndarray:
        size = self.public_size(spec)
        if not size or not s.state.data:
            return np.zeros(size, dtype=np.float32)
        # every player of a node observes the same state: compute them all once
        key = ("public", spec)
        if key not in s.memo:
            s.memo[key] = self.rules(spec.n, spec.m, spec).public_features_all(s.state)[0]
        return s.memo[key][player].copy()  # callers may clip in place

    def pending_offer(self, s: Episode, player: int) -> PendingOffer | None:
        if s.pending is not None or s.state.phase[0] == TERMINAL:
            return None
        asked, item, price = self.rules(s.ctx.n, s.ctx.m).pending_offers(s.state)
        if not asked[0, player]:
            return None
        return PendingOffer(int(item[0, player]), int(price[0, player]))
