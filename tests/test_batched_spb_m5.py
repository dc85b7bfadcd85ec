"""Differential tests of the batched second-price bundle auction and its mixture, M5 and
HOPE-FOR-THE-BEST: same contexts, actions and chance draws give the exact engine's
allocations, prices and rewards; the batched agents and menus equal the exact ones at every
visited node; public features and masks equal the exact ones."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

# the exact agents register themselves on import
import mechgym.agents.collusion_leveraging
import mechgym.agents.foils
import mechgym.agents.perfect_revenue  # noqa: F401
import numpy as np
import pytest
from batched_support import check_utilities_and_rewards, play_on, scripted, walk_exact
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.agents.base import AGENTS
from mechgym.agents.batched import batched_agents
from mechgym.envs.engine.batched import (
    BatchState,
    ContextBatch,
    batched_rules,
    replay_exact,
    rollout,
    sample_actions,
)
from mechgym.envs.engine.errors import ContextError, IllegalActionError, OutOfSpaceError
from mechgym.envs.engine.game import Decision, EnvSpec
from mechgym.envs.mechanisms.foils import HopeForTheBest
from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue
from mechgym.envs.mechanisms.second_price_bundle import Mixture, SecondPriceBundle
from mechgym.envs.model.generators import make_generator
from mechgym.envs.model.states import StatesGenerator

# -- contexts ----------------------------------------------------------------------------------


def auctions(
    rng: np.random.Generator,
    B: int,
    n: int,
    m: int,
    cap: int,
    coalitions: str = "random",
    shared: bool = True,
    belief: str = "wrong",
    family: str = "uniform",
) -> ContextBatch:
    g = make_generator(
        f"{family}:n={n},m={m},cap={cap},belief={belief},coalitions={coalitions},"
        f"shared={'true' if shared else 'false'}"
    )
    return ContextBatch.from_contexts([g.sample(rng) for _ in range(B)])


def states(
    rng: np.random.Generator,
    B: int,
    n: int,
    k: int,
    cap: int,
    coalitions: str = "random",
    shared: bool = True,
) -> ContextBatch:
    g = StatesGenerator(n, k, cap, coalitions, shared)
    return ContextBatch.from_contexts([g.sample(rng) for _ in range(B)])


def spec_for(mech: Any, n: int, m: int, cap: int, price_cap: int | None = None) -> EnvSpec:
    return EnvSpec(n, m, cap, price_cap or mech.default_price_cap(n, cap))


# the auction sizes: n = 2 / m = 1, small caps (ties), coalitions with and without shared
# rewards, wrong and absent beliefs, and the largest size that stays fast
AUCTION_CASES = [
    (2, 1, 1, "independent", True, "none"),
    (2, 1, 2, "grand", True, "exact"),
    (3, 2, 3, "random", True, "wrong"),
    (3, 2, 4, "pair", False, "noisy"),
    (4, 3, 6, "random", False, "wrong"),
    (5, 4, 8, "random", True, "none"),
]
STATE_CASES = [
    (2, 1, 1, "independent", True),
    (2, 2, 2, "grand", True),
    (3, 2, 2, "random", True),
    (3, 3, 3, "pair", False),
    (4, 2, 2, "random", True),
    (5, 3, 2, "random", False),
]


def differential(mech: Any, make: Any, cases: list, per_case: int, seed: int) -> int:
    """Random legal play over every case; return the number of episodes checked."""
    rng = np.random.default_rng(seed)
    total = 0
    for n, m, cap, co, shared, *rest in cases:
        ctx = make(rng, per_case, n, m, cap, co, shared, *rest)
        rules = batched_rules(mech, spec_for(mech, n, m, cap))
        ro = rollout(rules, ctx, rng)
        bad = replay_exact(rules, ro)
        assert not bad, f"{mech.title} n={n} m={m}: {bad[:3]}"
        total += ctx.B
    return total


# -- differential: random legal play -------------------------------------------------------------


def test_second_price_bundle_random_play_matches_exact() -> None:
    assert differential(SecondPriceBundle(), auctions, AUCTION_CASES, 1700, 1) >= 10_000


@pytest.mark.parametrize(
    ("revenue", "per_case"),
    [("best_belief", 1100), ("knowledge_benchmark", 300), ("collusion_leveraging", 300)],
)
def test_mixture_random_play_matches_exact(revenue: str, per_case: int) -> None:
    mech = SecondPriceBundle(mixture=revenue, c="1/2")
    assert isinstance(mech, Mixture)
    differential(mech, auctions, AUCTION_CASES, per_case, 2)


def test_mixture_of_two_auctions_shares_the_bid_phase() -> None:
    mech = Mixture(SecondPriceBundle(), "1/3")
    assert differential(mech, auctions, AUCTION_CASES[:3], 300, 3) == 900


def test_perfect_revenue_random_play_matches_exact() -> None:
    assert differential(PerfectRevenue(), states, STATE_CASES, 1700, 4) >= 10_000


def test_hope_random_play_matches_exact() -> None:
    assert differential(HopeForTheBest(), states, STATE_CASES, 1700, 5) >= 10_000
    # agreement is frequent at the smallest size: both branches are compared
    rng = np.random.default_rng(6)
    mech = HopeForTheBest()
    rules = batched_rules(mech, EnvSpec(2, 1, 1, 1))
    ro = rollout(rules, states(rng, 400, 2, 1, 1), rng)
    assert not replay_exact(rules, ro)
    agree = rules.outcome(ro.final).state >= 0
    assert 0 < agree.sum() < 400


def test_perfect_revenue_prices_within_1e9_at_large_values_and_tiny_constants() -> None:
    """Values up to 10^4 (prices up to n·10^4) and ε^d_j down to 10^−20: float64 keeps every
    price within 1e-9 of the exact Fraction."""
    n = 3
    eps = Fraction(1, 31)
    rows = [
        [eps * Fraction(1, 10 ** (3 * (d * n + j + 1))) for j in range(n)] for d in range(n - 1)
    ]
    mech = PerfectRevenue(eps=eps, eps_raise=rows)
    rng = np.random.default_rng(7)
    for cap, B in ((10_000, 40), (3, 300)):
        ctx = states(rng, B, n, 3, cap)
        rules = batched_rules(mech, spec_for(mech, n, 3, cap))
        agents = batched_agents("perfect_revenue")
        for pol in (agents.predicted, agents.deviations["overraise"], None):
            policy = None if pol is None else scripted(rules, ctx, pol, rng)
            ro = rollout(rules, ctx, rng, policy)
            assert not replay_exact(rules, ro, tol=1e-9)


def _concat(a: BatchState, b: BatchState) -> BatchState:
    """Two batches' states as one (chance logs padded with −1 for the other part)."""
    Ba, Bb = len(a.phase), len(b.phase)
    chance = [np.concatenate([c, np.full(Bb, -1)]) for c in a.chance]
    chance += [np.concatenate([np.full(Ba, -1), c]) for c in b.chance]
    return BatchState(
        np.concatenate([a.phase, b.phase]),
        np.concatenate([a.acting, b.acting]),
        {k: np.concatenate([a.data[k], b.data[k]]) for k in a.data},
        chance,
    )


