"""M5, the perfect-information revenue mechanism (seed 003): rules, unique SPE, guarantee, envs."""

from __future__ import annotations

import itertools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np
import pettingzoo
import pytest
from mechgym.agents.base import AGENTS, PerPlayer, profile
from mechgym.agents.perfect_revenue import PredictedPerfectRevenue
from mechgym.envs import perfect_revenue_v0
from mechgym.envs.engine.errors import (
    ContextError,
    ContextFileError,
    MalformedAnnouncementError,
    ParameterError,
)
from mechgym.envs.engine.game import Decision, EnvSpec, evaluate_exact
from mechgym.envs.mechanisms.perfect_revenue import (
    PerfectRevenue,
    PRProposal,
    PRRaise,
    outcome_rank,
)
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.model.contextfile import context_to_dict, parse_context
from mechgym.envs.model.states import StateContext, StatesGenerator
from mechgym.envs.solvers.spe import solve_spe
from pettingzoo.test import api_test, seed_test

import mechgym  # noqa: F401  (registers the envs)

MECH = PerfectRevenue()


class Script:
    """Plays fixed actions: ``by[(phase, player)]``."""

    def __init__(self, by: dict[tuple[str, int], Any]) -> None:
        self.by = by

    def act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        return self.by[(node.phase, player)]


# -- acceptance: θ̄ / Θ̄ is the (unique) SPE on >= 100 generated contexts -------------------------
def _spe_check(ctx: StateContext, spec: EnvSpec) -> dict[str, Any]:
    res = solve_spe(MECH, ctx, spec)
    pred = PredictedPerfectRevenue(ctx)
    for v in res.evaluation.visits:  # the equilibrium path is θ̄'s (Θ̄'s)
        (p,) = v.node.players
        assert v.actions[p] == pred.act(MECH, ctx, v.state, p)
    off_path = 0
    if not pred.collusive:
        # Theorem 1: θ̄ is the unique SPE: strict preference at every node, θ̄ everywhere
        assert res.unique
        for rec in res.records.values():
            assert rec.action == pred.act(MECH, ctx, rec.state, rec.player)
    else:
        # Theorem 2 on the path; off the path Θ̄ may differ from the SPE, strictly (counted)
        assert res.outcome_unique and res.path_strict and res.ties_harmless
        off_path = sum(
            rec.action != pred.act(MECH, ctx, rec.state, rec.player) for rec in res.records.values()
        )
    ev = res.evaluation
    c = MECH.constants(ctx.n)
    best = ctx.msw()
    assert ev.expected_welfare == best
    assert all(p == 1 for p, _ in ev.outcomes)  # deterministic at the SPE
    assert ev.expected_revenue >= (1 - 3 * c.eps * ctx.n) * best
    assert all(ev.coalition_utility(co) >= 0 for co in ctx.coalitions)
    assert MECH.guarantee(ctx, ev).holds
    return {"unique": res.unique, "ties": len(res.ties), "off_path": off_path, "nodes": res.nodes}


def test_unique_spe_two_players() -> None:
    """84 contexts, n = 2, 2 states, values 0..2, price/raise grid 0..3 (max value + 1)."""
    gen = StatesGenerator(n=2, m=2, value_cap=2, positive_welfare=True)
    rng = np.random.default_rng(3)
    stats = [_spe_check(gen.sample(rng), EnvSpec(2, 2, 2, 3)) for _ in range(84)]
    assert all(s["unique"] for s in stats)


def _collusive_contexts(count: int, rng: np.random.Generator) -> list[StateContext]:
    gen = StatesGenerator(n=3, m=2, value_cap=1, coalitions="random", positive_welfare=True)
    out = []
    while len(out) < count:
        ctx = gen.sample(rng)
        if 1 < len(ctx.coalitions) < 3:  # non-trivial and not the grand coalition
            out.append(ctx)
    return out


def test_unique_spe_three_players() -> None:
    """16 contexts, n = 3 (8 independent, 8 with a coalition), 2 states, values 0..1,
    price/raise grid 0..2 (max value + 1; also the largest coalition value). About 40,000
    nodes each: solved on two processes."""
    rng = np.random.default_rng(5)
    indep = [
        StatesGenerator(n=3, m=2, value_cap=1, positive_welfare=True).sample(rng) for _ in range(8)
    ]
    jobs = [(ctx, EnvSpec(3, 2, 1, 2)) for ctx in indep + _collusive_contexts(8, rng)]
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as pool:
        stats = list(pool.map(_spe_check_job, jobs))
    assert all(s["unique"] for s in stats[:8])
    assert all(s["nodes"] > 30_000 for s in stats)


