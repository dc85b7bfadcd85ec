"""Money backends of a mechanism's rules: exact rationals or float64, chosen at run time.

A mechanism's rules are written once over arrays with a leading batch axis. What money is
made of is the caller's choice: :data:`EXACT` (numpy object arrays of ``Fraction``: the
reference, run on a batch of one by the exact engine, the PettingZoo envs and
``evaluate --exact``) or :data:`FLOAT` (float64: large batches for training and sampling).
Values, bids and announced prices are integers in both; only the amounts that mix them
with constants such as ε go through a backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

_RATIO = np.frompyfunc(Fraction, 2, 1)


@dataclass(frozen=True)
class Money:
    """One backend: how integer arrays and exact constants become money.

    Attributes
    ----------
    name : str
        ``"exact"`` or ``"float"``.
    """

    name: str

    @property
    def exact(self) -> bool:
        """Whether amounts are exact rationals."""
        return self.name == "exact"

    def array(self, a: Any) -> np.ndarray:
        """Integer (or already money) array ``a`` as money: an object array of Python ints
        and ``Fraction``, or float64.

        Exact amounts stay Python ints until a constant such as ε or a :meth:`ratio` makes
        them rational (cheaper than a ``Fraction`` per entry); so exact rules never divide
        two amounts with ``/`` (``int / int`` is a float) but call :meth:`ratio`.
        """
        arr = np.asarray(a)
        if self.exact:
            return arr if arr.dtype == object else arr.astype(object)
        return arr.astype(np.float64)

    def ratio(self, num: Any, den: Any) -> np.ndarray:
        """``num / den`` elementwise: exact ``Fraction`` s, or float64."""
        if self.exact:
            return np.asarray(_RATIO(num, den), dtype=object)
        return np.asarray(num, dtype=np.float64) / den

    def constant(self, q: Fraction) -> Fraction | float:
        """An exact constant (ε, a probability) in this backend."""
        return Fraction(q) if self.exact else float(q)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        """Zero amounts of ``shape``."""
        return self.array(np.zeros(shape, dtype=np.int64))

    def exact_value(self, x: Any) -> Fraction:
        """One amount as a ``Fraction`` (exact backend: as it is; float: refused)."""
        if not self.exact:
            raise TypeError("float money has no exact value; run the rules with EXACT money")
        return Fraction(x)


EXACT = Money("exact")
"""Exact rationals (numpy object arrays of ``Fraction``)."""

FLOAT = Money("float")
"""float64."""
