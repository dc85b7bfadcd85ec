"""The envs inside SuperSuit + SB3, TorchRL and Tianshou (the ``integrations`` extra; RLlib
has its own virtualenv and tests, ``tests/test_rllib*.py``).

Each test runs the real library and skips when it is not installed.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from mechgym.envs import best_belief_v0, perfect_revenue_v0, vcg_v0
from mechgym.envs.pettingzoo.registry import available

ENTRIES = available()
pytestmark = pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning")


def test_supersuit_vec_env_with_sb3_ppo_on_menus() -> None:
    pytest.importorskip("supersuit")
    stable_baselines3 = pytest.importorskip("stable_baselines3")
    from mechgym.integrations.sb3 import vec_env

    def train(seed: int) -> np.ndarray:
        # one phase with full menus: every entry PPO samples is legal
        par = vcg_v0.parallel_env(context="ausubel-milgrom", action_encoding="menu")
        venv = vec_env(par, copies=2)
        assert venv.num_envs == 6  # 3 agents x 2 copies, one shared policy
        model = stable_baselines3.PPO(
            "MultiInputPolicy", venv, n_steps=16, batch_size=48, n_epochs=1, seed=seed
        )
        model.learn(96)
        return model.policy.parameters_to_vector()

    np.testing.assert_array_equal(train(0), train(0))  # seeded through SuperSuit's stack


def test_supersuit_vec_env_with_maskable_ppo() -> None:
    pytest.importorskip("supersuit")
    sb3_contrib = pytest.importorskip("sb3_contrib")
    from mechgym.integrations.sb3 import vec_env

    par = best_belief_v0.parallel_env(context="chen-micali-2016", action_encoding="menu")
    venv = vec_env(par, copies=1)
    venv.seed(3)
    obs = venv.reset()
    masks = np.stack(venv.env_method("action_masks"))
    np.testing.assert_array_equal(masks, obs["action_mask"].astype(bool))
    model = sb3_contrib.MaskablePPO(
        "MultiInputPolicy", venv, n_steps=16, batch_size=48, n_epochs=1, seed=0
    )
    model.learn(48)  # every respond step has 2 of 14 entries: masks are used or it raises


@pytest.mark.parametrize("encoding", ["multidiscrete", "menu"])
@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_torchrl_pettingzoo_wrapper(e, encoding) -> None:
    pytest.importorskip("torchrl")
    from torchrl.envs import PettingZooWrapper
    from torchrl.envs.utils import check_env_specs

    import mechgym.integrations.torchrl  # noqa: F401  (flat masks for one-size fields)

    mod = e.load_env_module()
    if e.mechanism_class().simultaneous_only:
        pz = mod.parallel_env(seed=0, action_encoding=encoding)
    else:
        pz = mod.env(seed=0, action_encoding=encoding)
    env = PettingZooWrapper(pz, use_mask=True, return_state=True, seed=0)
    check_env_specs(env, seed=0)
    td = env.rollout(12, break_when_any_done=False)
    assert td.batch_size == (12,)
    assert td["state"].shape[-1] == pz.state_space.shape[0]
    assert td["next", "done"].any()  # at least one episode ran to its end


def test_torchrl_without_the_explicit_import() -> None:
    pytest.importorskip("torchrl")
    # a fresh interpreter: envs built after TorchRL is imported register the conversion
    code = (
        "from torchrl.envs import PettingZooWrapper\n"
        "from mechgym.envs import vcg_v0\n"
        "env = PettingZooWrapper(vcg_v0.parallel_env(seed=0), use_mask=True, seed=0)\n"
        "print(env.rollout(4, break_when_any_done=False)['next', 'done'].shape)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize("module", [best_belief_v0, perfect_revenue_v0], ids=["M1", "M5"])
def test_tianshou_masked_policies_play_full_episodes(module) -> None:
    pytest.importorskip("tianshou")
    from tianshou.algorithm.algorithm_base import Policy
    from tianshou.algorithm.multiagent.marl import MultiAgentPolicy
    from tianshou.algorithm.random import MARLRandomDiscreteMaskedOffPolicyAlgorithm
    from tianshou.data import Batch, Collector
    from tianshou.env import DummyVectorEnv, PettingZooEnv

    class SeededMaskedRandom(Policy):
        """Uniform over the mask, from a seeded generator."""

        def __init__(self, action_space, seed: int) -> None:
            super().__init__(action_space=action_space)
            self.rng = np.random.default_rng(seed)

        def forward(self, batch, state=None, **kwargs):
            mask = np.asarray(batch.obs.mask, dtype=bool)
            keys = np.where(mask, self.rng.random(mask.shape), -1.0)
            return Batch(act=keys.argmax(axis=-1))

    def make() -> PettingZooEnv:
        return PettingZooEnv(module.env(seed=0, action_encoding="menu"))

    env = make()
    # Tianshou's own masked random agent for player_0, a seeded one for the others
    policies = {
        a: SeededMaskedRandom(env.action_space, i)
        if i
        else MARLRandomDiscreteMaskedOffPolicyAlgorithm(env.action_space).policy
        for i, a in enumerate(env.agents)
    }
    collector = Collector(MultiAgentPolicy(policies), DummyVectorEnv([make, make]))
    collector.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Tianshou's stats on 2-D returns
        res = collector.collect(n_episode=6)
    assert res.n_collected_episodes == 6
    assert res.returns.shape == (6, len(env.agents))
    assert np.isfinite(res.returns).all()
