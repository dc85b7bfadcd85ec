"""VCG with Clarke pivot payments: the baseline every user asks for.

Every player reports a valuation (one simultaneous move). The allocation maximises reported
welfare (the exact subset DP's canonical optimum, so ties are broken the same way every time);
player ``i`` pays the externality it imposes: the others' best welfare without ``i`` minus
their welfare at the chosen allocation. Truthful reporting is dominant and the allocation
maximises welfare, but revenue can be 0 and collapses when two losers collude
(Ausubel–Milgrom, cited in seeds 002 and 003).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import check_valuation, valuation_fields
from mechgym.envs.engine.game import Decision, EnvSpec, Guarantee, Mechanism, Node, Terminal
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.normal_form import encode_valuation
from mechgym.envs.model.outcome import Outcome
from mechgym.envs.solvers.packing import msw, pack_without_each


@dataclass(frozen=True)
class VCGState:
    """Public state of VCG: the reports once made."""

    n: int
    m: int
    reports: tuple[tuple[int, ...], ...] | None = None


def vcg_outcome(reports: np.ndarray) -> Outcome:
    """Welfare-maximising allocation of ``reports`` (n × 2**m) and Clarke payments."""
    best, without = pack_without_each(reports)
    prices = tuple(
        Fraction(without[i] - (best.value - int(reports[i, best.alloc[i]])))
        for i in range(reports.shape[0])
    )
    return Outcome(tuple(best.alloc), prices, rule="vcg")


class VCG(Mechanism):
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

    def start(self, ctx: Any) -> VCGState:
        return VCGState(ctx.n, ctx.m)

    def node(self, s: VCGState) -> Node:
        if s.reports is None:
            return Decision(tuple(range(s.n)), "report")
        return Terminal(vcg_outcome(np.array(s.reports, dtype=np.int64)))

    def validate(self, s: VCGState, player: int, action: Any) -> Any:
        return check_valuation(action, s.m, f"player_{player}", "report")

    def resolve(self, s: VCGState, actions: Mapping[int, Any]) -> VCGState:
        return replace(s, reports=tuple(actions[i] for i in range(s.n)))

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout(valuation_fields(spec))

    def action_mask(
        self, s: VCGState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        return layout.mask(dict.fromkeys(layout.names, True))

    def decode(
        self, s: VCGState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        return (0, *(int(x) for x in vec))

    def encode(
        self, s: VCGState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        encode_valuation(tuple(action), vec, spec, layout, f"player_{player}", "report")
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 0

    def public_features(self, s: VCGState, player: int, spec: EnvSpec) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    def describe_action(self, s: VCGState, player: int, action: Any) -> str:
        return f"v={list(action)}"
