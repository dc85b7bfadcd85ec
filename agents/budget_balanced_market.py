"""Scripted play of M6 (seed 004): the truthful proposal, the YES/NO rules of Lemmas 1, 2,
7, 8 and 9, documented deviations, and the compact menu.

Predicted (Corollary 1; appendix B with collusion):

* Player 0 proposes a *truthful* outcome: A* welfare-maximising (the canonical optimum of
  :func:`mechgym.envs.model.market.market_msw`; goods it leaves unallocated are destroyed),
  P*_i = θ_i(A*_i) − θ_i(E_i) for i ≠ 0 and P*_0 = −Σ_{i≠0} P*_i; or (E, 0) when E already
  maximises welfare (Lemma 3). Truthful outcomes are semi-truthful, so this is also
  optimal for a collusive player 0 (Lemma 11).
* Step 2 (``respond``): a member of player 0's coalition says YES (Lemma 9); any other player
  says YES iff its coalition's total Σ_{j∈C} (θ_j(A*_j) − θ_j(E_j) − P*_j) ≥ 0 (Lemma 7; an
  independent player: its own term, Lemma 1).
* Step 3 (``confirm``, player w): a member of player 0's coalition says YES (Lemma 9);
  anyone else says YES iff θ_w(A*_w) − θ_w(E_w) − P*_w ≥ 0, its own term only (Lemma 8: off
  the c0-heads branch every good outside A*_w is destroyed).

Coalitions act jointly only when they share rewards; otherwise every player is treated as
independent.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism, PendingOffer
from mechgym.envs.mechanisms.budget_balanced_market import BudgetBalancedMarket, MarketProposal
from mechgym.envs.model.market import market_msw

from .base import MechanismAgents, PhasePolicy, RandomPolicy, register_agents
from .offers import offer_to


def acting_coalition(ctx: Any, i: int) -> tuple[int, ...]:
    """The players whose total ``i`` maximises: its coalition with shared rewards, else itself."""
    return tuple(ctx.coalition_of(i)) if ctx.shared_reward else (i,)


def truthful_proposal(ctx: Any) -> MarketProposal:
    """(E, 0) when E maximises welfare; else the canonical optimum, truthfully priced."""
    best, alloc = market_msw(ctx)
    if best == ctx.endowment_welfare:
        return MarketProposal(tuple(ctx.endowment), (0,) * ctx.n)
    prices = [int(ctx.values[i, alloc[i]]) - ctx.endowed_value(i) for i in range(ctx.n)]
    prices[0] = -sum(prices[1:])
    return MarketProposal(tuple(alloc), tuple(prices))


def surplus(ctx: Any, offer: PendingOffer, i: int) -> Fraction:
    """θ_i(A*_i) − θ_i(E_i) − P*_i of the offer ``i`` is asked about (``item`` = A*_i, the
    bundle in place of E_i, at ``price`` = P*_i)."""
    return int(ctx.values[i, offer.item]) - ctx.endowed_value(i) - Fraction(offer.price)


def respond_rule(mech: Mechanism, ctx: Any, state: Any, i: int) -> bool:
    """Step 2: YES for player 0's colluders (Lemma 9), else the coalition-total rule (Lemma 7)
    over the offers the mechanism puts to the coalition's members (all asked at step 2)."""
    members = acting_coalition(ctx, i)
    if 0 in members:
        return True
    return sum((surplus(ctx, offer_to(mech, state, j), j) for j in members), Fraction(0)) >= 0


def confirm_rule(mech: Mechanism, ctx: Any, state: Any, i: int) -> bool:
    """Step 3: YES for player 0's colluders (Lemma 9), else the individual rule (Lemma 8)."""
    if 0 in acting_coalition(ctx, i):
        return True
    return surplus(ctx, offer_to(mech, state, i), i) >= 0


def shifted(proposal: MarketProposal, j: int, amount: int) -> MarketProposal:
    """Move ``amount`` of price from player 0 to player ``j`` (stays budget balanced)."""
    prices = list(proposal.prices)
    prices[j] += amount
    prices[0] -= amount
    return MarketProposal(proposal.alloc, tuple(prices))


