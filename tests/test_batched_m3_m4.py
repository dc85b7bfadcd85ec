"""Differential tests of the batched path of M3 (knowledge benchmark, footnote-4 variant and
positive prices included) and M4 (collusion leveraging) against the exact engine: rules,
public features, scripted agents and menus, and the outcome invariants."""

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
    rules_for,
    scripted,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.agents.base import AGENTS
from mechgym.agents.batched import batched_agents
from mechgym.envs.engine.batched import (
    BatchedRules,
    BatchState,
    ContextBatch,
    Rollout,
    batched_rules,
    check_actions,
    replay_exact,
    rollout,
    sample_actions,
)
from mechgym.envs.engine.errors import (
    ContextError,
    IllegalActionError,
    OutOfSpaceError,
    ParameterError,
)
from mechgym.envs.engine.game import EnvSpec, Mechanism
from mechgym.envs.mechanisms.collusion_leveraging import CollusionLeveraging
from mechgym.envs.mechanisms.knowledge_benchmark import KnowledgeBenchmark

# (generator spec, episodes): ties (small caps), edge sizes (n = 2, m = 1; n = 5, m = 3),
# every belief kind, coalitions with and without shared rewards. 10 400 per mechanism.
CONFIGS = [
    ("uniform:n=3,m=2,cap=9,belief=wrong,coalitions=random,shared=true", 2000),
    ("uniform:n=3,m=2,cap=9,belief=none,coalitions=random,shared=false", 2000),
    ("uniform:n=3,m=2,cap=2,belief=exact,coalitions=pair,shared=true", 2000),
    ("uniform:n=2,m=1,cap=2,belief=wrong,coalitions=random,shared=true", 1600),
    ("additive:n=2,m=2,cap=4,belief=noisy,coalitions=grand,shared=false", 1000),
    ("single-minded:n=4,m=3,cap=5,belief=wrong,coalitions=random,shared=true", 1000),
    ("uniform:n=5,m=3,cap=3,belief=exact,coalitions=random,shared=false", 800),
]

VARIANTS = ["m3", "m3_footnote4", "m3_positive", "m4", "m4_constants"]


def _mechanism(variant: str) -> Mechanism:
    return {
        "m3": lambda: KnowledgeBenchmark(),
        "m3_footnote4": lambda: KnowledgeBenchmark(eps="1/3"),
        "m3_positive": lambda: KnowledgeBenchmark(eps="1/10", positive_prices=True),
        "m4": lambda: CollusionLeveraging(),
        "m4_constants": lambda: CollusionLeveraging(eps="1/2", eps1="1/3", eps2="1/97"),
    }[variant]()


def _random_play(rules: BatchedRules, ctx: ContextBatch, rng: np.random.Generator) -> Any:
    """Random legal play; in M4 a random 60% of the episodes declare a consistent partition
    (the true one or singletons), so that the coins, the sale and the answers are reached
    and not only the abort."""
    layout = rules.layout
    n = rules.spec.n

    def act(state: BatchState, masks: np.ndarray) -> np.ndarray:
        acts = sample_actions(layout, masks, rng)
        if isinstance(rules.mech, CollusionLeveraging):
            k = layout.index["ally_0"]
            ann = state.phase == 0
            consistent = ann & (rng.random(len(ann)) < 0.6)
            lab = ctx.coalition
            same = lab[:, :, None] == lab[:, None, :]
            alone = rng.random(len(ann)) < 0.5
            ally = np.where(alone[:, None, None], np.eye(n, dtype=bool), same)
            acts[consistent, :, k : k + n] = ally[consistent]
        return acts

    return act


