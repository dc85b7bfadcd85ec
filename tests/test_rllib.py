"""The RLlib backend (the ``rllib`` extra): both multi-agent envs, masked PPO on M1, M3 and M6,
policies per player and per coalition, runner sizing, and exact evaluation of trained modules.

CI runs this file in the RLlib virtualenv with ``MECHGYM_NO_SKIP=1``, where a skip fails.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

import ray
from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError, ParameterError

from mechgym.integrations.rllib import (
    BatchedMultiAgentEnv,
    MechanismMultiAgentEnv,
    ModulePolicy,
    env_config,
    policy_groups,
    ppo_config,
    sampling_throughput,
    size_env_runners,
)

MECHANISMS = ["best_belief", "knowledge_benchmark", "budget_balanced_market"]  # M1, M3, M6
EXAMPLES = {"best_belief": "chen-micali-2016", "budget_balanced_market": "market-swap"}


def legal_choice(rng: np.random.Generator, o: dict) -> int:
    return int(rng.choice(np.flatnonzero(o["action_mask"])))


@pytest.mark.parametrize("mechanism", [*MECHANISMS, "perfect_revenue"])
def test_multi_agent_env_contract(mechanism: str) -> None:
    env = MechanismMultiAgentEnv(env_config(mechanism, seed=3))
    rng = np.random.default_rng(0)
    for episode in range(4):
        obs, _ = env.reset(seed=episode)
        acted: set[str] = set()
        while True:
            assert len(obs) >= 1
            actions = {}
            for agent, o in obs.items():
                assert env.observation_spaces[agent].contains(o)
                assert o["action_mask"].sum() > 0  # an acting agent has a legal entry
                actions[agent] = legal_choice(rng, o)
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


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_batched_env_contract(mechanism: str) -> None:
    """Many episodes per step: spaces hold, rewards come once at the end, ended episodes
    restart on the next step, and the run is seeded."""

    def run(seed: int) -> list:
        env = BatchedMultiAgentEnv(env_config(mechanism, seed=1), num_envs=16)
        rng = np.random.default_rng(seed)
        obs, infos = env.reset(seed=seed)
        assert len(obs) == len(infos) == 16
        ended = np.zeros(16, dtype=bool)
        trace, episodes = [], 0
        for _ in range(12):
            actions = []
            for b, o in enumerate(obs):
                if ended[b]:
                    actions.append({})
                    continue
                assert o, "a live episode has an acting learner"
                for agent, v in o.items():
                    assert env.single_observation_spaces[agent].contains(v)
                actions.append({a: legal_choice(rng, v) for a, v in o.items()})
            obs, rewards, terms, truncs, _ = env.step(actions)
            for b in range(16):
                if ended[b]:  # restarted: a fresh episode's first observation
                    assert not terms[b]["__all__"] and set(rewards[b].values()) == {0.0}
                elif terms[b]["__all__"]:
                    episodes += 1
                    assert set(rewards[b]) == set(env.agents)
                    assert all(v["action_mask"].sum() == 0 for v in obs[b].values())
                else:
                    assert set(rewards[b]) == set(obs[b]) and set(rewards[b].values()) <= {0.0}
                assert not truncs[b]["__all__"]
            ended = np.array([t["__all__"] for t in terms])
            trace.append([sorted(r.items()) for r in rewards])
        assert episodes > 16
        return trace

    assert run(4) == run(4)


@pytest.mark.parametrize("mechanism", sorted(EXAMPLES))
def test_batched_env_observes_as_the_exact_env(mechanism: str) -> None:
    """On one context, the vectorised env's first observation and mask of an acting player
    are the exact env's (so a module trained on either plays on the other)."""
    cfg = env_config(mechanism, example=EXAMPLES[mechanism], seed=0)
    exact = MechanismMultiAgentEnv(cfg)
    e_obs, _ = exact.reset(seed=0)
    batched = BatchedMultiAgentEnv(cfg, num_envs=3)
    b_obs, _ = batched.reset(seed=0)
    (agent,) = e_obs
    for b in range(3):
        np.testing.assert_allclose(b_obs[b][agent]["observations"], e_obs[agent]["observations"])
        np.testing.assert_array_equal(b_obs[b][agent]["action_mask"], e_obs[agent]["action_mask"])


def test_batched_env_refuses_bad_entries_and_stays_usable() -> None:
    env = BatchedMultiAgentEnv(env_config("best_belief", seed=0), num_envs=4)
    obs, _ = env.reset(seed=0)

    def first_legal(obs: list) -> list:
        return [
            {
                a: int(np.flatnonzero(v["action_mask"])[0])
                for a, v in x.items()
                if v["action_mask"].any()
            }
            for x in obs
        ]

    rng = np.random.default_rng(0)

    def random_legal(obs: list) -> list:
        return [
            {a: legal_choice(rng, v) for a, v in x.items() if v["action_mask"].any()} for x in obs
        ]

    for _ in range(20):  # find an acting agent with a masked entry (an answer phase)
        hits = [
            (b, a, int(np.flatnonzero(v["action_mask"] == 0)[0]))
            for b, x in enumerate(obs)
            for a, v in x.items()
            if v["action_mask"].any() and not v["action_mask"].all()
        ]
        if hits:
            break
        obs = env.step(random_legal(obs))[0]
    b, agent, masked = hits[0]
    bad = first_legal(obs)
    bad[b][agent] = masked
    with pytest.raises(IllegalActionError, match=f"episode {b}"):
        env.step(bad)
    bad[b][agent] = env.K
    with pytest.raises(OutOfSpaceError, match="outside"):
        env.step(bad)
    env.step(first_legal(obs))  # the failed steps changed nothing


