"""The batched packing and benchmarks reproduce the exact solvers, canonical ties included."""

from __future__ import annotations

import numpy as np
import pytest
from mechgym.envs.engine.batched import ContextBatch
from mechgym.envs.engine.errors import ContextError, SolverError
from mechgym.envs.model.generators import make_generator
from mechgym.envs.solvers import batched as sb
from mechgym.envs.solvers.packing import (
    best_belief,
    best_knowledge,
    miew,
    mkw,
    msw,
    pack_brute,
    pack_dp,
    pack_without_each,
)


def _weights(rng: np.random.Generator, B: int, k: int, m: int, lo: int, hi: int) -> np.ndarray:
    W = rng.integers(lo, hi + 1, size=(B, k, 1 << m))
    W[:, :, 0] = 0
    return W


# Small ranges make ties common: the canonical owner-vector rule then decides the witness.
SIZES = [(1, 1), (2, 1), (1, 3), (2, 2), (3, 2), (2, 3), (3, 3), (4, 2), (5, 2), (3, 4), (4, 4)]


@pytest.mark.parametrize(("k", "m"), SIZES)
def test_pack_batch_matches_exact_with_ties(k: int, m: int) -> None:
    rng = np.random.default_rng(100 * k + m)
    W = np.concatenate([_weights(rng, 300, k, m, -2, 3), _weights(rng, 100, k, m, -50, 50)])
    value, alloc = sb.pack_batch(W)
    assert value.shape == (400,) and alloc.shape == (400, k)
    ties = 0
    for b in range(len(W)):
        p = pack_dp(W[b])
        assert (int(value[b]), tuple(int(x) for x in alloc[b])) == (p.value, p.alloc), b
        if b < 40:
            assert pack_brute(W[b]) == p
        ties += int(np.count_nonzero(W[b] == W[b].max()) > 1)
    assert ties > 0  # the instances do exercise the tie rule


@pytest.mark.parametrize(("k", "m"), SIZES)
def test_pack_without_each_batch_matches_exact(k: int, m: int) -> None:
    rng = np.random.default_rng(7 + 10 * k + m)
    W = _weights(rng, 200, k, m, -2, 4)
    value, alloc, without = sb.pack_without_each_batch(W)
    for b in range(len(W)):
        best, rest = pack_without_each(W[b])
        assert int(value[b]) == best.value and tuple(alloc[b].tolist()) == best.alloc
        assert tuple(without[b].tolist()) == rest


@pytest.mark.parametrize(("k", "m"), [(3, 7), (2, 8), (8, 4)])
def test_beyond_enumeration_falls_back_to_exact(k: int, m: int) -> None:
    assert (k + 1) ** m > sb.BATCH_ENUM_MAX_CASES
    rng = np.random.default_rng(k * m)
    W = _weights(rng, 6, k, m, -1, 3)
    value, alloc = sb.pack_batch(W)
    value2, alloc2, without = sb.pack_without_each_batch(W)
    assert np.array_equal(value, value2) and np.array_equal(alloc, alloc2)
    for b in range(len(W)):
        best, rest = pack_without_each(W[b])
        assert (int(value[b]), tuple(alloc[b].tolist())) == (best.value, best.alloc)
        assert tuple(without[b].tolist()) == rest


def test_degenerate_sizes() -> None:
    v, a = sb.pack_batch(np.zeros((4, 3, 1), dtype=np.int64))  # m = 0
    assert v.tolist() == [0] * 4 and a.shape == (4, 3) and not a.any()
    v, a = sb.pack_batch(np.zeros((4, 0, 4), dtype=np.int64))  # k = 0
    assert v.shape == (4,) and a.shape == (4, 0)
    v, a, w = sb.pack_without_each_batch(np.zeros((0, 2, 4), dtype=np.int64))
    assert v.shape == (0,) and a.shape == (0, 2) and w.shape == (0, 2)
    W = np.array([[[0, -1, -2, -3], [0, 0, -5, 0]]])  # nothing is worth allocating
    v, a = sb.pack_batch(W)
    assert v.tolist() == [0] and a.tolist() == [[0, 0]]


