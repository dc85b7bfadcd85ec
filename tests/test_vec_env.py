"""The vectorised learner env and the batched multi-agent API over the batched path.

* Observations: the batched builder gives, state by state, the exact builder's vector (the
  batched episode is replayed on the exact engine with the same actions and chance draws),
  for every mechanism whose batched rules, agents and menu import.
* The VecEnv: SB3 / sb3-contrib read it (masks through ``env_method("action_masks")``),
  auto-reset with terminal observations, coalition and raw encodings, illegal actions,
  and mean rewards that match the exact expected value of the same profile.
* ``BatchedEnv``: the README example runs; observations equal the PettingZoo env's.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from mechgym.envs.engine.batched import BATCHED_MODULES, ContextBatch, batched_rules
from mechgym.envs.engine.game import Chance, Decision, Terminal, step_decision
from mechgym.envs.pettingzoo.registry import entry
from mechgym.training.encodings import ObservationBuilder, make_encoding

pytest.importorskip("stable_baselines3")

MECHS = [
    "best_belief",
    "normal_form",
    "vcg",
    "knowledge_benchmark",
    "collusion_leveraging",
    "perfect_revenue",
    "budget_balanced_market",
    "second_price_bundle",
    "hope_for_the_best",
]


def _available(name: str) -> bool:
    try:
        importlib.import_module(BATCHED_MODULES[name])
        from mechgym.agents.batched import batched_agents

        return batched_agents(name).menu is not None
    except (ImportError, KeyError):
        return False


def _setup(name: str, count: int, seed: int, price_cap: int | None = None):
    raw = entry(name).load_env_module().raw_env(price_cap=price_cap)
    rng = np.random.default_rng(seed)
    ctxs = [raw.generator.sample(rng) for _ in range(count)]
    raw = entry(name).load_env_module().raw_env(context=ctxs[0], price_cap=price_cap)
    rules = batched_rules(raw.mechanism, raw.spec)
    return raw, rules, ContextBatch.from_contexts(ctxs), ctxs


@pytest.mark.parametrize("name", [m for m in MECHS if _available(m)])
def test_observations_agree_with_the_exact_builder(name: str) -> None:
    from mechgym.agents.batched import batched_agents
    from mechgym.training.batched_obs import BatchedObservationBuilder, padded_menu

    raw, rules, ctx, ctxs = _setup(name, 24, 7)
    mech, spec = raw.mechanism, raw.spec
    agents = entry(name).load_agents()
    enc = make_encoding("menu", name, mech, spec, agents)
    menu_fn = batched_agents(name).menu
    builders = {
        p: ObservationBuilder(enc, (p,), raw.context_class, "symlog", True) for p in range(spec.n)
    }
    pair = ObservationBuilder(enc, (0, 1), raw.context_class, "symlog", True)
    bbuild = {p: BatchedObservationBuilder(b, rules) for p, b in builders.items()}
    bpair = BatchedObservationBuilder(pair, rules)
    rng = np.random.default_rng(3)
    state = rules.reset(ctx, rng)
    steps = []
    predicted = batched_agents(name).predicted
    while not state.done.all():
        obs, menus = {}, {}
        acts = predicted.act(rules, ctx, state, list(range(spec.n)), rng)
        for p in range(spec.n):
            menus[p] = padded_menu(menu_fn, rules, ctx, state, p, enc.K)
            obs[p] = bbuild[p].build(ctx, state, p, menus[p])
            if p < 2:
                obs[("pair", p)] = bpair.build(ctx, state, p, menus[p])
            # half of the players pick a random valid menu entry instead of the prediction
            acts_m, valid = menus[p]
            pick = np.array([rng.choice(np.flatnonzero(v)) if v.any() else 0 for v in valid])
            take = (rng.random(ctx.B) < 0.5) & valid.any(axis=1) & state.acting[:, p]
            acts[take, p] = acts_m[take, pick[take]]
        steps.append((state, acts, obs, menus))
        state = rules.step(ctx, state, acts, rng)
    compared = 0
    for b, c in enumerate(ctxs):
        draws = [int(x[b]) for x in state.chance if x[b] >= 0]
        st = mech.start(c)
        t = 0
        while True:
            node = mech.node(st)
            if isinstance(node, Terminal):
                break
            if isinstance(node, Chance):
                st = mech.chance(st, draws.pop(0))
                continue
            assert isinstance(node, Decision)
            while not steps[t][0].acting[b].any():
                t += 1
            bstate, acts, obs, menus = steps[t]
            assert tuple(np.flatnonzero(bstate.acting[b])) == node.players
            decided = {}
            for p in node.players:
                valid = menus[p][1][b]
                emask = enc.mask(c, st, p)
                # entries the layout cannot express are invalid on the batched path
                assert not (valid & ~emask).any()
                # off-grid entries carry zero summaries on the batched path, as masked ones
                off = np.flatnonzero(emask & ~valid)
                for build, key in ((builders[p], p), (pair, ("pair", p))):
                    if key not in obs:
                        continue
                    want = build.build(c, st, p).copy()
                    start = build.size - enc.summary_size
                    for k in off:
                        want[start + 4 * k : start + 4 * k + 4] = 0.0
                    np.testing.assert_array_equal(obs[key][b], want, err_msg=f"{name} {key}")
                compared += 1
                decided[p] = mech.decode(st, p, acts[b, p], spec, raw.layout)
            st = step_decision(mech, st, node, decided)
            t += 1
    assert compared >= 24


def test_vec_env_runs_maskable_ppo_and_reads_masks() -> None:
    from mechgym.training.algos import configure_torch, make_model
    from mechgym.training.vec_env import VecLearnerEnv
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    configure_torch(1)
    env = VecLearnerEnv("best_belief", 0, n_envs=16, seed=0, learn_phases=("respond",))
    assert is_masking_supported(env)
    obs = env.reset()
    masks = get_action_masks(env)
    assert obs.shape == (16, *env.observation_space.shape)
    assert masks.shape == (16, 14) and masks[:, :2].all() and not masks[:, 2:].any()
    assert env.observation_space.contains(obs[0])
    model = make_model("maskable_ppo", env, seed=0, n_steps=16, batch_size=64)
    model.learn(512)
    assert model.num_timesteps >= 512


def test_auto_reset_rewards_and_terminal_observations() -> None:
    from mechgym.training.vec_env import VecLearnerEnv

    env = VecLearnerEnv("best_belief", 1, n_envs=32, seed=1)
    env.seed(5)
    env.reset()
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(20):
        m = env.action_masks()
        a = np.array([rng.choice(np.flatnonzero(r)) for r in m])
        obs, rew, done, infos = env.step(a)
        assert not np.isnan(obs).any()
        for b in np.flatnonzero(done):
            term = infos[b]["terminal_observation"]
            assert term.shape == env.observation_space.shape
            assert (term[env.builder.base_size :] == 0).all()
            finished += 1
        assert (rew[~done] == 0).all()
    assert finished > 0


def test_seeded_runs_repeat() -> None:
    from mechgym.training.vec_env import VecLearnerEnv

    def run() -> list[np.ndarray]:
        env = VecLearnerEnv("best_belief", 0, n_envs=8, seed=3)
        env.seed(11)
        out = [env.reset()]
        for _ in range(6):
            m = env.action_masks()
            obs, rew, _done, _ = env.step(np.argmax(m, axis=1))
            out += [obs, rew]
        return out

    for a, b in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_mean_reward_matches_the_exact_expected_value() -> None:
    """The learner answers YES always (menu entry 1) against predicted play on one context;
    the batched episodes' mean reward estimates the exact expected value."""
    from mechgym.agents.base import PhasePolicy
    from mechgym.agents.best_belief import PredictedSeed000
    from mechgym.envs.engine.game import evaluate_exact
    from mechgym.envs.model.examples import example
    from mechgym.training.vec_env import VecLearnerEnv

    ctx = example("chen-micali-2016")
    env = VecLearnerEnv("best_belief", 2, n_envs=256, context=ctx, seed=0)
    env.reset()
    rewards = []
    for _ in range(60):
        m = env.action_masks()
        # announce: the prediction (entry 3 = rank-0 bundle, factor 1); respond: YES
        a = np.where(m[:, 2], 3, 1)
        _, rew, done, _ = env.step(a)
        rewards.extend(rew[done].tolist())

    class Yes:
        def act(self, mech, c, state, player):
            return True

    prof = {p: PredictedSeed000(ctx) for p in range(3)}
    prof[2] = PhasePolicy(PredictedSeed000(ctx), {"respond": Yes()})
    ev = evaluate_exact(env.mech, ctx, prof)
    exact = float(sum(pr * ctx.rewards(o)[2] for pr, o in ev.outcomes))
    r = np.asarray(rewards)
    assert len(r) > 5000
    assert abs(r.mean() - exact) < 4 * r.std() / np.sqrt(len(r)) + 1e-9


