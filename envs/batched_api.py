"""A batched multi-agent API over the batched path, for researchers' own learners.

A numpy cousin of JaxMARL's functional API: one object runs ``B`` independent episodes of a
mechanism at once, and every call takes and returns dicts ``{agent: (B, ...) array}``::

    env = BatchedEnv("best_belief", batch_size=256, generate="uniform:n=3,m=2,cap=10")
    obs, info = env.reset(seed=0)
    obs["player_0"]["observation"]   # (256, obs_size) float32, as the AEC env's vector
    obs["player_0"]["action_mask"]   # (256, mask_size) int8, flat over the layout's fields
    actions = {a: my_policy(obs[a]) for a in env.agents}   # (256, L) int64 each
    obs, rewards, terminated, truncated, info = env.step(actions)

* Every episode advances one decision node per :meth:`BatchedEnv.step`; the chance nodes
  that follow are drawn inside it. Episodes sit in different phases; ``info["acting"]`` says
  who acts where, and the rows of players that do not act are ignored (their masks allow
  only 0).
* Observations are the single-episode PettingZoo env's: ``[phase one-hot | acting flag |
  own index one-hot | private information | public history]`` (see
  :mod:`mechgym.envs.pettingzoo.aec`), built here for the whole batch by
  :func:`observation_vectors`.
* Actions are the env's ``MultiDiscrete`` layout (one row per episode). An acting player's
  row must be legal under its mask; otherwise :meth:`BatchedEnv.step` raises the typed
  :class:`~mechgym.envs.engine.errors.OutOfSpaceError` or
  :class:`~mechgym.envs.engine.errors.IllegalActionError` naming the episode, agent, phase
  and field, and the env is left as it was.
* ``action_encoding="factored"`` / ``"continuous"`` (see :mod:`mechgym.envs.engine.factored`):
  every step takes one sub-decision ``(B,)`` (and in ``continuous`` a box value ``(B,)``:
  pass ``(entries, x)``) of every agent still composing its move; ``info["acting"]`` says who
  composes, the masks are ``(B, D)``, each agent's observation ends with its own move so far,
  and a node resolves on the batched rules once every acting agent's move is complete
  (:class:`FactoredDriver`).
* Rewards arrive when an episode ends: utilities, or coalition totals for members of a
  shared-reward coalition (float64). ``terminated[agent][b]`` is true at that step.
* ``auto_reset=True`` (default) starts a fresh episode in every slot that ended, with a
  fresh context; the ended episodes' last observations are in
  ``info["final_observation"]`` and their outcomes in ``info["final_outcome"]``. With
  ``auto_reset=False`` ended episodes stay ended (their actions are ignored) until
  :meth:`BatchedEnv.reset`.

Contexts come from a batched sampler of a generator spec (``generate``), a fixed context
(``context``), a fixed family drawn uniformly (``contexts``), or the env module's default
generator. Money is float64 on this path; the exact PettingZoo env stays the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces
from mechgym.envs.engine.batched import (
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    batched_rules,
    check_actions,
)
from mechgym.envs.engine.errors import ContextError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.observation import observation_head
from mechgym.envs.model.family import ContextFamily, FamilySampler
from mechgym.envs.pettingzoo.aec import OBS_BOUND, agent_name

__all__ = [
    "BatchedEnv",
    "ContextSource",
    "ExactSampler",
    "FamilySampler",
    "context_source",
    "observation_vectors",
    "private_features",
    "put_state",
    "static_partition",
    "take_state",
]


# -- contexts ------------------------------------------------------------------------------------
class ContextSource(Protocol):
    """Draws ``B`` contexts as a :class:`ContextBatch` from the generator passed in."""

    def sample(self, B: int, rng: np.random.Generator) -> ContextBatch: ...


@dataclass
class ExactSampler:
    """An exact generator sampled context by context (for generators with no batched
    sampler): slower than a batched sampler, same distribution and stream as the exact env."""

    generator: Any

    def sample(self, B: int, rng: np.random.Generator) -> ContextBatch:
        return ContextBatch.from_contexts([self.generator.sample(rng) for _ in range(B)])


def context_source(
    generator: Any = None, context: Any = None, contexts: Sequence[Any] | None = None
) -> ContextSource:
    """A context source from exactly one of: a generator (object or spec string), a context,
    or a family of contexts. Generators with a batched sampler get it."""
    given = [x is not None for x in (generator, context, contexts)]
    if sum(given) != 1:
        raise ParameterError("context", "give exactly one of generator, context or contexts")
    if contexts is not None:
        return FamilySampler(ContextFamily(tuple(contexts)))
    if context is not None:
        return FamilySampler(ContextFamily((context,)))
    if hasattr(generator, "sample") and hasattr(generator, "base"):
        return generator  # already a batched sampler
    from mechgym.envs.model.batched_generators import BatchGenerator
    from mechgym.envs.model.generators import make_generator

    gen = make_generator(generator) if isinstance(generator, str) else generator
    if isinstance(gen, ContextFamily):
        return FamilySampler(gen)
    try:
        return BatchGenerator(gen)
    except ContextError:
        return ExactSampler(gen)


def static_partition(source: ContextSource, n: int) -> tuple[tuple[int, ...], ...] | None:
    """The coalitions every context of ``source`` has, or ``None`` when they vary.

    Fixed families are read context by context; generators by their ``coalitions`` mode
    (``"random"`` varies).
    """
    imposed = getattr(source, "partition", None)
    if imposed is not None:
        return imposed  # coalitions imposed on every context
    if isinstance(source, FamilySampler):
        parts = {source.batch.coalitions_of(b) for b in range(source.batch.B)}
        return parts.pop() if len(parts) == 1 else None
    gen = getattr(source, "base", None) or getattr(source, "generator", None)
    mode = getattr(gen, "coalitions", None)
    if mode == "independent":
        return tuple((i,) for i in range(n))
    if mode == "pair":
        return ((0, 1), *((i,) for i in range(2, n)))
    if mode == "grand":
        return (tuple(range(n)),)
    return None


# -- batch states ---------------------------------------------------------------------------------
def take_state(state: BatchState, idx: np.ndarray) -> BatchState:
    """The sub-batch ``idx`` of a batch state (chance log not carried)."""
    B = state.phase.shape[0]
    data = {k: (v[idx] if v.ndim and v.shape[0] == B else v) for k, v in state.data.items()}
    return BatchState(state.phase[idx], state.acting[idx], data, [])


def put_state(state: BatchState, idx: np.ndarray, sub: BatchState) -> None:
    """Write the sub-batch ``sub`` into episodes ``idx`` of ``state``, in place.

    Arrays whose trailing shape changed (none of the registered rules do this) are grown by
    rebuilding them.
    """
    B = state.phase.shape[0]
    state.phase[idx] = sub.phase
    state.acting[idx] = sub.acting
    for k, v in sub.data.items():
        cur = state.data.get(k)
        if cur is None or not cur.ndim or cur.shape[0] != B:
            if cur is None:
                full = np.zeros((B, *v.shape[1:]), dtype=v.dtype)
                full[idx] = v
                state.data[k] = full
            continue
        if cur.shape[1:] != v.shape[1:] or cur.dtype != v.dtype:
            raise ParameterError(
                "state", f"batched state field '{k}' changed shape or type inside an episode"
            )
        if not cur.flags.writeable:
            cur = cur.copy()
            state.data[k] = cur
        cur[idx] = v


# -- observations ---------------------------------------------------------------------------------
def private_features(ctx: ContextBatch, player: int) -> np.ndarray:
    """``(B, private_size)`` float32: each episode's ``ctx.private_features(player)``."""
    B, n = ctx.B, ctx.n
    if ctx.kind == "auction":
        assert ctx.lower is not None
        out = np.concatenate([ctx.values[:, player], ctx.lower[:, player].reshape(B, -1)], axis=1)
        return out.astype(np.float32)
    member = (ctx.coalition == ctx.coalition[:, player : player + 1]).astype(np.int64)
    if ctx.kind == "states":
        return np.concatenate([ctx.values.reshape(B, -1), member], axis=1).astype(np.float32)
    assert ctx.endowment is not None
    m = ctx.m
    bits = (ctx.endowment[:, :, None] >> np.arange(m)[None, None, :]) & 1  # (B, n, m)
    owner = (bits * np.arange(n)[None, :, None]).sum(axis=1)
    return np.concatenate([ctx.values.reshape(B, -1), owner, member], axis=1).astype(np.float32)


