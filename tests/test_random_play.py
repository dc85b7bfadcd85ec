"""One rule of uniformly random legal play: the batched path's ``sample_actions``; the exact
path's ``RandomPolicy`` and the bench's cached ``MaskSampler`` draw with it."""

from __future__ import annotations

import numpy as np
from mechgym.agents.base import MaskSampler, RandomPolicy
from mechgym.envs.engine.batched import sample_actions
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.best_belief import BestBelief
from mechgym.envs.model.examples import example

LAYOUT = ActionLayout([("a", 3), ("b", 1), ("c", 4), ("d", 2)])


def _masks(rng: np.random.Generator, k: int) -> np.ndarray:
    """``k`` random flat masks that allow at least one value per field."""
    masks = (rng.random((k, int(LAYOUT.offsets[-1]))) < 0.5).astype(np.int8)
    for lo, hi in zip(LAYOUT.offsets[:-1], LAYOUT.offsets[1:], strict=True):
        none = ~masks[:, lo:hi].any(axis=1)
        masks[none, lo + rng.integers(0, hi - lo, size=int(none.sum()))] = 1
    return masks


def test_mask_sampler_draws_what_sample_actions_draws() -> None:
    masks = _masks(np.random.default_rng(1), 200)
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    draw = MaskSampler(b, LAYOUT.sizes, LAYOUT.offsets)
    for mask in np.concatenate([masks, masks]):  # the second pass reads the cache
        np.testing.assert_array_equal(draw(mask), sample_actions(LAYOUT, mask, a))


def test_one_mask_is_one_row_of_a_batch() -> None:
    masks = _masks(np.random.default_rng(2), 50)
    batch = sample_actions(LAYOUT, masks, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    # a batch draws its uniforms row by row, as single masks do one after the other
    rows = np.stack([sample_actions(LAYOUT, m, rng) for m in masks])
    np.testing.assert_array_equal(rows, batch)


def test_draws_are_legal_and_cover_every_allowed_value() -> None:
    mask = _masks(np.random.default_rng(4), 1)[0]
    draws = sample_actions(
        LAYOUT, np.broadcast_to(mask, (4000, mask.size)), np.random.default_rng(5)
    )
    for k, (lo, hi) in enumerate(zip(LAYOUT.offsets[:-1], LAYOUT.offsets[1:], strict=True)):
        assert set(np.unique(draws[:, k])) == set(np.flatnonzero(mask[lo:hi]).tolist())


def test_random_policy_plays_sample_actions() -> None:
    ctx = example("chen-micali-2016")
    mech = BestBelief()
    spec = EnvSpec(ctx.n, ctx.m, ctx.value_cap, mech.default_price_cap(ctx.n, ctx.value_cap))
    layout = mech.layout(spec)
    s = mech.start(ctx)
    mask = mech.action_mask(s, 0, spec, layout)
    got = RandomPolicy(np.random.default_rng(11), spec).act(mech, ctx, s, 0)
    want = mech.decode(s, 0, sample_actions(layout, mask, np.random.default_rng(11)), spec, layout)
    assert got == want
