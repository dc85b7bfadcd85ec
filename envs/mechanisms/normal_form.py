"""M2 — the normal-form mechanism M_Normal (seed 000, Section 4).

One simultaneous move: every player reports a full valuation v_i and an offer ω^i for the
others. The winner ``w`` is the highest announced revenue (lowest index on ties). A fair coin:
heads gives ``w`` a bundle maximising v_w (lowest bitmask on ties) for free; tails sells ω^w,
with player ``i``'s answer read off its report (YES iff v_i(α^w_i) ≥ π^w_i), then pays every
reward δ_i. Unlike M1 the whole valuation is revealed.

Written once (:mod:`mechgym.envs.engine.episode`): :class:`NormalFormRules` is the rule over
a batch, with exact or float money; :class:`NormalForm`, the exact face, runs it on a batch of
one with exact money, the coin an explicit chance node.

Array layout: ``value_S`` for every non-empty bundle S (0..value_cap), then the offer fields.

``state.data``: ``valuation`` ``(B, n, 2^m)``; ``alloc``, ``prices`` ``(B, n, n)`` (announcer,
player); ``revenues`` ``(B, n)``; ``winner`` ``(B,)``; ``coin`` ``(B,)`` (−1 before the draw);
``announced`` ``(B,)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import (
    Offer,
    check_offer,
    check_valuation,
    decode_offer,
    describe_offer,
    encode_offer,
    offer_fields,
    valuation_fields,
)
from mechgym.envs.engine.batched import TERMINAL, BatchOutcome, BatchState, register_batched
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import EnvSpec, Guarantee
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.offer_rules import (
    PhaseMasks,
    Seed000Mechanism,
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
from mechgym.envs.model.batch import ContextBatch

ANNOUNCE = 0


@dataclass(frozen=True)
class NormalAnnouncement:
    """The only action of M_Normal: a reported valuation (2**m entries) and an offer."""

    valuation: tuple[int, ...]
    offer: Offer


class NormalForm(BatchOfOne, Seed000Mechanism):
    """M_Normal: revenue ≥ BB/2 − ε in expectation under undominated play (Theorem 1)."""

    name = "normal_form"
    title = "Normal-form mechanism M_Normal (seed 000, Sec. 4)"
    phases = ("announce",)
    mask_depends_on_state = False

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee | None:
        """Theorem 1 of seed 000, E[REV] ≥ BB/2 − ε, when every player acts alone; the paper
        states its collusion bound (Section 6.2.3) for M_BB only, so none is claimed here."""
        if ctx.collusive:
            return None
        return super().guarantee(ctx, ev)

    def validate(self, s: Episode, player: int, action: Any) -> Any:
        agent, phase = f"player_{player}", "announce"
        if not isinstance(action, NormalAnnouncement):
            raise MalformedAnnouncementError(
                agent, phase, f"expected a NormalAnnouncement, got {type(action).__name__}"
            )
        n, m = s.ctx.n, s.ctx.m
        return NormalAnnouncement(
            check_valuation(action.valuation, m, agent, phase),
            check_offer(action.offer, n, m, player, agent, phase),
        )

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        n = s.ctx.n
        return {
            "valuation": np.array([[actions[i].valuation for i in range(n)]], dtype=np.int64),
            "alloc": np.array([[actions[i].offer.alloc for i in range(n)]], dtype=np.int64),
            "prices": np.array([[actions[i].offer.prices for i in range(n)]], dtype=np.int64),
        }

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([*valuation_fields(spec), *offer_fields(spec)])

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        report = (0, *(int(vec[layout.index[f"value_{b}"]]) for b in range(1, 1 << spec.m)))
        return NormalAnnouncement(report, decode_offer(vec, spec, layout))

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        encode_valuation(action.valuation, vec, spec, layout, f"player_{player}", "announce")
        encode_offer(action.offer, vec, spec, layout, f"player_{player}", "announce")
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 4 * spec.n + spec.m + 2

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        return f"v={list(action.valuation)} {describe_offer(action.offer)}"


def decode_valuations(actions: np.ndarray, spec: EnvSpec, first: int) -> np.ndarray:
    """Reported valuations ``(..., 2^m)`` from actions ``(..., L)`` whose fields ``value_1 ..
    value_{2^m−1}`` start at index ``first``; the empty bundle is worth 0."""
    size = 1 << spec.m
    out = np.zeros((*actions.shape[:-1], size), dtype=np.int64)
    out[..., 1:] = actions[..., first : first + size - 1]
    return out


@register_batched
class NormalFormRules(MoveRules):
    """The rules of :class:`NormalForm` over a batch."""

    mechanism = NormalForm
    implements = frozenset({"eps"})
    mech: NormalForm

    def __init__(self, mech: NormalForm, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        vals = {f"value_{b}": True for b in range(1, 1 << spec.m)}
        self.masker = PhaseMasks(
            [announce_mask_rows(self.layout, spec, vals)], self.layout.mask({})
        )
        self.i_value = self.layout.index["value_1"]

    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        B, n, size = ctx.B, ctx.n, 1 << ctx.m
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

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        return self.masker.rows(state.phase, state.acting)

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        alloc, prices = decode_offers(actions, self.spec, self.layout)
        valuation = decode_valuations(actions, self.spec, self.i_value)
        return {"valuation": valuation, "alloc": alloc, "prices": prices}

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        live = state.phase == ANNOUNCE
        if not live.any():
            return state
        d = dict(state.data)
        alloc, prices = moves["alloc"], moves["prices"]
        revenues = announced_revenues(prices)
        d["valuation"] = merge(live, moves["valuation"], d["valuation"])
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
        n = d["revenues"].shape[1]
        B = len(d["winner"])
        rows = np.arange(B)
        w = d["winner"]
        alloc, prices = self._winner_offer(d)
        favourite = np.argmax(d["valuation"][rows, w], axis=1)  # lowest bundle on ties
        h_alloc, h_prices = heads_outcome(w, favourite, n, self.money)
        t_alloc, t_prices = tails_outcome(
            w,
            alloc,
            prices,
            self._accepted(d, alloc, prices),
            d["revenues"],
            self.mech.eps,
            self.money,
        )
        heads = (d["coin"] == 0)[:, None]
        return BatchOutcome.of_bundles(
            np.where(heads, h_alloc, t_alloc), np.where(heads, h_prices, t_prices)
        )

    def outcome_rule(self, state: BatchState) -> str:
        return "heads" if state.data["coin"][0] == 0 else "tails"

    def public_features_all(self, state: BatchState) -> np.ndarray:
        # nothing in M2's public view depends on who looks
        one = self.public_features(state, 0)
        return np.broadcast_to(one[:, None, :], (one.shape[0], self.spec.n, one.shape[1]))

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        d = state.data
        spec, n, m = self.spec, self.spec.n, self.spec.m
        B = len(d["winner"])
        out = np.zeros((B, self.mech.public_size(spec)), dtype=np.float32)
        if not d["announced"].any():
            return out
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


def encode_valuation(
    valuation: tuple[int, ...],
    vec: np.ndarray,
    spec: EnvSpec,
    layout: ActionLayout,
    agent: str,
    phase: str,
) -> None:
    """Write a reported valuation into ``vec``; raise if a value exceeds the grid."""
    for b in range(1, 1 << spec.m):
        x = int(valuation[b])
        if not 0 <= x <= spec.value_cap:
            raise OutOfSpaceError(
                agent, phase, f"value {x} of bundle {b} is outside the grid 0..{spec.value_cap}"
            )
        vec[layout.index[f"value_{b}"]] = x


# offers carry positive prices: field value k is price k + 1
register_factored("normal_form", price_offset=1)