def test_coalition_learner_acts_member_by_member() -> None:
    from mechgym.training.vec_env import VecLearnerEnv

    env = VecLearnerEnv("best_belief", (0, 1), n_envs=8, seed=0)
    obs = env.reset()
    # at the simultaneous announcement both members decide, one step each
    assert (env.turn == 0).all()
    member = obs[:, env.builder.base_size : env.builder.base_size + 2]
    assert (member == [1, 0]).all()
    obs, _, done, _ = env.step(np.full(8, 3))
    assert not done.any() and (env.turn == 1).all()
    assert (obs[:, env.builder.base_size : env.builder.base_size + 2] == [0, 1]).all()
    assert env.ctx is not None and (env.ctx.coalition[:, :2] == 0).all()
    assert env.ctx.shared_reward.all()


def test_raw_encoding_and_illegal_actions() -> None:
    from mechgym.envs.engine.errors import ActionError
    from mechgym.training.vec_env import VecLearnerEnv

    env = VecLearnerEnv("vcg", 0, n_envs=4, encoding="raw", seed=0)
    env.reset()
    masks = env.action_masks()
    assert masks.shape == (4, env.rules.layout.mask_size)
    acts = np.zeros((4, len(env.rules.layout)), dtype=np.int64)
    acts[0, 0] = 10**6  # outside the space: penalised
    _, rew, done, infos = env.step(acts)
    assert done[0] and rew[0] == -env.illegal_penalty and "illegal" in infos[0]
    strict = VecLearnerEnv("vcg", 0, n_envs=4, encoding="raw", seed=0, illegal="raise")
    strict.reset()
    with pytest.raises(ActionError, match="player_0"):
        strict.step(acts)


