"""Interval estimates over seeds: the interquartile mean (IQM) and its 95% stratified-bootstrap
confidence interval, from rliable (Agarwal et al., 2021), with a seeded bootstrap so that a
rerun gives the same interval."""

from __future__ import annotations

import numpy as np

BOOTSTRAP_REPS = 2000


def interval_estimates(
    values: dict[str, np.ndarray], seed: int = 0, reps: int = BOOTSTRAP_REPS
) -> dict[str, dict[str, float]]:
    """IQM and its 95% stratified-bootstrap interval per metric (rliable), over seeds.

    ``values[name]`` is a ``(seeds,)`` array. Metrics with fewer than two finite values get
    their single value and no interval. The bootstrap draws from a Generator seeded with
    ``seed`` (see :class:`SeededStratifiedBootstrap`).
    """
    from rliable import metrics

    boot = _seeded_bootstrap_class()
    out: dict[str, dict[str, float]] = {}
    for name, arr in values.items():
        x = np.asarray(arr, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        if x.size == 1:
            out[name] = {"iqm": float(x[0]), "ci_low": float(x[0]), "ci_high": float(x[0])}
            continue
        scores = x.reshape(-1, 1)

        def iqm(s: np.ndarray) -> np.ndarray:
            return np.array([metrics.aggregate_iqm(s)])

        bs = boot(scores, seed=np.random.default_rng(seed))
        ci = bs.conf_int(iqm, reps=reps, size=0.95, method="percentile")
        out[name] = {
            "iqm": float(iqm(scores)[0]),
            "ci_low": float(ci[0, 0]),
            "ci_high": float(ci[1, 0]),
        }
    return out


def _seeded_bootstrap_class() -> type:
    """rliable's stratified bootstrap, resampling runs from the bootstrap's own Generator.

    rliable 1.2's ``StratifiedBootstrap.update_indices`` draws from numpy's global random
    state, so its intervals change between calls with the same seed; this subclass draws the
    same indices from ``self.generator`` instead.
    """
    from rliable import library as rly

    class SeededStratifiedBootstrap(rly.StratifiedBootstrap):
        def update_indices(self) -> tuple[np.ndarray, ...]:
            gen = self.generator
            indices = gen.choice(self._num_items, self._args_shape, replace=True)
            if self._task_bootstrap:
                tasks = gen.choice(self._num_tasks, self._strata_indices[0].shape, replace=True)
                return (indices, tasks, *self._strata_indices[1:])
            return (indices, *self._strata_indices)

    return SeededStratifiedBootstrap
