"""Building blocks of scripted play in the offer mechanisms: scaled offers, ranked bundles,
the take-it-or-leave-it answer rule."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.game import Mechanism, PendingOffer

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


def scale_offer(offer: Offer, factor: Fraction, min_price: int = 1) -> Offer:
    """Scale every price by ``factor`` (down: floor, up: ceil); entries that fall below
    ``min_price`` are withdrawn, so the result is always a well-formed offer."""
    alloc, prices = [], []
    for b, p in zip(offer.alloc, offer.prices, strict=True):
        q = p * factor
        q = math.floor(q) if factor < 1 else math.ceil(q)
        if b and q >= min_price and (q > 0 or min_price == 0) and factor > 0:
            alloc.append(b)
            prices.append(int(q))
        else:
            alloc.append(0)
            prices.append(0)
    return Offer(tuple(alloc), tuple(prices))


def ranked_bundles(values: np.ndarray) -> list[int]:
    """Bundles by decreasing own value, lowest bitmask first on ties."""
    v = np.asarray(values)
    return sorted(range(len(v)), key=lambda s: (-int(v[s]), s))


def accepts(value: int, price: int) -> bool:
    """The dominant answer to a take-it-or-leave-it offer: YES iff value ≥ price."""
    return int(value) >= int(price)


def offer_to(mech: Mechanism, state: object, player: int) -> PendingOffer:
    """The question ``player`` answers at ``state``, as the mechanism states it
    (:meth:`~mechgym.envs.engine.game.Mechanism.pending_offer`); a :class:`ValueError` where
    the node asks ``player`` none (a scripted answer asked for out of turn)."""
    q = mech.pending_offer(state, player)
    if q is None:
        raise ValueError(f"{mech.name}: player {player} is asked no question at this node")
    return q
