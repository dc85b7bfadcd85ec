"""Tests of the exact set-packing solvers and the benchmarks built on them."""

from __future__ import annotations

from fractions import Fraction

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.envs.engine.errors import ContextError, ParameterError, SolverError
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.solvers import packing as solvers
from mechgym.envs.solvers.packing import (
    Benchmark,
    Packing,
    _pack_enum,
    _pack_subsets,
    bb,
    best_belief,
    best_beliefs,
    best_knowledge,
    hidden_value,
    max_packing,
    miew,
    mkw,
    msw,
    pack_brute,
    pack_dp,
    pack_milp,
    pack_without_each,
    pooled_lower,
)

FAST = settings(max_examples=150, deadline=None)


# -- helpers -------------------------------------------------------------------------------


@st.composite
def weights(draw, lo: int = -5, hi: int = 20, max_rows: int = 4, max_goods: int = 4):
    k = draw(st.integers(1, max_rows))
    m = draw(st.integers(1, max_goods))
    W = draw(hnp.arrays(np.int64, (k, 1 << m), elements=st.integers(lo, hi)))
    W[:, 0] = 0
    return W


@st.composite
def contexts(draw, correct: bool = False, max_players: int = 4, max_goods: int = 3):
    n = draw(st.integers(2, max_players))
    m = draw(st.integers(1, max_goods))
    values = draw(hnp.arrays(np.int64, (n, 1 << m), elements=st.integers(0, 9)))
    values[:, 0] = 0
    lower = draw(hnp.arrays(np.int64, (n, n, 1 << m), elements=st.integers(0, 9)))
    if correct:
        lower = np.minimum(lower, values[None, :, :])
    lower[:, :, 0] = 0
    lower[np.arange(n), np.arange(n)] = values
    # A random partition: each player joins the block of some earlier-or-equal label.
    labels = [draw(st.integers(0, i)) for i in range(n)]
    blocks: dict[int, list[int]] = {}
    for p, lab in enumerate(labels):
        blocks.setdefault(lab, []).append(p)
    return AuctionContext(values=values, lower=lower, coalitions=list(blocks.values()))


def assert_valid(W: np.ndarray, p: Packing) -> None:
    """Disjoint bundles, only positive-weight bundles handed out, value = recomputed sum."""
    assert len(p.alloc) == W.shape[0]
    used = 0
    for j, b in enumerate(p.alloc):
        assert isinstance(b, int)
        assert used & b == 0
        used |= b
        assert b == 0 or W[j, b] > 0
    assert isinstance(p.value, int)
    assert p.value == sum(int(W[j, b]) for j, b in enumerate(p.alloc))


def owner_vector(alloc: tuple[int, ...], m: int) -> tuple[int, ...]:
    k = len(alloc)
    return tuple(next((j for j, b in enumerate(alloc) if b >> g & 1), k) for g in range(m))


def random_weights(rng: np.random.Generator, k: int, m: int) -> np.ndarray:
    W = rng.integers(-10, 60, size=(k, 1 << m))
    W[rng.random(W.shape) < 0.5] = 0  # sparse bids make ties and empty rows likely
    W[:, 0] = 0
    return W


# -- packing -------------------------------------------------------------------------------


@FAST
@given(weights())
def test_dp_equals_brute(W: np.ndarray) -> None:
    assert pack_dp(W) == pack_brute(W)


@FAST
@given(weights())
def test_subset_dp_and_enumeration_equal_brute(W: np.ndarray) -> None:
    # pack_dp enumerates tiny instances; both of its paths must give the canonical optimum
    assert _pack_subsets(W) == _pack_enum(W) == pack_brute(W)


@FAST
@given(weights())
def test_pack_without_each_matches_row_removal(W: np.ndarray) -> None:
    best, without = pack_without_each(W)
    assert best == pack_brute(W)
    for j in range(W.shape[0]):
        others = W.copy()
        others[j] = 0
        assert without[j] == pack_brute(others).value


@FAST
@given(weights(lo=0, hi=3))
def test_subset_dp_nonnegative_with_ties(W: np.ndarray) -> None:
    assert _pack_subsets(W) == pack_brute(W)


@FAST
@given(weights(lo=0, hi=3))
def test_dp_equals_brute_nonnegative_with_ties(W: np.ndarray) -> None:
    assert pack_dp(W) == pack_brute(W)


@FAST
@given(weights())
def test_dp_equals_brute_with_wide_values(W: np.ndarray) -> None:
    # Too wide to pack value and owner code in one int64: exercises the multi-key DP.
    W = W * (1 << 50)
    p = pack_dp(W)
    assert p == pack_brute(W)
    assert p.value == pack_dp(W >> 50).value << 50


@FAST
@given(weights(lo=0, hi=3))
def test_canonical_allocation_is_lexicographically_smallest(W: np.ndarray) -> None:
    m = W.shape[1].bit_length() - 1
    best = pack_dp(W)
    assert_valid(W, best)
    # Any other optimal admissible allocation found by reassigning one row's bundle is larger.
    code = owner_vector(best.alloc, m)
    for j in range(W.shape[0]):
        taken = 0
        for i, b in enumerate(best.alloc):
            if i != j:
                taken |= b
        for b in range(1 << m):
            if b & taken or (b and W[j, b] <= 0):
                continue
            alloc = (*best.alloc[:j], b, *best.alloc[j + 1 :])
            if sum(int(W[i, a]) for i, a in enumerate(alloc)) == best.value:
                assert owner_vector(alloc, m) >= code


