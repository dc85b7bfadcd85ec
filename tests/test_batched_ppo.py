"""The batched PPO learner (:mod:`mechgym.training.batched_ppo`): seeded learning smoke
tests in the menu and multidiscrete encodings, coalitions, shared parameters, determinism,
the acting mask in GAE and in the loss, and the learned policy in its batched, exact and
saved forms."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchrl")

from mechgym.envs.engine.batched import ContextBatch, batched_rules  # noqa: E402
from mechgym.envs.engine.errors import ContextError, ParameterError  # noqa: E402
from mechgym.envs.pettingzoo.registry import entry  # noqa: E402
from mechgym.training.batched_policy import BatchedLearnedPolicy  # noqa: E402
from mechgym.training.batched_ppo import (  # noqa: E402
    BatchedPPO,
    BatchedPPOConfig,
    ppo_loss,
    train_batched,
)
from mechgym.training.metrics import evaluate_profile  # noqa: E402

from mechgym.integrations.torchrl_batched import BatchedMechanismEnv  # noqa: E402

AGENTS = entry("best_belief").load_agents()


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def held_out(k: int = 24, seed: int = 4321) -> list:
    gen = entry("best_belief").load_env_module().raw_env().generator
    rng = np.random.default_rng(seed)
    return [gen.sample(rng) for _ in range(k)]


def agreement(policy: BatchedLearnedPolicy, contexts: list, phase: str = "respond") -> float:
    """Exact agreement with the prediction of player 0's learned play (others predicted)."""
    mech = policy.exact_mechanism()
    met = evaluate_profile(mech, AGENTS, contexts, policy.profile(), [(0,)], exploitability=False)
    assert met.agreement_mass[phase] > 3  # the phase was reached in these contexts
    return met.agreement[phase]


def random_answers_agreement(contexts: list) -> float:
    """The same figure for random YES/NO answers (the baseline a learner must beat)."""
    mech = entry("best_belief").load_env_module().raw_env().mechanism
    dev = AGENTS.deviations["random_answers"]
    rng = np.random.default_rng(0)

    def profile(ctx):
        pred = AGENTS.predicted(ctx)
        return {0: dev(ctx, rng), 1: pred, 2: pred}

    met = evaluate_profile(mech, AGENTS, contexts, profile, [(0,)], exploitability=False)
    return met.agreement["respond"]


@pytest.fixture(scope="module")
def menu_run():
    return train_batched(
        "best_belief",
        encoding="menu",
        decisions=24_000,
        batch_size=512,
        seed=0,
        learners=["player_0"],
    )


# -- learning ------------------------------------------------------------------------------
def test_menu_learner_finds_the_predicted_play(menu_run) -> None:
    contexts = held_out()
    assert agreement(menu_run.policy, contexts, "announce") >= 0.95
    learned = agreement(menu_run.policy, contexts)
    assert learned >= 0.95
    assert learned > random_answers_agreement(contexts) + 0.2
    rewards = [h["reward"]["player_0"] for h in menu_run.history]
    assert np.mean(rewards[-3:]) > np.mean(rewards[:3])  # from random init, it improves


def test_multidiscrete_learner_finds_the_predicted_answers() -> None:
    run = train_batched(
        "best_belief",
        encoding="multidiscrete",
        decisions=40_000,
        batch_size=512,
        seed=0,
        learners=["player_0"],
    )
    contexts = held_out()
    learned = agreement(run.policy, contexts)
    assert learned >= 0.9
    assert learned > random_answers_agreement(contexts) + 0.2


def player_0_learns(encoding: str, decisions: int, **env_kwargs) -> Any:
    """Player 0 learning from random weights against predicted play (1024 episodes a step)."""
    return train_batched(
        "best_belief",
        encoding=encoding,
        decisions=decisions,
        batch_size=1024,
        seed=0,
        learners=["player_0"],
        env_kwargs=env_kwargs or None,
    )


