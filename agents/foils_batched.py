"""Batched scripted play of the foils of M5 and M6: the batched twin of
:mod:`mechgym.agents.foils`, one section per foil.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch

from .batched import BatchedAgents, RandomBatched, register_batched_agents
from .foils import REPORT_FACTORS

# == HOPE-FOR-THE-BEST ===========================================================================


def _report_columns(rules: BatchedRules) -> np.ndarray:
    """``(n, K)`` columns of the fields ``report_i_x``."""
    spec, lay = rules.spec, rules.layout
    return np.array(
        [[lay.index[f"report_{i}_{x}"] for x in range(spec.m)] for i in range(spec.n)],
        dtype=np.int64,
    )


def scaled_reports(rules: BatchedRules, ctx: ContextBatch, num: int, den: int) -> np.ndarray:
    """``(B, L)`` the array form of :func:`mechgym.agents.foils.scaled_report`: every true value
    times ``num/den``, rounded down (written at the top of the grid where it leaves it)."""
    cols = _report_columns(rules)
    out = np.zeros((ctx.B, len(rules.layout)), dtype=np.int64)
    out[:, cols] = np.minimum(ctx.values * num // den, rules.spec.value_cap)
    return out


class BatchedHope:
    """Everyone reports the true profile scaled by ``num/den`` (1 = truthful)."""

    def __init__(self, num: int = 1, den: int = 1) -> None:
        self.num = num
        self.den = den

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        sel = np.zeros(rules.spec.n, dtype=bool)
        sel[list(players)] = True
        mine = state.acting & sel[None, :]
        report = scaled_reports(rules, ctx, self.num, self.den)
        return np.where(mine[:, :, None], report[:, None, :], 0)


def hope_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.foils.hope_menu` over a batch: ``(actions (B, 4, L),
    valid (B, 4))``, the true profile times 1, 3/4, 1/2, 0. Entries are invalid where
    ``player`` does not act or a reported value leaves the grid."""
    acting = state.acting[:, player]
    acts = (
        np.stack([scaled_reports(rules, ctx, a, b) for a, b in REPORT_FACTORS], axis=1)
        * acting[:, None, None]
    )
    on_grid = np.stack(
        [(ctx.values * a // b <= rules.spec.value_cap).all(axis=(1, 2)) for a, b in REPORT_FACTORS],
        axis=1,
    )
    return acts, on_grid & acting[:, None]


register_batched_agents(
    "hope_for_the_best",
    BatchedAgents(
        predicted=BatchedHope(),
        deviations={
            "scaled_half": BatchedHope(1, 2),
            "zero": BatchedHope(0, 1),
            "random": RandomBatched(),
        },
        menu=hope_menu,
    ),
)

# == end of HOPE-FOR-THE-BEST ====================================================================
