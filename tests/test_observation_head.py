"""The observation head, defined once for the exact and batched paths."""

from __future__ import annotations


def test_one_episode_observation_head_is_the_batch_of_one() -> None:
    """The AEC env's scalar call and the batched call build the same head."""
    import numpy as np
    from mechgym.envs.engine.observation import observation_head

    phases = np.array([2, -1, 0, 1])
    acting = np.array([True, True, False, True])
    batch = observation_head(phases, acting, 3)
    for b in range(4):
        np.testing.assert_array_equal(
            observation_head(int(phases[b]), bool(acting[b]), 3)[0], batch[b]
        )
    assert batch[1].sum() == 0 and batch[0, 3] == 1.0 and batch[2, 3] == 0.0
