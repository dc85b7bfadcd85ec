"""Rules shared by seed 000's mechanisms (M1, M2) and, for the parts they share, M3 and M4.

The constants and theorems of seed 000 (ε, the fair coin, the benchmarks, Theorems 1–2), and
the offer rules over a batch: the winner, the coin's heads branch, the sale of the leading
offer on tails, the revenue-increasing rewards δ_i = (ε/n)·R_i/(1+R_i), the offer codecs of
the array layout and the public view of a take-it-or-leave-it stage.

Every array function takes a leading batch axis ``B`` (some accept any leading axes) and loops
at most over players or goods, never over episodes. Offers are carried as two arrays:
``alloc`` (bundle bitmask per player, int64) and ``prices`` (price per player, int64, 0 where
nothing is given). Money is the caller's backend (:mod:`mechgym.envs.engine.money`).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import offer_mask
from mechgym.envs.engine.batched import TERMINAL, draw
from mechgym.envs.engine.episode import Moves
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import (
    Chance,
    EnvSpec,
    Examples,
    Guarantee,
    Mechanism,
    as_fraction,
)
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.solvers.packing import best_beliefs, msw

HALF = Fraction(1, 2)
COIN = Chance("coin", ("heads", "tails"), (HALF, HALF))
"""The fair coin of seeds 000 and 001."""


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


def announce_or_answer_moves(n: int, actions: Mapping[int, Any], announcement: type) -> Moves:
    """The moves (batch of one) of the structured actions of M1 and M3: announcements
    (``bundle``, ``alloc``, ``prices``) or YES/NO answers (``yes``)."""
    moves = {
        "bundle": np.zeros((1, n), dtype=np.int64),
        "alloc": np.zeros((1, n, n), dtype=np.int64),
        "prices": np.zeros((1, n, n), dtype=np.int64),
        "yes": np.zeros((1, n), dtype=bool),
    }
    for i, a in actions.items():
        if isinstance(a, announcement):
            moves["bundle"][0, i] = a.bundle
            moves["alloc"][0, i] = a.offer.alloc
            moves["prices"][0, i] = a.offer.prices
        else:
            moves["yes"][0, i] = bool(a)
    return moves


# -- state updates -----------------------------------------------------------------------------


def merge(live: np.ndarray, new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``new`` for the ``live`` episodes (``(B,)`` bool), ``old`` elsewhere; any trailing axes.

    When every episode is live (the common case of a batch played in lockstep) ``new`` is
    returned as is.
    """
    if live.all():
        return new
    return np.where(live.reshape(live.shape + (1,) * (new.ndim - 1)), new, old)


# -- announcements ---------------------------------------------------------------------------


def announced_revenues(prices: np.ndarray) -> np.ndarray:
    """R_i = REV(ω^i): ``prices`` ``(..., n, n)`` (announcer, player) → ``(..., n)`` int64."""
    return prices.sum(axis=-1)


def winner_of(revenues: np.ndarray) -> np.ndarray:
    """Top announcer per episode: ``argmax`` over the last axis, lowest index on ties
    (as :func:`mechgym.envs.mechanisms.offer_rules.winner_of`)."""
    return np.argmax(revenues, axis=-1)


def draw_coin(rng: np.random.Generator, live: np.ndarray) -> np.ndarray:
    """The fair coin of seeds 000/001 for every ``live`` episode: 0 = heads, 1 = tails, −1
    where not live. Log the result in ``state.chance``."""
    return draw(rng, COIN.probs, live, COIN)


def _per_row(eps: Fraction | np.ndarray, money: Money) -> Any:
    """ε as money, or a ``(B,)`` array of per-episode ε as a ``(B, 1)`` column."""
    if isinstance(eps, np.ndarray):
        return money.array(eps)[:, None]
    return money.constant(eps)


def delta_rewards(
    eps: Fraction | np.ndarray, n: int, revenues: np.ndarray, money: Money = FLOAT
) -> np.ndarray:
    """δ_i = (ε/n)·R_i/(1+R_i) as money (as :func:`offer_rules.reward`); ``eps`` is one
    constant or ``(B,)`` per episode (the ε-fraction reward budget of M1)."""
    r = money.array(revenues)
    return _per_row(eps, money) / n * money.ratio(r, 1 + r)


# -- the take-it-or-leave-it stage -----------------------------------------------------------


def askers(alloc: np.ndarray) -> np.ndarray:
    """Who is asked YES/NO: the players given a non-empty bundle in the leading offer."""
    return alloc != 0


