"""M6, the budget-balanced market mechanism (seed 004): steps a–k, Theorem 1 under predicted
play (with coalitions), the YES/NO rules as strict best responses, markets, envs."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.agents.base import AGENTS, profile
from mechgym.agents.budget_balanced_market import PredictedMarket, truthful_proposal
from mechgym.envs import budget_balanced_market_v0
from mechgym.envs.engine.errors import (
    ContextError,
    ContextFileError,
    MalformedAnnouncementError,
    OutOfSpaceError,
    ParameterError,
)
from mechgym.envs.engine.game import Decision, EnvSpec, Fixed, Terminal, evaluate_exact
from mechgym.envs.mechanisms.budget_balanced_market import BudgetBalancedMarket, MarketProposal
from mechgym.envs.model.contextfile import context_to_dict, parse_context
from mechgym.envs.model.market import MarketContext, MarketGenerator, market_msw
from pettingzoo.test import api_test, parallel_api_test, seed_test

MECH = BudgetBalancedMarket()


def _acting(ctx: MarketContext, i: int) -> tuple[int, ...]:
    return ctx.coalition_of(i) if ctx.shared_reward else (i,)


def test_theorem_1_under_predicted_play_300_markets() -> None:
    """Welfare-maximising and budget balanced w.p. >= 1 − δ, coalitions' utilities >= 0, and
    every YES/NO of the prediction a strict best response of the acting coalition, exactly."""
    rng = np.random.default_rng(0)
    probs, margins, checked = [], [], 0
    for t in range(300):
        n, m, k = int(rng.integers(2, 5)), int(rng.integers(1, 4)), int(rng.integers(2, 4))
        gen = MarketGenerator(
            n=n,
            m=m,
            k=k,
            coalitions=("independent", "random", "pair")[t % 3],
            shared_reward=t % 5 != 4,
        )
        ctx = gen.sample(rng)
        pol = PredictedMarket(ctx)
        prof = profile(pol, n)
        ev = evaluate_exact(MECH, ctx, prof)
        g = MECH.guarantee(ctx, ev)
        _, delta = MECH.constants(n, k)
        assert g.holds and g.bound == 1 - delta
        probs.append(g.value)
        assert all(ev.coalition_utility(c) >= 0 for c in ctx.coalitions)
        # every outcome is budget balanced except on destroyed-goods branches it still is
        assert all(o.revenue == 0 for _, o in ev.outcomes)
        for v in ev.visits:
            if v.node.phase == "propose":
                continue
            base = evaluate_exact(MECH, ctx, prof, state=v.state)
            for i in v.node.players:
                flip = not v.actions[i]
                dev = dict(prof)
                dev[i] = Fixed(pol, {v.node.phase: flip}, only_state=v.state)
                alt = evaluate_exact(MECH, ctx, dev, state=v.state)
                gap = base.coalition_utility(_acting(ctx, i)) - alt.coalition_utility(
                    _acting(ctx, i)
                )
                assert gap > 0, (ctx.coalitions, i, v.node.phase)
                margins.append(gap)
                checked += 1
    assert min(probs) >= 1 - Fraction(1, 20) / 2  # δ <= ε/(2B) <= 1/40
    assert checked > 500 and min(margins) > 0


def _market(**kw: Any) -> MarketContext:
    # goods 0, 1; player 0 owns both; player 1 values good 0 at 3, player 2 good 1 at 2
    values = np.zeros((3, 4), dtype=np.int64)
    values[0, 1], values[0, 2], values[0, 3] = 1, 1, 2
    values[1, 1] = 3
    values[2, 2] = 2
    return MarketContext(values=values, endowment=(3, 0, 0), k=3, **kw)


def test_truthful_proposal_and_lemma_4_utilities() -> None:
    ctx = _market()
    n, eps, delta = 3, Fraction(1, 30), Fraction(1, 240)  # defaults: 1/(10n), ε/(2B), B = 4
    assert MECH.constants(3, 3) == (eps, delta)
    prop = truthful_proposal(ctx)
    assert prop == MarketProposal((0, 1, 2), (-5, 3, 2))
    ev = evaluate_exact(MECH, ctx, profile(PredictedMarket(ctx), 3))
    gain, e1 = 5 - 2, 2
    u0 = (1 - delta) * (gain - 2 * (n - 1) * eps) + delta * (
        Fraction(gain, n) - Fraction((n - 1) * e1, n) - Fraction((n * n - 1), n) * eps
    )
    ui = (1 - delta) * 2 * eps + delta * Fraction(n + 1, n) * eps  # θ_i(E_i) = 0
    assert ev.expected_utilities == (u0, ui, ui)
    d = next(o for p, o in ev.outcomes if o.rule == "d")
    assert d.alloc == (0, 1, 2) and d.prices == (-5 + 4 * eps, 3 - 2 * eps, 2 - 2 * eps)
    assert MECH.guarantee(ctx, ev).value == 1 - delta


def _run(ctx: MarketContext, proposal: Any, answers: dict[str, bool] | None = None):
    class P:
        def act(self, mech: Any, c: Any, state: Any, player: int) -> Any:
            node = mech.node(state)
            assert isinstance(node, Decision)
            return proposal if node.phase == "propose" else (answers or {})[node.phase]

    return evaluate_exact(MECH, ctx, profile(P(), ctx.n))


@pytest.mark.parametrize(
    "prices",
    [(-8, 8, 0), (8, -8, 0), (-3, 2, 2), (Fraction(-5, 2), Fraction(5, 2), 0)],
    ids=["price=2^k", "price=-2^k", "sum=1", "non-integer"],
)
def test_step_a_halts_exactly(prices: tuple[Any, ...]) -> None:
    ctx = _market()
    ev = _run(ctx, MarketProposal((0, 1, 2), prices))
    ((p, o),) = ev.outcomes
    assert p == 1 and o.rule == "a"
    assert o.alloc == ctx.endowment and o.prices == (1, 0, 0) and o.destroyed == 0
    assert ev.expected_utilities == (-1, 0, 0)


def test_step_a_reachable_through_arrays() -> None:
    env = budget_balanced_market_v0.raw_env(context=_market(), seed=0)
    env.reset()
    lay, spec = env.layout, env.spec
    assert spec.price_cap == 4  # B = 2^(k-1): the price grid is -2^k..2^k
    vec = lay.zeros()
    vec[lay.index["owner_0"]], vec[lay.index["owner_1"]] = 2, 3
    vec[lay.index["price_1"]] = 8 + 8  # value v means P* = v − 2^k: P*_1 = 2^k, invalid
    vec[lay.index["price_2"]] = 8 + 0
    prop = env.check_action(0, vec)
    assert prop == MarketProposal((0, 1, 2), (-8, 8, 0))
    env.step(vec)
    assert env.outcome.rule == "a" and env.exact_rewards() == (-1, 0, 0)
    env.reset()
    vec[lay.index["price_1"]] = 8 + 3
    vec[lay.index["imbalance"]] = 1  # Σ P* = +1
    env.step(vec)
    assert env.outcome.rule == "a"


def test_step_b_and_malformed_proposals() -> None:
    ctx = _market()
    ev = _run(ctx, MarketProposal((3, 0, 0), (0, 0, 0)))
    ((_, o),) = ev.outcomes
    assert o.rule == "b" and o.prices == (0, 0, 0)
    s = MECH.start(ctx)
    with pytest.raises(MalformedAnnouncementError, match="overlaps"):
        MECH.validate(s, 0, MarketProposal((1, 1, 0), (0, 0, 0)))
    with pytest.raises(MalformedAnnouncementError, match="one price per player"):
        MECH.validate(s, 0, MarketProposal((1, 2, 0), (0, 0)))
    with pytest.raises(MalformedAnnouncementError, match=r"int or a fractions\.Fraction"):
        MECH.validate(s, 0, MarketProposal((1, 2, 0), (0.5, -0.5, 0)))
    with pytest.raises(MalformedAnnouncementError, match="MarketProposal"):
        MECH.validate(s, 0, ((1, 2, 0), (0, 0, 0)))
    with pytest.raises(OutOfSpaceError, match="grid"):
        MECH.encode(
            s,
            0,
            MarketProposal((1, 2, 0), (-9, 9, 0)),
            EnvSpec(3, 2, 4, 4),
            MECH.layout(EnvSpec(3, 2, 4, 4)),
        )


def test_every_branch_exactly() -> None:
    """A proposal player 1 refuses: steps e, f, g on c0 = Heads; i, j, k in M'."""
    ctx = _market()
    n, eps, delta, b = 3, Fraction(1, 30), Fraction(1, 240), 4
    # the truthful proposal with player 1 overcharged by 1: (-6, 4, 2); player 1 says NO
    pol = PredictedMarket(ctx, proposal="overprice")
    assert pol.proposal() == MarketProposal((0, 1, 2), (-6, 4, 2))
    ev = evaluate_exact(MECH, ctx, profile(pol, n))
    got: dict[str, list] = {}
    for p, o in ev.outcomes:
        got.setdefault(o.rule, []).append((p, o))
    ((pe, oe),) = got["e"]
    y = 1  # only player 2 says YES
    assert pe == (1 - delta) * (1 - eps)
    assert oe.prices == (2 * n * (n - y) * b + (n - 1) * eps, -eps, -eps)
    ((pf, of),) = got["f"]
    assert pf == (1 - delta) * eps * Fraction(y, n * b) and of.alloc == (0, 1, 2)
    ((pg, og),) = got["g"]
    assert pg == (1 - delta) * eps * (1 - Fraction(y, n * b)) and og.prices == (
        (n - 1) * eps,
        -eps,
        -eps,
    )
    ((pi, oi),) = got["i"]
    assert pi == delta / n and oi.alloc == (0, 0, 0) and oi.destroyed == 3
    ((pj, oj),) = got["j"]  # w = 2 says YES: keeps good 1, good 0 destroyed
    assert pj == delta / n and oj.alloc == (0, 0, 2) and oj.destroyed == 1
    assert oj.prices == (-2 + n * eps, -eps, 2 - 2 * eps)
    ((pk, ok),) = got["k"]  # w = 1 says NO: keeps its (empty) endowment, all goods destroyed
    assert pk == delta / n and ok.alloc == (0, 0, 0) and ok.destroyed == 3
    assert ok.prices == (Fraction(n * n * b) / delta + (n - 1) * eps, -eps, -eps)
    assert all(o.revenue != 0 for o in (oe, ok))  # fines: only off the rational path


