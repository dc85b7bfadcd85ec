"""The RLlib backend (optional extra): the multi-agent env contract, and one PPO iteration."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

from mechgym.training.rllib import MechanismMultiAgentEnv, ppo_config


@pytest.mark.parametrize("mechanism", ["best_belief", "perfect_revenue", "budget_balanced_market"])
def test_multi_agent_env_contract(mechanism: str) -> None:
    env = MechanismMultiAgentEnv({"mechanism": mechanism, "seed": 3})
    rng = np.random.default_rng(0)
    for episode in range(4):
        obs, _ = env.reset(seed=episode)
        acted: set[str] = set()
        while True:
            assert len(obs) >= 1
            actions = {}
            for agent, o in obs.items():
                assert env.observation_spaces[agent].contains(o)
                legal = np.flatnonzero(o["action_mask"])
                assert legal.size > 0  # the acting agent always has a legal menu entry
                actions[agent] = int(rng.choice(legal))
            acted |= set(actions)
            obs, rewards, terms, _, _ = env.step(actions)
            if terms["__all__"]:
                # every player is rewarded exactly, once, at the end
                exact = env.raw.exact_rewards()
                assert rewards == {
                    a: float(r) for a, r in zip(env.possible_agents, exact, strict=True)
                }
                break
            assert set(rewards) == set(obs) and all(r == 0.0 for r in rewards.values())
        assert acted


def test_same_seed_same_episode() -> None:
    def run() -> list:
        env = MechanismMultiAgentEnv({"mechanism": "best_belief", "seed": 5})
        obs, _ = env.reset(seed=5)
        trace = []
        while True:
            actions = {a: int(np.flatnonzero(o["action_mask"])[0]) for a, o in obs.items()}
            obs, rewards, terms, _, _ = env.step(actions)
            trace.append((sorted(actions.items()), sorted(rewards.items())))
            if terms["__all__"]:
                return trace

    assert run() == run()


@pytest.mark.slow
def test_one_ppo_iteration() -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        algo = ppo_config("best_belief", seed=0, train_batch_size=256).build_algo()
        result = algo.train()
        assert result["env_runners"]["num_episodes_lifetime"] > 0
        algo.stop()
    finally:
        ray.shutdown()
