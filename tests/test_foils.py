"""The foils of M5 and M6: each documented failure reproduced exactly by scripted play."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from mechgym.agents.base import AGENTS, PerPlayer, profile
from mechgym.agents.budget_balanced_market import PredictedMarket
from mechgym.agents.foils import PredictedHope, PredictedNaive, manipulative_proposal, scaled_report
from mechgym.envs import (
    hope_for_the_best_v0,
    naive_market_1_v0,
    naive_market_2_v0,
    naive_market_3_v0,
    naive_market_4_v0,
)
from mechgym.envs.engine.errors import MalformedAnnouncementError, ParameterError
from mechgym.envs.engine.game import Decision, EnvSpec, evaluate_exact
from mechgym.envs.mechanisms.budget_balanced_market import BudgetBalancedMarket, MarketProposal
from mechgym.envs.mechanisms.foils import (
    HopeForTheBest,
    NaiveMarket1,
    NaiveMarket2,
    NaiveMarket3,
    NaiveMarket4,
    TypeReport,
)
from mechgym.envs.model.market import MarketContext, MarketGenerator
from mechgym.envs.model.states import StateContext, StatesGenerator
from mechgym.envs.solvers.spe import enumerate_actions
from pettingzoo.test import api_test, parallel_api_test, seed_test


class Fixed:
    """Always the same action."""

    def __init__(self, action: Any) -> None:
        self.action = action

    def act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
        return self.action


class Script:
    """``by[phase]`` for every player, or ``by[(phase, player)]``."""

    def __init__(self, by: dict[Any, Any]) -> None:
        self.by = by

    def act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        return self.by.get((node.phase, player), self.by.get(node.phase))


def _is_nash(mech: Any, ctx: Any, prof: dict[int, Any], spec: EnvSpec) -> Fraction:
    """Check every unilateral deviation at the (single, simultaneous) first node over the whole
    array action space; return the smallest gain of sticking to the profile (>= 0 iff Nash)."""
    base = evaluate_exact(mech, ctx, prof).expected_utilities
    start = mech.start(ctx)
    gains = []
    for i in range(ctx.n):
        own = prof[i].act(mech, ctx, start, i)
        for a in enumerate_actions(mech, start, i, spec):
            if a == own:
                continue
            dev = dict(prof)
            dev[i] = Fixed(a)
            gains.append(base[i] - evaluate_exact(mech, ctx, dev).expected_utilities[i])
    return min(gains)


# -- HOPE-FOR-THE-BEST ----------------------------------------------------------------------------
def test_hope_scaled_down_reports_are_an_equilibrium_with_less_revenue() -> None:
    ctx = StateContext(types=[[4, 2], [2, 0]])
    mech = HopeForTheBest()
    eps = mech.eps
    spec = EnvSpec(2, 2, 4, 4)
    truth = profile(PredictedHope(ctx), 2)
    half = profile(PredictedHope(ctx, 1, 2), 2)
    ev_t = evaluate_exact(mech, ctx, truth)
    ev_h = evaluate_exact(mech, ctx, half)
    assert ev_t.expected_revenue == 6 - 2 * eps and ev_t.expected_utilities == (eps, eps)
    assert ev_h.expected_revenue == 3 - 2 * eps
    assert ev_h.expected_utilities == (2 + eps, 1 + eps)  # every player prefers E_2
    assert ev_h.expected_welfare == ev_t.expected_welfare == 6
    # both are Nash equilibria: any of the 5^4 = 625 other reports breaks agreement -> (⊥, 0)
    assert _is_nash(mech, ctx, truth, spec) >= 0
    assert _is_nash(mech, ctx, half, spec) > 0
    # and so is E_4 (values divided by 4), with revenue 1 − 2ε
    quarter = profile(PredictedHope(ctx, 1, 4), 2)
    assert scaled_report(ctx, 1, 4) == TypeReport(((1, 0), (0, 0)))
    assert evaluate_exact(mech, ctx, quarter).expected_revenue == 1 - 2 * eps
    assert _is_nash(mech, ctx, quarter, spec) > 0


def test_hope_disagreement_and_bad_reports() -> None:
    ctx = StateContext(types=[[1, 0], [0, 1]])
    mech = HopeForTheBest()
    ev = evaluate_exact(mech, ctx, {0: PredictedHope(ctx), 1: PredictedHope(ctx, 0, 1)})
    ((_, o),) = ev.outcomes
    assert o.state == -1 and o.rule == "disagree" and o.prices == (0, 0)
    with pytest.raises(MalformedAnnouncementError, match="non-negative"):
        mech.validate(mech.start(ctx), 0, TypeReport(((1, -1), (0, 0))))
    with pytest.raises(MalformedAnnouncementError, match="one row per player"):
        mech.validate(mech.start(ctx), 0, TypeReport(((1, 1),)))
    with pytest.raises(ParameterError):
        HopeForTheBest(eps=1)


# -- Naive-1: multiple equilibria -----------------------------------------------------------------
def test_naive1_any_individually_rational_outcome_is_an_equilibrium() -> None:
    values = [[0, 1], [0, 3]]  # one good owned by player 0, worth 1 to it and 3 to player 1
    ctx = MarketContext(values=values, endowment=(1, 0), k=3)
    mech = NaiveMarket1()
    spec = EnvSpec(2, 1, 4, 4)
    status_quo = profile(PredictedNaive(ctx, proposal="status_quo"), 2)
    truthful = profile(PredictedNaive(ctx), 2)
    assert PredictedNaive(ctx).proposal() == MarketProposal((0, 1), (-3, 3))
    ev_sq = evaluate_exact(mech, ctx, status_quo)
    ev_t = evaluate_exact(mech, ctx, truthful)
    assert ev_sq.expected_welfare == 1 < ev_t.expected_welfare == 3 == ctx.msw()
    # every one of the 3 × 7 announcements of each player is checked
    assert _is_nash(mech, ctx, status_quo, spec) >= 0
    assert _is_nash(mech, ctx, truthful, spec) >= 0
    # a third one: the efficient allocation at price 2 (utilities 1 and 1)
    mid = profile(Fixed(MarketProposal((0, 1), (-2, 2))), 2)
    assert evaluate_exact(mech, ctx, mid).expected_utilities == (1, 1)
    assert _is_nash(mech, ctx, mid, spec) >= 0


# -- Naive-2: belief mismatch ---------------------------------------------------------------------
def _owner1_market(k: int) -> MarketContext:
    # one good, owned by player 1 (worth 3 to it; 1 to player 0; 0 to player 2): E is optimal
    return MarketContext(values=[[0, 1], [0, 3], [0, 0]], endowment=(0, 1, 0), k=k)


def test_naive2_belief_mismatch() -> None:
    ctx = _owner1_market(3)
    mech = NaiveMarket2()
    eps = mech.eps
    grab = MarketProposal((1, 0, 0), (-6, 3, 3))  # player 0 takes the good, 1 and 2 pay 3

    def ans(a1: bool, a2: bool) -> Script:
        return Script({"propose": grab, ("respond", 1): a1, ("respond", 2): a2})

    # each victim is indifferent between YES and NO when it expects the other's NO ...
    for i in (1, 2):
        yes = evaluate_exact(mech, ctx, profile(ans(i == 1, i == 2), 3))
        no = evaluate_exact(mech, ctx, profile(ans(False, False), 3))
        assert yes.expected_utilities[i] == no.expected_utilities[i] == 0
    # ... so both may say YES, each relying on the other's NO: the grab is implemented
    both = evaluate_exact(mech, ctx, profile(ans(True, True), 3))
    ((_, o),) = both.outcomes
    assert o.rule == "all-yes" and o.alloc == (1, 0, 0)
    assert both.expected_welfare == 1 < ctx.msw() == 3
    assert both.expected_utilities == (1 + 6 - 2 * eps, -3 - 3 + eps, -3 + eps)
    # player 0 gains against the truthful (E, 0), which gives it 0
    truthful = evaluate_exact(mech, ctx, profile(PredictedNaive(ctx), 3))
    assert truthful.expected_utilities == (0, 0, 0)


# -- Naive-3: player 0's manipulation -------------------------------------------------------------
def test_naive3_player0_profits_from_a_non_truthful_proposal() -> None:
    ctx = _owner1_market(4)  # B = 8
    mech = NaiveMarket3()
    eps, n = mech.eps, 3
    manip = manipulative_proposal(ctx)
    assert manip == MarketProposal((1, 0, 0), (-7, 7, 0))
    # the others answer by their dominant rule (YES iff their surplus >= 0)
    dev = PerPlayer(
        {
            0: PredictedNaive(ctx, proposal="manipulate"),
            1: PredictedNaive(ctx),
            2: PredictedNaive(ctx),
        }
    )
    ev = evaluate_exact(mech, ctx, profile(dev, n))
    p_impl = eps * 1 / n  # Y = 1 (player 2 keeps nothing at price 0 and gains ε)
    assert sorted((str(p), o.rule) for p, o in ev.outcomes) == sorted(
        [(str(1 - p_impl), "c1-heads"), (str(p_impl), "c1-tails")]
    )
    assert ev.expected_utilities[0] == p_impl * (1 - 0 + 7 - (n - 1) * eps)
    truthful = evaluate_exact(mech, ctx, profile(PredictedNaive(ctx), n))
    assert truthful.expected_utilities[0] == 0 < ev.expected_utilities[0]
    assert ev.expected_welfare == (1 - p_impl) * 3 + p_impl * 1 < ctx.msw()
    # M6 punishes the same proposal: player 0's utility becomes negative
    m6 = BudgetBalancedMarket()
    ev6 = evaluate_exact(
        m6,
        ctx,
        profile(PerPlayer({0: Fixed(manip), 1: PredictedMarket(ctx), 2: PredictedMarket(ctx)}), n),
    )
    assert ev6.expected_utilities[0] < 0


# -- Naive-4: collusion that player 0 misjudges ---------------------------------------------------
def _two_goods(k: int, coalitions: Any = None) -> MarketContext:
    values = np.zeros((3, 4), dtype=np.int64)
    values[0, 1], values[0, 2], values[0, 3] = 1, 1, 2
    values[1, 1] = 3
    values[2, 2] = 2
    return MarketContext(values=values, endowment=(3, 0, 0), k=k, coalitions=coalitions)


def test_naive4_shifted_prices_fail_without_the_believed_collusion() -> None:
    mech = NaiveMarket4()
    shifted = PredictedNaive(_two_goods(4), proposal="shift_pair", shift=2)
    assert shifted.proposal() == MarketProposal((0, 1, 2), (-5, 5, 0))  # truthful is (-5, 3, 2)
    colluding = _two_goods(4, coalitions=[[0], [1, 2]])
    independent = _two_goods(4)
    eps = mech.eps_for(3)
    # if {1, 2} collude, the pair's total surplus is 0: both say YES, welfare is maximal and
    # player 0 gets exactly its truthful utility: the shift is rational under that belief
    ev_c = evaluate_exact(
        mech, colluding, profile(PredictedNaive(colluding, proposal="shift_pair", shift=2), 3)
    )
    ev_t = evaluate_exact(mech, colluding, profile(PredictedNaive(colluding), 3))
    assert ev_c.expected_welfare == colluding.msw() == 5
    assert ev_c.expected_utilities[0] == ev_t.expected_utilities[0] == 3 - 2 * eps
    # if they are in fact independent, player 1 (surplus −2) says NO: welfare is lost
    ev_i = evaluate_exact(
        mech, independent, profile(PredictedNaive(independent, proposal="shift_pair", shift=2), 3)
    )
    p_impl = eps * Fraction(1, 3 * 8)  # c1 Tails, then c2 Heads w.p. Y/(nB), Y = 1
    assert ev_i.expected_welfare == (1 - p_impl) * 2 + p_impl * 5 < independent.msw()
    assert ev_i.expected_utilities[0] < 0 < ev_t.expected_utilities[0]
    with pytest.raises(ParameterError, match="1/\\(3n\\)"):
        NaiveMarket4(eps=Fraction(1, 9)).start(independent)


def test_naive_proposals_are_validated() -> None:
    ctx = _two_goods(3)
    mech = NaiveMarket2()
    s = mech.start(ctx)
    with pytest.raises(MalformedAnnouncementError, match="sum to 0"):
        mech.validate(s, 0, MarketProposal((0, 1, 2), (0, 1, 0)))
    with pytest.raises(MalformedAnnouncementError, match="\\(-2\\^k, 2\\^k\\)"):
        mech.validate(s, 0, MarketProposal((0, 1, 2), (-8, 8, 0)))
    with pytest.raises(MalformedAnnouncementError, match="integer"):
        mech.validate(s, 0, MarketProposal((0, 1, 2), (Fraction(-1, 2), Fraction(1, 2), 0)))
    ev = evaluate_exact(mech, ctx, profile(PredictedNaive(ctx, proposal="status_quo"), 3))
    ((_, o),) = ev.outcomes
    assert o.rule == "endowment" and o.alloc == ctx.endowment


def test_foil_menus_contain_the_prediction() -> None:
    ctx = _two_goods(3)
    for name, mech in (("naive_market_2", NaiveMarket2()), ("naive_market_1", NaiveMarket1())):
        agents = AGENTS[name]
        s = mech.start(ctx)
        items = agents.menu(mech, ctx, s, 0)
        assert len(items) == agents.menu_size(mech.phases[0], EnvSpec(3, 2, 4, 4))
        assert PredictedNaive(ctx).act(mech, ctx, s, 0) == items[0][1]
        for _, a in items:
            mech.validate(s, 0, a)
    hctx = StateContext(types=[[2, 1], [1, 2]])
    items = AGENTS["hope_for_the_best"].menu(HopeForTheBest(), hctx, None, 0)
    assert items[0][1] == PredictedHope(hctx).report


STATES = [
    {"generator": StatesGenerator(n=2, m=2, value_cap=2)},
    {"generator": StatesGenerator(n=5, m=2, value_cap=1, coalitions="random")},
]
MARKETS = [
    {"generator": MarketGenerator(n=2, m=1, k=2)},
    {"generator": MarketGenerator(n=5, m=2, k=2, coalitions="random")},
]


@pytest.mark.parametrize(
    ("mod", "kw"),
    [(hope_for_the_best_v0, kw) for kw in STATES]
    + [
        (m, kw)
        for m in (naive_market_1_v0, naive_market_2_v0, naive_market_3_v0, naive_market_4_v0)
        for kw in MARKETS
    ],
    ids=lambda x: (
        x.__name__.split(".")[-1] if hasattr(x, "__name__") else f"n{next(iter(x.values())).n}"
    ),
)
def test_pettingzoo_api_seed_and_parallel(mod: Any, kw: dict[str, Any]) -> None:
    api_test(mod.env(seed=1, **kw), num_cycles=40)
    seed_test(lambda: mod.env(**kw), num_cycles=40)
    parallel_api_test(mod.parallel_env(seed=2, **kw), num_cycles=40)
