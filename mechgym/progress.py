"""The one progress-bar style of mechgym's commands (evaluate, converge, train, bench).

Bars go to stderr, so ``--json`` output on stdout stays clean, and disappear when done.
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
    """A tqdm bar in mechgym's style; iterate it, or call ``update(k)`` and ``close()``."""
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        leave=False,
        disable=disable,
        bar_format=BAR_FORMAT,
        unit_scale=unit == "steps",
    )


def sb3_callback(total: int, desc: str) -> Any:
    """An SB3 callback drawing training steps with :func:`progress` (instead of SB3's own
    ``progress_bar=True``, which has another style)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class _Bar(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = progress(total=total, desc=desc, unit="steps")
            self.last = self.num_timesteps

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.last)
            self.last = self.num_timesteps
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return _Bar()