# -- rules: random legal play ------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_random_play_matches_exact_engine(variant: str) -> None:
    total = 0
    reached: set[str] = set()
    for k, (spec_text, B) in enumerate(CONFIGS):
        if variant not in ("m3", "m4") and k % 2:
            continue  # the variants' constants only change money: half the configs suffice
        rng = np.random.default_rng(1000 * k + 7)
        ctx = context_batch(spec_text, B, seed=k)
        rules = rules_for(_mechanism(variant), spec_text)
        rec = FeatureRecorder(rules, rng, _random_play(rules, ctx, rng))
        ro = rollout(rules, ctx, rng, policy=rec)
        assert ro.final.done.all()
        bad = replay_exact(rules, ro)
        assert not bad, f"{spec_text}: {len(bad)} mismatches, first {bad[:3]}"
        check_features(rules, ro, rec.features, episodes=40)
        d = ro.final.data
        reached |= {"NO"} if (d["answers"] == -1).any() else set()
        reached |= {"YES"} if (d["answers"] == 1).any() else set()
        if "aborted" in d:
            reached |= {"abort"} if d["aborted"].any() else set()
            reached |= {"random star"} if (d["c1"] > 0).any() else set()
        total += B
    if variant in ("m3", "m4"):
        assert total >= 10_000
    assert {"YES", "NO"} <= reached
    if variant.startswith("m4"):
        assert {"abort", "random star"} <= reached


@pytest.mark.parametrize("variant", ["m3", "m4"])
def test_idle_players_masks_allow_only_zero(variant: str) -> None:
    # replay_exact compares the acting players' masks; the others must allow only 0
    spec_text = CONFIGS[0][0]
    ctx = context_batch(spec_text, 300, seed=3)
    rules = rules_for(_mechanism(variant), spec_text)
    rng = np.random.default_rng(3)
    play = _random_play(rules, ctx, rng)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def pol(state: BatchState, masks: np.ndarray) -> np.ndarray:
        seen.append((state.acting.copy(), masks))
        return play(state, masks)

    rollout(rules, ctx, rng, policy=pol)
    idle = rules.layout.mask({})
    assert len(seen) == 2
    for acting, masks in seen:
        assert (masks[~acting] == idle).all()


def test_mixed_phases_in_onecontext_batch() -> None:
    # Episodes of one batch at different phases (as after an auto-reset) resolve their own
    # pending decisions; the result equals stepping the two halves apart.
    spec_text = CONFIGS[0][0]
    for variant in ("m3", "m4"):
        ctx = context_batch(spec_text, 400, seed=4)
        rules = rules_for(_mechanism(variant), spec_text)
        rng = np.random.default_rng(4)
        play = _random_play(rules, ctx, rng)
        state = rules.reset(ctx, rng)
        first = play(state, rules.masks(state))
        state = rules.step(ctx, state, first, rng)
        asked = np.flatnonzero(state.phase == 1)
        assert len(asked) > 0
        # restart half the asked episodes: they now sit at announce beside the others
        fresh = rules.reset(ctx, rng)
        redo = asked[::2]
        state.phase[redo] = 0
        state.acting[redo] = True
        for key, arr in state.data.items():
            arr[redo] = fresh.data[key][redo]
        masks = rules.masks(state)
        acts = play(state, masks)
        check_actions(rules.layout, masks, acts, state.acting, np.array(rules.phases)[state.phase])
        state = rules.step(ctx, state, acts, rng)
        assert (state.phase[redo] != 0).all()
        assert (state.data["announced"][redo]).all()
        kept = np.setdiff1d(asked, redo)
        assert (state.phase[kept] == -1).all()


def test_bad_batches_and_constants_raise_typed_errors() -> None:
    ctx = context_batch("uniform:n=3,m=2,cap=4", 5, seed=0)
    rules = batched_rules(KnowledgeBenchmark(), EnvSpec(3, 1, 4, 4))
    with pytest.raises(ContextError, match="sized for n=3 and 1"):
        rules.reset(ctx, np.random.default_rng(0))
    with pytest.raises(ParameterError, match="eps2"):
        batched_rules(CollusionLeveraging(eps1="1/100", eps2="1/100"), EnvSpec(3, 2, 4, 4))
    with pytest.raises(ParameterError, match="built for n = 4"):
        batched_rules(CollusionLeveraging(n=4), EnvSpec(3, 2, 4, 4))


