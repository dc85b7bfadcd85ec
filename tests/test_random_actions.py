"""Random legal play: the rules' table sampler gives what sampling the masks gives."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from mechgym.envs.engine.batched import TableSampler, batched_rules, sample_actions
from mechgym.envs.model.batched_generators import BatchGenerator
from mechgym.envs.pettingzoo.registry import available, entry

CASES = [(e.name, e.name, {}) for e in available()]
CASES += [("mixture", "second_price_bundle", {"mixture": "best_belief"})]


@pytest.mark.parametrize(("label", "name", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_random_actions_equal_sampling_the_masks(label: str, name: str, kwargs: dict) -> None:
    env = entry(name).load_env_module().env(seed=0, **kwargs).unwrapped
    rules = batched_rules(env.mechanism, env.spec)
    rng = np.random.default_rng(5)
    ctx = BatchGenerator(env.generator).sample(97, rng)
    state = rules.reset(ctx, rng)
    steps = 0
    while not state.done.all():
        twin = copy.deepcopy(rng)
        acts = rules.random_actions(state, rng)
        want = sample_actions(rules.layout, rules.masks(state), twin)
        np.testing.assert_array_equal(acts, want)
        assert rng.random() == twin.random()  # the same draws were used
        state = rules.step(ctx, state, acts, rng)
        steps += 1
    assert steps >= 1


def test_table_sampler_draws_among_allowed_values_with_gaps() -> None:
    from mechgym.envs.engine.spaces import ActionLayout

    layout = ActionLayout((("a", 4), ("b", 3)))
    # row 0: a in {1, 3} (a gap), b in {0..2}; row 1: a in {0}, b in {1, 2}
    table = np.array([[0, 1, 0, 1, 1, 1, 1], [1, 0, 0, 0, 0, 1, 1]], dtype=np.int8)
    sampler = TableSampler(layout, table)
    index = np.array([[0, 1]] * 500)
    rng, twin = np.random.default_rng(0), np.random.default_rng(0)
    got = sampler.sample(index, rng)
    want = sample_actions(layout, np.take(table, index, axis=0), twin)
    np.testing.assert_array_equal(got, want)
    assert set(got[:, 0, 0]) == {1, 3} and set(got[:, 1, 1]) == {1, 2}
    ranged = TableSampler(layout, np.array([[0, 1, 1, 0, 1, 1, 0]], dtype=np.int8))
    vals = ranged.sample(np.zeros((400,), dtype=np.int64), np.random.default_rng(1))
    assert set(vals[:, 0]) == {1, 2} and set(vals[:, 1]) == {0, 1}


def test_mixture_mask_table_is_the_union_of_its_branches_masks() -> None:
    env = entry("second_price_bundle").load_env_module().env(seed=0, mixture="best_belief")
    env = env.unwrapped
    rules = batched_rules(env.mechanism, env.spec)
    rng = np.random.default_rng(2)
    ctx = BatchGenerator(env.generator).sample(64, rng)
    state = rules.reset(ctx, rng)
    assert rules.mask_rows(state) is not None
    while not state.done.all():
        parts = [
            rules.to_union_mask(inner.masks(rules.inner_state(state, k)), k)
            for k, inner in enumerate(rules.inner)
        ]
        want = np.where((state.data["branch"] == 1)[:, None, None], parts[1], parts[0])
        np.testing.assert_array_equal(rules.masks(state), want)
        state = rules.step(ctx, state, rules.random_actions(state, rng), rng)
