"""Building blocks of scripted play in the offer mechanisms: the menus' price factors and the
one scaling rule of prices and bids."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

#: price factors of the menu encoding (0 = the empty offer); 1 is the private optimum
MENU_FACTORS: tuple[Fraction, ...] = (
    Fraction(0),
    Fraction(1, 2),
    Fraction(3, 4),
    Fraction(1),
    Fraction(5, 4),
    Fraction(3, 2),
    Fraction(2),
)


def scale_amounts(amounts: np.ndarray, factor: Fraction) -> np.ndarray:
    """Integer amounts (any shape) times ``factor``: rounded down when ``factor < 1``, up
    otherwise (the menus' and the deviations' price and bid scaling)."""
    f = Fraction(factor)
    a, b = f.numerator, f.denominator
    return (amounts * a) // b if f < 1 else -((-amounts * a) // b)
