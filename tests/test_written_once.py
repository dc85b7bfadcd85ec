"""Mechanisms written once: the exact face is the batched rules on a batch of one.

The differential and property tests (test_backends_property, test_batched_*) tie the float
backend to the exact one; these tests pin what the exact face itself promises: explicit
chance, exact rational money, comparable states, and no twin module left behind.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction

import numpy as np
import pytest
from backend_cases import MECHANISMS, build, contexts
from mechgym.agents.base import profile
from mechgym.agents.best_belief import PredictedSeed000
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.batched import (
    ChanceRequest,
    ForcedChance,
    batched_rules,
    draw,
    rules_class,
)
from mechgym.envs.engine.episode import BatchOfOne
from mechgym.envs.engine.game import Chance, Decision, EnvSpec, Terminal, evaluate_exact
from mechgym.envs.engine.money import EXACT, FLOAT
from mechgym.envs.mechanisms.best_belief import BBAnnouncement, BestBelief
from mechgym.envs.mechanisms.catalogue import SPECS
from mechgym.envs.mechanisms.normal_form import NormalAnnouncement, NormalForm
from mechgym.envs.mechanisms.offer_rules import COIN
from mechgym.envs.model.examples import example


def test_every_mechanism_is_written_once() -> None:
    for s in SPECS.values():
        mech_cls = getattr(importlib.import_module(s.module), s.cls.split(":")[1])
        assert issubclass(mech_cls, BatchOfOne), s.name
        rules = rules_class(mech_cls.__new__(mech_cls))
        assert rules.__module__ == s.module and rules.mechanism is mech_cls, s.name
        assert importlib.util.find_spec(f"{s.module}_batched") is None, s.name
        # its scripted play too: both faces in its agents module
        assert importlib.util.find_spec(f"{s.agents_module}_batched") is None, s.name
        assert s.batched_agents_module == s.agents_module


def test_forced_chance_serves_outcomes_then_asks() -> None:
    live = np.ones(1, dtype=bool)
    forced = ForcedChance((1,))
    assert draw(forced, COIN.probs, live, COIN).tolist() == [1]
    with pytest.raises(ChanceRequest) as req:
        draw(forced, COIN.probs, live, COIN)
    assert req.value.node == COIN
    # an episode that meets no chance node consumes nothing
    assert draw(ForcedChance(), COIN.probs, ~live, COIN).tolist() == [-1]
    with pytest.raises(TypeError, match="exact probabilities"):
        draw(ForcedChance(), np.array([[0.5, 0.5]]), live)


def _announce(mech: NormalForm | BestBelief, ctx: object, eps_offer: Offer) -> object:
    s = mech.start(ctx)
    node = mech.node(s)
    assert isinstance(node, Decision) and node.phase == "announce"
    if isinstance(mech, NormalForm):
        acts = {
            i: NormalAnnouncement(tuple(int(x) for x in ctx.values[i]), eps_offer)
            for i in range(ctx.n)
        }
    else:
        acts = {i: BBAnnouncement(0, eps_offer) for i in range(ctx.n)}
    acts = {i: mech.validate(s, i, a) for i, a in acts.items()}
    return mech.resolve(s, acts)


@pytest.mark.parametrize("cls", [NormalForm, BestBelief])
def test_coin_is_an_explicit_chance_node_with_exact_money(cls: type) -> None:
    ctx = example("chen-micali-2016")
    mech = cls(eps="1/3")
    # player 0 offers good 0 to player 1 at 7; players 1 and 2 announce the same offer shape
    offers = {0: Offer((0, 1, 0), (0, 7, 0)), 1: Offer((1, 0, 0), (7, 0, 0))}
    s = mech.start(ctx)
    acts = {}
    for i in range(ctx.n):
        offer = offers.get(i, Offer((1, 0, 0), (3, 0, 0)))
        vals = tuple(int(x) for x in ctx.values[i])
        a = NormalAnnouncement(vals, offer) if cls is NormalForm else BBAnnouncement(1, offer)
        acts[i] = mech.validate(s, i, a)
    s = mech.resolve(s, acts)
    node = mech.node(s)
    assert isinstance(node, Chance) and node == COIN
    heads = mech.node(mech.chance(s, 0))
    assert isinstance(heads, Terminal) and heads.outcome.rule == "heads"
    assert heads.outcome.revenue == 0
    tails = mech.chance(s, 1)
    node = mech.node(tails)
    if isinstance(node, Decision):  # M1 asks the offered player
        assert node.players == (1,) and node.phase == "respond"
        tails = mech.resolve(tails, {1: True})
        node = mech.node(tails)
    assert isinstance(node, Terminal) and node.outcome.rule == "tails"
    o = node.outcome
    assert all(type(p) is Fraction for p in o.prices)
    # δ_i = (ε/n)·R_i/(1+R_i) with ε = 1/3: exact thirds, which float64 cannot hold
    assert any(p.denominator % 3 == 0 for p in o.prices)
    # one rules class, two backends: the batched path's float64, the exact face's rationals
    rules = batched_rules(mech, EnvSpec(ctx.n, ctx.m, ctx.value_cap, 20))
    assert rules.money is FLOAT and mech.rules(ctx.n, ctx.m).money is EXACT


def test_states_reached_alike_are_equal() -> None:
    ctx = example("chen-micali-2016")
    mech = BestBelief()
    pred = profile(PredictedSeed000(ctx), ctx.n)
    a = mech.start(ctx)
    b = mech.start(ctx)
    assert a == b and hash(a) == hash(b)
    acts = {i: pred[i].act(mech, ctx, a, i) for i in range(ctx.n)}
    a2, b2 = mech.resolve(a, acts), mech.resolve(b, acts)
    assert a2 == b2 and a2 != a
    assert mech.chance(a2, 1) == mech.chance(b2, 1) != mech.chance(a2, 0)


def test_exact_evaluation_enumerates_the_coin() -> None:
    ctx = example("chen-micali-2016")
    mech = BestBelief()
    ev = evaluate_exact(mech, ctx, profile(PredictedSeed000(ctx), ctx.n))
    assert sorted(o.rule for _, o in ev.outcomes) == ["heads", "tails"]
    assert sum(p for p, _ in ev.outcomes) == 1
    assert all(p == Fraction(1, 2) for p, _ in ev.outcomes)


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_sampling_chance_in_one_run_draws_what_the_node_loop_draws(name: str) -> None:
    # the AEC env resolves chance with sample_chances; it must equal the generic loop over
    # chance nodes (same stream, same draws, same state)
    from mechgym.agents.base import RandomPolicy
    from mechgym.envs.engine.game import Mechanism, step_decision

    mech = build(MECHANISMS[name], 3, 2, lambda label, choices: choices[0], None)
    batch, spec = contexts(mech, 3, 2, 40, True, 4)
    met = 0
    for b in range(batch.B):
        ctx = batch.context(b)
        policy = RandomPolicy(np.random.default_rng(b), spec)
        s = mech.start(ctx)
        for _ in range(20):
            fast, fast_draws = mech.sample_chances(s, np.random.default_rng(100 + b))
            slow, slow_draws = Mechanism.sample_chances(mech, s, np.random.default_rng(100 + b))
            assert fast == slow and fast_draws == slow_draws, name
            met += len(fast_draws)
            node = mech.node(fast)
            if isinstance(node, Terminal):
                assert node.outcome == mech.node(slow).outcome
                break
            acts = {p: policy.act(mech, ctx, fast, p) for p in node.players}
            s = step_decision(mech, fast, node, acts)
    assert met > 0 or name in NO_CHANCE, name


NO_CHANCE = {"vcg", "second_price_bundle", "hope_for_the_best", "naive_market_1", "naive_market_2"}


def test_a_float_in_exact_money_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = example("chen-micali-2016")
    mech = NormalForm()
    rules = mech.rules(ctx.n, ctx.m)
    real = type(rules).outcome

    def floaty(self, state):  # a rule that divided two exact amounts with "/"
        out = real(self, state)
        out.prices[...] = np.asarray([float(p) for p in out.prices.ravel()], dtype=object).reshape(
            out.prices.shape
        )
        return out

    monkeypatch.setattr(type(rules), "outcome", floaty)
    s = _announce(mech, ctx, Offer((0, 0, 0), (0, 0, 0)))
    with pytest.raises(TypeError, match="exact money produced a float"):
        mech.node(mech.chance(s, 1))
