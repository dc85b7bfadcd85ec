"""The TorchRL-native batched env (:mod:`mechgym.integrations.torchrl_batched`): specs on
every mechanism, masked random rollouts with partial resets, seeding, groups, scripted
background players, typed errors, and rewards equal to the exact engine's for the same
actions (``replay_exact``, and the PettingZoo menu env on chance-free mechanisms)."""

from __future__ import annotations

import logging
import pathlib
import re
from collections.abc import Iterator

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchrl")

from mechgym.envs.engine.batched import Rollout, replay_exact  # noqa: E402
from mechgym.envs.engine.errors import (  # noqa: E402
    ContextError,
    IllegalActionError,
    OutOfSpaceError,
    ParameterError,
)
from mechgym.envs.engine.game import Chance, Decision, Terminal, step_decision  # noqa: E402
from mechgym.envs.pettingzoo.registry import available, entry  # noqa: E402
from torchrl.envs.utils import MarlGroupMapType, check_env_specs  # noqa: E402

from mechgym.integrations.torchrl_batched import BatchedMechanismEnv  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
MECHANISMS = [e.name for e in available()]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small tensors: torch's thread pool only adds contention on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    logging.getLogger("torchrl").setLevel(logging.WARNING)
    yield
    torch.set_num_threads(before)


def play_to_end(env: BatchedMechanismEnv, seed: int) -> tuple[dict[str, np.ndarray], int]:
    """Masked random play from a full reset until every episode has ended (no resets);
    returns each group's summed rewards ``(B, g)`` and the number of steps."""
    env.set_seed(seed)
    torch.manual_seed(seed)
    td = env.reset()
    total = {g: np.zeros((env.batch_size[0], len(env.group_players[g]))) for g in env.learners}
    steps = 0
    while not env.api.state.done.all():
        td = env.step(env.rand_action(td))["next"]
        for g in env.learners:
            total[g] += td[g, "reward"].squeeze(-1).numpy()
        steps += 1
        assert steps < 100
    return total, steps


# -- specs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["menu", "multidiscrete"])
@pytest.mark.parametrize("name", MECHANISMS)
def test_check_env_specs(name: str, encoding: str) -> None:
    env = BatchedMechanismEnv(name, 3, action_encoding=encoding, seed=0)
    check_env_specs(env, seed=0)
    n = env.n
    assert env.group_map == {f"player_{i}": [f"player_{i}"] for i in range(n)}
    spec = env.full_action_spec["player_0", "action"]
    assert spec.shape == ((3, 1) if encoding == "menu" else (3, 1, len(env.layout)))
    if encoding == "menu":
        assert env.K == env.menus.K  # the PettingZoo menu encoding's Discrete(K)
    else:
        assert env.layout.mask_size == env.K


# -- rollouts ----------------------------------------------------------------------------------
def test_masked_random_rollout_with_partial_resets() -> None:
    B, T = 16, 12
    env = BatchedMechanismEnv("best_belief", B, generate="uniform:n=3,m=2,cap=10", seed=1)
    torch.manual_seed(1)
    ro = env.rollout(T, break_when_any_done=False)
    assert ro.batch_size == (B, T)
    done = ro["next", "done"].squeeze(-1)
    assert done.any(dim=1).all()  # every slot ended an episode and went on
    for g in env.learners:
        act = ro[g, "action"]
        mask = ro[g, "action_mask"]
        chosen = mask.gather(-1, act.unsqueeze(-1)).squeeze(-1)
        assert chosen.all()  # random actions respect the masks
        idle = ~ro[g, "mask"]
        # an agent that does not act is offered the no-op only
        assert mask[idle].sum(-1).eq(1).all() and mask[idle][..., 0].all()
        reward = ro["next", g, "reward"].squeeze(-1)
        assert (reward[~done] == 0).all()  # rewards arrive when an episode ends
        assert (reward[done] != 0).any()
    # after an ended episode the slot holds a fresh one: it starts at the first phase
    t_done = torch.nonzero(done[:, :-1])
    phase0 = ro["player_0", "observation"][..., 0, 0]  # phase one-hot, first phase
    assert phase0[t_done[:, 0], t_done[:, 1] + 1].eq(1).all()


