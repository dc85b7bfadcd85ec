"""Learning end to end (seeded, CI-sized budgets): YES/NO converges, coalitions collude."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from mechgym.agents.base import PhasePolicy
from mechgym.envs.engine.game import evaluate_exact
from mechgym.envs.model.examples import example
from mechgym.envs.model.generators import make_generator
from mechgym.training.algos import configure_torch, make_model
from mechgym.training.learner_env import LearnerEnv
from mechgym.training.metrics import best_response_value, evaluate_profile
from mechgym.training.policies import LearnedPolicy


@pytest.fixture(autouse=True, scope="module")
def _torch() -> None:
    configure_torch(1)


def _family(spec: str, k: int, seed: int) -> list:
    gen = make_generator(spec)
    rng = np.random.default_rng(seed)
    return [gen.sample(rng) for _ in range(k)]


def respond_agreement(seed: int, steps: int) -> tuple[float, float]:
    """Train player 0's YES/NO (announcement scripted) against predicted opponents; return
    the exact agreement of the learned answers and of always-YES on held-out contexts."""
    spec = "uniform:n=3,m=2,cap=10,belief=wrong"
    train, held_out = _family(spec, 200, 777), _family(spec, 100, 778)
    env = LearnerEnv("best_belief", 0, learn_phases=("respond",), contexts=train, seed=seed)
    model = make_model("maskable_ppo", env, seed=seed)
    model.learn(steps)
    agents = env.agents
    pol = LearnedPolicy(model, env.builder)

    def learned(ctx):
        pred = agents.predicted(ctx)
        return {0: PhasePolicy(pred, {"respond": pol}), 1: pred, 2: pred}

    yes = agents.deviations["always_yes"]

    def always_yes(ctx):
        pred = agents.predicted(ctx)
        return {0: PhasePolicy(pred, {"respond": yes(ctx, None)}), 1: pred, 2: pred}

    met = evaluate_profile(env.mech, agents, held_out, learned, [(0,)], None, phases=("respond",))
    base = evaluate_profile(
        env.mech, agents, held_out, always_yes, [(0,)], None, phases=("respond",)
    )
    assert met.agreement_mass["respond"] > 20  # plenty of answered offers in the held-out set
    return met.agreement["respond"], base.agreement["respond"]


def test_yes_no_phase_converges_to_prediction() -> None:
    learned, always_yes = respond_agreement(seed=0, steps=2048)
    assert always_yes < 0.8  # the task is not trivial: many offers must be refused
    assert learned >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_yes_no_phase_converges_other_seeds(seed: int) -> None:
    learned, _ = respond_agreement(seed=seed, steps=4096)
    assert learned >= 0.95


def test_vcg_coalition_learns_ausubel_milgrom_collusion() -> None:
    ctx = example("ausubel-milgrom")
    env = LearnerEnv("vcg", (1, 2), context=ctx, seed=0)
    model = make_model("maskable_ppo", env, seed=0)
    model.learn(2048)
    agents = env.agents
    pol = LearnedPolicy(model, env.builder)
    truthful = agents.predicted(ctx)
    scripted = agents.deviations["collusive_overbid"](ctx, None)
    learned = evaluate_exact(env.mech, ctx, {0: truthful, 1: pol, 2: pol}).coalition_utility((1, 2))
    honest = evaluate_exact(env.mech, ctx, dict.fromkeys(range(3), truthful)).coalition_utility(
        (1, 2)
    )
    collusive = evaluate_exact(env.mech, ctx, dict.fromkeys(range(3), scripted)).coalition_utility(
        (1, 2)
    )
    assert (honest, collusive) == (0, 10)
    assert learned >= honest + Fraction(8, 10) * (collusive - honest)


def test_best_belief_coalition_cannot_break_independent_guarantee() -> None:
    ctx = example("ausubel-milgrom")  # players 1 and 2 collude against the independent 0
    env = LearnerEnv("best_belief", (1, 2), context=ctx, seed=0)
    model = make_model("maskable_ppo", env, seed=0)
    model.learn(2048)
    mech, agents = env.mech, env.agents
    pred = agents.predicted(ctx)
    pol = LearnedPolicy(model, env.builder)
    profile = {0: pred, 1: pol, 2: pol}
    ev = evaluate_exact(mech, ctx, profile)
    g = mech.guarantee(ctx, ev)
    assert g.statement.startswith("E[REV] >= max_{i independent}")
    assert g.bound == Fraction(10, 2) - Fraction(1, 10)  # BB_0 / 2 - eps
    assert g.holds, (ev.expected_revenue, g.bound)
    # the learned coalition gains at most what the best menu deviation allows, and even the
    # revenue-minimising coalition strategy within the menu keeps the bound
    honest = evaluate_exact(mech, ctx, dict.fromkeys(range(3), pred)).coalition_utility((1, 2))
    best = best_response_value(mech, ctx, profile, (1, 2), env.encoding.options)
    assert ev.coalition_utility((1, 2)) <= best
    worst_rev = -best_response_value(
        mech, ctx, profile, (1, 2), env.encoding.options, objective=lambda c, o: -o.revenue
    )
    assert worst_rev >= g.bound
    assert best - honest < Fraction(1, 10)  # no Ausubel-Milgrom windfall in M1