class PredictedMarket:
    """The predicted profile of M6, with optional deviations.

    Parameters
    ----------
    ctx : MarketContext
    proposal : {"truthful", "endowment", "overprice", "shift_pair", "invalid_sum"}
        ``overprice``: +1 on player 1's price (player 0 pays 1 less); ``shift_pair``: +s on
        player 1 and −s on player 2 (s = ``shift``), the manipulation of seed 004's
        "collusion problem"; ``invalid_sum``: prices summing to 1 (step a).
    answers : {"truthful", "yes", "no", "individual"}
        ``individual`` ignores coalitions (Lemmas 1–2 rules for everyone).
    """

    def __init__(
        self, ctx: Any, proposal: str = "truthful", answers: str = "truthful", shift: int = 1
    ) -> None:
        self.ctx = ctx
        self.mode = proposal
        self.answers = answers
        self.shift = shift
        self._proposal: MarketProposal | None = None

    def proposal(self) -> MarketProposal:
        if self._proposal is None:
            ctx = self.ctx
            base = truthful_proposal(ctx)
            if self.mode == "endowment":
                base = MarketProposal(tuple(ctx.endowment), (0,) * ctx.n)
            elif self.mode == "overprice":
                base = shifted(base, 1, 1)
            elif self.mode == "shift_pair" and ctx.n >= 3:
                base = shifted(shifted(base, 1, self.shift), 2, -self.shift)
            elif self.mode == "invalid_sum":
                base = MarketProposal(base.alloc, (base.prices[0] + 1, *base.prices[1:]))
            self._proposal = base
        return self._proposal

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase == "propose":
            return self.proposal()
        if self.answers == "yes":
            return True
        if self.answers == "no":
            return False
        if self.answers == "individual":
            return surplus(ctx, offer_to(mech, state, player), player) >= 0
        if node.phase == "respond":
            return respond_rule(mech, ctx, state, player)
        return confirm_rule(mech, ctx, state, player)


def menu_size(phase: str, spec: EnvSpec) -> int:
    """propose: truthful, (E, 0), an invalid sum, then ±1 moved onto each player 1..n−1;
    respond / confirm: NO, YES."""
    return 3 + 2 * (spec.n - 1) if phase == "propose" else 2


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions; the predicted proposal comes first."""
    node = mech.node(state)
    if node.phase != "propose":
        return [("NO", False), ("YES", True)]
    base = truthful_proposal(ctx)
    out: list[tuple[str, Any]] = [
        ("truthful", base),
        ("endowment", MarketProposal(tuple(ctx.endowment), (0,) * ctx.n)),
        ("invalid_sum", MarketProposal(base.alloc, (base.prices[0] + 1, *base.prices[1:]))),
    ]
    for j in range(1, ctx.n):
        out.append((f"p{j}+1", shifted(base, j, 1)))
        out.append((f"p{j}-1", shifted(base, j, -1)))
    return out


def _spec_of(ctx: Any) -> EnvSpec:
    return EnvSpec(ctx.n, ctx.m, ctx.value_cap, ctx.value_cap)


def _deviations() -> dict[str, Any]:
    return {
        "endowment": lambda ctx, rng: PredictedMarket(ctx, proposal="endowment"),
        "overprice": lambda ctx, rng: PredictedMarket(ctx, proposal="overprice"),
        "shift_pair": lambda ctx, rng: PredictedMarket(ctx, proposal="shift_pair"),
        "invalid_sum": lambda ctx, rng: PredictedMarket(ctx, proposal="invalid_sum"),
        "always_yes": lambda ctx, rng: PredictedMarket(ctx, answers="yes"),
        "always_no": lambda ctx, rng: PredictedMarket(ctx, answers="no"),
        "individual": lambda ctx, rng: PredictedMarket(ctx, answers="individual"),
        "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
        "random_answers": lambda ctx, rng: PhasePolicy(
            PredictedMarket(ctx),
            {
                "respond": RandomPolicy(rng, _spec_of(ctx)),
                "confirm": RandomPolicy(rng, _spec_of(ctx)),
            },
        ),
    }


register_agents(
    BudgetBalancedMarket.name,
    MechanismAgents(
        predicted=PredictedMarket,
        deviations=_deviations(),
        menu=menu,
        menu_size=menu_size,
    ),
)

__all__ = [
    "PredictedMarket",
    "acting_coalition",
    "confirm_rule",
    "menu",
    "menu_size",
    "respond_rule",
    "shifted",
    "surplus",
    "truthful_proposal",
]
