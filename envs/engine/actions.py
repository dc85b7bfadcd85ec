"""Structured actions shared by the auction mechanisms, and their array codecs.

An :class:`Offer` is an outcome announced for the others: a bundle ``alloc[j]`` and a
take-it-or-leave-it price ``prices[j]`` per player. In arrays it occupies the fields
``owner_g`` (one per good: 0 = unallocated, ``j + 1`` = player ``j``) and ``price_j`` (one per
player). A price field is read only when its player is given a non-empty bundle; value ``k``
then means price ``k + min_price``. Arrays therefore cannot express a malformed offer; the
structured form is checked strictly by :func:`check_offer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.model.limits import MAX_AMOUNT


@dataclass(frozen=True)
class Offer:
    """Bundles and prices offered to each player (the announcer's own entry is empty)."""

    alloc: tuple[int, ...]
    prices: tuple[int, ...]

    @property
    def revenue(self) -> int:
        """REV of the announced outcome."""
        return sum(self.prices)

    @classmethod
    def empty(cls, n: int) -> Offer:
        """The offer that sells nothing."""
        return cls((0,) * n, (0,) * n)


def describe_offer(offer: Offer, priced_empty: bool = False) -> str:
    """``offer: p1 gets {0} at 25, p2 gets {0,1} at 10 (REV 35)``, the one text of an offer
    in transcripts.

    Parameters
    ----------
    offer : Offer
    priced_empty : bool
        Also list players priced for the empty bundle (``p0 gets {-} at 3``), as M4's
        reasonable offers price every player; by default only players offered goods.
    """
    parts = [
        f"p{j} gets {{{format_bundle(b)}}} at {p}"
        for j, (b, p) in enumerate(zip(offer.alloc, offer.prices, strict=True))
        if b or (priced_empty and p)
    ]
    return "offer: " + (", ".join(parts) if parts else "nothing") + f" (REV {offer.revenue})"


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def check_amount(
    x: object, agent: str, phase: str, what: str, lo: int = 0, hi: int = MAX_AMOUNT
) -> int:
    """An integer amount (value, price, bid) in ``lo..hi``; ``hi`` defaults to 2**53, which
    keeps rewards exact in float64 and every sum of ``n`` amounts inside the int64 solvers."""
    if not _is_int(x):
        raise MalformedAnnouncementError(agent, phase, f"{what} must be an integer, got {x!r}")
    if not lo <= int(x) <= hi:
        low = "-2**53" if lo == -MAX_AMOUNT else str(lo)
        bound = "2**53" if hi == MAX_AMOUNT else str(hi)
        raise MalformedAnnouncementError(
            agent, phase, f"{what} must lie in {low}..{bound}, got {_short(x)}"
        )
    return int(x)


def _short(x: object) -> str:
    text = repr(x)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def check_entries(
    x: object, length: int, agent: str, phase: str, what: str, noun: str = "entries"
) -> list[Any]:
    """A sequence (tuple, list, array) of exactly ``length`` entries; anything else, iterators
    included, is a malformed announcement."""
    if isinstance(x, str | bytes) or not isinstance(x, Sequence | np.ndarray):
        raise MalformedAnnouncementError(
            agent, phase, f"{what} must be a sequence of {length} {noun}, got {_short(x)}"
        )
    if isinstance(x, np.ndarray) and x.ndim != 1:
        raise MalformedAnnouncementError(agent, phase, f"{what} must be one-dimensional")
    if len(x) != length:
        raise MalformedAnnouncementError(
            agent, phase, f"{what} needs {length} {noun}, got {len(x)}"
        )
    return list(x)


def check_bundle(bundle: object, m: int, agent: str, phase: str, what: str = "bundle") -> int:
    """Validate a bundle bitmask over ``m`` goods."""
    if not _is_int(bundle) or not 0 <= int(bundle) < 1 << m:
        raise MalformedAnnouncementError(
            agent, phase, f"{what} {bundle!r} is not a bitmask over {m} goods"
        )
    return int(bundle)


def check_offer(
    offer: object,
    n: int,
    m: int,
    announcer: int | None,
    agent: str,
    phase: str,
    min_price: int = 1,
) -> Offer:
    """Validate an announced offer; return it with plain-int entries.

    Rules: one bundle and one integer price per player; bundles pairwise disjoint; the
    announcer (if given) offers itself nothing; a player given nothing has price 0; a player
    given a bundle has price ``>= min_price`` (1 for positive prices, 0 for merely non-negative).
    """
    if not isinstance(offer, Offer):
        raise MalformedAnnouncementError(
            agent, phase, f"expected an Offer, got {type(offer).__name__}"
        )
    raw_alloc = check_entries(offer.alloc, n, agent, phase, "an offer", "bundles")
    raw_prices = check_entries(offer.prices, n, agent, phase, "an offer", "prices")
    alloc = tuple(
        check_bundle(b, m, agent, phase, f"bundle for player {j}") for j, b in enumerate(raw_alloc)
    )
    used = 0
    for j, b in enumerate(alloc):
        if used & b:
            raise MalformedAnnouncementError(
                agent, phase, f"bundle for player {j} overlaps another player's bundle"
            )
        used |= b
    prices = []
    for j, raw in enumerate(raw_prices):
        p = check_amount(raw, agent, phase, f"price for player {j}", lo=-MAX_AMOUNT)
        if alloc[j] == 0 and p != 0:
            raise MalformedAnnouncementError(
                agent, phase, f"player {j} is offered nothing, so its price must be 0 (got {p})"
            )
        if alloc[j] != 0 and p < min_price:
            need = "positive" if min_price == 1 else f">= {min_price}"
            raise MalformedAnnouncementError(
                agent, phase, f"price for player {j} must be {need}, got {p}"
            )
        prices.append(p)
    if announcer is not None and alloc[announcer] != 0:
        raise MalformedAnnouncementError(
            agent, phase, f"an announcer may not offer goods to itself (player {announcer})"
        )
    return Offer(alloc, tuple(prices))


def offer_fields(spec: EnvSpec) -> list[tuple[str, int]]:
    """Layout fields of an offer: ``owner_g`` per good and ``price_j`` per player."""
    return [(f"owner_{g}", spec.n + 1) for g in range(spec.m)] + [
        (f"price_{j}", spec.price_cap) for j in range(spec.n)
    ]


def offer_mask(spec: EnvSpec, announcer: int | None) -> dict[str, object]:
    """Mask entries of an offer announced by ``announcer`` (who may not own anything)."""
    owner = np.ones(spec.n + 1, dtype=np.int8)
    allowed: dict[str, object] = {}
    if announcer is not None:
        owner[announcer + 1] = 0
    for g in range(spec.m):
        allowed[f"owner_{g}"] = owner
    for j in range(spec.n):
        if j != announcer:
            allowed[f"price_{j}"] = True
    return allowed


def decode_offer(vec: np.ndarray, spec: EnvSpec, layout: ActionLayout, min_price: int = 1) -> Offer:
    """Offer from a mask-checked array."""
    alloc = [0] * spec.n
    for g in range(spec.m):
        o = int(vec[layout.index[f"owner_{g}"]])
        if o:
            alloc[o - 1] |= 1 << g
    prices = tuple(
        int(vec[layout.index[f"price_{j}"]]) + min_price if alloc[j] else 0 for j in range(spec.n)
    )
    return Offer(tuple(alloc), prices)


def encode_offer(
    offer: Offer,
    vec: np.ndarray,
    spec: EnvSpec,
    layout: ActionLayout,
    agent: str,
    phase: str,
    min_price: int = 1,
) -> None:
    """Write an offer into ``vec`` (in place); raise if a price is beyond the price grid."""
    for j, b in enumerate(offer.alloc):
        for g in range(spec.m):
            if b >> g & 1:
                vec[layout.index[f"owner_{g}"]] = j + 1
        if b:
            k = int(offer.prices[j]) - min_price
            if not 0 <= k < spec.price_cap:
                raise OutOfSpaceError(
                    agent,
                    phase,
                    f"price {offer.prices[j]} for player {j} is outside the grid "
                    f"{min_price}..{spec.price_cap - 1 + min_price}",
                )
            vec[layout.index[f"price_{j}"]] = k


def offer_features(offer: Any, spec: EnvSpec) -> list[float]:
    """Public view of an offer or proposal (anything with ``alloc`` and ``prices``): owner+1
    of every good, then every player's price; zeros for ``None``."""
    if offer is None:
        return [0.0] * (spec.m + spec.n)
    owners = [0.0] * spec.m
    for j, b in enumerate(offer.alloc):
        for g in range(spec.m):
            if b >> g & 1:
                owners[g] = float(j + 1)
    return owners + [float(p) for p in offer.prices]


def offer_stage_size(spec: EnvSpec) -> int:
    """Length of :func:`write_offer_stage`'s block."""
    return 2 * spec.m + 2 * spec.n + 2


def write_offer_stage(
    out: np.ndarray,
    k: int,
    spec: EnvSpec,
    offer: Offer,
    player: int,
    asked: bool,
    answers: Sequence[tuple[int, bool]] | None,
) -> None:
    """Write the public view of a take-it-or-leave-it stage at ``out[k:]``: the leading offer
    (owners, prices), the player's own question (bundle bits, price, asked flag) when
    ``asked``, and the answers once given (+1 YES, −1 NO, 0 not asked)."""
    n, m = spec.n, spec.m
    out[k : k + m + n] = offer_features(offer, spec)
    k += m + n
    if asked:
        b = offer.alloc[player]
        out[k : k + m] = [(b >> g) & 1 for g in range(m)]
        out[k + m] = offer.prices[player]
        out[k + m + 1] = 1.0
    k += m + 2
    if answers is not None:
        for i, yes in answers:
            out[k + i] = 1.0 if yes else -1.0


def check_answer(answer: object, agent: str, phase: str) -> bool:
    """A YES/NO answer must be a bool (``True`` = YES)."""
    if not isinstance(answer, bool | np.bool_):
        raise MalformedAnnouncementError(
            agent, phase, f"answer YES/NO with True/False, got {answer!r}"
        )
    return bool(answer)


def check_valuation(v: object, m: int, agent: str, phase: str, lo: int = 0) -> tuple[int, ...]:
    """A reported valuation: ``2**m`` integers ``>= lo``, 0 on the empty bundle."""
    vals = check_entries(v, 1 << m, agent, phase, "a valuation", "values (one per bundle)")
    out = [check_amount(x, agent, phase, f"value of bundle {s}", lo=lo) for s, x in enumerate(vals)]
    if out[0] != 0:
        raise MalformedAnnouncementError(
            agent, phase, "the empty bundle must be reported at value 0"
        )
    return tuple(out)


def valuation_fields(spec: EnvSpec) -> list[tuple[str, int]]:
    """Layout fields of a reported valuation: ``value_S`` for every non-empty bundle S."""
    return [(f"value_{s}", spec.value_cap + 1) for s in range(1, 1 << spec.m)]


def favourite_bundle(values: Sequence[int] | np.ndarray) -> int:
    """A bundle maximising ``values``, lowest bitmask on ties."""
    return int(np.argmax(np.asarray(values)))