def heads_outcome(
    winner: np.ndarray, bundle: np.ndarray, n: int, money: Money = FLOAT
) -> tuple[np.ndarray, np.ndarray]:
    """Heads: ``winner`` ``(B,)`` receives ``bundle`` ``(B,)`` for free (no winner where
    ``winner < 0``: nothing is allocated). Returns ``alloc (B, n)``, ``prices (B, n)``."""
    alloc = np.where(np.arange(n)[None, :] == winner[:, None], bundle[:, None], 0)
    return alloc.astype(np.int64), money.zeros(alloc.shape)


def tails_outcome(
    winner: np.ndarray,
    alloc: np.ndarray,
    prices: np.ndarray,
    accepted: np.ndarray,
    revenues: np.ndarray,
    eps: Fraction | np.ndarray,
    money: Money = FLOAT,
) -> tuple[np.ndarray, np.ndarray]:
    """Tails: sell the leading offer (``alloc``, ``prices`` ``(B, n)``), then pay every δ_i.

    A player accepting (``accepted`` ``(B, n)`` bool, read where offered a bundle) buys its
    bundle at ``π − ε/n``; a refusal charges ``π`` to ``winner`` ``(B,)`` (to nobody where
    ``winner < 0``: the seller's reserve leads). As
    :func:`mechgym.envs.mechanisms.offer_rules.tails_outcome`; ``eps`` is one constant or
    ``(B,)`` per episode. Money: ``money``.
    """
    n = alloc.shape[1]
    offered = alloc != 0
    yes = offered & accepted
    no = offered & ~accepted
    bonus = _per_row(eps, money) / n
    pay = np.where(yes, money.array(prices) - bonus, money.zeros(prices.shape))
    refused = money.array(np.where(no, prices, 0).sum(axis=1))
    charge = (np.arange(n)[None, :] == winner[:, None]) * refused[:, None]
    out_alloc = np.where(yes, alloc, 0).astype(np.int64)
    return out_alloc, pay + charge - delta_rewards(eps, n, revenues, money)


# -- array layout ------------------------------------------------------------------------------


