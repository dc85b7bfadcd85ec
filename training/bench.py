"""How much of a training run is spent inside the environment.

:func:`env_time_share` wraps a :class:`~mechgym.training.learner_env.LearnerEnv` in
:class:`TimedEnv`, which accumulates the wall-clock time of its ``reset`` and ``step`` calls
(everything the env does: the mechanism's rules, the scripted opponents, observations and
features), then runs a short PPO training and compares with the total time of ``learn``.
:func:`vec_env_time_share` does the same for the vectorised env
(:class:`~mechgym.training.vec_env.VecLearnerEnv`, through :class:`TimedVecEnv`);
:func:`batched_training_speed` times the batched PPO learner
(:mod:`mechgym.training.batched_ppo`) end to end, and :func:`training_speed` measures all
three in one run (``mechgym bench``'s ``"training"``).
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
    threads: int | None = None,
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
    threads : int, optional
        Torch threads (:func:`~mechgym.training.algos.configure_torch`; default 1).

    Returns
    -------
    dict
        ``mechanism``, ``algo``, ``steps``, ``episodes``, ``env_seconds`` (reset, step and
        mask calls), ``total_seconds`` (the whole ``learn`` call), ``env_share`` (their
        ratio), ``steps_per_second``, ``torch_threads``.
    """
    from .algos import configure_torch, make_model
    from .learner_env import LearnerEnv

    threads = configure_torch(threads)
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
        "torch_threads": threads,
    }


