"""M1's Section 6.3 variants on the batched path: the ε-fraction reward budget (regression:
the batched rules once paid the absolute budget whatever ``reward_budget`` said)."""

from __future__ import annotations

import numpy as np
import pytest
from batched_support import batched_policy, context_batch, exact_policy, rules_for, scripted
from mechgym.envs.engine.batched import replay_exact, rollout
from mechgym.envs.engine.game import evaluate_exact
from mechgym.envs.mechanisms.best_belief import BestBelief
from mechgym.envs.model.examples import example

from mechgym.batched_eval import batched_reports

CONFIGS = [
    ("uniform:n=3,m=2,cap=9,belief=wrong,coalitions=random,shared=true", 300),
    ("uniform:n=2,m=1,cap=2,belief=exact,coalitions=independent,shared=false", 200),
    ("single-minded:n=4,m=3,cap=5,belief=noisy,coalitions=random,shared=false", 150),
]


@pytest.mark.parametrize("eps", ["1/10", "1"])
@pytest.mark.parametrize("play", ["random", "predicted"])
def test_fraction_budget_replays_on_exact_engine(eps: str, play: str) -> None:
    mech = BestBelief(eps=eps, reward_budget="fraction")
    for k, (spec_text, B) in enumerate(CONFIGS):
        rules = rules_for(mech, spec_text)
        ctx = context_batch(spec_text, B, seed=40 + k)
        rng = np.random.default_rng(k)
        policy = None
        if play == "predicted":
            policy = scripted(rules, ctx, batched_policy("best_belief", "predicted"), rng)
        ro = rollout(rules, ctx, rng, policy=policy)
        assert replay_exact(rules, ro) == []


def test_fraction_budget_sampled_revenue_matches_exact_on_the_paper_example() -> None:
    ctx = example("chen-micali-2016")
    mech = BestBelief(reward_budget="fraction")
    pol = exact_policy("best_belief", "predicted", ctx)
    exact = float(evaluate_exact(mech, ctx, dict.fromkeys(range(ctx.n), pol)).expected_revenue)
    [report] = batched_reports(
        mech, ctx, "predicted", 40_000, 1, np.random.default_rng(3), progress=False
    )
    se = report["expected_revenue_stderr"]
    assert se is not None and se > 0
    # the absolute budget's figure lies ≈ 25 standard errors away on this example
    assert abs(report["expected_revenue"] - exact) < 4 * se
