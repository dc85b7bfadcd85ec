"""SuperSuit + stable-baselines3: every agent of a parallel env as one slot of a vector env.

SuperSuit's ``pettingzoo_env_to_vec_env_v1`` and ``concat_vec_envs_v1`` already turn a
PettingZoo parallel env into an SB3 ``VecEnv`` (one slot per agent and copy, all agents
sharing one policy). Two things SB3 asks of a ``VecEnv`` are missing there:
``seed()`` (called by ``PPO(..., seed=s)``) and ``has_attr`` / ``env_method("action_masks")``
(sb3-contrib's MaskablePPO). :class:`MaskedVecEnv` adds both; :func:`vec_env` builds the
whole stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import supersuit as ss
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper


class MaskedVecEnv(VecEnvWrapper):
    """SuperSuit's SB3 vector env with ``seed`` and ``action_masks`` for SB3/sb3-contrib.

    Masks are the ``action_mask`` entries of the latest observations (dict observations
    ``{"observation", "action_mask"}``, as mechgym envs give); a slot whose agent is not
    acting has the mask of the no-op.
    """

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self._seed: int | None = None
        self._masks: np.ndarray | None = None

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next reset: copy ``k`` of the parallel env is reset with ``seed + k``."""
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def reset(self) -> Any:
        # SuperSuit's ConcatVecEnv takes the seed at reset and has no seed() of its own
        inner = self.venv
        obs, infos = inner.venv.reset(seed=self._seed)
        inner.reset_infos = infos
        self._seed = None
        self._keep(obs)
        return obs

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._keep(obs)
        return obs, rewards, dones, infos

    def _keep(self, obs: Any) -> None:
        if isinstance(obs, dict) and "action_mask" in obs:
            self._masks = np.asarray(obs["action_mask"]).astype(bool)

    def action_masks(self) -> np.ndarray:
        """``(num_envs, mask size)`` boolean masks of the latest observations."""
        if self._masks is None:
            raise RuntimeError("reset() the vector env before asking for action masks")
        return self._masks

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":  # SuperSuit's ConcatVecEnv keeps it, not its slots
            n = self.venv.num_envs if indices is None else len(self._get_indices(indices))
            return [getattr(self.venv, "render_mode", None)] * n
        return self.venv.get_attr(attr_name, indices)

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks" or hasattr(self.venv, attr_name)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        if method_name == "action_masks":
            masks = self.action_masks()
            idx = range(self.num_envs) if indices is None else self._get_indices(indices)
            return [masks[i] for i in idx]
        return self.venv.env_method(method_name, *method_args, indices=indices, **method_kwargs)


def vec_env(parallel_env: Any, copies: int = 1) -> MaskedVecEnv:
    """An SB3 vector env over ``copies`` copies of a PettingZoo parallel env (one slot per
    agent and copy), seedable and exposing action masks.

    Built with SuperSuit's ``pettingzoo_env_to_vec_env_v1`` and ``concat_vec_envs_v1``
    (in-process: ``num_cpus=0``).
    """
    venv = ss.pettingzoo_env_to_vec_env_v1(parallel_env)
    venv = ss.concat_vec_envs_v1(venv, copies, num_cpus=0, base_class="stable_baselines3")
    return MaskedVecEnv(venv)