@pytest.mark.parametrize(
    ("make", "build", "ahead"),
    [
        (auctions, lambda: SecondPriceBundle(mixture="best_belief"), 1),
        (auctions, lambda: SecondPriceBundle(mixture="collusion_leveraging"), 1),
        (states, PerfectRevenue, 1),
        (states, PerfectRevenue, 3),
        (states, HopeForTheBest, 1),
        (auctions, SecondPriceBundle, 1),
    ],
)
def test_episodes_at_different_phases_in_one_batch(make: Any, build: Any, ahead: int) -> None:
    """Half of the batch ``ahead`` decisions further than the other half (as after an
    auto-reset): the rules advance each episode from its own phase."""
    rng = np.random.default_rng(17)
    mech = build()
    n, m, cap = 3, 2, 3
    rules = batched_rules(mech, spec_for(mech, n, m, cap))
    ca, cb = make(rng, 200, n, m, cap), make(rng, 200, n, m, cap)
    sa, sb = rules.reset(ca, rng), rules.reset(cb, rng)
    actions, acting, masks = [], [], []
    idle_b = np.zeros((cb.B, n), dtype=bool)
    for _ in range(ahead):
        mk = rules.masks(sa)
        act = sample_actions(rules.layout, mk, rng)
        actions.append(np.concatenate([act, np.zeros((cb.B, *act.shape[1:]), np.int64)]))
        acting.append(np.concatenate([sa.acting, idle_b]))
        masks.append(np.concatenate([mk, rules.masks(sb)]))
        sa = rules.step(ca, sa, act, rng)
    ctx = ContextBatch.from_contexts([*ca.contexts, *cb.contexts])
    state = _concat(sa, sb)
    assert len(set(state.phase.tolist())) > 1 or state.done[: ca.B].all()
    assert not replay_exact(rules, play_on(rules, ctx, state, rng, actions, acting, masks))