def _spe_check_job(job: tuple[StateContext, EnvSpec]) -> dict[str, Any]:
    return _spe_check(*job)


# -- the rules, branch by branch ------------------------------------------------------------------
CTX = StateContext(types=[[2, 0], [1, 3], [0, 1]])  # welfare 3, 4: ω* = 1


def _eval(script: dict[tuple[str, int], Any], ctx: StateContext = CTX):
    return evaluate_exact(MECH, ctx, profile(Script(script), ctx.n))


def test_zero_revenue_proposal_halts_without_rewards() -> None:
    ev = _eval({("propose", 0): PRProposal(1, (0, 0, 0))})
    ((p, o),) = ev.outcomes
    assert p == 1 and o.state == -1 and o.rule == "b" and o.prices == (0, 0, 0)


def test_truthful_play_and_rank_reward() -> None:
    ev = _eval(
        {
            ("propose", 0): PRProposal(1, (0, 3, 1)),
            ("raise", 1): PRRaise((0, 0, 0)),
            ("raise", 2): PRRaise((0, 0, 0)),
            ("respond", 1): True,
            ("respond", 2): True,
        }
    )
    eps = Fraction(1, 30)
    f, nr = outcome_rank(1, (0, 3, 1), 2)
    assert (f, nr) == (26, 30)
    delta0 = 2 * eps * 4 - eps * Fraction(f, nr)
    ((_, o),) = ev.outcomes
    assert o.rule == "d" and o.state == 1
    assert o.prices == (0 - eps - delta0, 3 - eps, 1 - eps)
    # player 0 was not raised: it answers YES by default; players 1 and 2 were asked
    assert [v.node.players for v in ev.visits] == [(0,), (1,), (2,), (1,), (2,)]


def test_no_fines_the_best_informed_player_and_coin_c2() -> None:
    c = MECH.constants(3)
    eps = c.eps
    ev = _eval(
        {
            ("propose", 0): PRProposal(1, (0, 3, 0)),
            ("raise", 1): PRRaise((0, 0, 1)),  # raises player 2 to its value
            ("raise", 2): PRRaise((0, 1, 0)),  # overprices player 1: 4 > 3, bip_1 = 2
            ("respond", 1): False,
            ("respond", 2): True,
        }
    )
    f, nr = outcome_rank(1, (0, 3, 0), 2)
    d0 = 2 * eps * 3 - eps * Fraction(f, nr)
    d1 = c.raise_eps(1, 2)
    d2 = c.raise_eps(2, 1)
    got = {o.rule: (p, o) for p, o in ev.outcomes}
    assert set(got) == {"e", "f", "f-tails"}
    p_e, o_e = got["e"]
    assert p_e == 1 - eps and o_e.state == -1
    assert o_e.prices == (-d0, -d1, 2 * 4 - d2)  # player 2 (bip of the NO-sayer) pays 2·P*_1
    # c2: Y = 2 (player 0 by default, player 2), B = P*_1 = 4: Pr = 2 / (3 · 4)
    p_f, o_f = got["f"]
    assert p_f == eps * Fraction(2, 12) and o_f.state == 1
    assert o_f.prices == (-eps - d0, 4 - eps - d1, 1 - eps - d2)
    p_t, o_t = got["f-tails"]
    assert p_t == eps * Fraction(10, 12) and o_t.prices == (-d0, -d1, -d2)


def test_player_zero_answers_only_when_raised() -> None:
    ev = _eval(
        {
            ("propose", 0): PRProposal(0, (1, 1, 1)),
            ("raise", 1): PRRaise((1, 0, 0)),  # raises player 0 to 2 = its value
            ("raise", 2): PRRaise((0, 0, 0)),
            ("respond", 0): True,
            ("respond", 1): True,
            ("respond", 2): False,
        }
    )
    assert [v.node.players for v in ev.visits][3:] == [(0,), (1,), (2,)]
    e = next(o for _, o in ev.outcomes if o.rule == "e")
    # the NO-sayer 2 was never raised: player 0 (its best-informed player) is fined 2·1
    c = MECH.constants(3)
    d0 = 2 * c.eps * 3 - c.eps * Fraction(*outcome_rank(0, (1, 1, 1), 2))
    assert e.prices[0] == 2 - d0