@pytest.fixture(scope="module")
def factored_run():
    return player_0_learns("factored", 50_000)


@pytest.fixture(scope="module")
def continuous_run():
    return player_0_learns("continuous", 50_000)


@pytest.fixture(scope="module")
def featured_run():
    return player_0_learns("factored", 30_000, features=True)


def test_factored_learner_finds_the_predicted_answers(factored_run) -> None:
    """Sub-decisions (one env step each, the move so far in the observation): the learned
    YES/NO agrees with the prediction on held-out contexts."""
    contexts = held_out()
    learned = agreement(factored_run.policy, contexts)
    assert learned >= 0.9
    assert learned > random_answers_agreement(contexts) + 0.2


def test_continuous_learner_finds_the_predicted_answers(continuous_run) -> None:
    """Amounts from a Beta head, entries from a masked categorical: the learned YES/NO
    agrees with the prediction on held-out contexts."""
    contexts = held_out()
    learned = agreement(continuous_run.policy, contexts)
    assert learned >= 0.9
    assert learned > random_answers_agreement(contexts) + 0.2


def test_continuous_move_log_prob_reads_the_box_only_where_it_is_read() -> None:
    from mechgym.training.batched_ppo import MaskedCategoricalBeta

    logits = torch.randn(4, 5 + 2)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[:, 3:] = False
    reads = torch.tensor([True, False, True, False])
    dist = MaskedCategoricalBeta(logits, mask, reads)
    move = dist.sample()
    assert move.shape == (4, 2)
    assert (move[:, 0] < 3).all()  # masked entries are never drawn
    assert ((move[:, 1] > 0) & (move[:, 1] < 1)).all()
    assert torch.equal(move[~reads, 1], torch.full((2,), 0.5))
    other = move.clone()
    other[:, 1] = 0.9
    lp, lq = dist.log_prob(move), dist.log_prob(other)
    assert torch.equal(lp[~reads], lq[~reads])  # an unread box changes nothing
    assert not torch.equal(lp[reads], lq[reads])
    h = dist.entropy()
    cat_only = MaskedCategoricalBeta(logits, mask, torch.zeros(4, dtype=torch.bool)).entropy()
    assert torch.equal(h[~reads], cat_only[~reads]) and not torch.equal(h[reads], cat_only[reads])


def test_continuous_policy_survives_save_and_load(continuous_run, tmp_path) -> None:
    policy = continuous_run.policy
    loaded = BatchedLearnedPolicy.load(policy.save(tmp_path / "m1c.pt"))
    env = BatchedMechanismEnv(
        "best_belief", 64, learners=["player_0"], action_encoding="continuous", seed=5
    )
    td = env.reset()
    for _ in range(6):  # into the amount sub-decisions, where the box is read
        a = policy.env_actions(td.clone(), env)
        b = loaded.env_actions(td.clone(), env)
        assert torch.equal(a["player_0", "action"], b["player_0", "action"])
        assert torch.equal(a["player_0", "box"], b["player_0", "box"])
        td = env.step_and_maybe_reset(a)[1]


def test_coalition_is_one_learning_group_and_improves() -> None:
    run = train_batched(
        "best_belief",
        encoding="menu",
        decisions=16_000,
        batch_size=256,
        seed=1,
        coalitions=[(0, 1)],
        learners=["coalition_0_1"],
    )
    assert run.groups == {"coalition_0_1": [0, 1]}
    assert run.policy.seats == {0: 0, 1: 0}  # one actor for the coalition
    rewards = [h["reward"]["coalition_0_1"] for h in run.history]
    assert np.mean(rewards[-3:]) > np.mean(rewards[:3])


