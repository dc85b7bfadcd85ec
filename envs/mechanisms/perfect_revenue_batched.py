"""M5 (the perfect-information revenue mechanism of seed 003, Section 3) over a batch: the
batched twin of :mod:`mechgym.envs.mechanisms.perfect_revenue` on ``states`` contexts.

Phases: ``propose`` (0, player 0), ``raise`` (1, players 1..n−1 in turn), ``respond`` (2, the
askers in index order). The coins c1 and c2 are drawn right after the last answer.

``state.data``: ``proposed`` ``(B,)`` bool; ``state`` ``(B,)`` ω*; ``K`` ``(B, n)``;
``raises`` ``(B, n, n)`` (row ``d`` = Δ^d, row 0 stays 0); ``nraised`` ``(B,)``; ``current``
``(B, n)`` the prices after the raises so far (P* once raising is done); ``bip`` ``(B, n)``;
``delta`` ``(B, n)`` float64 knowledge rewards δ_i; ``asked`` ``(B, n)`` bool; ``answer``
``(B, n)`` int8 (+1 YES, −1 NO, 0 not (yet) answered); ``c1``, ``c2`` ``(B,)`` (−1 = not
drawn).

Float64 money. Every price is P*_i − ε − δ_i, −δ_i or 2·Σ_{NO, bip = i} P*_j − δ_i (fines),
with integer P* (and fines: exact in float64 below 2^53), δ_0 = 2ε·r − ε·f_r/n_r and
δ_d = Σ_j ε^d_j Δ^d_j. Each is a handful (≤ n + 4) of correctly rounded operations on
numbers of magnitude at most M = max(|price|, r) + 1, so the error is below (n + 4)·2^−53·M:
within 1e-9 of the exact ``Fraction`` whenever M < 2^20 ≈ 10^6 and n ≤ 10, for every
ε ∈ (0, 1/(5n)) and every ε^d_j > 0, however small (an ε^d_j·Δ below the price's
resolution is lost, but then it is below 1e-9 as well). With P*_i ≤ n·price_cap, fines on
one player ≤ 2n²·price_cap: the env's default grid (price_cap = n·value_cap) keeps M < 2^20
for value_cap ≤ 2^19/n³ (e.g. 19,000 at n = 3). f_r/n_r comes from a float64 table of
binomials, exact to a few ulps relative even when n_r exceeds 2^53, and only ε multiplies
it. ``tests/test_batched_spb_m5.py`` checks prices up to ~5·10^5 with ε^d_j down to 10^−20.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    check_actions,
    check_context,
    draw,
    register_batched,
)
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue

PROPOSE, RAISE, RESPOND = 0, 1, 2
_NAMES = np.array(["propose", "raise", "respond", "-"])


@register_batched
class PerfectRevenueBatched(BatchedRules):
    """Batched rules of :class:`~mechgym.envs.mechanisms.perfect_revenue.PerfectRevenue`."""

    mechanism = PerfectRevenue
    implements = frozenset({"eps", "eps_raise"})
    mech: PerfectRevenue

    def __init__(self, mech: PerfectRevenue, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        n, lay = spec.n, self.layout
        c = mech.constants(n)
        self.eps = float(c.eps)
        # ε^d_j per raiser row d (row 0, player 0, never raises)
        self.eps_raise = np.zeros((n, n), dtype=np.float64)
        for d in range(1, n):
            self.eps_raise[d] = [float(x) for x in c.eps_raise[d - 1]]
        self.i_answer = lay.index["answer"]
        self.i_state = lay.index["state"]
        self.i_price = np.array([lay.index[f"price_{j}"] for j in range(n)], dtype=np.int64)
        idle = lay.mask({})
        prices = {f"price_{j}": True for j in range(n)}
        table = np.empty((4, n, lay.mask_size), dtype=np.int8)
        table[:] = idle
        table[PROPOSE, 0] = lay.mask({"state": True, **prices})
        for d in range(1, n):
            table[RAISE, d] = lay.mask({f"price_{j}": True for j in range(n) if j != d})
        table[RESPOND] = lay.mask({"answer": True})
        self.table = table  # index 3 (= TERMINAL via −1) stays idle
        self.idle = idle
        # whole (n, S) blocks per (phase, actor), actor n = nobody: one gather per call
        blocks = np.empty((4, n + 1, n, lay.mask_size), dtype=np.int8)
        blocks[:] = idle
        for ph in range(3):
            for i in range(n):
                blocks[ph, i, i] = table[ph, i]
        self.blocks = blocks
        # binomials C(a, b) for a ≤ r + n − 1, r ≤ n·price_cap, b < n: products of b
        # factors over b!, relative error ≤ 2n·2^−53 (f_r/n_r only scales ε)
        a = np.arange(n * spec.price_cap + n + 1, dtype=np.float64)[:, None]
        comb = np.ones((a.shape[0], n), dtype=np.float64)
        for b in range(1, n):
            comb[:, b] = comb[:, b - 1] * np.maximum(a[:, 0] - (b - 1), 0) / b
        self.comb = comb

    # -- helpers -----------------------------------------------------------------------------
    def rank_ratio(self, state: np.ndarray, prices: np.ndarray, num_states: int) -> np.ndarray:
        """f_r(ω, K)/n_r per episode (see :func:`~mechgym.envs.mechanisms.perfect_revenue.
        outcome_rank`), vectorised."""
        n = prices.shape[1]
        r = prices.sum(axis=1)
        per = self.comb[r + n - 1, n - 1]
        rank = state * per
        rest = r.copy()
        for i in range(n - 1):
            parts = n - i - 1
            gap = rest - prices[:, i]
            rank = rank + np.where(gap >= 1, self.comb[np.maximum(gap - 1 + parts, 0), parts], 0.0)
            rest = gap
        return rank / (num_states * per)

    # -- rules -------------------------------------------------------------------------------
    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        check_context(self, ctx)
        B, n = ctx.B, self.spec.n
        acting = np.zeros((B, n), dtype=bool)
        acting[:, 0] = True
        zi = np.zeros((B, n), dtype=np.int64)
        return BatchState(
            phase=np.full(B, PROPOSE, dtype=np.int64),
            acting=acting,
            data={
                "proposed": np.zeros(B, dtype=bool),
                "state": np.zeros(B, dtype=np.int64),
                "K": zi,
                "raises": np.zeros((B, n, n), dtype=np.int64),
                "nraised": np.zeros(B, dtype=np.int64),
                "current": zi.copy(),
                "bip": zi.copy(),
                "delta": np.zeros((B, n), dtype=np.float64),
                "asked": np.zeros((B, n), dtype=bool),
                "answer": np.zeros((B, n), dtype=np.int8),
                "c1": np.full(B, -1, dtype=np.int64),
                "c2": np.full(B, -1, dtype=np.int64),
            },
        )

    @staticmethod
    def actor(state: BatchState) -> np.ndarray:
        """``(B,)`` the one acting player of each episode, ``n`` where nobody acts."""
        acting = state.acting
        return np.where(acting.any(axis=1), acting.argmax(axis=1), acting.shape[1])

    def masks(self, state: BatchState) -> np.ndarray:
        return self.blocks[state.phase, self.actor(state)]

    def _check(self, state: BatchState, actions: np.ndarray, who: np.ndarray) -> None:
        """Typed errors for bad actions; only the one acting row per episode (``who``) is read
        unless something is wrong (then :func:`check_actions` names it)."""
        B, n = state.acting.shape
        lay = self.layout
        if actions.shape == (B, n, len(lay)):
            live = who < n
            row = actions[np.arange(B), np.minimum(who, n - 1)]
            inside = ((row >= 0) & (row < lay.sizes)).all(axis=1)
            mask = self.blocks[state.phase, who, np.minimum(who, n - 1)]
            pos = lay.offsets[:-1] + np.clip(row, 0, lay.sizes - 1)
            ok = inside & np.take_along_axis(mask, pos, axis=1).all(axis=1)
            if (ok | ~live).all():
                return
        check_actions(lay, self.masks(state), actions, state.acting, _NAMES[state.phase])

    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        actions = np.asarray(actions, dtype=np.int64)
        B, n = state.acting.shape
        actor = self.actor(state)
        self._check(state, actions, actor)
        rows = np.arange(B)
        ph = state.phase
        d = dict(state.data)
        phase = ph.copy()
        who = np.minimum(actor, n - 1)  # the one acting player (n − 1 when none: unread)
        chance = list(state.chance)

        prop = ph == PROPOSE
        if prop.any():
            K = actions[:, 0, self.i_price]
            w = actions[:, 0, self.i_state]
            go = prop & (K.sum(axis=1) > 0)  # step b: Σ K = 0 halts without rewards
            d["proposed"] = d["proposed"] | prop
            d["state"] = np.where(prop, w, d["state"])
            d["K"] = np.where(prop[:, None], K, d["K"])
            d["current"] = np.where(prop[:, None], K, d["current"])
            delta0 = 2 * self.eps * K.sum(axis=1) - self.eps * self.rank_ratio(
                w, K, ctx.values.shape[2]
            )
            delta = d["delta"].copy()
            delta[:, 0] = np.where(go, delta0, delta[:, 0])
            d["delta"] = delta
            phase = np.where(prop, np.where(go, RAISE, TERMINAL), phase)

        rai = ph == RAISE
        if rai.any():
            amounts = actions[rows, who][:, self.i_price] * rai[:, None]
            raiser = d["nraised"] + 1
            current = d["current"] + amounts
            d["current"] = current
            d["bip"] = np.where(amounts > 0, raiser[:, None], d["bip"])
            raises = d["raises"].copy()
            raises[rows[rai], raiser[rai]] = amounts[rai]
            d["raises"] = raises
            delta = d["delta"].copy()
            dr = (self.eps_raise[np.minimum(raiser, n - 1)] * amounts).sum(axis=1)
            delta[rows[rai], raiser[rai]] = dr[rai]
            d["delta"] = delta
            d["nraised"] = np.where(rai, raiser, d["nraised"])
            done = rai & (raiser == n - 1)
            asked = (current > 0) & done[:, None]
            asked[:, 0] &= d["bip"][:, 0] != 0  # player 0 says YES by default if nobody raised him
            d["asked"] = np.where(done[:, None], asked, d["asked"])
            phase = np.where(rai, np.where(done, RESPOND, RAISE), phase)
            phase = np.where(done & ~asked.any(axis=1), TERMINAL, phase)  # step d: no asker

        res = ph == RESPOND
        if res.any():
            yes = actions[rows, who, self.i_answer] == 1
            answer = d["answer"].copy()
            answer[rows[res], who[res]] = np.where(yes[res], 1, -1).astype(np.int8)
            d["answer"] = answer
            pending = d["asked"] & (answer == 0)
            finished = res & ~pending.any(axis=1)
            no = answer == -1
            refused = finished & no.any(axis=1)
            phase = np.where(finished, TERMINAL, phase)
            if refused.any():
                c1 = draw(rng, np.array([1.0 - self.eps, self.eps]), refused)
                chance.append(c1)
                d["c1"] = np.where(refused, c1, d["c1"])
                tails = refused & (c1 == 1)
                if tails.any():
                    nb = n * (d["current"] * no).sum(axis=1)
                    p = (n - no.sum(axis=1)) / np.maximum(nb, 1)
                    c2 = draw(rng, np.stack([p, 1.0 - p], axis=1), tails)
                    chance.append(c2)
                    d["c2"] = np.where(tails, c2, d["c2"])

        # who acts next: player 0 proposes, raiser nraised + 1, or the first pending asker
        nxt = np.where(
            phase == RAISE,
            d["nraised"] + 1,
            np.argmax(d["asked"] & (d["answer"] == 0), axis=1),
        )
        acting = (np.arange(n)[None, :] == nxt[:, None]) & ((phase == RAISE) | (phase == RESPOND))[
            :, None
        ]
        acting |= (phase == PROPOSE)[:, None] & (np.arange(n) == 0)[None, :]
        return BatchState(phase=phase, acting=acting, data=d, chance=chance)

    def outcome(self, state: BatchState) -> BatchOutcome:
        d = state.data
        n = d["current"].shape[1]
        current = d["current"].astype(np.float64)
        delta = d["delta"]
        no = d["answer"] == -1
        halted = d["proposed"] & (d["K"].sum(axis=1) == 0)
        accepted = ~halted & (~no.any(axis=1) | (d["c2"] == 0))
        fined = ~halted & (d["c1"] == 0)
        # step e: every NO-sayer i fines bip_i by 2·P*_i
        hit = (d["bip"][:, :, None] == np.arange(n)[None, None, :]) & no[:, :, None]
        fines = 2.0 * np.einsum("bij,bi->bj", hit.astype(np.float64), current)
        prices = np.where(
            accepted[:, None],
            current - self.eps - delta,
            np.where(fined[:, None], fines - delta, -delta),
        )
        prices = np.where(halted[:, None], 0.0, prices)
        st = np.where(accepted, d["state"], -1)
        return BatchOutcome.of_state(st, prices)

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = state.data
        asked = (state.phase == RESPOND)[:, None] & state.acting
        item = np.broadcast_to(d["state"][:, None], asked.shape)
        return asked, item, d["current"]

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        """[state one-hot | K | raises (n×n) | P* | bip+1 | answers | c1 | c2 | own price]."""
        d = state.data
        B, n = d["current"].shape
        k = self.spec.m
        out = np.zeros((B, self.mech.public_size(self.spec)), dtype=np.float32)
        prop = d["proposed"]
        out[np.flatnonzero(prop), d["state"][prop]] = 1.0
        out[:, k : k + n] = d["K"]
        pos = k + n
        out[:, pos : pos + n * n] = d["raises"].reshape(B, n * n)
        pos += n * n
        done = (d["nraised"] == n - 1)[:, None]
        out[:, pos : pos + n] = np.where(done, d["current"], 0)
        out[:, pos + n : pos + 2 * n] = np.where(done, d["bip"] + 1, 0)
        answers = np.where(d["asked"], d["answer"], 1)
        out[:, pos + 2 * n : pos + 3 * n] = np.where(done, answers, 0)
        pos += 3 * n
        c1, c2 = d["c1"], d["c2"]
        out[np.flatnonzero(c1 >= 0), pos + c1[c1 >= 0]] = 1.0
        out[np.flatnonzero(c2 >= 0), pos + 2 + c2[c2 >= 0]] = 1.0
        out[:, pos + 4] = np.where(prop, d["current"][:, player], 0)
        return out
