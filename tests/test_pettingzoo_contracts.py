"""PettingZoo contracts of every registered env, in every action encoding."""

from __future__ import annotations

import warnings

import numpy as np
import pettingzoo
import pytest
from gymnasium import spaces
from mechgym.agents.best_belief import PredictedSeed000
from mechgym.agents.menus import MenuTable
from mechgym.envs import best_belief_v0, vcg_v0
from mechgym.envs.engine.errors import (
    IllegalActionError,
    MalformedAnnouncementError,
    OutOfSpaceError,
    ParameterError,
)
from mechgym.envs.pettingzoo.registry import available
from mechgym.training.encodings import MenuEncoding
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test
from pettingzoo.utils.conversions import aec_to_parallel

import mechgym  # registers the envs

ENTRIES = available()
ENCODINGS = ("multidiscrete", "menu", "factored", "continuous")


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_api_and_seed_tests(e, encoding) -> None:
    mod = e.load_env_module()
    api_test(pettingzoo.make("aec", e.env_id, seed=0, action_encoding=encoding), num_cycles=40)
    seed_test(lambda: mod.env(action_encoding=encoding), num_cycles=40)
    if not e.mechanism_class().simultaneous_only:
        with pytest.raises(ParameterError, match="sequential"):
            mod.parallel_env(action_encoding=encoding)
        return
    par = pettingzoo.make("parallel", e.env_id, seed=0, action_encoding=encoding)
    parallel_api_test(par, num_cycles=40)
    # samples without masks: unread fields are ignored, sample() draws legal values
    parallel_seed_test(lambda: mod.parallel_env(action_encoding=encoding), num_cycles=40)


@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_is_parallelizable_exactly_where_aec_to_parallel_works(e) -> None:
    env = e.load_env_module().env(seed=0)
    if env.unwrapped.metadata["is_parallelizable"]:
        parallel_api_test(aec_to_parallel(env), num_cycles=40)
        return
    with pytest.raises(AssertionError, match="not generally safe"):
        aec_to_parallel(env)
    # claimed anyway, a node where only some players act breaks the wrapper within a few
    # episodes: the metadata is right to say False
    raw = env.unwrapped
    raw.metadata = {**raw.metadata, "is_parallelizable": True}
    with pytest.raises(AssertionError, match="Parallel environment wrapper expects"):
        par = aec_to_parallel(env)
        for seed in range(100):
            obs, _ = par.reset(seed=seed)
            for a in par.agents:
                par.action_space(a).seed(seed)
            while par.agents:
                acts = {a: par.action_space(a).sample(obs[a]["action_mask"]) for a in par.agents}
                obs, *_ = par.step(acts)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_state_vector(e, encoding) -> None:
    env = e.load_env_module().raw_env(seed=3, action_encoding=encoding)
    env.reset(seed=3)
    n = env.spec.n
    for agent in env.agent_iter():
        st = env.state()
        assert env.state_space.contains(st), agent
        # every player's private information is in it
        for i in range(n):
            priv = np.asarray(env.context.private_features(i), dtype=np.float32)
            assert np.isin(np.clip(priv, -(2.0**24), 2.0**24), st).all()
        _, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else env.action_space(agent).sample())


def test_menu_encoding_spaces_and_errors() -> None:
    env = best_belief_v0.raw_env(context="chen-micali-2016", seed=0, action_encoding="menu")
    env.reset(seed=0)
    table = env.menus
    assert isinstance(table, MenuTable)
    assert env.action_space("player_0") == spaces.Discrete(table.K)
    obs = env.observe("player_0")
    assert obs["action_mask"].shape == (table.K,) and obs["action_mask"].all()
    # a menu entry is the menu's structured action; structured actions still go through
    policy = PredictedSeed000(env.context)
    predicted = policy.act(env.mechanism, env.context, env.game_state, 0)
    k = table.encode(env.context, env.game_state, 0, predicted)
    assert k is not None
    env.step(np.int64(k))
    env.step(policy.act(env.mechanism, env.context, env.game_state, 1))
    with pytest.raises(OutOfSpaceError, match=f"outside 0..{table.K - 1}"):
        env.step(table.K)
    with pytest.raises(OutOfSpaceError, match="one integer"):
        env.step(np.array([0, 1]))
    env.step(0)
    while env.node.__class__.__name__ == "Decision":
        agent = env.agent_selection
        assert env.node.phase == "respond"
        with pytest.raises(IllegalActionError, match="menu entry 5 is masked"):
            env.step(5)
        with pytest.raises(MalformedAnnouncementError, match="respond"):
            env.step("yes")
        assert env.agent_selection == agent  # unchanged by the errors
        env.step(1)
    assert env.outcome is not None