def test_constants_are_validated() -> None:
    ctx = _market()
    with pytest.raises(ParameterError, match="eps"):
        BudgetBalancedMarket(eps=Fraction(1, 15)).start(ctx)
    with pytest.raises(ParameterError, match="delta"):
        BudgetBalancedMarket(eps=Fraction(1, 20), delta=Fraction(1, 80)).start(ctx)  # ε/B = 1/80
    assert BudgetBalancedMarket(eps="1/20", delta="1/100").constants(3, 3) == (
        Fraction(1, 20),
        Fraction(1, 100),
    )


def test_lemma_9_and_coalition_rules() -> None:
    """Player 0's colluder says YES even to a price above its surplus; an outside pair says
    YES on its total, but at step 3 each member answers on its own surplus."""
    ctx = _market(coalitions=[[0, 1], [2]])
    prop = MarketProposal((0, 1, 2), (-7, 5, 2))
    pol = PredictedMarket(ctx)
    s = MECH.resolve(MECH.start(ctx), {0: prop})
    s = MECH.chance(s, 0)
    assert pol.act(MECH, ctx, s, 1) is True
    ctx2 = _market(coalitions=[[0], [1, 2]])
    prop2 = MarketProposal((0, 1, 2), (-5, 4, 1))  # player 1 −1, player 2 +1: total 0
    pol2 = PredictedMarket(ctx2)
    s2 = MECH.chance(MECH.resolve(MECH.start(ctx2), {0: prop2}), 0)
    assert pol2.act(MECH, ctx2, s2, 1) is True and pol2.act(MECH, ctx2, s2, 2) is True
    t = MECH.chance(MECH.chance(MECH.resolve(MECH.start(ctx2), {0: prop2}), 1), 1)
    assert pol2.act(MECH, ctx2, t, 1) is False  # w = 1 at step 3: its own surplus is −1


