"""Each theorem checked whole, one definition of who colludes, seed 000's ε-fraction reward
budget (Sec. 6.3), and what really holds for M5 with coalitions (seed 003, Definition 2)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from mechgym.agents.base import profile
from mechgym.agents.best_belief import PredictedSeed000
from mechgym.agents.perfect_revenue import PredictedPerfectRevenue
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import (
    Evaluation,
    Fixed,
    Guarantee,
    evaluate_exact,
)
from mechgym.envs.mechanisms.best_belief import BestBelief
from mechgym.envs.mechanisms.budget_balanced_market import BudgetBalancedMarket
from mechgym.envs.mechanisms.normal_form import NormalForm
from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue, PRProposal, PRRaise
from mechgym.envs.mechanisms.second_price_bundle import SecondPriceBundle
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.model.examples import example
from mechgym.envs.model.generators import make_generator
from mechgym.envs.model.states import StateContext

EPS = Fraction(1, 10)


def fake(ctx, revenue, welfare, utilities, outcomes=()) -> Evaluation:
    return Evaluation(
        Fraction(revenue),
        Fraction(welfare),
        tuple(Fraction(u) for u in utilities),
        list(outcomes),
        [],
    )


# -- Guarantee: printing, parts, kinds ----------------------------------------------------------


def test_guarantee_prints_statement_value_bound_verdict() -> None:
    g = Guarantee("E[REV] >= BB/2 - eps", Fraction(749, 10), Fraction(75))
    assert str(g) == "E[REV] >= BB/2 - eps: 75 ≥ 74.9, holds"
    bad = Guarantee("E[SW] = MSW", Fraction(3), Fraction(2), exact=True)
    assert str(bad) == "E[SW] = MSW: 2 = 3, violated"
    both = Guarantee("a", Fraction(0), Fraction(1), parts=(bad,))
    assert not both.holds and str(both) == "a: 1 ≥ 0, holds; E[SW] = MSW: 2 = 3, violated"
    assert both.to_json()["parts"][0]["holds"] is False


def test_m5_guarantee_includes_p3_utilities() -> None:
    ctx = StateContext(types=[[2, 0], [1, 3], [0, 1]])
    mech = PerfectRevenue()
    best = ctx.msw()
    good = fake(ctx, best - Fraction(1, 100), best, [0, Fraction(1, 100), 0])
    assert mech.guarantee(ctx, good).holds
    # the revenue bound and SW = MSW hold, but player 0 loses: ℙ3 fails, so the theorem does
    negative = fake(ctx, best, best, [Fraction(-1, 10), Fraction(1, 10), 0])
    g = mech.guarantee(ctx, negative)
    assert g.value >= g.bound and not g.holds
    assert "player" in g.parts[1].statement
    col = StateContext(types=[[2, 0], [1, 3], [0, 1]], coalitions=[[0, 1], [2]])
    split = fake(col, best, best, [Fraction(-1, 10), Fraction(1, 10), 0])
    g = mech.guarantee(col, split)  # a coalition's total counts (Theorem 2 (3))
    assert g.holds and "coalition" in g.parts[1].statement


def test_m6_guarantee_includes_coalition_utilities() -> None:
    ctx = example("market-swap")
    mech = BudgetBalancedMarket()
    ev = evaluate_exact(mech, ctx, _predicted("budget_balanced_market", ctx))
    g = mech.guarantee(ctx, ev)
    assert g.holds and g.parts and "coalitions" in g.parts[0].statement
    hurt = fake(ctx, 0, ev.expected_welfare, [-1] + [0] * (ctx.n - 1), ev.outcomes)
    assert not mech.guarantee(ctx, hurt).holds


def _predicted(name: str, ctx):
    from mechgym.envs.pettingzoo.registry import entry

    return profile(entry(name).load_agents().predicted(ctx), ctx.n)


def test_a_prime_is_a_property_of_predicted_bidding_and_the_mixture_says_so() -> None:
    ctx = example("chen-micali-2016")
    a = SecondPriceBundle()
    ev = evaluate_exact(a, ctx, _predicted("second_price_bundle", ctx))
    g = a.guarantee(ctx, ev)
    assert g.holds and g.kind == "property of predicted bidding"
    assert "(property of predicted bidding)" in str(g)
    mix = SecondPriceBundle(mixture="knowledge_benchmark", c="1/2")
    gm = mix.guarantee(ctx, ev)
    assert gm is not None and "property of predicted bidding" in gm.kind
    assert gm.kind != "theorem"


# -- one definition of who colludes --------------------------------------------------------------


def test_independent_is_read_from_the_acting_coalitions() -> None:
    values = np.array([[0, 5, 5, 9], [0, 4, 1, 6], [0, 1, 4, 6]])
    shared = AuctionContext(values=values, coalitions=[[0], [1, 2]], shared_reward=True)
    alone = AuctionContext(values=values, coalitions=[[0], [1, 2]], shared_reward=False)
    assert shared.independent == (0,) and shared.collusive
    assert alone.independent == (0, 1, 2) and not alone.collusive
    assert alone.acting_coalitions == ((0,), (1,), (2,))
    mech = BestBelief(eps=EPS)
    for ctx, statement in ((shared, "independent"), (alone, "E[REV] >= BB/2 - eps")):
        ev = evaluate_exact(mech, ctx, profile(PredictedSeed000(ctx), 3))
        assert statement in mech.guarantee(ctx, ev).statement


def test_m2_claims_no_collusion_bound() -> None:
    ctx = make_generator("uniform:n=4,m=2,cap=15,belief=noisy,coalitions=pair").sample(
        np.random.default_rng(0)
    )
    ev = evaluate_exact(NormalForm(eps=EPS), ctx, profile(PredictedSeed000(ctx), ctx.n))
    assert NormalForm(eps=EPS).guarantee(ctx, ev) is None
    assert BestBelief(eps=EPS).guarantee(ctx, ev) is not None


# -- seed 000 Sec. 6.3: the reward budget as an ε fraction of revenue ----------------------------


def _fraction_contexts():
    rng = np.random.default_rng(63)
    for spec, k in [
        ("uniform:n=3,m=2,cap=20,belief=noisy", 25),
        ("additive:n=4,m=2,cap=12,belief=exact", 15),
        ("uniform:n=4,m=2,cap=15,belief=noisy,coalitions=pair", 15),
    ]:
        gen = make_generator(spec)
        for _ in range(k):
            yield gen.sample(rng)


def test_fraction_budget_guarantee_and_strict_answers() -> None:
    mech = BestBelief(eps=EPS, reward_budget="fraction")
    assert mech.params()["reward_budget"] == "fraction"
    strict = 0
    for ctx in _fraction_contexts():
        prof = profile(PredictedSeed000(ctx), ctx.n)
        ev = evaluate_exact(mech, ctx, prof)
        g = mech.guarantee(ctx, ev)
        assert g.holds, (g, ctx.values)
        assert g.bound == (1 - EPS) * Fraction(mech.benchmarks(ctx)["BB"], 2) or ctx.collusive
        for _, o in ev.outcomes:
            if o.rule == "tails":  # payouts stay below ε·R_w
                r_w = max(a.offer.revenue for a in ev.visits[0].actions.values())
                assert o.revenue >= (1 - EPS) * r_w
        for visit in ev.visits:
            if visit.node.phase != "respond":
                continue
            for q in visit.node.players:
                flipped = dict(prof)
                flipped[q] = Fixed(prof[q], {"respond": not visit.actions[q]}, visit.state)
                dev = evaluate_exact(mech, ctx, flipped)
                group = ctx.coalition_of(q) if ctx.shared_reward else (q,)
                assert dev.coalition_utility(group) < ev.coalition_utility(group)
                strict += 1
    assert strict > 20
    # the default budget is unchanged
    ctx = example("chen-micali-2016")
    ev = evaluate_exact(BestBelief(eps=EPS), ctx, profile(PredictedSeed000(ctx), 3))
    assert ev.expected_revenue == Fraction(594135391, 7930520)


def test_fraction_budget_refuses_bad_settings() -> None:
    with pytest.raises(ParameterError, match="reward_budget"):
        BestBelief(reward_budget="percent")
    with pytest.raises(ParameterError, match="reserve"):
        from mechgym.envs.engine.actions import Offer

        BestBelief(reserve=Offer((1, 0, 0), (1, 0, 0)), reward_budget="fraction")


# -- seed 003 with coalitions: Θ̄ is strictly not a best response at some off-path nodes ----------


def test_m5_collusive_counterexample_strict_off_path() -> None:
    """Types [[1,0],[0,0],[0,1]], coalition {0,1}; after K = (0,0,1) at ω* = 0, Δ¹ = (1,0,0)
    and Δ² = (0,1,0), Θ̄ has both members say NO (the coalition's total value 1 is below its
    total price 2). Player 0's refusal fines its raiser, partner 1; saying YES instead moves
    the only fine onto outsider 2: a strict gain for the coalition, not a tie."""
    ctx = StateContext(types=[[1, 0], [0, 0], [0, 1]], coalitions=[[0, 1], [2]])
    mech = PerfectRevenue()
    s = mech.start(ctx)
    s = mech.resolve(s, {0: PRProposal(0, (0, 0, 1))})
    s = mech.resolve(s, {1: PRRaise((1, 0, 0))})
    s = mech.resolve(s, {2: PRRaise((0, 1, 0))})
    pred = PredictedPerfectRevenue(ctx)
    theta_bar = {i: pred for i in range(3)}
    both_no = evaluate_exact(mech, ctx, theta_bar, state=s).coalition_utility((0, 1))
    dev = {**theta_bar, 0: Fixed(pred, {"respond": True})}
    zero_yes = evaluate_exact(mech, ctx, dev, state=s).coalition_utility((0, 1))
    assert round(float(both_no), 3) == -3.794 and round(float(zero_yes), 3) == -1.866
    assert zero_yes > both_no


def test_m5_collusive_agreement_is_measured_against_the_spe() -> None:
    """Learned play that stays on Θ̄ at the counterexample node disagrees with the SPE there;
    Θ̄'s own gap is reported apart (prediction_off, prediction_gap)."""
    from mechgym.agents.base import AGENTS
    from mechgym.training.metrics import evaluate_profile

    ctx = StateContext(types=[[1, 0], [0, 0], [0, 1]], coalitions=[[0, 1], [2]])
    mech = PerfectRevenue()
    pred = PredictedPerfectRevenue(ctx)
    prof = {
        0: Fixed(pred, {"propose": PRProposal(0, (0, 0, 1))}),
        1: Fixed(pred, {"raise": PRRaise((1, 0, 0))}),
        2: Fixed(pred, {"raise": PRRaise((0, 1, 0))}),
    }
    met = evaluate_profile(
        mech, AGENTS["perfect_revenue"], [ctx], lambda c: prof, [(0, 1)], exploitability=False
    )
    assert met.reference == "spe"
    assert met.prediction_off["respond"] > 0
    assert met.prediction_gap["respond"] == pytest.approx(3.794 - 1.866, abs=0.01)
    assert met.agreement["respond"] < 1
    # the predicted profile itself stays on the equilibrium path, where Θ̄ is the SPE
    both = evaluate_profile(
        mech,
        AGENTS["perfect_revenue"],
        [ctx],
        lambda c: dict.fromkeys(range(3), PredictedPerfectRevenue(c)),
        [(0, 1), (2,)],
        exploitability=False,
    )
    assert all(v == 1.0 for v in both.agreement.values() if v is not None)
    assert not any(both.prediction_off.values())


def test_m5_collusive_what_holds() -> None:
    """Theorem 2's conclusions hold at the SPE and the path is Θ̄'s, but off the path Θ̄
    differs from the SPE strictly (not by ties) at some nodes."""
    from mechgym.agents.perfect_revenue import SPEReference

    ctx = StateContext(types=[[1, 0], [0, 0], [0, 1]], coalitions=[[0, 1], [2]])
    mech = PerfectRevenue()
    res = SPEReference(ctx)._spe(mech, ctx)
    pred = PredictedPerfectRevenue(ctx)
    for v in res.evaluation.visits:
        (p,) = v.node.players
        assert v.actions[p] == pred.act(mech, ctx, v.state, p)
    assert res.outcome_unique
    assert mech.guarantee(ctx, res.evaluation).holds
    off = [r for r in res.records.values() if pred.act(mech, ctx, r.state, r.player) not in r.tied]
    assert off and all(r.margin is not None and r.margin > 0 for r in off)
    assert len(off) > len(res.ties)
