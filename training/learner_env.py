"""A Gymnasium env that hands one learner its decisions in any mechgym AEC env.

PettingZoo's SB3 action-masking tutorial wraps an AEC env as a Gymnasium env whose ``step``
returns the *next* agent's observation with the *acting* agent's accumulated reward, all
agents sharing one model. Here the same idea is specialised to one learner with its own
reward: every decision that is not the learner's is played inside ``step``/``reset`` by given
policies (scripted predictions, deviations, random play, or frozen trained models), so each
Gymnasium step is a decision of the learner and the reward is the learner's own.

* **Learner**: one player ``i`` or a coalition ``(i, j, ...)``. A coalition is one joint
  policy acting for every member in turn (the observation says which member: see
  :class:`~mechgym.training.encodings.ObservationBuilder`), rewarded with the coalition's
  total utility. By default (``align_coalitions=True``) each context's collusion structure
  is rewritten so the coalition is one block with shared reward (other blocks keep their
  remaining members), so that scripted players and the theorems' benchmarks see the
  coalition that actually plays.
* **Reward**: only at the end of the episode (one auction), the learner's exact reward as a
  float: ``ctx.rewards(outcome)[i]`` for one player (its coalition's total if the context
  makes it a shared-reward member), the members' summed utilities for a coalition. The exact
  value is in ``info["exact_reward"]`` (a string of the Fraction).
* **learn_phases**: the phases the learner decides; at its other nodes it plays
  ``scripted`` (default: the predicted play). E.g. ``learn_phases=("respond",)`` on
  best_belief scripts the announcement and learns only YES/NO.
* **Skipped episodes**: an episode in which the learner has no decision to make (e.g. it is
  never asked) is played out and another is drawn, up to ``max_skips`` times (then a
  :class:`NoDecisionError`, a :class:`ParameterError`); the learner's episodes are therefore
  those where it acts.
* **Seeding**: ``reset(seed=s)`` reseeds the Gymnasium generator, from which the inner env's
  seed (chance moves, drawn contexts) and the opponents' generator are derived; no global RNG.
* **Illegal actions** (possible only for algorithms without masks): ``illegal="penalty"``
  (default) ends the episode with reward ``-illegal_penalty`` (default ``-value_cap``) and
  ``info["illegal"]`` naming the agent, phase and problem; ``illegal="raise"`` raises the
  typed :class:`~mechgym.envs.engine.errors.ActionError`.

Masks for sb3-contrib's MaskablePPO come from :meth:`LearnerEnv.action_masks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from mechgym.envs.engine.errors import ActionError, ParameterError
from mechgym.envs.engine.game import Decision, Terminal
from mechgym.envs.engine.spaces import canonical_encoding
from mechgym.envs.model.family import ContextFamily
from mechgym.envs.pettingzoo.aec import MechanismEnv

from .encodings import Encoding, ObservationBuilder, make_encoding
from .policies import PolicySource, class_path, resolve_sources

Group = tuple[int, ...]


class NoDecisionError(ParameterError):
    """The learner had no decision to make in ``max_skips`` consecutive episodes."""


def as_group(learner: int | Sequence[int]) -> Group:
    """A learner as a sorted tuple of players (``0`` -> ``(0,)``; ``"1,2"`` -> ``(1, 2)``)."""
    if isinstance(learner, str):
        try:
            learner = [int(x) for x in learner.split(",") if x.strip()]
        except ValueError:
            raise ParameterError(
                "learner", f"{learner!r} is not a player or a comma-separated coalition"
            ) from None
    if isinstance(learner, int | np.integer) and not isinstance(learner, bool):
        return (int(learner),)
    try:
        group = tuple(sorted({int(p) for p in learner}))
    except (TypeError, ValueError):
        raise ParameterError(
            "learner", f"{learner!r} is not a player or a coalition of players"
        ) from None
    if not group:
        raise ParameterError("learner", "a coalition needs at least one player")
    return group


def group_label(group: Group) -> str:
    """``"0"`` or ``"1+2"``."""
    return "+".join(str(p) for p in group)


def group_value(ctx: Any, outcome: Any, group: Group) -> Fraction:
    """The learner's exact reward: ``ctx.rewards`` for one player, summed utilities for a
    coalition."""
    if len(group) == 1:
        return Fraction(ctx.rewards(outcome)[group[0]])
    u = ctx.utilities(outcome)
    return sum((Fraction(u[p]) for p in group), Fraction(0))


def expected_group_value(ctx: Any, ev: Any, group: Group) -> Fraction:
    """The group's exact expected reward (:func:`group_value`) under an evaluation's
    terminal outcomes and their probabilities."""
    return sum((pr * group_value(ctx, o, group) for pr, o in ev.outcomes), Fraction(0))


def align_context(ctx: Any, group: Group) -> Any:
    """``ctx`` with ``group`` as one shared-reward coalition (other blocks lose its members)."""
    if len(group) == 1 or not hasattr(ctx, "with_coalitions"):
        return ctx
    if group in ctx.coalitions and ctx.shared_reward:
        return ctx
    rest = [tuple(p for p in block if p not in group) for block in ctx.coalitions]
    return ctx.with_coalitions([group, *[b for b in rest if b]], shared_reward=True)


def make_raw_env(
    mechanism: str,
    context: Any = None,
    generator: Any = None,
    contexts: Sequence[Any] | None = None,
    seed: int | None = None,
    value_cap: int | None = None,
    price_cap: int | None = None,
    constants: Mapping[str, Any] | None = None,
    action_encoding: str = "multidiscrete",
    price_levels: int = 16,
    price_grid: str = "linear",
) -> MechanismEnv:
    """The mechanism's raw AEC env over a context, a generator (or spec) or a family."""
    from mechgym.envs.pettingzoo.registry import entry

    if contexts is not None:
        if context is not None or generator is not None:
            raise ParameterError("contexts", "give one of context, generator or contexts")
        generator = ContextFamily(tuple(contexts))
    mod = entry(mechanism).load_env_module()
    return mod.raw_env(
        context=context,
        generator=generator,
        seed=seed,
        value_cap=value_cap,
        price_cap=price_cap,
        action_encoding=action_encoding,
        price_levels=price_levels,
        price_grid=price_grid,
        **dict(constants or {}),
    )


