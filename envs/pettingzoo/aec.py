"""One PettingZoo AEC adapter (and a parallel one) over any engine mechanism.

Simultaneous moves: every acting agent is selected in turn; its action is validated at once
and buffered, hidden from the others, until the node resolves. Sequential moves are nodes with
a single acting player. Chance nodes resolve inside ``step`` (and ``reset``) from the env's own
seeded ``numpy.random.Generator``. Rewards arrive at the terminal node: utilities, or the
coalition's total utility for members of a shared-reward coalition.

Observation of every agent: ``{"observation": float32 vector, "action_mask": int8 vector}``;
the vector is ``[phase one-hot | acting flag | own index one-hot | private information |
public history and pending question]`` (the last part is the mechanism's
:meth:`~mechgym.envs.engine.game.Mechanism.public_features`). Actions are arrays of the
agent's ``MultiDiscrete`` action space (``action_encoding="multidiscrete"``, see the mechanism's
layout; fields the node does not read are ignored), menu entries of a ``Discrete`` space
(``action_encoding="menu"``, see :mod:`mechgym.agents.menus`), sub-decisions
(``action_encoding="factored"`` or ``"continuous"``, see :mod:`mechgym.envs.engine.factored`:
the acting agent is selected once per sub-decision, and its move so far, at the end of its
own observation, stays hidden from the others until the node resolves), or in every encoding
(at the start of a factored move) the mechanism's structured actions (e.g.
:class:`~mechgym.envs.engine.actions.Offer`, ``True``/``False``). ``state()`` is a global state
vector for centralised critics.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from functools import partial
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from mechgym.envs.engine.errors import (
    ContextError,
    NotActingError,
    OutOfSpaceError,
    ParameterError,
)
from mechgym.envs.engine.factored import FACTORED_ENCODINGS, Composer, make_plan
from mechgym.envs.engine.game import (
    Decision,
    Mechanism,
    Terminal,
)
from mechgym.envs.engine.observation import observation_head, state_head
from mechgym.envs.engine.setting import resolve_setting
from mechgym.envs.engine.spaces import MaskedChoiceBox, MaskedDiscrete, canonical_encoding
from mechgym.envs.model.limits import check_seed
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import wrappers

OBS_BOUND = float(2**24)
ACTION_ENCODINGS = ("multidiscrete", "menu", "factored", "continuous")


def agent_name(i: int) -> str:
    """PettingZoo name of player ``i``."""
    return f"player_{i}"


class MechanismEnv(AECEnv):
    """PettingZoo AEC environment over a :class:`~mechgym.envs.engine.game.Mechanism`.

    Parameters
    ----------
    mechanism : Mechanism
        The rules.
    context : context, optional
        A fixed context for every episode.
    generator : context generator, optional
        Draws a fresh context at every reset from the env's generator (needs ``n``, ``m``,
        ``value_cap``, ``context_class`` and ``sample(rng)``).
    seed : int, optional
        Seeds the env's generator (chance moves and sampled contexts); ``reset(seed=...)``
        reseeds it.
    value_cap, price_cap : int, optional
        Ranges of reported values and announced prices in the array encoding; default from
        the context (largest value) or the generator.
    render_mode : {"ansi", "human"}, optional
        ``"ansi"``: :meth:`render` returns the transcript so far; ``"human"``: each step
        prints the transcript lines that are new. Without one, :meth:`render` warns.
    action_encoding : {"multidiscrete", "menu", "factored", "continuous"}
        ``"multidiscrete"`` (default): the full strategy space, a ``MultiDiscrete`` of named
        fields with a flat mask (fields a node does not read are ignored). ``"menu"``: a
        ``Discrete(K)`` per agent whose entries are the mechanism's menu at the node (see
        :mod:`mechgym.agents.menus`), with a length-``K`` mask. Structured actions are
        accepted in both. ``"factored"``: a move is a sequence of ``Discrete(D)``
        sub-decisions with exact masks, the observation ending with the agent's own move so
        far. ``"continuous"``: the same with ``Tuple(Discrete(D), Box(0, 1, (1,)))``
        sub-decisions; amount sub-decisions read the box (see
        :mod:`mechgym.envs.engine.factored`).
    price_levels, price_grid : int, str
        Amount grids of the factored encodings (default 16 levels, ``"linear"``; also
        ``"geometric"`` and ``"own-lower-bounds"``).

    Attributes
    ----------
    game_state : object
        The engine state of the game (``state()`` is PettingZoo's global state vector).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi", "human"],
        "name": "mechgym",
        "is_parallelizable": True,
    }

    def __init__(
        self,
        mechanism: Mechanism,
        context: Any = None,
        generator: Any = None,
        seed: int | None = None,
        value_cap: int | None = None,
        price_cap: int | None = None,
        render_mode: str | None = None,
        action_encoding: str = "multidiscrete",
        price_levels: int = 16,
        price_grid: str = "linear",
    ) -> None:
        super().__init__()
        action_encoding = canonical_encoding(action_encoding)
        if action_encoding not in ACTION_ENCODINGS:
            raise ParameterError(
                "action_encoding",
                f"unknown {action_encoding!r}; use one of {', '.join(ACTION_ENCODINGS)}",
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ParameterError(
                "render_mode",
                f"must be one of {self.metadata['render_modes']}, got {render_mode!r}",
            )
        setting = resolve_setting(mechanism, context, generator, value_cap, price_cap)
        self.setting = setting
        self.mechanism = mechanism
        self.generator = generator
        self.context = context
        self.context_class = setting.context_class
        seed = check_seed(seed)
        self.spec = setting.spec
        self.layout = mechanism.layout(self.spec)
        self.render_mode = render_mode
        self.metadata = {
            **self.metadata,
            "name": f"{mechanism.name}_v0",
            # aec_to_parallel needs every agent to act once at every node
            "is_parallelizable": mechanism.simultaneous_only
            and mechanism.every_player_acts
            and action_encoding in ("multidiscrete", "menu"),
        }
        n = self.spec.n
        self.possible_agents = [agent_name(i) for i in range(n)]
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._phase_index = {p: k for k, p in enumerate(mechanism.phases)}
        self._static_size = len(mechanism.phases) + 1
        self._private_size = self.context_class.private_size(self.spec.n, self.spec.m)
        size = self._static_size + n + self._private_size + mechanism.public_size(self.spec)
        self.action_encoding = action_encoding
        self.menus: Any = None
        self.composer: Any = None
        self._zero_mask = self.layout.mask({})
        if action_encoding in FACTORED_ENCODINGS:
            m = self.spec.m if mechanism.context_kind != "states" else 0
            plan = make_plan(
                mechanism, self.layout, n, m, action_encoding, price_levels, price_grid
            )
            self.composer = Composer(plan, n)
            size += plan.feature_size
            self._idle_mask = np.zeros(plan.D, dtype=np.int8)
            self._idle_mask[0] = 1
            self._idle_mask.setflags(write=False)
        elif action_encoding == "menu":
            from mechgym.agents.menus import menu_table

            self.menus = menu_table(mechanism, self.spec)
            # entry 0 stands for the no-op of a non-acting agent (not read), as field value 0
            # does in the multidiscrete mask: samplers always have a legal value
            self._idle_mask = np.zeros(self.menus.K, dtype=np.int8)
            self._idle_mask[0] = 1
            self._idle_mask.setflags(write=False)
        else:
            self._idle_mask = self._zero_mask
        obs_space = spaces.Dict(
            {
                "observation": spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(size,), dtype=np.float32),
                "action_mask": spaces.Box(0, 1, shape=(self._idle_mask.size,), dtype=np.int8),
            }
        )
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        # one space object per agent, as PettingZoo's seeding of spaces expects; an unmasked
        # sample() draws a legal action at the agent's current node
        self.action_spaces = {a: self._new_action_space(a) for a in self.possible_agents}
        if "torchrl.envs.libs.gym" in sys.modules:
            # TorchRL is in use: give it flat masks for MultiDiscrete fields of one size
            import mechgym.integrations.torchrl  # noqa: F401
        self._private_sizes = (len(mechanism.phases), n, self._private_size)
        state_size = len(mechanism.phases) + n + n * self._private_size
        state_size += n * mechanism.public_size(self.spec)
        self.state_space = spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(state_size,), dtype=np.float32)
        self._rendered = 0
        self._mask_cache: dict[tuple[str, int], np.ndarray] = {}
        self._rng = np.random.default_rng(seed)
        self.game_state: Any = None
        self._node: Any = None
        self._buffer: dict[int, Any] = {}
        self._subs = np.zeros(n, dtype=np.int64)
        self.agents: list[str] = []
        self.outcome = None
        self.history: list[tuple[str, Any]] = []

    # -- PettingZoo API ------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _new_action_space(self, agent: str) -> spaces.Space:
        if self.menus is not None:
            space: Any = MaskedDiscrete(self.menus.K)
        elif self.composer is not None:
            D = self.composer.plan.D
            space = MaskedDiscrete(D) if self.action_encoding == "factored" else MaskedChoiceBox(D)
        else:
            space = type(self.layout.space)(self.layout.sizes)
        space.mask_fn = partial(self.current_mask, agent)
        return space

    def current_mask(self, agent: str) -> np.ndarray:
        """``agent``'s action mask now (all-zero-but-no-op when it is not acting)."""
        i = self._index[agent]
        node = self._node
        if not self.agents or not isinstance(node, Decision):
            return self._idle_mask
        if i not in node.players or i in self._buffer:
            return self._idle_mask
        return self._action_mask(i)

    @property
    def price_grid(self) -> str | None:
        """The amount grid of a factored encoding (``None`` otherwise)."""
        return None if self.composer is None else self.composer.plan.grid

    def state(self) -> np.ndarray:
        """Global state for centralised critics: ``[phase one-hot | acting flag per player |
        every player's private information | every player's public view]``."""
        node = self._node
        k, n, _ = self._private_sizes
        acting = np.zeros((1, n), dtype=bool)
        if isinstance(node, Decision):
            acting[0, [p for p in node.players if p not in self._buffer]] = True
        parts = [state_head(np.array([self._phase_of(node)]), acting, k)[0]]
        parts += [self._static[i][n:] for i in range(n)]
        parts += [
            np.asarray(self.mechanism.public_features(self.game_state, i, self.spec))
            for i in range(n)
        ]
        out = np.concatenate(parts).astype(np.float32)
        return np.clip(out, -OBS_BOUND, OBS_BOUND, out=out)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        # every argument is checked before anything (the chance stream included) changes
        seed = check_seed(seed)
        ctx = (options or {}).get("context")
        if ctx is not None and (
            type(ctx) is not self.context_class or (ctx.n, ctx.m) != (self.spec.n, self.spec.m)
        ):
            raise ContextError(
                "options.context",
                f"must be a {self.context_class.__name__} with n={self.spec.n}, m={self.spec.m}",
            )
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        if ctx is not None:
            self.context = ctx
        elif self.generator is not None:
            self.context = self.generator.sample(self._rng)
        self.agents = self.possible_agents[:]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self._skip_agent_selection = None
        n = self.spec.n
        eye = np.eye(n, dtype=np.float32)
        self._static = [
            np.concatenate([eye[i], np.asarray(self.context.private_features(i), dtype=np.float32)])
            for i in range(n)
        ]
        self.game_state = self.mechanism.start(self.context)
        self.outcome = None
        self.history = []
        self._buffer = {}
        self._rendered = 0
        self._advance()

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        i = self._index[agent]
        node = self._node
        acting = isinstance(node, Decision) and i in node.players and i not in self._buffer
        head = observation_head(self._phase_of(node), acting, self._static_size - 1)[0]
        public = np.asarray(
            self.mechanism.public_features(self.game_state, i, self.spec), dtype=np.float32
        )
        # structured actions may announce prices beyond the grid; keep the vector in its Box
        np.minimum(public, OBS_BOUND, out=public)
        np.maximum(public, -OBS_BOUND, out=public)
        parts = [head, self._static[i], public]
        if self.composer is not None:
            # the agent's own move so far: never part of another agent's view
            parts.append(self.composer.features(np.array([i]))[0])
        obs = np.concatenate(parts)
        mask = self._action_mask(i) if acting else self._idle_mask
        return {"observation": obs, "action_mask": mask}

    def _phase_of(self, node: Any) -> int:
        """The node's phase index (-1 where no decision node is current)."""
        return self._phase_index[node.phase] if isinstance(node, Decision) else -1

    def _action_mask(self, player: int) -> np.ndarray:
        if self.menus is not None:
            return self.menus.mask(self.context, self.game_state, player)
        if self.composer is not None:
            return self.composer.action_masks()[player]
        return self._mask(player)

    def _mask(self, player: int) -> np.ndarray:
        if self.mechanism.mask_depends_on_state:
            return self.mechanism.action_mask(self.game_state, player, self.spec, self.layout)
        key = (self._node.phase, player)
        mask = self._mask_cache.get(key)
        if mask is None:
            mask = self.mechanism.action_mask(self.game_state, player, self.spec, self.layout)
            mask.setflags(write=False)
            self._mask_cache[key] = mask
        return mask

    def step(self, action: Any) -> None:
        if not self.agents:
            raise NotActingError("-", "done", "the episode is over; call reset() to start another")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            if action is not None:
                raise NotActingError(agent, "done", "this agent has finished; step it with None")
            self._was_dead_step(action)
            return
        player = self._index[agent]
        checked = self.check_action(player, action)
        # Resolving may still fail (a solver's limit); then the env is put back as it was.
        saved = self._save()
        try:
            self._cumulative_rewards[agent] = 0.0
            self._clear_rewards()
            if self._take(player, checked):
                self.agent_selection = agent
                return
            node = self._node
            waiting = [p for p in node.players if p not in self._buffer]
            if waiting:
                self.agent_selection = agent_name(waiting[0])
                return
            self._resolve()
        except BaseException:
            self._load(saved)
            raise
        if self.render_mode == "human":
            self.render()

    def _take(self, player: int, checked: Any) -> bool:
        """Apply a checked action: buffer a whole move, or take a sub-decision (buffering the
        move it completes). Whether ``player`` still has sub-decisions to make."""
        if isinstance(checked, _Sub) and self.composer.composing[player]:
            rows = np.array([player])
            x = None if checked.x is None else np.array([checked.x])
            self.composer.choose(rows, np.array([checked.choice]), x)
            self._subs[player] += 1
            if self.composer.composing[player]:
                return True
        if isinstance(checked, _Sub):
            agent, phase = agent_name(player), self._node.phase
            arr = self.layout.check(self.composer.act[player], self._mask(player), agent, phase)
            move = self.mechanism.decode(self.game_state, player, arr, self.spec, self.layout)
            checked = self.mechanism.validate(self.game_state, player, move)
        self._buffer[player] = checked
        if self.composer is not None:
            self.composer.stop(np.array([player]))
        return False

    def _resolve(self) -> None:
        """Every acting player has moved: resolve the node and walk on."""
        node = self._node
        actions, self._buffer = self._buffer, {}
        self.history.append(("decision", (node.phase, dict(actions), self.game_state)))
        self.game_state = self.mechanism.resolve(self.game_state, actions)
        self._advance()

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn(
                "You are calling render method without specifying any render mode."
            )
            return None
        lines = self.transcript_lines()
        if self.render_mode == "human":
            new = lines[self._rendered :]
            self._rendered = len(lines)
            if new:
                print("\n".join(new))
            return None
        return "\n".join(lines)

    def close(self) -> None:
        pass

    # -- helpers -----------------------------------------------------------------------------
    def check_action(self, player: int, action: Any) -> Any:
        """Validate ``player``'s action at the current node without changing the env.

        Returns the structured action. Raises a typed :class:`ActionError` otherwise.
        """
        agent = agent_name(player)
        node = self._node
        if not isinstance(node, Decision) or player not in node.players:
            phase = node.phase if isinstance(node, Decision) else "done"
            raise NotActingError(agent, phase, "it is not this agent's turn")
        if player in self._buffer:
            raise NotActingError(agent, node.phase, "this agent has already acted at this node")
        if action is None:
            raise NotActingError(agent, node.phase, "an acting agent must pass an action, not None")
        if self.composer is not None:
            sub = self._sub_choice(action)
            if sub is not None:
                self.composer.check(
                    np.array([player]),
                    np.array([sub.choice]),
                    [agent],
                    [node.phase],
                    None if sub.x is None else np.array([sub.x]),
                )
                return sub
            if self._subs[player]:
                raise OutOfSpaceError(
                    agent,
                    node.phase,
                    f"{self.composer.label(player)}: a move under way takes sub-decisions "
                    f"(entries 0..{self.composer.plan.D - 1}), got {action!r}",
                )
        elif self.menus is not None:
            if _is_index(action):
                action = self.menus.decode(self.context, self.game_state, player, action)
        elif isinstance(action, np.ndarray):
            arr = self.layout.check(action, self._mask(player), agent, node.phase)
            action = self.mechanism.decode(self.game_state, player, arr, self.spec, self.layout)
        return self.mechanism.validate(self.game_state, player, action)

    def _sub_choice(self, action: Any) -> _Sub | None:
        """A sub-decision read from ``action`` (an entry; in ``continuous`` an entry and a
        number), or ``None`` for anything else (a structured action)."""
        if self.action_encoding == "factored":
            if _is_index(action) and np.ndim(action) == 0:
                return _Sub(int(action), None)
            return None
        if isinstance(action, tuple) and len(action) == 2 and _is_index(action[0]):
            x = action[1]
            if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.size == 1:
                return _Sub(int(action[0]), float(x.reshape(-1)[0]))
            if isinstance(x, float | np.floating):
                return _Sub(int(action[0]), float(x))
        return None

    def check_idle(self, agent: str, action: Any) -> None:
        """Check the action a non-acting agent passes to the parallel env: ``None`` or any
        value of its action space (it is not read)."""
        if action is None:
            return
        phase = self._node.phase if isinstance(self._node, Decision) else "done"
        if self.menus is not None:
            self.menus.index(action, agent, phase)
        elif self.composer is not None:
            if not self.action_space(agent).contains(action):
                raise OutOfSpaceError(agent, phase, f"{action!r} is not in the action space")
        else:
            self.layout.check(action, self._zero_mask, agent, phase)

    @property
    def node(self) -> Any:
        """The engine node the env is at."""
        return self._node

    def _save(self) -> tuple[Any, ...]:
        """Everything ``step`` may change, cheap to take (states are immutable)."""
        return (
            self.game_state,
            self._node,
            self.outcome,
            len(self.history),
            dict(self._buffer),
            dict(self.rewards),
            dict(self._cumulative_rewards),
            dict(self.terminations),
            dict(self.truncations),
            self.agent_selection,
            self._rng.bit_generator.state,
            None if self.composer is None else (self.composer.copy(), self._subs.copy()),
        )

    def _load(self, saved: tuple[Any, ...]) -> None:
        (
            self.game_state,
            self._node,
            self.outcome,
            length,
            self._buffer,
            self.rewards,
            self._cumulative_rewards,
            self.terminations,
            self.truncations,
            self.agent_selection,
            rng_state,
            composing,
        ) = saved
        if composing is not None:
            self.composer, self._subs = composing[0].copy(), composing[1].copy()
        del self.history[length:]
        self._rng.bit_generator.state = rng_state

    def _advance(self) -> None:
        self.game_state, draws = self.mechanism.sample_chances(self.game_state, self._rng)
        for chance, k in draws:
            self.history.append(("chance", (chance.name, chance.labels[k])))
        node = self.mechanism.node(self.game_state)
        self._node = node
        if self.composer is not None:
            self._begin_moves(node)
        if isinstance(node, Decision):
            self.agent_selection = agent_name(node.players[0])
            return
        assert isinstance(node, Terminal)
        self.outcome = node.outcome
        self.history.append(("terminal", node.outcome))
        rewards = self.context.rewards(node.outcome)
        for a in self.agents:
            self.rewards[a] = float(rewards[self._index[a]])
            self.terminations[a] = True
        self._accumulate_rewards()
        self.agent_selection = self.agents[0]

    def _begin_moves(self, node: Any) -> None:
        """Start the acting players' factored moves at a new node (all rows idle else)."""
        n = self.spec.n
        self.composer.stop(np.arange(n))
        self._subs = np.zeros(n, dtype=np.int64)
        if not isinstance(node, Decision):
            return
        players = np.array(node.players, dtype=np.int64)
        masks = np.stack([self._mask(int(p)) for p in players])
        lower = getattr(self.context, "lower", None)
        own = None if lower is None else np.asarray(lower, dtype=np.int64)[players]
        self.composer.begin(players, masks, own)

    def exact_rewards(self) -> tuple[Fraction, ...] | None:
        """Exact rewards of the finished episode (``None`` while it runs)."""
        return None if self.outcome is None else self.context.rewards(self.outcome)

    def transcript(self) -> str:
        """The episode so far, one line per action, chance move and outcome."""
        return "\n".join(self.transcript_lines())

    def transcript_lines(self) -> list[str]:
        """The lines of :meth:`transcript`."""
        lines = []
        for kind, data in self.history:
            if kind == "decision":
                phase, actions, st = data
                for p, a in sorted(actions.items()):
                    lines.append(
                        f"[{phase}] {agent_name(p)}: {self.mechanism.describe_action(st, p, a)}"
                    )
            elif kind == "chance":
                lines.append(f"[chance {data[0]}] {data[1]}")
            else:
                lines.append(f"[outcome {data.rule}] {describe_outcome(data)}")
        return lines