def test_learned_opponents_play_batched_as_exact() -> None:
    """A model playing the batched path picks, episode by episode, the exact policy's action."""
    from mechgym.training.algos import configure_torch, make_model
    from mechgym.training.batched_obs import BatchedLearned
    from mechgym.training.policies import LearnedPolicy
    from mechgym.training.vec_env import VecLearnerEnv

    configure_torch(1)
    env = VecLearnerEnv("best_belief", 0, n_envs=8, seed=0)
    model = make_model("maskable_ppo", env, seed=0)
    exact_pol = LearnedPolicy(model, env.builder, cache=False)
    pol = BatchedLearned(exact_pol)
    _, _, ctx, ctxs = _setup("best_belief", 16, 2)
    rules = env.rules
    state = rules.reset(ctx, np.random.default_rng(0))
    acts = pol.act(rules, ctx, state, [0, 2], np.random.default_rng(0))
    mech = env.mech
    for b, c in enumerate(ctxs):
        st = mech.start(c)
        for p in (0, 2):
            want = exact_pol.act(mech, c, st, p)
            got = mech.decode(st, p, acts[b, p], env.env_spec, env.rules.layout)
            assert got == want


README_BLOCK = re.compile(r"<!-- batched-api-example -->\s*```python\n(.*?)```", re.S)


def test_readme_batched_api_example_runs() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    match = README_BLOCK.search(text)
    if match is None:
        pytest.skip("README has no batched API example yet")
    exec(compile(match.group(1), "README.md", "exec"), {})


def test_batched_env_matches_the_pettingzoo_observation() -> None:
    from mechgym.envs.batched_api import BatchedEnv
    from mechgym.envs.model.examples import example

    ctx = example("chen-micali-2016")
    env = BatchedEnv("best_belief", 4, context=ctx)
    obs, info = env.reset(seed=0)
    aec = entry("best_belief").load_env_module().raw_env(context=ctx)
    aec.reset(seed=0)
    for a in env.agents:
        np.testing.assert_array_equal(obs[a]["observation"][0], aec.observe(a)["observation"])
        np.testing.assert_array_equal(obs[a]["action_mask"][0], aec.observe(a)["action_mask"])
    assert info["acting"]["player_0"].all()