def test_market_context_and_files() -> None:
    with pytest.raises(ContextError, match="values\\[0\\]"):
        MarketContext(values=[[0, 4], [0, 0]], endowment=(1, 0), k=3)
    with pytest.raises(ContextError, match="owned by nobody"):
        MarketContext(values=[[0, 1], [0, 0]], endowment=(0, 0), k=3)
    with pytest.raises(ContextError, match="already owned"):
        MarketContext(values=[[0, 1], [0, 0]], endowment=(1, 1), k=3)
    ctx = _market(coalitions=[[0, 2], [1]], name="demo")
    assert ctx.value_cap == 4 and ctx.endowment_welfare == 2 and ctx.msw() == 5
    assert len(ctx.private_features(1)) == ctx.private_size(3, 2)
    again = parse_context(context_to_dict(ctx), "mem")
    assert np.array_equal(again.values, ctx.values) and again.endowment == ctx.endowment
    assert again.coalitions == ctx.coalitions and again.k == 3
    bad = context_to_dict(ctx)
    bad["values"][0]["0"] = 9
    with pytest.raises(ContextFileError, match=r'm\.json: values\[0\]\["0"\]'):
        parse_context(bad, "m.json")


def test_market_msw_against_enumeration() -> None:
    import itertools

    rng = np.random.default_rng(4)
    for _ in range(40):
        ctx = MarketGenerator(n=3, m=3, k=3).sample(rng)
        best = max(
            ctx.welfare_of([sum(1 << g for g, o in enumerate(own) if o == i + 1) for i in range(3)])
            for own in itertools.product(range(4), repeat=3)
        )
        value, alloc = market_msw(ctx)
        assert value == best == ctx.welfare_of(alloc)


