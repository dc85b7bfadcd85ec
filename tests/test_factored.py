"""The factored and continuous encodings on the exact path: exact masks (every open entry
leads to a legal move, a closed one is refused), the price grids and the one rounding rule,
the same composition as the batched path on the same choices, no solver and no predicted
agent anywhere in them, Gymnasium/SB3 checks of the learner envs, and a seeded MaskablePPO
smoke test."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mechgym.envs.batched_api import BatchedEnv
from mechgym.envs.engine.batched import BATCHED_MODULES, ContextBatch
from mechgym.envs.engine.errors import IllegalActionError, OutOfSpaceError
from mechgym.envs.engine.factored import Composer, FactoredPlan, field_value, make_plan
from mechgym.envs.engine.game import Decision, Terminal
from mechgym.envs.pettingzoo.registry import available, entry

ENTRIES = available()
ENCODINGS = ("factored", "continuous")


def legal_entries(env: Any) -> np.ndarray:
    return np.flatnonzero(env.observe(env.agent_selection)["action_mask"])


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_every_open_entry_leads_to_a_legal_move(e: Any, encoding: str, data: Any, seed: int):
    env = e.load_env_module().raw_env(seed=seed, action_encoding=encoding)
    env.reset(seed=seed)
    D = env.composer.plan.D
    for _ in range(200):
        if isinstance(env.node, Terminal):
            break
        agent = env.agent_selection
        legal = legal_entries(env)
        closed = np.setdiff1d(np.arange(D), legal)
        x = np.array([data.draw(st.floats(0.0, 1.0), label="box")])

        def wrap(c: int, x: np.ndarray = x) -> Any:
            return c if encoding == "factored" else (c, x)

        if len(closed):
            before = env.observe(agent)["observation"].copy()
            with pytest.raises(IllegalActionError, match="masked"):
                env.step(wrap(int(data.draw(st.sampled_from(closed.tolist())))))
            assert np.array_equal(env.observe(agent)["observation"], before)
        env.step(wrap(int(data.draw(st.sampled_from(legal.tolist()), label="entry"))))
    assert isinstance(env.node, Terminal)


def test_goods_given_away_are_not_offered_again() -> None:
    env = entry("best_belief").load_env_module().raw_env(seed=0, action_encoding="factored")
    env.reset(seed=0)
    steps = [s.label for s in env.composer.plan.steps]
    assert steps[:3] == ["answer", "bundle", "owner bundle for player 0"]
    env.step(3)  # ξ_0 = both goods
    # player 0 offers nothing to itself (not asked); player 1: any bundle of the free goods
    assert env.composer.label(0) == "owner bundle for player 1"
    assert legal_entries(env).tolist() == [0, 1, 2, 3]
    env.step(1)  # good 0 to player 1
    assert env.composer.label(0) == "price for player 1"
    env.step(5)
    assert env.composer.label(0) == "owner bundle for player 2"
    assert legal_entries(env).tolist() == [0, 2]  # good 0 is gone
    env.step(2)
    env.step(0)
    assert env.agent_selection == "player_1"  # player 0's move is complete
    move = env._buffer[0]
    assert move.bundle == 3 and move.offer.alloc == (0, 1, 2)
    grid = env.composer.plan._fractions
    field = env.layout.sizes[env.layout.index["price_1"]]
    assert move.offer.prices[1] == 1 + round(grid[5] * (field - 1))
    # the other agents see nothing of it: their view carries only their own move
    feat = env.composer.plan.feature_size
    assert not env.observe("player_2")["observation"][-feat:][env.composer.plan.S + 1 :].any()


def test_grids_and_the_one_rounding_rule() -> None:
    allowed = np.ones((1, 20), dtype=bool)
    x = np.array([[0.0, 0.5, 1.0, 1.5, -1.0, np.nan]])
    assert field_value(x, allowed).tolist() == [[0, 10, 19, 19, 0, 0]]  # 9.5 rounds up
    holes = np.zeros((1, 9), dtype=bool)
    holes[0, [2, 5, 6]] = True
    # scaled over the legal span 2..6, then the next allowed value at or above
    assert field_value(np.array([[0.0, 0.3, 0.5, 1.0]]), holes).tolist() == [[2, 5, 5, 6]]
    env = entry("best_belief").load_env_module().raw_env(seed=0)
    lay = env.layout
    lin = FactoredPlan(lay, 3, 2, price_levels=4)
    geo = FactoredPlan(lay, 3, 2, price_levels=4, price_grid="geometric")
    masks = env.mechanism.action_mask(
        env.mechanism.start(env.generator.sample(np.random.default_rng(0))), 0, env.spec, lay
    )
    act = np.zeros((1, len(lay)), dtype=np.int64)
    act[0, lay.index["owner_0"]] = 2  # good 0 to player 1
    k = next(i for i, s in enumerate(lin.steps) if s.label == "price for player 1")
    valid, value = lin.options(k, masks[None], act, None)
    assert value[0, valid[0]].tolist() == [0, 6, 13, 19]  # 4 levels over field values 0..19
    valid, value = geo.options(k, masks[None], act, None)
    v = value[0, valid[0]].tolist()
    assert v[0] == 0 and v[-1] == 19 and v[1] - v[0] < v[-1] - v[-2]  # denser near 0


def test_own_lower_bound_grid_reads_only_the_players_own_bounds() -> None:
    env = (
        entry("best_belief")
        .load_env_module()
        .raw_env(
            context="chen-micali-2016",
            seed=0,
            action_encoding="factored",
            price_grid="own-lower-bounds",
        )
    )
    env.reset(seed=0)
    ctx = env.context
    env.step(0)  # ξ_0 = nothing
    env.step(2)  # good 1 to player 1
    assert env.composer.label(0) == "price for player 1"
    mask = env.observe("player_0")["action_mask"]
    prices = sorted({0, *(int(v) for v in np.asarray(ctx.lower)[0, 1, 1:])})
    expected = sorted({max(p - 1, 0) for p in prices})  # field value = price - 1 (M1)
    assert env.composer._value[0, mask.astype(bool)].tolist() == expected


def test_exact_and_batched_paths_compose_alike() -> None:
    """Same contexts, same sub-decisions: each player sees the same masks and own-move
    features at every sub-decision of the first node on both paths, and the moves they
    compose are the same."""
    rng = np.random.default_rng(7)
    for name in BATCHED_MODULES:
        if name == "mixture":
            continue
        mod = entry(name).load_env_module()
        gen = mod.raw_env(seed=1).generator
        ctxs = [gen.sample(rng) for _ in range(4)]
        for encoding in ENCODINGS:
            benv = BatchedEnv(name, 4, contexts=ctxs, seed=0, action_encoding=encoding)
            obs, _ = benv.reset(options={"contexts": ContextBatch.from_contexts(ctxs)})
            fd = benv.factored
            F = fd.plan.feature_size
            moves: dict[int, np.ndarray] = {}
            actions = fd.actions

            def spy(idx: np.ndarray, actions: Any = actions, moves: Any = moves) -> np.ndarray:
                out = actions(idx)
                for j, b in enumerate(np.asarray(idx).tolist()):
                    moves.setdefault(int(b), out[j].copy())
                return out

            fd.actions = spy  # a spy on our own driver: what resolves each first node
            trace: dict[tuple[int, str], list[Any]] = {}
            for _ in range(60):
                if len(moves) == 4:
                    break
                comp = fd.composing()
                acts = {}
                for i, a in enumerate(benv.agents):
                    m = obs[a]["action_mask"].astype(bool)
                    c = (rng.random(m.shape) * m).argmax(axis=1)
                    x = rng.random(4)
                    for b in np.flatnonzero(comp[:, i]):
                        if int(b) in moves:
                            continue
                        rec = (m[b].copy(), obs[a]["observation"][b, -F:].copy(), c[b], x[b])
                        trace.setdefault((int(b), a), []).append(rec)
                    acts[a] = c if encoding == "factored" else (c, x)
                obs, *_ = benv.step(acts)
            assert len(moves) == 4
            for b, ctx in enumerate(ctxs):
                spec = benv.spec
                env = mod.raw_env(
                    context=ctx,
                    seed=0,
                    action_encoding=encoding,
                    value_cap=spec.value_cap,
                    price_cap=spec.price_cap,
                )
                env.reset(seed=0)
                node, start = env.node, env.game_state
                assert isinstance(node, Decision)
                for p in node.players:
                    a = f"player_{p}"
                    steps = trace.get((b, a)) or [(None, None, 0, 0.0)]
                    for mask, feat, c, x in steps:
                        assert env.agent_selection == a
                        o = env.observe(a)
                        if mask is not None:
                            assert np.array_equal(o["action_mask"].astype(bool), mask), (name, b)
                            assert np.array_equal(o["observation"][-F:], feat), (name, b)
                        env.step(int(c) if encoding == "factored" else (int(c), np.array([x])))
                _, (_, exact, _) = next(h for h in env.history if h[0] == "decision")
                for p in node.players:
                    batched = env.mechanism.decode(start, p, moves[b][p], env.spec, env.layout)
                    assert env.mechanism.validate(start, p, batched) == exact[p], (
                        name,
                        encoding,
                        b,
                    )


# -- no solver, no predicted agent ------------------------------------------------------------
class _Armed:
    on = False


def _guard(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _Armed.on:
            raise AssertionError(f"{name} was called while an encoding was in use")
        return fn(*args, **kwargs)

    return wrapper


def _rules_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The mechanism's own rules may use solvers (VCG's Clarke payments): disarm inside."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was, _Armed.on = _Armed.on, False
        try:
            return fn(*args, **kwargs)
        finally:
            _Armed.on = was

    return wrapper


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every function of the solvers and of the mechanisms' agent modules (predicted play,
    deviations, menus), and their classes' constructors and ``act``, raise while armed,
    wherever they were imported to."""
    import mechgym.agents
    import mechgym.envs.solvers

    originals: dict[int, Callable[..., Any]] = {}
    for pkg in (mechgym.envs.solvers, mechgym.agents):
        for info in pkgutil.iter_modules(pkg.__path__):
            if pkg is mechgym.agents and info.name in ("base", "batched"):
                continue  # registries and random play, no predictions
            mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            for attr, obj in list(vars(mod).items()):
                if getattr(obj, "__module__", None) != mod.__name__:
                    continue
                if inspect.isfunction(obj):
                    g = _guard(f"{mod.__name__}.{attr}", obj)
                    originals[id(obj)] = g
                    monkeypatch.setattr(mod, attr, g)
                elif inspect.isclass(obj):
                    for meth, f in list(vars(obj).items()):
                        if inspect.isfunction(f) and meth in ("__init__", "act", "__call__"):
                            monkeypatch.setattr(obj, meth, _guard(f"{obj.__name__}.{meth}", f))
    for modname, mod in list(sys.modules.items()):
        if not modname.startswith("mechgym") or mod is None:
            continue
        for attr, obj in list(vars(mod).items()):
            if id(obj) in originals and inspect.isfunction(obj):
                monkeypatch.setattr(mod, attr, originals[id(obj)])
    yield
    _Armed.on = False


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_encodings_never_call_a_solver_or_a_predicted_agent(guarded: None, encoding: str) -> None:
    from mechgym.training.learner_env import LearnerEnv
    from torchrl.envs.utils import MarlGroupMapType

    from mechgym.integrations.torchrl_batched import BatchedMechanismEnv

    rng = np.random.default_rng(0)
    for e in ENTRIES:
        env = e.load_env_module().raw_env(
            seed=0, action_encoding=encoding, price_grid="own-lower-bounds"
        )
        for meth in ("resolve", "chance", "node", "start"):
            setattr(env.mechanism, meth, _rules_only(getattr(env.mechanism, meth)))
        _Armed.on = True
        env.reset(seed=0)
        for _ in range(3):
            while not isinstance(env.node, Terminal):
                c = int(rng.choice(legal_entries(env)))
                env.step(c if encoding == "factored" else (c, np.array([rng.random()])))
            env.reset()
        _Armed.on = False
    for name in ("best_belief", "collusion_leveraging", "budget_balanced_market"):
        b = BatchedEnv(name, 8, seed=0, action_encoding=encoding)
        for meth in ("step", "reset"):
            setattr(b.rules, meth, _rules_only(getattr(b.rules, meth)))
        _Armed.on = True
        obs, _ = b.reset(seed=0)
        for _ in range(10):
            acts = {}
            for a in b.agents:
                m = obs[a]["action_mask"].astype(bool)
                c = (rng.random(m.shape) * m).argmax(axis=1)
                acts[a] = c if encoding == "factored" else (c, rng.random(8))
            obs, *_ = b.step(acts)
        _Armed.on = False
        tr = BatchedMechanismEnv(
            name,
            4,
            group_map=MarlGroupMapType.ONE_GROUP_PER_AGENT,
            action_encoding=encoding,
            seed=0,
        )
        for meth in ("step", "reset"):
            setattr(tr.rules, meth, _rules_only(getattr(tr.rules, meth)))
        _Armed.on = True
        td = tr.reset()
        for _ in range(10):
            td = tr.step(tr.rand_action(td))["next"]
            if td["done"].all():
                td = tr.reset()
        _Armed.on = False
        learner = LearnerEnv(
            name, 0, encoding=encoding, opponents="random", scripted="random", seed=0
        )
        for meth in ("step", "reset"):
            setattr(learner.core.rules, meth, _rules_only(getattr(learner.core.rules, meth)))
        learner.mech.node = _rules_only(learner.mech.node)
        _Armed.on = True
        learner.reset(seed=0)
        for _ in range(30):
            m = learner.action_masks()
            c = int(rng.choice(np.flatnonzero(m)))
            a = c if encoding == "factored" else rng.random(2).astype(np.float32)
            _, _, done, _, _ = learner.step(a)
            if done:
                learner.reset()
        _Armed.on = False


