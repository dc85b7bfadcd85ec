"""M3, the knowledge-benchmark mechanism of seed 001: rules, guarantee, predicted play, envs."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.agents.base import AGENTS, profile
from mechgym.agents.knowledge_benchmark import PredictedM3, bound, menu, menu_size, miew_offer
from mechgym.envs import knowledge_benchmark_v0
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.batched import sample_actions
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.game import Decision, EnvSpec, Fixed, evaluate_exact
from mechgym.envs.mechanisms.knowledge_benchmark import KBAnnouncement, KnowledgeBenchmark
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.model.generators import UniformGenerator
from mechgym.envs.solvers.packing import best_belief, miew
from pettingzoo.test import api_test, parallel_api_test, seed_test

warnings.filterwarnings("ignore", module="pettingzoo")

COALITIONS = ("independent", "random", "grand", "pair")


def contexts(count: int, seed: int):
    """Generated contexts: n in 2..5, m in 1..3, noisy/exact correct beliefs, four structures."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        n = 2 + k % 4
        m = 1 + (k // 4) % 3
        gen = UniformGenerator(
            n,
            m,
            value_cap=10,
            belief=("noisy", "exact")[k % 2],
            coalitions=COALITIONS[(k // 2) % 4],
        )
        yield gen.sample(rng)


def agent_utility(ev, ctx, p):
    members = ctx.coalition_of(p) if ctx.shared_reward else (p,)
    return ev.coalition_utility(members)


# -- rules on a hand-made example ------------------------------------------------------------


def three_player_ctx() -> AuctionContext:
    values = np.zeros((3, 4), dtype=np.int64)
    values[0] = [0, 4, 2, 9]
    values[1] = [0, 7, 1, 7]
    values[2] = [0, 0, 2, 2]
    return AuctionContext(values=values)


def anns() -> dict[int, KBAnnouncement]:
    return {
        0: KBAnnouncement(3, Offer((0, 1, 2), (0, 5, 3))),  # R_0 = 8: the star
        1: KBAnnouncement(1, Offer((3, 0, 0), (6, 0, 0))),  # R_1 = 6: R'
        2: KBAnnouncement(0, Offer((0, 0, 0), (0, 0, 0))),
    }


@pytest.mark.parametrize("eps", [0, Fraction(1, 100)])
def test_rules_fines_before_coin_and_sale_on_tails(eps):
    mech = KnowledgeBenchmark(eps=eps)
    ctx = three_player_ctx()
    s = mech.resolve(mech.start(ctx), anns())
    d = s.state.data  # the rules' arrays, a batch of one
    assert (int(d["star"][0]), int(d["second"][0])) == (0, 6)
    node = mech.node(s)
    assert node == Decision((1, 2), "respond")  # before the coin
    s = mech.resolve(s, {1: True, 2: False})
    assert mech.node(s).name == "coin"
    heads = mech.node(mech.chance(s, 0)).outcome
    assert heads.alloc == (3, 0, 0) and heads.prices == (3, 0, 0)  # the NO fine stands on heads
    tails = mech.node(mech.chance(s, 1)).outcome
    assert tails.alloc == (0, 1, 0)
    assert tails.prices == (3 + 6 - (5 - eps), 5 - eps, 0)
    assert tails.revenue == 9  # R' + fines: the sale is a transfer to the star


def test_nobody_asked_goes_straight_to_the_coin():
    mech = KnowledgeBenchmark()
    ctx = three_player_ctx()
    empty = KBAnnouncement(1, Offer.empty(3))
    s = mech.resolve(mech.start(ctx), dict.fromkeys(range(3), empty))
    assert mech.node(s).name == "coin"
    assert mech.node(mech.chance(s, 1)).outcome.prices == (0, 0, 0)
    assert mech.node(mech.chance(s, 0)).outcome.alloc == (1, 0, 0)


def test_zero_price_on_a_bundle_is_canonical_and_asked():
    # Definition 2 of seed 001: prices are integers >= 0, 0 where nothing is given.
    mech = KnowledgeBenchmark()
    ctx = three_player_ctx()
    a = {i: KBAnnouncement(0, Offer.empty(3)) for i in range(3)}
    a[0] = KBAnnouncement(0, Offer((0, 1, 0), (0, 0, 0)))  # star on the 0-0-0 tie
    s = mech.resolve(
        mech.start(ctx), {i: mech.validate(mech.start(ctx), i, x) for i, x in a.items()}
    )
    assert int(s.state.data["star"][0]) == 0 and mech.node(s) == Decision((1,), "respond")


def test_positive_prices_variant():
    mech = KnowledgeBenchmark(positive_prices=True)
    s = mech.start(three_player_ctx())
    with pytest.raises(
        MalformedAnnouncementError, match="price for player 1 must be positive, got 0"
    ):
        mech.validate(s, 0, KBAnnouncement(0, Offer((0, 1, 0), (0, 0, 0))))
    spec = EnvSpec(3, 2, 6, 6)
    layout = mech.layout(spec)
    assert int(layout.sizes[layout.index["price_1"]]) == 6  # prices 1..6
    vec = mech.encode(s, 0, anns()[0], spec, layout)
    assert mech.decode(s, 0, vec, spec, layout) == anns()[0]
    rng = np.random.default_rng(0)
    with pytest.raises(OutOfSpaceError, match=r"price 7 for player 1 is outside the grid 1\.\.6"):
        mech.encode(s, 0, KBAnnouncement(0, Offer((0, 1, 0), (0, 7, 0))), spec, layout)
    for _ in range(20):
        v = sample_actions(layout, mech.action_mask(s, 0, spec, layout), rng)
        a = mech.decode(s, 0, v, spec, layout)
        assert all(p >= 1 for b, p in zip(a.offer.alloc, a.offer.prices, strict=True) if b)
    for ctx in contexts(40, seed=6):
        ev = evaluate_exact(mech, ctx, profile(PredictedM3(ctx), ctx.n))
        assert mech.guarantee(ctx, ev).holds


def test_parameters():
    with pytest.raises(ParameterError, match="eps: must lie in \\[0, 1\\)"):
        KnowledgeBenchmark(eps=1)
    with pytest.raises(ParameterError, match="eps"):
        KnowledgeBenchmark(eps="x")
    assert KnowledgeBenchmark(eps=0.01).eps == Fraction(1, 100)
    with pytest.raises(ParameterError, match="positive_prices"):
        KnowledgeBenchmark(positive_prices="yes")


# -- theory ----------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0, Fraction(1, 100)])
def test_guarantee_holds_exactly_under_predicted_play(eps):
    mech = KnowledgeBenchmark(eps=eps)
    checked = 0
    tight = []
    for ctx in contexts(300, seed=1):
        ev = evaluate_exact(mech, ctx, profile(PredictedM3(ctx), ctx.n))
        g = mech.guarantee(ctx, ev)
        assert g.holds, (g, ctx.values, ctx.coalitions)
        assert g.bound == Fraction(miew(ctx), 2)
        assert sum(p for p, _ in ev.outcomes) == 1
        checked += 1
        if g.bound > 0:
            tight.append(g.value - g.bound)
    assert checked == 300 and len(tight) > 150


@pytest.mark.parametrize("eps", [0, Fraction(1, 100)])
def test_predicted_answers_are_best_responses(eps):
    """Flip one answer at one visited node: the answerer's agent loses (strictly with the
    footnote-4 ε; with ε = 0 only the tie TV = π is weak)."""
    mech = KnowledgeBenchmark(eps=eps)
    nodes = ties = 0
    for ctx in contexts(120, seed=2):
        pol = PredictedM3(ctx)
        prof = profile(pol, ctx.n)
        ev = evaluate_exact(mech, ctx, prof)
        for visit in ev.visits:
            if visit.node.phase != "respond":
                continue
            base = evaluate_exact(mech, ctx, prof, state=visit.state)
            for p in visit.node.players:
                dev = dict(prof)
                dev[p] = Fixed(pol, {"respond": not visit.actions[p]}, only_state=visit.state)
                flipped = evaluate_exact(mech, ctx, dev, state=visit.state)
                u, u_dev = agent_utility(base, ctx, p), agent_utility(flipped, ctx, p)
                nodes += 1
                q = mech.pending_offer(visit.state, p)
                star = int(visit.state.state.data["star"][0])
                tie = (
                    eps == 0
                    and star not in ctx.coalition_of(p)
                    and ctx.values[p, q.item] == q.price
                )
                if tie:
                    ties += 1
                    assert u == u_dev
                else:
                    assert u > u_dev, (p, visit.state)
    assert nodes > 100
    assert (ties > 0) == (eps == 0)


def test_announcements_meet_claim4_bound():
    for ctx in contexts(40, seed=3):
        s = KnowledgeBenchmark().start(ctx)
        pol = PredictedM3(ctx)
        for i in range(ctx.n):
            a = pol.act(KnowledgeBenchmark(), ctx, s, i)
            achieved, required = bound(KnowledgeBenchmark(), ctx, s, i, a)
            assert achieved == best_belief(ctx, i).value
            assert achieved >= required
            assert ctx.values[i, a.bundle] == ctx.values[i].max()


def test_always_no_deviation_can_break_the_guarantee_but_predicted_cannot():
    # Player 0 knows player 1 values {0} at >= 10; predicted play sells it, always-NO fines.
    values = np.array([[0, 0], [0, 10]])
    lower = np.zeros((2, 2, 2), dtype=np.int64)
    lower[0, 0] = values[0]
    lower[1, 1] = values[1]
    lower[0, 1, 1] = 10
    ctx = AuctionContext(values=values, lower=lower)
    mech = KnowledgeBenchmark()
    ev = evaluate_exact(mech, ctx, profile(PredictedM3(ctx), 2))
    assert (ev.expected_welfare, ev.expected_revenue) == (5, 0)  # tails: 1 buys at 10; R' = 0
    assert mech.guarantee(ctx, ev).value == 5 == mech.guarantee(ctx, ev).bound
    dev = AGENTS["knowledge_benchmark"].deviations["always_no"](ctx, np.random.default_rng(0))
    ev2 = evaluate_exact(mech, ctx, profile(dev, 2))
    assert ev2.expected_revenue == 10 and ev2.expected_utilities[0] == -10


# -- menus and encodings ---------------------------------------------------------------------


def test_menu_is_fixed_length_and_contains_the_prediction():
    mech = KnowledgeBenchmark()
    for ctx in contexts(24, seed=4):
        spec = EnvSpec(ctx.n, ctx.m, 10, 10)
        pol = PredictedM3(ctx)
        s = mech.start(ctx)
        for i in range(ctx.n):
            items = menu(mech, ctx, s, i)
            assert len(items) == menu_size("announce", spec) == 14
            assert pol.act(mech, ctx, s, i) in [a for _, a in items]
            for _, a in items:
                mech.validate(s, i, a)
        s = mech.resolve(s, {i: pol.act(mech, ctx, s, i) for i in range(ctx.n)})
        node = mech.node(s)
        if isinstance(node, Decision):
            for i in node.players:
                assert [a for _, a in menu(mech, ctx, s, i)] == [False, True]


def test_encode_decode_round_trip_of_predicted_actions():
    mech = KnowledgeBenchmark()
    for ctx in contexts(24, seed=5):
        spec = EnvSpec(ctx.n, ctx.m, 10, 10)
        layout = mech.layout(spec)
        s = mech.start(ctx)
        for i in range(ctx.n):
            a = PredictedM3(ctx).act(mech, ctx, s, i)
            vec = mech.encode(s, i, a, spec, layout)
            layout.check(vec, mech.action_mask(s, i, spec, layout), f"player_{i}", "announce")
            assert mech.decode(s, i, vec, spec, layout) == a


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 5), m=st.integers(1, 3), cap=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_every_masked_array_decodes_to_a_legal_announcement(n, m, cap, seed):
    mech = KnowledgeBenchmark()
    spec = EnvSpec(n, m, cap, cap)
    layout = mech.layout(spec)
    rng = np.random.default_rng(seed)
    s = mech.start(AuctionContext(values=np.zeros((n, 1 << m), dtype=np.int64)))
    for i in range(n):
        vec = sample_actions(layout, mech.action_mask(s, i, spec, layout), rng)
        a = mech.decode(s, i, vec, spec, layout)
        assert mech.validate(s, i, a) == a
        assert a.offer.alloc[i] == 0


def test_bad_announcements_raise_typed_errors():
    mech = KnowledgeBenchmark()
    s = mech.start(three_player_ctx())
    cases = [
        (
            KBAnnouncement(1, Offer((1, 0, 0), (3, 0, 0))),
            "an announcer may not offer goods to itself",
        ),
        (
            KBAnnouncement(1, Offer((0, 1, 0), (-1, 0, 0))),
            "player 0 is offered nothing, so its price must be 0",
        ),
        (
            KBAnnouncement(1, Offer((0, 1, 0), (0, -2, 0))),
            "price for player 1 must be >= 0, got -2",
        ),
        (KBAnnouncement(4, Offer.empty(3)), "favourite bundle S_i 4 is not a bitmask over 2 goods"),
        (KBAnnouncement(1, Offer((0, 1, 1), (0, 1, 1))), "overlaps"),
        ("yes", "expected a KBAnnouncement, got str"),
    ]
    for action, message in cases:
        with pytest.raises(MalformedAnnouncementError, match=message) as info:
            mech.validate(s, 0, action)
        assert info.value.agent == "player_0" and info.value.phase == "announce"


def test_env_stays_usable_after_a_bad_action():
    env = knowledge_benchmark_v0.raw_env(context=three_player_ctx())
    env.reset(seed=3)
    with pytest.raises(MalformedAnnouncementError, match="player_0 in phase 'announce'"):
        env.step(KBAnnouncement(1, Offer((1, 0, 0), (3, 0, 0))))
    for i, a in anns().items():
        assert env.agent_selection == f"player_{i}"
        env.step(a)
    with pytest.raises(MalformedAnnouncementError, match="answer YES/NO with True/False"):
        env.step(1)
    env.step(True)
    env.step(False)
    assert env.outcome is not None and env.outcome.prices[0] >= 3


# -- environments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m", "cap", "coalitions", "kw"),
    [
        (2, 1, 3, "independent", {}),
        (3, 2, 4, "random", {"eps": "1/100"}),
        (5, 1, 2, "pair", {"positive_prices": True}),
        (5, 2, 2, "grand", {"eps": "1/50"}),
    ],
)
def test_pettingzoo_api(n, m, cap, coalitions, kw):
    gen = UniformGenerator(n, m, value_cap=cap, belief="noisy", coalitions=coalitions)
    api_test(knowledge_benchmark_v0.env(generator=gen, seed=0, **kw), num_cycles=30)
    seed_test(lambda: knowledge_benchmark_v0.env(generator=gen, **kw), num_cycles=10)
    parallel_api_test(
        knowledge_benchmark_v0.parallel_env(generator=gen, seed=0, **kw), num_cycles=30
    )


def test_env_defaults_and_predicted_play_through_arrays():
    env = knowledge_benchmark_v0.raw_env(seed=7)
    # only asked players respond, so PettingZoo's aec_to_parallel does not apply
    assert not env.metadata["is_parallelizable"] and env.spec.n == 3
    env.reset(seed=7)
    ctx = env.context
    assert ctx.beliefs_correct()
    pol = PredictedM3(ctx)
    mech = env.mechanism
    while env.agents and not all(env.terminations.values()):
        i = int(env.agent_selection.split("_")[1])
        a = pol.act(mech, ctx, env.game_state, i)
        env.step(mech.encode(env.game_state, i, a, env.spec, env.layout))
    assert env.outcome is not None
    assert miew_offer(ctx, 0).revenue == best_belief(ctx, 0).value
