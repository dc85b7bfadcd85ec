"""PettingZoo conformance, determinism and bad input for the seed-000 envs and VCG."""

from __future__ import annotations

import numpy as np
import pettingzoo
import pytest
from mechgym.envs import best_belief_v0, normal_form_v0, vcg_v0
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.errors import (
    ContextError,
    IllegalActionError,
    MalformedAnnouncementError,
    NotActingError,
    OutOfSpaceError,
    ParameterError,
)
from mechgym.envs.mechanisms.best_belief import BBAnnouncement
from mechgym.envs.model.examples import example
from mechgym.envs.model.generators import UniformGenerator
from pettingzoo.test import api_test, parallel_api_test, seed_test

import mechgym  # noqa: F401  (registers the envs)

MODULES = [best_belief_v0, normal_form_v0, vcg_v0]
SETTINGS = [
    {"generator": UniformGenerator(n=2, m=1, value_cap=5, belief="noisy")},
    {"generator": UniformGenerator(n=5, m=2, value_cap=6, belief="wrong", coalitions="random")},
    {"generator": UniformGenerator(n=3, m=3, value_cap=4, belief="exact", coalitions="pair")},
    {"context": "chen-micali-2016"},
]


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__.split(".")[-1])
@pytest.mark.parametrize("kw", SETTINGS, ids=["n2", "n5-coalitions", "m3-pair", "example"])
def test_pettingzoo_api_seed_and_parallel(mod, kw) -> None:
    api_test(mod.env(seed=1, **kw), num_cycles=60)
    seed_test(lambda: mod.env(**kw), num_cycles=60)
    parallel_api_test(mod.parallel_env(seed=2, **kw), num_cycles=60)


@pytest.mark.parametrize(
    "env_id", ["mechgym/BestBelief-v0", "mechgym/NormalForm-v0", "mechgym/VCG-v0"]
)
def test_registered_with_pettingzoo(env_id: str) -> None:
    env = pettingzoo.make("aec", env_id)
    env.reset(seed=0)
    assert env.agents == ["player_0", "player_1", "player_2"]
    par = pettingzoo.make("parallel", env_id)
    obs, _ = par.reset(seed=0)
    assert set(obs) == set(par.agents)


