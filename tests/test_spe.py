"""The exact subgame-perfect equilibrium solver (envs/spe.py) and M5's rank function."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.envs.engine.errors import SolverError
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Mechanism,
    Node,
    Terminal,
    evaluate_exact,
)
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.foils import HopeForTheBest
from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue, outcome_rank
from mechgym.envs.model.outcome import Outcome
from mechgym.envs.model.states import StateContext
from mechgym.envs.solvers.spe import enumerate_actions, solve_spe

HALF = Fraction(1, 2)


# -- a tiny perfect-information game to test the solver itself --------------------------------
@dataclass(frozen=True)
class UltState:
    offer: int | None = None
    coin: int | None = None
    accept: bool | None = None


class MiniUltimatum(Mechanism):
    """Player 0 offers state 0, 1 or 2; a fair coin; on heads player 1 accepts (state = the
    offer) or rejects (state 3); on tails the offer is accepted automatically."""

    name = "mini_ultimatum"
    title = "mini ultimatum (test only)"
    phases = ("offer", "accept")
    simultaneous_only = False
    context_kind = "states"

    def start(self, ctx: Any) -> UltState:
        return UltState()

    def node(self, s: UltState) -> Node:
        if s.offer is None:
            return Decision((0,), "offer")
        if s.coin is None:
            return Chance("coin", ("heads", "tails"), (HALF, HALF))
        if s.coin == 1:
            return Terminal(Outcome((), (Fraction(0),) * 2, state=s.offer, rule="auto"))
        if s.accept is None:
            return Decision((1,), "accept")
        return Terminal(
            Outcome((), (Fraction(0),) * 2, state=s.offer if s.accept else 3, rule="answer")
        )

    def validate(self, s: UltState, player: int, action: Any) -> Any:
        return action

    def resolve(self, s: UltState, actions: Mapping[int, Any]) -> UltState:
        (a,) = actions.values()
        return replace(s, offer=a) if s.offer is None else replace(s, accept=a)

    def chance(self, s: UltState, index: int) -> UltState:
        return replace(s, coin=index)

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([("offer", 3), ("accept", 2)])

    def action_mask(
        self, s: UltState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        return layout.mask({"offer": True} if s.offer is None else {"accept": True})

    def decode(
        self, s: UltState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        return int(vec[0]) if s.offer is None else bool(vec[1])

    def encode(
        self, s: UltState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        raise NotImplementedError

    def public_size(self, spec: EnvSpec) -> int:
        return 0

    def public_features(self, s: UltState, player: int, spec: EnvSpec) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)


SPEC = EnvSpec(2, 4, 3, 3)


def test_backward_induction_with_chance_and_strict_choices() -> None:
    ctx = StateContext(types=[[3, 2, 1, 0], [1, 1, 2, 0]])
    res = solve_spe(MiniUltimatum(), ctx, SPEC)
    # player 1 accepts everything (1, 1, 2 > 0), so player 0 offers its favourite state 0
    assert res.unique and res.path_strict and res.outcome_unique
    assert res.values == (Fraction(3), Fraction(1))
    assert [(p, o.state) for p, o in res.outcomes] == [(HALF, 0), (HALF, 0)]
    root = res.policy.record(MiniUltimatum().start(ctx))
    assert root.action == 0 and root.margin == Fraction(1) and root.actions == 3


def test_harmful_tie_is_reported() -> None:
    # player 1 is indifferent at offer 0 (0 vs 0); the tie changes player 0's best offer
    ctx = StateContext(types=[[3, 2, 1, 0], [0, 1, 2, 0]])
    mech = MiniUltimatum()
    res = solve_spe(mech, ctx, SPEC)
    assert not res.unique
    (tie,) = res.ties
    assert tie.phase == "accept" and tie.state.offer == 0 and tie.tied == (False, True)
    assert tie.margin == 0 and not tie.harmless
    # first maximiser (reject) is kept: offering 0 is worth 3/2 < 2, so player 0 offers 1
    assert res.values == (Fraction(2), Fraction(1))
    assert res.path_strict and not res.ties_harmless and not res.outcome_unique


def test_policy_is_an_exact_profile() -> None:
    ctx = StateContext(types=[[3, 2, 1, 0], [1, 1, 2, 0]])
    mech = MiniUltimatum()
    res = solve_spe(mech, ctx, SPEC)
    ev = evaluate_exact(mech, ctx, res.profile(2))
    assert ev.expected_utilities == res.values
    with pytest.raises(SolverError, match="another mechanism or context"):
        res.policy.act(mech, StateContext(types=[[0, 0, 0, 0], [0, 0, 0, 0]]), mech.start(ctx), 0)


def test_enumerate_actions_from_layout_and_mask() -> None:
    mech = PerfectRevenue()
    ctx = StateContext(types=[[1, 0], [0, 1], [1, 1]])
    spec = EnvSpec(3, 2, 1, 2)
    acts = enumerate_actions(mech, mech.start(ctx), 0, spec)
    assert len(acts) == 2 * 3**3 and len(set(acts)) == len(acts)
    with pytest.raises(SolverError, match="limit"):
        enumerate_actions(mech, mech.start(ctx), 0, spec, limit=10)


def test_simultaneous_nodes_are_refused() -> None:
    ctx = StateContext(types=[[1, 0], [0, 1]])
    with pytest.raises(SolverError, match="simultaneous"):
        solve_spe(HopeForTheBest(), ctx, EnvSpec(2, 2, 1, 1))


def test_node_limit() -> None:
    ctx = StateContext(types=[[1, 0], [0, 1]])
    with pytest.raises(SolverError, match="more than 50 nodes"):
        solve_spe(PerfectRevenue(), ctx, EnvSpec(2, 2, 1, 2), max_nodes=50)


# -- M5's rank f_r(ω, K) and n_r -----------------------------------------------------------------
def brute_rank(state: int, prices: tuple[int, ...], num_states: int) -> tuple[int, int]:
    """The order of seed 003 by enumeration (tests only): states first, then price profiles
    with larger earlier coordinates first."""
    n, r = len(prices), sum(prices)
    profiles = [p for p in itertools.product(range(r + 1), repeat=n) if sum(p) == r]
    profiles.sort(key=lambda p: tuple(-x for x in p))
    order = [(s, p) for s in range(num_states) for p in profiles]
    return order.index((state, prices)), len(order)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 4), k=st.integers(1, 3), data=st.data())
def test_rank_matches_enumeration(n: int, k: int, data: Any) -> None:
    prices = tuple(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    state = data.draw(st.integers(0, k - 1))
    assert outcome_rank(state, prices, k) == brute_rank(state, prices, k)


def test_rank_size_and_extremes() -> None:
    f, nr = outcome_rank(1, (0, 0, 5), 2)
    assert nr == 2 * math.comb(7, 2) and f == nr - 1  # last state, smallest profile
    assert outcome_rank(0, (5, 0, 0), 2)[0] == 0
