"""Scripted play of VCG: truthful reports (dominant) and collusive overbidding (Ausubel–Milgrom).

Collusive overbidding: every member of a non-singleton coalition reports ``value_cap`` on each
bundle it values positively; independent players stay truthful. With two losers who each want
one good of a pair that an independent bidder values as a whole, VCG then gives each loser its
good at price 0 and collects nothing.
"""

from __future__ import annotations

from typing import Any

from mechgym.envs.engine.game import EnvSpec, Mechanism

from .base import MechanismAgents, RandomPolicy, register_agents


class Truthful:
    """Report the true valuation."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        return tuple(int(x) for x in ctx.values[player])


class CollusiveOverbid:
    """Members of non-singleton coalitions report ``cap`` on every bundle they value."""

    def __init__(self, ctx: Any, cap: int | None = None) -> None:
        self.cap = int(cap if cap is not None else ctx.value_cap)

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        v = [int(x) for x in ctx.values[player]]
        if len(ctx.coalition_of(player)) == 1:
            return tuple(v)
        return tuple(self.cap if x > 0 else 0 for x in v)


class Scaled:
    """Report the true valuation scaled by ``factor`` (rounded down)."""

    def __init__(self, ctx: Any, factor: float) -> None:
        self.factor = factor

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        return tuple(int(int(x) * self.factor) for x in ctx.values[player])


def menu_size(phase: str, spec: EnvSpec) -> int:
    """Truth, half, zero, and the collusive overbid."""
    return 4


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact reports: truthful, halved, all zero, overbid at the cap on valued bundles."""
    v = [int(x) for x in ctx.values[player]]
    cap = ctx.value_cap
    return [
        ("truth", tuple(v)),
        ("half", tuple(x // 2 for x in v)),
        ("zero", (0,) * len(v)),
        ("overbid", tuple(cap if x > 0 else 0 for x in v)),
    ]


register_agents(
    "vcg",
    MechanismAgents(
        predicted=Truthful,
        deviations={
            "collusive_overbid": lambda ctx, rng: CollusiveOverbid(ctx),
            "underbid": lambda ctx, rng: Scaled(ctx, 0.5),
            "random": lambda ctx, rng: RandomPolicy(
                rng, EnvSpec(ctx.n, ctx.m, ctx.value_cap, ctx.value_cap)
            ),
        },
        menu=menu,
        menu_size=menu_size,
    ),
)