def play_random(env, seed: int) -> list:
    """Every observation, reward and action of one random episode."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace = []
    for agent in env.agent_iter():
        obs, rew, term, trunc, _ = env.last()
        if term or trunc:
            action = None
        else:
            mask = obs["action_mask"]
            lay = env.unwrapped.layout
            action = np.array(
                [
                    rng.choice(np.flatnonzero(mask[lay.offsets[k] : lay.offsets[k + 1]]))
                    for k in range(len(lay))
                ]
            )
        trace.append(
            (
                agent,
                obs["observation"].tolist(),
                obs["action_mask"].tolist(),
                rew,
                None if action is None else action.tolist(),
            )
        )
        env.step(action)
    return trace


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__.split(".")[-1])
def test_same_seed_same_trajectory(mod) -> None:
    gen = UniformGenerator(n=3, m=2, value_cap=9, belief="noisy")
    a = [play_random(mod.env(generator=gen), s) for s in range(5)]
    b = [play_random(mod.env(generator=gen), s) for s in range(5)]
    assert a == b
    assert a[0] != a[1]  # the seed matters: contexts and coins differ


def test_simultaneous_moves_stay_hidden_until_resolution() -> None:
    env = best_belief_v0.raw_env(context=example("chen-micali-2016"), seed=0)
    env.reset(seed=0)
    before = env.observe("player_1")["observation"].copy()
    offer = Offer((0, 2, 0), (0, 25, 0))
    env.step(BBAnnouncement(1, offer))
    after = env.observe("player_1")["observation"]
    assert np.array_equal(before[1:], after[1:])  # only nothing of player_0's move leaks
    assert env.agent_selection == "player_1"


def test_structured_actions_match_array_actions() -> None:
    ctx = example("chen-micali-2016")
    env = best_belief_v0.raw_env(context=ctx, seed=0)
    env.reset(seed=0)
    ann = BBAnnouncement(3, Offer((0, 2, 1), (0, 25, 10)))
    vec = env.mechanism.encode(env.game_state, 0, ann, env.spec, env.layout)
    assert env.check_action(0, vec) == ann
    assert env.check_action(0, ann) == ann


# -- bad input ------------------------------------------------------------------------------


@pytest.fixture
def bb_env():
    env = best_belief_v0.raw_env(context=example("chen-micali-2016"), seed=0)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (BBAnnouncement(1, Offer((0, 2, 2), (0, 25, 10))), MalformedAnnouncementError, "overlaps"),
        (BBAnnouncement(1, Offer((1, 2, 0), (5, 25, 0))), MalformedAnnouncementError, "to itself"),
        (
            BBAnnouncement(1, Offer((0, 2, 0), (0, 0, 0))),
            MalformedAnnouncementError,
            "must be positive",
        ),
        (
            BBAnnouncement(1, Offer((0, 2, 0), (0, 25, 7))),
            MalformedAnnouncementError,
            "offered nothing",
        ),
        (
            BBAnnouncement(9, Offer((0, 2, 0), (0, 25, 0))),
            MalformedAnnouncementError,
            "favourite bundle",
        ),
        (BBAnnouncement(1, Offer((0, 2), (0, 25))), MalformedAnnouncementError, "needs 3 bundles"),
        (BBAnnouncement(1, Offer((0, 2, 0), (0, 2.5, 0))), MalformedAnnouncementError, "integer"),
        (True, MalformedAnnouncementError, "expected a BBAnnouncement"),
        (np.zeros(3, dtype=int), OutOfSpaceError, "shape"),
        (None, NotActingError, "not None"),
    ],
)
def test_bad_announcements_raise_typed_errors(bb_env, action, error, message) -> None:
    with pytest.raises(error, match=message) as info:
        bb_env.step(action)
    assert "player_0" in str(info.value) and "announce" in str(info.value)
    # nothing changed: the same agent still acts and a good action goes through
    assert bb_env.agent_selection == "player_0"
    bb_env.step(BBAnnouncement(1, Offer((0, 2, 0), (0, 25, 0))))
    assert bb_env.agent_selection == "player_1"


def test_array_actions_checked_field_by_field(bb_env) -> None:
    lay = bb_env.layout
    vec = lay.zeros()
    vec[lay.index["owner_0"]] = 1  # player_0 would own good 0: masked out
    with pytest.raises(IllegalActionError, match="owner_0"):
        bb_env.step(vec)
    vec = lay.zeros()
    vec[lay.index["bundle"]] = 4
    with pytest.raises(OutOfSpaceError, match=r"'bundle' = 4 is outside 0\.\.3"):
        bb_env.step(vec)
    with pytest.raises(OutOfSpaceError, match="integers"):
        bb_env.step(np.full(len(lay), 0.5))
    vec = lay.zeros()
    vec[lay.index["answer"]] = 1  # not read when announcing: ignored
    vec[lay.index["price_0"]] = 7  # the announcer's own price: not read either
    vec[lay.index["answer"]] = 2  # but still checked against the field's range
    with pytest.raises(OutOfSpaceError, match=r"'answer' = 2 is outside 0\.\.1"):
        bb_env.step(vec)
    vec[lay.index["answer"]] = 1
    bb_env.step(vec)
    assert bb_env.agent_selection == "player_1"


def test_respond_phase_needs_a_bool(bb_env) -> None:
    for i in range(3):
        bb_env.step(BBAnnouncement(0, Offer((0, 0, 3), (0, 0, 1)) if i != 2 else Offer.empty(3)))
    if bb_env.node.__class__.__name__ == "Decision":
        with pytest.raises(MalformedAnnouncementError, match="respond"):
            bb_env.step(1)


def test_finished_agents_and_finished_episodes() -> None:
    env = vcg_v0.env(context=example("ausubel-milgrom"), seed=0)
    env.reset(seed=0)
    for _ in range(3):
        env.step((0, 1, 1, 2))
    agent = env.agent_selection
    assert env.terminations[agent]
    with pytest.raises(NotActingError, match="finished"):
        env.step((0, 1, 1, 2))
    for _ in range(3):
        env.step(None)
    with pytest.raises(NotActingError, match="call reset"):
        env.unwrapped.step(None)
    env.reset(seed=1)
    assert env.agents == ["player_0", "player_1", "player_2"]


def test_parallel_env_ignores_idle_agents_actions_in_their_space() -> None:
    par = best_belief_v0.parallel_env(context=example("chen-micali-2016"), seed=0)
    par.reset(seed=0)
    empty = BBAnnouncement(0, Offer.empty(3))
    acts = {a: empty for a in par.agents}
    acts["player_2"] = BBAnnouncement(0, Offer((1, 0, 0), (40, 0, 0)))
    par.step(acts)  # player_2 wins; only player_0 is asked (if the coin says tails)
    if par.agents:
        lay = par.aec.layout
        outside = lay.zeros()
        outside[lay.index["answer"]] = 2
        with pytest.raises(OutOfSpaceError, match="player_1"):
            par.step({"player_0": True, "player_1": outside, "player_2": None})
        idle = lay.zeros()
        idle[lay.index["answer"]] = 1  # not read: player_1 is not asked
        par.step({"player_0": True, "player_1": idle, "player_2": lay.zeros()})
        assert not par.agents


def test_invalid_construction() -> None:
    with pytest.raises(ParameterError, match="eps"):
        best_belief_v0.env(context="chen-micali-2016", eps=2)
    with pytest.raises(ParameterError, match="does not take"):
        best_belief_v0.env(context="chen-micali-2016", delta=1)
    with pytest.raises(ContextError, match="unknown example"):
        best_belief_v0.env(context="no-such-example")
    with pytest.raises(ParameterError, match="render_mode"):
        best_belief_v0.env(context="chen-micali-2016", render_mode="rgb_array")
    env = best_belief_v0.raw_env(generator=UniformGenerator(n=3, m=2))
    with pytest.raises(ContextError, match=r"options\.context"):
        env.reset(
            options={
                "context": example("chen-micali-2016")
                .with_coalitions([[0, 1, 2]])
                .__class__(values=np.zeros((4, 4), dtype=int))
            }
        )


def test_render_ansi_transcript() -> None:
    env = best_belief_v0.env(context="chen-micali-2016", seed=3, render_mode="ansi")
    play_random(env, 3)
    text = env.render()
    assert "[announce] player_0" in text and "[outcome" in text


def test_context_of_the_wrong_kind_is_refused() -> None:
    from mechgym.envs.engine.game import evaluate_exact
    from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue

    with pytest.raises(ContextError, match="needs a 'states' context, got 'auction'"):
        evaluate_exact(PerfectRevenue(), example("chen-micali-2016"), {})
    with pytest.raises(ContextError, match="needs a 'auction' context, got 'market'"):
        best_belief_v0.env(context="market-swap")
