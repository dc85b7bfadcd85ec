"""Differential tests of the batched path of M6 (budget-balanced market) and its foils
Naive-1..4 against the exact engine: rules, masks, public features, scripted agents, menus,
and the invariants of market outcomes."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from batched_support import (
    FeatureRecorder,
    check_features,
    check_utilities_and_rewards,
    scripted,
    walk_exact,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.agents.base import AGENTS
from mechgym.agents.batched import batched_agents
from mechgym.agents.budget_balanced_market import truthful_proposal, truthful_proposals
from mechgym.envs.engine.batched import (
    BatchedRules,
    BatchState,
    ContextBatch,
    Rollout,
    batched_rules,
    replay_exact,
    rollout,
    sample_actions,
)
from mechgym.envs.engine.errors import ContextError, IllegalActionError, OutOfSpaceError
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Mechanism,
)
from mechgym.envs.mechanisms.budget_balanced_market import BudgetBalancedMarket
from mechgym.envs.mechanisms.foils import NaiveMarket1, NaiveMarket2, NaiveMarket3, NaiveMarket4
from mechgym.envs.model.batched_generators import make_batch_generator
from mechgym.envs.model.market import MarketGenerator, market_msw

# (generator spec, episodes, M6's (ε, δ) or None for the defaults). Large δ reaches M′
# often; k = 1 makes every value 0 (E is optimal, ties everywhere); n = 2, m = 1 and
# n = 4, m = 3 are the edge sizes. 10 400 episodes per mechanism in all.
CONFIGS: list[tuple[str, int, tuple[str, str] | None]] = [
    ("market:n=3,m=2,k=3,coalitions=random,shared=true", 2400, None),
    ("market:n=3,m=2,k=3,coalitions=random,shared=false", 2000, ("1/16", "1/65")),
    ("market:n=2,m=1,k=2,coalitions=pair,shared=true", 2000, ("9/100", "2/45")),
    ("market:n=2,m=2,k=1,coalitions=grand,shared=false", 1000, None),
    ("market:n=3,m=2,k=2,coalitions=grand,shared=true", 1200, ("1/20", "1/41")),
    ("market:n=4,m=3,k=3,coalitions=random,shared=true", 1000, ("1/21", "1/85")),
    ("market:n=4,m=2,k=4,coalitions=pair,shared=false", 800, None),
]

MECHS = ["budget_balanced_market", "naive_market_1", "naive_market_2", "naive_market_3"]
MECHS += ["naive_market_4"]


def _mechanism(name: str, consts: tuple[str, str] | None) -> Mechanism:
    if name == "budget_balanced_market":
        return BudgetBalancedMarket() if consts is None else BudgetBalancedMarket(*consts)
    if name == "naive_market_3":
        return NaiveMarket3(eps="1/3")  # a large ε reaches c1 tails often
    return {"naive_market_1": NaiveMarket1, "naive_market_2": NaiveMarket2}.get(
        name, NaiveMarket4
    )()


def _batch(spec: str, B: int, seed: int) -> ContextBatch:
    return make_batch_generator(spec).sample(B, np.random.default_rng(seed))


def _rules(mech: Mechanism, ctx: ContextBatch, price_cap: int | None = None) -> BatchedRules:
    b = 1 << (int(ctx.k) - 1)  # type: ignore[operator]
    cap = price_cap or mech.default_price_cap(ctx.n, b)
    return batched_rules(mech, EnvSpec(ctx.n, ctx.m, b, cap))


class _Mixed:
    """Random legal play steered towards every branch: often a budget-balanced proposal in
    range, sometimes (E, 0), and (Naive-1) often unanimous announcements."""

    def __init__(self, rules: BatchedRules, ctx: ContextBatch, rng: np.random.Generator) -> None:
        self.rules, self.ctx, self.rng = rules, ctx, rng

    def __call__(self, state: BatchState, masks: np.ndarray) -> np.ndarray:
        rules, ctx, rng = self.rules, self.ctx, self.rng
        n, lay = rules.spec.n, rules.layout
        acts = sample_actions(lay, masks, rng)
        B = ctx.B
        proposing = state.phase == 0
        u = rng.random(B)
        if isinstance(rules.mech, BudgetBalancedMarket):
            # balanced and in range (no step-a halt) for 60%
            fix = proposing & (u < 0.6)
            acts[fix, 0, lay.index["imbalance"]] = 0
            first = lay.index["price_1"]
            shift = 2 * rules.spec.price_cap
            bound = 1 << int(ctx.k)  # type: ignore[operator]
            price = acts[:, 0, first : first + n - 1] - shift
            inside = np.clip(price, -bound + 1, bound - 1) + shift
            acts[fix, 0, first : first + n - 1] = inside[fix]
        endow = proposing & (u > 0.85)
        assert ctx.endowment is not None
        vec, _ = _encode(rules, ctx.endowment, np.zeros_like(ctx.endowment), ctx)
        acts[endow] = np.where(state.acting[endow][:, :, None], vec[endow][:, None, :], 0)
        if isinstance(rules.mech, NaiveMarket1):
            copy = proposing & (u < 0.5)
            acts[copy] = acts[copy][:, :1, :]
        return acts


def _encode(
    rules: BatchedRules, alloc: np.ndarray, prices: np.ndarray, ctx: ContextBatch
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(rules.mech, BudgetBalancedMarket):
        return rules.encode_proposals(alloc, prices)  # type: ignore[attr-defined]
    return rules.encode_proposals(alloc, prices, ctx.k)  # type: ignore[attr-defined]


def _branches(name: str, final: BatchState) -> set[str]:
    """The exact rules (``Outcome.rule``) that ended the episodes, read off the batch data
    (replay_exact ties them to the exact engine)."""
    d = final.data
    if name == "budget_balanced_market":
        yes = (d["answers"][:, 1:] == 1).all(axis=1) & (d["c0"] == 0)
        hits = {
            "a": d["halt"],
            "b": d["endow"],
            "d": yes,
            "e": d["c1"] == 0,
            "f": d["c2"] == 0,
            "g": d["c2"] == 1,
            "i": d["w"] == 0,
            "j": d["confirm"] == 1,
            "k": d["confirm"] == -1,
        }
    elif name == "naive_market_1":
        hits = {"agree": d["agree"] == 1, "disagree": d["agree"] == -1}
    else:
        answered = (d["answers"][:, 1:] != 0).all(axis=1)
        yes = (d["answers"][:, 1:] == 1).all(axis=1)
        hits = {
            "endowment": ~answered,
            "all-yes": yes,
            "some-no": answered & ~yes,
            "c1-heads": d["c1"] == 0,
            "c1-tails": d["c1"] == 1,
            "c2-heads": d["c2"] == 0,
            "c2-tails": d["c2"] == 1,
        }
    return {rule for rule, hit in hits.items() if hit.any()}


# -- rules: random legal play ------------------------------------------------------------------


@pytest.mark.parametrize("name", MECHS)
def test_random_play_matches_exact_engine(name: str) -> None:
    total = 0
    seen: set[str] = set()
    for k, (spec_text, B, consts) in enumerate(CONFIGS):
        rng = np.random.default_rng(1000 * k + 11)
        ctx = _batch(spec_text, B, seed=k)
        rules = _rules(_mechanism(name, consts), ctx)
        rec = FeatureRecorder(rules, rng, _Mixed(rules, ctx, rng))
        ro = rollout(rules, ctx, rng, policy=rec)
        assert ro.final.done.all()
        bad = replay_exact(rules, ro)
        assert not bad, f"{spec_text}: {len(bad)} mismatches, first {bad[:3]}"
        check_features(rules, ro, rec.features, episodes=40)
        total += B
        seen |= _branches(name, ro.final)
    assert total >= 10_000
    expected = {
        "budget_balanced_market": set("abdefgijk"),
        "naive_market_1": {"agree", "disagree"},
        "naive_market_2": {"endowment", "all-yes", "some-no"},
        "naive_market_3": {"endowment", "all-yes", "c1-heads", "c1-tails"},
        "naive_market_4": {"endowment", "all-yes", "c1-heads", "c2-heads", "c2-tails"},
    }[name]
    assert expected <= seen, expected - seen


@pytest.mark.parametrize("name", MECHS)
def test_wide_price_grids_match_exact_engine(name: str) -> None:
    # a grid beyond (−2^k, 2^k): M6's step a halts on the outer prices, Naive masks cut them
    ctx = _batch("market:n=3,m=2,k=2,coalitions=random,shared=true", 600, seed=21)
    rules = _rules(_mechanism(name, None), ctx, price_cap=7)
    rng = np.random.default_rng(21)
    ro = rollout(rules, ctx, rng, policy=_Mixed(rules, ctx, rng))
    assert not replay_exact(rules, ro)


@pytest.mark.parametrize("name", MECHS)
def test_idle_players_masks_allow_only_zero(name: str) -> None:
    # replay_exact compares the acting players' masks; the others must allow only 0
    rng = np.random.default_rng(3)
    ctx = _batch(CONFIGS[0][0], 300, seed=3)
    rules = _rules(_mechanism(name, None), ctx)
    idle = rules.layout.mask({})
    steps = 0

    def pol(state: BatchState, masks: np.ndarray) -> np.ndarray:
        nonlocal steps
        steps += 1
        assert (masks[~state.acting] == idle).all()
        return sample_actions(rules.layout, masks, rng)

    ro = rollout(rules, ctx, rng, policy=pol)
    assert steps >= 1
    assert (rules.masks(ro.final) == idle).all()


def test_masked_actions_and_wrong_batches_raise_typed_errors() -> None:
    ctx = _batch(CONFIGS[0][0], 8, seed=1)
    rng = np.random.default_rng(1)
    for mech in (BudgetBalancedMarket(), NaiveMarket2()):
        rules = _rules(mech, ctx)
        state = rules.reset(ctx, rng)
        acts = np.zeros((ctx.B, ctx.n, len(rules.layout)), dtype=np.int64)
        acts[3, 0, rules.layout.index["answer"]] = 1  # not read at the proposal
        with pytest.raises(IllegalActionError, match="episode 3"):
            rules.step(ctx, state, acts, rng)
        acts[3, 0] = 0
        acts[3, 0, rules.layout.index["owner_0"]] = ctx.n + 1
        with pytest.raises(OutOfSpaceError, match="owner_0"):
            rules.step(ctx, state, acts, rng)
        with pytest.raises(ContextError):
            rules.reset(_batch("market:n=2,m=2,k=3", 4, seed=0), rng)
    # Naive prices are cut to (−2^k, 2^k) by the mask
    rules = _rules(NaiveMarket1(), ctx, price_cap=20)
    state = rules.reset(ctx, rng)
    acts = np.zeros((ctx.B, ctx.n, len(rules.layout)), dtype=np.int64)
    for j in range(1, ctx.n):
        acts[:, :, rules.layout.index[f"price_{j}"]] = 19  # P_j = 0
    acts[5, 2, rules.layout.index["price_1"]] = 19 + 8  # P_1 = 2^k
    with pytest.raises(IllegalActionError, match="player_2"):
        rules.step(ctx, state, acts, rng)


# -- scripted agents ---------------------------------------------------------------------------

AGENT_CONFIGS = [CONFIGS[0], CONFIGS[2], CONFIGS[5]]


def _exact_policy(name: str, dev: str | None, ctx: Any, rng: np.random.Generator) -> Any:
    agents = AGENTS[name]
    return agents.predicted(ctx) if dev is None else agents.deviations[dev](ctx, rng)


def _deviations(name: str) -> list[str | None]:
    return [None, *(d for d in batched_agents(name).deviations if not d.startswith("random"))]


def _check_agents(
    name: str, dev: str | None, rules: BatchedRules, ro: Rollout, strict: bool
) -> tuple[int, int]:
    """Compare the batched actions of a rollout with the exact agent's at every visited node;
    return (nodes compared, actions the grid cannot hold). ``strict``: every action must be
    on the grid."""
    checked = unencodable = 0
    rng = np.random.default_rng(0)
    for b in range(ro.ctx.B):

        def visit(t: int, s: Any, node: Decision, c: Any, b: int = b) -> None:
            nonlocal checked, unencodable
            policy = _exact_policy(name, dev, c, rng)
            for p in node.players:
                act = policy.act(rules.mech, c, s, p)
                try:
                    vec = rules.mech.encode(s, p, act, rules.spec, rules.layout)
                except (OutOfSpaceError, IllegalActionError):
                    assert not strict, (dev, b, p, act)
                    unencodable += 1
                    continue
                assert np.array_equal(vec, ro.actions[t][b, p]), (dev, b, t, p, act)
                checked += 1

        walk_exact(rules, ro, b, visit)
    return checked, unencodable


@pytest.mark.parametrize("name", MECHS)
def test_batched_agents_match_exact_agents_at_every_node(name: str) -> None:
    batched = batched_agents(name)
    assert set(batched.deviations) == set(AGENTS[name].deviations)
    checked = unencodable = 0
    for k, (spec_text, _, consts) in enumerate(AGENT_CONFIGS):
        ctx = _batch(spec_text, 60, seed=100 + k)
        mech = _mechanism(name, consts)
        # Naive's default grid (±(B−1)) cannot hold every truthful price; 2B holds all
        caps = [None] if name == "budget_balanced_market" else [None, 1 << int(ctx.k)]
        for cap in caps:
            rules = _rules(mech, ctx, cap)
            strict = cap is not None or name == "budget_balanced_market"
            for dev in _deviations(name):
                pol = batched.predicted if dev is None else batched.deviations[dev]
                rng = np.random.default_rng(k)
                ro = rollout(rules, ctx, rng, policy=scripted(rules, ctx, pol, rng))
                assert not replay_exact(rules, ro), (spec_text, dev)
                c, u = _check_agents(name, dev, rules, ro, strict)
                checked += c
                unencodable += u
    assert checked > 1000
    if name != "budget_balanced_market":
        assert unencodable > 0  # the clipped case was met (and the 2B grid held it)


@pytest.mark.parametrize("name", ["budget_balanced_market", "naive_market_2"])
def test_random_deviations_play_legally(name: str) -> None:
    ctx = _batch(CONFIGS[0][0], 400, seed=9)
    rules = _rules(_mechanism(name, None), ctx)
    for dev, pol in batched_agents(name).deviations.items():
        if not dev.startswith("random"):
            continue
        rng = np.random.default_rng(9)

        def policy(
            s: BatchState, mk: np.ndarray, pol: Any = pol, rng: np.random.Generator = rng
        ) -> np.ndarray:
            acts = pol.act(rules, ctx, s, list(range(ctx.n)), rng)
            pos = rules.layout.offsets[:-1] + acts
            assert np.take_along_axis(mk, pos, axis=2).all()
            return acts

        ro = rollout(rules, ctx, rng, policy=policy)
        assert not replay_exact(rules, ro)


def test_truthful_proposals_match_exact_solver() -> None:
    for spec_text, seed in (
        ("market:n=3,m=2,k=3,coalitions=random", 1),
        ("market:n=4,m=3,k=4", 2),
        ("market:n=2,m=1,k=1", 3),
        ("market:n=3,m=7,k=3", 4),  # beyond the batch enumeration: the exact fallback
    ):
        gen = MarketGenerator(**_spec_kwargs(spec_text))
        rng = np.random.default_rng(seed)
        ctxs = [gen.sample(rng) for _ in range(150 if gen.m < 5 else 12)]
        batch = ContextBatch.from_contexts(ctxs)
        alloc, prices = truthful_proposals(batch, np.arange(batch.B))
        for b, c in enumerate(ctxs):
            exact = truthful_proposal(c)
            assert tuple(alloc[b]) == exact.alloc and tuple(prices[b]) == exact.prices
            best, _ = market_msw(c)
            assert c.welfare_of(tuple(alloc[b])) == best


def _spec_kwargs(spec_text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in spec_text.split(":", 1)[1].split(","):
        key, _, val = item.partition("=")
        out[key] = val if key == "coalitions" else int(val)
    return out


# -- menus -------------------------------------------------------------------------------------


def _check_menus(
    name: str, rules: BatchedRules, ctx: ContextBatch, rng: np.random.Generator
) -> tuple[int, int]:
    """Play randomly, comparing the batched menu of every player with the exact menu at
    every visited node; return (entries compared, entries off the grid)."""
    menu = batched_agents(name).menu
    exact_menu = AGENTS[name].menu
    assert menu is not None and exact_menu is not None
    menus: list[list[tuple[np.ndarray, np.ndarray]]] = []

    def policy(s: BatchState, mk: np.ndarray) -> np.ndarray:
        menus.append([menu(rules, ctx, s, p) for p in range(ctx.n)])
        return sample_actions(rules.layout, mk, rng)

    ro = rollout(rules, ctx, rng, policy=policy)
    entries = invalid = 0
    for b in range(ctx.B):

        def visit(t: int, s: Any, node: Decision, c: Any, b: int = b) -> None:
            nonlocal entries, invalid
            for p in range(ctx.n):
                acts, valid = menus[t][p]
                if p not in node.players:
                    assert not valid[b].any()
                    continue
                items = exact_menu(rules.mech, c, s, p)
                assert not valid[b, len(items) :].any()
                for e, (_, action) in enumerate(items):
                    try:
                        vec = rules.mech.encode(s, p, action, rules.spec, rules.layout)
                    except (OutOfSpaceError, IllegalActionError):
                        assert not valid[b, e], (b, t, p, e)
                        invalid += 1
                        continue
                    assert valid[b, e], (b, t, p, e)
                    assert np.array_equal(vec, acts[b, e]), (b, t, p, e)
                    entries += 1

        walk_exact(rules, ro, b, visit)
    return entries, invalid


@pytest.mark.parametrize("name", MECHS)
def test_batched_menu_matches_exact_menu(name: str) -> None:
    entries = invalid = 0
    for k, (spec_text, _, consts) in enumerate((CONFIGS[0], CONFIGS[2], CONFIGS[5])):
        ctx = _batch(spec_text, 100, seed=200 + k)
        rules = _rules(_mechanism(name, consts), ctx)
        e, i = _check_menus(name, rules, ctx, np.random.default_rng(k))
        entries += e
        invalid += i
    assert entries > 500
    if name != "budget_balanced_market":
        assert invalid > 0  # entries off the default grid are marked invalid


# -- invariants --------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 4),
    m=st.integers(1, 3),
    k=st.integers(1, 4),
    coalitions=st.sampled_from(["independent", "random", "pair", "grand"]),
    shared=st.booleans(),
    name=st.sampled_from(MECHS),
    predicted=st.booleans(),
)
def test_market_outcome_invariants(
    seed: int,
    n: int,
    m: int,
    k: int,
    coalitions: str,
    shared: bool,
    name: str,
    predicted: bool,
) -> None:
    spec_text = f"market:n={n},m={m},k={k},coalitions={coalitions},shared={str(shared).lower()}"
    ctx = _batch(spec_text, 64, seed)
    rng = np.random.default_rng(seed)
    rules = _rules(_mechanism(name, None), ctx, None if predicted else 1 << k)
    if predicted:
        pol = batched_agents(name).predicted
        ro = rollout(rules, ctx, rng, policy=scripted(rules, ctx, pol, rng))
    else:
        ro = rollout(rules, ctx, rng, policy=_Mixed(rules, ctx, rng))
    # utility = value of the final bundle − value of the endowed bundle − price; rewards
    # are coalition totals where shared; bundles are disjoint
    check_utilities_and_rewards(ctx, rules, ro.final, atol=1e-9)
    out = rules.outcome(ro.final)
    util = rules.utilities(ctx, ro.final)
    # the destroyed goods are exactly those in no bundle
    used = np.bitwise_or.reduce(out.alloc, axis=1)
    assert ((out.destroyed & used) == 0).all()
    if name == "budget_balanced_market":
        d = ro.final.data
        c2_heads = d["c2"] == 0
        accepted = (d["answers"][:, 1:] == 1).all(axis=1) & (d["c0"] == 0) | c2_heads
        # an implemented proposal is budget balanced (steps d, f); so is (E, 0)
        bb = accepted | d["endow"]
        assert np.allclose(out.prices[bb].sum(axis=1), 0.0, atol=1e-9)
        if predicted:
            # Theorem 1: off M′ (probability 1 − δ), SW = MSW and Σ P = 0
            heads = (d["c0"] == 0) | d["endow"]
            best = np.array([market_msw(ctx.context(b))[0] for b in range(ctx.B)])
            assert np.array_equal(ctx.welfare(out)[heads], best[heads].astype(np.float64))
            assert np.allclose(out.prices[heads].sum(axis=1), 0.0, atol=1e-9)
            # and nobody loses by the predicted play there (individual rationality)
            assert (util[heads] >= -1e-9).all()


# -- exact constants ---------------------------------------------------------------------------


def test_huge_fines_and_discounts_are_exact_floats() -> None:
    # step k's fine n²B/δ + (n−1)ε and step j's prices, on a wide value range
    ctx = _batch("market:n=3,m=2,k=12,coalitions=random", 300, seed=4)
    mech = BudgetBalancedMarket(eps="1/17", delta=Fraction(1, 10**6))
    rules = _rules(mech, ctx)
    rng = np.random.default_rng(4)
    ro = rollout(rules, ctx, rng, policy=_Mixed(rules, ctx, rng))
    assert not replay_exact(rules, ro)


# -- chance ------------------------------------------------------------------------------------


def _probs(mech: Mechanism, s: Any) -> np.ndarray:
    node = mech.node(s)
    assert isinstance(node, Chance)
    return np.array([float(p) for p in node.probs])


@pytest.mark.parametrize("spec_text", [CONFIGS[0][0], CONFIGS[2][0], CONFIGS[5][0]])
def test_chance_probabilities_are_the_exact_ones(spec_text: str) -> None:
    # replay_exact replays the logged indices; the probabilities they were drawn with must
    # be the exact chance nodes' (per number of YES answers where they depend on it)
    from mechgym.envs.mechanisms.budget_balanced_market import MarketProposal

    ctx = _batch(spec_text, 1, seed=0)
    exact_ctx = ctx.context(0)
    n = ctx.n
    moved = MarketProposal((0,) * n, (-1, 1, *(0,) * (n - 2)))  # valid, not (E, 0)
    m6 = BudgetBalancedMarket()
    c = _rules(m6, ctx).constants(int(ctx.k))  # type: ignore[attr-defined]
    # M6 is written once: walk its exact face to each chance node it asks for
    s = m6.resolve(m6.start(exact_ctx), {0: moved})
    assert np.array_equal(_probs(m6, s), c.c0)
    assert np.array_equal(_probs(m6, m6.chance(s, 1)), c.w)
    for y in range(n - 1):
        answers = {i + 1: i < y for i in range(n - 1)}
        s2 = m6.resolve(m6.chance(s, 0), answers)
        assert np.array_equal(_probs(m6, s2), c.c1)
        assert np.array_equal(_probs(m6, m6.chance(s2, 1)), c.c2[y])
    for mech in (NaiveMarket3(eps="1/3"), NaiveMarket4()):
        rules = _rules(mech, ctx)
        proposed = mech.resolve(mech.start(exact_ctx), {0: moved})
        for y in range(n - 1):
            s = mech.resolve(proposed, {i + 1: i < y for i in range(n - 1)})
            if isinstance(mech, NaiveMarket3):
                assert np.array_equal(_probs(mech, s), rules.c1[y])  # type: ignore[attr-defined]
            else:
                assert np.array_equal(_probs(mech, s), rules.c1)  # type: ignore[attr-defined]
                c2 = rules.c2(int(ctx.k))  # type: ignore[attr-defined]
                assert np.array_equal(_probs(mech, mech.chance(s, 1)), c2[y])
