"""SB3 models with defaults suited to mechgym's short episodes (one auction, 1–3 decisions).

Rewards arrive only at the end of an episode of a few steps, so returns are undiscounted
(``gamma = 1``) Monte-Carlo returns (``gae_lambda = 1``). Rollouts are short so that
alternating learners swap often. Everything runs on the CPU (small MLPs).
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from mechgym.envs.engine.errors import ParameterError

from .policies import ALGOS, algo_class

DEFAULTS: dict[str, dict[str, Any]] = {
    "maskable_ppo": {
        "n_steps": 256,
        "batch_size": 64,
        "n_epochs": 5,
        "learning_rate": 1e-3,
        "gamma": 1.0,
        "gae_lambda": 1.0,
        "ent_coef": 0.01,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "ppo": {
        "n_steps": 256,
        "batch_size": 64,
        "n_epochs": 5,
        "learning_rate": 1e-3,
        "gamma": 1.0,
        "gae_lambda": 1.0,
        "ent_coef": 0.01,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "a2c": {
        "n_steps": 16,
        "learning_rate": 1e-3,
        "gamma": 1.0,
        "gae_lambda": 1.0,
        "ent_coef": 0.01,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "dqn": {
        "learning_rate": 1e-3,
        "buffer_size": 20_000,
        "learning_starts": 256,
        "batch_size": 64,
        "gamma": 1.0,
        "train_freq": 1,
        "target_update_interval": 256,
        "exploration_fraction": 0.3,
        "exploration_final_eps": 0.02,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
}

#: replacements on a vectorised env (``n_envs`` slots): a rollout of ``n_steps`` per slot, so
#: the per-update batch stays near the single env's scale, with bigger minibatches (the
#: speed of the batched path is spent on samples, not on more gradient steps per sample)
VEC_DEFAULTS: dict[str, dict[str, Any]] = {
    "maskable_ppo": {"n_steps": 16, "batch_size": 256},
    "ppo": {"n_steps": 16, "batch_size": 256},
    "a2c": {"n_steps": 4},
    "dqn": {"learning_starts": 1024, "train_freq": 1, "gradient_steps": 4, "batch_size": 256},
}


def defaults(algo: str, n_envs: int = 1) -> dict[str, Any]:
    """The hyper-parameters of ``algo`` for ``n_envs`` parallel slots."""
    base = dict(DEFAULTS[algo])
    if n_envs > 1:
        base.update(VEC_DEFAULTS[algo])
        if "n_steps" in base and algo != "a2c":
            # keep about 1024 samples per update whatever the number of slots
            base["n_steps"] = max(2, 1024 // n_envs)
            base["batch_size"] = min(base["batch_size"], base["n_steps"] * n_envs)
    return base


#: environment variable that sets the torch threads of mechgym's learners (default 1)
THREADS_ENV = "MECHGYM_TORCH_THREADS"
#: the largest thread count accepted (a typo such as 1000 would only slow things down)
MAX_THREADS = 256
_chosen: int | None = None


def _check_threads(value: Any, source: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if isinstance(value, bool) or not 1 <= n <= MAX_THREADS:
        raise ParameterError(
            source, f"torch threads must be an integer in 1..{MAX_THREADS}, got {value!r}"
        )
    return n


def torch_threads(threads: int | None = None, source: str = "torch_threads") -> int:
    """The torch thread count a learner gets: ``threads`` if given, else the last count passed
    to :func:`configure_torch` in this process, else :data:`THREADS_ENV`, else 1.

    One thread is the default because mechgym's models are tiny MLPs: on a 2-core machine
    torch's default pool made a short MaskablePPO run 10-25× slower than one thread. A
    count outside 1..:data:`MAX_THREADS` raises a :class:`ParameterError` naming ``source``
    (or the environment variable).
    """
    import os

    if threads is not None:
        return _check_threads(threads, source)
    if _chosen is not None:
        return _chosen
    env = os.environ.get(THREADS_ENV)
    if env is not None and env.strip():
        return _check_threads(env, THREADS_ENV)
    return 1


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS reports one)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_torch(threads: int | None = None, remember: bool = True) -> int:
    """Process-wide torch settings for mechgym's small models; returns the thread count set.

    Sets :func:`torch_threads` CPU threads (an explicit ``threads`` is remembered for the
    rest of the process, so later learners keep it, unless ``remember=False``) and turns
    off argument validation in
    ``torch.distributions`` (it dominates the cost of sampling from a tiny policy). Called
    wherever mechgym builds a learner (:func:`make_model`, :func:`load_model`,
    :class:`~mechgym.training.vec_env.VecLearnerEnv`, the CLI), not on import.
    """
    global _chosen
    import torch
    from torch.distributions import Distribution

    n = torch_threads(threads)
    if threads is not None and remember:
        _chosen = n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    Distribution.set_default_validate_args(False)
    return n


def make_model(
    algo: str,
    env: Any,
    seed: int,
    tensorboard_log: str | None = None,
    **overrides: Any,
) -> Any:
    """A fresh SB3 model for ``env`` (torch set up by :func:`configure_torch` first).

    Parameters
    ----------
    algo : {"maskable_ppo", "ppo", "a2c", "dqn"}
        ``maskable_ppo`` reads :meth:`LearnerEnv.action_masks`; the others can pick masked
        actions, which the learner env penalises (see :mod:`mechgym.training.learner_env`).
    env : gymnasium.Env or VecEnv
        A vectorised env gets :data:`VEC_DEFAULTS` on top of :data:`DEFAULTS`.
    seed : int
    tensorboard_log : str, optional
        Directory of TensorBoard logs.
    overrides : hyper-parameters replacing :data:`DEFAULTS`.
    """
    if algo not in ALGOS:
        raise ParameterError("algo", f"unknown algorithm {algo!r}; use one of {', '.join(ALGOS)}")
    if algo == "dqn" and not hasattr(env.action_space, "n"):
        raise ParameterError("algo", "dqn needs a Discrete action space: use encoding='menu'")
    configure_torch()
    if algo == "maskable_ppo" and isinstance(env.action_space, spaces.Box):
        raise ParameterError(
            "algo",
            "maskable_ppo needs discrete actions; the continuous encoding trains with ppo or a2c",
        )
    params = {**defaults(algo, int(getattr(env, "num_envs", 1))), **overrides}
    cls = algo_class(algo)
    model = cls(
        "MlpPolicy",
        env,
        seed=seed,
        verbose=0,
        device="cpu",
        tensorboard_log=tensorboard_log,
        **params,
    )
    return without_temp_folder(model)


def load_model(
    algo: str,
    path: str,
    env: Any = None,
    trust: bool | None = None,
    tensorboard_log: str | None = None,
) -> Any:
    """Load a saved model (optionally attached to ``env`` to continue training, logging to
    ``tensorboard_log``), after :func:`~mechgym.training.policies.check_model_file`
    (``trust`` overrides it)."""
    from .policies import check_model_file

    configure_torch()
    p = check_model_file(path, trust)
    try:
        model = algo_class(algo).load(str(p), env=env, device="cpu")
    except ValueError as exc:  # SB3: the env's spaces differ from the model's
        raise ParameterError("model", f"{p} does not fit this env: {exc}") from None
    model.tensorboard_log = tensorboard_log
    return without_temp_folder(model)


def without_temp_folder(model: Any) -> Any:
    """Without TensorBoard, SB3's ``learn`` makes an empty ``SB3-<date>`` folder in the temp
    dir for its default logger; a logger with no outputs avoids it."""
    if not model.tensorboard_log:
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))
    return model
