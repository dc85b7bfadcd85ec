"""Batched context sampling: valid contexts, the exact generators' distributions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.envs.engine.batched import ContextBatch
from mechgym.envs.engine.errors import ContextError
from mechgym.envs.model.batched_generators import (
    BatchGenerator,
    coalition_labels,
    make_batch_generator,
)
from mechgym.envs.model.context import AuctionContext
from mechgym.envs.model.generators import BELIEFS, COALITIONS, GENERATORS, make_generator
from mechgym.envs.model.market import MarketContext
from mechgym.envs.model.states import StateContext


def _revalidate(batch: ContextBatch, b: int) -> object:
    """Episode ``b`` through the validating constructor of its kind."""
    ctx = batch.context(b)
    if batch.kind == "auction":
        return AuctionContext(
            np.array(ctx.values), np.array(ctx.lower), ctx.coalitions, bool(ctx.shared_reward)
        )
    if batch.kind == "market":
        return MarketContext(
            np.array(ctx.values),
            tuple(ctx.endowment),
            ctx.k,
            coalitions=ctx.coalitions,
            shared_reward=ctx.shared_reward,
        )
    return StateContext(
        np.array(ctx.types), coalitions=ctx.coalitions, shared_reward=ctx.shared_reward
    )


AUCTION_SPECS = [
    f"{family}:n={n},m={m},cap={cap},belief={belief},coalitions={coal},shared={shared}"
    for family in sorted(GENERATORS)
    for (n, m, cap) in ((2, 1, 3), (3, 2, 20), (4, 3, 7))
    for belief in BELIEFS
    for coal, shared in zip(COALITIONS, ("true", "false", "true", "false"), strict=True)
    if (n + m + BELIEFS.index(belief) + COALITIONS.index(coal)) % 3 == 0
]
OTHER_SPECS = [
    "states:n=2,m=1,cap=1,positive=true",
    "states:n=3,m=4,cap=3,coalitions=random",
    "states:n=4,m=2,cap=2,coalitions=pair,shared=false",
    "market:n=2,m=1,k=1",
    "market:n=3,m=2,k=3,coalitions=random",
    "market:n=4,m=3,k=4,coalitions=grand,negative=false",
]


@pytest.mark.parametrize("spec", AUCTION_SPECS + OTHER_SPECS)
def test_every_context_is_valid(spec: str) -> None:
    gen = make_batch_generator(spec)
    exact = make_generator(spec)
    batch = gen.sample(64, np.random.default_rng(1))
    assert batch.kind == exact.kind and batch.B == 64 and batch.n == exact.n
    assert batch.m == exact.m and gen.spec() == exact.spec()
    for b in range(batch.B):
        ctx = _revalidate(batch, b)
        assert ctx.coalitions == batch.coalitions_of(b)
    # labels are the smallest member's index
    for b in range(batch.B):
        for c in batch.coalitions_of(b):
            assert all(batch.coalition[b, j] == c[0] for j in c)
    again = gen.sample(64, np.random.default_rng(1))
    assert np.array_equal(again.values, batch.values)
    assert np.array_equal(again.coalition, batch.coalition)


def test_every_family_has_a_batched_sampler() -> None:
    for family in GENERATORS:
        assert make_batch_generator(f"{family}:n=2,m=1").kind == "auction"


# -- distributions -------------------------------------------------------------------------


def _features(batch: ContextBatch, cap: int) -> dict[str, np.ndarray]:
    """Per-episode features whose means the two samplers must share."""
    B, n = batch.B, batch.n
    f: dict[str, np.ndarray] = {}
    vals = batch.values.reshape(B, -1).astype(np.float64)
    f["value_mean"] = vals.mean(axis=1)
    for e in range(vals.shape[1]):
        f[f"value[{e}]"] = vals[:, e]
    for v in range(-cap, cap + 1):
        f[f"value=={v}"] = (vals == v).mean(axis=1)
    total = vals.sum(axis=1)
    f["value_total_sq"] = total**2
    for v in range(int(total.max()) + 1 if vals.shape[1] <= 8 else 0):
        f[f"value_total=={v}"] = (total == v) * 1.0
    lab = batch.coalition
    same = lab[:, :, None] == lab[:, None, :]
    sizes = same.sum(axis=2)
    for s in range(1, n + 1):
        f[f"coalition_size=={s}"] = (sizes == s).mean(axis=1)
    f["players01_together"] = (lab[:, 0] == lab[:, 1]).astype(np.float64)
    f["shared"] = batch.shared_reward.astype(np.float64)
    if batch.lower is not None:
        off = ~np.eye(n, dtype=bool)[None, :, :, None]
        truth = batch.values[:, None, :, :]
        low = batch.lower
        mask = np.broadcast_to(off, low.shape).copy()
        mask[..., 0] = False
        count = mask.reshape(B, -1).sum(axis=1)
        f["lower_mean"] = np.where(mask, low, 0).reshape(B, -1).sum(axis=1) / count
        f["belief<=value"] = np.where(mask, low <= truth, 0).reshape(B, -1).sum(axis=1) / count
        f["belief==value"] = np.where(mask, low == truth, 0).reshape(B, -1).sum(axis=1) / count
        f["any_wrong"] = (np.where(mask, low > truth, False).reshape(B, -1).any(axis=1)) * 1.0
    if batch.endowment is not None:
        for i in range(n):
            f[f"endowment[{i}]_goods"] = np.array(
                [bin(int(x)).count("1") for x in batch.endowment[:, i]], dtype=np.float64
            )
    return f


def _worst_z(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, str]:
    """Largest two-sample z statistic over the features (inf on a constant mismatch)."""
    worst, name = 0.0, ""
    for key in a:
        x, y = a[key], b[key]
        se = np.sqrt(x.var() / len(x) + y.var() / len(y))
        d = abs(x.mean() - y.mean())
        z = d / se if se > 1e-9 else (0.0 if d < 1e-9 else np.inf)
        if z > worst:
            worst, name = float(z), key
    return worst, name


def _cap(spec: str) -> int:
    g = make_generator(spec)
    return int(g.value_cap)


DIST_SPECS = [
    "uniform:n=3,m=2,cap=6,belief=noisy,coalitions=random",
    "additive:n=3,m=2,cap=9,belief=wrong,coalitions=pair",
    "single-minded:n=3,m=2,cap=5,belief=exact,coalitions=random,shared=false",
    "cats:n=3,m=3,cap=12,belief=wrong,noise=0.3,coalitions=grand",
    "cats:n=2,m=2,cap=8,belief=none,coalitions=random",
    "uniform:n=2,m=1,cap=2,belief=wrong,coalitions=independent",
    "states:n=3,m=2,cap=1,positive=true,coalitions=random",
    "states:n=2,m=1,cap=2,positive=true",
    "market:n=3,m=2,k=3,coalitions=random",
]
EXACT_N = 1500
BATCH_N = 15000
Z_MAX = 5.0


def _exact_batch(spec: str, N: int, seed: int) -> ContextBatch:
    gen = make_generator(spec)
    rng = np.random.default_rng(seed)
    return ContextBatch.from_contexts([gen.sample(rng) for _ in range(N)])


@pytest.mark.parametrize("spec", DIST_SPECS)
def test_distribution_matches_exact_generator(spec: str) -> None:
    cap = _cap(spec)
    exact = _features(_exact_batch(spec, EXACT_N, 11), cap)
    batched = _features(make_batch_generator(spec).sample(BATCH_N, np.random.default_rng(12)), cap)
    z, feature = _worst_z(exact, batched)
    assert z < Z_MAX, f"{spec}: feature {feature} differs (z = {z:.1f})"


@pytest.mark.parametrize(
    ("spec", "wrong"),
    [
        # cap off by one
        ("uniform:n=3,m=2,cap=6,belief=noisy", "uniform:n=3,m=2,cap=5,belief=noisy"),
        # less noise in beliefs
        ("uniform:n=3,m=2,cap=6,belief=noisy", "uniform:n=3,m=2,cap=6,belief=noisy,noise=0.4"),
        # a structure of coalitions other than the asked one
        (
            "uniform:n=3,m=2,cap=6,coalitions=random",
            "uniform:n=3,m=2,cap=6,coalitions=pair",
        ),
        ("cats:n=3,m=3,cap=12,belief=wrong", "cats:n=3,m=3,cap=12,belief=noisy"),
        ("market:n=3,m=2,k=3", "market:n=3,m=2,k=3,negative=false"),
    ],
)
def test_the_comparison_catches_a_wrong_sampler(spec: str, wrong: str) -> None:
    cap = max(_cap(spec), _cap(wrong))
    exact = _features(_exact_batch(spec, EXACT_N, 11), cap)
    batched = _features(make_batch_generator(wrong).sample(BATCH_N, np.random.default_rng(12)), cap)
    z, _ = _worst_z(exact, batched)
    assert z >= Z_MAX


def test_random_coalition_labels_follow_the_exact_rule() -> None:
    from mechgym.envs.model.states import draw_coalitions

    rng = np.random.default_rng(0)
    labels = coalition_labels("random", 20000, 4, rng)
    parts = [draw_coalitions("random", 4, rng) for _ in range(4000)]
    counts_b = np.bincount([len(set(r.tolist())) for r in labels], minlength=5) / 20000
    counts_e = np.bincount([len(p) for p in parts], minlength=5) / 4000
    # multinomial: labels uniform in 0..3 give 1..4 coalitions w.p. 4/256, 84/256, 144/256, 24/256
    expect = np.array([0, 4, 84, 144, 24]) / 256
    assert np.allclose(counts_b, expect, atol=0.015)
    assert np.allclose(counts_e, expect, atol=0.03)
    with pytest.raises(ContextError, match="coalitions"):
        coalition_labels("clique", 2, 3, rng)


def test_wrong_beliefs_always_hold_a_wrong_entry() -> None:
    batch = make_batch_generator("uniform:n=2,m=1,cap=2,belief=wrong").sample(
        5000, np.random.default_rng(4)
    )
    truth = batch.values[:, None]
    wrong = (batch.lower > truth).reshape(batch.B, -1).any(axis=1)
    # one wrong entry is possible iff some other player values the good below the cap
    possible = (batch.values[:, :, 1] < 2).any(axis=1)
    assert np.array_equal(wrong, possible)


def test_bad_input() -> None:
    gen = make_batch_generator("uniform:n=3,m=2")
    with pytest.raises(ContextError, match="batch"):
        gen.sample(0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        gen.sample(4, None)  # type: ignore[arg-type]
    assert np.array_equal(gen.sample(4, 3).values, gen.sample(4, np.random.default_rng(3)).values)
    with pytest.raises(ContextError, match=r"generator\.cap"):
        make_batch_generator("uniform:n=3,m=2,cap=x")
    with pytest.raises(ContextError, match="generator"):
        BatchGenerator(object())


@settings(max_examples=40, deadline=None)
@given(
    family=st.sampled_from(sorted(GENERATORS)),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 4),
    m=st.integers(1, 4),
    cap=st.integers(1, 30),
    belief=st.sampled_from(BELIEFS),
    coalitions=st.sampled_from(COALITIONS),
    noise=st.floats(0.0, 1.0),
)
def test_any_auction_generator_gives_valid_contexts_in_range(
    family: str, seed: int, n: int, m: int, cap: int, belief: str, coalitions: str, noise: float
) -> None:
    gen = BatchGenerator(
        GENERATORS[family](
            n, m, value_cap=cap, belief=belief, belief_noise=noise, coalitions=coalitions
        )
    )
    batch = gen.sample(6, np.random.default_rng(seed))
    assert batch.values.shape == (6, n, 1 << m) and batch.lower.shape == (6, n, n, 1 << m)
    assert batch.values.min() >= 0 and batch.values.max() <= cap
    assert batch.lower.min() >= 0 and batch.lower.max() <= cap
    for b in range(batch.B):
        _revalidate(batch, b)
        if belief in ("none", "exact", "noisy"):
            assert np.all(batch.lower[b] <= batch.values[b][None])


@pytest.mark.parametrize(
    "spec", ["uniform:n=2,m=12,cap=5,belief=wrong", "market:n=2,m=12,k=2", "states:n=5,m=1,cap=1"]
)
def test_edge_sizes(spec: str) -> None:
    batch = make_batch_generator(spec).sample(3, np.random.default_rng(0))
    for b in range(batch.B):
        _revalidate(batch, b)