def test_shared_parameters_play_every_player() -> None:
    run = train_batched(
        "best_belief",
        encoding="menu",
        decisions=6_000,
        batch_size=256,
        seed=0,
        share_parameters=True,
    )
    assert len(run.policy.actors) == 1
    assert run.policy.seats == {0: 0, 1: 0, 2: 0}
    independent = train_batched(
        "best_belief", encoding="menu", decisions=6_000, batch_size=256, seed=0
    )
    assert len(independent.policy.actors) == 3


def test_same_seed_same_parameters() -> None:
    def params(seed: int) -> list[torch.Tensor]:
        run = train_batched(
            "best_belief",
            encoding="multidiscrete",
            decisions=3_000,
            batch_size=128,
            seed=seed,
            learners=["player_0"],
        )
        return [p.detach().clone() for p in run.policy.actors.parameters()]

    a, b, c = params(3), params(3), params(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_bad_settings_raise_typed_errors() -> None:
    with pytest.raises(ParameterError, match="decisions"):
        train_batched("best_belief", decisions=0)
    with pytest.raises(ParameterError, match="epochs"):
        train_batched("best_belief", decisions=10, epochs=0)
    with pytest.raises(ParameterError, match="lmbda"):
        train_batched("best_belief", decisions=10, lmbda=1.5)
    with pytest.raises(ParameterError, match="epoch"):
        train_batched("best_belief", decisions=10, epoch=3)  # a typo of epochs
    with pytest.raises(ParameterError, match="action_encoding"):
        train_batched("best_belief", decisions=10, encoding="boxes")


# -- the acting mask -----------------------------------------------------------------------
def small_learner(encoding: str = "menu", **cfg) -> BatchedPPO:
    env = BatchedMechanismEnv("best_belief", 64, action_encoding=encoding, seed=0)
    torch.manual_seed(0)
    return BatchedPPO(env, BatchedPPOConfig(batch_size=64, **cfg))


def test_gae_bootstraps_across_steps_where_the_agent_does_not_act() -> None:
    ppo = small_learner(rollout_steps=4, gamma=1.0, lmbda=1.0)
    data = ppo.collect()
    g = "player_0"
    acting = data[g, "mask"][..., 0]
    idle = ~acting
    assert idle.any() and acting.any()  # M1: an agent not asked sits out the respond step
    ended = data["next", "done"][..., 0]
    # episodes of different lengths: at one step some slots end (and restart), others go on
    assert (ended.any(0) & ~ended.all(0)).any()
    with torch.no_grad():
        ppo.gaes[g](data)
    adv = data[g, "advantage"][..., 0, 0]
    value = data[g, "state_value"][..., 0, 0]
    with torch.no_grad():  # the values taken during collection are the critic's
        assert torch.allclose(value, ppo.nets.critic[g](data[g, "observation"])[..., 0, 0])
    reward = data["next", g, "reward"][..., 0, 0]
    done = data["next", g, "done"][..., 0, 0]
    # with gamma = lmbda = 1 an acting step's advantage is the rest of its episode's reward
    # (paid at the episode's last step, acting or not) minus its value, or, in an episode
    # cut by the rollout's end, that plus the value of the state where the cut falls
    B, T = acting.shape
    for b in range(B):
        for t in range(T):
            if not acting[b, t]:
                continue
            ret, u = 0.0, t
            while True:
                ret += float(reward[b, u])
                if done[b, u]:
                    break
                if u == T - 1:
                    with torch.no_grad():
                        nxt = ppo.nets.critic[g](data["next", g, "observation"][b, u, 0])
                    ret += float(nxt)
                    break
                u += 1
            assert float(adv[b, t]) == pytest.approx(ret - float(value[b, t]), abs=1e-4)


def test_loss_ignores_transitions_where_the_agent_does_not_act() -> None:
    ppo = small_learner(rollout_steps=2)
    data = ppo.collect()
    ppo.advantages(data)
    flat = data.reshape(-1)
    g = "player_0"
    idle = ~flat[g, "mask"][:, 0]
    assert idle.any()
    base = ppo_loss({g: ppo.losses[g]}, flat, critic_coef=0.0).detach()
    # actions, log-probs and advantages of idle transitions change nothing
    other = flat.clone()
    other[g, "action_log_prob"][idle] = -5.0
    other[g, "advantage"][idle] = 100.0
    assert float(ppo_loss({g: ppo.losses[g]}, other, critic_coef=0.0).detach()) == pytest.approx(
        float(base), abs=1e-6
    )
    # an acting transition's advantage does change it
    acting = torch.nonzero(~idle)[0, 0]
    other[g, "advantage"][acting] += 10.0
    assert float(ppo_loss({g: ppo.losses[g]}, other, critic_coef=0.0).detach()) != pytest.approx(
        float(base), abs=1e-6
    )


# -- the learned policy --------------------------------------------------------------------
@pytest.mark.parametrize("run", ["menu_run", "factored_run", "continuous_run", "featured_run"])
def test_batched_and_exact_forms_play_the_same_actions(run: str, request) -> None:
    policy = request.getfixturevalue(run).policy
    mech, spec = policy.exact_mechanism(), policy.spec
    rules = batched_rules(mech, spec)
    contexts = held_out(12, seed=99)
    rng = np.random.default_rng(0)
    batch = ContextBatch.from_contexts(contexts)
    state = rules.reset(batch, rng)
    acts = policy.act(rules, batch, state, [0], rng)
    exact = policy.exact()
    layout = mech.layout(spec)
    for b, ctx in enumerate(contexts):
        s = mech.start(ctx)
        want = mech.encode(s, 0, exact.act(mech, ctx, s, 0), spec, layout)
        assert np.array_equal(acts[b, 0], want)


def test_learned_policy_is_a_background_player(menu_run) -> None:
    env = BatchedMechanismEnv(
        "best_belief",
        32,
        learners=["player_1"],
        background={0: menu_run.policy, 2: "predicted"},
        seed=0,
    )
    td = env.reset()
    for _ in range(3):
        td = env.step_and_maybe_reset(env.rand_action(td))[1]
    assert env.scripted_players == [0, 2]


def test_save_and_load_keep_the_choices(menu_run, tmp_path) -> None:
    policy = menu_run.policy
    path = policy.save(tmp_path / "m1.pt")
    loaded = BatchedLearnedPolicy.load(path)
    assert loaded.seats == policy.seats and loaded.spec == policy.spec
    env = BatchedMechanismEnv("best_belief", 64, learners=["player_0"], seed=5)
    td = env.reset()
    a = policy.env_actions(td.clone(), env)
    b = loaded.env_actions(td.clone(), env)
    for g in env.learners:
        assert torch.equal(a[g, "action"], b[g, "action"])
    assert agreement(loaded, held_out(8)) >= 0.9
    (tmp_path / "junk.pt").write_bytes(b"not a policy")
    with pytest.raises(ContextError, match="not a batched policy"):
        BatchedLearnedPolicy.load(tmp_path / "junk.pt")
    with pytest.raises(ContextError, match="no policy file"):
        BatchedLearnedPolicy.load(tmp_path / "missing.pt")


@pytest.mark.slow
def test_every_player_learning_at_once_finds_the_predicted_answers() -> None:
    """Self-play from random init, every player learning in the factored encoding (10^6
    decisions): the learned YES/NO of all three agrees with the prediction on held-out
    contexts (the offers are the study's question, not asserted here)."""
    run = train_batched(
        "best_belief", encoding="factored", decisions=1_000_000, batch_size=4096, seed=0
    )
    policy = run.policy
    met = evaluate_profile(
        policy.exact_mechanism(),
        AGENTS,
        held_out(32, 7),
        policy.profile(),
        [(0,), (1,), (2,)],
        exploitability=False,
    )
    assert met.agreement["respond"] >= 0.9


def test_exact_policy_remembers_states_of_one_context_only(factored_run) -> None:
    exact = factored_run.policy.exact()
    mech = factored_run.policy.exact_mechanism()
    a, b = held_out(2, seed=11)
    sa, sb = mech.start(a), mech.start(b)
    first = exact.act(mech, a, sa, 0)
    assert exact.act(mech, a, sa, 0) is first  # the same state again: remembered
    other = exact.act(mech, b, sb, 0)  # another context: computed afresh
    assert exact._ctx is b and list(exact._memo) == [(sb, 0)]
    assert other == exact._act(mech, b, sb, 0)


def test_question_features_are_the_exact_learners(featured_run) -> None:
    """With ``features=True`` the env appends the pending question (own value of the offered
    item, its price, their difference) after the AEC vector, as the exact builder does."""
    from mechgym.training.batched_obs import pending_question as batched_question
    from mechgym.training.encodings import pending_question, question_vector

    assert featured_run.policy.features
    env = BatchedMechanismEnv(
        "best_belief", 32, learners=["player_0"], action_encoding="menu", features=True, seed=3
    )
    plain = BatchedMechanismEnv("best_belief", 32, learners=["player_0"], seed=3)
    assert env.obs_size == plain.obs_size + 4
    td, mech, asked = env.reset(), env.api.mech, 0
    for _ in range(4):
        obs = td["player_0", "observation"][:, 0].numpy()
        ctx, state = env.api.ctx, env.api.state
        live_asked, item, price = batched_question(env.rules, state, 0)
        for b in range(32):
            c = ctx.context(b)
            q = None if not live_asked[b] else (int(item[b]), int(price[b]))
            assert np.allclose(obs[b, -4:], question_vector(c, 0, q))
            asked += int(live_asked[b])
        td = env.step_and_maybe_reset(env.rand_action(td))[1]
    assert asked > 0  # some episodes reached a question
    # the exact form reads the same features from engine states (the mechanism's question)
    c = held_out(1, seed=5)[0]
    assert question_vector(c, 0, pending_question(mech, c, mech.start(c), 0))[0] == 0.0
    assert agreement(featured_run.policy, held_out()) >= 0.9


def test_bench_times_the_batched_learner_in_menu_and_factored() -> None:
    from mechgym.training.bench import batched_speeds

    out = batched_speeds("best_belief", 2_000, 256, 1000.0)
    assert set(out["by_encoding"]) == {"menu", "factored"}
    assert out["encoding"] == "menu" and out["decisions_per_second"] > 0
    for enc, r in out["by_encoding"].items():
        assert r["encoding"] == enc and r["learners"] == 3 and r["torch_threads"] >= 1
        assert r["decisions"] >= 2_000
        assert r["ratio_to_vector"] == pytest.approx(r["decisions_per_second"] / 1000.0)


def test_imitation_of_the_layout_and_factored_moves_and_refusal_for_boxes() -> None:
    """The teacher's moves are read in the env's encoding: the layout holds every predicted
    move (expressible 1.0) and the clone improves on random weights; factored sub-decisions
    build toward the move (exact bundles and answers, prices to the nearest level of the
    grid); continuous amounts have no entry to imitate."""
    from mechgym.envs.engine.errors import ParameterError
    from mechgym.training.batched_ppo import BatchedPPO, BatchedPPOConfig

    from mechgym.integrations.torchrl_batched import BatchedMechanismEnv

    torch.manual_seed(0)
    cfg = BatchedPPOConfig(batch_size=128)
    env = BatchedMechanismEnv("vcg", cfg.batch_size, action_encoding="multidiscrete", seed=0)
    before = BatchedPPO(env, cfg, seed=0).imitate(512, epochs=0)
    after = BatchedPPO(env, cfg, seed=0).imitate(4096, epochs=30)
    assert before["expressible"] == after["expressible"] == 1.0
    assert after["agreement"] > before["agreement"]
    fac = BatchedMechanismEnv("best_belief", 128, action_encoding="factored", seed=0)
    untrained = BatchedPPO(fac, cfg, seed=0).imitate(4096, epochs=0)
    clone = BatchedPPO(fac, cfg, seed=0).imitate(4096, epochs=20)
    assert 0.5 < clone["expressible"] < 1.0  # the price grid comes near BB_i's offers only
    assert clone["agreement"] > untrained["agreement"] + 0.1
    # on the players' own lower bounds every BB_i-optimal price is a grid point
    olb = BatchedMechanismEnv(
        "best_belief", 128, action_encoding="factored", price_grid="own-lower-bounds", seed=0
    )
    assert BatchedPPO(olb, cfg, seed=0).imitate(4096, epochs=0)["expressible"] == 1.0
    box = BatchedMechanismEnv("best_belief", 16, action_encoding="continuous", seed=0)
    with pytest.raises(ParameterError, match="read from a box"):
        BatchedPPO(box, cfg, seed=0).imitate(64)


def test_critic_warmup_fits_the_clone_s_returns_and_leaves_the_actors() -> None:
    """``warm_critics``: only the critics move (the cloned actors keep every parameter), and
    their loss on the clone's returns falls (toward the returns' own variance over contexts
    and chance); a negative count is refused."""
    from mechgym.envs.engine.errors import ParameterError
    from mechgym.training.batched_ppo import BatchedPPO, BatchedPPOConfig

    from mechgym.integrations.torchrl_batched import BatchedMechanismEnv

    torch.manual_seed(0)
    cfg = BatchedPPOConfig(batch_size=256, learning_rate=1e-2)
    env = BatchedMechanismEnv("best_belief", cfg.batch_size, action_encoding="menu", seed=0)
    ppo = BatchedPPO(env, cfg, seed=0)
    ppo.imitate(1024, epochs=2)
    actors = [p.detach().clone() for a in ppo.nets.distinct_actors for p in a.parameters()]
    critics = [p.detach().clone() for c in ppo.nets.critic.values() for p in c.parameters()]
    out = ppo.warm_critics(10)
    assert out["updates"] == 10 and out["decisions"] >= 10 * 256
    assert out["critic_loss_last"] < out["critic_loss_first"]
    after = [p for a in ppo.nets.distinct_actors for p in a.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(actors, after, strict=True))
    moved = [p for c in ppo.nets.critic.values() for p in c.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(critics, moved, strict=True))
    assert ppo.warm_critics(0)["critic_loss_first"] is None
    with pytest.raises(ParameterError, match="critic_warmup"):
        ppo.warm_critics(-1)


# -- best-response rounds: one group learns, the others frozen ------------------------------
def _params(ppo: BatchedPPO, g: str) -> list[torch.Tensor]:
    nets = (ppo.nets.actor[g], ppo.nets.critic[g])
    return [p.detach().clone() for n in nets for p in n.parameters()]


@pytest.mark.parametrize("encoding", ["factored", "continuous"])
def test_one_group_learns_while_the_others_stay_frozen(encoding: str) -> None:
    """``train(learners=[g])``: only g's actor and critic move, only g's decisions count
    toward the budget, and the result names g alone."""
    ppo = small_learner(encoding)
    before = {g: _params(ppo, g) for g in ppo.groups}
    res = ppo.train(300, learners=["player_1"])
    assert res.groups == {"player_1": [1]} and not res.idle
    assert res.decisions >= 300 and res.updates >= 1
    assert set(res.history[0]["reward"]) == {"player_1"}
    for g in ppo.groups:
        same = all(torch.equal(a, b) for a, b in zip(before[g], _params(ppo, g), strict=True))
        assert same == (g != "player_1"), g


def test_frozen_groups_play_their_mode_and_learners_sample() -> None:
    """In a collection with ``explore=[g]`` every other group's action is its actor's mode
    (argmax under the mask) wherever it acts; g's sampled actions are not all modes."""
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    ppo = small_learner("menu")
    data = ppo.collect(explore=["player_0"])
    flat = data.reshape(-1)
    for g in ppo.groups:
        keys = [(g, "features"), (g, "action_mask")]
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            mode = ppo.actors[g](flat.select(*keys).clone())[g, "action"]
        acting = flat[g, "mask"]
        assert acting.any()
        same = (mode == flat[g, "action"])[acting]
        assert bool(same.all()) == (g != "player_0"), g


def test_a_learner_the_others_never_reach_stops_as_idle() -> None:
    """M6 with the proposer announcing an invalid price sum (it halts at step 1a): a
    responder never acts, so training gives up after MAX_IDLE_COLLECTS empty collections
    instead of waiting for decisions that never come."""
    env = BatchedMechanismEnv(
        "budget_balanced_market",
        64,
        action_encoding="factored",
        learners=["player_1"],
        background="invalid_sum",
        seed=0,
    )
    torch.manual_seed(0)
    ppo = BatchedPPO(env, BatchedPPOConfig(batch_size=64))
    before = _params(ppo, "player_1")
    res = ppo.train(1000)
    assert res.idle and res.decisions == 0 and res.updates == 0
    assert res.frames == BatchedPPO.MAX_IDLE_COLLECTS * 64 * ppo.cfg.rollout_steps
    assert all(torch.equal(a, b) for a, b in zip(before, _params(ppo, "player_1"), strict=True))


def test_bad_learner_subsets_are_refused() -> None:
    ppo = small_learner("menu")
    with pytest.raises(ParameterError, match="player_7"):
        ppo.train(10, learners=["player_7"])
    with pytest.raises(ParameterError, match="learners"):
        ppo.train(10, learners=[])
    with pytest.raises(ParameterError, match="explore"):
        ppo.train(10, learners=["player_0"], explore=["nobody"])
    env = BatchedMechanismEnv("best_belief", 64, action_encoding="menu", seed=0)
    shared = BatchedPPO(env, BatchedPPOConfig(batch_size=64), share_parameters=True)
    with pytest.raises(ParameterError, match="share one actor"):
        shared.train(10, learners=["player_0"])


def test_mixed_groups_play_one_past_actor_per_episode() -> None:
    """Fictitious play's population: a ``mixed`` group plays, in each episode, the mode of
    one of its snapshots, drawn uniformly when the episode starts; every snapshot is played
    and nothing else is. Training against the mixture leaves the snapshots untouched."""
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    ppo = small_learner("factored")
    ppo.snapshot("player_2")
    with torch.no_grad():  # a second, different actor
        for p in ppo.nets.actor["player_2"].parameters():
            p.add_(torch.randn_like(p))
    ppo.snapshot("player_2")
    data = ppo.collect(explore=["player_0", "player_1"], mixed=["player_2"])
    flat = data.reshape(-1)
    keys = [("player_2", "features"), ("player_2", "action_mask")]
    modes = []
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        for module, _ in ppo.history["player_2"]:
            modes.append(module(flat.select(*keys).clone())["player_2", "action"])
    acting = flat["player_2", "mask"]
    played = flat["player_2", "action"]
    as_first, as_second = (modes[0] == played)[acting], (modes[1] == played)[acting]
    assert bool((as_first | as_second).all())
    assert bool((as_first & ~as_second).any()) and bool((as_second & ~as_first).any())
    before = [p.detach().clone() for m, _ in ppo.history["player_2"] for p in m.parameters()]
    ppo.train(300, learners=["player_0"], mixed=["player_1", "player_2"][1:])
    after = [p for m, _ in ppo.history["player_2"] for p in m.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    with pytest.raises(ParameterError, match="history"):
        ppo.train(10, learners=["player_0"], mixed=["player_1"])
    with pytest.raises(ParameterError, match="history"):
        ppo.train(10, learners=["player_2"], mixed=["player_2"])
