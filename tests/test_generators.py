"""Seeded context generators and their spec strings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mechgym.envs.engine.errors import ContextError
from mechgym.envs.model.bundles import goods_of
from mechgym.envs.model.context import AuctionContext, check_partition
from mechgym.envs.model.generators import (
    BELIEFS,
    COALITIONS,
    GENERATORS,
    AdditiveGenerator,
    CatsGenerator,
    SingleMindedGenerator,
    UniformGenerator,
    make_generator,
)

FAST = settings(max_examples=40, deadline=None)

families = st.sampled_from(sorted(GENERATORS))
seeds = st.integers(0, 2**32 - 1)
ns = st.integers(2, 4)
ms = st.integers(1, 4)
caps = st.integers(1, 30)


def draw(gen, seed: int) -> AuctionContext:
    return gen.sample(np.random.default_rng(seed))


def same(a: AuctionContext, b: AuctionContext) -> bool:
    return (
        np.array_equal(a.values, b.values)
        and np.array_equal(a.lower, b.lower)
        and a.coalitions == b.coalitions
        and a.shared_reward == b.shared_reward
    )


@FAST
@given(
    family=families,
    seed=seeds,
    n=ns,
    m=ms,
    cap=caps,
    belief=st.sampled_from(BELIEFS),
    coalitions=st.sampled_from(COALITIONS),
)
def test_seeded_and_in_range(
    family: str, seed: int, n: int, m: int, cap: int, belief: str, coalitions: str
) -> None:
    gen = GENERATORS[family](n, m, value_cap=cap, belief=belief, coalitions=coalitions)
    ctx = draw(gen, seed)
    assert same(ctx, draw(gen, seed))
    assert ctx.values.shape == (n, 1 << m) and ctx.lower.shape == (n, n, 1 << m)
    assert ctx.values.min() >= 0 and ctx.values.max() <= cap
    assert ctx.lower.min() >= 0 and ctx.lower.max() <= cap
    assert np.all(ctx.values[:, 0] == 0) and np.all(ctx.lower[:, :, 0] == 0)
    assert check_partition(ctx.coalitions, n) == ctx.coalitions
    assert gen.kind == "auction" and gen.context_class is AuctionContext


@pytest.mark.parametrize("family", sorted(GENERATORS))
def test_different_seeds_differ(family: str) -> None:
    gen = GENERATORS[family](3, 3)
    first = draw(gen, 0)
    assert any(not np.array_equal(draw(gen, s).values, first.values) for s in range(1, 6))


def test_int_seed_and_bad_rng() -> None:
    gen = UniformGenerator(2, 2)
    assert same(gen.sample(5), draw(gen, 5))
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        gen.sample(None)  # type: ignore[arg-type]


# -- belief layer ---------------------------------------------------------------------------------


@FAST
@given(family=families, seed=seeds, n=ns, m=ms, noise=st.floats(0, 1))
def test_correct_beliefs(family: str, seed: int, n: int, m: int, noise: float) -> None:
    for belief in ("none", "exact", "noisy"):
        ctx = draw(GENERATORS[family](n, m, belief=belief, belief_noise=noise), seed)
        assert ctx.beliefs_correct()
        for i in range(n):
            assert np.array_equal(ctx.lower[i, i], ctx.values[i])
        others = ~np.eye(n, dtype=bool)
        truth = np.broadcast_to(ctx.values[None], ctx.lower.shape)
        if belief == "none":
            assert np.all(ctx.lower[others] == 0)
        elif belief == "exact":
            assert np.array_equal(ctx.lower, truth)
        else:
            assert np.all(ctx.lower >= np.floor(truth * (1 - noise)) - 1)


@FAST
@given(family=families, seed=seeds, n=ns, m=ms, cap=caps)
def test_wrong_beliefs(family: str, seed: int, n: int, m: int, cap: int) -> None:
    ctx = draw(GENERATORS[family](n, m, value_cap=cap, belief="wrong"), seed)
    truth = np.broadcast_to(ctx.values[None], ctx.lower.shape)
    eligible = truth < cap
    eligible[np.arange(n), np.arange(n)] = False
    eligible[:, :, 0] = False
    if eligible.any():
        assert not ctx.beliefs_correct()
    for i in range(n):
        assert np.array_equal(ctx.lower[i, i], ctx.values[i])


def test_wrong_rate_roughly_thirty_percent() -> None:
    gen = UniformGenerator(4, 4, value_cap=100, belief="wrong")
    ctx = draw(gen, 1)
    others = ~np.eye(4, dtype=bool)
    wrong = (ctx.lower > ctx.values[None])[others][:, 1:]
    assert 0.15 < wrong.mean() < 0.45


# -- collusion layer ------------------------------------------------------------------------------


@FAST
@given(seed=seeds, n=ns)
def test_coalition_structures(seed: int, n: int) -> None:
    def co(kind: str) -> tuple:
        return draw(UniformGenerator(n, 2, coalitions=kind), seed).coalitions

    assert co("independent") == tuple((i,) for i in range(n))
    assert co("pair") == ((0, 1), *((i,) for i in range(2, n)))
    assert co("grand") == (tuple(range(n)),)
    random = co("random")
    assert check_partition(random, n) == random


def test_random_coalitions_vary() -> None:
    gen = UniformGenerator(4, 1, coalitions="random")
    assert len({draw(gen, s).coalitions for s in range(30)}) > 3


def test_shared_reward_flag() -> None:
    assert not draw(UniformGenerator(3, 2, shared_reward=False), 0).shared_reward


# -- value families -------------------------------------------------------------------------------


@FAST
@given(seed=seeds, n=ns, m=ms, cap=caps)
def test_additive(seed: int, n: int, m: int, cap: int) -> None:
    v = draw(AdditiveGenerator(n, m, value_cap=cap), seed).values
    for s in range(1 << m):
        assert np.array_equal(v[:, s], sum((v[:, 1 << g] for g in goods_of(s)), np.zeros(n)))
    assert np.all(v[:, 1 << np.arange(m)] <= cap // m)


@FAST
@given(seed=seeds, n=ns, m=ms, cap=caps)
def test_single_minded(seed: int, n: int, m: int, cap: int) -> None:
    v = draw(SingleMindedGenerator(n, m, value_cap=cap), seed).values
    for i in range(n):
        wanted = [s for s in range(1, 1 << m) if v[i, s] > 0]
        desired = min(wanted, key=int.bit_count)
        worth = v[i, desired]
        assert 1 <= worth <= cap
        for s in range(1 << m):
            assert v[i, s] == (worth if s & desired == desired else 0)


def _is_arc(bundle: int, m: int) -> bool:
    goods = set(goods_of(bundle))
    return any(goods == {(start + t) % m for t in range(len(goods))} for start in range(m))


@FAST
@given(seed=seeds, n=ns, m=ms, cap=caps)
def test_cats(seed: int, n: int, m: int, cap: int) -> None:
    v = draw(CatsGenerator(n, m, value_cap=cap), seed).values
    for i in range(n):
        bids = np.flatnonzero(v[i])
        assert 1 <= len(bids) <= 3
        assert all(1 <= v[i, s] <= cap for s in bids)
        assert all(_is_arc(int(s), m) and int(s).bit_count() <= 3 for s in bids)
        # All of a player's bundles share its home good.
        common = np.bitwise_and.reduce(bids)
        assert common != 0


# -- validation and specs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n": 1, "m": 2}, "n"),
        ({"n": 2.0, "m": 2}, "n"),
        ({"n": 2, "m": 0}, "m"),
        ({"n": 2, "m": 13}, "m"),
        ({"n": 2, "m": 2, "value_cap": 0}, "value_cap"),
        ({"n": 2, "m": 2, "belief": "psychic"}, "belief"),
        ({"n": 2, "m": 2, "belief_noise": 1.5}, "belief_noise"),
        ({"n": 2, "m": 2, "coalitions": "cartel"}, "coalitions"),
        ({"n": 2, "m": 2, "shared_reward": "yes"}, "shared_reward"),
    ],
)
def test_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ContextError) as info:
        UniformGenerator(**kwargs)
    assert info.value.field == field


def test_make_generator_good_specs() -> None:
    gen = make_generator("uniform:n=3,m=2,cap=20,belief=noisy,coalitions=random")
    assert gen == UniformGenerator(3, 2, value_cap=20, belief="noisy", coalitions="random")
    gen = make_generator(" single_minded : n=4 , m=3, noise=0.25, shared=false, belief=wrong ")
    assert gen == SingleMindedGenerator(
        4, 3, belief="wrong", belief_noise=0.25, shared_reward=False
    )
    assert isinstance(make_generator("cats:n=2,m=5"), CatsGenerator)
    assert isinstance(make_generator("additive:n=2,m=1,coalitions=grand"), AdditiveGenerator)
    for family, cls in GENERATORS.items():
        g = cls(3, 4, value_cap=9, belief="exact", belief_noise=0.1, coalitions="pair")
        assert make_generator(g.spec()) == g
        assert g.spec().startswith(f"{family}:")
        assert draw(g, 0).name == g.spec()


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("lottery:n=2,m=2", ["generator: unknown family 'lottery'", "uniform", "cats"]),
        ("uniform:n=2,m=2,bellief=noisy", ["generator.bellief: unknown key", "belief"]),
        ("uniform:n=2,m=2,belief=psychic", ["generator.belief", "'psychic'", "noisy"]),
        ("uniform:n=2,m=2,coalitions=cartel", ["generator.coalitions", "random", "grand"]),
        ("uniform:n=two,m=2", ["generator.n", "'two' is not an integer"]),
        ("uniform:n=1,m=2", ["generator.n", ">= 2"]),
        ("uniform:n=2,m=20", ["generator.m", "1..12"]),
        ("uniform:n=2,m=2,cap=0", ["generator.cap", ">= 1"]),
        ("uniform:n=2,m=2,noise=2", ["generator.noise", "[0, 1]"]),
        ("uniform:n=2,m=2,noise=abc", ["generator.noise"]),
        ("uniform:n=2,m=2,shared=maybe", ["generator.shared", "true, false"]),
        ("uniform:n=2", ["generator.m", "is required"]),
        ("uniform", ["generator.n", "is required"]),
        ("uniform:n=2,m=2,n=3", ["generator.n", "twice"]),
        ("uniform:n=2,m", ["generator.m", "needs a value"]),
    ],
)
def test_make_generator_bad_specs(spec: str, fragments: list[str]) -> None:
    with pytest.raises(ContextError) as info:
        make_generator(spec)
    for f in fragments:
        assert f in str(info.value), str(info.value)


@settings(max_examples=60, deadline=None)
@given(
    family=st.sampled_from(sorted(GENERATORS)),
    n=st.integers(2, 5),
    m=st.integers(1, 4),
    belief=st.sampled_from(["none", "exact", "noisy", "wrong"]),
    coalitions=st.sampled_from(["independent", "random", "pair", "grand"]),
    seed=st.integers(0, 2**31),
)
def test_trusted_contexts_pass_the_validator(family, n, m, belief, coalitions, seed) -> None:
    gen = GENERATORS[family](n=n, m=m, value_cap=9, belief=belief, coalitions=coalitions)
    ctx = gen.sample(np.random.default_rng(seed))
    checked = AuctionContext(
        values=ctx.values,
        lower=ctx.lower,
        coalitions=ctx.coalitions,
        shared_reward=ctx.shared_reward,
        name=ctx.name,
    )
    assert np.array_equal(checked.values, ctx.values)
    assert np.array_equal(checked.lower, ctx.lower)
    assert checked.coalitions == ctx.coalitions
    assert [ctx.coalition_of(i) for i in range(n)] == [checked.coalition_of(i) for i in range(n)]


def test_specs_of_the_other_context_kinds() -> None:
    states = make_generator("states:n=3,m=2,cap=3,coalitions=random,positive=true")
    ctx = states.sample(np.random.default_rng(0))
    assert ctx.kind == "states" and (ctx.n, ctx.m) == (3, 2)
    market = make_generator("market:n=2,m=3,k=4,negative=false")
    mctx = market.sample(np.random.default_rng(0))
    assert mctx.kind == "market" and (mctx.n, mctx.m, mctx.k) == (2, 3, 4)
    assert np.all(mctx.values >= 0)
    with pytest.raises(ContextError, match=r"generator\.cap: unknown key for market"):
        make_generator("market:n=2,m=2,cap=3")
    with pytest.raises(ContextError, match=r"generator\.m: is required"):
        make_generator("states:n=2")