# torchrl.collectors defines its own deprecated weight updaters when imported
@pytest.mark.filterwarnings("ignore:Creating .*WeightUpdater:DeprecationWarning")
def test_collector_with_masked_policies_and_state() -> None:
    """TorchRL's collector steps the batched env with one masked actor per group."""
    from tensordict.nn import TensorDictModule, TensorDictSequential
    from torchrl.collectors import Collector
    from torchrl.modules import MaskedCategorical, ProbabilisticActor

    B, T = 32, 4
    env = BatchedMechanismEnv("best_belief", B, coalitions=[(0, 2)], return_state=True, seed=5)
    torch.manual_seed(5)
    actors = []
    for g in env.learners:
        net = TensorDictModule(
            torch.nn.Linear(env.obs_size, env.K), [(g, "observation")], [(g, "logits")]
        )
        actors.append(
            ProbabilisticActor(
                net,
                in_keys={"logits": (g, "logits"), "mask": (g, "action_mask")},
                out_keys=[(g, "action")],
                distribution_class=MaskedCategorical,
                return_log_prob=True,
                log_prob_key=(g, "log_prob"),
            )
        )
    collector = Collector(
        env,
        TensorDictSequential(*actors),
        frames_per_batch=B * T,
        total_frames=2 * B * T,
    )
    batches = list(collector)
    collector.shutdown()
    assert len(batches) == 2
    for batch in batches:
        assert batch.batch_size == (B, T)
        assert batch["state"].shape == (B, T, env.state_size)
        assert batch["coalition_0_2", "log_prob"].shape == (B, T, 2)
        assert torch.isfinite(batch["coalition_0_2", "log_prob"]).all()
        assert batch["next", "done"].any()