class LearnerEnv(gym.Env):
    """One learner (player or coalition) against given policies (see the module docstring).

    Parameters
    ----------
    mechanism : str or MechanismEnv
        A catalogue name (the env is built with :func:`make_raw_env`) or a raw AEC env.
    learner : int or tuple of int or str
        The learning player, or coalition (``(1, 2)`` or ``"1,2"``).
    opponents : str, policy, callable or mapping, default "predicted"
        Who plays the other players (see :mod:`mechgym.training.policies`).
    encoding : {"menu", "multidiscrete", "factored", "continuous"}
        ``factored``/``continuous``: every Gymnasium step is one sub-decision of the
        learner's move (:mod:`mechgym.envs.engine.factored`); the observation ends with its
        move so far.
    price_levels, price_grid : int, str
        Amount grids of the factored encodings (see :mod:`mechgym.envs.engine.factored`).
    learn_phases : sequence of str, optional
        Phases the learner decides (default all); elsewhere it plays ``scripted``.
    scripted : policy description, default "predicted"
    context, generator, contexts : optional
        One context (or example name), a generator (or spec string), or a fixed family.
    seed : int, optional
        Seeds the inner env at construction; ``reset(seed=...)`` reseeds everything.
    normalize : {"symlog", "none"}
    features : bool
        Append own-information features (see :mod:`mechgym.training.encodings`).
    rotate : sequence of learners, optional
        Self-play: each episode the learner is drawn uniformly from these (same sizes).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        mechanism: str | MechanismEnv,
        learner: int | Sequence[int] | str = 0,
        *,
        opponents: Any = "predicted",
        encoding: str = "menu",
        learn_phases: Sequence[str] | None = None,
        scripted: Any = "predicted",
        context: Any = None,
        generator: Any = None,
        contexts: Sequence[Any] | None = None,
        seed: int | None = None,
        normalize: str = "symlog",
        features: bool = True,
        illegal: str = "penalty",
        illegal_penalty: float | None = None,
        align_coalitions: bool = True,
        max_skips: int = 1000,
        rotate: Sequence[Any] | None = None,
        constants: Mapping[str, Any] | None = None,
        value_cap: int | None = None,
        price_cap: int | None = None,
        render_mode: str | None = None,
        price_levels: int = 16,
        price_grid: str = "linear",
    ) -> None:
        from mechgym.envs.pettingzoo.registry import entry

        super().__init__()
        encoding = canonical_encoding(encoding)
        factored = encoding in ("factored", "continuous")
        if isinstance(mechanism, MechanismEnv):
            if context is not None or generator is not None or contexts is not None:
                raise ParameterError(
                    "context", "a given raw env brings its own context or generator"
                )
            self.raw = mechanism
        else:
            self.raw = make_raw_env(
                mechanism,
                context,
                generator,
                contexts,
                seed,
                value_cap,
                price_cap,
                constants,
                action_encoding=encoding if factored else "multidiscrete",
                price_levels=price_levels,
                price_grid=price_grid,
            )
        self.mech = self.raw.mechanism
        self.mech_name = self.mech.name
        self.constants = dict(constants or {})
        self.agents = entry(self.mech_name).load_agents()
        self.env_spec = self.raw.spec
        n = self.env_spec.n
        groups = [as_group(g) for g in rotate] if rotate else [as_group(learner)]
        for g in groups:
            bad = [p for p in g if not 0 <= p < n]
            if bad:
                raise ParameterError("learner", f"players {bad} are outside 0..{n - 1}")
            if len(g) != len(groups[0]):
                raise ParameterError("rotate", "self-play learners must all have the same size")
        self.groups = groups
        self.group = groups[0]
        phases = tuple(learn_phases) if learn_phases else tuple(self.mech.phases)
        unknown = [ph for ph in phases if ph not in self.mech.phases]
        if unknown:
            raise ParameterError(
                "learn_phases",
                f"unknown phases {unknown}; '{self.mech_name}' has {list(self.mech.phases)}",
            )
        self.learn_phases = phases
        if illegal not in ("penalty", "raise"):
            raise ParameterError("illegal", f"use 'penalty' or 'raise', got {illegal!r}")
        self.illegal = illegal
        self.illegal_penalty = float(
            self.env_spec.value_cap if illegal_penalty is None else illegal_penalty
        )
        self.align_coalitions = align_coalitions
        if max_skips < 1:
            raise ParameterError("max_skips", "must be at least 1")
        self.max_skips = int(max_skips)
        self.encoding: Encoding = make_encoding(
            encoding,
            self.mech_name,
            self.mech,
            self.env_spec,
            self.agents,
            price_levels=price_levels,
            price_grid=price_grid,
        )
        if factored:
            self.encoding.bind(self.raw)  # type: ignore[attr-defined]
        self.normalize = normalize
        self.features = features
        self.builders = {
            g: ObservationBuilder(self.encoding, g, self.raw.context_class, normalize, features)
            for g in groups
        }
        self.builder = self.builders[self.group]
        self.observation_space = self.builder.space
        self.action_space = self.encoding.action_space
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ParameterError("render_mode", f"must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self._agent_index = {a: i for i, a in enumerate(self.raw.possible_agents)}
        self._opponents_spec = opponents
        self._scripted_spec = scripted
        self._sources: dict[int, PolicySource] = {}
        self._scripted: dict[int, PolicySource] = {}
        self.set_opponents(opponents)
        self._scripted = resolve_sources(scripted, list(range(n)), self.mech_name, self.env_spec)
        self._aligned: dict[int, tuple[Any, Any]] = {}
        self._policy_cache: dict[tuple[int, int, bool], tuple[Any, Any]] = {}
        self._opp_rng = np.random.default_rng(seed)
        self._pending_seed: int | None = None
        self._started = False
        self.ctx: Any = None
        self.acting: int | None = None
        self.episode_skips = 0

    # -- configuration -----------------------------------------------------------------------
    def set_opponents(self, opponents: Any) -> None:
        """Replace the policies of the non-learners (takes effect at the next reset)."""
        players = list(range(self.env_spec.n))
        self._sources = resolve_sources(opponents, players, self.mech_name, self.env_spec)
        self._opponents_spec = opponents
        self._policy_cache = {}

    def meta(self) -> dict[str, Any]:
        """What a saved model needs to be played again (see :func:`policies.save_model`),
        with the setting it fits (:func:`mechgym.training.sidecar.setting`)."""
        from .sidecar import setting

        return {
            **setting(self.builder),
            "mechanism": self.mech_name,
            "constants": self.constants,
            "encoding": self.encoding.name,
            **{k: v for k, v in self.encoding.describe().items() if k != "encoding"},
            "members": list(self.group),
            "learn_phases": list(self.learn_phases),
            "normalize": self.normalize,
            "features": self.features,
            "shared": len(self.groups) > 1,
            "groups": [list(g) for g in self.groups],
            "spec": {
                "n": self.env_spec.n,
                "m": self.env_spec.m,
                "value_cap": self.env_spec.value_cap,
                "price_cap": self.env_spec.price_cap,
            },
            "context_class": class_path(self.raw.context_class),
        }

    # -- Gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or not self._started:
            self._pending_seed = int(self.np_random.integers(2**62))
            self._opp_rng = np.random.default_rng(int(self.np_random.integers(2**62)))
            self._policy_cache = {}
            self._started = True
        opts = dict(options or {})
        for skip in range(self.max_skips):
            if len(self.groups) > 1:
                self.group = self.groups[int(self._opp_rng.integers(len(self.groups)))]
                self.builder = self.builders[self.group]
            self._reset_inner(opts)
            if self._advance():
                self.episode_skips = skip
                return self._observe(), {"player": self.acting, "learner": list(self.group)}
        raise NoDecisionError(
            "learn_phases",
            f"learner {list(self.group)} had no decision in phases {list(self.learn_phases)} in "
            f"{self.max_skips} episodes of '{self.mech_name}'",
        )

    def step(self, action: Any):
        if self.acting is None:
            raise ActionError("-", "done", "the episode is over; call reset() to start another")
        p = self.acting
        try:
            structured = self.encoding.decode(self.ctx, self.raw.game_state, p, action)
            self.raw.step(structured)
        except ActionError as exc:
            if self.illegal == "raise":
                raise
            self.acting = None
            obs = np.zeros(self.observation_space.shape, dtype=np.float32)
            return obs, -self.illegal_penalty, True, False, {"illegal": str(exc)}
        if self._advance():
            return self._observe(), 0.0, False, False, {"player": self.acting}
        exact = group_value(self.ctx, self.raw.outcome, self.group)
        info = {"exact_reward": str(exact), "rule": self.raw.outcome.rule}
        obs = self._terminal_obs(p)
        return obs, float(exact), True, False, info

    def action_masks(self) -> np.ndarray:
        """Legal values of the learner's current decision (MaskablePPO reads this)."""
        if self.acting is None:
            plan = getattr(self.encoding, "plan", None)
            if plan is not None:
                size = plan.D
            elif hasattr(self.action_space, "nvec"):
                size = int(np.sum(self.action_space.nvec))
            else:
                size = self.action_space.n
            return np.ones(size, dtype=bool)
        return self.encoding.mask(self.ctx, self.raw.game_state, self.acting)

    def render(self) -> str | None:
        return self.raw.transcript() if self.render_mode == "ansi" else None

    def close(self) -> None:
        self.raw.close()

    # -- internals ---------------------------------------------------------------------------
    def _reset_inner(self, opts: dict[str, Any]) -> None:
        if self._pending_seed is not None:
            self.raw.reset(seed=self._pending_seed, options=opts or None)
            self._pending_seed = None
        else:
            self.raw.reset(options=opts or None)
        ctx = self.raw.context
        if self.align_coalitions and len(self.group) > 1:
            hit = self._aligned.get(id(ctx))
            if hit is None or hit[0] is not ctx:
                if len(self._aligned) > 256:
                    self._aligned.clear()
                hit = (ctx, align_context(ctx, self.group))
                self._aligned[id(ctx)] = hit
            if hit[1] is not ctx:
                self.raw.reset(options={"context": hit[1]})
            ctx = hit[1]
        self.ctx = ctx

    def _policy(self, player: int, scripted: bool) -> Any:
        source = (self._scripted if scripted else self._sources)[player]
        key = (id(source), id(self.ctx), scripted)
        hit = self._policy_cache.get(key)
        if hit is not None and hit[0] is self.ctx:
            return hit[1]
        pol = source(self.ctx, self._opp_rng)
        if len(self._policy_cache) > 512:
            self._policy_cache.clear()
        self._policy_cache[key] = (self.ctx, pol)
        return pol

    def _advance(self) -> bool:
        """Play everyone else until the learner decides (True) or the episode ends (False)."""
        raw, mech = self.raw, self.mech
        while True:
            node = raw.node
            if isinstance(node, Terminal):
                self.acting = None
                return False
            assert isinstance(node, Decision)
            p = self._agent_index[raw.agent_selection]
            mine = p in self.group
            if mine and node.phase in self.learn_phases:
                self.acting = p
                return True
            pol = self._policy(p, scripted=mine)
            raw.step(pol.act(mech, self.ctx, raw.game_state, p))

    def _observe(self) -> np.ndarray:
        p = self.acting
        base = self.raw.observe(self.raw.possible_agents[p])["observation"]
        prefix = base[self.builder.base_size :] if self.builder.prefix_size else None
        return self.builder.build(self.ctx, self.raw.game_state, p, base=base, prefix=prefix)

    def _terminal_obs(self, p: int) -> np.ndarray:
        return self.builder.terminal(self.raw.observe(self.raw.possible_agents[p])["observation"])
