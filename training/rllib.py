"""Ray RLlib backend (the optional ``rllib`` extra): every player learns at once.

:class:`MechanismMultiAgentEnv` exposes any mechgym mechanism through RLlib's multi-agent
API: turn-based, each acting agent observes ``{"observations": ..., "action_mask": ...}``
(the learner observation of :mod:`mechgym.training.encodings` for that player, and the mask
of its menu) and answers with a menu index. Rewards arrive at the end of the episode: each
player's utility, or its coalition's total when the context shares rewards.
:class:`MaskedPPOTorchRLModule` (RLlib's default PPO module with the mask applied to the
action logits, as RLlib's action-masking example does, without that example's deprecated
base class) is what :func:`ppo_config` plugs in, so every sampled action is legal.

Scale-out is RLlib's: ``num_env_runners`` processes sample episodes in parallel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

try:
    import torch
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
        DefaultPPOTorchRLModule,
    )
    from ray.rllib.core.columns import Columns
    from ray.rllib.env.multi_agent_env import MultiAgentEnv
    from ray.rllib.utils.torch_utils import FLOAT_MIN
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("mechgym.training.rllib needs Ray RLlib: pip install -e '.[rllib]'") from exc

from mechgym.envs.engine.game import Decision, Terminal
from mechgym.envs.pettingzoo.registry import entry

from .encodings import MenuEncoding, ObservationBuilder


class MechanismMultiAgentEnv(MultiAgentEnv):
    """A mechgym mechanism as an RLlib ``MultiAgentEnv`` (menu encoding, one agent per player).

    Parameters
    ----------
    config : dict
        ``mechanism`` (default ``"best_belief"``), ``generate`` (a generator spec) or
        ``example`` (a built-in example), ``seed`` (default 0), ``params`` (mechanism
        constants).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        config = dict(config or {})
        self.mech_name = config.get("mechanism", "best_belief")
        e = entry(self.mech_name)
        kwargs: dict[str, Any] = dict(config.get("params", {}))
        if "example" in config:
            kwargs["context"] = config["example"]
        elif "generate" in config:
            kwargs["generator"] = config["generate"]
        # RLlib gives each env runner a worker index; offset the seed so runners differ
        worker = int(getattr(config, "worker_index", 0) or 0)
        self.raw = e.load_env_module().raw_env(
            seed=int(config.get("seed", 0)) + worker, action_encoding="menu", **kwargs
        )
        # the PettingZoo env's own menus: observation summaries and actions read one table
        self.encoding = MenuEncoding(
            self.mech_name,
            self.raw.mechanism,
            self.raw.spec,
            e.load_agents(),
            table=self.raw.menus,
        )
        n = self.raw.spec.n
        self.builders = [
            ObservationBuilder(self.encoding, (p,), self.raw.context_class) for p in range(n)
        ]
        size = self.encoding.K
        self.possible_agents = list(self.raw.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {
            a: spaces.Dict(
                {
                    "observations": self.builders[i].space,
                    "action_mask": spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32),
                }
            )
            for i, a in enumerate(self.possible_agents)
        }
        self.action_spaces = {a: spaces.Discrete(size) for a in self.possible_agents}

    def _obs(self, player: int) -> dict[str, np.ndarray]:
        raw = self.raw
        base = raw.observe(raw.possible_agents[player])["observation"]
        if isinstance(raw.node, Decision) and player in raw.node.players:
            obs = self.builders[player].build(raw.context, raw.game_state, player, base=base)
            mask = raw.current_mask(raw.possible_agents[player])
        else:
            obs = self.builders[player].terminal(base)
            mask = np.zeros(self.encoding.K, dtype=np.int8)
        return {"observations": np.asarray(obs), "action_mask": mask.astype(np.float32)}

    def _next(self) -> dict[str, Any]:
        agent = self.raw.agent_selection
        return {agent: self._obs(self.raw._index[agent])}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.raw.reset(seed=seed)
        return self._next(), {}

    def step(self, action_dict: dict[str, Any]):
        raw = self.raw
        for action in action_dict.values():
            raw.step(int(action))  # a menu entry of the acting agent
        if isinstance(raw.node, Terminal):
            rewards = {
                a: float(r) for a, r in zip(raw.possible_agents, raw.exact_rewards(), strict=True)
            }
            obs = {a: self._obs(i) for i, a in enumerate(raw.possible_agents)}
            done = {a: True for a in raw.possible_agents} | {"__all__": True}
            trunc = {a: False for a in raw.possible_agents} | {"__all__": False}
            return obs, rewards, done, trunc, {}
        obs = self._next()
        # RLlib wants a reward beside every observation of an agent that has acted before
        return obs, dict.fromkeys(obs, 0.0), {"__all__": False}, {"__all__": False}, {}


class MaskedPPOTorchRLModule(DefaultPPOTorchRLModule):
    """RLlib's default PPO torch module over ``{"observations", "action_mask"}``
    observations: the network reads ``observations``; masked actions get logit ``-inf``."""

    def __init__(self, *, observation_space: Any = None, **kwargs: Any) -> None:
        self.observation_space_with_mask = observation_space
        super().__init__(observation_space=observation_space["observations"], **kwargs)

    def setup(self) -> None:
        super().setup()
        self.observation_space = self.observation_space_with_mask

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mask, batch = self._split(batch)
        return self._masked(super()._forward_inference(batch, **kwargs), mask)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mask, batch = self._split(batch)
        return self._masked(super()._forward_exploration(batch, **kwargs), mask)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # the learner calls compute_values first, which moved the mask out of the obs
        out = super()._forward_train(batch, **kwargs)
        return self._masked(out, batch["action_mask"])

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> Any:
        if isinstance(batch[Columns.OBS], dict):
            mask, batch = self._split(batch)
            batch["action_mask"] = mask
        return super().compute_values(batch, embeddings)

    @staticmethod
    def _split(batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        obs = batch[Columns.OBS]
        batch[Columns.OBS] = obs["observations"]
        return obs["action_mask"], batch

    @staticmethod
    def _masked(out: dict[str, Any], mask: Any) -> dict[str, Any]:
        out[Columns.ACTION_DIST_INPUTS] = out[Columns.ACTION_DIST_INPUTS] + torch.clamp(
            torch.log(mask), min=FLOAT_MIN
        )
        return out


def ppo_config(
    mechanism: str = "best_belief",
    generate: str | None = None,
    example: str | None = None,
    seed: int = 0,
    num_env_runners: int = 0,
    train_batch_size: int = 1024,
) -> Any:
    """A PPO configuration with one action-masked policy per player."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    env_config: dict[str, Any] = {"mechanism": mechanism, "seed": seed}
    if generate is not None:
        env_config["generate"] = generate
    if example is not None:
        env_config["example"] = example
    probe = MechanismMultiAgentEnv(env_config)
    agents = probe.possible_agents
    return (
        PPOConfig()
        .environment(MechanismMultiAgentEnv, env_config=env_config)
        .env_runners(num_env_runners=num_env_runners)
        .training(train_batch_size=train_batch_size, minibatch_size=min(256, train_batch_size))
        .multi_agent(policies=set(agents), policy_mapping_fn=lambda agent_id, *a, **k: agent_id)
        .rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={
                    a: RLModuleSpec(module_class=MaskedPPOTorchRLModule) for a in agents
                }
            )
        )
        .debugging(seed=seed)
    )