def decode_offers(
    vecs: np.ndarray, spec: EnvSpec, layout: ActionLayout, min_price: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Offers from mask-checked arrays ``(..., L)``: ``alloc``, ``prices`` ``(..., n)`` int64.

    As :func:`mechgym.envs.engine.actions.decode_offer`: good ``g`` goes to player
    ``owner_g − 1``; a price field is read only where its player gets a bundle, value ``k``
    meaning ``k + min_price``.
    """
    n = spec.n
    lead = vecs.shape[:-1]
    alloc = np.zeros((*lead, n), dtype=np.int64)
    players = np.arange(1, n + 1)
    for g in range(spec.m):
        owner = vecs[..., layout.index[f"owner_{g}"]]
        alloc |= (owner[..., None] == players) << g
    first = layout.index["price_0"]
    raw = vecs[..., first : first + n]
    prices = np.where(alloc != 0, raw + min_price, 0).astype(np.int64)
    return alloc, prices


def encode_offers(
    alloc: np.ndarray,
    prices: np.ndarray,
    out: np.ndarray,
    spec: EnvSpec,
    layout: ActionLayout,
    min_price: int = 1,
) -> None:
    """Write offers ``alloc``, ``prices`` ``(..., n)`` into actions ``out`` ``(..., L)`` in place
    (as :func:`mechgym.envs.engine.actions.encode_offer`; prices must lie on the grid)."""
    n = spec.n
    for g in range(spec.m):
        has = (alloc >> g) & 1  # (..., n): at most one player holds good g
        owner = (has * np.arange(1, n + 1)).sum(axis=-1)
        out[..., layout.index[f"owner_{g}"]] = owner
    first = layout.index["price_0"]
    out[..., first : first + n] = np.where(alloc != 0, prices - min_price, 0)


def offer_on_grid(
    alloc: np.ndarray, prices: np.ndarray, spec: EnvSpec, min_price: int = 1
) -> np.ndarray:
    """Whether each offer ``(..., n)`` can be written in the array layout (every priced entry
    within ``min_price..min_price + price_cap − 1``): ``(...,)`` bool."""
    k = prices - min_price
    ok = (alloc == 0) | ((k >= 0) & (k < spec.price_cap))
    return ok.all(axis=-1)


def announce_mask_rows(layout: ActionLayout, spec: EnvSpec, extra: Mapping[str, Any]) -> np.ndarray:
    """``(n, mask_size)`` int8: row ``i`` is the mask of an announcement of player ``i`` (the
    offer fields per :func:`~mechgym.envs.engine.actions.offer_mask`, plus ``extra``)."""
    return np.stack([layout.mask({**extra, **offer_mask(spec, i)}) for i in range(spec.n)])


class PhaseMasks:
    """Masks of mechanisms whose masks depend only on (phase, player): a table per phase.

    Parameters
    ----------
    rows : sequence of ndarray
        Per phase, ``(n, mask_size)`` int8 masks of the acting players.
    idle : ndarray
        ``(mask_size,)`` mask of a player who does not act (only 0 allowed).
    """

    def __init__(self, rows: list[np.ndarray], idle: np.ndarray) -> None:
        n, size = rows[0].shape
        self.n, self.phases = n, len(rows)
        # One flat table of rows indexed by (phase, acting, player); phase index P stands
        # for ended episodes (all idle). A gather is much cheaper than a 3-way np.where.
        table = np.empty((self.phases + 1, 2, n, size), dtype=np.int8)
        table[:, 0] = idle
        table[: self.phases, 1] = np.stack(rows)
        table[self.phases, 1] = idle
        self.table = table.reshape(-1, size)
        self.players = np.arange(n)

    def rows(self, phase: np.ndarray, acting: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(table, index (B, n))`` of the masks (see :meth:`BatchedRules.mask_rows`)."""
        p = np.where(phase == TERMINAL, self.phases, phase)
        return self.table, (p[:, None] * 2 + acting) * self.n + self.players

    def __call__(self, phase: np.ndarray, acting: np.ndarray) -> np.ndarray:
        """``(B, n, mask_size)`` masks for episodes at ``phase`` ``(B,)`` with ``acting``."""
        table, idx = self.rows(phase, acting)
        return np.take(table, idx, axis=0)


# -- public features ---------------------------------------------------------------------------


def offer_features(alloc: np.ndarray, prices: np.ndarray, spec: EnvSpec) -> np.ndarray:
    """``(B, m + n)``: owner+1 of every good, then every player's price (as
    :func:`mechgym.envs.engine.actions.offer_features`)."""
    bits = (alloc[:, :, None] >> np.arange(spec.m)) & 1  # (B, n, m)
    owners = (bits * np.arange(1, spec.n + 1)[None, :, None]).sum(axis=1)
    return np.concatenate([owners, prices], axis=1).astype(np.float32)


def star_features(data: dict[str, np.ndarray], n: int, size: int) -> np.ndarray:
    """``(B, size)`` float32 public features of M3 and M4 with their first block written:
    the top announcer ★ one-hot (``n``), then the announced revenues (``n``); the rest 0."""
    B = data["star"].shape[0]
    out = np.zeros((B, size), dtype=np.float32)
    out[:, :n] = np.arange(n)[None, :] == data["star"][:, None]
    out[:, n : 2 * n] = data["rev"]
    return out


def write_offer_stage(
    out: np.ndarray,
    k: int,
    spec: EnvSpec,
    alloc: np.ndarray,
    prices: np.ndarray,
    player: int | None,
    asked: np.ndarray,
    answers: np.ndarray,
) -> None:
    """Batched :func:`mechgym.envs.engine.actions.write_offer_stage` into ``out``.

    ``alloc``, ``prices`` ``(B, n)``: the leading offer; ``answers`` ``(B, n)``: +1 YES, −1 NO,
    0 not asked or not answered yet. One ``player``: ``out`` ``(B, size)`` and ``asked``
    ``(B,)``, whether its own question is shown; ``player=None``: every player at once,
    ``out`` ``(B, n, size)`` and ``asked`` ``(B, n)``. Rows whose episode has announced nothing
    yet must be zeroed by the caller.
    """
    if player is not None:
        out, asked = out[:, None, :], asked[:, None]
        own_alloc, own_price = alloc[:, player : player + 1], prices[:, player : player + 1]
    else:
        own_alloc, own_price = alloc, prices
    n, m = spec.n, spec.m
    out[:, :, k : k + m + n] = offer_features(alloc, prices, spec)[:, None, :]
    k += m + n
    bits = (own_alloc[:, :, None] >> np.arange(m)) & 1
    out[:, :, k : k + m] = np.where(asked[:, :, None], bits, 0)
    out[:, :, k + m] = np.where(asked, own_price, 0)
    out[:, :, k + m + 1] = asked
    k += m + 2
    out[:, :, k : k + n] = answers[:, None, :]