def observation_vectors(
    rules: BatchedRules,
    ctx: ContextBatch,
    state: BatchState,
    player: int,
    acting: np.ndarray | None = None,
) -> np.ndarray:
    """``(B, obs_size)`` float32: the AEC env's observation vector of ``player`` per episode.

    ``acting`` ``(B,)`` overrides the acting flag (default ``state.acting[:, player]``).
    Ended episodes get a zero phase part, as the AEC env at a terminal node.
    """
    B = ctx.B
    flag = state.acting[:, player] if acting is None else acting
    head = observation_head(state.phase, flag, len(rules.phases))
    own = np.zeros((B, rules.spec.n), dtype=np.float32)
    own[:, player] = 1.0
    public = np.clip(rules.public_features(state, player), -OBS_BOUND, OBS_BOUND)
    obs = np.concatenate([head, own, private_features(ctx, player), public], axis=1)
    np.clip(obs, -OBS_BOUND, OBS_BOUND, out=obs)
    return obs.astype(np.float32, copy=False)


# -- the env --------------------------------------------------------------------------------------
class BatchedEnv:
    """``B`` episodes of a mechanism as dicts of ``(B, ...)`` arrays (module docstring).

    Parameters
    ----------
    mechanism : str
        A catalogue name with batched rules (``best_belief``, ``vcg``, ...).
    batch_size : int
        ``B``, the number of episodes run at once.
    generate : str or generator, optional
        Contexts: a generator spec such as ``"uniform:n=3,m=2,cap=10"`` or an exact
        generator object (batched sampler when one exists).
    context : context or str, optional
        One fixed context (or the name of a worked example).
    contexts : sequence of contexts, optional
        A fixed family, drawn uniformly per episode.
    auto_reset : bool
        Restart ended slots at once (see the module docstring).
    value_cap, price_cap : int, optional
        Sizes of the array layout (as the PettingZoo env's).
    seed : int, optional
        Seeds the env's generator; :meth:`reset` with a seed reseeds it.
    action_encoding : {"multidiscrete", "factored", "continuous"}
        Layout rows, or sub-decisions (module docstring).
    price_levels, price_grid : int, str
        Amount grids of the factored encodings.
    constants : mechanism constants (``eps="1/10"``, ...).
    """

    def __init__(
        self,
        mechanism: str,
        batch_size: int,
        generate: Any = None,
        *,
        context: Any = None,
        contexts: Sequence[Any] | None = None,
        auto_reset: bool = True,
        value_cap: int | None = None,
        price_cap: int | None = None,
        seed: int | None = None,
        action_encoding: str = "multidiscrete",
        price_levels: int = 16,
        price_grid: str = "linear",
        **constants: Any,
    ) -> None:
        from mechgym.envs.engine.factored import FACTORED_ENCODINGS, check_encoding_options
        from mechgym.envs.engine.spaces import canonical_encoding
        from mechgym.envs.pettingzoo.registry import entry

        action_encoding = canonical_encoding(action_encoding)
        if action_encoding != "multidiscrete":
            check_encoding_options(action_encoding, price_levels, price_grid)

        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise ParameterError("batch_size", f"must be an integer, got {batch_size!r}")
        if batch_size < 1:
            raise ParameterError("batch_size", f"must be at least 1, got {batch_size}")
        if isinstance(context, str):
            from mechgym.envs.model.examples import example

            context = example(context)
        gen = generate
        if isinstance(gen, str):
            from mechgym.envs.model.generators import make_generator

            gen = make_generator(gen)
        raw = (
            entry(mechanism)
            .load_env_module()
            .raw_env(
                context=context if contexts is None else contexts[0],
                generator=gen,
                value_cap=value_cap,
                price_cap=price_cap,
                **constants,
            )
        )
        self.mechanism_name = mechanism
        self.mech = raw.mechanism
        self.spec = raw.spec
        self.context_class = raw.context_class
        self.rules: BatchedRules = batched_rules(self.mech, self.spec)
        if contexts is not None:
            self.source: ContextSource = context_source(contexts=contexts)
        elif context is not None:
            self.source = context_source(context=raw.context)
        else:
            self.source = context_source(generator=raw.generator)
        self.B = int(batch_size)
        self.auto_reset = bool(auto_reset)
        self.layout = self.rules.layout
        self.phases = self.rules.phases
        n = self.spec.n
        self.possible_agents = [agent_name(i) for i in range(n)]
        self.agents = list(self.possible_agents)
        obs_size = int(raw.observation_space(self.agents[0])["observation"].shape[0])
        self.action_encoding = action_encoding
        self.factored: FactoredDriver | None = None
        mask_size = self.layout.mask_size
        if action_encoding in FACTORED_ENCODINGS:
            self.factored = FactoredDriver(
                self.rules, int(batch_size), action_encoding, price_levels, price_grid
            )
            obs_size += self.factored.plan.feature_size
            mask_size = self.factored.plan.D
        self.observation_spaces = {
            a: spaces.Dict(
                {
                    "observation": spaces.Box(
                        -OBS_BOUND, OBS_BOUND, shape=(self.B, obs_size), dtype=np.float32
                    ),
                    "action_mask": spaces.Box(0, 1, shape=(self.B, mask_size), dtype=np.int8),
                }
            )
            for a in self.agents
        }
        self.action_spaces = {a: self._space() for a in self.agents}
        self.rng = np.random.default_rng(seed)
        self.ctx: ContextBatch | None = None
        self.state: BatchState | None = None

    # -- spaces --------------------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Space:
        """Batched observation space of ``agent`` (leading axis ``B``)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        """``MultiDiscrete`` of shape ``(B, L)``: one layout row per episode; ``factored``:
        ``MultiDiscrete`` ``(B,)`` of ``D`` entries (one sub-decision per episode);
        ``continuous``: ``Tuple`` of that and a ``Box`` ``(B,)`` in ``[0, 1]``."""
        return self.action_spaces[agent]

    def _space(self) -> spaces.Space:
        if self.factored is None:
            return spaces.MultiDiscrete(np.tile(self.layout.sizes, (self.B, 1)))
        choice = spaces.MultiDiscrete(np.full(self.B, self.factored.plan.D))
        if self.action_encoding == "factored":
            return choice
        return spaces.Tuple((choice, spaces.Box(0.0, 1.0, shape=(self.B,), dtype=np.float32)))

    # -- API -----------------------------------------------------------------------------------
    def reset(
        self, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
        """Start ``B`` fresh episodes; returns ``(obs, info)``.

        ``options={"contexts": ContextBatch}`` plays given contexts (``B`` of them).
        """
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        given = (options or {}).get("contexts")
        if given is not None:
            if not isinstance(given, ContextBatch) or given.B != self.B:
                raise ContextError("options.contexts", f"must be a ContextBatch of {self.B}")
            if (given.n, given.m) != (self.spec.n, self.spec.m):
                raise ContextError(
                    "options.contexts", f"must have n={self.spec.n}, m={self.spec.m}"
                )
            self.ctx = given
        else:
            self.ctx = self.source.sample(self.B, self.rng)
        self.state = self.rules.reset(self.ctx, self.rng)
        if self.factored is not None:
            self.factored.begin(self.ctx, self.state)
        return self._observe(), self._info()

    def step(
        self, actions: Mapping[str, np.ndarray]
    ) -> tuple[
        dict[str, dict[str, np.ndarray]],
        dict[str, np.ndarray],
        dict[str, np.ndarray],
        dict[str, np.ndarray],
        dict[str, Any],
    ]:
        """Resolve every live episode's pending decision with ``actions`` (module docstring)."""
        if self.state is None or self.ctx is None:
            raise OutOfSpaceError("batch", "-", "call reset() before step()")
        if self.factored is not None:
            return self._factored_step(actions)
        B, n, L = self.B, self.spec.n, len(self.layout)
        acts = np.zeros((B, n, L), dtype=np.int64)
        for i, a in enumerate(self.possible_agents):
            if a not in actions:
                if self.state.acting[:, i].any():
                    raise OutOfSpaceError(a, self._phase_name(i), "no actions given for an agent")
                continue
            arr = np.asarray(actions[a])
            if arr.shape != (B, L) or not np.issubdtype(arr.dtype, np.integer):
                raise OutOfSpaceError(
                    a, self._phase_name(i), f"actions must be integers of shape {(B, L)}"
                )
            acts[:, i] = arr
        unknown = set(actions) - set(self.possible_agents)
        if unknown:
            raise OutOfSpaceError(sorted(unknown)[0], "-", "not an agent of this env")
        masks = self.rules.masks(self.state)
        names = np.array([*self.phases, "done"], dtype=object)[self.state.phase]
        check_actions(self.layout, masks, acts, self.state.acting, names)
        was_live = ~self.state.done
        self.state = self.rules.step(self.ctx, self.state, acts, self.rng)
        self.state.chance = []  # the log serves replay only; it would grow without bound
        ended = was_live & self.state.done
        return self._finish_step(ended)

    def _finish_step(self, ended: np.ndarray) -> tuple[Any, ...]:
        """Rewards of the episodes that ended, auto-reset, observations and info."""
        assert self.state is not None and self.ctx is not None
        B, n = self.B, self.spec.n
        rewards = np.zeros((B, n), dtype=np.float64)
        info: dict[str, Any] = {}
        if ended.any():
            r = self.rules.rewards(self.ctx, self.state)
            rewards[ended] = r[ended]
        if self.auto_reset and ended.any():
            idx = np.flatnonzero(ended)
            info["final_observation"] = {
                k: {f: v[idx] for f, v in o.items()} for k, o in self._observe().items()
            }
            info["final_outcome"] = _take_outcome(self.rules.outcome(self.state), idx)
            info["final_episodes"] = idx
            fresh = self.source.sample(len(idx), self.rng)
            self.ctx.put(idx, fresh)
            put_state(self.state, idx, self.rules.reset(fresh, self.rng))
            if self.factored is not None:
                self.factored.begin(self.ctx, self.state, idx)
        obs = self._observe()
        rew = {a: rewards[:, i] for i, a in enumerate(self.possible_agents)}
        term = {a: ended.copy() for a in self.possible_agents}
        trunc = {a: np.zeros(B, dtype=bool) for a in self.possible_agents}
        info.update(self._info())
        return obs, rew, term, trunc, info

    def _factored_step(self, actions: Mapping[str, Any]) -> tuple[Any, ...]:
        """One sub-decision of every composing (episode, player); nodes whose moves are all
        composed resolve on the batched rules."""
        assert self.state is not None and self.ctx is not None and self.factored is not None
        fd = self.factored
        B, n = self.B, self.spec.n
        unknown = set(actions) - set(self.possible_agents)
        if unknown:
            raise OutOfSpaceError(sorted(unknown)[0], "-", "not an agent of this env")
        choices = np.zeros((B, n), dtype=np.int64)
        box = np.zeros((B, n), dtype=np.float64)
        comp = fd.composing()
        for i, a in enumerate(self.possible_agents):
            if a not in actions:
                if comp[:, i].any():
                    raise OutOfSpaceError(a, self._phase_name(i), "no actions given for an agent")
                continue
            c, x = _split_choice(actions[a], self.action_encoding, B, a, self._phase_name(i))
            choices[:, i] = np.where(comp[:, i], c, 0)
            if x is not None:
                box[:, i] = np.where(comp[:, i], x, 0.0)
        fd.check(self.state, choices, box, range(n))
        fd.apply(choices, box)
        ready = fd.ready(self.state)
        was_live = ~self.state.done
        if len(ready):
            sub = take_state(self.state, ready)
            acts = fd.actions(ready)
            names = np.array([*self.phases, "done"], dtype=object)[sub.phase]
            check_actions(self.layout, self.rules.masks(sub), acts, sub.acting, names)
            new = self.rules.step(self.ctx.take(ready), sub, acts, self.rng)
            put_state(self.state, ready, new)
            fd.begin(self.ctx, self.state, ready)
        self.state.chance = []
        return self._finish_step(was_live & self.state.done)

    def outcome(self) -> BatchOutcome:
        """Terminal outcomes of the current episodes (meaningful where they ended)."""
        if self.state is None:
            raise OutOfSpaceError("batch", "-", "call reset() first")
        return self.rules.outcome(self.state)

    def close(self) -> None:
        """Nothing to release."""

    # -- helpers -------------------------------------------------------------------------------
    def _phase_name(self, player: int) -> str:
        assert self.state is not None
        rows = np.flatnonzero(self.state.acting[:, player])
        if not len(rows):
            return "-"
        return self.phases[int(self.state.phase[rows[0]])]

    def _observe(self) -> dict[str, dict[str, np.ndarray]]:
        assert self.state is not None and self.ctx is not None
        fd = self.factored
        if fd is not None:
            comp = fd.composing()
            fmasks = fd.action_masks()
            return {
                a: {
                    "observation": np.concatenate(
                        [
                            observation_vectors(self.rules, self.ctx, self.state, i, comp[:, i]),
                            fd.features(i),
                        ],
                        axis=1,
                    ),
                    "action_mask": fmasks[:, i],
                }
                for i, a in enumerate(self.possible_agents)
            }
        masks = self.rules.masks(self.state)
        return {
            a: {
                "observation": observation_vectors(self.rules, self.ctx, self.state, i),
                "action_mask": masks[:, i],
            }
            for i, a in enumerate(self.possible_agents)
        }

    def _info(self) -> dict[str, Any]:
        assert self.state is not None
        acting = self.state.acting if self.factored is None else self.factored.composing()
        info = {
            "phase": self.state.phase.copy(),
            "acting": {a: acting[:, i].copy() for i, a in enumerate(self.agents)},
            "done": self.state.done.copy(),
        }
        if self.factored is not None and self.factored.plan.continuous:
            box = self.factored.reads_box()
            info["reads_box"] = {a: box[:, i].copy() for i, a in enumerate(self.agents)}
        return info


