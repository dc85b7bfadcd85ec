"""M2 (normal-form mechanism M_Normal, seed 000 §4) over a batch: the batched twin of
:mod:`mechgym.envs.mechanisms.normal_form`.

One decision (phase ``announce``, index 0): every player reports a valuation and an offer;
the winner and the coin are settled in the same step and every episode ends. Each offered
player's answer is read off its own report (YES iff v_i(α^w_i) ≥ π^w_i).

``state.data``: ``valuation`` ``(B, n, 2^m)``; ``alloc``, ``prices`` ``(B, n, n)``;
``revenues`` ``(B, n)``; ``winner`` ``(B,)``; ``coin`` ``(B,)`` (−1 before the draw);
``announced`` ``(B,)``.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    register_batched,
)
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.mechanisms.normal_form import NormalForm
from mechgym.envs.mechanisms.offer_rules_batched import (
    PhaseMasks,
    announce_mask_rows,
    announced_revenues,
    decode_offers,
    draw_coin,
    heads_outcome,
    merge,
    offer_features,
    tails_outcome,
    winner_of,
)

ANNOUNCE = 0


def decode_valuations(actions: np.ndarray, spec: EnvSpec, first: int) -> np.ndarray:
    """Reported valuations ``(..., 2^m)`` from actions ``(..., L)`` whose fields ``value_1 ..
    value_{2^m−1}`` start at index ``first``; the empty bundle is worth 0."""
    size = 1 << spec.m
    out = np.zeros((*actions.shape[:-1], size), dtype=np.int64)
    out[..., 1:] = actions[..., first : first + size - 1]
    return out


@register_batched
class NormalFormBatched(BatchedRules):
    """Batched rules of :class:`~mechgym.envs.mechanisms.normal_form.NormalForm`."""

    mechanism = NormalForm
    implements = frozenset({"eps"})
    mech: NormalForm

    def __init__(self, mech: NormalForm, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        vals = {f"value_{b}": True for b in range(1, 1 << spec.m)}
        self.masker = PhaseMasks(
            [announce_mask_rows(self.layout, spec, vals)], self.layout.mask({})
        )
        self.i_value = self.layout.index["value_1"]

    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        B, n, size = ctx.B, self.spec.n, 1 << self.spec.m
        data = {
            "valuation": np.zeros((B, n, size), dtype=np.int64),
            "alloc": np.zeros((B, n, n), dtype=np.int64),
            "prices": np.zeros((B, n, n), dtype=np.int64),
            "revenues": np.zeros((B, n), dtype=np.int64),
            "winner": np.zeros(B, dtype=np.int64),
            "coin": np.full(B, -1, dtype=np.int64),
            "announced": np.zeros(B, dtype=bool),
        }
        return BatchState(
            np.full(B, ANNOUNCE, dtype=np.int64), np.ones((B, n), dtype=bool), data, []
        )

    def masks(self, state: BatchState) -> np.ndarray:
        return self.masker(state.phase, state.acting)

    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        live = state.phase == ANNOUNCE
        if not live.any():
            return state
        d = dict(state.data)
        alloc, prices = decode_offers(actions, self.spec, self.layout)
        revenues = announced_revenues(prices)
        d["valuation"] = merge(
            live, decode_valuations(actions, self.spec, self.i_value), d["valuation"]
        )
        d["alloc"] = merge(live, alloc, d["alloc"])
        d["prices"] = merge(live, prices, d["prices"])
        d["revenues"] = merge(live, revenues, d["revenues"])
        d["winner"] = merge(live, winner_of(revenues), d["winner"])
        d["announced"] = d["announced"] | live
        coin = draw_coin(rng, live)
        d["coin"] = merge(live, coin, d["coin"])
        phase = np.where(live, TERMINAL, state.phase)
        acting = state.acting & ~live[:, None]
        return BatchState(phase, acting, d, [*state.chance, coin])

    def _winner_offer(self, d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(d["winner"]))
        return d["alloc"][rows, d["winner"]], d["prices"][rows, d["winner"]]

    def _accepted(
        self, d: dict[str, np.ndarray], alloc: np.ndarray, prices: np.ndarray
    ) -> np.ndarray:
        """``(B, n)``: each player's answer to the winner's offer, read off its report."""
        reported = np.take_along_axis(d["valuation"], alloc[:, :, None], axis=2)[:, :, 0]
        return reported >= prices

    def outcome(self, state: BatchState) -> BatchOutcome:
        d = state.data
        n = self.spec.n
        B = len(d["winner"])
        rows = np.arange(B)
        w = d["winner"]
        alloc, prices = self._winner_offer(d)
        favourite = np.argmax(d["valuation"][rows, w], axis=1)  # lowest bundle on ties
        h_alloc, h_prices = heads_outcome(w, favourite, n)
        t_alloc, t_prices = tails_outcome(
            w, alloc, prices, self._accepted(d, alloc, prices), d["revenues"], self.mech.eps
        )
        heads = (d["coin"] == 0)[:, None]
        return BatchOutcome.of_bundles(
            np.where(heads, h_alloc, t_alloc), np.where(heads, h_prices, t_prices)
        )

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        d = state.data
        spec, n, m = self.spec, self.spec.n, self.spec.m
        B = len(d["winner"])
        out = np.zeros((B, self.mech.public_size(spec)), dtype=np.float32)
        out[:, :n] = np.arange(n)[None, :] == d["winner"][:, None]
        out[:, n : 2 * n] = d["revenues"]
        out[:, 2 * n] = d["coin"] == 0
        out[:, 2 * n + 1] = d["coin"] == 1
        alloc, prices = self._winner_offer(d)
        k = 2 * n + 2
        out[:, k : k + m + n] = offer_features(alloc, prices, spec)
        k += m + n
        answers = np.where(self._accepted(d, alloc, prices), 1.0, -1.0)
        shown = (alloc != 0) & (d["coin"] == 1)[:, None]
        out[:, k : k + n] = np.where(shown, answers, 0.0)
        out[~d["announced"]] = 0.0
        return out