def test_batched_env_steps_rejects_and_auto_resets() -> None:
    from mechgym.envs.batched_api import BatchedEnv
    from mechgym.envs.engine.batched import sample_actions
    from mechgym.envs.engine.errors import ActionError

    env = BatchedEnv("best_belief", 64, "uniform:n=3,m=2,cap=10", seed=0)
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    bad = {a: np.full((64, len(env.layout)), 99) for a in env.agents}
    with pytest.raises(ActionError, match="player_0"):
        env.step(bad)
    ended = 0
    for _ in range(6):
        acts = {a: sample_actions(env.layout, obs[a]["action_mask"], rng) for a in env.agents}
        obs, rew, term, trunc, info = env.step(acts)
        done = term["player_0"]
        ended += int(done.sum())
        assert (rew["player_0"][~done] == 0).all() and not trunc["player_0"].any()
        if done.any():
            assert len(info["final_episodes"]) == int(done.sum())
    assert ended > 0
    assert not info["done"].any()  # auto-reset keeps every slot live
    still = BatchedEnv("best_belief", 8, "uniform:n=3,m=2,cap=10", auto_reset=False)
    obs, _ = still.reset(seed=0)
    for _ in range(4):
        acts = {a: sample_actions(still.layout, obs[a]["action_mask"], rng) for a in still.agents}
        obs, *_rest, info = still.step(acts)
    assert info["done"].all()


@pytest.mark.parametrize(
    "scheme",
    [
        "independent",
        pytest.param("ibr", marks=pytest.mark.slow),
        pytest.param("selfplay", marks=pytest.mark.slow),
    ],
)
def test_multilearner_schemes_on_the_vector_env(scheme: str, tmp_path: Path) -> None:
    from mechgym.training.algos import configure_torch
    from mechgym.training.metrics import evaluate_profile
    from mechgym.training.multi import MultiLearner
    from mechgym.training.vec_env import VecLearnerEnv

    configure_torch(1)

    tr = MultiLearner(
        "best_belief",
        scheme=scheme,
        n_envs=8,
        seed=0,
        generator="uniform:n=3,m=2,cap=10,belief=noisy",
        hyper={"n_steps": 8, "batch_size": 64, "n_epochs": 1},
    )
    assert all(isinstance(e, VecLearnerEnv) for e in tr.envs.values())
    tr.train_round(64)
    tr.train_round(64)  # trained models now play the others, batched
    assert tr.total_steps == 2 * 64 * 3
    from mechgym.envs.model.examples import example

    met = evaluate_profile(
        tr.mech,
        tr.agents,
        [example("chen-micali-2016")],
        tr.profile(),
        tr.groups,
        tr.envs[tr.groups[0]].encoding,
        exploitability=False,
    )
    assert set(met.agreement) == {"announce", "respond"} or set(met.agreement) == {"announce"}
    tr.save(tmp_path / "ck")
    again = MultiLearner.resume(
        tmp_path / "ck", generator="uniform:n=3,m=2,cap=10,belief=noisy", n_envs=8
    )
    assert again.round == 2


def test_bench_training_reports_single_vector_and_batched() -> None:
    from mechgym.training.bench import training_speed

    res = training_speed(
        single_steps=64, vector_steps=256, n_envs=16, batched_decisions=512, batch_size=64
    )
    for kind, n in (("single", 1), ("vector", 16)):
        r = res[kind]
        assert r["n_envs"] == n and r["steps_per_second"] > 0 and 0 < r["env_share"] < 1
    assert res["speedup"] > 0
    b = res["batched"]
    assert b["batch_size"] == 64 and b["learners"] == 3 and b["decisions"] >= 512
    assert b["decisions_per_second"] > 0
    assert b["ratio_to_vector"] == b["decisions_per_second"] / res["vector"]["steps_per_second"]


def test_sb3_vec_wrappers_keep_masks_and_episodes() -> None:
    """SB3's own VecEnv wrappers sit on top: VecMonitor reports episodes, VecNormalize
    normalises observations, and masks still reach sb3-contrib through them."""
    from mechgym.training.vec_env import VecLearnerEnv
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize
    from stable_baselines3.common.vec_env.util import obs_space_info

    env = VecNormalize(VecMonitor(VecLearnerEnv("vcg", 0, n_envs=8, seed=0)), norm_reward=False)
    _, shapes, dtypes = obs_space_info(env.observation_space)
    assert shapes[None] == env.observation_space.shape and dtypes[None] == np.float32
    assert is_masking_supported(env)
    env.reset()
    episodes = 0
    for _ in range(3):
        masks = get_action_masks(env)
        assert masks.shape == (8, 4)
        _, _, done, infos = env.step(np.argmax(masks, axis=1))
        episodes += sum("episode" in infos[b] for b in np.flatnonzero(done))
    assert episodes == 24  # one report per episode: VCG ends after one decision


