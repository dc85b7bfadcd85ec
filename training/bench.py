"""How much of a training run is spent inside the environment.

:func:`env_time_share` wraps a :class:`~mechgym.training.learner_env.LearnerEnv` in
:class:`TimedEnv`, which accumulates the wall-clock time of its ``reset`` and ``step`` calls
(everything the env does: the mechanism's rules, the scripted opponents, observations and
features), then runs a short PPO training and compares with the total time of ``learn``.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym


class TimedEnv(gym.Wrapper):
    """Accumulates the seconds spent in ``reset`` and ``step`` (and counts the calls)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seconds = 0.0
        self.steps = 0
        self.resets = 0

    def reset(self, **kwargs: Any):
        t = time.perf_counter()
        try:
            return self.env.reset(**kwargs)
        finally:
            self.seconds += time.perf_counter() - t
            self.resets += 1

    def step(self, action: Any):
        t = time.perf_counter()
        try:
            return self.env.step(action)
        finally:
            self.seconds += time.perf_counter() - t
            self.steps += 1

    def action_masks(self) -> Any:
        t = time.perf_counter()
        try:
            return self.env.unwrapped.action_masks()
        finally:
            self.seconds += time.perf_counter() - t


def env_time_share(
    mech_name: str = "best_belief",
    steps: int = 2048,
    seed: int = 0,
    algo: str = "maskable_ppo",
    encoding: str = "menu",
    generator: Any = None,
    learner: Any = 0,
) -> dict[str, Any]:
    """Share of wall-clock time spent inside the learner env during a short training run.

    Parameters
    ----------
    mech_name : str
    steps : int
        Training steps (learner decisions).
    seed : int
    algo : str
        ``maskable_ppo`` (masks are fetched from the env, and timed as env time) or another.
    encoding : {"menu", "raw"}
    generator : generator or spec, optional
        Contexts (default: the env module's default generator).
    learner : int or tuple

    Returns
    -------
    dict
        ``mechanism``, ``algo``, ``steps``, ``episodes``, ``env_seconds`` (reset, step and
        mask calls), ``total_seconds`` (the whole ``learn`` call), ``env_share`` (their
        ratio), ``steps_per_second``.
    """
    from .algos import configure_torch, make_model
    from .learner_env import LearnerEnv

    configure_torch(1)
    env = TimedEnv(
        LearnerEnv(mech_name, learner, encoding=encoding, generator=generator, seed=seed)
    )
    model = make_model(algo, env, seed=seed)
    env.seconds, env.steps, env.resets = 0.0, 0, 0
    t = time.perf_counter()
    model.learn(steps)
    total = time.perf_counter() - t
    return {
        "mechanism": mech_name,
        "algo": algo,
        "encoding": encoding,
        "steps": int(model.num_timesteps),
        "episodes": env.resets,
        "env_seconds": env.seconds,
        "total_seconds": total,
        "env_share": env.seconds / total if total > 0 else 0.0,
        "steps_per_second": model.num_timesteps / total if total > 0 else 0.0,
    }
