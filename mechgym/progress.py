"""The one progress-bar style of mechgym's commands (evaluate, converge, train, bench,
benchmark run).

Bars go to stderr, so ``--json`` output on stdout stays clean; they are drawn only when
stderr is a terminal and disappear when done.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar:30}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}]"
)


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
) -> Any:
    """A tqdm bar in mechgym's style; iterate it, or call ``update(k)`` and ``close()``.

    ``disable=False`` still draws nothing when stderr is not a terminal (a pipe, a log
    file, a test's capture).
    """
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        leave=False,
        # None: tqdm's own test, off when stderr is not a TTY
        disable=True if disable else None,
        bar_format=BAR_FORMAT,
        unit_scale=unit == "steps",
    )


def planned_steps(model: Any, steps: int) -> int:
    """The env steps ``model.learn(steps)`` will actually take: SB3 stops at the first whole
    rollout (on-policy: ``n_steps × n_envs``; off-policy: ``train_freq × n_envs`` steps) that
    reaches ``steps``, so a bar with ``steps`` as its total would overshoot."""
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    n_envs = int(getattr(model, "n_envs", 1) or 1)
    chunk = n_envs
    if isinstance(model, OnPolicyAlgorithm):
        chunk = int(model.n_steps) * n_envs
    else:
        freq = getattr(model, "train_freq", None)
        if getattr(getattr(freq, "unit", None), "value", None) == "step":
            chunk = int(freq.frequency) * n_envs
    return -(-steps // chunk) * chunk if steps > 0 else 0


def sb3_callback(total: int, desc: str, bar: Any = None) -> Any:
    """An SB3 callback drawing training steps with :func:`progress` (instead of SB3's own
    ``progress_bar=True``, which has another style).

    The bar's total is :func:`planned_steps` of ``total``; with ``bar`` given, the callback
    advances that bar (shared by several runs) and leaves it open.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    class _Bar(BaseCallback):
        def _on_training_start(self) -> None:
            planned = planned_steps(self.model, total)
            self.own = bar is None
            if bar is None:
                self.bar = progress(total=planned, desc=desc, unit="steps")
            else:
                # the shared bar counted ``total`` for this run
                self.bar = bar
                if bar.total is not None:
                    bar.total += planned - total
            self.last = self.num_timesteps

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.last)
            self.last = self.num_timesteps
            return True

        def _on_training_end(self) -> None:
            if self.own:
                self.bar.close()

    return _Bar()