@pytest.mark.parametrize("n_envs", [1, 8])
def test_train_command_takes_n_envs(n_envs: int, tmp_path: Path) -> None:
    """``--n-envs 1`` is the exact single env, more slots the vector env; both report it."""
    import json

    import typer
    from mechgym.training.algos import configure_torch
    from mechgym.training.commands import add_commands
    from typer.testing import CliRunner

    configure_torch(1)
    app = typer.Typer()
    add_commands(app)
    out = tmp_path / "run"
    args = ["train", "vcg", "--example", "ausubel-milgrom", "--steps", "64"]
    args += ["--n-envs", str(n_envs), "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert report["n_envs"] == n_envs and report["steps"] >= 64


# -- the features against an oracle on structured actions ------------------------------------
def _oracle_value(ctx, player: int, item: int) -> float:
    """θ_i(item) for a bundle, less the endowment's value in markets, θ_i(ω) for a state."""
    if ctx.kind == "states":
        return float(ctx.value(player, item))
    value = float(ctx.values[player][item])
    if ctx.kind == "market":
        value -= float(ctx.endowed_value(player))
    return value


def _oracle_summary(ctx, player: int, action, question) -> list[float]:
    """The module docstring's summary of one structured menu action, read from its fields."""
    out = [0.0] * 4
    bundle = getattr(action, "bundle", None)
    values = getattr(ctx, "values", None)
    if isinstance(bundle, int | np.integer) and values is not None:
        out[0] = float(values[player][int(bundle)])
    offer = getattr(action, "offer", action)
    rev = getattr(offer, "revenue", None)
    if isinstance(rev, int | np.integer | float):
        out[1] = float(rev)
    report = getattr(action, "valuation", action)
    if (
        values is not None
        and isinstance(report, tuple)
        and len(report) == len(values[player])
        and all(isinstance(x, int | np.integer) and not isinstance(x, bool) for x in report)
    ):
        out[2] = float(sum(report) - int(np.sum(values[player])))
    if isinstance(action, bool | np.bool_) and action and question is not None:
        out[3] = _oracle_value(ctx, player, question[0]) - question[1]
    return out


@pytest.mark.parametrize("name", [m for m in MECHS if _available(m)])
def test_question_and_summaries_match_an_oracle_on_structured_actions(name: str) -> None:
    """The features are computed once, from the array layout; here they are recomputed from
    the structured menu actions and the context's own values, at exact states of random play."""
    from mechgym.envs.engine.game import sample_chance
    from mechgym.training.encodings import symlog

    raw = entry(name).load_env_module().raw_env(seed=0)
    spec = raw.spec
    spec = type(spec)(spec.n, spec.m, spec.value_cap, max(spec.price_cap, 2 * spec.value_cap))
    mech = raw.mechanism
    enc = make_encoding("menu", name, mech, spec, entry(name).load_agents())
    builders = {p: ObservationBuilder(enc, (p,), raw.context_class) for p in range(spec.n)}
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(6):
        ctx = raw.generator.sample(rng)
        st = mech.start(ctx)
        while True:
            node = mech.node(st)
            if isinstance(node, Terminal):
                break
            if isinstance(node, Chance):
                st = mech.chance(st, sample_chance(node, rng))
                continue
            actions = {}
            for p in node.players:
                b = builders[p]
                obs = b.build(ctx, st, p)
                q = mech.pending_offer(st, p)
                qs = b.base_size
                want_q = np.zeros(4, np.float32)
                if q is not None:
                    v = _oracle_value(ctx, p, q.item)
                    want_q[:] = (1.0, *symlog(np.array([v, q.price, v - q.price])))
                np.testing.assert_allclose(obs[qs : qs + 4], want_q, rtol=1e-6, atol=1e-6)
                menu = enc.menu(ctx, st, p)
                mask = enc.mask(ctx, st, p)
                summ = obs[qs + 4 :].reshape(enc.K, 4)
                qq = None if q is None else (q.item, q.price)
                for k, (_, a) in enumerate(menu):
                    want = symlog(np.array(_oracle_summary(ctx, p, a, qq), dtype=np.float32))
                    np.testing.assert_allclose(summ[k], want, rtol=1e-6, atol=1e-6, err_msg=f"{k}")
                assert not summ[len(menu) :].any()
                checked += 1
                actions[p] = menu[int(rng.choice(np.flatnonzero(mask)))][1]
            st = mech.resolve(st, actions)
    assert checked >= 6
