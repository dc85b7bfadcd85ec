"""M4, the collusion-leveraging mechanism of seed 002: rules, guarantee, predicted play, envs."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.agents.base import AGENTS, profile
from mechgym.agents.collusion_leveraging import PredictedM4, m4_bound, m4_menu, m4_menu_size
from mechgym.envs import collusion_leveraging_v0
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.batched import sample_actions
from mechgym.envs.engine.errors import MalformedAnnouncementError, ParameterError
from mechgym.envs.engine.game import Decision, EnvSpec, Fixed, Terminal, evaluate_exact
from mechgym.envs.mechanisms.collusion_leveraging import (
    CLAnnouncement,
    CollusionLeveraging,
    acting_coalition_of,
    hidden_value,
    relevant_knowledge,
)
from mechgym.envs.model.context import AuctionContext, singletons
from mechgym.envs.model.generators import UniformGenerator
from mechgym.envs.solvers.packing import best_knowledge, mkw
from pettingzoo.test import api_test, parallel_api_test, seed_test

warnings.filterwarnings("ignore", module="pettingzoo")

COALITIONS = ("independent", "random", "grand", "pair")
E2 = Fraction(1, 1000)


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


def pooling_ctx(coalitions=None) -> AuctionContext:
    """Players 0 and 1 each know one outsider's value; pooled, they know both.

    θ_2({0}) = 10 and θ_3({1}) = 10; player 0 knows the first, player 1 the second; players
    0 and 1 value nothing. MKW_{0,1} = 20 while every single player's MKW is 10.
    """
    values = np.zeros((4, 4), dtype=np.int64)
    values[2, 1] = 10
    values[3, 2] = 10
    lower = np.zeros((4, 4, 4), dtype=np.int64)
    for i in range(4):
        lower[i, i] = values[i]
    lower[0, 2, 1] = 10
    lower[1, 3, 2] = 10
    return AuctionContext(values=values, lower=lower, coalitions=coalitions)


def agent_utility(ev, ctx, p):
    return ev.coalition_utility(acting_coalition_of(ctx, p))


# -- rules -----------------------------------------------------------------------------------


def test_constants_are_validated():
    with pytest.raises(ParameterError, match="parameter eps: must lie in \\(0, 1\\)"):
        CollusionLeveraging(eps=0)
    with pytest.raises(ParameterError, match="parameter eps1"):
        CollusionLeveraging(eps1=1)
    with pytest.raises(ParameterError, match="parameter eps2: must lie in"):
        CollusionLeveraging(eps2=-1)
    msg = (
        "parameter eps2: needs 2\\*n\\*eps2 < eps1; "
        "with n = 5: 2\\*5\\*1/100 = 1/10 is not below eps1 = 1/10"
    )
    with pytest.raises(ParameterError, match=msg):
        CollusionLeveraging(eps1="1/10", eps2="1/100", n=5)
    mech = CollusionLeveraging(eps1="1/10", eps2="1/100")  # fine until it meets 5 players
    with pytest.raises(ParameterError, match="with n = 5"):
        mech.start(AuctionContext(values=np.zeros((5, 2), dtype=np.int64)))
    assert mech.start(AuctionContext(values=np.zeros((4, 2), dtype=np.int64))).ctx.n == 4
    with pytest.raises(ParameterError, match="parameter n"):
        CollusionLeveraging(n=3).start(AuctionContext(values=np.zeros((2, 2), dtype=np.int64)))


def test_tails_sale_and_rewards_exactly():
    ctx = pooling_ctx([(0, 1), (2,), (3,)])
    mech = CollusionLeveraging()
    rk = Offer((0, 0, 1, 2), (0, 0, 10, 10))
    a = {
        0: CLAnnouncement((0, 1), (0, 0, 0, 0), rk),
        1: CLAnnouncement((0, 1), (0, 0, 0, 0), Offer((0, 1, 0, 0), (0, 3, 0, 0))),
        2: CLAnnouncement((2,), (0, 0, 1, 0), Offer((0, 0, 1, 0), (0, 0, 10, 0))),
        3: CLAnnouncement((3,), (0, 0, 0, 2), Offer((0, 0, 0, 2), (0, 0, 0, 7))),
    }
    s = mech.resolve(mech.start(ctx), a)
    assert (
        mech.node(s).name == "c1"
        and mech.node(s).probs == (Fraction(9, 10),) + (Fraction(1, 40),) * 4
    )
    s = mech.chance(mech.chance(s, 0), 1)
    d = s.state.data  # the rules' arrays, a batch of one
    assert (int(d["top"][0]), int(d["second"][0])) == (0, 10)  # R' outside C_★ = {0, 1}
    assert mech.node(s) == Decision((2, 3), "respond")
    out = mech.node(mech.resolve(s, {2: True, 3: False})).outcome
    r = [20, 3, 10, 7]
    reward = [E2 * Fraction(x, 1 + x) for x in r]
    assert out.alloc == (0, 0, 1, 0)
    assert out.prices == (
        10 - 4 * E2 - (10 - E2) + 10 - reward[0],
        -reward[1],
        10 - E2 - reward[2],
        -reward[3],
    )
    # c1 picks player 3 as the star: R' = 0, player 3 is in C_★ and takes α^3_3 for free.
    s3 = mech.chance(mech.chance(mech.resolve(mech.start(ctx), a), 4), 1)
    out3 = mech.node(s3).outcome
    assert out3.alloc == (0, 0, 0, 2) and out3.prices[3] == -4 * E2 - reward[3]
    heads = mech.node(mech.chance(mech.chance(mech.resolve(mech.start(ctx), a), 3), 0)).outcome
    assert heads.alloc == (0, 0, 1, 0) and heads.prices == (0, 0, 0, 0) and heads.rule == "heads"


def test_inconsistent_declaration_is_fined_and_aborts():
    ctx = pooling_ctx()  # all independent
    mech = CollusionLeveraging()
    dev = AGENTS["collusion_leveraging"].deviations["inconsistent"](ctx, np.random.default_rng(0))
    ev = evaluate_exact(mech, ctx, profile(dev, 4))
    assert len(ev.outcomes) == 1
    prob, out = ev.outcomes[0]
    fine = 10 + Fraction(1, 10)  # R_★ + ε1, R_★ = 10 (every player announces its RK of 10)
    assert prob == 1 and out.rule == "abort"
    assert out.alloc == (0, 0, 0, 0)
    assert out.prices == (2 * fine, -fine, 0, 0)
    assert ev.expected_revenue == fine and ev.expected_welfare == 0


def test_abort_fines_every_inconsistent_member():
    ctx = pooling_ctx([(0, 1, 2), (3,)])
    mech = CollusionLeveraging(eps1="1/5")
    s = mech.start(ctx)
    rk = relevant_knowledge(ctx, (0, 1, 2))
    a = {
        0: CLAnnouncement((0, 1, 2), (0,) * 4, rk),
        1: CLAnnouncement((0, 1), (0,) * 4, Offer.empty(4)),  # omits 2
        2: CLAnnouncement((2,), (0,) * 4, Offer.empty(4)),  # omits 0
        3: CLAnnouncement((0, 3), (0,) * 4, Offer.empty(4)),  # names 0, who omits 3
    }
    out = mech.node(mech.resolve(s, a)).outcome
    f = rk.revenue + Fraction(1, 5)
    # 0 names 2 (2 omits 0): fine + transfer; 1 clean (0 and 1 name each other);
    # 3 names 0 (0 omits 3): fine + transfer.
    assert out.prices == (2 * f - f, 0, -f, 2 * f)
    assert out.rule == "abort"


# -- theory ----------------------------------------------------------------------------------


def test_guarantee_holds_exactly_under_predicted_play():
    mech = CollusionLeveraging()
    checked = 0
    structures = set()
    for ctx in contexts(300, seed=11):
        ev = evaluate_exact(mech, ctx, profile(PredictedM4(ctx), ctx.n))
        g = mech.guarantee(ctx, ev)
        assert g.holds, (g, ctx.values, ctx.coalitions)
        assert g.bound == Fraction(9, 10) * Fraction(mkw(ctx), 6) - Fraction(1, 10)
        assert all(o.rule != "abort" for _, o in ev.outcomes)
        structures.add("grand" if len(ctx.coalitions) == 1 else max(map(len, ctx.coalitions)))
        checked += 1
    assert checked == 300 and {1, 2, 3, "grand"} <= structures


def test_predicted_answers_are_strict_best_responses():
    mech = CollusionLeveraging()
    nodes = 0
    for ctx in contexts(100, seed=12):
        pol = PredictedM4(ctx)
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
                assert agent_utility(base, ctx, p) > agent_utility(flipped, ctx, p)
                nodes += 1
    assert nodes > 150


def test_lemma3_an_asker_in_the_stars_coalition_says_yes():
    # Player 1 colludes with the star 0 but is left out of C_0: YES beats NO for {0, 1}.
    ctx = pooling_ctx([(0, 1), (2,), (3,)])
    mech = CollusionLeveraging()
    pol = PredictedM4(ctx)
    a = {i: pol.act(mech, ctx, mech.start(ctx), i) for i in range(4)}
    a[0] = CLAnnouncement((0,), (0,) * 4, Offer((0, 1, 0, 0), (0, 25, 0, 0)))
    a[1] = CLAnnouncement((1,), (0,) * 4, Offer.empty(4))
    s = mech.chance(mech.chance(mech.resolve(mech.start(ctx), a), 0), 1)
    assert mech.node(s) == Decision((1,), "respond") and pol.act(mech, ctx, s, 1) is True
    yes = evaluate_exact(mech, ctx, profile(pol, 4), state=s)
    no = evaluate_exact(mech, ctx, {**profile(pol, 4), 1: Fixed(pol, {"respond": False})}, state=s)
    assert yes.coalition_utility((0, 1)) > no.coalition_utility((0, 1))


def test_bounds_of_lemmas_4_and_5():
    mech = CollusionLeveraging()
    for ctx in contexts(40, seed=13):
        s = mech.start(ctx)
        pol = PredictedM4(ctx)
        for i in range(ctx.n):
            a = pol.act(mech, ctx, s, i)
            coalition = acting_coalition_of(ctx, i)
            achieved, required = m4_bound(mech, ctx, s, i, a)
            assert achieved == required == best_knowledge(ctx, coalition).value
            assert a.offer.revenue == required == hidden_value(ctx, coalition, a.offer)
            assert a.coalition == coalition
            assert all(b == 0 or j in coalition for j, b in enumerate(a.alloc))


def test_collusion_raises_benchmark_and_performance():
    mech = CollusionLeveraging()
    alone = pooling_ctx()
    pooled = pooling_ctx([(0, 1), (2,), (3,)])
    assert mkw(alone) == 10 and mkw(pooled) == 20
    assert mech.benchmarks(pooled)["MKW_singletons"] == 10
    ev_alone = evaluate_exact(mech, alone, profile(PredictedM4(alone), 4))
    ev_pooled = evaluate_exact(mech, pooled, profile(PredictedM4(pooled), 4))
    total_alone = ev_alone.expected_welfare + ev_alone.expected_revenue
    total_pooled = ev_pooled.expected_welfare + ev_pooled.expected_revenue
    assert mech.guarantee(alone, ev_alone).holds and mech.guarantee(pooled, ev_pooled).holds
    assert mech.guarantee_bound(pooled) > mech.guarantee_bound(alone)
    # Hand count (ε = 1/10): pooled ≈ 0.9·30/2 + 0.025·40 = 14.5,
    # alone ≈ 0.9·20/2 + 0.025·30 = 9.75.
    assert 14 < total_pooled < Fraction(29, 2) and 9 < total_alone < Fraction(39, 4)
    assert total_pooled > total_alone + 4
    # The coalition gains too (collusion rewarding).
    assert ev_pooled.coalition_utility((0, 1)) > ev_alone.coalition_utility((0, 1))
    # Without shared rewards the members act alone and the benchmark is the singletons'.
    unshared = AuctionContext(
        values=pooled.values, lower=pooled.lower, coalitions=pooled.coalitions, shared_reward=False
    )
    assert mech.benchmarks(unshared)["MKW"] == 10


def test_deviations_are_legal_and_inconsistency_aborts():
    mech = CollusionLeveraging()
    for ctx in contexts(12, seed=14):
        base = evaluate_exact(mech, ctx, profile(PredictedM4(ctx), ctx.n))
        for name, make in AGENTS["collusion_leveraging"].deviations.items():
            pol = make(ctx, np.random.default_rng(0))
            if name.startswith("random"):
                continue  # random policies are not deterministic: not for evaluate_exact
            ev = evaluate_exact(mech, ctx, profile(pol, ctx.n))
            assert sum(p for p, _ in ev.outcomes) == 1
            if name == "inconsistent":
                assert all(o.rule == "abort" for _, o in ev.outcomes)
        assert base.expected_revenue + base.expected_welfare >= mech.guarantee_bound(ctx)


# -- menus and encodings ---------------------------------------------------------------------


def test_menu_is_fixed_length_and_contains_the_prediction():
    mech = CollusionLeveraging()
    for ctx in contexts(20, seed=15):
        spec = EnvSpec(ctx.n, ctx.m, 10, 10)
        pol = PredictedM4(ctx)
        s = mech.start(ctx)
        for i in range(ctx.n):
            items = m4_menu(mech, ctx, s, i)
            assert len(items) == m4_menu_size("announce", spec) == 14
            assert pol.act(mech, ctx, s, i) in [a for _, a in items]
            for _, a in items:
                assert mech.validate(s, i, a) == a


def test_encode_decode_round_trip():
    mech = CollusionLeveraging()
    for ctx in contexts(20, seed=16):
        spec = EnvSpec(ctx.n, ctx.m, 10, 10)
        layout = mech.layout(spec)
        s = mech.start(ctx)
        for i in range(ctx.n):
            a = PredictedM4(ctx).act(mech, ctx, s, i)
            vec = mech.encode(s, i, a, spec, layout)
            layout.check(vec, mech.action_mask(s, i, spec, layout), f"player_{i}", "announce")
            assert mech.decode(s, i, vec, spec, layout) == a


def test_array_allocation_to_a_non_member_means_unallocated():
    mech = CollusionLeveraging()
    spec = EnvSpec(3, 2, 5, 5)
    layout = mech.layout(spec)
    s = mech.start(AuctionContext(values=np.zeros((3, 4), dtype=np.int64)))
    vec = layout.zeros()
    vec[layout.index["ally_0"]] = 1
    vec[layout.index["ally_2"]] = 1
    vec[layout.index["salloc_0"]] = 2  # player 1: not an ally -> unallocated
    vec[layout.index["salloc_1"]] = 3  # player 2: an ally
    vec[layout.index["price_1"]] = 4  # a price on an empty bundle is reasonable
    a = mech.decode(s, 0, vec, spec, layout)
    assert a == CLAnnouncement((0, 2), (0, 0, 2), Offer((0, 0, 0), (0, 4, 0)))
    assert mech.validate(s, 0, a) == a
    with pytest.raises(
        MalformedAnnouncementError, match="outside the alleged coalition \\[0, 2\\]"
    ):
        mech.validate(s, 0, CLAnnouncement((0, 2), (0, 1, 0), Offer.empty(3)))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 5), m=st.integers(1, 3), cap=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_every_masked_array_decodes_to_a_legal_announcement(n, m, cap, seed):
    mech = CollusionLeveraging()
    spec = EnvSpec(n, m, cap, cap)
    layout = mech.layout(spec)
    rng = np.random.default_rng(seed)
    s = mech.start(AuctionContext(values=np.zeros((n, 1 << m), dtype=np.int64)))
    for i in range(n):
        vec = sample_actions(layout, mech.action_mask(s, i, spec, layout), rng)
        a = mech.decode(s, i, vec, spec, layout)
        assert mech.validate(s, i, a) == a and i in a.coalition


def test_bad_announcements_raise_typed_errors():
    mech = CollusionLeveraging()
    s = mech.start(pooling_ctx())
    ok = Offer.empty(4)
    cases = [
        (
            CLAnnouncement((1, 2), (0,) * 4, ok),
            "the alleged coalition \\[1, 2\\] must contain the announcer \\(player 0\\)",
        ),
        (
            CLAnnouncement((0, 7), (0,) * 4, ok),
            "alleged coalition member 7 is not a player in 0..3",
        ),
        (CLAnnouncement((0, 0), (0,) * 4, ok), "lists a player twice"),
        (
            CLAnnouncement((0,), (0, 1, 0, 0), ok),
            "allocation S\\^i gives goods to player 1, outside the alleged coalition \\[0\\]",
        ),
        (
            CLAnnouncement((0,), (0,) * 4, Offer((0,) * 4, (0, -1, 0, 0))),
            "price for player 1 must be >= 0 \\(a reasonable outcome\\), got -1",
        ),
        (
            CLAnnouncement((0,), (0,) * 4, Offer((1, 1, 0, 0), (0,) * 4)),
            "bundle of player 1 overlaps",
        ),
        (
            CLAnnouncement((0,), (0,) * 4, Offer((0,) * 4, (0, 1.5, 0, 0))),
            "price for player 1 must be an integer",
        ),
        (CLAnnouncement((0,), (0,) * 3, ok), "allocation S\\^i needs 4 bundles, got 3"),
        (Offer.empty(4), "expected a CLAnnouncement, got Offer"),
    ]
    for action, message in cases:
        with pytest.raises(MalformedAnnouncementError, match=message) as info:
            mech.validate(s, 0, action)
        assert info.value.agent == "player_0" and info.value.phase == "announce"


def test_env_stays_usable_after_a_bad_action():
    ctx = pooling_ctx([(0, 1), (2,), (3,)])
    env = collusion_leveraging_v0.raw_env(context=ctx, seed=5)
    env.reset(seed=5)
    with pytest.raises(MalformedAnnouncementError, match="player_0 in phase 'announce'"):
        env.step(CLAnnouncement((1,), (0,) * 4, Offer.empty(4)))
    pol = PredictedM4(ctx)
    while not isinstance(env.node, Terminal):
        i = int(env.agent_selection.split("_")[1])
        env.step(pol.act(env.mechanism, ctx, env.game_state, i))
    assert env.outcome.rule in ("heads", "tails")
    rewards = env.exact_rewards()
    assert rewards[0] == rewards[1]  # shared coalition reward


# -- environments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m", "cap", "coalitions"),
    [(2, 1, 3, "independent"), (3, 2, 3, "random"), (5, 1, 2, "pair"), (5, 2, 2, "grand")],
)
def test_pettingzoo_api(n, m, cap, coalitions):
    gen = UniformGenerator(n, m, value_cap=cap, belief="noisy", coalitions=coalitions)
    api_test(collusion_leveraging_v0.env(generator=gen, seed=0), num_cycles=30)
    seed_test(lambda: collusion_leveraging_v0.env(generator=gen), num_cycles=10)
    parallel_api_test(collusion_leveraging_v0.parallel_env(generator=gen, seed=0), num_cycles=30)


def test_env_rejects_bad_constants_by_name():
    with pytest.raises(ParameterError, match="parameter eps2"):
        collusion_leveraging_v0.env(eps2="1/10", n=3)
    env = collusion_leveraging_v0.raw_env(eps1="1/100", eps2="1/500")
    with pytest.raises(ParameterError, match="with n = 3"):
        env.reset(seed=0)
    assert CollusionLeveraging().benchmarks(pooling_ctx())["coalitions"] == [
        list(c) for c in singletons(4)
    ]
