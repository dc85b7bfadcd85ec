"""VCG with Clarke pivot payments: the baseline every user asks for.

Every player reports a valuation (one simultaneous move). The allocation maximises reported
welfare (the canonical optimum of the subset solver, so ties are broken the same way every
time); player ``i`` pays the externality it imposes: the others' best welfare without ``i``
minus their welfare at the chosen allocation. Truthful reporting is dominant and the
allocation maximises welfare, but revenue can be 0 and collapses when two losers collude
(Ausubel–Milgrom, cited in seeds 002 and 003).

Written once (:mod:`mechgym.envs.engine.episode`): :class:`VCGRules` is the rule over a
batch; :class:`VCG`, the exact face, runs it on a batch of one with exact money. Payments
are differences of integer welfares, so both money backends give the same integers.

``state.data``: ``reports`` ``(B, n, 2^m)``; ``alloc`` ``(B, n)``; ``prices`` ``(B, n)``
(money); ``reported`` ``(B,)``. One decision, phase ``report`` (index 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import check_valuation, valuation_fields
from mechgym.envs.engine.batched import TERMINAL, BatchOutcome, BatchState, register_batched
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.game import EnvSpec, Guarantee
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.normal_form import decode_valuations, encode_valuation
from mechgym.envs.mechanisms.offer_rules import PhaseMasks
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.solvers.batched import pack_without_each_batch
from mechgym.envs.solvers.packing import msw

REPORT = 0


def vcg_outcome(reports: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical welfare-maximising allocation of ``reports`` ``(B, n, 2^m)`` and Clarke
    payments: ``alloc`` and ``prices`` ``(B, n)`` int64."""
    value, alloc, without = pack_without_each_batch(reports)
    own = np.take_along_axis(reports, alloc[:, :, None], axis=2)[:, :, 0]
    return alloc, without - (value[:, None] - own)


class VCG(BatchOfOne):
    """Vickrey–Clarke–Groves with Clarke pivot payments."""

    name = "vcg"
    title = "VCG with Clarke pivot payments (baseline)"
    phases = ("report",)
    mask_depends_on_state = False

    def params(self) -> dict[str, Any]:
        return {}

    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        return {"MSW": msw(ctx).value}

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee:
        """Truthful VCG maximises welfare: E[SW] = MSW (no revenue guarantee)."""
        return Guarantee("E[SW] = MSW", Fraction(msw(ctx).value), ev.expected_welfare, exact=True)

    def validate(self, s: Episode, player: int, action: Any) -> Any:
        return check_valuation(action, s.ctx.m, f"player_{player}", "report")

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        reports = np.array([[actions[i] for i in range(s.ctx.n)]], dtype=np.int64)
        return {"reports": reports}

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout(valuation_fields(spec))

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        return (0, *(int(x) for x in vec))

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        encode_valuation(tuple(action), vec, spec, layout, f"player_{player}", "report")
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 0

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        return f"v={list(action)}"


@register_batched
class VCGRules(MoveRules):
    """The rules of :class:`VCG` over a batch."""

    mechanism = VCG

    def __init__(self, mech: VCG, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        everything = dict.fromkeys(self.layout.names, True)
        self.masker = PhaseMasks(
            [np.stack([self.layout.mask(everything)] * spec.n)], self.layout.mask({})
        )

    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        B, n, size = ctx.B, ctx.n, 1 << ctx.m
        data = {
            "reports": np.zeros((B, n, size), dtype=np.int64),
            "alloc": np.zeros((B, n), dtype=np.int64),
            "prices": self.money.zeros((B, n)),
            "reported": np.zeros(B, dtype=bool),
        }
        return BatchState(np.full(B, REPORT, dtype=np.int64), np.ones((B, n), dtype=bool), data)

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        return self.masker.rows(state.phase, state.acting)

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        return {"reports": decode_valuations(actions, self.spec, 0)}

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        live = state.phase == REPORT
        if not live.any():
            return state
        d = dict(state.data)
        if live.all():  # the common case: one report step for the whole batch
            reports = moves["reports"]
            alloc, p = vcg_outcome(reports)
            prices = self.money.array(p)
        else:
            idx = np.flatnonzero(live)
            reports = d["reports"].copy()
            reports[idx] = moves["reports"][idx]
            alloc, prices = d["alloc"].copy(), d["prices"].copy()
            a, p = vcg_outcome(reports[idx])
            alloc[idx], prices[idx] = a, self.money.array(p)
        d.update(reports=reports, alloc=alloc, prices=prices, reported=d["reported"] | live)
        phase = np.where(live, TERMINAL, state.phase)
        return BatchState(phase, state.acting & ~live[:, None], d, list(state.chance))

    def outcome(self, state: BatchState) -> BatchOutcome:
        d = state.data
        return BatchOutcome.of_bundles(d["alloc"], d["prices"])

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        return np.zeros((len(state.phase), 0), dtype=np.float32)