@pytest.mark.parametrize("variant", ["m3", "m4"])
def test_bad_actions_raise_typed_errors_and_leave_the_state(variant: str) -> None:
    spec_text = CONFIGS[0][0]
    ctx = context_batch(spec_text, 50, seed=6)
    rules = rules_for(_mechanism(variant), spec_text)
    rng = np.random.default_rng(6)
    state = rules.reset(ctx, rng)
    good = sample_actions(rules.layout, rules.masks(state), rng)
    before = {k: v.copy() for k, v in state.data.items()}
    # an announcement that reads the answer field: masked at this phase
    bad = good.copy()
    bad[7, 2, rules.layout.index["answer"]] = 1
    with pytest.raises(IllegalActionError, match=r"player_2.*announce.*episode 7.*answer"):
        rules.step(ctx, state, bad, rng)
    bad = good.copy()
    bad[3, 1, rules.layout.index["price_0"]] = 10_000
    with pytest.raises(OutOfSpaceError, match=r"player_1.*episode 3.*price_0"):
        rules.step(ctx, state, bad, rng)
    with pytest.raises(OutOfSpaceError, match="integers"):
        rules.step(ctx, state, good.astype(np.float64) + 0.5, rng)
    assert (state.phase == 0).all() and not state.chance
    for k, v in state.data.items():
        assert np.array_equal(v, before[k])
    # a valid step leaves the state it came from as it was
    after = rules.step(ctx, state, good, rng)
    assert (state.phase == 0).all() and not state.chance and (after.phase != 0).all()
    for k, v in state.data.items():
        assert np.array_equal(v, before[k])


# -- scripted agents -------------------------------------------------------------------------

EXACT_POLICIES = {
    "knowledge_benchmark": ["overbid", "underbid", "always_yes", "always_no", "random_answers"],
    "collusion_leveraging": [
        "inconsistent",
        "alone",
        "underbid",
        "overbid",
        "always_yes",
        "always_no",
        "random_answers",
    ],
}

AGENT_CONFIGS = [
    ("uniform:n=3,m=2,cap=9,belief=wrong,coalitions=random,shared=true", 120),
    ("uniform:n=2,m=1,cap=2,belief=exact,coalitions=pair,shared=true", 60),
    ("single-minded:n=4,m=2,cap=5,belief=noisy,coalitions=random,shared=false", 40),
]

MECH_OF = {"knowledge_benchmark": "m3_footnote4", "collusion_leveraging": "m4"}


def _check_agent(
    name: str, which: str, spec_text: str, B: int, seed: int, variant: str | None = None
) -> tuple[int, int]:
    """Roll a batch out with a batched scripted policy and compare, at every visited node,
    its actions (and, for predicted play, every player's batched menu) with the exact ones.
    Returns how many actions and menu entries were compared."""
    rng = np.random.default_rng(seed)
    ctx = context_batch(spec_text, B, seed=100 + seed)
    rules = rules_for(_mechanism(variant or MECH_OF[name]), spec_text)
    compared, _, entries = check_agent(name, which, rules, ctx, rng)
    return compared, entries


@pytest.mark.parametrize("name", ["knowledge_benchmark", "collusion_leveraging"])
def test_batched_agents_and_menus_match_exact_agents(name: str) -> None:
    importlib.import_module(f"mechgym.agents.{name}")  # registers the exact agents
    for which in ["predicted", *EXACT_POLICIES[name]]:
        compared = entries = 0
        for k, (spec_text, B) in enumerate(AGENT_CONFIGS):
            c, e = _check_agent(name, which, spec_text, B, k)
            compared += c
            entries += e
        assert compared > 200, which
        assert which != "predicted" or entries > 1000
    if name == "knowledge_benchmark":  # the grid of positive prices starts at 1
        spec_text, B = AGENT_CONFIGS[0]
        assert _check_agent(name, "predicted", spec_text, B, 5, "m3_positive")[1] > 0


def test_deviation_names_match_the_exact_agents() -> None:
    for name in ("knowledge_benchmark", "collusion_leveraging"):
        importlib.import_module(f"mechgym.agents.{name}")
        assert set(batched_agents(name).deviations) == set(AGENTS[name].deviations)