def test_bad_actions_raise_typed_errors() -> None:
    s = MECH.start(CTX)
    with pytest.raises(MalformedAnnouncementError, match="state 2"):
        MECH.validate(s, 0, PRProposal(2, (0, 0, 0)))
    with pytest.raises(MalformedAnnouncementError, match="non-negative"):
        MECH.validate(s, 0, PRProposal(0, (0, -1, 0)))
    with pytest.raises(MalformedAnnouncementError, match="3 prices"):
        MECH.validate(s, 0, PRProposal(0, (0, 1)))
    with pytest.raises(MalformedAnnouncementError, match="PRProposal"):
        MECH.validate(s, 0, (0, (0, 1, 1)))
    s = MECH.resolve(s, {0: PRProposal(0, (1, 1, 1))})
    with pytest.raises(MalformedAnnouncementError, match="own price"):
        MECH.validate(s, 1, PRRaise((0, 1, 0)))
    s = MECH.resolve(MECH.resolve(s, {1: PRRaise((0, 0, 0))}), {2: PRRaise((0, 0, 0))})
    with pytest.raises(MalformedAnnouncementError, match="True/False"):
        MECH.validate(s, 1, 1)


def test_constants_are_validated() -> None:
    with pytest.raises(ParameterError, match="eps"):
        PerfectRevenue(eps=Fraction(1, 15)).start(CTX)  # 1/(5n) = 1/15 for n = 3
    with pytest.raises(ParameterError, match="eps"):
        PerfectRevenue(eps=0)
    with pytest.raises(ParameterError, match="eps_raise"):
        PerfectRevenue(eps_raise=[[3, 2, 1], [1, 1, 1]]).start(CTX)
    ok = PerfectRevenue(eps="1/20", eps_raise=[["1/21", "1/22", "1/23"], ["1/24", "1/25", "1/26"]])
    c = ok.constants(3)
    assert c.eps == Fraction(1, 20) and c.raise_eps(2, 2) == Fraction(1, 26)
    order = [c.eps, *(x for row in MECH.constants(4).eps_raise for x in row)]
    assert all(a > b > 0 for a, b in itertools.pairwise(order))


# -- predicted play on larger contexts (fast: one path each) --------------------------------------
def test_guarantee_under_predicted_play_many_contexts() -> None:
    rng = np.random.default_rng(11)
    for t in range(150):
        n, k = int(rng.integers(2, 6)), int(rng.integers(1, 5))
        mode = ("independent", "random", "pair")[t % 3]
        ctx = StatesGenerator(n=n, m=k, value_cap=int(rng.integers(1, 12)), coalitions=mode).sample(
            rng
        )
        if len(ctx.coalitions) == 1:
            continue  # the grand coalition is outside Theorem 2
        ev = evaluate_exact(MECH, ctx, profile(PredictedPerfectRevenue(ctx), n))
        assert MECH.guarantee(ctx, ev).holds
        assert ev.expected_welfare == ctx.msw()
        assert all(ev.coalition_utility(c) >= 0 for c in ctx.coalitions)


def test_unilateral_deviations_of_player_zero_lose() -> None:
    rng = np.random.default_rng(2)
    gen = StatesGenerator(n=3, m=3, value_cap=6, positive_welfare=True)
    agents = AGENTS["perfect_revenue"]
    for _ in range(20):
        ctx = gen.sample(rng)
        pred = PredictedPerfectRevenue(ctx)
        base = evaluate_exact(MECH, ctx, profile(pred, 3)).expected_utilities[0]
        for name in ("underprice", "overprice"):
            dev = agents.deviations[name](ctx, rng)
            ev = evaluate_exact(MECH, ctx, {0: dev, 1: pred, 2: pred})
            if dev.proposal() != pred.proposal():
                assert ev.expected_utilities[0] < base


def test_menu_contains_prediction() -> None:
    agents = AGENTS["perfect_revenue"]
    ctx = StatesGenerator(n=3, m=2, value_cap=3, coalitions="pair").sample(np.random.default_rng(0))
    pred = PredictedPerfectRevenue(ctx)
    spec = EnvSpec(3, 2, 3, 6)
    state = MECH.start(ctx)
    while isinstance(node := MECH.node(state), Decision):
        (p,) = node.players
        items = agents.menu(MECH, ctx, state, p)
        assert len(items) == agents.menu_size(node.phase, spec)
        assert pred.act(MECH, ctx, state, p) in [a for _, a in items]
        state = MECH.resolve(state, {p: pred.act(MECH, ctx, state, p)})


