"""Differential tests of the batched path of M1 (with and without the seller's reserve), M2
and VCG against the exact engine: rules, public features, scripted agents and menus."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
from batched_support import (
    FeatureRecorder,
    batched_policy,
    check_agent,
    check_features,
    check_utilities_and_rewards,
    context_batch,
    play_on,
    rules_for,
    scripted,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.batched import (
    BatchState,
    Rollout,
    batched_rules,
    replay_exact,
    rollout,
    sample_actions,
)
from mechgym.envs.engine.game import EnvSpec, Mechanism
from mechgym.envs.mechanisms.best_belief import BestBelief
from mechgym.envs.mechanisms.normal_form import NormalForm
from mechgym.envs.mechanisms.vcg import VCG
from mechgym.envs.model.generators import make_generator

# (generator spec, episodes): ties (small caps), edge sizes, every belief kind, coalitions
# with and without shared rewards. 10 400 episodes per mechanism in all.
CONFIGS = [
    ("uniform:n=3,m=2,cap=9,belief=wrong,coalitions=random,shared=true", 2000),
    ("uniform:n=3,m=2,cap=9,belief=none,coalitions=random,shared=false", 2000),
    ("uniform:n=3,m=2,cap=2,belief=exact,coalitions=pair,shared=true", 2000),
    ("uniform:n=2,m=1,cap=2,belief=wrong,coalitions=random,shared=true", 1600),
    ("additive:n=2,m=2,cap=4,belief=noisy,coalitions=grand,shared=false", 1000),
    ("single-minded:n=4,m=3,cap=5,belief=wrong,coalitions=random,shared=true", 1000),
    ("uniform:n=4,m=3,cap=3,belief=exact,coalitions=random,shared=false", 800),
]

MECHS = ["best_belief", "best_belief_reserve", "normal_form", "vcg"]


def _reserve(n: int, m: int, rng: np.random.Generator) -> Offer:
    """A random seller's reserve over ``m`` goods for ``n`` players (prices 1..3)."""
    owners = rng.integers(0, n + 1, size=m)
    alloc = [sum(1 << g for g in range(m) if owners[g] == j + 1) for j in range(n)]
    prices = [int(rng.integers(1, 4)) if b else 0 for b in alloc]
    return Offer(tuple(alloc), tuple(prices))


def _mechanism(name: str, n: int, m: int, rng: np.random.Generator) -> Mechanism:
    if name == "best_belief":
        return BestBelief(eps="1/10")
    if name == "best_belief_reserve":
        return BestBelief(eps="1/7", reserve=_reserve(n, m, rng))
    if name == "normal_form":
        return NormalForm(eps="1/3")
    return VCG()


# -- rules: random legal play ------------------------------------------------------------------


@pytest.mark.parametrize("name", MECHS)
def test_random_play_matches_exact_engine(name: str) -> None:
    total = 0
    for k, (spec_text, B) in enumerate(CONFIGS):
        rng = np.random.default_rng(1000 * k + 7)
        ctx = context_batch(spec_text, B, seed=k)
        rules = rules_for(_mechanism(name, ctx.n, ctx.m, rng), spec_text)
        rec = FeatureRecorder(rules, rng)
        ro = rollout(rules, ctx, rng, policy=rec)
        assert ro.final.done.all()
        bad = replay_exact(rules, ro)
        assert not bad, f"{spec_text}: {len(bad)} mismatches, first {bad[:3]}"
        check_features(rules, ro, rec.features, episodes=60)
        total += B
    assert total >= 10_000


def _idle_rows_allow_only_zero(name: str) -> None:
    rng = np.random.default_rng(3)
    spec_text = CONFIGS[0][0]
    ctx = context_batch(spec_text, 300, seed=3)
    rules = rules_for(_mechanism(name, ctx.n, ctx.m, rng), spec_text)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def pol(state: BatchState, masks: np.ndarray) -> np.ndarray:
        seen.append((state.acting.copy(), masks))
        return sample_actions(rules.layout, masks, rng)

    rollout(rules, ctx, rng, policy=pol)
    idle = rules.layout.mask({})
    assert len(seen) >= 1
    for acting, masks in seen:
        assert (masks[~acting] == idle).all()


