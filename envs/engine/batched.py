"""A mechanism's rules over a batch of ``B`` independent episodes.

Each mechanism writes its rules once, as a :class:`BatchedRules` (in practice a
:class:`~mechgym.envs.engine.episode.MoveRules`) over numpy arrays: money is a backend
(:mod:`mechgym.envs.engine.money`: float64 for training and sampling, exact rationals for the
reference), chance is drawn from the ``numpy.random.Generator`` passed in, or asked of a
:class:`ForcedChance` on the exact path, and actions are the env's array layout
(:class:`~mechgym.envs.engine.spaces.ActionLayout`) stacked as ``(B, n, L)``. The exact
engine's face of a mechanism (:mod:`mechgym.envs.engine.episode`) runs the same rules on a
batch of one.

Every episode of a batch advances one decision node per :meth:`BatchedRules.step`; after the
decision, the chance nodes that follow are drawn at once. Episodes may sit in different
phases (``state.phase``) and may end at different steps; ended episodes ignore their actions.
Every chance draw is logged per episode in the order the exact engine meets it, so that
:func:`replay_exact` can run the exact face on the same actions and draws: the differential
tests tie the two money backends (and the array layout to the structured actions) with it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Mechanism,
    Terminal,
    sample_chance,
    step_decision,
)
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.catalogue import SPECS

# the batch of contexts is model data; re-exported here, where the batched path is read
from mechgym.envs.model.batch import ContextBatch

TERMINAL = -1
"""``state.phase`` of an episode that has ended."""


# -- states and outcomes ---------------------------------------------------------------------
@dataclass
class BatchState:
    """Where every episode of a batch stands.

    Attributes
    ----------
    phase : ndarray, int64, shape (B,)
        Index into the mechanism's ``phases`` of the pending decision node, or
        :data:`TERMINAL`.
    acting : ndarray, bool, shape (B, n)
        Who acts at the pending decision node (all False once terminal).
    data : dict of ndarrays
        The mechanism's own arrays (announcements, coins, answers, ...), leading axis B.
    chance : list of ndarrays
        Logged chance draws: each entry ``(B,)`` int64, the outcome index drawn for an
        episode, ``-1`` where the episode met no chance node in that draw. The exact engine
        meets an episode's non-negative entries in this order.
    """

    phase: np.ndarray
    acting: np.ndarray
    data: dict[str, np.ndarray]
    chance: list[np.ndarray] = field(default_factory=list)

    @property
    def done(self) -> np.ndarray:
        """``(B,)`` whether each episode has ended."""
        return self.phase == TERMINAL


@dataclass
class BatchOutcome:
    """Terminal outcomes of a batch (read only where ``done``).

    Attributes
    ----------
    alloc : ndarray, int64, shape (B, n)
        Bundle bitmask per player (zeros for states contexts).
    prices : ndarray, float64, shape (B, n)
    state : ndarray, int64, shape (B,)
        Chosen abstract state (states contexts; ``-1`` = null state), else ``-1``.
    destroyed : ndarray, int64, shape (B,)
        Bitmask of destroyed goods (markets), else 0.
    """

    alloc: np.ndarray
    prices: np.ndarray
    state: np.ndarray
    destroyed: np.ndarray

    @property
    def revenue(self) -> np.ndarray:
        """``(B,)`` Σ prices."""
        return self.prices.sum(axis=1)

    @classmethod
    def of_bundles(cls, alloc: np.ndarray, prices: np.ndarray) -> BatchOutcome:
        """Bundles ``alloc`` and ``prices`` ``(B, n)`` of an auction: no abstract state,
        nothing destroyed."""
        B = alloc.shape[0]
        return cls(alloc, prices, np.full(B, -1, dtype=np.int64), np.zeros(B, dtype=np.int64))

    @classmethod
    def of_state(cls, state: np.ndarray, prices: np.ndarray) -> BatchOutcome:
        """A chosen abstract ``state`` ``(B,)`` (``-1`` = null) and ``prices`` ``(B, n)`` of a
        states context: no bundles, nothing destroyed."""
        B, n = prices.shape
        return cls(
            np.zeros((B, n), dtype=np.int64),
            prices,
            state.astype(np.int64),
            np.zeros(B, dtype=np.int64),
        )


class ChanceRequest(Exception):
    """Raised by :class:`ForcedChance` when the rules meet a chance node beyond the outcomes
    it was given: the exact engine then shows ``node`` and resumes with the chosen outcome."""

    def __init__(self, node: Chance) -> None:
        super().__init__(node.name)
        self.node = node


class ForcedChance:
    """The chance source of a batch of one on the exact path: the rules' ``k``-th chance
    node takes ``outcomes[k]``; one more raises :class:`ChanceRequest` with the node's exact
    probabilities, so that an evaluator can enumerate it (it forks by re-running the step
    with every outcome appended). A node shared by the batch is read from ``node`` (the
    float path may pass its probabilities as floats); per-episode rows must be exact."""

    def __init__(self, outcomes: Sequence[int] | Iterator[int] = ()) -> None:
        # an endless iterator answers every node (a branch that is never played)
        self.outcomes = outcomes if isinstance(outcomes, Iterator) else tuple(outcomes)
        self.used = 0

    def draw(
        self, probs: Sequence[Fraction] | np.ndarray, live: np.ndarray, node: Chance | None
    ) -> np.ndarray:
        if live.shape != (1,):
            raise ValueError("forced chance serves a batch of one")
        if not live[0]:
            return np.full(1, -1, dtype=np.int64)
        if isinstance(self.outcomes, Iterator):
            return np.full(1, next(self.outcomes), dtype=np.int64)
        if self.used < len(self.outcomes):
            self.used += 1
            return np.full(1, self.outcomes[self.used - 1], dtype=np.int64)
        if node is not None and not (isinstance(probs, np.ndarray) and probs.ndim == 2):
            row: Any = node.probs  # one vector for the batch: the node's exact one
        else:
            row = probs[0] if isinstance(probs, np.ndarray) and probs.ndim == 2 else probs
        exact = tuple(Fraction(p) for p in row)
        if any(isinstance(p, float | np.floating) for p in row) or sum(exact) != 1:
            raise TypeError("chance on the exact path needs exact probabilities summing to 1")
        name = node.name if node is not None else "chance"
        labels = node.labels if node is not None else tuple(str(k) for k in range(len(exact)))
        raise ChanceRequest(Chance(name, labels, exact))


class SampledChance(ForcedChance):
    """A :class:`ForcedChance` that, past its given outcomes, samples every further node
    exactly (:func:`~mechgym.envs.engine.game.sample_chance`) from ``rng`` instead of asking:
    one run of a step resolves all the chance that follows it. ``drawn`` lists the
    ``(node, outcome)`` sampled, in order."""

    def __init__(self, outcomes: Sequence[int], rng: np.random.Generator) -> None:
        super().__init__(outcomes)
        self.rng = rng
        self.drawn: list[tuple[Chance, int]] = []

    def draw(
        self, probs: Sequence[Fraction] | np.ndarray, live: np.ndarray, node: Chance | None
    ) -> np.ndarray:
        try:
            return super().draw(probs, live, node)
        except ChanceRequest as req:
            k = sample_chance(req.node, self.rng)
            self.drawn.append((req.node, k))
            return np.full(1, k, dtype=np.int64)


def draw(
    rng: np.random.Generator | ForcedChance,
    probs: Sequence[Fraction] | np.ndarray,
    live: np.ndarray,
    node: Chance | None = None,
) -> np.ndarray:
    """Draw a chance outcome for every ``live`` episode (``-1`` elsewhere).

    ``probs`` is either one probability vector shared by the batch or ``(B, K)`` rows.
    One uniform per episode is drawn whether or not it is live, so the stream does not
    depend on which episodes are live. ``node`` names the chance node (its labels) for the
    exact path, where ``rng`` is a :class:`ForcedChance`.
    """
    if isinstance(rng, ForcedChance):
        return rng.draw(probs, live, node)
    B = live.shape[0]
    u = rng.random(B)
    p = np.asarray([float(x) for x in probs]) if not isinstance(probs, np.ndarray) else probs
    if p.ndim == 1:
        # one vector for the whole batch: its running sum once (the same floats as per row)
        cum = np.broadcast_to(np.cumsum(p), (B, p.shape[-1]))
    else:
        # a column at a time: numpy's cumsum along a short last axis is slow per row
        cum = np.array(np.broadcast_to(p, (B, p.shape[-1])), dtype=np.float64)
        for j in range(1, cum.shape[1]):
            cum[:, j] += cum[:, j - 1]
    k = (u[:, None] >= cum[:, :-1]).sum(axis=1) if cum.shape[1] > 1 else np.zeros(B, np.int64)
    return np.where(live, k, -1).astype(np.int64)


class BatchedRules(ABC):
    """A mechanism's rules over a batch (the exact face runs them on a batch of one).

    Parameters
    ----------
    mech : Mechanism
        The mechanism's exact face; its constants (ε, ...) are the rules' constants.
    spec : EnvSpec
        Sizes of the array layout (the same as the env's).
    """

    #: the mechanism class (its exact face) these rules belong to
    mechanism: type[Mechanism]
    #: the constructor parameters of ``mechanism`` these rules implement; an instance built
    #: with any other parameter off its default is refused by :func:`batched_rules`
    implements: frozenset[str] = frozenset()

    def __init__(self, mech: Mechanism, spec: EnvSpec) -> None:
        self.mech = mech
        self.spec = spec
        self.layout: ActionLayout = mech.layout(spec)
        self.phases: tuple[str, ...] = mech.phases

    # -- rules -----------------------------------------------------------------------------
    @abstractmethod
    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        """Initial states (chance nodes before the first decision are drawn here)."""

    def masks(self, state: BatchState) -> np.ndarray:
        """``(B, n, mask_size)`` int8 flat masks; rows of players not acting allow only 0.

        By default the rows of :meth:`mask_rows`; rules whose masks are no table's rows
        override this."""
        rows = self.mask_rows(state)
        if rows is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither masks nor mask_rows")
        table, index = rows
        return np.take(table, index, axis=0)

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray] | None:
        """``(table (R, mask_size), index (B, n))`` when the masks are ``table[index]`` (rows
        fixed per rules, e.g. per phase and player), else ``None``."""
        return None

    def random_actions(self, state: BatchState, rng: np.random.Generator) -> np.ndarray:
        """``(B, n, L)`` uniformly random legal actions: :func:`sample_actions` on
        :meth:`masks` (the same values from the same draws; a table of range rows is sampled
        without building the masks)."""
        rows = self.mask_rows(state)
        if rows is None:
            return sample_actions(self.layout, self.masks(state), rng)
        table, index = rows
        return table_sampler(self, table).sample(index, rng)

    @abstractmethod
    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        """Resolve the pending decision of every live episode with ``actions`` ``(B, n, L)``
        (mask-legal for the acting players; other rows are ignored), then draw the chance
        nodes that follow, logging them in ``state.chance``."""

    @abstractmethod
    def outcome(self, state: BatchState) -> BatchOutcome:
        """Terminal outcomes (meaningful where ``state.done``)."""

    @abstractmethod
    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        """``(B, mech.public_size(spec))`` float32: the exact ``public_features`` per episode."""

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Who is asked what: ``asked``, ``item``, ``price`` ``(B, n)`` (bool, int64, int64),
        per episode and player the exact :meth:`Mechanism.pending_offer` (``item``, ``price``
        read only where ``asked``). Default: a mechanism that asks no questions."""
        B, n = state.acting.shape
        zeros = np.zeros((B, n), dtype=np.int64)
        return np.zeros((B, n), dtype=bool), zeros, zeros.copy()

    # -- derived -----------------------------------------------------------------------------
    def utilities(self, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        """``(B, n)`` utilities of the terminal outcomes."""
        return ctx.utilities(self.outcome(state))

    def rewards(self, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        """``(B, n)`` rewards (coalition totals where rewards are shared)."""
        return ctx.rewards(self.utilities(ctx, state))


# -- random legal play -----------------------------------------------------------------------
def sample_actions(layout: ActionLayout, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random legal actions per field: ``masks`` ``(..., mask_size)`` → ``(..., L)``.

    Each field is drawn uniformly among its allowed values (independently of the others),
    which is what :meth:`MaskedMultiDiscrete.sample` does for a single mask.
    """
    return sample_given(layout, masks, rng.random((*masks.shape[:-1], len(layout))))


def sample_given(layout: ActionLayout, masks: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:func:`sample_actions` with its uniforms ``u`` ``(..., L)`` given."""
    allowed = masks != 0
    # Rows that allow only 0 in every field (players who do not act) draw 0: skip them, so
    # a step where few players act costs little. The draws u stay the same either way.
    idle = np.count_nonzero(allowed, axis=-1) == len(layout)
    idle &= allowed[..., layout.offsets[:-1]].all(axis=-1)
    if not idle.any():
        return _sample_rows(layout, allowed, u)
    out = np.zeros(u.shape, dtype=np.int64)
    busy = ~idle
    if busy.any():
        out[busy] = _sample_rows(layout, allowed[busy], u[busy])
    return out


_ROWS_BY_POSITION = 2048
"""From this many mask rows on, :func:`_sample_rows` walks the mask positions in Python over
transposed, contiguous rows (a few numpy calls per position, each over every row), which
beats numpy's per-row overhead along short fields."""


def _sample_rows(layout: ActionLayout, allowed: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:func:`sample_actions` on boolean masks ``(..., mask_size)`` with its uniforms ``u``."""
    lead, L = u.shape[:-1], u.shape[-1]
    R = int(np.prod(lead))
    if R >= _ROWS_BY_POSITION:
        flat = allowed.reshape(R, -1)
        # Fields no row may set above 0 (unread in every episode's phase, common in wide
        # union layouts such as the mixture's) need no draw: 0 where allowed, else the
        # field's size, as the general walk below gives. Only the other fields' columns
        # are transposed.
        used = flat.any(axis=0)
        live: list[int] = []
        cols: list[np.ndarray] = []
        outT = np.zeros((L, R), dtype=np.int64)
        for k in range(L):
            lo, hi = int(layout.offsets[k]), int(layout.offsets[k + 1])
            if hi - lo == 1:
                continue
            if not used[lo + 1 : hi].any():
                outT[k] = np.where(flat[:, lo], 0, hi - lo)
                continue
            live.append(k)
            cols.append(np.arange(lo, hi))
        if live:
            A = np.ascontiguousarray(flat[:, np.concatenate(cols)].T)
            uT = np.ascontiguousarray(u.reshape(R, L).T)
            at = 0
            for k, c in zip(live, cols, strict=True):
                seg = A[at : at + len(c)]
                at += len(c)
                count = np.add.reduce(seg, axis=0, dtype=np.int32)
                r = np.minimum((uT[k] * count).astype(np.int32), np.maximum(count - 1, 0))
                # the r-th allowed value sits where the running count first passes r
                run = np.zeros(R, dtype=np.int32)
                first = outT[k]
                for row in seg:
                    run += row
                    first += run <= r
        return np.ascontiguousarray(outT.T).reshape(u.shape)
    out = np.zeros(u.shape, dtype=np.int64)
    # One running count of allowed values over the whole flat mask (a cumsum per short
    # field costs a numpy call per row); each field reads its slice of it.
    cum = np.cumsum(allowed, axis=-1, dtype=np.int32)
    for k in range(len(layout)):
        lo, hi = int(layout.offsets[k]), int(layout.offsets[k + 1])
        if hi - lo == 1:
            continue
        seg = cum[..., lo:hi]
        before = cum[..., lo - 1] if lo > 0 else 0
        count = seg[..., -1] - before
        # index of the r-th allowed value, r = floor(u * count): the first position whose
        # running count passes before + r (all of the field's values when none is allowed)
        r = np.minimum((u[..., k] * count).astype(cum.dtype), np.maximum(count - 1, 0))
        first = (seg > (before + r)[..., None]).argmax(axis=-1)
        out[..., k] = np.where(count > 0, first, hi - lo)
    return out


class TableSampler:
    """Random legal actions for masks that are rows of a fixed table (``table[index]``).

    The allowed values of every (row, field) are listed once; the ``r``-th allowed value,
    ``r = floor(u * count)``, is then one gather instead of a scan of the masks: the same
    uniforms and the same values as :func:`sample_actions` (a field with no allowed value
    gives its size, as there).
    """

    def __init__(self, layout: ActionLayout, table: np.ndarray) -> None:
        self.layout = layout
        self.table = table
        R, L = table.shape[0], len(layout)
        width = int(layout.sizes.max())
        values = np.zeros((R, L, width), dtype=np.int64)
        count = np.zeros((R, L), dtype=np.int64)
        for k in range(L):
            lo, hi = int(layout.offsets[k]), int(layout.offsets[k + 1])
            for row in range(R):
                allowed = np.flatnonzero(table[row, lo:hi])
                count[row, k] = allowed.size
                values[row, k, : allowed.size] = allowed
                if allowed.size == 0:
                    values[row, k, 0] = hi - lo
        self.values = values.ravel()
        self.count = count
        self.width = width
        self.fields = np.arange(L)

    def sample(self, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(..., L)`` actions for mask rows ``index`` ``(...)``."""
        L = len(self.fields)
        u = rng.random((*index.shape, L))
        count = self.count[index]
        r = np.minimum((u * count).astype(np.int64), np.maximum(count - 1, 0))
        at = (index[..., None] * L + self.fields) * self.width + r
        return np.take(self.values, at)


def table_sampler(rules: BatchedRules, table: np.ndarray) -> TableSampler:
    """The rules' :class:`TableSampler` of ``table`` (built once per table)."""
    cache = rules.__dict__.setdefault("_samplers", {})
    hit = cache.get(id(table))
    if hit is None or hit.table is not table:
        hit = cache[id(table)] = TableSampler(rules.layout, table)
    return hit


def check_context(rules: BatchedRules, ctx: ContextBatch) -> None:
    """Raise a :class:`~mechgym.envs.engine.errors.ContextError` unless ``ctx`` is of the
    mechanism's context kind and of the sizes of ``rules.spec`` (players; goods, or states)."""
    from mechgym.envs.engine.errors import ContextError

    mech, spec = rules.mech, rules.spec
    if ctx.kind != mech.context_kind:
        raise ContextError(
            "context", f"{mech.title} needs '{mech.context_kind}' contexts, got '{ctx.kind}'"
        )
    if ctx.n != spec.n or ctx.m != spec.m:
        what = "states" if ctx.kind == "states" else "goods"
        raise ContextError(
            "context",
            f"the batch has n={ctx.n} players and {ctx.m} {what}; the rules are sized for "
            f"n={spec.n} and {spec.m}",
        )


def check_actions(
    layout: ActionLayout,
    masks: np.ndarray,
    actions: np.ndarray,
    acting: np.ndarray,
    phase_names: Sequence[str] | np.ndarray,
) -> None:
    """Raise a typed error unless every acting player's action is in the space and allowed.

    ``masks`` ``(B, n, mask_size)``, ``actions`` ``(B, n, L)``, ``acting`` ``(B, n)``;
    ``phase_names`` ``(B,)`` names each episode's phase for the message. Raises
    :class:`~mechgym.envs.engine.errors.OutOfSpaceError` (shape, range) or
    :class:`~mechgym.envs.engine.errors.IllegalActionError` (masked value), naming the first
    offending episode, agent, phase and field.
    """
    from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError

    B, n = acting.shape
    if actions.shape != (B, n, len(layout)):
        raise OutOfSpaceError(
            "batch", "-", f"actions have shape {actions.shape}, expected {(B, n, len(layout))}"
        )
    bad_range = ((actions < 0) | (actions >= layout.sizes)) & acting[:, :, None]
    if bad_range.any():
        b, i, k = (int(x) for x in np.argwhere(bad_range)[0])
        raise OutOfSpaceError(
            f"player_{i}",
            str(phase_names[b]),
            f"episode {b}: field '{layout.names[k]}' = {int(actions[b, i, k])} is outside "
            f"0..{int(layout.sizes[k]) - 1}",
        )
    # One flat gather (clip and take_along_axis cost several passes); the acting players'
    # entries are in range by now, the others are read at 0 and excused anyway.
    size = masks.shape[-1]
    pos = np.where(acting[:, :, None], actions, 0) + layout.offsets[:-1]
    pos += (np.arange(B * n) * size).reshape(B, n, 1)
    ok = (masks.reshape(-1)[pos] != 0) | ~acting[:, :, None]
    if not ok.all():
        b, i, k = (int(x) for x in np.argwhere(~ok)[0])
        raise IllegalActionError(
            f"player_{i}",
            str(phase_names[b]),
            f"episode {b}: field '{layout.names[k]}' = {int(actions[b, i, k])} is not allowed here",
        )


class AllAtOnce:
    """Masks and action check of a one-phase mechanism in which every player acts at once and
    may give every field any value of its range: a legal action is one inside the space.

    An episode's rows are all acting (everything allowed) or all idle (only 0 allowed).
    """

    def __init__(self, layout: ActionLayout, n: int, phase: str) -> None:
        self.layout = layout
        self.phase = phase
        full = layout.mask(dict.fromkeys(layout.names, True))
        idle = layout.mask({})
        self.blocks = np.stack([np.tile(idle, (n, 1)), np.tile(full, (n, 1))])
        self.table = self.blocks.reshape(2 * n, -1)
        self.players = np.arange(n)

    def rows(self, acting: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(table, index)`` of the masks for ``acting`` ``(B, n)``: every row full where
        anyone acts."""
        index = acting.any(axis=1).astype(np.int64)[:, None] * len(self.players) + self.players
        return self.table, index

    def masks(self, acting: np.ndarray) -> np.ndarray:
        """``(B, n, mask_size)`` masks for the acting players ``acting`` ``(B, n)``."""
        return self.blocks[acting.any(axis=1).astype(np.int64)]

    def checked(self, actions: np.ndarray, acting: np.ndarray) -> np.ndarray:
        """``actions`` as int64, or the typed error of :func:`check_actions` where an acting
        player's action has the wrong shape or leaves the space."""
        actions = np.asarray(actions, dtype=np.int64)
        lay = self.layout
        if (
            actions.shape != (*acting.shape, len(lay))
            or (((actions < 0) | (actions >= lay.sizes)) & acting[:, :, None]).any()
        ):
            phases = np.full(acting.shape[0], self.phase)
            check_actions(lay, self.masks(acting), actions, acting, phases)
        return actions


# -- the tie to the exact engine -------------------------------------------------------------
@dataclass
class Rollout:
    """A batched episode recorded for replay: per step the actions and the state before it."""

    ctx: ContextBatch
    actions: list[np.ndarray]
    acting: list[np.ndarray]
    masks: list[np.ndarray]
    final: BatchState


def rollout(
    rules: BatchedRules,
    ctx: ContextBatch,
    rng: np.random.Generator,
    policy: Callable[[BatchState, np.ndarray], np.ndarray] | None = None,
    max_steps: int = 10_000,
) -> Rollout:
    """Play a batch to the end (random legal play unless ``policy(state, masks)`` is given)."""
    state = rules.reset(ctx, rng)
    actions: list[np.ndarray] = []
    acting: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    for _ in range(max_steps):
        if state.done.all():
            break
        mk = rules.masks(state)
        act = sample_actions(rules.layout, mk, rng) if policy is None else policy(state, mk)
        actions.append(act)
        acting.append(state.acting.copy())
        masks.append(mk)
        state = rules.step(ctx, state, act, rng)
    else:
        raise RuntimeError("batch did not end within max_steps")
    return Rollout(ctx, actions, acting, masks, state)


@dataclass
class Mismatch:
    """Where the batched and the exact path disagree."""

    episode: int
    what: str


def replay_exact(rules: BatchedRules, ro: Rollout, tol: float = 1e-9) -> list[Mismatch]:
    """Replay every episode of a rollout on the exact engine and compare.

    At every decision node the exact engine gets the same array actions (decoded by the
    mechanism) and must see the same acting players and masks; at every chance node it takes
    the batch's logged draw. The terminal outcome must have the same allocation (and state,
    destroyed goods), prices within ``tol``, and the batch's rewards within ``tol``.
    """
    mech, spec, layout = rules.mech, rules.spec, rules.layout
    out = rules.outcome(ro.final)
    rewards = rules.rewards(ro.ctx, ro.final)
    bad: list[Mismatch] = []
    for b in range(ro.ctx.B):
        ctx = ro.ctx.context(b)
        draws = [int(c[b]) for c in ro.final.chance if c[b] >= 0]
        st = mech.start(ctx)
        t = 0
        problem = None
        while problem is None:
            node = mech.node(st)
            if isinstance(node, Terminal):
                break
            if isinstance(node, Chance):
                if not draws:
                    problem = f"exact engine meets chance '{node.name}' with no logged draw"
                    break
                st = mech.chance(st, draws.pop(0))
                continue
            assert isinstance(node, Decision)
            while t < len(ro.actions) and not ro.acting[t][b].any():
                t += 1
            if t >= len(ro.actions):
                problem = f"exact engine reaches '{node.phase}' after the batch ended"
                break
            who = tuple(int(i) for i in np.flatnonzero(ro.acting[t][b]))
            if who != node.players:
                problem = f"step {t}: batch acting {who}, exact {node.players} ({node.phase})"
                break
            acts = {}
            for p in node.players:
                mk = mech.action_mask(st, p, spec, layout)
                if not np.array_equal(mk.astype(np.int8), ro.masks[t][b, p].astype(np.int8)):
                    problem = f"step {t}: mask of player {p} differs in phase '{node.phase}'"
                    break
                acts[p] = mech.decode(st, p, ro.actions[t][b, p], spec, layout)
            if problem is None:
                st = step_decision(mech, st, node, acts)
                t += 1
        if problem is None and draws:
            problem = f"{len(draws)} logged chance draws left unused"
        if problem is None and any(ro.acting[k][b].any() for k in range(t, len(ro.actions))):
            problem = "batch has decisions after the exact terminal"
        if problem is None:
            o = mech.node(st).outcome  # type: ignore[union-attr]
            problem = _compare(ctx, o, out, rewards, b, tol)
        if problem is not None:
            bad.append(Mismatch(b, problem))
    return bad


def _compare(
    ctx: Any, o: Any, out: BatchOutcome, rewards: np.ndarray, b: int, tol: float
) -> str | None:
    if ctx.kind == "states":
        if int(out.state[b]) != int(o.state):
            return f"state {int(out.state[b])} vs exact {o.state}"
    else:
        if tuple(int(x) for x in out.alloc[b]) != tuple(o.alloc):
            return f"alloc {out.alloc[b].tolist()} vs exact {list(o.alloc)}"
        if int(out.destroyed[b]) != int(o.destroyed):
            return f"destroyed {int(out.destroyed[b])} vs exact {o.destroyed}"
    exact_prices = np.array([float(p) for p in o.prices])
    if not np.allclose(out.prices[b], exact_prices, rtol=0, atol=tol):
        return f"prices {out.prices[b].tolist()} vs exact {exact_prices.tolist()}"
    exact_rewards = np.array([float(r) for r in ctx.rewards(o)])
    if not np.allclose(rewards[b], exact_rewards, rtol=0, atol=tol):
        return f"rewards {rewards[b].tolist()} vs exact {exact_rewards.tolist()}"
    return None


# -- catalogue -------------------------------------------------------------------------------
BATCHED_MODULES: dict[str, str] = {s.name: s.module for s in SPECS.values()}
"""Where each mechanism's rules live (imported on first use): its own module."""

_RULES: dict[type, type[BatchedRules]] = {}


def register_batched(rules_cls: type[BatchedRules]) -> type[BatchedRules]:
    """Class decorator: register batched rules for ``rules_cls.mechanism``."""
    _RULES[rules_cls.mechanism] = rules_cls
    return rules_cls


def batched_rules(mech: Mechanism, spec: EnvSpec) -> BatchedRules:
    """The batched rules of an exact mechanism instance, for the env sizes ``spec``."""
    import importlib

    mod = BATCHED_MODULES.get(mech.name)
    if mod is None:
        from mechgym.envs.engine.errors import ParameterError

        raise ParameterError("mechanism", f"{mech.title} has no batched rules")
    importlib.import_module(mod)
    rules_cls = rules_class(mech)
    check_implemented(mech, rules_cls)
    return rules_cls(mech, spec)


def rules_class(mech: Mechanism) -> type[BatchedRules]:
    """The batched rules class registered for ``mech``'s class (or a base class of it)."""
    for cls in type(mech).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    from mechgym.envs.engine.errors import ParameterError

    where = BATCHED_MODULES.get(mech.name)
    raise ParameterError("mechanism", f"{mech.title} has no batched rules registered in {where}")


def check_implemented(mech: Mechanism, rules_cls: type[BatchedRules]) -> None:
    """Raise :class:`~mechgym.envs.engine.errors.ParameterError` if ``mech`` was built with a
    constructor parameter (off its default) that ``rules_cls`` does not implement: the batched
    path refuses it rather than ignoring it."""
    missing = [k for k in mech.given_arguments() if k not in rules_cls.implements]
    if missing:
        from mechgym.envs.engine.errors import ParameterError

        raise ParameterError(
            missing[0],
            f"{mech.name}: the batched path does not implement {', '.join(missing)}; "
            "use the exact path (evaluate --exact) or leave it at its default",
        )
