"""Factored and continuous moves on the batched path: the numpy ``BatchedEnv`` and the TorchRL
``BatchedMechanismEnv`` play them on every mechanism with batched rules, the composed actions
give the exact engine's outcomes and rewards (``replay_exact``), bad sub-decisions raise typed
errors and leave the env as it was, and a learner's move so far stays its own."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytest
from mechgym.envs.batched_api import BatchedEnv
from mechgym.envs.engine.batched import BATCHED_MODULES, replay_exact
from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError, ParameterError

torch = pytest.importorskip("torch")
pytest.importorskip("torchrl")

from torchrl.envs.utils import MarlGroupMapType, check_env_specs  # noqa: E402

from mechgym.integrations.torchrl_batched import BatchedMechanismEnv  # noqa: E402

MECHANISMS = [name for name in BATCHED_MODULES if name != "mixture"]
ENCODINGS = ("factored", "continuous")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    yield
    torch.set_num_threads(before)


def random_choices(obs: dict, rng: np.random.Generator, encoding: str, B: int) -> dict:
    """A uniformly random legal sub-decision per agent and episode (box uniform)."""
    acts = {}
    for a, o in obs.items():
        m = o["action_mask"].astype(bool)
        c = (rng.random(m.shape) * m).argmax(axis=1)
        acts[a] = c if encoding == "factored" else (c, rng.random(B))
    return acts


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", MECHANISMS)
def test_torchrl_factored_rollouts_replay_exactly(name: str, encoding: str) -> None:
    env = BatchedMechanismEnv(
        name,
        8,
        group_map=MarlGroupMapType.ONE_GROUP_PER_AGENT,
        action_encoding=encoding,
        seed=3,
        record=True,
    )
    check_env_specs(env)
    torch.manual_seed(0)
    td = env.reset()
    steps = 0
    while not env.api.state.done.all():
        g = env.learners[0]
        assert td[g, "action_mask"].shape == (8, 1, env.factored.plan.D)
        td = env.step(env.rand_action(td))["next"]
        steps += 1
        assert steps < 60
    assert replay_exact(env.rules, env.recording()) == []


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", MECHANISMS)
def test_batched_env_plays_factored_moves(name: str, encoding: str) -> None:
    B = 16
    env = BatchedEnv(name, B, seed=1, action_encoding=encoding)
    obs, info = env.reset(seed=2)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(40):
        for a in env.agents:
            m = obs[a]["action_mask"]
            assert m.shape == (B, env.factored.plan.D)
            # an agent not composing may pick only the no-op
            idle = ~info["acting"][a]
            assert (m[idle, 1:] == 0).all() and (m[idle, 0] == 1).all()
            assert env.observation_space(a)["observation"].shape == obs[a]["observation"].shape
        obs, _rew, term, _, info = env.step(random_choices(obs, rng, encoding, B))
        ended += int(term["player_0"].sum())
    assert ended > 0


def test_batched_sub_decisions_are_checked_before_anything_changes() -> None:
    env = BatchedEnv("best_belief", 4, seed=0, action_encoding="factored")
    obs, _info = env.reset(seed=0)
    masks = {a: obs[a]["action_mask"] for a in env.agents}
    before = env.factored.composer.copy()
    bad = {a: np.argmax(masks[a], axis=1) for a in env.agents}
    closed = np.flatnonzero(masks["player_1"][2] == 0)
    bad["player_1"][2] = closed[0]
    with pytest.raises(IllegalActionError, match=r"player_1.*episode 2.*masked"):
        env.step(bad)
    assert np.array_equal(env.factored.composer.act, before.act)
    assert np.array_equal(env.factored.composer.k, before.k)
    bad["player_1"][2] = env.factored.plan.D
    with pytest.raises(OutOfSpaceError, match="outside"):
        env.step(bad)
    good = {a: np.argmax(masks[a], axis=1) for a in env.agents}
    env.step(good)  # the env plays on


def test_continuous_box_is_read_and_checked() -> None:
    env = BatchedEnv("vcg", 3, seed=0, action_encoding="continuous")
    _obs, info = env.reset(seed=0)
    assert info["reads_box"]["player_0"].all()  # value reports are amounts
    zero = np.zeros(3, dtype=np.int64)
    with pytest.raises(OutOfSpaceError, match=r"\[0, 1\]"):
        env.step({a: (zero, np.full(3, 1.5)) for a in env.agents})
    # x = 1 reports the top of the value range, x = 0 the bottom, halves round up
    env.step({a: (zero, np.array([1.0, 0.0, 0.5])) for a in env.agents})
    act = env.factored.composer.act.reshape(3, env.spec.n, -1)
    top = int(env.layout.sizes[0]) - 1
    assert act[0, 0, 0] == top and act[1, 0, 0] == 0 and act[2, 0, 0] == (top + 1) // 2


def test_own_move_is_hidden_from_the_others() -> None:
    env = BatchedEnv("best_belief", 2, seed=0, action_encoding="factored")
    obs, _ = env.reset(seed=0)
    before = {a: obs[a]["observation"].copy() for a in env.agents}
    choice = {a: np.zeros(2, dtype=np.int64) for a in env.agents}
    # player 0 picks a non-trivial first sub-decision, the others the first legal one
    for a in env.agents:
        choice[a] = np.argmax(obs[a]["action_mask"], axis=1)
    choice["player_0"] = np.array([3, 3])
    obs, *_ = env.step(choice)
    base = env.observation_space("player_0")["observation"].shape[1]
    feat = env.factored.plan.feature_size
    for a in env.agents[1:]:
        # others' views: their own prefix changed, the public part did not
        assert np.array_equal(obs[a]["observation"][:, : base - feat], before[a][:, : base - feat])
    assert not np.array_equal(obs["player_0"]["observation"], before["player_0"])


def test_unknown_encoding_options_are_refused() -> None:
    with pytest.raises(ParameterError, match="price_grid"):
        BatchedEnv("best_belief", 2, action_encoding="factored", price_grid="log")
    with pytest.raises(ParameterError, match="price_levels"):
        BatchedEnv("best_belief", 2, action_encoding="factored", price_levels=1)
    with pytest.raises(ParameterError, match="action_encoding"):
        BatchedEnv("best_belief", 2, action_encoding="factorised")