@pytest.mark.parametrize("name", MECHS)
def test_idle_players_masks_allow_only_zero(name: str) -> None:
    # replay_exact compares the acting players' masks; the others must allow only 0
    _idle_rows_allow_only_zero(name)


def _merge_states(live: np.ndarray, a: BatchState, b: BatchState) -> BatchState:
    """Episodes ``live`` from ``a``, the others from ``b`` (whose chance log is empty)."""
    assert not b.chance

    def pick(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.where(live.reshape(live.shape + (1,) * (x.ndim - 1)), x, y)

    data = {k: pick(a.data[k], b.data[k]) for k in a.data}
    chance = [np.where(live, c, -1) for c in a.chance]
    return BatchState(pick(a.phase, b.phase), pick(a.acting, b.acting), data, chance)


@pytest.mark.parametrize("name", MECHS)
def test_episodes_at_different_phases_step_together(name: str) -> None:
    # half the batch is one decision ahead (as after an auto-reset of the other half)
    spec_text, B = CONFIGS[0][0], 600
    rng = np.random.default_rng(21)
    ctx = context_batch(spec_text, B, seed=21)
    rules = rules_for(_mechanism(name, ctx.n, ctx.m, rng), spec_text)
    ahead = np.arange(B) % 2 == 0
    fresh = rules.reset(ctx, rng)
    masks0 = rules.masks(fresh)
    acts0 = sample_actions(rules.layout, masks0, rng)
    state = _merge_states(ahead, rules.step(ctx, fresh, acts0, rng), rules.reset(ctx, rng))
    ro = play_on(rules, ctx, state, rng, [acts0], [fresh.acting & ahead[:, None]], [masks0])
    bad = replay_exact(rules, ro)
    assert not bad, bad[:3]


def test_seller_reserve_leads_and_charges_nobody() -> None:
    # A reserve above every announcement: heads allocates nothing, refusals charge nobody.
    spec_text = "uniform:n=3,m=2,cap=9,belief=exact"
    ctx = context_batch(spec_text, 400, seed=5)
    mech = BestBelief(reserve=Offer((1, 2, 0), (30, 30, 0)))
    spec = EnvSpec(3, 2, 9, 9)
    rules = batched_rules(mech, spec)
    rng = np.random.default_rng(5)
    ro = rollout(rules, ctx, rng)
    assert not replay_exact(rules, ro)
    d = ro.final.data
    assert d["seller_leads"].all()
    out = rules.outcome(ro.final)
    heads = d["coin"] == 0
    assert heads.any() and (~heads).any()
    assert (out.alloc[heads] == 0).all()
    # the winner pays nothing for refusals: its price is minus its reward at most
    assert (out.prices[~heads].sum(axis=1) <= 2 * 30).all()


# -- scripted agents -------------------------------------------------------------------------

EXACT_POLICIES = {
    "best_belief": ["overbid", "underbid", "always_yes", "always_no"],
    "normal_form": ["overbid", "underbid", "always_yes", "always_no"],
    "vcg": ["collusive_overbid", "underbid"],
}

AGENT_CONFIGS = [
    ("uniform:n=3,m=2,cap=9,belief=wrong,coalitions=random,shared=true", 150),
    ("uniform:n=2,m=1,cap=2,belief=exact,coalitions=pair,shared=true", 80),
    ("single-minded:n=4,m=3,cap=5,belief=none,coalitions=random,shared=false", 60),
]


def _check_agent(
    key: str, which: str, spec_text: str, B: int, seed: int, wide: bool
) -> tuple[int, int]:
    """Roll a batch out with a batched scripted policy and compare, at every visited node,
    its actions (and, for predicted play, every player's batched menu) with the exact ones.
    ``wide``: a price grid up to twice the value cap, which fits every scripted offer.
    Returns the numbers of actions compared and of exact actions beyond the grid."""
    rng = np.random.default_rng(seed)
    ctx = context_batch(spec_text, B, seed=100 + seed)
    cap = make_generator(spec_text).value_cap
    rules = rules_for(_mechanism(key, ctx.n, ctx.m, rng), spec_text, 2 * cap if wide else None)
    compared, beyond, _ = check_agent(key.removesuffix("_reserve"), which, rules, ctx, rng)
    return compared, beyond


@pytest.mark.parametrize("key", ["best_belief", "best_belief_reserve", "normal_form", "vcg"])
def test_batched_agents_and_menus_match_exact_agents(key: str) -> None:
    name = key.removesuffix("_reserve")
    module = "best_belief" if name == "normal_form" else name
    importlib.import_module(f"mechgym.agents.{module}")  # registers the exact agents
    for which in ["predicted", *EXACT_POLICIES[name]]:
        for k, (spec_text, B) in enumerate(AGENT_CONFIGS):
            compared, beyond = _check_agent(key, which, spec_text, B, k, wide=True)
            assert compared > 0 and beyond == 0, (which, spec_text, beyond)


def test_overbids_beyond_the_grid_are_written_at_its_top() -> None:
    # on the default grid (prices up to the value cap) some exact overbids do not fit;
    # every other batched action still equals the exact one and every action is legal
    spec_text = AGENT_CONFIGS[0][0]
    compared, beyond = _check_agent("best_belief", "overbid", spec_text, 150, 0, False)
    assert compared > 0 and beyond > 0
    # menu entries beyond the grid are marked invalid (checked inside)
    _check_agent("normal_form", "predicted", spec_text, 100, 1, False)


def _play(name: str, which: str, spec_text: str, B: int, seed: int) -> tuple[Rollout, Any]:
    """A batch played by a batched scripted policy of ``name`` (all players)."""
    pol = batched_policy(name, which)
    ctx = context_batch(spec_text, B, seed=seed)
    rules = rules_for(_mechanism(name, ctx.n, ctx.m, np.random.default_rng(seed)), spec_text)
    rng = np.random.default_rng(seed)
    return rollout(rules, ctx, rng, policy=scripted(rules, ctx, pol, rng)), rules


@pytest.mark.parametrize("which", ["random", "random_answers"])
def test_random_deviations_are_legal(which: str) -> None:
    ro, rules = _play("best_belief", which, CONFIGS[0][0], 500, seed=9)
    assert not replay_exact(rules, ro)
    answers = ro.final.data["answers"]
    assert (answers == 1).any() and (answers == -1).any()


def test_coalition_members_accept_their_winner_offer() -> None:
    spec_text = "uniform:n=3,m=2,cap=9,belief=exact,coalitions=grand,shared=true"
    ro, _ = _play("best_belief", "predicted", spec_text, 400, seed=11)
    d = ro.final.data
    asked = (d["lead_alloc"] != 0) & (d["coin"] == 1)[:, None]
    assert asked.any()
    assert (d["answers"][asked] == 1).all()


# -- invariants ------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(MECHS),
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 4),
    m=st.integers(1, 3),
    shared=st.booleans(),
)
def test_utility_is_value_minus_price_and_shared_rewards_are_coalition_totals(
    name: str, seed: int, n: int, m: int, shared: bool
) -> None:
    spec_text = (
        f"uniform:n={n},m={m},cap=6,belief=wrong,coalitions=random,"
        f"shared={'true' if shared else 'false'}"
    )
    rng = np.random.default_rng(seed)
    ctx = context_batch(spec_text, 64, seed=seed)
    rules = rules_for(_mechanism(name, n, m, rng), spec_text)
    ro = rollout(rules, ctx, rng)
    check_utilities_and_rewards(ctx, rules, ro.final)
