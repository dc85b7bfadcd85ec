"""Outcomes of a mechanism: who gets what, who pays what (exact rationals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

Money = Fraction


@dataclass(frozen=True)
class Outcome:
    """A terminal outcome.

    Attributes
    ----------
    alloc : tuple[int, ...]
        Bundle bitmask per player (auctions and markets); empty for abstract-state contexts.
    prices : tuple[Fraction, ...]
        Price per player; negative means the player receives money.
    state : int or None
        Index of the chosen abstract state (perfect-information contexts), ``None`` otherwise;
        ``-1`` denotes the null state.
    destroyed : int
        Bitmask of goods destroyed by the mechanism (markets).
    rule : str
        The step of the mechanism that produced the outcome, e.g. ``"heads"``.
    """

    alloc: tuple[int, ...]
    prices: tuple[Fraction, ...]
    state: int | None = None
    destroyed: int = 0
    rule: str = field(default="", compare=False)

    @property
    def revenue(self) -> Fraction:
        """REV = sum of prices."""
        return sum(self.prices, Fraction(0))
