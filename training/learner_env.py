"""A Gymnasium env that hands one learner its decisions: the exact reference of the learner env.

:class:`LearnerEnv` is :class:`~mechgym.training.vec_env.VecLearnerEnv` (the one learner env,
over the mechanism's rules) with one slot and exact money, offered with Gymnasium's API:
every decision that is not the learner's is played inside ``step``/``reset`` by given policies
(scripted predictions, deviations, random play, frozen trained models, exact policies), so
each Gymnasium step is a decision of the learner and the reward is the learner's own. It is
the idea of PettingZoo's SB3 action-masking tutorial (an AEC env seen by one agent)
specialised to one learner with its own reward.

* **Learner**: one player ``i`` or a coalition ``(i, j, ...)``: one joint policy acting for
  every member in turn (the observation says which member: see
  :class:`~mechgym.training.encodings.ObservationBuilder`), rewarded with the coalition's
  total utility; by default (``align_coalitions=True``) each context's collusion structure
  is rewritten so the coalition is one shared-reward block.
* **Reward**: only at the end of the episode (one auction), the learner's exact reward as a
  float: ``ctx.rewards(outcome)[i]`` for one player (its coalition's total if the context
  makes it a shared-reward member), the members' summed utilities for a coalition. The exact
  value is in ``info["exact_reward"]`` (a string of the Fraction), the outcome's rule in
  ``info["rule"]``.
* **learn_phases**: the phases the learner decides; at its other nodes it plays
  ``scripted`` (default: the predicted play).
* **Skipped episodes**: an episode in which the learner has no decision to make is played
  out and another is drawn, up to ``max_skips`` times (then a :class:`NoDecisionError`).
* **Seeding**: ``reset(seed=s)`` reseeds the Gymnasium generator, from which the env's
  generator (contexts, chance moves, opponents) is derived; no global RNG.
  ``reset(options={"context": ctx})`` plays the next episode on ``ctx``.
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
from mechgym.envs.engine.setting import Setting, resolve_setting
from mechgym.envs.model.family import ContextFamily
from mechgym.envs.pettingzoo.aec import MechanismEnv

from .encodings import ObservationBuilder

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


def learner_setting(
    mechanism: Any,
    context: Any = None,
    generator: Any = None,
    contexts: Sequence[Any] | None = None,
    value_cap: int | None = None,
    price_cap: int | None = None,
    constants: Mapping[str, Any] | None = None,
) -> Setting:
    """What a learner env plays (no env is built): a catalogue name with a context (or
    example name), a generator (or spec) or a fixed family, or a raw AEC env's setting."""
    if isinstance(mechanism, MechanismEnv):
        if context is not None or generator is not None or contexts is not None:
            raise ParameterError("context", "a given raw env brings its own context or generator")
        if value_cap is None and price_cap is None:
            return mechanism.setting
        return resolve_setting(
            mechanism.mechanism, mechanism.context, mechanism.generator, value_cap, price_cap
        )
    from mechgym.envs.pettingzoo.registry import entry

    if contexts is not None:
        if context is not None or generator is not None:
            raise ParameterError("contexts", "give one of context, generator or contexts")
        generator = ContextFamily(tuple(contexts))
    raw_env = entry(mechanism).load_env_module().raw_env
    return raw_env.setting(context, generator, value_cap, price_cap, **dict(constants or {}))


class LearnerEnv(gym.Env):
    """One learner (player or coalition) against given policies (see the module docstring):
    :class:`~mechgym.training.vec_env.VecLearnerEnv` with one slot and exact money.

    Parameters are those of :class:`~mechgym.training.vec_env.VecLearnerEnv` (without
    ``n_envs`` and ``money``), plus ``render_mode`` (``"ansi"``).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        mechanism: Any,
        learner: int | Sequence[int] | str = 0,
        *,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        from .vec_env import VecLearnerEnv

        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ParameterError("render_mode", f"must be one of {self.metadata['render_modes']}")
        for bad in ("n_envs", "money"):
            if bad in kwargs:
                raise ParameterError(bad, "LearnerEnv is one exact slot; use VecLearnerEnv")
        self.core = VecLearnerEnv(mechanism, learner, n_envs=1, money="exact", **kwargs)
        # what the Gymnasium API reads; everything else is the core's (see __getattr__)
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self.render_mode = render_mode
        self._started = False
        self._over = True
        self._fresh = False
        self._last: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        # everything else is the one learner env's (opponents, sources, counters)
        if name == "core":
            raise AttributeError(name)
        return getattr(self.core, name)

    # -- views of the slot -------------------------------------------------------------------
    @property
    def group(self) -> Group:
        """The learner of the current episode."""
        if not self._started:
            return self.groups[0]
        return self.groups[int(self.core.slot_group[0])]

    @property
    def builder(self) -> ObservationBuilder:
        return self.builders[self.group]

    @property
    def ctx(self) -> Any:
        """The current episode's context (``None`` before the first reset)."""
        return None if self.core.ctx is None else self.core.ctx.context(0)

    @property
    def acting(self) -> int | None:
        """The learner member whose decision is pending (``None`` once the episode ended)."""
        return None if self._over else int(self.core.turn[0])

    @property
    def game_state(self) -> Any:
        """The current episode's exact-engine state."""
        return None if self.core.state is None else self.core.episode(0)

    # -- configuration -----------------------------------------------------------------------
    def set_opponents(self, opponents: Any) -> None:
        """Replace the policies of the non-learners (from the next decision on)."""
        self.core.set_opponents(opponents)

    def meta(self) -> dict[str, Any]:
        """What a saved model needs to be played again (see :func:`policies.save_model`)."""
        out = self.core.meta()
        out.pop("n_envs", None)
        return out

    # -- Gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        opts = dict(options or {})
        unknown = sorted(set(opts) - {"context"})
        if unknown:
            raise ParameterError("options", f"unknown reset options {unknown}; use 'context'")
        super().reset(seed=seed)
        context = opts.get("context")
        if seed is not None:
            self.core.seed(int(self.np_random.integers(2**62)))
        if seed is not None or not self._started:
            obs = self.core.reset()
            self._started = True
            if context is not None:
                obs = self.core.restart([context])
        elif context is not None or not self._fresh:
            obs = self.core.restart(None if context is None else [context])
        else:
            obs = self._next_obs
        self._over = False
        self._fresh = False
        return obs[0], {"player": self.acting, "learner": list(self.group)}

    def step(self, action: Any):
        if self._over:
            raise ActionError("-", "done", "the episode is over; call reset() to start another")
        obs, rewards, dones, infos = self.core.step(np.asarray(action)[None])
        if not dones[0]:
            return obs[0], 0.0, False, False, {"player": self.acting}
        info = dict(infos[0])
        terminal = info.pop("terminal_observation")
        self._next_obs = obs
        self._over = True
        self._fresh = True
        self._last = info
        # the exact reward as a float64 (the VecEnv's rewards are float32, as SB3 stores them)
        exact = info.get("exact_reward")
        reward = float(Fraction(exact)) if exact is not None else float(rewards[0])
        return terminal, reward, True, False, info

    def action_masks(self) -> np.ndarray:
        """Legal values of the learner's current decision (MaskablePPO reads this)."""
        masks = self.core.action_masks()[0]
        return np.ones_like(masks) if self._over else masks

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self._over:
            return f"{self.mech_name}: episode over, {self._last}"
        state = self.core.state
        assert state is not None
        phase = self.core.rules.phases[int(state.phase[0])]
        return f"{self.mech_name}: player_{self.acting} decides at '{phase}'"

    def close(self) -> None:
        self.core.close()
