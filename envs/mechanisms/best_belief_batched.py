"""M1 (best-belief mechanism M_BB, seed 000 §6) over a batch: the batched twin of
:mod:`mechgym.envs.mechanisms.best_belief`, the seller-reserve and ε-fraction reward-budget
variants (Section 6.3) included.

Phase ``announce`` (index 0): every player announces ξ_i and an offer; the winner, the
leading offer (the winner's, or the seller's reserve where it leads) and the coin are settled
in the same step. Heads ends the episode; tails moves the players offered a bundle to phase
``respond`` (index 1), or ends it when nobody is offered anything.

``state.data``: ``bundle`` ``(B, n)`` ξ_i; ``alloc``, ``prices`` ``(B, n, n)`` the offers
(announcer, player); ``revenues`` ``(B, n)``; ``winner`` ``(B,)``; ``seller_leads`` ``(B,)``;
``lead_alloc``, ``lead_prices`` ``(B, n)``; ``coin`` ``(B,)`` (−1 before the draw);
``answers`` ``(B, n)`` int8 (+1 YES, −1 NO, 0 not asked or not yet answered);
``announced`` ``(B,)``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from mechgym.envs.engine.actions import check_offer
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    register_batched,
)
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.mechanisms.best_belief import BestBelief
from mechgym.envs.mechanisms.offer_rules_batched import (
    PhaseMasks,
    announce_mask_rows,
    announced_revenues,
    askers,
    decode_offers,
    draw_coin,
    heads_outcome,
    merge,
    tails_outcome,
    winner_of,
    write_offer_stage,
)

ANNOUNCE, RESPOND = 0, 1


@register_batched
class BestBeliefBatched(BatchedRules):
    """Batched rules of :class:`~mechgym.envs.mechanisms.best_belief.BestBelief`."""

    mechanism = BestBelief
    implements = frozenset({"eps", "reserve", "reward_budget"})
    mech: BestBelief

    def __init__(self, mech: BestBelief, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        n, layout = spec.n, self.layout
        self.masker = PhaseMasks(
            [
                announce_mask_rows(layout, spec, {"bundle": True}),
                np.stack([layout.mask({"answer": True})] * n),
            ],
            layout.mask({}),
        )
        self.i_answer = layout.index["answer"]
        self.i_bundle = layout.index["bundle"]
        if mech.reserve is None:
            self.reserve = None
        else:
            r = check_offer(mech.reserve, spec.n, spec.m, None, "seller", "reserve")
            self.reserve = (
                np.array(r.alloc, dtype=np.int64),
                np.array(r.prices, dtype=np.int64),
                int(r.revenue),
            )

    # -- rules -------------------------------------------------------------------------------
    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        B, n = ctx.B, self.spec.n
        data = {
            "bundle": np.zeros((B, n), dtype=np.int64),
            "alloc": np.zeros((B, n, n), dtype=np.int64),
            "prices": np.zeros((B, n, n), dtype=np.int64),
            "revenues": np.zeros((B, n), dtype=np.int64),
            "winner": np.zeros(B, dtype=np.int64),
            "seller_leads": np.zeros(B, dtype=bool),
            "lead_alloc": np.zeros((B, n), dtype=np.int64),
            "lead_prices": np.zeros((B, n), dtype=np.int64),
            "coin": np.full(B, -1, dtype=np.int64),
            "answers": np.zeros((B, n), dtype=np.int8),
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
        d = dict(state.data)
        phase = state.phase.copy()
        acting = state.acting.copy()
        at_respond = state.phase == RESPOND
        at_announce = state.phase == ANNOUNCE
        if at_respond.any():
            yes = actions[:, :, self.i_answer] == 1
            given = np.where(state.acting, np.where(yes, 1, -1), 0).astype(np.int8)
            d["answers"] = merge(at_respond, given, d["answers"])
            phase[at_respond] = TERMINAL
            acting[at_respond] = False
        chance = list(state.chance)
        if at_announce.any():
            alloc, prices = decode_offers(actions, self.spec, self.layout)
            revenues = announced_revenues(prices)
            winner = winner_of(revenues)
            rows = np.arange(len(winner))
            lead_alloc, lead_prices = alloc[rows, winner], prices[rows, winner]
            if self.reserve is None:
                leads = np.zeros(len(winner), dtype=bool)
            else:
                r_alloc, r_prices, r_rev = self.reserve
                leads = revenues[rows, winner] < r_rev
                lead_alloc = np.where(leads[:, None], r_alloc, lead_alloc)
                lead_prices = np.where(leads[:, None], r_prices, lead_prices)
            put = at_announce
            d["bundle"] = merge(put, actions[:, :, self.i_bundle], d["bundle"])
            d["alloc"] = merge(put, alloc, d["alloc"])
            d["prices"] = merge(put, prices, d["prices"])
            d["revenues"] = merge(put, revenues, d["revenues"])
            d["winner"] = merge(put, winner, d["winner"])
            d["seller_leads"] = merge(put, leads, d["seller_leads"])
            d["lead_alloc"] = merge(put, lead_alloc, d["lead_alloc"])
            d["lead_prices"] = merge(put, lead_prices, d["lead_prices"])
            d["announced"] = d["announced"] | at_announce
            coin = draw_coin(rng, at_announce)
            chance.append(coin)
            d["coin"] = merge(put, coin, d["coin"])
            ask = askers(lead_alloc)
            respond = at_announce & (coin == 1) & ask.any(axis=1)
            phase = merge(put, np.where(respond, RESPOND, TERMINAL), phase)
            acting = merge(put, ask & respond[:, None], acting)
        return BatchState(phase, acting, d, chance)

    def outcome(self, state: BatchState) -> BatchOutcome:
        d = state.data
        n = self.spec.n
        B = len(d["winner"])
        rows = np.arange(B)
        # the player whose offer is sold; −1 where the seller's reserve leads
        leader = np.where(d["seller_leads"], -1, d["winner"])
        h_alloc, h_prices = heads_outcome(leader, d["bundle"][rows, d["winner"]], n)
        eps: Fraction | np.ndarray = self.mech.eps
        if self.mech.reward_budget == "fraction":
            # as the exact rule: half of the budget ε·R_w to the acceptance bonus, half to δ
            eps = float(self.mech.eps) * d["lead_prices"].sum(axis=1) / 2
        t_alloc, t_prices = tails_outcome(
            leader,
            d["lead_alloc"],
            d["lead_prices"],
            d["answers"] == 1,
            d["revenues"],
            eps,
        )
        heads = (d["coin"] == 0)[:, None]
        return BatchOutcome.of_bundles(
            np.where(heads, h_alloc, t_alloc), np.where(heads, h_prices, t_prices)
        )

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = state.data
        asked = (state.phase == RESPOND)[:, None] & state.acting
        return asked, d["lead_alloc"], d["lead_prices"]

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        d = state.data
        spec, n = self.spec, self.spec.n
        B = len(d["winner"])
        out = np.zeros((B, self.mech.public_size(spec)), dtype=np.float32)
        leader = np.where(d["seller_leads"], -1, d["winner"])
        out[:, :n] = np.arange(n)[None, :] == leader[:, None]
        out[:, n : 2 * n] = d["revenues"]
        out[:, 2 * n] = d["coin"] == 0
        out[:, 2 * n + 1] = d["coin"] == 1
        lead_alloc = d["lead_alloc"]
        write_offer_stage(
            out,
            2 * n + 2,
            spec,
            lead_alloc,
            d["lead_prices"],
            player,
            lead_alloc[:, player] != 0,
            d["answers"],
        )
        out[~d["announced"]] = 0.0
        return out