def test_tie_rule_examples() -> None:
    # Equal bids: the lower row wins.
    assert pack_dp([[0, 5], [0, 5]]) == Packing(5, (1, 0))
    # Zero and negative bids are never handed out.
    assert pack_dp([[0, 0, -3, 0]]) == Packing(0, (0,))
    assert pack_dp([[0, 0], [0, 4]]) == Packing(4, (0, 1))
    # Among equal-value packings good 0 goes to the lowest row, then good 1, and so on.
    W = np.array([[0, 3, 3, 6], [0, 3, 3, 0]])
    assert pack_dp(W) == pack_brute(W) == Packing(6, (3, 0))
    W = np.array([[0, 3, 3, 5], [0, 3, 3, 0]])
    assert pack_dp(W) == Packing(6, (1, 2))


@pytest.mark.parametrize("method", ["dp", "milp", "brute", "auto"])
def test_packings_are_valid(method: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        k, m = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        W = random_weights(rng, k, m)
        assert_valid(W, max_packing(W, method))


def test_milp_matches_dp() -> None:
    rng = np.random.default_rng(2024)
    for t in range(30):
        k, m = int(rng.integers(1, 7)), int(rng.integers(1, 9))
        W = random_weights(rng, k, m)
        if t % 3 == 0:
            W = np.abs(W)
        dp, mi = pack_dp(W), pack_milp(W)
        assert mi.value == dp.value
        assert_valid(W, mi)


def test_degenerate_shapes() -> None:
    for f in (pack_dp, pack_milp, pack_brute):
        assert f(np.zeros((3, 1), dtype=np.int64)) == Packing(0, (0, 0, 0))
        assert f(np.zeros((0, 4), dtype=np.int64)) == Packing(0, ())
        assert f(np.zeros((2, 4), dtype=np.int64)) == Packing(0, (0, 0))


def test_dp_handles_eight_rows_twelve_goods() -> None:
    rng = np.random.default_rng(3)
    W = random_weights(rng, 8, 12)
    assert_valid(W, pack_dp(W))


def test_auto_uses_milp_above_dp_max_goods(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_milp(W):
        calls.append(W.shape)
        return pack_dp(W)

    monkeypatch.setattr(solvers, "pack_milp", fake_milp)
    monkeypatch.setattr(solvers, "DP_MAX_GOODS", 2)
    W = np.array([[0, 1, 2, 3, 4, 5, 6, 7]])
    assert max_packing(W).value == 7
    assert calls == [(1, 8)]
    assert max_packing(W[:, :4]).value == 3
    assert len(calls) == 1


def test_float_integral_weights_accepted() -> None:
    assert pack_dp(np.array([[0.0, 2.0], [0.0, 3.0]])) == Packing(3, (0, 1))


@pytest.mark.parametrize(
    ("W", "match"),
    [
        (np.zeros(4, dtype=np.int64), "2-d"),
        (np.zeros((2, 2, 2), dtype=np.int64), "2-d"),
        (np.zeros((2, 3), dtype=np.int64), "2\\*\\*m columns"),
        (np.zeros((2, 0), dtype=np.int64), "2\\*\\*m columns"),
        (np.array([[0, 1], [1, 1]]), "empty bundle must weigh 0"),
        (np.array([[0, 1.5]]), "integers"),
        (np.array([[0, np.nan]]), "integers"),
        (np.array([["0", "1"]]), "must hold integers"),
        ([[0, 1], [0]], "integer array|2-d"),
    ],
)
def test_malformed_weights_raise(W, match: str) -> None:
    for f in (pack_dp, pack_milp, pack_brute, max_packing):
        with pytest.raises(ContextError, match=match):
            f(W)


def test_solver_limits_raise() -> None:
    with pytest.raises(ParameterError, match="unknown packing method"):
        max_packing([[0, 1]], method="greedy")
    with pytest.raises(SolverError, match="at most"):
        pack_dp(np.zeros((1, 1 << 15), dtype=np.int64))
    with pytest.raises(SolverError, match="owner vectors"):
        pack_brute(np.zeros((9, 1 << 8), dtype=np.int64))
    with pytest.raises(SolverError, match="too large"):
        pack_dp(np.array([[0, 1 << 61]]))
    with pytest.raises(SolverError, match="double precision"):
        pack_milp(np.array([[0, 1 << 53]]))


# -- benchmarks: the worked example of seed 000, Section 3 ----------------------------------


@pytest.fixture
def worked_example() -> AuctionContext:
    g1, g2, both = 0b01, 0b10, 0b11
    values = np.zeros((3, 4), dtype=np.int64)
    values[0, g1] = 100
    values[1, g2] = 100
    values[2, both] = 50
    lower = np.zeros((3, 3, 4), dtype=np.int64)
    lower[0, 1, g2] = 25
    lower[0, 2, both] = 10
    lower[1, 0, g1] = 80
    lower[1, 2, g2] = 20  # wrong: player 2 (index) does not value good 1 alone
    lower[2, 0, g1] = 80
    lower[2, 1, g2] = 70
    lower[np.arange(3), np.arange(3)] = values
    return AuctionContext(values=values, lower=lower)


def test_worked_example(worked_example: AuctionContext) -> None:
    ctx = worked_example
    assert msw(ctx) == Packing(200, (0b01, 0b10, 0))
    bbs = best_beliefs(ctx)
    assert [b.value for b in bbs] == [25, 100, 150]
    assert bb(ctx) == 150
    assert bbs[0] == Benchmark(25, (0, 0b10, 0), (0, 25, 0))
    assert bbs[1] == Benchmark(100, (0b01, 0, 0b10), (80, 0, 20))
    assert bbs[2] == Benchmark(150, (0b01, 0b10, 0), (80, 70, 0))
    for i, b in enumerate(bbs):
        assert sum(b.prices) == b.value
        for j, (bundle, price) in enumerate(zip(b.alloc, b.prices, strict=True)):
            assert price == ctx.lower[i, j, bundle]
    assert miew(ctx) == 150
    assert miew(ctx.with_coalitions([(0, 2), (1,)])) == 100
    assert miew(ctx.with_coalitions([(0, 1, 2)])) == 0


# -- benchmarks: properties ------------------------------------------------------------------


@FAST
@given(contexts())
def test_best_belief_witness(ctx: AuctionContext) -> None:
    for i, b in enumerate(best_beliefs(ctx)):
        assert b.alloc[i] == 0
        assert b.value == sum(b.prices)
        assert b.value == best_belief(ctx, i, method="brute").value
        used = 0
        for j, (bundle, price) in enumerate(zip(b.alloc, b.prices, strict=True)):
            assert used & bundle == 0
            used |= bundle
            assert (price > 0) == (bundle != 0)
            assert price == ctx.lower[i, j, bundle]


@FAST
@given(contexts())
def test_pooled_lower(ctx: AuctionContext) -> None:
    for c in ctx.coalitions:
        K = pooled_lower(ctx, c)
        assert K.shape == (ctx.n, 1 << ctx.m)
        for j in range(ctx.n):
            if j in c:
                assert np.array_equal(K[j], ctx.values[j])
            else:
                for i in c:
                    assert np.all(K[j] >= ctx.lower[i, j])
                assert np.array_equal(K[j], ctx.lower[list(c), j].max(axis=0))


@FAST
@given(contexts())
def test_best_knowledge_witness(ctx: AuctionContext) -> None:
    for c in ctx.coalitions:
        K = pooled_lower(ctx, c)
        b = best_knowledge(ctx, c)
        assert b.value == best_knowledge(ctx, c, method="brute").value
        assert b.value == hidden_value(ctx, c, b.alloc, b.prices)
        used = 0
        for j, (bundle, price) in enumerate(zip(b.alloc, b.prices, strict=True)):
            assert used & bundle == 0
            used |= bundle
            if j in c:
                assert price == 0
            else:
                assert price == K[j, bundle]
                assert (price > 0) == (bundle != 0)
    assert mkw(ctx) == max(best_knowledge(ctx, c).value for c in ctx.coalitions)


@FAST
@given(contexts(correct=True))
def test_collusion_weakly_raises_knowledge_benchmark(ctx: AuctionContext) -> None:
    for c in ctx.coalitions:
        joint = best_knowledge(ctx, c).value
        assert joint >= max(best_knowledge(ctx, (i,)).value for i in c)
        # With correct beliefs nobody is priced above its value.
        assert joint <= msw(ctx).value


def test_hidden_value_exact(worked_example: AuctionContext) -> None:
    ctx = worked_example
    alloc = (0b01, 0b10, 0)
    assert hidden_value(ctx, (0,), alloc, (7, Fraction(1, 3), 2)) == 100 + Fraction(7, 3)
    assert hidden_value(ctx, (0, 1), alloc, (7, 7, np.int64(2))) == 202
    assert isinstance(hidden_value(ctx, (2,), alloc, (Fraction(1, 2), Fraction(1, 2), 0)), int)


def test_benchmark_argument_errors(worked_example: AuctionContext) -> None:
    ctx = worked_example
    with pytest.raises(ContextError, match="player"):
        best_belief(ctx, 3)
    with pytest.raises(ContextError, match="player"):
        best_belief(ctx, True)
    with pytest.raises(ContextError, match="at least one member"):
        best_knowledge(ctx, ())
    with pytest.raises(ContextError, match="sequence of players"):
        best_knowledge(ctx, 1)
    with pytest.raises(ContextError, match="twice"):
        pooled_lower(ctx, (1, 1))
    with pytest.raises(ContextError, match="needs 3 bundles"):
        hidden_value(ctx, (0,), (0, 0), (0, 0, 0))
    with pytest.raises(ContextError, match="int or Fraction"):
        hidden_value(ctx, (0,), (0, 0, 0), (0, 0.5, 0))
