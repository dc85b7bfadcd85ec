"""Exact metrics: agreement, bounds, outcome ratios, guarantees and exploitability."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from mechgym.agents.base import PhasePolicy
from mechgym.envs.engine.game import Fixed, evaluate_exact
from mechgym.envs.model.examples import example
from mechgym.envs.model.generators import make_generator
from mechgym.training.encodings import MenuEncoding
from mechgym.training.learner_env import group_value, learner_setting
from mechgym.training.metrics import best_response_value, evaluate_profile, predicted_profile


def _setup(mech: str, contexts: list):
    from mechgym.envs.pettingzoo.registry import entry

    raw = learner_setting(mech, contexts=contexts)
    agents = entry(mech).load_agents()
    enc = MenuEncoding(mech, raw.mechanism, raw.spec, agents)
    return raw.mechanism, agents, enc


def _family(spec: str, k: int, seed: int = 5) -> list:
    gen = make_generator(spec)
    rng = np.random.default_rng(seed)
    return [gen.sample(rng) for _ in range(k)]


def test_predicted_profile_matches_itself_and_meets_theorem() -> None:
    ctxs = _family("uniform:n=3,m=2,cap=10,belief=wrong", 12)
    mech, agents, enc = _setup("best_belief", ctxs)
    met = evaluate_profile(
        mech, agents, ctxs, predicted_profile(agents, 3), [(0,), (1,), (2,)], enc
    )
    assert met.agreement == {"announce": 1.0, "respond": 1.0}
    assert met.agreement_mass["announce"] == 3 * 12  # every player announces in every context
    assert met.bound_satisfied == {"announce": 1.0} and met.bound_ratio == {"announce": 1.0}
    assert met.guarantee_holds == 1.0 and met.guarantee_margin > 0
    assert met.revenue_benchmark == "BB" and 0.5 - 0.1 <= met.revenue_ratio <= 1.0
    assert set(met.exploitability) == {"0", "1", "2"}
    assert all(v >= 0 for v in met.exploitability.values())
    assert met.disagreement_loss == {"announce": None, "respond": None}


def test_always_no_is_caught_with_its_cost() -> None:
    ctxs = _family("uniform:n=3,m=2,cap=10,belief=noisy", 12)
    mech, agents, enc = _setup("best_belief", ctxs)
    no = agents.deviations["always_no"]

    def prof(ctx):
        pred = agents.predicted(ctx)
        return {0: no(ctx, None), 1: pred, 2: pred}

    met = evaluate_profile(mech, agents, ctxs, prof, [(0,)], enc)
    # noisy beliefs are correct: every predicted offer is accepted, so NO always disagrees
    assert met.agreement["respond"] == 0.0
    assert met.agreement["announce"] == 1.0
    # answering YES instead of NO gains theta - pi + eps/n >= eps/n > 0 at every asked node
    assert met.disagreement_loss["respond"] >= float(Fraction(1, 30))


def test_best_response_search_equals_brute_force_on_vcg() -> None:
    ctx = example("ausubel-milgrom")
    mech, agents, enc = _setup("vcg", [ctx])
    truthful = agents.predicted(ctx)
    pols = dict.fromkeys(range(3), truthful)
    state = mech.start(ctx)
    menus = {p: enc.options(ctx, state, p) for p in range(3)}
    # coalition (1, 2): joint search over both members' menus
    brute = max(
        group_value(
            ctx,
            evaluate_exact(
                mech,
                ctx,
                {**pols, 1: Fixed(truthful, {"report": a}), 2: Fixed(truthful, {"report": b})},
            ).outcomes[0][1],
            (1, 2),
        )
        for a, b in itertools.product(menus[1], menus[2])
    )
    assert best_response_value(mech, ctx, pols, (1, 2), enc.options) == brute == 10
    # a single player gains nothing by deviating from truth in VCG (dominant strategy)
    for p in range(3):
        base = group_value(ctx, evaluate_exact(mech, ctx, pols).outcomes[0][1], (p,))
        assert best_response_value(mech, ctx, pols, (p,), enc.options) == base


def test_vcg_exploitability_shows_collusion() -> None:
    ctx = example("ausubel-milgrom")
    mech, agents, enc = _setup("vcg", [ctx])
    met = evaluate_profile(mech, agents, [ctx], predicted_profile(agents, 3), [(0,), (1, 2)], enc)
    assert met.exploitability == {"0": 0.0, "1+2": 10.0}
    assert met.welfare_ratio == 1.0 and met.guarantee_holds == 1.0
    coll = agents.deviations["collusive_overbid"]
    met2 = evaluate_profile(
        mech, agents, [ctx], lambda c: dict.fromkeys(range(3), coll(c, None)), [(1, 2)], enc
    )
    assert met2.value == {"1+2": 10.0} and met2.revenue == 0.0
    assert met2.agreement["report"] == 0.0 and met2.exploitability == {"1+2": 0.0}


def test_phase_restricted_agreement() -> None:
    ctxs = _family("uniform:n=3,m=2,cap=10,belief=wrong", 6)
    mech, agents, _ = _setup("best_belief", ctxs)
    rng = np.random.default_rng(0)

    def prof(ctx):
        pred = agents.predicted(ctx)
        over = agents.deviations["overbid"](ctx, rng)
        return {0: PhasePolicy(pred, {"announce": over}), 1: pred, 2: pred}

    only = evaluate_profile(mech, agents, ctxs, prof, [(0,)], None, phases=("respond",))
    assert set(only.agreement) == {"respond"} and only.exploitability == {}
    full = evaluate_profile(mech, agents, ctxs, prof, [(0,)], None)
    assert full.agreement["announce"] < 1.0
    assert full.bound_satisfied["announce"] == 1.0  # overbidding keeps REV >= BB_i


@pytest.mark.parametrize("mech", ["best_belief", "normal_form"])
def test_bound_ratio_of_underbidding(mech: str) -> None:
    ctxs = _family("uniform:n=3,m=2,cap=10,belief=noisy", 8)
    m, agents, enc = _setup(mech, ctxs)
    under = agents.deviations["underbid"]
    met = evaluate_profile(
        m,
        agents,
        ctxs,
        lambda c: dict.fromkeys(range(3), under(c, None)),
        [(0,), (1,), (2,)],
        enc,
        exploitability=False,
    )
    assert met.bound_satisfied["announce"] < 0.5
    assert met.bound_ratio["announce"] < 1.0