class TimedVecEnv:
    """Times a VecEnv's ``reset``, ``step_wait`` and ``env_method`` (masks) calls; every
    other attribute is the wrapped env's (so SB3 and sb3-contrib read it unchanged)."""

    def __init__(self, venv: Any) -> None:
        self.__dict__["venv"] = venv
        self.__dict__["seconds"] = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.venv, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "seconds":
            self.__dict__[name] = value
        else:
            setattr(self.venv, name, value)

    def _timed(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.__dict__["seconds"] += time.perf_counter() - t

    def reset(self) -> Any:
        return self._timed(self.venv.reset)

    def step(self, actions: Any) -> Any:
        self.venv.step_async(actions)
        return self._timed(self.venv.step_wait)

    def step_wait(self) -> Any:
        return self._timed(self.venv.step_wait)

    def env_method(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self.venv.env_method, name, *args, **kwargs)


def vec_env_time_share(
    mech_name: str = "best_belief",
    steps: int = 32_768,
    n_envs: int = 64,
    seed: int = 0,
    algo: str = "maskable_ppo",
    encoding: str = "menu",
    generator: Any = None,
    learner: Any = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """:func:`env_time_share` on the vectorised env of ``n_envs`` slots.

    Returns
    -------
    dict
        As :func:`env_time_share`, plus ``n_envs``.
    """
    from stable_baselines3.common.vec_env import VecEnv

    from .algos import configure_torch, make_model
    from .vec_env import VecLearnerEnv

    threads = configure_torch(threads)
    inner = VecLearnerEnv(
        mech_name, learner, n_envs=n_envs, encoding=encoding, generator=generator, seed=seed
    )
    env = TimedVecEnv(inner)
    VecEnv.register(TimedVecEnv)  # SB3 checks isinstance(env, VecEnv) before wrapping
    model = make_model(algo, env, seed=seed)
    env.seconds = 0.0
    t = time.perf_counter()
    model.learn(steps)
    total = time.perf_counter() - t
    return {
        "mechanism": mech_name,
        "algo": algo,
        "encoding": encoding,
        "n_envs": n_envs,
        "steps": int(model.num_timesteps),
        "episodes": int(inner.episodes),
        "env_seconds": env.seconds,
        "total_seconds": total,
        "env_share": env.seconds / total if total > 0 else 0.0,
        "steps_per_second": model.num_timesteps / total if total > 0 else 0.0,
        "torch_threads": threads,
    }


def batched_training_speed(
    mech_name: str = "best_belief",
    decisions: int = 400_000,
    batch_size: int = 8192,
    encoding: str = "menu",
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Learner decisions per second of :func:`~mechgym.training.batched_ppo.train_batched`,
    collection and updates together, every player learning from random init (one epoch,
    one minibatch per update of ``batch_size`` × 2 steps), on ``threads`` torch threads
    (default: every core of the process, :func:`~mechgym.training.algos.available_cores`).

    A short warm-up run first builds the lookup tables and torch kernels the timed run
    uses; building the env is not timed (as the other figures time ``learn`` only).

    Returns
    -------
    dict
        ``mechanism``, ``algo``, ``encoding``, ``batch_size``, ``learners``, ``decisions``,
        ``updates``, ``total_seconds``, ``decisions_per_second``, ``torch_threads``.
    """
    from .algos import available_cores
    from .batched_ppo import train_batched

    n = available_cores() if threads is None else threads
    settings = {"encoding": encoding, "epochs": 1, "minibatches": 1, "seed": seed, "threads": n}
    train_batched(mech_name, decisions=1, batch_size=min(batch_size, 256), **settings)
    run = train_batched(mech_name, decisions=decisions, batch_size=batch_size, **settings)
    return {
        "mechanism": mech_name,
        "algo": "batched_ppo",
        "encoding": encoding,
        "batch_size": batch_size,
        "learners": len(run.groups),
        "decisions": run.decisions,
        "updates": run.updates,
        "total_seconds": run.seconds,
        "decisions_per_second": run.decisions_per_second,
        "torch_threads": n,
    }


def training_speed(
    mech_name: str = "best_belief",
    single_steps: int = 2048,
    vector_steps: int = 131_072,
    n_envs: int = 1024,
    threads: int | None = None,
    progress: Any = None,
    batched: bool = True,
    batched_decisions: int = 400_000,
    batch_size: int = 8192,
) -> dict[str, Any]:
    """MaskablePPO's steps per second and env share on the exact single env and on the
    vectorised env, and the batched learner's decisions per second, measured in the same
    run: ``{"single": ..., "vector": ..., "batched": ..., "speedup"}``. ``batched`` is
    :func:`batched_speeds` (menu at the top level, menu and factored under ``by_encoding``,
    each with ``ratio_to_vector``: one step of the vector env is one learner decision), or
    ``{"skipped": reason}`` without TorchRL.

    The vector run uses 1024 slots (a rollout of 2 steps per slot, 2048 samples per update):
    the env's fixed cost per step (Python around numpy calls) is then spread thin enough for
    an env share below a fifth; 64 slots (the default of ``train`` and ``converge``) run at
    about 0.65 of that speed with an env share near 40%. ``threads``: torch threads (default
    1, see :func:`~mechgym.training.algos.configure_torch`; the batched learner runs on every
    core, its ``torch_threads`` says how many); ``progress``: called after each run.
    """
    single = {**env_time_share(mech_name, steps=single_steps, threads=threads), "n_envs": 1}
    if progress is not None:
        progress()
    vector = vec_env_time_share(mech_name, steps=vector_steps, n_envs=n_envs, threads=threads)
    if progress is not None:
        progress()
    speedup = (
        vector["steps_per_second"] / single["steps_per_second"]
        if single["steps_per_second"] > 0
        else None
    )
    out: dict[str, Any] = {
        "single": single,
        "vector": vector,
        "speedup": speedup,
        "torch_threads": vector["torch_threads"],
    }
    if batched:
        try:
            b = batched_speeds(mech_name, batched_decisions, batch_size, vector["steps_per_second"])
        except ImportError:  # the batched learner runs on TorchRL (the 'integrations' extra)
            out["batched"] = {"skipped": "install torchrl to time the batched learner"}
            return out
        if progress is not None:
            progress()
        out["batched"] = b
    return out


#: encodings the bench times the batched learner in: the menu (around the prediction) and
#: the prediction-free factored one
BATCHED_BENCH_ENCODINGS = ("menu", "factored")


def batched_speeds(
    mech_name: str,
    decisions: int,
    batch_size: int,
    vector_steps_per_second: float | None,
    encodings: tuple[str, ...] = BATCHED_BENCH_ENCODINGS,
) -> dict[str, Any]:
    """:func:`batched_training_speed` in each of ``encodings``, one after the other: the first
    encoding's figures at the top level, every encoding's under ``by_encoding``, each with
    ``ratio_to_vector`` (its decisions per second over the vector env's steps per second)."""
    runs: dict[str, dict[str, Any]] = {}
    for enc in encodings:
        r = batched_training_speed(mech_name, decisions, batch_size, encoding=enc)
        vps = vector_steps_per_second
        r["ratio_to_vector"] = r["decisions_per_second"] / vps if vps else None
        runs[enc] = r
    return {**runs[encodings[0]], "by_encoding": runs}
