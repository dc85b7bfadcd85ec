"""M1 — the best-belief mechanism M_BB (seed 000, Section 6).

1. Simultaneously, every player ``i`` announces a bundle ξ_i and an offer ω^i for the others.
   R_i = REV(ω^i); the winner ``w`` is the highest announcer (lowest index on ties).
2. A fair coin. Heads: ``w`` receives ξ_w for free and the game halts (no rewards).
3. Tails: every player offered a bundle in ω^w answers YES or NO, simultaneously. YES buys at
   π − ε/n; NO charges π to the winner. Then every player receives δ_i = (ε/n)·R_i/(1+R_i).

Reserve variant (Section 6.3): with a seller's reserve outcome ω', if R_w < REV(ω') the seller
"makes himself the winner and continues with ω'". The paper says this only "roughly"; we read
it as: heads allocates nothing (the seller keeps the goods), tails sells ω' and a refusal
charges nobody; every δ_i is still paid. With a sure reserve (no price above a true value),
E[REV] ≥ max(BB, REV(ω'))/2 − ε.

Reward-budget variant (Section 6.3, ``reward_budget="fraction"``): the budget set aside for
rewards is an ε fraction of the revenue the mechanism collects instead of ε, and the
guarantee becomes E[REV] ≥ (1 − ε)·BB/2. The paper does not spell the rules out; we read
"the revenue it collects" as the prices and fines collected before rewards, which on tails is
R_w whatever the answers (each offered price is paid by its buyer or, as a fine, by the
winner) and 0 on heads. The budget ε·R_w is split in two halves: the acceptance bonus becomes
ε·R_w/(2n) and δ_i = (ε·R_w/(2n))·R_i/(1+R_i), so everything paid out stays below ε·R_w.
Answers do not move R_w, so YES iff θ_i ≥ π stays strictly dominant (the bonus is positive
whenever someone is asked), and δ_i still strictly increases in R_i on tails.

Written once (:mod:`mechgym.envs.engine.episode`): :class:`BestBeliefRules` is the rule over
a batch, with exact or float money; :class:`BestBelief`, the exact face, runs it on a batch of
one with exact money, the coin an explicit chance node.

Array layout (every agent): ``answer`` (2: 0 = NO, 1 = YES), ``bundle`` (2**m: ξ), then the
offer fields of :mod:`mechgym.envs.engine.actions` (``owner_g``, ``price_j``). Phase
``announce`` (index 0) reads ``bundle`` and the offer; phase ``respond`` (index 1) reads
``answer``. The winner, the leading offer and the coin are settled in the announcing step;
heads ends the episode, tails moves the players offered a bundle to ``respond`` (or ends it
when nobody is offered anything).

``state.data``: ``bundle`` ``(B, n)`` ξ_i; ``alloc``, ``prices`` ``(B, n, n)`` the offers
(announcer, player); ``revenues`` ``(B, n)``; ``winner`` ``(B,)``; ``seller_leads`` ``(B,)``;
``lead_alloc``, ``lead_prices`` ``(B, n)``; ``coin`` ``(B,)`` (−1 before the draw);
``answers`` ``(B, n)`` int8 (+1 YES, −1 NO, 0 not asked or not yet answered);
``announced`` ``(B,)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import (
    Offer,
    check_answer,
    check_bundle,
    check_offer,
    decode_offer,
    describe_offer,
    encode_offer,
    offer_fields,
    offer_stage_size,
)
from mechgym.envs.engine.batched import TERMINAL, BatchOutcome, BatchState, register_batched
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.errors import MalformedAnnouncementError, ParameterError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import EnvSpec, Examples, Guarantee
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.offer_rules import (
    PhaseMasks,
    Seed000Mechanism,
    announce_mask_rows,
    announce_or_answer_moves,
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
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.model.bundles import format_bundle

ANNOUNCE, RESPOND = 0, 1


def example_reserve(n: int, m: int, price: int = 1) -> Offer:
    """A seller's reserve for ``n`` players and ``m`` goods: good ``g`` to player ``g mod n``,
    each bundle at ``price`` (an example value of the ``reserve`` parameter)."""
    alloc = [0] * n
    for g in range(m):
        alloc[g % n] |= 1 << g
    return Offer(tuple(alloc), tuple(price if b else 0 for b in alloc))


def _high_reserve(n: int, m: int) -> Offer:
    return example_reserve(n, m, 3)


REWARD_BUDGETS = ("absolute", "fraction")
"""Section 6.3: rewards from a budget of ε, or of an ε fraction of the revenue collected."""


@dataclass(frozen=True)
class BBAnnouncement:
    """Stage-1 action of M_BB: a favourite bundle ξ and an offer ω for the others."""

    bundle: int
    offer: Offer


class BestBelief(BatchOfOne, Seed000Mechanism):
    """M_BB: revenue ≥ BB/2 − ε in expectation under undominated play (Theorem 2)."""

    name = "best_belief"
    title = "Best-belief mechanism M_BB (seed 000, Sec. 6)"
    phases = ("announce", "respond")
    mask_depends_on_state = False
    # only the players offered a bundle answer YES/NO
    every_player_acts = False
    parameter_examples: ClassVar[Examples] = {
        "eps": ("1", "1/3", "1/1000"),
        "reserve": (example_reserve, _high_reserve),
        "reward_budget": ("fraction",),
    }

    def __init__(
        self, eps: Any = "1/10", reserve: Offer | None = None, reward_budget: str = "absolute"
    ) -> None:
        super().__init__(eps)
        if reserve is not None and not isinstance(reserve, Offer):
            raise ParameterError("reserve", f"must be an Offer, got {type(reserve).__name__}")
        if reward_budget not in REWARD_BUDGETS:
            raise ParameterError(
                "reward_budget",
                f"must be one of {', '.join(REWARD_BUDGETS)}, got {reward_budget!r}",
            )
        if reward_budget == "fraction" and reserve is not None:
            # Section 6.3 states the two variants separately; their combination is not analysed
            raise ParameterError(
                "reward_budget", "the ε-fraction budget is not combined with a reserve"
            )
        self.reserve = reserve
        self.reward_budget = reward_budget

    def params(self) -> dict[str, Any]:
        out = super().params()
        if self.reward_budget != "absolute":
            out["reward_budget"] = self.reward_budget
        if self.reserve is not None:
            out["reserve"] = {
                "alloc": list(self.reserve.alloc),
                "prices": list(self.reserve.prices),
            }
        return out

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee | None:
        if self.reward_budget == "fraction":
            # Section 6.3: payouts stay below ε·R_w on tails, so E[REV] ≥ (1 − ε)·R_w/2
            bench = self.benchmarks(ctx)
            key = "BB_independent" if ctx.collusive else "BB"
            return Guarantee(
                f"E[REV] >= (1 - eps) {'max_{i independent} BB_i' if ctx.collusive else 'BB'}/2",
                (1 - self.eps) * Fraction(bench[key], 2),
                ev.expected_revenue,
            )
        if self.reserve is None:
            return super().guarantee(ctx, ev)
        r = self._reserve_for(ctx)
        sure = all(
            int(ctx.values[i, b]) >= p
            for i, (b, p) in enumerate(zip(r.alloc, r.prices, strict=True))
        )
        if not sure or ctx.collusive:
            return None  # Section 6.3 needs a sure reserve and says nothing of collusion
        bench = max(self.benchmarks(ctx)["BB"], r.revenue)
        return Guarantee(
            "E[REV] >= max(BB, REV(reserve))/2 - eps",
            Fraction(bench, 2) - self.eps,
            ev.expected_revenue,
        )

    def _reserve_for(self, ctx: Any) -> Offer:
        return check_offer(self.reserve, ctx.n, ctx.m, None, "seller", "reserve")

    # -- moves -------------------------------------------------------------------------------
    def validate(self, s: Episode, player: int, action: Any) -> Any:
        agent, n, m = f"player_{player}", s.ctx.n, s.ctx.m
        if s.state.phase[0] == ANNOUNCE:
            phase = "announce"
            if not isinstance(action, BBAnnouncement):
                raise MalformedAnnouncementError(
                    agent, phase, f"expected a BBAnnouncement, got {type(action).__name__}"
                )
            bundle = check_bundle(action.bundle, m, agent, phase, "favourite bundle")
            offer = check_offer(action.offer, n, m, player, agent, phase)
            return BBAnnouncement(bundle, offer)
        return check_answer(action, agent, "respond")

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        return announce_or_answer_moves(s.ctx.n, actions, BBAnnouncement)

    # -- encodings ---------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([("answer", 2), ("bundle", 1 << spec.m), *offer_fields(spec)])

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        if s.state.phase[0] == ANNOUNCE:
            return BBAnnouncement(int(vec[layout.index["bundle"]]), decode_offer(vec, spec, layout))
        return bool(vec[layout.index["answer"]])

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        if s.state.phase[0] == ANNOUNCE:
            vec[layout.index["bundle"]] = action.bundle
            encode_offer(action.offer, vec, spec, layout, f"player_{player}", "announce")
        else:
            vec[layout.index["answer"]] = int(bool(action))
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 * spec.n + 2 + offer_stage_size(spec)

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        if isinstance(action, BBAnnouncement):
            return f"xi={{{format_bundle(action.bundle)}}} {describe_offer(action.offer)}"
        return "YES" if action else "NO"


@register_batched
class BestBeliefRules(MoveRules):
    """The rules of :class:`BestBelief` over a batch."""

    mechanism = BestBelief
    implements = frozenset({"eps", "reserve", "reward_budget"})
    mech: BestBelief

    def __init__(self, mech: BestBelief, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
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
    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        B, n = ctx.B, ctx.n
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

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        return self.masker.rows(state.phase, state.acting)

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        alloc, prices = decode_offers(actions, self.spec, self.layout)
        return {
            "bundle": actions[:, :, self.i_bundle],
            "alloc": alloc,
            "prices": prices,
            "yes": actions[:, :, self.i_answer] == 1,
        }

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        d = dict(state.data)
        phase = state.phase.copy()
        acting = state.acting.copy()
        at_respond = state.phase == RESPOND
        at_announce = state.phase == ANNOUNCE
        if at_respond.any():
            yes = moves["yes"]
            given = np.where(state.acting, np.where(yes, 1, -1), 0).astype(np.int8)
            d["answers"] = merge(at_respond, given, d["answers"])
            phase[at_respond] = TERMINAL
            acting[at_respond] = False
        chance = list(state.chance)
        if at_announce.any():
            alloc, prices = moves["alloc"], moves["prices"]
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
            d["bundle"] = merge(put, moves["bundle"], d["bundle"])
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
        n = d["revenues"].shape[1]
        B = len(d["winner"])
        rows = np.arange(B)
        # the player whose offer is sold; −1 where the seller's reserve leads
        leader = np.where(d["seller_leads"], -1, d["winner"])
        money = self.money
        h_alloc, h_prices = heads_outcome(leader, d["bundle"][rows, d["winner"]], n, money)
        eps: Fraction | np.ndarray = self.mech.eps
        if self.mech.reward_budget == "fraction":
            # Section 6.3 as read above: half of the budget ε·R_w to the acceptance bonus,
            # half to δ
            eps = money.constant(self.mech.eps) * money.array(d["lead_prices"].sum(axis=1)) / 2
        t_alloc, t_prices = tails_outcome(
            leader,
            d["lead_alloc"],
            d["lead_prices"],
            d["answers"] == 1,
            d["revenues"],
            eps,
            money,
        )
        heads = (d["coin"] == 0)[:, None]
        return BatchOutcome.of_bundles(
            np.where(heads, h_alloc, t_alloc), np.where(heads, h_prices, t_prices)
        )

    def outcome_rule(self, state: BatchState) -> str:
        d = state.data
        if d["coin"][0] == 0:
            return "heads-reserve" if d["seller_leads"][0] else "heads"
        return "tails"

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = state.data
        asked = (state.phase == RESPOND)[:, None] & state.acting
        return asked, d["lead_alloc"], d["lead_prices"]

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        return self.public_features_all(state)[:, player]

    def public_features_all(self, state: BatchState) -> np.ndarray:
        d = state.data
        spec, n = self.spec, self.spec.n
        B = len(d["winner"])
        out = np.zeros((B, n, self.mech.public_size(spec)), dtype=np.float32)
        if not d["announced"].any():
            return out
        leader = np.where(d["seller_leads"], -1, d["winner"])
        out[:, :, :n] = (np.arange(n)[None, :] == leader[:, None])[:, None, :]
        out[:, :, n : 2 * n] = d["revenues"][:, None, :]
        out[:, :, 2 * n] = (d["coin"] == 0)[:, None]
        out[:, :, 2 * n + 1] = (d["coin"] == 1)[:, None]
        lead_alloc = d["lead_alloc"]
        asked = lead_alloc != 0
        write_offer_stage(
            out, 2 * n + 2, spec, lead_alloc, d["lead_prices"], None, asked, d["answers"]
        )
        out[~d["announced"]] = 0.0
        return out


# offers carry positive prices: field value k is price k + 1
register_factored("best_belief", price_offset=1)
