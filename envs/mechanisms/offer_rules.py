"""Rules shared by seed 000's mechanisms: the winner, the coin's heads branch, the sale of the
winner's offer on tails, and the revenue-increasing rewards δ_i = (ε/n)·R_i/(1+R_i)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from functools import cached_property
from typing import Any, ClassVar

from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import Chance, Examples, Guarantee, Mechanism, as_fraction
from mechgym.envs.model.outcome import Outcome
from mechgym.envs.solvers.packing import best_beliefs, msw

HALF = Fraction(1, 2)
COIN = Chance("coin", ("heads", "tails"), (HALF, HALF))
"""The fair coin of seeds 000 and 001."""


def winner_of(revenues: Sequence[int]) -> int:
    """``argmax`` of announced revenues, lowest index on ties."""
    best = 0
    for i, r in enumerate(revenues):
        if r > revenues[best]:
            best = i
    return best


class AnnouncedOffers:
    """For states whose ``announcements`` each carry an ``offer``: the announced revenues
    R_i = REV(ω^i) and the top announcer (highest R_i, lowest index on ties)."""

    announcements: tuple[Any, ...] | None

    @cached_property
    def revenues(self) -> tuple[int, ...]:
        """R_i for every player."""
        assert self.announcements is not None
        return tuple(a.offer.revenue for a in self.announcements)

    @cached_property
    def top(self) -> int:
        """The highest announcer, lowest index on ties."""
        return winner_of(self.revenues)


def reward(eps: Fraction, n: int, revenue: int) -> Fraction:
    """δ_i = (ε/n) · R_i / (1 + R_i): strictly increasing in the announced revenue, below ε/n."""
    return eps / n * Fraction(revenue, 1 + revenue)


def heads_outcome(n: int, winner: int, bundle: int) -> Outcome:
    """Heads: the winner receives ``bundle`` for free; nobody pays, no rewards."""
    alloc = [0] * n
    alloc[winner] = bundle
    return Outcome(tuple(alloc), (Fraction(0),) * n, rule="heads")


def tails_outcome(
    n: int,
    winner: int | None,
    offer: Offer,
    accepted: Mapping[int, bool],
    revenues: Sequence[int],
    eps: Fraction,
) -> Outcome:
    """Tails: sell the winner's offer as take-it-or-leave-it offers, then pay every reward.

    A player accepting buys its bundle at ``π − ε/n``; a refusal charges ``π`` to the winner
    (to nobody when the seller's reserve outcome leads, ``winner=None``).
    """
    alloc = [0] * n
    prices = [Fraction(0)] * n
    bonus = eps / n
    for i, b in enumerate(offer.alloc):
        if not b:
            continue
        if accepted[i]:
            alloc[i] = b
            prices[i] += offer.prices[i] - bonus
        elif winner is not None:
            prices[winner] += offer.prices[i]
    for i in range(n):
        prices[i] -= reward(eps, n, revenues[i])
    return Outcome(tuple(alloc), tuple(prices), rule="tails")


def seed000_benchmarks(ctx: Any) -> dict[str, Any]:
    """MSW, BB_i for every player, BB, and BB over the independent players (6.2.3)."""
    bbs = [b.value for b in best_beliefs(ctx)]
    indep = [bbs[i] for i in ctx.independent]
    return {
        "MSW": msw(ctx).value,
        "BB_i": bbs,
        "BB": max(bbs),
        "BB_independent": max(indep) if indep else 0,
    }


def seed000_guarantee(ctx: Any, ev: Any, eps: Fraction) -> Guarantee:
    """Theorems 1–2 of seed 000: E[REV] ≥ BB/2 − ε; with collusion (Section 6.2.3, stated for
    M_BB only), BB over the independent players. Who colludes: ``ctx.acting_coalitions``."""
    bench = seed000_benchmarks(ctx)
    if not ctx.collusive:
        return Guarantee(
            "E[REV] >= BB/2 - eps", Fraction(bench["BB"], 2) - eps, ev.expected_revenue
        )
    return Guarantee(
        "E[REV] >= max_{i independent} BB_i/2 - eps",
        Fraction(bench["BB_independent"], 2) - eps,
        ev.expected_revenue,
    )


def check_eps(eps: Any, hi: Fraction = Fraction(1), name: str = "eps") -> Fraction:
    """ε read exactly and checked to lie in (0, hi]."""
    e = as_fraction(eps, name)
    if not 0 < e <= hi:
        raise ParameterError(name, f"must lie in (0, {hi}], got {e}")
    return e


class Seed000Mechanism(Mechanism):
    """What M1 and M2 share: the constant ε, the fair coin, the benchmarks and Theorems 1–2."""

    parameter_examples: ClassVar[Examples] = {"eps": ("1", "1/3", "1/1000")}

    def __init__(self, eps: Any = "1/10") -> None:
        self.eps = check_eps(eps)

    def params(self) -> dict[str, Any]:
        return {"eps": str(self.eps)}

    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        return seed000_benchmarks(ctx)

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee:
        return seed000_guarantee(ctx, ev, self.eps)

    def chance(self, s: Any, index: int) -> Any:
        return replace(s, coin=index)
