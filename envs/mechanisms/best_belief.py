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

Array layout (every agent): ``answer`` (2: 0 = NO, 1 = YES), ``bundle`` (2**m: ξ), then the
offer fields of :mod:`mechgym.envs.engine.actions` (``owner_g``, ``price_j``). Phase
``announce`` reads ``bundle`` and the offer; phase ``respond`` reads ``answer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
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
    offer_mask,
    offer_stage_size,
    write_offer_stage,
)
from mechgym.envs.engine.errors import MalformedAnnouncementError, ParameterError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import (
    Decision,
    EnvSpec,
    Examples,
    Guarantee,
    Node,
    PendingOffer,
    Terminal,
)
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.offer_rules import (
    COIN,
    AnnouncedOffers,
    Seed000Mechanism,
    heads_outcome,
    tails_outcome,
)
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.model.outcome import Outcome


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


@dataclass(frozen=True)
class BestBeliefState(AnnouncedOffers):
    """Public state of M_BB."""

    n: int
    m: int
    announcements: tuple[BBAnnouncement, ...] | None = None
    coin: int | None = None
    answers: tuple[tuple[int, bool], ...] | None = None
    reserve: Offer | None = None

    @property
    def winner(self) -> int:
        """The highest announcer w."""
        return self.top

    @property
    def seller_leads(self) -> bool:
        """Whether the seller's reserve outcome replaces the winner's offer."""
        return self.reserve is not None and self.revenues[self.winner] < self.reserve.revenue

    @property
    def leader(self) -> int | None:
        """The player whose offer is sold (``None`` when the seller's reserve leads)."""
        return None if self.seller_leads else self.winner

    @property
    def leading_offer(self) -> Offer:
        """The offer sold on tails: the winner's, or the seller's reserve."""
        return self.reserve if self.seller_leads else self.announcements[self.winner].offer

    @property
    def askers(self) -> tuple[int, ...]:
        """Players offered a non-empty bundle in the leading offer."""
        return tuple(i for i, b in enumerate(self.leading_offer.alloc) if b)


class BestBelief(Seed000Mechanism):
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

    # -- rules -------------------------------------------------------------------------------
    def start(self, ctx: Any) -> BestBeliefState:
        reserve = None if self.reserve is None else self._reserve_for(ctx)
        return BestBeliefState(ctx.n, ctx.m, reserve=reserve)

    def node(self, s: BestBeliefState) -> Node:
        if s.announcements is None:
            return Decision(tuple(range(s.n)), "announce")
        if s.coin is None:
            return COIN
        w = s.leader
        if s.coin == 0:
            if w is None:
                return Terminal(Outcome((0,) * s.n, (Fraction(0),) * s.n, rule="heads-reserve"))
            return Terminal(heads_outcome(s.n, w, s.announcements[w].bundle))
        if s.answers is None and s.askers:
            return Decision(s.askers, "respond")
        answers = dict(s.answers) if s.answers is not None else {}
        eps = self.eps
        if self.reward_budget == "fraction":
            eps = self.eps * s.leading_offer.revenue / 2  # half the budget ε·R_w each
        return Terminal(tails_outcome(s.n, w, s.leading_offer, answers, s.revenues, eps))

    def pending_offer(self, s: BestBeliefState, player: int) -> PendingOffer | None:
        """At ``respond``: the leading offer's bundle and price (the seller's reserve where it
        leads, else the winner's offer)."""
        if s.announcements is None or s.coin != 1 or s.answers is not None:
            return None
        offer = s.leading_offer
        b = offer.alloc[player]
        return PendingOffer(int(b), int(offer.prices[player])) if b else None

    def validate(self, s: BestBeliefState, player: int, action: Any) -> Any:
        agent = f"player_{player}"
        if s.announcements is None:
            phase = "announce"
            if not isinstance(action, BBAnnouncement):
                raise MalformedAnnouncementError(
                    agent, phase, f"expected a BBAnnouncement, got {type(action).__name__}"
                )
            bundle = check_bundle(action.bundle, s.m, agent, phase, "favourite bundle")
            offer = check_offer(action.offer, s.n, s.m, player, agent, phase)
            return BBAnnouncement(bundle, offer)
        return check_answer(action, agent, "respond")

    def resolve(self, s: BestBeliefState, actions: Mapping[int, Any]) -> BestBeliefState:
        if s.announcements is None:
            return replace(s, announcements=tuple(actions[i] for i in range(s.n)))
        return replace(s, answers=tuple(sorted(actions.items())))

    # -- encodings ---------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([("answer", 2), ("bundle", 1 << spec.m), *offer_fields(spec)])

    def action_mask(
        self, s: BestBeliefState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        if s.announcements is None:
            return layout.mask({"bundle": True, **offer_mask(spec, player)})
        return layout.mask({"answer": True})

    def decode(
        self, s: BestBeliefState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        if s.announcements is None:
            return BBAnnouncement(int(vec[layout.index["bundle"]]), decode_offer(vec, spec, layout))
        return bool(vec[layout.index["answer"]])

    def encode(
        self, s: BestBeliefState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        if s.announcements is None:
            vec[layout.index["bundle"]] = action.bundle
            encode_offer(action.offer, vec, spec, layout, f"player_{player}", "announce")
        else:
            vec[layout.index["answer"]] = int(bool(action))
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 * spec.n + 2 + offer_stage_size(spec)

    def public_features(self, s: BestBeliefState, player: int, spec: EnvSpec) -> np.ndarray:
        n = spec.n
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        if s.announcements is None:
            return out
        if s.leader is not None:
            out[s.leader] = 1.0
        out[n : 2 * n] = s.revenues
        k = 2 * n
        if s.coin is not None:
            out[k + s.coin] = 1.0
        offer = s.leading_offer
        write_offer_stage(out, k + 2, spec, offer, player, bool(offer.alloc[player]), s.answers)
        return out

    def describe_action(self, s: BestBeliefState, player: int, action: Any) -> str:
        if isinstance(action, BBAnnouncement):
            return f"xi={{{format_bundle(action.bundle)}}} {describe_offer(action.offer)}"
        return "YES" if action else "NO"


# offers carry positive prices: field value k is price k + 1
register_factored("best_belief", price_offset=1)