def _split_choice(
    action: Any, encoding: str, B: int, agent: str, phase: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(choices (B,), box (B,) or None)`` of one agent's factored or continuous actions."""
    x = None
    if encoding == "continuous":
        if isinstance(action, Mapping):
            action = (action.get("choice"), action.get("x"))
        if not isinstance(action, tuple | list) or len(action) != 2:
            raise OutOfSpaceError(agent, phase, "continuous actions are a pair (choices, box)")
        action, x = action
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.shape != (B,):
            raise OutOfSpaceError(agent, phase, f"box values must have shape {(B,)}")
    c = np.asarray(action)
    if c.shape != (B,) or not (
        np.issubdtype(c.dtype, np.integer) or (c.dtype.kind == "f" and np.all(c == np.round(c)))
    ):
        raise OutOfSpaceError(agent, phase, f"sub-decisions must be integers of shape {(B,)}")
    return c.astype(np.int64), x


def _take_outcome(out: BatchOutcome, idx: np.ndarray) -> BatchOutcome:
    return BatchOutcome(out.alloc[idx], out.prices[idx], out.state[idx], out.destroyed[idx])


# -- factored moves ------------------------------------------------------------------------------
class FactoredDriver:
    """Factored moves of a batch: one :class:`~mechgym.envs.engine.factored.Composer` row per
    (episode, player), row ``b * n + i``.

    A node's acting players (those in ``players``) each make their move as a sequence of
    sub-decisions; every :meth:`apply` takes one sub-decision from each row still composing.
    An episode whose acting players have all finished is :meth:`ready`; its composed layout
    actions (:meth:`actions`) then resolve the node on the batched rules, and :meth:`begin`
    starts the next node.

    Parameters
    ----------
    rules : BatchedRules
    B : int
    encoding : {"factored", "continuous"}
    price_levels, price_grid : see :class:`~mechgym.envs.engine.factored.FactoredPlan`
    players : sequence of int, optional
        The players who compose (default all; scripted players act with whole actions).
    """

    def __init__(
        self,
        rules: BatchedRules,
        B: int,
        encoding: str,
        price_levels: int = 16,
        price_grid: str = "linear",
        players: Sequence[int] | None = None,
    ) -> None:
        from mechgym.envs.engine.factored import Composer, make_plan

        spec = rules.spec
        m = spec.m if rules.mech.context_kind != "states" else 0
        self.rules = rules
        self.B, self.n = int(B), spec.n
        self.plan = make_plan(
            rules.mech, rules.layout, spec.n, m, encoding, price_levels, price_grid
        )
        self.composer = Composer(self.plan, self.B * self.n)
        self.players = np.zeros(self.n, dtype=bool)
        self.players[list(range(self.n)) if players is None else list(players)] = True

    def begin(self, ctx: ContextBatch, state: BatchState, idx: np.ndarray | None = None) -> None:
        """Start the pending node of episodes ``idx`` (default all)."""
        n = self.n
        if idx is None:
            idx = np.arange(self.B)
            sub, sctx = state, ctx
        else:
            idx = np.asarray(idx, dtype=np.int64)
            if not len(idx):
                return
            sub, sctx = take_state(state, idx), ctx.take(idx)
        masks = self.rules.masks(sub)
        rows = idx[:, None] * n + np.arange(n)[None, :]
        acting = sub.acting & self.players[None, :]
        lower = None
        if sctx.lower is not None:
            b, i = np.nonzero(acting)
            lower = sctx.lower[b, i]  # each acting player's own lower bounds
        self.composer.begin(rows[acting], masks[acting], lower)
        self.composer.stop(rows[~acting])

    def composing(self) -> np.ndarray:
        """``(B, n)`` rows with a sub-decision pending."""
        return self.composer.composing.reshape(self.B, self.n)

    def action_masks(self) -> np.ndarray:
        """``(B, n, D)`` int8 sub-decision masks (entry 0 only where nothing is pending)."""
        return self.composer.action_masks().reshape(self.B, self.n, self.plan.D)

    def reads_box(self) -> np.ndarray:
        """``(B, n)`` rows whose pending sub-decision reads the box (``continuous``)."""
        return self.composer.reads_box().reshape(self.B, self.n)

    def features(self, player: int) -> np.ndarray:
        """``(B, feature_size)`` float32: ``player``'s own move so far (hidden from others)."""
        return self.composer.features(np.arange(self.B) * self.n + player)

    def check(
        self, state: BatchState, choices: np.ndarray, x: np.ndarray | None, players: Sequence[int]
    ) -> None:
        """Raise a typed error (episode, agent, phase, sub-decision) unless every composing
        row of ``players`` has a legal choice in ``choices`` ``(B, n)`` (and ``x`` ``(B, n)``
        where the box is read); nothing changes."""
        comp = self.composing()
        names = np.array([*self.rules.phases, "done"], dtype=object)[state.phase]
        for i in players:
            b = np.flatnonzero(comp[:, i])
            if not len(b):
                continue
            rows = b * self.n + i
            agents = [f"player_{i}"] * len(b)
            phases = [f"{names[e]} (episode {e})" for e in b.tolist()]
            self.composer.check(rows, choices[b, i], agents, phases, None if x is None else x[b, i])

    def apply(self, choices: np.ndarray, x: np.ndarray | None = None) -> None:
        """Take one (checked) sub-decision from every composing row."""
        comp = self.composing().reshape(-1)
        rows = np.flatnonzero(comp)
        c = np.asarray(choices, dtype=np.int64).reshape(-1)[rows]
        xs = None if x is None else np.asarray(x, dtype=np.float64).reshape(-1)[rows]
        self.composer.choose(rows, c, xs)

    def ready(self, state: BatchState) -> np.ndarray:
        """Live episodes none of whose rows is still composing."""
        return np.flatnonzero(~state.done & ~self.composing().any(axis=1))

    def actions(self, idx: np.ndarray) -> np.ndarray:
        """``(len(idx), n, L)`` composed layout actions of episodes ``idx``."""
        rows = np.asarray(idx, dtype=np.int64)[:, None] * self.n + np.arange(self.n)[None, :]
        return self.composer.act[rows]

    def copy(self) -> FactoredDriver:
        """An independent copy (to restore after a failed step)."""
        out = FactoredDriver.__new__(FactoredDriver)
        out.__dict__.update(self.__dict__)
        out.composer = self.composer.copy()
        return out