def test_scripted_opponents_play_inside_both_envs() -> None:
    cfg = env_config("best_belief", seed=2, learners=[1], opponents="predicted")
    for env in (MechanismMultiAgentEnv(cfg), BatchedMultiAgentEnv(cfg, num_envs=8)):
        assert list(env.setup.agents) == ["player_1"]
        obs, _ = env.reset(seed=0)
        first = obs if isinstance(obs, dict) else obs[0]
        assert set(first) == {"player_1"}


def test_policies_per_player_and_per_coalition() -> None:
    cfg = env_config("best_belief", example="ausubel-milgrom")
    assert policy_groups(cfg, "player") == {f"player_{i}": [f"player_{i}"] for i in range(3)}
    groups = policy_groups(cfg, "coalition")
    assert groups == {"player_0": ["player_0"], "coalition_1_2": ["player_1", "player_2"]}
    with pytest.raises(ParameterError, match="vary"):
        policy_groups(
            env_config("best_belief", generate="uniform:n=3,m=2,coalitions=random"), "coalition"
        )


def test_env_runners_sized_to_the_cpus_and_unsatisfiable_requests_fail_fast() -> None:
    assert size_env_runners(None, cpus=2) == 1
    assert size_env_runners(None, cpus=1) == 0
    assert size_env_runners(2, cpus=2) == 2
    t0 = time.perf_counter()
    with pytest.raises(ParameterError, match=r"4 env runners need 4 CPUs.*has 2"):
        size_env_runners(4, cpus=2)
    with pytest.raises(ParameterError, match="num_env_runners"):
        ppo_config("best_belief", num_env_runners=10_000)
    assert time.perf_counter() - t0 < 60  # refused at once, not left pending


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("batched", [False, True], ids=["exact", "vector"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_masked_ppo_trains_without_deprecations(local_ray, mechanism: str, batched: bool) -> None:
    """One PPO iteration on the new API stack, one masked module per player; every sampled
    action was legal (an illegal one raises inside the env); no deprecation but the one Ray
    2.60 logs for its own RLModule constructor."""
    recorder = _Recorder()
    logging.getLogger("ray").addHandler(recorder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            config = ppo_config(
                mechanism,
                seed=0,
                num_env_runners=0,
                train_batch_size=128,
                batched=batched,
                num_envs_per_env_runner=16,
            )
            assert config.enable_rl_module_and_learner
            assert config.enable_env_runner_and_connector_v2
            algo = config.build_algo()
            try:
                result = algo.train()
            finally:
                algo.stop()
    finally:
        logging.getLogger("ray").removeHandler(recorder)
    runners = result["env_runners"]
    assert runners["num_episodes_lifetime"] > 0
    assert set(runners["num_agent_steps_sampled_lifetime"]) == set(config.policies)
    deprecations = [m for m in recorder.messages if "eprecat" in m]
    assert [m for m in deprecations if "RLModuleConfig object" not in m] == []


def test_coalition_policy_trains_and_modules_play_exactly(local_ray) -> None:
    """A coalition shares one module; the trained modules are a deterministic profile that
    the exact evaluator scores."""
    from mechgym.envs.pettingzoo.registry import entry
    from mechgym.training.metrics import evaluate_profile

    config = ppo_config(
        "best_belief",
        example="ausubel-milgrom",
        seed=0,
        num_env_runners=0,
        train_batch_size=128,
        policies="coalition",
    )
    assert config.policies.keys() == {"player_0", "coalition_1_2"}
    algo = config.build_algo()
    try:
        algo.train()
        env = MechanismMultiAgentEnv(config.env_config)
        policy_of = {0: "player_0", 1: "coalition_1_2", 2: "coalition_1_2"}
        policy = ModulePolicy(
            {pid: algo.get_module(pid) for pid in ("player_0", "coalition_1_2")},
            policy_of,
            env.encoding,
            env.raw.context_class,
        )
        met = evaluate_profile(
            env.raw.mechanism,
            entry("best_belief").load_agents(),
            [env.raw.context],
            lambda ctx: dict.fromkeys(range(3), policy),
            [(0,), (1, 2)],
            env.encoding,
        )
    finally:
        algo.stop()
    assert set(met.agreement) and met.revenue_ratio is not None
    assert set(met.exploitability) == {"0", "1+2"} or len(met.exploitability) == 2


def test_sampling_throughput_is_measured_for_both_envs() -> None:
    single = sampling_throughput("best_belief", batched=False, agent_steps=32)
    vector = sampling_throughput("best_belief", batched=True, num_envs=8, agent_steps=64)
    for r in (single, vector):
        assert r["agent_steps"] > 0 and r["agent_steps_per_second"] > 0
    assert single["num_envs"] == 1 and vector["num_envs"] == 8
