"""The learner env: Gymnasium/SB3 env checks, encodings, observations, seeding, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from mechgym.envs.engine.errors import ActionError, IllegalActionError, ParameterError
from mechgym.envs.model.examples import example
from mechgym.envs.model.family import ContextFamily
from mechgym.envs.model.generators import make_generator
from mechgym.envs.pettingzoo.registry import available
from mechgym.training.learner_env import (
    LearnerEnv,
    align_context,
    as_group,
    group_value,
)
from stable_baselines3.common.env_checker import check_env as sb3_check_env

SPEC = "uniform:n=3,m=2,cap=10,belief=wrong"


def _menu_mechanisms() -> list:
    out = []
    for e in available():
        try:
            agents = e.load_agents()
        except (ImportError, KeyError) as exc:
            out.append(
                pytest.param(
                    e.name,
                    marks=pytest.mark.skip(reason=f"{e.name}: no scripted agents yet ({exc})"),
                )
            )
            continue
        if agents.menu is None or agents.menu_size is None:
            out.append(
                pytest.param(
                    e.name, marks=pytest.mark.skip(reason=f"{e.name}: agents register no menu yet")
                )
            )
            continue
        out.append(e.name)
    return out


MECHS = _menu_mechanisms()


def _env(mech: str, learner, encoding: str, seed: int = 0, **kw) -> LearnerEnv:
    # auction mechanisms get a small generated family; others their env's default contexts
    if mech in ("best_belief", "normal_form", "vcg"):
        kw.setdefault("generator", SPEC)
    return LearnerEnv(mech, learner, encoding=encoding, seed=seed, **kw)


@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("encoding", ["menu", "raw"])
@pytest.mark.parametrize("learner", [0, (0, 1)])
def test_env_checkers(mech: str, encoding: str, learner) -> None:
    gym_check_env(_env(mech, learner, encoding), skip_render_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(_env(mech, learner, encoding), warn=False)


@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("encoding", ["menu", "raw"])
def test_masked_random_play_and_observations(mech: str, encoding: str) -> None:
    env = _env(mech, 1, encoding, seed=3)
    obs, _ = env.reset(seed=5)
    episodes = 0
    for _ in range(150):
        assert env.observation_space.contains(obs)
        p = env.acting
        # the one learner env's observation is the exact builder's at the exact state
        np.testing.assert_allclose(
            obs, env.builder.build(env.ctx, env.game_state, p), rtol=1e-6, atol=1e-6
        )
        mask = env.action_masks()
        assert mask.any()
        action = env.action_space.sample(mask=_split(env, mask.astype(np.int8)))
        obs, reward, term, _, info = env.step(action)
        assert "illegal" not in info
        if term:
            assert float(eval_fraction(info["exact_reward"])) == reward
            episodes += 1
            obs, _ = env.reset()
    assert episodes > 10


def _split(env: LearnerEnv, mask: np.ndarray):
    if not hasattr(env.action_space, "nvec"):
        return mask
    cuts = np.cumsum(env.action_space.nvec)[:-1]
    return tuple(np.split(mask, cuts))


def eval_fraction(text: str):
    from fractions import Fraction

    return Fraction(text)


@pytest.mark.parametrize("mech", MECHS)
def test_menu_contains_prediction(mech: str) -> None:
    env = _env(mech, 0, "menu", seed=1)
    agents = env.agents
    for k in range(40):
        env.reset(seed=k)
        p, ctx, state = env.acting, env.ctx, env.game_state
        pred = agents.predicted(ctx).act(env.mech, ctx, state, p)
        idx = env.encoding.encode(ctx, state, p, pred)
        assert idx is not None, f"prediction {pred!r} not in the menu"
        assert env.action_masks()[idx]
        assert env.encoding.decode(ctx, state, p, idx) == pred


def test_seeding_is_deterministic() -> None:
    def rollout(seed: int) -> list:
        env = _env("best_belief", 2, "menu", seed=99, opponents="random")
        obs, _ = env.reset(seed=seed)
        out = [obs.copy()]
        for _ in range(30):
            a = int(np.flatnonzero(env.action_masks())[-1])
            obs, r, term, _, _ = env.step(a)
            out.append((obs.copy(), r))
            if term:
                obs, _ = env.reset()
                out.append(obs.copy())
        return out

    a, b, c = rollout(7), rollout(7), rollout(8)
    assert all(
        np.array_equal(
            np.asarray(x[0] if isinstance(x, tuple) else x),
            np.asarray(y[0] if isinstance(y, tuple) else y),
        )
        for x, y in zip(a, b, strict=True)
    )
    assert [x[1] for x in a if isinstance(x, tuple)] == [x[1] for x in b if isinstance(x, tuple)]
    assert any(
        not np.array_equal(
            np.asarray(x[0] if isinstance(x, tuple) else x),
            np.asarray(y[0] if isinstance(y, tuple) else y),
        )
        for x, y in zip(a, c, strict=True)
    )


def test_learn_phases_scripts_other_phases() -> None:
    env = _env("best_belief", 0, "menu", seed=0, learn_phases=("respond",))
    for k in range(20):
        env.reset(seed=k)
        assert env.mech.node(env.game_state).phase == "respond"
        # the learner's own announcement was the prediction
        d = env.game_state.state.data
        pred = env.agents.predicted(env.ctx)
        want = pred.act(env.mech, env.ctx, env.mech.start(env.ctx), 0)
        assert int(d["bundle"][0, 0]) == want.bundle
        assert tuple(d["alloc"][0, 0]) == want.offer.alloc
        assert tuple(d["prices"][0, 0]) == want.offer.prices
        assert env.step(1)[2]


def test_coalition_learner_acts_for_members_with_shared_reward() -> None:
    ctx = example("ausubel-milgrom")
    env = LearnerEnv("vcg", (1, 2), context=ctx, seed=0)
    obs, info = env.reset(seed=0)
    assert info["player"] == 1 and env.builder.member_size == 2
    assert obs[env.builder.base_size : env.builder.base_size + 2].tolist() == [1.0, 0.0]
    obs, r, term, _, info = env.step(3)  # overbid
    assert not term and env.acting == 2
    assert obs[env.builder.base_size : env.builder.base_size + 2].tolist() == [0.0, 1.0]
    obs, r, term, _, info = env.step(3)
    assert term and r == 10.0  # Ausubel-Milgrom: both losers win a good at price 0
    assert info["exact_reward"] == "10"


def test_align_context_and_group_value() -> None:
    ctx = example("ausubel-milgrom-independent")
    aligned = align_context(ctx, (1, 2))
    assert aligned.coalitions == ((0,), (1, 2)) and aligned.shared_reward
    assert align_context(aligned, (1, 2)) is aligned
    from mechgym.envs.engine.game import step_decision
    from mechgym.envs.mechanisms.vcg import VCG

    mech = VCG()
    reports = {0: (0, 0, 0, 20), 1: (0, 20, 0, 20), 2: (0, 0, 20, 20)}
    s = mech.start(aligned)
    o = mech.node(step_decision(mech, s, mech.node(s), reports)).outcome
    assert group_value(aligned, o, (1, 2)) == 10
    assert group_value(aligned, o, (0,)) == 0


def test_illegal_actions_penalty_and_raise() -> None:
    env = _env("best_belief", 0, "menu", learn_phases=("respond",))
    env.reset(seed=0)
    _, r, term, _, info = env.step(5)  # respond menu has 2 entries
    assert term and r == -10.0 and "menu entry 5 is masked" in info["illegal"]
    strict = _env("best_belief", 0, "menu", learn_phases=("respond",), illegal="raise")
    strict.reset(seed=0)
    with pytest.raises(IllegalActionError, match="player_0 in phase 'respond'"):
        strict.step(5)
    with pytest.raises(ActionError):
        strict.step(np.array([1, 2]))
    raw = _env("best_belief", 0, "raw", illegal="raise")
    raw.reset(seed=0)
    with pytest.raises(IllegalActionError, match="field 'owner_0'"):
        raw.step(np.array([0, 0, 1, 0, 0, 0, 0]))  # player 0 may not own a good


def test_bad_configuration_errors() -> None:
    with pytest.raises(ParameterError, match="learn_phases"):
        _env("best_belief", 0, "menu", learn_phases=("bid",))
    with pytest.raises(ParameterError, match="outside"):
        _env("best_belief", 5, "menu")
    with pytest.raises(ParameterError, match="encoding"):
        _env("best_belief", 0, "bits")
    with pytest.raises(ParameterError, match="opponent"):
        _env("best_belief", 0, "menu", opponents="psychic")
    with pytest.raises(ParameterError, match="coalition"):
        as_group("1,x")
    # a learner that can never decide in its phases is reported, not looped on forever
    ctx = example("chen-micali-2016")  # player 2 has the best belief, wins and is never asked
    env = LearnerEnv("best_belief", 2, context=ctx, learn_phases=("respond",), max_skips=20, seed=0)
    with pytest.raises(ParameterError, match="no decision"):
        env.reset(seed=0)


def test_context_family_draws_from_its_list() -> None:
    gen = make_generator(SPEC)
    rng = np.random.default_rng(0)
    fam = [gen.sample(rng) for _ in range(3)]
    env = LearnerEnv("best_belief", 0, contexts=fam, seed=0)
    seen = set()
    for k in range(30):
        env.reset(seed=k)
        seen.add(id(env.ctx))
    assert seen == {id(c) for c in fam}
    assert ContextFamily(tuple(fam)).value_cap == max(c.value_cap for c in fam)


def test_one_family_draws_the_same_contexts_on_both_paths() -> None:
    """The exact face (``sample(rng)``) and the batched one (``FamilySampler``) share one
    draw rule: the same seed picks the same contexts, one at a time or ``B`` at once."""
    from mechgym.envs.batched_api import context_source
    from mechgym.envs.engine.errors import ContextError
    from mechgym.envs.model.family import FamilySampler

    gen = make_generator(SPEC)
    rng = np.random.default_rng(0)
    fam = ContextFamily(tuple(gen.sample(rng) for _ in range(5)))
    one = [fam.sample(np.random.default_rng(9)) for _ in range(1)]
    a = np.random.default_rng(3)
    exact = [fam.contexts.index(fam.sample(a)) for _ in range(40)]
    source = context_source(generator=fam)
    assert isinstance(source, FamilySampler) and source.contexts == fam.contexts
    batch = source.sample(40, np.random.default_rng(3))
    assert batch.B == 40
    want = FamilySampler(fam).batch.take(np.asarray(exact))
    np.testing.assert_array_equal(batch.values, want.values)
    # a family of one context consumes no randomness on either path
    single = ContextFamily(tuple(one))
    b, c = np.random.default_rng(4), np.random.default_rng(4)
    single.sample(b)
    FamilySampler(single).sample(16, b)
    assert b.random() == c.random()
    with pytest.raises(ContextError, match="at least one context"):
        ContextFamily(())
    other = make_generator("uniform:n=2,m=2,cap=10").sample(rng)
    with pytest.raises(ContextError, match="same kind, n and m"):
        ContextFamily((*fam.contexts, other))


def test_learner_env_over_a_given_raw_env() -> None:
    from mechgym.envs.pettingzoo.registry import entry

    raw = entry("vcg").load_env_module().raw_env(context="ausubel-milgrom", seed=0)
    env = LearnerEnv(raw, (1, 2), seed=0)
    assert env.mech is raw.mechanism and env.mech_name == "vcg" and env.ctx is None
    env.reset(seed=0)
    env.step(3)
    assert env.step(3)[1] == 10.0
    with pytest.raises(ParameterError, match="brings its own"):
        LearnerEnv(raw, 0, context=example("ausubel-milgrom"))