def test_policy_gradient_learns_truthful_vcg() -> None:
    """REINFORCE on menu entries, player 0 against predicted (truthful) bidders in VCG, where
    truthful bidding is dominant: within seconds the learner earns what truthful play earns,
    well above uniform play."""
    from mechgym.agents.batched import batched_agents
    from mechgym.envs.batched_api import BatchedEnv
    from torchrl.modules import MaskedCategorical

    ref = BatchedEnv("vcg", 4096, seed=1, auto_reset=False)
    ref.reset()
    acts = batched_agents("vcg").predicted.act(ref.rules, ref.ctx, ref.state, [0, 1, 2], ref.rng)
    truthful = float(ref.step({f"player_{i}": acts[:, i] for i in range(3)})[1]["player_0"].mean())

    B, T, g = 512, 4, "player_0"
    env = BatchedMechanismEnv("vcg", B, learners=[g], background="predicted", seed=0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(env.obs_size, 64), torch.nn.Tanh(), torch.nn.Linear(64, env.K)
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    td = env.reset()
    means = []
    for _ in range(30):
        logps, rewards = [], []
        for _ in range(T):  # VCG ends at every step: one sealed bid
            dist = MaskedCategorical(logits=net(td[g, "observation"]), mask=td[g, "action_mask"])
            td[g, "action"] = dist.sample()
            logps.append(dist.log_prob(td[g, "action"])[:, 0])
            out, td = env.step_and_maybe_reset(td)
            assert out["next", "done"].all()
            rewards.append(out["next", g, "reward"][:, 0, 0])
        r = torch.stack(rewards)
        loss = -(torch.stack(logps) * (r - r.mean())).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        means.append(float(r.mean()))
    first, last = np.mean(means[:3]), np.mean(means[-5:])
    assert last > first + 1.0
    assert abs(last - truthful) < 0.4


def test_partial_reset_touches_only_its_slots() -> None:
    env = BatchedMechanismEnv("vcg", 8, record=True, seed=2)
    td = env.reset()
    out = env.step(env.rand_action(td))["next"]
    assert out["done"].all()  # VCG ends after one simultaneous bid
    before = env.api.ctx.values.copy()
    reset = torch.zeros(8, 1, dtype=torch.bool)
    reset[[1, 5]] = True
    out.set("_reset", reset)
    td = env.reset(out)
    keep = np.array([i not in (1, 5) for i in range(8)])
    assert np.array_equal(env.api.ctx.values[keep], before[keep])
    assert not np.array_equal(env.api.ctx.values[[1, 5]], before[[1, 5]])
    assert env.api.state.done.tolist() == keep.tolist()
    assert td["done"].squeeze(-1).tolist() == keep.tolist()
    with pytest.raises(ContextError, match="partial reset"):
        env.recording()  # the slots no longer hold the recorded episodes
    with pytest.raises(ParameterError, match="record"):
        BatchedMechanismEnv("vcg", 2).recording()


def test_seeding_reproduces_and_separates() -> None:
    def run(seed: int) -> torch.Tensor:
        env = BatchedMechanismEnv("perfect_revenue", 8, seed=123)
        env.set_seed(seed)
        torch.manual_seed(seed)
        ro = env.rollout(10, break_when_any_done=False)
        return torch.cat([ro["next", g, "reward"].flatten() for g in env.learners])

    assert torch.equal(run(4), run(4))
    assert not torch.equal(run(4), run(5))
    a = BatchedMechanismEnv("best_belief", 4, seed=9).reset()
    b = BatchedMechanismEnv("best_belief", 4, seed=9).reset()
    assert torch.equal(a["player_1", "observation"], b["player_1", "observation"])


# -- groups -----------------------------------------------------------------------------------
def test_coalition_is_a_group_with_shared_reward() -> None:
    env = BatchedMechanismEnv(
        "best_belief", 32, generate="uniform:n=3,m=2,cap=10", coalitions=[(1, 0)], seed=3
    )
    assert env.group_map == {"coalition_0_1": ["player_0", "player_1"], "player_2": ["player_2"]}
    check_env_specs(env, seed=3)
    assert env.full_observation_spec["coalition_0_1", "observation"].shape[:2] == (32, 2)
    total, _ = play_to_end(env, 3)
    shared = total["coalition_0_1"]
    assert np.allclose(shared[:, 0], shared[:, 1])  # one reward for the coalition
    util = env.rules.utilities(env.api.ctx, env.api.state)
    assert np.allclose(shared[:, 0], util[:, 0] + util[:, 1], atol=1e-4)
    assert np.allclose(total["player_2"][:, 0], util[:, 2], atol=1e-4)


def test_group_maps() -> None:
    env = BatchedMechanismEnv("vcg", 4, generate="uniform:n=3,m=2,coalitions=pair", seed=0)
    assert list(env.group_map) == ["coalition_0_1", "player_2"]
    one = BatchedMechanismEnv("vcg", 4, group_map=MarlGroupMapType.ALL_IN_ONE_GROUP, seed=0)
    assert one.group_map == {"agents": ["player_0", "player_1", "player_2"]}
    check_env_specs(one, seed=0)
    each = BatchedMechanismEnv(
        "vcg",
        4,
        generate="uniform:n=3,m=2,coalitions=random",
        group_map=MarlGroupMapType.ONE_GROUP_PER_AGENT,
        seed=0,
    )
    assert list(each.group_map) == ["player_0", "player_1", "player_2"]
    custom = BatchedMechanismEnv(
        "vcg",
        4,
        group_map={"pair": ["player_2", "player_0"], "other": ["player_1"]},
        learners=["pair"],
        seed=0,
    )
    assert custom.group_players == {"pair": [2, 0]}
    assert custom.scripted_players == [1]
    check_env_specs(custom, seed=0)
    with pytest.raises(ParameterError, match="vary"):
        BatchedMechanismEnv("vcg", 4, generate="uniform:n=3,m=2,coalitions=random")
    with pytest.raises(ParameterError, match="group_map"):
        BatchedMechanismEnv("vcg", 4, group_map={"a": ["player_0", "player_0"]})
    with pytest.raises(ParameterError, match="learners"):
        BatchedMechanismEnv("vcg", 4, learners=["nobody"])


def test_background_players_are_scripted() -> None:
    env = BatchedMechanismEnv(
        "knowledge_benchmark", 16, learners=["player_0"], background="predicted", seed=4
    )
    assert list(env.full_action_spec.keys()) == ["player_0"]
    assert env.scripted_players == [1, 2]
    check_env_specs(env, seed=4)
    # scripted play goes through the same rules: the exact engine agrees on every episode
    rec = BatchedMechanismEnv(
        "collusion_leveraging", 16, learners=["player_1"], background="random", record=True
    )
    play_to_end(rec, 5)
    assert replay_exact(rec.rules, rec.recording()) == []


# -- errors -----------------------------------------------------------------------------------
def test_illegal_actions_raise_typed_errors_and_change_nothing() -> None:
    env = BatchedMechanismEnv("best_belief", 8, seed=6)
    td = env.rand_action(env.reset())
    td = env.rand_action(env.step(td)["next"])  # the respond phase offers 2 of K entries
    mask, acting = td["player_0", "action_mask"][:, 0], td["player_0", "mask"][:, 0]
    rows = torch.nonzero(acting & ~mask.all(-1))[:, 0]
    assert len(rows)
    b = int(rows[0])
    phase = env.api.state.phase.copy()
    bad = td.clone()
    bad["player_0", "action"][b, 0] = int(torch.nonzero(~mask[b])[0, 0])
    with pytest.raises(IllegalActionError, match=f"episode {b}: menu entry .* masked"):
        env.step(bad)
    bad["player_0", "action"][b, 0] = env.K
    with pytest.raises(OutOfSpaceError, match="outside"):
        env.step(bad)
    assert np.array_equal(env.api.state.phase, phase)  # nothing moved
    env.step(td)  # the legal actions still step
    md = BatchedMechanismEnv("vcg", 4, action_encoding="multidiscrete", seed=6)
    td = md.rand_action(md.reset())
    td["player_2", "action"][1, 0, 0] = int(md.layout.sizes[0])
    with pytest.raises(OutOfSpaceError, match="episode 1"):
        md.step(td)
    with pytest.raises(ParameterError, match="action_encoding"):
        BatchedMechanismEnv("vcg", 4, action_encoding="flat")


# -- the exact path ---------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["menu", "multidiscrete"])
@pytest.mark.parametrize(
    "name", ["best_belief", "collusion_leveraging", "perfect_revenue", "budget_balanced_market"]
)
def test_rewards_equal_the_exact_engine(name: str, encoding: str) -> None:
    env = BatchedMechanismEnv(name, 12, action_encoding=encoding, record=True, seed=7)
    total, _ = play_to_end(env, 7)
    ro = env.recording()
    assert replay_exact(env.rules, ro) == []  # masks, acting players, outcomes, rewards
    order = [p for g in env.learners for p in env.group_players[g]]
    for b in range(ro.ctx.B):
        got = np.concatenate([total[g][b] for g in env.learners])
        assert np.allclose(got, exact_rewards(env, ro, b)[order], rtol=0, atol=1e-4)


def exact_rewards(env: BatchedMechanismEnv, ro: Rollout, b: int) -> np.ndarray:
    """Episode ``b`` of a recording played on the exact engine (its logged chance draws):
    the exact rewards of its players."""
    mech, spec, layout = env.api.mech, env.rules.spec, env.layout
    ctx = ro.ctx.context(b)
    draws = [int(c[b]) for c in ro.final.chance if c[b] >= 0]
    st = mech.start(ctx)
    steps = iter(t for t in range(len(ro.actions)) if ro.acting[t][b].any())
    while True:
        node = mech.node(st)
        if isinstance(node, Terminal):
            return np.array([float(r) for r in ctx.rewards(node.outcome)])
        if isinstance(node, Chance):
            st = mech.chance(st, draws.pop(0))
            continue
        assert isinstance(node, Decision)
        t = next(steps)
        acts = {p: mech.decode(st, p, ro.actions[t][b, p], spec, layout) for p in node.players}
        st = step_decision(mech, st, node, acts)


@pytest.mark.parametrize("name", ["vcg", "hope_for_the_best", "naive_market_2"])
def test_menus_and_rewards_equal_the_pettingzoo_menu_env(name: str) -> None:
    """Chance-free mechanisms: the same menu entries, played on the PettingZoo AEC env with
    ``action_encoding="menu"``, meet the same observations, masks and global states, and end
    with the same rewards."""
    module = entry(name).load_env_module()
    gen = BatchedMechanismEnv(name, 1).api.source.base  # the env's default generator
    rng = np.random.default_rng(8)
    family = [gen.sample(rng) for _ in range(6)]
    env = BatchedMechanismEnv(name, 6, contexts=family, record=True, return_state=True, seed=8)
    check_env_specs(env, seed=8)
    env.set_seed(8)
    torch.manual_seed(8)
    td = env.reset()
    contexts = list(env.api.ctx.contexts)
    # per episode, per decision node: (global state, {player: (entry, mask, observation)})
    nodes: list[list[tuple[np.ndarray, dict[int, tuple[int, np.ndarray, np.ndarray]]]]]
    nodes = [[] for _ in range(6)]
    total = np.zeros((6, env.n))
    while not env.api.state.done.all():
        td = env.rand_action(td)
        for b in np.flatnonzero(~env.api.state.done):
            moves = {}
            for g in env.learners:
                for j, p in enumerate(env.group_players[g]):
                    if td[g, "mask"][b, j]:
                        sub = td[g][b, j]
                        moves[p] = (
                            int(sub["action"]),
                            sub["action_mask"].numpy(),
                            sub["observation"].numpy(),
                        )
            nodes[b].append((td["state"][b].numpy(), moves))
        td = env.step(td)["next"]
        for g in env.learners:
            total[:, env.group_players[g]] += td[g, "reward"][..., 0].numpy()
    assert all((c < 0).all() for c in env.recording().final.chance)  # no chance node met
    spec = env.rules.spec
    for b in range(6):
        aec = module.env(
            context=contexts[b],
            action_encoding="menu",
            value_cap=spec.value_cap,
            price_cap=spec.price_cap,
        )
        aec.reset(seed=0)
        at, done_here = 0, 0
        final = np.zeros(env.n)
        for agent in aec.agent_iter():
            obs, reward, term, trunc, _ = aec.last()
            p = int(agent.split("_")[1])
            if term or trunc:
                final[p] = reward
                aec.step(None)
                continue
            state, moves = nodes[b][at]
            if done_here == 0:  # the node's start: nobody has moved yet
                assert np.allclose(aec.state(), state, rtol=0, atol=1e-6)
            k, mask, vector = moves[p]
            assert np.array_equal(obs["action_mask"].astype(bool), mask)
            assert np.allclose(obs["observation"], vector, rtol=0, atol=1e-6)
            aec.step(k)
            done_here += 1
            if done_here == len(moves):
                at, done_here = at + 1, 0
        assert at == len(nodes[b])
        assert np.allclose(final, total[b], rtol=0, atol=1e-4)


# -- README -----------------------------------------------------------------------------------
def test_readme_snippet_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "README.md").read_text()
    part = text.split("**TorchRL, batched.**", 1)[1]
    code = re.search(r"```py\n(.*?)```", part, flags=re.DOTALL)
    assert code is not None
    exec(compile(code.group(1), "README TorchRL batched snippet", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip()