class _Sub:
    """A checked sub-decision: the entry, and the box value (``continuous``)."""

    __slots__ = ("choice", "x")

    def __init__(self, choice: int, x: float | None) -> None:
        self.choice = choice
        self.x = x


def _is_index(action: Any) -> bool:
    """Whether ``action`` reads as a menu index (an integer or integer array, not a bool)."""
    if isinstance(action, bool | np.bool_):
        return False
    if isinstance(action, int | np.integer):
        return True
    return isinstance(action, np.ndarray) and action.dtype.kind in "iu"


def describe_outcome(o: Any) -> str:
    """``state=1`` (abstract states; -1 = null) or ``alloc=[...]`` (bundle bitmasks), then
    destroyed goods (markets) and the exact prices."""
    where = f"state={o.state}" if o.state is not None else f"alloc={list(o.alloc)}"
    if o.destroyed:
        where += f" destroyed={o.destroyed}"
    return f"{where} prices={[str(p) for p in o.prices]}"


def wrap(raw: MechanismEnv) -> AECEnv:
    """PettingZoo's order-enforcing wrapper around a raw env."""
    return wrappers.OrderEnforcingWrapper(raw)


class MechanismParallelEnv(ParallelEnv):
    """Parallel view of a mechanism whose decision nodes are all simultaneous.

    Each ``step`` takes the actions of every live agent; agents not acting at the node pass
    ``None`` or any action of their space, which is not read (their mask allows only the
    no-op 0).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "name": "mechgym"}

    def __init__(self, raw: MechanismEnv) -> None:
        if not raw.mechanism.simultaneous_only:
            raise ParameterError(
                "parallel_env", f"{raw.mechanism.title} has sequential moves; use the AEC env"
            )
        self.aec = raw
        self.metadata = {**self.metadata, "name": raw.metadata["name"]}
        self.possible_agents = raw.possible_agents[:]
        self.render_mode = raw.render_mode
        self.state_space = raw.state_space
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> spaces.Space:
        return self.aec.observation_space(agent)

    def action_space(self, agent: str) -> spaces.Space:
        return self.aec.action_space(agent)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self.aec.reset(seed=seed, options=options)
        self.agents = self.aec.agents[:]
        return {a: self.aec.observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        aec = self.aec
        if not self.agents:
            raise NotActingError("-", "done", "the episode is over; call reset() to start another")
        node = aec.node
        if not isinstance(actions, dict):
            raise OutOfSpaceError(
                "-", node.phase, f"a parallel step takes a dict agent -> action, got {actions!r}"
            )
        acting = [agent_name(p) for p in node.players if p not in aec._buffer]
        checked = {}
        for a in self.agents:
            if a in acting:
                if a not in actions:
                    raise NotActingError(a, node.phase, "no action given for an acting agent")
                checked[a] = aec.check_action(aec._index[a], actions[a])
            else:
                aec.check_idle(a, actions.get(a))
        saved = aec._save()
        try:
            if aec.composer is None:
                for a in acting:
                    aec.step(actions[a])
            else:
                # one sub-decision of every acting agent per parallel step
                aec._clear_rewards()
                for a in acting:
                    aec._take(aec._index[a], checked[a])
                waiting = [p for p in node.players if p not in aec._buffer]
                if waiting:
                    aec.agent_selection = agent_name(waiting[0])
                else:
                    aec._resolve()
        except BaseException:
            aec._load(saved)  # no half-buffered node after a failed resolve
            raise
        done = isinstance(aec.node, Terminal)
        agents = self.agents
        obs = {a: aec.observe(a) for a in agents}
        rewards = {a: aec.rewards.get(a, 0.0) for a in agents}
        terms = {a: done for a in agents}
        truncs = {a: False for a in agents}
        infos = {a: {} for a in agents}
        if done:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def render(self) -> str | None:
        return self.aec.render()

    def close(self) -> None:
        self.aec.close()

    def state(self) -> np.ndarray:
        """The global state vector (see :meth:`MechanismEnv.state`)."""
        return self.aec.state()