def _play(name: str, which: str, spec_text: str, B: int, seed: int) -> tuple[Rollout, Any]:
    """A batch played by a batched scripted policy of ``name`` (all players)."""
    pol = batched_policy(name, which)
    ctx = context_batch(spec_text, B, seed=seed)
    rules = rules_for(_mechanism(MECH_OF[name]), spec_text)
    rng = np.random.default_rng(seed)
    return rollout(rules, ctx, rng, policy=scripted(rules, ctx, pol, rng)), rules


@pytest.mark.parametrize("name", ["knowledge_benchmark", "collusion_leveraging"])
@pytest.mark.parametrize("which", ["random", "random_answers"])
def test_random_deviations_are_legal(name: str, which: str) -> None:
    ro, rules = _play(name, which, CONFIGS[0][0], 400, seed=9)
    assert not replay_exact(rules, ro)
    if which == "random_answers":
        answers = ro.final.data["answers"]
        assert (answers == 1).any() and (answers == -1).any()


def test_m4_predicted_play_never_aborts_and_inconsistency_always_does() -> None:
    spec_text = "uniform:n=3,m=2,cap=9,belief=noisy,coalitions=random,shared=true"
    ro, _ = _play("collusion_leveraging", "predicted", spec_text, 300, seed=12)
    assert not ro.final.data["aborted"].any()
    ro, _ = _play("collusion_leveraging", "inconsistent", spec_text, 300, seed=12)
    assert ro.final.data["aborted"].all()


# -- invariants ------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(
    variant=st.sampled_from(VARIANTS),
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 4),
    m=st.integers(1, 3),
    shared=st.booleans(),
)
def test_utility_is_value_minus_price_and_shared_rewards_are_coalition_totals(
    variant: str, seed: int, n: int, m: int, shared: bool
) -> None:
    spec_text = (
        f"uniform:n={n},m={m},cap=6,belief=wrong,coalitions=random,"
        f"shared={'true' if shared else 'false'}"
    )
    rng = np.random.default_rng(seed)
    ctx = context_batch(spec_text, 64, seed=seed)
    rules = rules_for(_mechanism(variant), spec_text)
    ro = rollout(rules, ctx, rng, policy=_random_play(rules, ctx, rng))
    check_utilities_and_rewards(ctx, rules, ro.final)
    out = rules.outcome(ro.final)
    # Revenue identities: the sale's proceeds are transfers, so
    d = ro.final.data
    rev = out.revenue
    if isinstance(rules.mech, KnowledgeBenchmark):
        # M3: REV = fines (+ R' on tails), whatever footnote 4's ε
        rows = np.arange(ctx.B)
        offer = d["prices"][rows, d["star"]]
        fines = np.where(d["answers"] == -1, offer, 0).sum(axis=1)
        want = fines + np.where(d["coin"] == 1, d["second"], 0)
        np.testing.assert_allclose(rev, want, atol=1e-9)
    else:
        # M4: heads raises nothing; an abort raises one fine R_★ + ε1 per fined player
        e1, e2 = float(rules.mech.eps1), float(rules.mech.eps2)
        heads = d["c2"] == 0
        np.testing.assert_allclose(rev[heads], 0.0, atol=1e-12)
        top_rev = d["rev"][np.arange(ctx.B), d["top"]]
        bad = d["ally"] & ~np.eye(n, dtype=bool) & ~d["ally"].transpose(0, 2, 1)
        fined = bad.any(axis=2).sum(axis=1)
        ab = d["aborted"]
        np.testing.assert_allclose(rev[ab], (fined * (top_rev + e1))[ab], atol=1e-9)
        tails = d["c2"] == 1
        r_ = d["rev"].astype(np.float64)
        rewards = e2 * (r_ / (1 + r_)).sum(axis=1)
        rows = np.arange(ctx.B)
        no = np.where(d["answers"] == -1, d["prices"][rows, d["star"]], 0).sum(axis=1)
        want = d["second"] - n * e2 + no - rewards
        np.testing.assert_allclose(rev[tails], want[tails], atol=1e-9)