def test_generator_is_seeded() -> None:
    gen = MarketGenerator(n=3, m=2, k=3, coalitions="random")
    a, b = gen.sample(np.random.default_rng(7)), gen.sample(np.random.default_rng(7))
    assert (
        np.array_equal(a.values, b.values)
        and a.endowment == b.endowment
        and a.coalitions == b.coalitions
    )
    with pytest.raises(ContextError, match="k"):
        MarketGenerator(n=3, m=2, k=0)


def test_menu_contains_prediction() -> None:
    agents = AGENTS["budget_balanced_market"]
    ctx = _market()
    s = MECH.start(ctx)
    items = agents.menu(MECH, ctx, s, 0)
    assert len(items) == agents.menu_size("propose", EnvSpec(3, 2, 4, 4))
    assert PredictedMarket(ctx).act(MECH, ctx, s, 0) == items[0][1]


SETTINGS = [
    {"generator": MarketGenerator(n=2, m=1, k=2)},
    {"generator": MarketGenerator(n=5, m=2, k=2, coalitions="random")},
    {"context": _market(coalitions=[[0], [1, 2]])},
]


@pytest.mark.parametrize("kw", SETTINGS, ids=["n2", "n5-random", "n3-pair"])
def test_pettingzoo_api_seed_and_parallel(kw: dict[str, Any]) -> None:
    api_test(budget_balanced_market_v0.env(seed=1, **kw), num_cycles=60)
    seed_test(lambda: budget_balanced_market_v0.env(**kw), num_cycles=60)
    parallel_api_test(budget_balanced_market_v0.parallel_env(seed=2, **kw), num_cycles=60)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 4),
    m=st.integers(1, 3),
    k=st.integers(2, 3),
    mode=st.sampled_from(["independent", "random", "pair", "grand"]),
)
def test_answer_rules_are_strictly_dominant_for_any_regular_proposal(
    seed: int, n: int, m: int, k: int, mode: str
) -> None:
    """Lemmas 1, 2, 7, 8, 9: whatever the others answer, flipping a predicted answer lowers
    the acting coalition's expected utility, for arbitrary (regular) proposals."""
    rng = np.random.default_rng(seed)
    ctx = MarketGenerator(n=n, m=m, k=k, coalitions=mode).sample(rng)
    alloc = [0] * n
    for g in range(m):
        o = int(rng.integers(0, n + 1))
        if o:
            alloc[o - 1] |= 1 << g
    bound = 1 << k
    prices = [int(x) for x in rng.integers(-bound + 1, bound, size=n - 1)]
    prop = MarketProposal(tuple(alloc), (-sum(prices), *prices))
    s = MECH.resolve(MECH.start(ctx), {0: prop})
    if isinstance(MECH.node(s), Terminal):
        return  # the proposal was (E, 0)
    pol = PredictedMarket(ctx)
    heads = MECH.chance(s, 0)
    for i in range(1, n):
        rule = pol.act(MECH, ctx, heads, i)
        others = [j for j in range(1, n) if j != i]
        for bits in range(1 << len(others)):
            ans = {j: bool(bits >> t & 1) for t, j in enumerate(others)}
            val = {}
            for a in (rule, not rule):
                child = MECH.resolve(heads, {**ans, i: a})
                val[a] = evaluate_exact(MECH, ctx, {}, state=child).coalition_utility(
                    _acting(ctx, i)
                )
            assert val[rule] > val[not rule]
    tails = MECH.chance(s, 1)
    for w in range(1, n):
        at_w = MECH.chance(tails, w)
        rule = pol.act(MECH, ctx, at_w, w)
        val = {
            a: evaluate_exact(MECH, ctx, {}, state=MECH.resolve(at_w, {w: a})).coalition_utility(
                _acting(ctx, w)
            )
            for a in (True, False)
        }
        assert val[rule] > val[not rule]