# -- contexts -------------------------------------------------------------------------------------
def test_states_context_validation_and_files() -> None:
    with pytest.raises(ContextError, match="types\\[1\\]"):
        StateContext(types=[[1, 0], [0, -1]])
    with pytest.raises(ContextError, match="labels"):
        StateContext(types=[[1, 0], [0, 1]], labels=("a",))
    ctx = StateContext(types=[[1, 0], [0, 2]], labels=("a", "b"), coalitions=[[0, 1]], name="x")
    assert ctx.m == 2 and ctx.private_size(2, 2) == len(ctx.private_features(0)) == 6
    again = parse_context(context_to_dict(ctx), "mem")
    assert np.array_equal(again.types, ctx.types) and again.labels == ctx.labels
    assert again.coalitions == ctx.coalitions
    with pytest.raises(ContextFileError, match=r"f\.json: types\[0\]\[1\]"):
        parse_context(
            {"kind": "states", "players": 2, "states": 2, "types": [[1, -2], [0, 0]]}, "f.json"
        )
    with pytest.raises(ContextFileError, match="unknown key"):
        parse_context(
            {"kind": "states", "players": 2, "states": 2, "types": [[1, 2], [0, 0]], "x": 1}, "f"
        )


def test_auction_as_states() -> None:
    auc = AuctionContext(values=[[0, 3, 0, 3], [0, 0, 2, 2]])
    ctx = StateContext.from_auction(auc)
    assert ctx.num_states == 9 and ctx.msw() == 5
    w = ctx.best_state()
    assert ctx.allocations[w] == (1, 2)  # good 0 to player 0, good 1 to player 1
    ev = evaluate_exact(MECH, ctx, profile(PredictedPerfectRevenue(ctx), 2))
    assert ev.expected_welfare == 5 and MECH.guarantee(ctx, ev).holds


# -- environments ---------------------------------------------------------------------------------
SETTINGS = [
    {"generator": StatesGenerator(n=2, m=2, value_cap=2)},
    {"generator": StatesGenerator(n=5, m=3, value_cap=2, coalitions="random")},
    {
        "context": StateContext(
            types=[[2, 0, 1], [1, 3, 0], [0, 1, 1], [1, 1, 1]], coalitions=[[0], [1, 3], [2]]
        )
    },
]


@pytest.mark.parametrize("kw", SETTINGS, ids=["n2", "n5-random", "n4-pair"])
def test_pettingzoo_api_and_seed(kw: dict[str, Any]) -> None:
    api_test(perfect_revenue_v0.env(seed=1, **kw), num_cycles=60)
    seed_test(lambda: perfect_revenue_v0.env(**kw), num_cycles=60)
    with pytest.raises(ParameterError, match="sequential"):
        perfect_revenue_v0.parallel_env(**kw)


def test_registered_and_plays_predicted() -> None:
    env = pettingzoo.make("aec", "mechgym/PerfectRevenue-v0")
    env.reset(seed=4)
    raw = env.unwrapped
    ctx = raw.context
    pred = PredictedPerfectRevenue(ctx)
    for agent in env.agent_iter():
        _, _, term, trunc, _ = env.last()
        if term or trunc:
            env.step(None)
            continue
        env.step(pred.act(raw.mechanism, ctx, raw.game_state, raw._index[agent]))
    assert raw.outcome.state in (-1, ctx.best_state())
    assert ctx.welfare(raw.outcome) == ctx.msw()


def test_array_actions_round_trip() -> None:
    env = perfect_revenue_v0.raw_env(context=CTX, seed=0)
    env.reset()
    state, lay = env.game_state, env.layout
    prop = PRProposal(1, (0, 3, 1))
    vec = MECH.encode(state, 0, prop, env.spec, lay)
    assert MECH.decode(state, 0, vec, env.spec, lay) == prop
    assert env.check_action(0, vec) == prop
    with pytest.raises(Exception, match="beyond the grid"):
        MECH.encode(state, 0, PRProposal(1, (0, env.spec.price_cap + 1, 1)), env.spec, lay)


def test_coalition_deviation_individual_rules() -> None:
    """Members of a coalition following θ̄ (individual rules) instead of Θ̄ do not gain."""
    rng = np.random.default_rng(8)
    for ctx in _collusive_contexts(10, rng):
        pred = PredictedPerfectRevenue(ctx)
        ind = PredictedPerfectRevenue(ctx, collusive=False)
        base = evaluate_exact(MECH, ctx, profile(pred, 3))
        for c in ctx.coalitions:
            if len(c) > 1:
                mix = PerPlayer({i: (ind if i in c else pred) for i in range(3)})
                ev = evaluate_exact(MECH, ctx, profile(mix, 3))
                assert ev.coalition_utility(c) <= base.coalition_utility(c)