def test_the_guard_catches_predicted_play_and_solvers(guarded: None) -> None:
    """The no-solver test can fail: predicted opponents and the menu are caught."""
    from mechgym.training.learner_env import LearnerEnv

    env = LearnerEnv("best_belief", 0, encoding="factored", opponents="predicted", seed=0)
    _Armed.on = True
    with pytest.raises(AssertionError, match="was called"):
        env.reset()
        for _ in range(20):  # the others play once the learner's move is complete
            env.step(int(np.flatnonzero(env.action_masks())[0]))
    _Armed.on = False
    raw = entry("best_belief").load_env_module().raw_env(seed=0, action_encoding="menu")
    _Armed.on = True
    with pytest.raises(AssertionError, match="was called"):
        raw.reset(seed=0)
        raw.observe("player_0")


# -- learner envs ------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", ["best_belief", "perfect_revenue", "budget_balanced_market"])
def test_learner_envs_pass_the_checkers(name: str, encoding: str) -> None:
    from mechgym.training.learner_env import LearnerEnv
    from mechgym.training.vec_env import VecLearnerEnv
    from stable_baselines3.common.env_checker import check_env

    env = LearnerEnv(name, 0, encoding=encoding, opponents="random", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 advises a symmetric Box; [0, 1] is the design
        check_env(env)
    vec = VecLearnerEnv(name, 0, n_envs=4, encoding=encoding, opponents="random", seed=0)
    assert vec.observation_space == env.observation_space
    assert vec.action_space == env.action_space
    obs = vec.reset()
    assert obs.shape == (4, *env.observation_space.shape)
    if encoding == "factored":
        bad = np.full(4, env.encoding.plan.D)
        vec.illegal = "raise"
        with pytest.raises(OutOfSpaceError, match="outside"):
            vec.step(bad)


def test_maskable_ppo_learns_truthful_value_reports_from_scratch() -> None:
    from mechgym.envs.model.examples import example
    from mechgym.training.algos import make_model
    from mechgym.training.batched_obs import BatchedLearned
    from mechgym.training.learner_env import LearnerEnv
    from mechgym.training.metrics import evaluate_exact
    from mechgym.training.policies import LearnedPolicy

    ctx = example("ausubel-milgrom")
    env = LearnerEnv("vcg", 0, context=ctx, seed=0, encoding="factored")
    truthful = env.agents.predicted(ctx)
    model = make_model("maskable_ppo", env, seed=0)

    def value() -> Any:
        pol = LearnedPolicy(model, env.builder)
        ev = evaluate_exact(env.mech, ctx, {0: pol, 1: truthful, 2: truthful})
        return ev.coalition_utility((0,))

    start = value()
    model.learn(2048)
    honest = evaluate_exact(env.mech, ctx, dict.fromkeys(range(3), truthful)).coalition_utility(
        (0,)
    )
    assert start < honest  # the untrained reports lose utility
    assert value() == honest  # three value levels learned to win both goods at VCG prices
    # the batched policy composes the same move as the exact one
    pol = LearnedPolicy(model, env.builder)
    rules = BatchedEnv("vcg", 1, context=ctx).rules
    batch = ContextBatch.from_contexts([ctx])
    state = rules.reset(batch, np.random.default_rng(0))
    arr = BatchedLearned(pol).act(rules, batch, state, [0], np.random.default_rng(0))[0, 0]
    st0 = env.mech.start(ctx)
    exact = env.mech.encode(
        st0, 0, pol.act(env.mech, ctx, st0, 0), env.env_spec, env.encoding.layout
    )
    assert np.array_equal(arr, exact)


def test_plan_of_every_mechanism_is_built_from_the_layout_alone() -> None:
    for e in ENTRIES:
        env = e.load_env_module().raw_env(seed=0)
        m = env.spec.m if env.mechanism.context_kind != "states" else 0
        plan = make_plan(env.mechanism, env.layout, env.spec.n, m, "factored")
        comp = Composer(plan, 1)
        assert plan.S >= 1 and plan.D >= 2 and comp.composing.sum() == 0


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", ["best_belief", "collusion_leveraging", "perfect_revenue"])
def test_vector_and_exact_learner_envs_observe_the_same_move(name: str, encoding: str) -> None:
    from mechgym.training.learner_env import LearnerEnv
    from mechgym.training.vec_env import VecLearnerEnv

    gen = entry(name).load_env_module().raw_env(seed=0).generator
    ctx = gen.sample(np.random.default_rng(3))
    exact = LearnerEnv(name, 0, encoding=encoding, opponents="random", context=ctx, seed=0)
    vec = VecLearnerEnv(name, 0, n_envs=2, encoding=encoding, opponents="random", context=ctx)
    obs, _ = exact.reset(seed=0)
    vobs = vec.reset()
    rng = np.random.default_rng(0)
    for _ in range(exact.encoding.plan.S):  # the learner's first move, sub-decision by sub-decision
        np.testing.assert_allclose(vobs[0], obs, atol=1e-6)
        assert np.array_equal(vec.action_masks()[0], exact.action_masks())
        if encoding == "factored":
            a = int(rng.choice(np.flatnonzero(exact.action_masks())))
            va = np.array([a, a])
        else:
            a = rng.random(2).astype(np.float32)
            va = np.stack([a, a])
        obs, _, done, _, _ = exact.step(a)
        vobs, *_ = vec.step(va)
        if done or exact.core.decided[0]:  # the move is complete
            break


def test_a_move_under_way_takes_only_sub_decisions() -> None:
    from mechgym.envs.engine.actions import Offer
    from mechgym.envs.mechanisms.best_belief import BBAnnouncement

    env = entry("best_belief").load_env_module().raw_env(seed=0, action_encoding="factored")
    env.reset(seed=0)
    move = BBAnnouncement(1, Offer((0, 1, 0), (0, 3, 0)))
    env.step(move)  # a whole structured move at the start of a move
    assert env._buffer[0] == move and env.agent_selection == "player_1"
    env.step(0)
    with pytest.raises(OutOfSpaceError, match="a move under way takes sub-decisions"):
        env.step(move)
    with pytest.raises(OutOfSpaceError, match="outside"):
        env.step(env.composer.plan.D)
    with pytest.raises(OutOfSpaceError, match="takes sub-decisions"):
        env.step(True)  # a bool is an answer, not an entry


@pytest.mark.parametrize("e", ENTRIES, ids=[e.name for e in ENTRIES])
def test_entries_toward_a_move_rebuild_it_when_the_grid_holds_it(e) -> None:
    """A move composed from random legal sub-decisions is on the grid by construction: led by
    ``entries_toward`` it, a fresh composition writes exactly the same array action."""
    from mechgym.envs.engine.batched import batched_rules
    from mechgym.envs.model.batched_generators import BatchGenerator

    raw = e.load_env_module().raw_env(seed=0)
    rules = batched_rules(raw.mechanism, raw.spec)
    m = raw.spec.m if raw.mechanism.context_kind != "states" else 0
    plan = make_plan(raw.mechanism, raw.layout, raw.spec.n, m, "factored")
    rng = np.random.default_rng(4)
    ctx = BatchGenerator(raw.generator).sample(32, rng)
    state = rules.reset(ctx, rng)
    masks = rules.masks(state)
    b, p = np.nonzero(state.acting)
    rows = np.arange(len(b))
    lead, follow = Composer(plan, len(b)), Composer(plan, len(b))
    lead.begin(rows, masks[b, p])
    while lead.composing.any():
        r = np.flatnonzero(lead.composing)
        valid = lead.action_masks()[r].astype(bool)
        lead.choose(r, np.array([rng.choice(np.flatnonzero(v)) for v in valid]))
    target = lead.act.copy()
    follow.begin(rows, masks[b, p])
    while follow.composing.any():
        r = np.flatnonzero(follow.composing)
        entries, exact = follow.entries_toward(r, target[r])
        assert exact.all()
        follow.choose(r, entries)
    np.testing.assert_array_equal(follow.act, target)