# -- node-level checks: masks, public features, agents, menus -----------------------------------


def walk(
    rules: Any,
    ctx: ContextBatch,
    rng: np.random.Generator,
    batched_policy: Any = None,
    exact_policy: Any = None,
    menus: bool = False,
) -> int:
    """Roll a batch out (random play or ``batched_policy``), recording public features and
    menus per step; then walk every episode on the exact engine and compare, at every decision
    node, public features of every player, the exact policy's actions and the menus. Returns
    the number of decision nodes compared."""
    mech, spec, layout = rules.mech, rules.spec, rules.layout
    n = spec.n
    feats: list[list[np.ndarray]] = []
    menu_log: list[list[tuple[np.ndarray, np.ndarray]]] = []
    bmenu = batched_agents(mech.name).menu if menus else None

    def policy(state: Any, masks: np.ndarray) -> np.ndarray:
        feats.append([rules.public_features(state, p) for p in range(n)])
        if bmenu is not None:
            menu_log.append([bmenu(rules, ctx, state, p) for p in range(n)])
        if batched_policy is None:
            return sample_actions(layout, masks, rng)
        acts = batched_policy.act(rules, ctx, state, list(range(n)), rng)
        pos = layout.offsets[:-1] + acts
        legal = np.take_along_axis(masks, pos, axis=2).astype(bool)
        assert legal[state.acting].all(), "batched agent plays a masked action"
        return acts

    ro = rollout(rules, ctx, rng, policy)
    assert not replay_exact(rules, ro)
    exact_menu = AGENTS[mech.name].menu if menus else None
    nodes = 0
    for b in range(ctx.B):
        pol = exact_policy(ctx.context(b)) if exact_policy is not None else None

        def visit(t: int, st: Any, node: Decision, ec: Any, b: int = b, pol: Any = pol) -> None:
            nonlocal nodes
            for p in range(n):
                want = mech.public_features(st, p, spec)
                np.testing.assert_array_equal(feats[t][p][b], want, err_msg=f"b={b} t={t} p={p}")
            for p in node.players:
                vec = ro.actions[t][b, p]
                if pol is not None:
                    exact = mech.encode(st, p, pol.act(mech, ec, st, p), spec, layout)
                    assert np.array_equal(exact, vec), f"b={b} {node.phase} p={p}: {exact} {vec}"
                if exact_menu is not None:
                    _compare_menu(mech, ec, st, p, spec, layout, menu_log[t][p], b, exact_menu)
            if exact_menu is not None:
                for p in set(range(n)) - set(node.players):
                    assert not menu_log[t][p][1][b].any(), "a menu for a player who does not act"
            nodes += 1

        walk_exact(rules, ro, b, visit)
    return nodes


def _compare_menu(
    mech: Any, ec: Any, st: Any, p: int, spec: EnvSpec, layout: Any, got: Any, b: int, fn: Any
) -> None:
    acts, valid = got
    entries = fn(mech, ec, st, p)
    assert not valid[b, len(entries) :].any()
    for j, (label, action) in enumerate(entries):
        try:
            vec = mech.encode(st, p, action, spec, layout)
        except OutOfSpaceError:
            assert not valid[b, j], f"entry {label} is off the grid but valid"
            continue
        assert valid[b, j], f"entry {j} ({label}) invalid"
        assert np.array_equal(acts[b, j], vec), f"entry {j} ({label}): {acts[b, j]} vs {vec}"


def _exact_factory(name: str, dev: str | None) -> Any:
    agents = AGENTS[name]
    if dev is None:
        return agents.predicted
    rng = np.random.default_rng(0)
    return lambda ctx: agents.deviations[dev](ctx, rng)


DETERMINISTIC = {
    "second_price_bundle": [None, "no_collusion", "underbid", "overbid"],
    "perfect_revenue": [
        None,
        "underprice",
        "overprice",
        "no_raise",
        "overraise",
        "always_yes",
        "always_no",
        "individual",
    ],
    "hope_for_the_best": [None, "scaled_half", "zero"],
}


