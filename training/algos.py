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


def configure_torch(threads: int = 1) -> None:
    """Process-wide torch settings for mechgym's small models: ``threads`` CPU threads and no
    argument validation in ``torch.distributions`` (it dominates the cost of sampling from a
    tiny policy). Called by the CLI entry points, not on import."""
    import torch
    from torch.distributions import Distribution

    torch.set_num_threads(threads)
    Distribution.set_default_validate_args(False)


def make_model(
    algo: str,
    env: Any,
    seed: int,
    tensorboard_log: str | None = None,
    **overrides: Any,
) -> Any:
    """A fresh SB3 model for ``env``.

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

    model = algo_class(algo).load(str(check_model_file(path, trust)), env=env, device="cpu")
    model.tensorboard_log = tensorboard_log
    return without_temp_folder(model)


def without_temp_folder(model: Any) -> Any:
    """Without TensorBoard, SB3's ``learn`` makes an empty ``SB3-<date>`` folder in the temp
    dir for its default logger; a logger with no outputs avoids it."""
    if not model.tensorboard_log:
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))
    return model