def test_menus_live_in_one_place() -> None:
    env = vcg_v0.raw_env(context="ausubel-milgrom", seed=0, action_encoding="menu")
    agents = mechgym.entry("vcg").load_agents()
    enc = MenuEncoding("vcg", env.mechanism, env.spec, agents, table=env.menus)
    env.reset(seed=0)
    ctx, st = env.context, env.game_state
    assert enc.options(ctx, st, 0) == env.menus.options(ctx, st, 0)
    assert env.action_space("player_0").n == enc.action_space.n
    # "raw" is the older name of the full layout: the same env as "multidiscrete"
    old = vcg_v0.raw_env(context="ausubel-milgrom", seed=0, action_encoding="raw")
    assert old.action_encoding == "multidiscrete"
    assert old.action_space("player_0") == vcg_v0.raw_env(context="ausubel-milgrom").action_space(
        "player_0"
    )
    with pytest.raises(ParameterError, match="action_encoding"):
        vcg_v0.env(action_encoding="layout")


def test_render_modes() -> None:
    env = vcg_v0.env(context="ausubel-milgrom", seed=0)
    env.reset(seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert env.render() is None
    assert any("render mode" in str(w.message) for w in caught)
    ansi = vcg_v0.env(context="ausubel-milgrom", seed=0, render_mode="ansi")
    ansi.reset(seed=0)
    for _ in range(3):
        ansi.step((0, 1, 1, 2))
    assert ansi.render().count("\n") == 3  # three reports and the outcome


def test_human_render_prints_only_what_is_new(capsys) -> None:
    env = best_belief_v0.env(context="chen-micali-2016", seed=0, render_mode="human")
    env.reset(seed=0)
    printed = []
    for agent in env.agent_iter():
        obs, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else env.action_space(agent).sample(obs["action_mask"]))
        printed.append(capsys.readouterr().out)
    text = "".join(printed)
    lines = text.splitlines()
    # each line once, in order: the printed text is the transcript
    assert lines == env.unwrapped.transcript_lines()
    assert text.count("[outcome") == 1


def test_menu_env_pickles_and_plays_on() -> None:
    import pickle

    env = best_belief_v0.env(context="chen-micali-2016", seed=0, action_encoding="menu")
    env.reset(seed=0)
    env.step(3)
    copy = pickle.loads(pickle.dumps(env))
    for e in (env, copy):
        e.step(0)
        e.step(1)
    assert copy.unwrapped.transcript() == env.unwrapped.transcript()
    assert copy.unwrapped.menus.K == env.unwrapped.menus.K


@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_predicted_play_through_menu_entries(e) -> None:
    env = e.load_env_module().raw_env(seed=5, action_encoding="menu")
    agents = e.load_agents()
    for episode in range(3):
        env.reset(seed=episode)
        predicted = agents.predicted(env.context)
        for agent in env.agent_iter():
            _, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            i = env.possible_agents.index(agent)
            act = predicted.act(env.mechanism, env.context, env.game_state, i)
            k = env.menus.encode(env.context, env.game_state, i, act)
            assert k is not None, (agent, env.node.phase, act)  # the menu holds the prediction
            assert env.observe(agent)["action_mask"][k] == 1
            env.step(k)
        assert env.outcome is not None