MIXABLE = ("best_belief", "knowledge_benchmark", "collusion_leveraging")


def _mixture(revenue: str) -> Any:
    return lambda: SecondPriceBundle(mixture=revenue, c="1/2")


def _policy_cases() -> list[tuple[str, Any, Any, str | None]]:
    out = []
    for dev in DETERMINISTIC["second_price_bundle"]:
        out.append(("spb", auctions, SecondPriceBundle, dev))
        for rev in MIXABLE:
            out.append((f"mix-{rev}", auctions, _mixture(rev), dev))
    for dev in DETERMINISTIC["perfect_revenue"]:
        out.append(("m5", states, PerfectRevenue, dev))
    for dev in DETERMINISTIC["hope_for_the_best"]:
        out.append(("hope", states, HopeForTheBest, dev))
    return out


@pytest.mark.parametrize(("label", "make", "build", "dev"), _policy_cases())
def test_batched_agents_equal_exact_agents_at_every_node(
    label: str, make: Any, build: Any, dev: str | None
) -> None:
    mech = build()
    agents = batched_agents(mech.name)
    pol = agents.predicted if dev is None else agents.deviations[dev]
    rng = np.random.default_rng(11)
    cases = AUCTION_CASES[:5] if make is auctions else STATE_CASES[:5]
    for n, m, cap, co, shared, *rest in cases:
        ctx = make(rng, 40, n, m, cap, co, shared, *rest)
        # a grid wide enough for every scripted amount (over-bids and over-raises included)
        spec = spec_for(mech, n, m, cap, 2 * mech.default_price_cap(n, cap) + 2)
        rules = batched_rules(mech, spec)
        assert walk(rules, ctx, rng, pol, _exact_factory(mech.name, dev)) > 0


@pytest.mark.parametrize(
    ("make", "build"),
    [
        (auctions, SecondPriceBundle),
        *((auctions, _mixture(rev)) for rev in MIXABLE),
        (states, PerfectRevenue),
        (states, HopeForTheBest),
    ],
)
def test_batched_menus_equal_exact_menus(make: Any, build: Any) -> None:
    """At every node visited by random play and by predicted play, on the env's own grid
    (where some over-bids leave it and must be marked invalid)."""
    mech = build()
    rng = np.random.default_rng(12)
    cases = AUCTION_CASES[:5] if make is auctions else STATE_CASES[:5]
    for n, m, cap, co, shared, *rest in cases:
        ctx = make(rng, 30, n, m, cap, co, shared, *rest)
        rules = batched_rules(mech, spec_for(mech, n, m, cap))
        walk(rules, ctx, rng, None, None, menus=True)
        walk(rules, ctx, rng, batched_agents(mech.name).predicted, None, menus=True)


def test_random_deviations_play_legal_actions() -> None:
    rng = np.random.default_rng(13)
    for make, mech, dev in (
        (auctions, SecondPriceBundle(), "random"),
        (auctions, SecondPriceBundle(mixture="best_belief"), "random"),
        (states, PerfectRevenue(), "random"),
        (states, PerfectRevenue(), "random_answers"),
        (states, HopeForTheBest(), "random"),
    ):
        ctx = make(rng, 200, 3, 2, 3)
        rules = batched_rules(mech, spec_for(mech, 3, 2, 3))
        walk(rules, ctx, rng, batched_agents(mech.name).deviations[dev])


def test_predicted_m5_reaches_msw_and_the_revenue_bound() -> None:
    """Theorems 1–2 on the batched path: under θ̄/Θ̄ every episode ends at a welfare-maximising
    state (MSW > 0) with REV ≥ (1 − 3εn)·MSW."""
    rng = np.random.default_rng(14)
    mech = PerfectRevenue()
    g = StatesGenerator(3, 3, 4, "random", True, positive_welfare=True)
    ctx = ContextBatch.from_contexts([g.sample(rng) for _ in range(500)])
    rules = batched_rules(mech, spec_for(mech, 3, 3, 4))
    ro = rollout(rules, ctx, rng, scripted(rules, ctx, batched_agents(mech.name).predicted, rng))
    out = rules.outcome(ro.final)
    msw = ctx.values.sum(axis=1).max(axis=1)
    np.testing.assert_array_equal(ctx.welfare(out), msw)
    assert (out.revenue >= (1 - 3 * float(mech.constants(3).eps) * 3) * msw - 1e-9).all()


# -- typed errors ---------------------------------------------------------------------------------


