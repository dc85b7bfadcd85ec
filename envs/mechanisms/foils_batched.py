"""The Naive markets (foils of M6) over a batch: the batched twins of
:mod:`mechgym.envs.mechanisms.foils` (HOPE-FOR-THE-BEST is written once there).

Each class below re-expresses one foil's exact rules over ``B`` episodes as numpy arrays
(money float64, chance drawn with :func:`~mechgym.envs.engine.batched.draw` in the order
the exact engine meets it) and registers itself with
:func:`~mechgym.envs.engine.batched.register_batched`.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    draw,
    register_batched,
)
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.mechanisms.foils import (
    NaiveMarket1,
    NaiveMarket2,
    NaiveMarket3,
    NaiveMarket4,
    _market_mask,
    _MarketFoil,
)
from mechgym.envs.mechanisms.market_rules import (
    FieldRanges,
    bundle_bits,
    check_batch,
    checked,
    decode_owners,
    destroyed_of,
    encode_owners,
    finish,
    fresh_outcome,
    owners_of,
    put_onehot,
    read_outcome,
    row_all,
    row_sum,
)
from mechgym.envs.mechanisms.offer_rules_batched import PhaseMasks

# == Naive-1 … Naive-4 (seed 004, Sec. 5.1) =====================================================
#
# ``state.data`` of the Naive markets: ``k`` ``(B,)`` (the batch's bits, one value: the price
# mask depends on it); ``alloc``, ``prices`` ``(B, n)`` int64 (Naive-1: player 0's
# announcement; Naive-2..4: the proposal, P_0 = −Σ_{j≥1} P_j); ``proposed`` ``(B,)`` bool;
# Naive-1: ``agree`` ``(B,)`` int8 (+1 unanimous, −1 not, 0 before); Naive-2..4: ``answers``
# ``(B, n)`` int8 (+1 YES, −1 NO, 0 not given; column 0 unused), ``c1``, ``c2`` ``(B,)`` int64
# (−1 until drawn); ``out_*``: the terminal outcome.


class _NaiveBatched(BatchedRules):
    """What the Naive markets' batched rules share: the proposal codec, price masks per
    ``k`` and the float constants."""

    def __init__(self, mech: _MarketFoil, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        self.eps = mech.eps_for(spec.n)  # validates ε for this n
        self.shift = spec.price_cap - 1
        self.i_price = self.layout.index["price_1"] if spec.n > 1 else 0
        self._maskers: dict[int, PhaseMasks] = {}
        self._ranges: dict[int, FieldRanges] = {}

    def _phase_rows(self, k: int) -> list[np.ndarray]:
        """Per phase, ``(n, mask_size)`` masks of the acting players."""
        raise NotImplementedError

    def masker(self, k: int) -> PhaseMasks:
        """The mask tables for ``k`` bits (the price grid is cut to (−2^k, 2^k))."""
        mk = self._maskers.get(k)
        if mk is None:
            rows = self._phase_rows(k)
            mk = self._maskers[k] = PhaseMasks(rows, self.layout.mask({}))
            self._ranges[k] = FieldRanges(self.layout, rows)
        return mk

    def ranges(self, k: int) -> FieldRanges:
        """The legal ranges of every field for ``k`` bits (see :class:`FieldRanges`)."""
        self.masker(k)
        return self._ranges[k]

    def masks(self, state: BatchState) -> np.ndarray:
        ks = state.data["k"]
        if ks.shape[0] == 0:
            return np.zeros((0, self.spec.n, self.layout.mask_size), dtype=np.int8)
        return self.masker(int(ks[0]))(state.phase, state.acting)

    def proposal_rows(self, k: int) -> np.ndarray:
        """``(n, mask_size)``: the mask of a proposal (owners free, prices cut to k)."""
        row = self.layout.mask(_market_mask(self.spec, k))
        return np.broadcast_to(row, (self.spec.n, self.layout.mask_size))

    # -- codec -------------------------------------------------------------------------------
    def decode_proposals(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``alloc``, ``prices`` ``(..., n)`` int64 of proposals ``(..., L)``, as the exact
        decoder (P_j = v − (price_cap − 1), P_0 = −Σ_{j≥1} P_j)."""
        n = self.spec.n
        alloc = decode_owners(vecs, self.layout, n, self.spec.m)
        pj = vecs[..., self.i_price : self.i_price + n - 1] - self.shift
        return alloc, np.concatenate([-row_sum(pj)[..., None], pj], axis=-1)

    def encode_proposals(
        self, alloc: np.ndarray, prices: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``(..., L)`` of proposals ``alloc``, ``prices`` ``(..., n)`` int64 and
        whether each is expressible (budget balanced, P_j ∈ (−2^k, 2^k) and on the grid
        −(price_cap−1)..(price_cap−1) for j ≥ 1), as the exact ``encode``; rows that are not
        hold clipped prices."""
        n = self.spec.n
        out = np.zeros((*alloc.shape[:-1], len(self.layout)), dtype=np.int64)
        encode_owners(alloc, out, self.layout, self.spec.m)
        pj = prices[..., 1:]
        ok = (prices.sum(axis=-1) == 0) & (np.abs(pj) < (1 << k)).all(axis=-1)
        ok &= (np.abs(pj) <= self.shift).all(axis=-1)
        out[..., self.i_price : self.i_price + n - 1] = np.clip(pj, -self.shift, self.shift) + (
            self.shift
        )
        return out, ok

    def start(self, ctx: ContextBatch) -> dict[str, np.ndarray]:
        """Fresh data arrays (after checking the batch's kind and sizes)."""
        check_batch(self, ctx)
        B, n = ctx.B, self.spec.n
        return {
            "k": np.full(B, int(ctx.k), dtype=np.int64),
            "alloc": np.zeros((B, n), dtype=np.int64),
            "prices": np.zeros((B, n), dtype=np.int64),
            "proposed": np.zeros(B, dtype=bool),
            **fresh_outcome(B, n),
        }

    def discounted(self, prices: np.ndarray) -> np.ndarray:
        """(P_0 + (n−1)ε, P_i − ε) as float64."""
        n, eps = self.spec.n, self.eps
        adj = np.array([float((n - 1) * eps)] + [float(-eps)] * (n - 1))
        return prices + adj

    def outcome(self, state: BatchState) -> BatchOutcome:
        return read_outcome(state.data)


@register_batched
class NaiveMarket1Batched(_NaiveBatched):
    """Batched rules of :class:`~mechgym.envs.mechanisms.foils.NaiveMarket1`: one
    simultaneous announcement (phase 0); unanimity implements it, else (E, 0)."""

    mechanism = NaiveMarket1
    implements = frozenset({"eps"})

    def _phase_rows(self, k: int) -> list[np.ndarray]:
        return [self.proposal_rows(k)]

    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        B, n = ctx.B, self.spec.n
        data = self.start(ctx)
        data["agree"] = np.zeros(B, dtype=np.int8)
        return BatchState(np.zeros(B, dtype=np.int64), np.ones((B, n), dtype=bool), data, [])

    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        actions = checked(self, state, actions, self.ranges(int(ctx.k)))
        live = state.phase == 0
        if not live.any():
            return state
        d = dict(state.data)
        # every field of the layout is read, so equal rows are equal announcements
        agree = live & (actions == actions[:, :1, :]).all(axis=(1, 2))
        alloc, prices = self.decode_proposals(actions[:, 0, :])
        d["alloc"] = np.where(live[:, None], alloc, d["alloc"])
        d["prices"] = np.where(live[:, None], prices, d["prices"])
        d["proposed"] = d["proposed"] | live
        d["agree"] = np.where(live, np.where(agree, 1, -1), d["agree"]).astype(np.int8)
        finish(d, agree, alloc, prices.astype(np.float64), destroyed_of(alloc, self.spec.m))
        finish(d, live & ~agree, ctx.endowment, np.zeros(alloc.shape), 0)
        phase = np.where(live, TERMINAL, state.phase)
        return BatchState(phase, state.acting & ~live[:, None], d, list(state.chance))

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        """As the exact ``public_features``: [the outcome's owners and prices | agreement
        flag] once announced."""
        n, m = self.spec.n, self.spec.m
        d = state.data
        out = np.zeros((d["alloc"].shape[0], m + n + 1), dtype=np.float32)
        agree = d["agree"] == 1
        out[:, :m] = np.where(agree[:, None], owners_of(d["alloc"], m), 0)
        out[:, m : m + n] = np.where(agree[:, None], d["prices"], 0)
        out[:, -1] = d["agree"]
        return out


class _ProposeAndAnswerBatched(_NaiveBatched):
    """Naive-2..4: player 0 proposes (phase 0), the others answer YES/NO (phase 1)."""

    def __init__(self, mech: _MarketFoil, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        self.i_answer = self.layout.index["answer"]

    def _phase_rows(self, k: int) -> list[np.ndarray]:
        answer = self.layout.mask({"answer": True})
        return [self.proposal_rows(k), np.broadcast_to(answer, (self.spec.n, answer.shape[0]))]

    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        B, n = ctx.B, self.spec.n
        data = self.start(ctx)
        data["answers"] = np.zeros((B, n), dtype=np.int8)
        data["c1"] = np.full(B, -1, dtype=np.int64)
        data["c2"] = np.full(B, -1, dtype=np.int64)
        acting = np.zeros((B, n), dtype=bool)
        acting[:, 0] = True
        return BatchState(np.zeros(B, dtype=np.int64), acting, data, [])

    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        actions = checked(self, state, actions, self.ranges(int(ctx.k)))
        n = self.spec.n
        B = ctx.B
        d = dict(state.data)
        phase = state.phase.copy()
        acting = np.zeros_like(state.acting)
        chance = list(state.chance)
        E = ctx.endowment

        P = state.phase == 0
        if P.any():
            alloc, prices = self.decode_proposals(actions[:, 0, :])
            d["alloc"] = np.where(P[:, None], alloc, d["alloc"])
            d["prices"] = np.where(P[:, None], prices, d["prices"])
            d["proposed"] = d["proposed"] | P
            endow = P & row_all(alloc == E) & row_all(prices == 0)
            finish(d, endow, E, np.zeros((B, n)), 0)
            ask = P & ~endow
            phase = np.where(endow, TERMINAL, np.where(ask, 1, phase))
            acting[:, 1:] |= ask[:, None]

        R = state.phase == 1
        if R.any():
            yes = actions[:, 1:, self.i_answer] == 1
            ans = np.zeros((B, n), dtype=np.int8)
            ans[:, 1:] = np.where(yes, 1, -1)
            d["answers"] = np.where(R[:, None], ans, d["answers"])
            y = row_sum(yes)
            alloc = d["alloc"]
            disc = self.discounted(d["prices"])
            destroyed = destroyed_of(alloc, self.spec.m)
            all_yes = R & (y == n - 1)
            finish(d, all_yes, alloc, disc, destroyed)
            self._after_no(ctx, d, R & ~all_yes, y, disc, destroyed, chance, rng)
            phase = np.where(R, TERMINAL, phase)

        return BatchState(phase, acting, d, chance)

    def _after_no(
        self,
        ctx: ContextBatch,
        d: dict[str, np.ndarray],
        some_no: np.ndarray,
        y: np.ndarray,
        disc: np.ndarray,
        destroyed: np.ndarray,
        chance: list[np.ndarray],
        rng: np.random.Generator,
    ) -> None:
        """Settle the episodes ``some_no`` (drawing and logging their coins)."""
        raise NotImplementedError

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = state.data
        return (state.phase == 1)[:, None] & state.acting, d["alloc"], d["prices"]

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        """As the exact ``public_features``: [proposal owners and prices | answers (+1/−1) |
        c1 (2) | c2 (2) | own bundle bits | own price]."""
        n, m = self.spec.n, self.spec.m
        d = state.data
        B = d["alloc"].shape[0]
        out = np.zeros((B, 2 * m + 2 * n + 5), dtype=np.float32)
        out[:, :m] = owners_of(d["alloc"], m)
        out[:, m : m + n] = d["prices"]
        pos = m + n
        out[:, pos + 1 : pos + n] = d["answers"][:, 1:]
        pos += n
        put_onehot(out, pos, d["c1"], 2)
        put_onehot(out, pos + 2, d["c2"], 2)
        pos += 4
        out[:, pos : pos + m] = bundle_bits(d["alloc"][:, player], m)
        out[:, pos + m] = d["prices"][:, player]
        out[~d["proposed"]] = 0
        return out


@register_batched
class NaiveMarket2Batched(_ProposeAndAnswerBatched):
    """Batched rules of :class:`~mechgym.envs.mechanisms.foils.NaiveMarket2`: any NO gives
    (E, 0)."""

    mechanism = NaiveMarket2
    implements = frozenset({"eps"})

    def _after_no(
        self,
        ctx: ContextBatch,
        d: dict[str, np.ndarray],
        some_no: np.ndarray,
        y: np.ndarray,
        disc: np.ndarray,
        destroyed: np.ndarray,
        chance: list[np.ndarray],
        rng: np.random.Generator,
    ) -> None:
        finish(d, some_no, ctx.endowment, np.zeros(disc.shape), 0)


@register_batched
class NaiveMarket3Batched(_ProposeAndAnswerBatched):
    """Batched rules of :class:`~mechgym.envs.mechanisms.foils.NaiveMarket3`: after a NO,
    coin c1 (Heads w.p. 1 − εY/n) gives (E, 0), Tails the discounted proposal."""

    mechanism = NaiveMarket3
    implements = frozenset({"eps"})

    def __init__(self, mech: NaiveMarket3, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        n = spec.n
        # per Y = 0..n−1, floats of the exact probabilities
        self.c1 = np.array(
            [[float(1 - self.eps * y / n), float(self.eps * y / n)] for y in range(n)]
        )

    def _after_no(
        self,
        ctx: ContextBatch,
        d: dict[str, np.ndarray],
        some_no: np.ndarray,
        y: np.ndarray,
        disc: np.ndarray,
        destroyed: np.ndarray,
        chance: list[np.ndarray],
        rng: np.random.Generator,
    ) -> None:
        c1 = draw(rng, self.c1[np.minimum(y, self.spec.n - 1)], some_no)
        chance.append(c1)
        d["c1"] = np.where(some_no, c1, d["c1"])
        finish(d, c1 == 0, ctx.endowment, np.zeros(disc.shape), 0)
        finish(d, c1 == 1, d["alloc"], disc, destroyed)


@register_batched
class NaiveMarket4Batched(_ProposeAndAnswerBatched):
    """Batched rules of :class:`~mechgym.envs.mechanisms.foils.NaiveMarket4`: after a NO,
    c1 Heads (1 − ε) fines player 0 by 1 at E; Tails flips c2 (Heads w.p. Y/(nB)) between
    the discounted proposal and (E, 0)."""

    mechanism = NaiveMarket4
    implements = frozenset({"eps"})

    def __init__(self, mech: NaiveMarket4, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        self.c1 = np.array([float(1 - self.eps), float(self.eps)])
        self._c2: dict[int, np.ndarray] = {}

    def c2(self, k: int) -> np.ndarray:
        """``(n, 2)``: c2's probabilities per Y for ``k`` bits (B = 2^{k−1})."""
        table = self._c2.get(k)
        if table is None:
            n, b = self.spec.n, 1 << (k - 1)
            table = self._c2[k] = np.array(
                [[float(Fraction(y, n * b)), float(1 - Fraction(y, n * b))] for y in range(n)]
            )
        return table

    def _after_no(
        self,
        ctx: ContextBatch,
        d: dict[str, np.ndarray],
        some_no: np.ndarray,
        y: np.ndarray,
        disc: np.ndarray,
        destroyed: np.ndarray,
        chance: list[np.ndarray],
        rng: np.random.Generator,
    ) -> None:
        n = self.spec.n
        c1 = draw(rng, self.c1, some_no)
        chance.append(c1)
        d["c1"] = np.where(some_no, c1, d["c1"])
        fine = np.zeros(disc.shape)
        fine[:, 0] = 1.0
        finish(d, c1 == 0, ctx.endowment, fine, 0)
        t = c1 == 1
        c2 = draw(rng, self.c2(int(ctx.k))[np.minimum(y, n - 1)], t)
        chance.append(c2)
        d["c2"] = np.where(t, c2, d["c2"])
        finish(d, c2 == 0, d["alloc"], disc, destroyed)
        finish(d, c2 == 1, ctx.endowment, np.zeros(disc.shape), 0)


# == end of Naive-1 … Naive-4 ====================================================================