def test_huge_weights_mirror_exact_solver() -> None:
    big = 1 << 61
    W = np.array([[[0, big, 0, 0], [0, 0, big, 0]], [[0, 1, 2, 3], [0, 3, 2, 1]]])
    with pytest.raises(SolverError):
        pack_dp(W[0])
    with pytest.raises(SolverError):
        sb.pack_batch(W)
    # Just below the limit, the episode is solved exactly (by the exact solver).
    ok = W.copy()
    ok[0, 0, 1] = ok[0, 1, 2] = (1 << 60) - 1
    value, alloc = sb.pack_batch(ok)
    assert int(value[0]) == 2 * ((1 << 60) - 1) and alloc[0].tolist() == [1, 2]
    assert (int(value[1]), tuple(alloc[1].tolist())) == (pack_dp(ok[1]).value, pack_dp(ok[1]).alloc)


@pytest.mark.parametrize(
    ("W", "field"),
    [
        (np.zeros((3, 4)), "2-d"),
        (np.zeros((2, 2, 3)), "2**m"),
        (np.full((1, 2, 2), 0.5), "integers"),
        (np.array([[[1, 2], [0, 1]]]), "W[0][0]"),
        (np.array([[["a", "b"]]]), "dtype"),
    ],
)
def test_bad_weights_are_context_errors(W: np.ndarray, field: str) -> None:
    with pytest.raises(ContextError, match=field.replace("[", r"\[").replace("*", r"\*")):
        sb.pack_batch(W)


SPECS = [
    "uniform:n=3,m=2,cap=4,belief=noisy,coalitions=random",
    "uniform:n=2,m=1,cap=3,belief=wrong,coalitions=pair",
    "additive:n=4,m=2,cap=6,belief=exact,coalitions=random",
    "single-minded:n=3,m=3,cap=3,belief=wrong,coalitions=independent",
    "cats:n=3,m=3,cap=8,belief=noisy,coalitions=grand",
    "uniform:n=4,m=3,cap=2,belief=none,coalitions=random",
]


@pytest.mark.parametrize("spec", SPECS)
def test_auction_benchmarks_match_exact(spec: str) -> None:
    gen = make_generator(spec)
    rng = np.random.default_rng(3)
    ctxs = [gen.sample(rng) for _ in range(150)]
    batch = ContextBatch.from_contexts(ctxs)
    welfare, walloc = sb.msw_batch(batch)
    bb = sb.best_belief_batch(batch)
    kw = sb.best_knowledge_batch(batch)
    assert np.array_equal(sb.bb_batch(batch), bb.value.max(axis=1))
    miews, mkws = sb.miew_batch(batch), sb.mkw_batch(batch)
    assert np.array_equal(sb.miew_batch(batch, bb.value), miews)
    for b, ctx in enumerate(ctxs):
        p = msw(ctx)
        assert (int(welfare[b]), tuple(walloc[b].tolist())) == (p.value, p.alloc)
        for i in range(ctx.n):
            e = best_belief(ctx, i)
            got = (int(bb.value[b, i]), tuple(bb.alloc[b, i].tolist()), tuple(bb.prices[b, i]))
            assert got == (e.value, e.alloc, e.prices), (b, i)
            k = best_knowledge(ctx, ctx.coalition_of(i))
            got = (int(kw.value[b, i]), tuple(kw.alloc[b, i].tolist()), tuple(kw.prices[b, i]))
            assert got == (k.value, k.alloc, k.prices), (b, i)
        assert int(miews[b]) == miew(ctx) and int(mkws[b]) == mkw(ctx)


def test_market_and_states_welfare_match_exact() -> None:
    from mechgym.envs.model.market import market_msw

    rng = np.random.default_rng(5)
    gen = make_generator("market:n=3,m=2,k=3,coalitions=random")
    ctxs = [gen.sample(rng) for _ in range(200)]
    value, alloc = sb.msw_batch(ContextBatch.from_contexts(ctxs))
    for b, ctx in enumerate(ctxs):
        assert (int(value[b]), tuple(alloc[b].tolist())) == market_msw(ctx)
    gen = make_generator("states:n=3,m=4,cap=3")
    ctxs = [gen.sample(rng) for _ in range(200)]
    value, state = sb.msw_batch(ContextBatch.from_contexts(ctxs))
    for b, ctx in enumerate(ctxs):
        assert int(value[b]) == ctx.msw()
        assert int(ctx.types[:, state[b, 0]].sum()) == ctx.msw()


def test_belief_benchmarks_need_auctions() -> None:
    gen = make_generator("market:n=3,m=2,k=3")
    batch = ContextBatch.from_contexts([gen.sample(np.random.default_rng(0))])
    with pytest.raises(ContextError, match="auction"):
        sb.best_belief_batch(batch)
    with pytest.raises(ContextError, match="auction"):
        sb.best_knowledge_batch(batch)