def test_bad_actions_raise_typed_errors() -> None:
    rng = np.random.default_rng(15)
    mech = PerfectRevenue()
    rules = batched_rules(mech, spec_for(mech, 3, 2, 3))
    ctx = states(rng, 4, 3, 2, 3)
    state = rules.reset(ctx, rng)
    acts = sample_actions(rules.layout, rules.masks(state), rng)
    acts[2, 0, rules.layout.index["state"]] = 7
    with pytest.raises(OutOfSpaceError, match="player_0 in phase 'propose'"):
        rules.step(ctx, state, acts, rng)
    acts = sample_actions(rules.layout, rules.masks(state), rng)
    acts[1, 0, rules.layout.index["answer"]] = 1
    with pytest.raises(IllegalActionError, match="field 'answer'"):
        rules.step(ctx, state, acts, rng)
    spb = batched_rules(SecondPriceBundle(), EnvSpec(2, 1, 2, 2))
    ctx = auctions(rng, 3, 2, 1, 2)
    state = spb.reset(ctx, rng)
    with pytest.raises(OutOfSpaceError, match="shape"):
        spb.step(ctx, state, np.zeros((3, 2, 5), dtype=np.int64), rng)
    acts = np.zeros((3, 2, 2), dtype=np.int64)
    acts[1, 1, spb.layout.index["bid_value"]] = 3
    with pytest.raises(OutOfSpaceError, match=r"player_1 in phase 'bid'.*'bid_value' = 3"):
        spb.step(ctx, state, acts, rng)
    hope = batched_rules(HopeForTheBest(), EnvSpec(2, 2, 3, 3))
    ctx = states(rng, 3, 2, 2, 3)
    state = hope.reset(ctx, rng)
    acts = np.zeros((3, 2, 4), dtype=np.int64)
    acts[2, 0, 3] = -1
    with pytest.raises(OutOfSpaceError, match="player_0 in phase 'report'"):
        hope.step(ctx, state, acts, rng)


def test_batches_of_the_wrong_kind_or_size_are_refused() -> None:
    rng = np.random.default_rng(16)
    m5 = batched_rules(PerfectRevenue(), EnvSpec(3, 2, 3, 9))
    with pytest.raises(ContextError, match="needs 'states' contexts"):
        m5.reset(auctions(rng, 2, 3, 2, 3), rng)
    with pytest.raises(ContextError, match="sized for n=3"):
        m5.reset(states(rng, 2, 2, 2, 3), rng)
    for mech in (SecondPriceBundle(), SecondPriceBundle(mixture="best_belief")):
        rules = batched_rules(mech, EnvSpec(3, 2, 3, 3))
        with pytest.raises(ContextError, match="needs 'auction' contexts"):
            rules.reset(states(rng, 2, 3, 4, 3), rng)
        with pytest.raises(ContextError, match="3 goods"):
            rules.reset(auctions(rng, 2, 3, 3, 3), rng)
    hope = batched_rules(HopeForTheBest(), EnvSpec(3, 2, 3, 3))
    with pytest.raises(ContextError, match="3 states"):
        hope.reset(states(rng, 2, 3, 3, 3), rng)


# -- properties ----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 4),
    m=st.integers(1, 3),
    cap=st.integers(1, 6),
    co=st.sampled_from(["independent", "random", "pair", "grand"]),
    shared=st.booleans(),
    which=st.sampled_from(["spb", "mix", "m5", "hope"]),
)
def test_utility_is_value_minus_price_and_rewards_are_coalition_totals(
    seed: int, n: int, m: int, cap: int, co: str, shared: bool, which: str
) -> None:
    rng = np.random.default_rng(seed)
    mech = {
        "spb": SecondPriceBundle,
        "mix": lambda: SecondPriceBundle(mixture="best_belief"),
        "m5": PerfectRevenue,
        "hope": HopeForTheBest,
    }[which]()
    make = auctions if mech.context_kind == "auction" or isinstance(mech, Mixture) else states
    ctx = make(rng, 64, n, m, cap, co, shared)
    rules = batched_rules(mech, spec_for(mech, n, m, cap))
    agents = batched_agents(mech.name)
    for pol in (None, agents.predicted):
        policy = None if pol is None else scripted(rules, ctx, pol, rng)
        ro = rollout(rules, ctx, rng, policy)
        check_utilities_and_rewards(ctx, rules, ro.final)
