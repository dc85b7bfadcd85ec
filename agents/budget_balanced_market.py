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

Written once: each rule over a batch of contexts (the truthful proposal needs MSW per
episode: :func:`mechgym.envs.solvers.batched.pack_batch`); the exact agents play their
context's row of a batch of one, the batched agents write the rows into the layout (a
proposal off the price grid clipped to it; such menu entries invalid).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.engine.episode import EVERY, batch_of_one
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.budget_balanced_market import (
    CONFIRM,
    PROPOSE,
    RESPOND,
    BudgetBalancedMarket,
    MarketProposal,
)
from mechgym.envs.solvers.batched import pack_batch

from .base import MechanismAgents, PhasePolicy, RandomPolicy, register_agents
from .batched import (
    AnnounceThenAnswer,
    BatchedAgents,
    ByPhase,
    RandomBatched,
    answer_entries,
    register_batched_agents,
)

PROPOSAL_MODES = ("truthful", "endowment", "overprice", "shift_pair", "invalid_sum")
ANSWER_MODES = ("truthful", "yes", "no", "individual")


# -- the rules of play, over a batch ---------------------------------------------------------
def endowed_values(ctx: ContextBatch, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
    """``(b, n)`` θ_i(E_i) for episodes ``idx``."""
    assert ctx.endowment is not None
    values, endow = ctx.values[idx], ctx.endowment[idx]
    return np.take_along_axis(values, endow[:, :, None], axis=2)[:, :, 0]


def truthful_proposals(ctx: ContextBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The truthful proposal for episodes ``idx``: ``alloc``, ``prices`` ``(len(idx), n)``
    int64 ((E, 0) where E maximises welfare, else the canonical optimum with
    P*_i = θ_i(A*_i) − θ_i(E_i), P*_0 = −Σ_{i≥1} P*_i)."""
    assert ctx.endowment is not None
    values, endow = ctx.values[idx], ctx.endowment[idx]
    best, alloc = pack_batch(values)
    endowed = endowed_values(ctx, idx)
    prices = np.take_along_axis(values, alloc[:, :, None], axis=2)[:, :, 0] - endowed
    prices[:, 0] = -prices[:, 1:].sum(axis=1)
    keep = (best == endowed.sum(axis=1))[:, None]
    return np.where(keep, endow, alloc), np.where(keep, 0, prices)


def shift_prices(prices: np.ndarray, j: int, amount: int | np.ndarray) -> np.ndarray:
    """Move ``amount`` of price from player 0 to player ``j`` (stays budget balanced)."""
    out = prices.copy()
    out[..., j] += amount
    out[..., 0] -= amount
    return out


def surpluses(ctx: ContextBatch, alloc: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """``(B, n)`` θ_i(A*_i) − θ_i(E_i) − P*_i of proposals ``alloc``, ``prices`` ``(B, n)``."""
    gained = np.take_along_axis(ctx.values, alloc[:, :, None], axis=2)[:, :, 0]
    return gained - endowed_values(ctx) - prices


def acting_together(ctx: ContextBatch) -> np.ndarray:
    """``(B, n, n)``: ``[b, i, j]`` whether ``j`` is in ``i``'s acting coalition (its
    coalition with shared rewards, else itself)."""
    lab = ctx.coalition
    same = lab[:, :, None] == lab[:, None, :]
    return same & ctx.shared_reward[:, None, None] | np.eye(ctx.n, dtype=bool)[None]


def respond_answers(ctx: ContextBatch, surplus: np.ndarray) -> np.ndarray:
    """``(B, n)`` step-2 answers (Lemmas 7 and 9): YES for player 0's colluders, else YES iff
    the acting coalition's total surplus is ≥ 0."""
    together = acting_together(ctx)
    total = np.einsum("bij,bj->bi", together.astype(np.int64), surplus)
    return together[:, :, 0] | (total >= 0)


def confirm_answers(ctx: ContextBatch, surplus: np.ndarray) -> np.ndarray:
    """``(B, n)`` step-3 answers (Lemmas 8 and 9): YES for player 0's colluders, else YES iff
    the own surplus is ≥ 0."""
    return acting_together(ctx)[:, :, 0] | (surplus >= 0)


def answers(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, mode: str, confirm: np.ndarray
) -> np.ndarray:
    """``(B, n)`` answers of ``mode`` to the offers the mechanism puts (A*_i at P*_i):
    ``confirm`` ``(B,)`` says where the question is step 3's."""
    _, item, price = rules.pending_offers(state)
    surplus = surpluses(ctx, item, price)
    if mode == "individual":
        return surplus >= 0
    return np.where(confirm[:, None], confirm_answers(ctx, surplus), respond_answers(ctx, surplus))


def proposals(
    ctx: ContextBatch, idx: np.ndarray, mode: str, shift: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``alloc``, ``prices`` ``(len(idx), n)`` of proposal ``mode`` for episodes ``idx``."""
    assert ctx.endowment is not None
    if mode == "endowment":
        endow = ctx.endowment[idx]
        return endow.copy(), np.zeros_like(endow)
    alloc, prices = truthful_proposals(ctx, idx)
    if mode == "overprice":
        prices = shift_prices(prices, 1, 1)
    elif mode == "shift_pair" and ctx.n >= 3:
        prices = shift_prices(shift_prices(prices, 1, shift), 2, -shift)
    elif mode == "invalid_sum":
        prices = prices.copy()
        prices[:, 0] += 1
    return alloc, prices


MENU = ("truthful", "endowment", "invalid_sum")
"""The menu's first entries; then ±1 moved onto each player 1..n−1."""


def menu_entries(ctx: ContextBatch, idx: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The menu's proposals ``(label, alloc, prices)`` (each ``(len(idx), n)``)."""
    alloc, base = truthful_proposals(ctx, idx)
    out = [(label, *proposals(ctx, idx, label)) for label in MENU]
    for j in range(1, ctx.n):
        out += [(f"p{j}+1", alloc, shift_prices(base, j, 1))]
        out += [(f"p{j}-1", alloc, shift_prices(base, j, -1))]
    return out


# -- the exact face ----------------------------------------------------------------------------
def as_proposal(alloc: np.ndarray, prices: np.ndarray) -> MarketProposal:
    """One row of proposal arrays as a structured :class:`MarketProposal`."""
    return MarketProposal(tuple(int(x) for x in alloc), tuple(int(x) for x in prices))


def truthful_proposal(ctx: Any) -> MarketProposal:
    """(E, 0) when E maximises welfare; else the canonical optimum, truthfully priced."""
    alloc, prices = truthful_proposals(batch_of_one(ctx), EVERY)
    return as_proposal(alloc[0], prices[0])


def shifted(proposal: MarketProposal, j: int, amount: int) -> MarketProposal:
    """Move ``amount`` of price from player 0 to player ``j`` (stays budget balanced)."""
    return MarketProposal(proposal.alloc, tuple(shift_prices(np.array(proposal.prices), j, amount)))


def _answer(mech: Mechanism, ctx: Any, state: Any, i: int, mode: str) -> bool:
    rules = mech.rules(ctx.n, ctx.m)
    confirm = np.array([mech.node(state).phase == "confirm"])
    return bool(answers(rules, state.batch, state.state, mode, confirm)[0, i])


def answer_rule(mech: Mechanism, ctx: Any, state: Any, i: int) -> bool:
    """The predicted answer at steps 2 and 3 (the node's phase picks the rule): YES for
    player 0's colluders (Lemma 9), else at step 2 the coalition-total rule (Lemma 7) over
    the offers the mechanism puts to the coalition's members (all asked at step 2), at
    step 3 the individual rule (Lemma 8)."""
    return _answer(mech, ctx, state, i, "truthful")


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
            alloc, prices = proposals(batch_of_one(self.ctx), EVERY, self.mode, self.shift)
            self._proposal = as_proposal(alloc[0], prices[0])
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
        return _answer(mech, ctx, state, player, self.answers)


def menu_size(phase: str, spec: EnvSpec) -> int:
    """propose: truthful, (E, 0), an invalid sum, then ±1 moved onto each player 1..n−1;
    respond / confirm: NO, YES."""
    return len(MENU) + 2 * (spec.n - 1) if phase == "propose" else 2


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions; the predicted proposal comes first."""
    node = mech.node(state)
    if node.phase != "propose":
        return [("NO", False), ("YES", True)]
    return [
        (label, as_proposal(a[0], p[0])) for label, a, p in menu_entries(batch_of_one(ctx), EVERY)
    ]


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


# -- the batched face --------------------------------------------------------------------------
class BatchedMarket(AnnounceThenAnswer):
    """The predicted profile of M6 over a batch, with the exact agent's deviations.

    Parameters
    ----------
    proposal : {"truthful", "endowment", "overprice", "shift_pair", "invalid_sum"}
    answers : {"truthful", "yes", "no", "individual"}
    shift : int
        The price ``shift_pair`` moves onto player 1 and off player 2.
    """

    def __init__(
        self, proposal: str = "truthful", answers: str = "truthful", shift: int = 1
    ) -> None:
        if proposal not in PROPOSAL_MODES or answers not in ANSWER_MODES:
            raise ParameterError(
                "proposal/answers",
                f"got {proposal!r}/{answers!r}; use one of {PROPOSAL_MODES} / {ANSWER_MODES}",
            )
        self.mode = proposal
        self.answer = answers
        self.shift = shift

    answer_phases = (RESPOND, CONFIRM)

    def proposals(self, ctx: ContextBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``alloc``, ``prices`` ``(len(idx), n)`` of the proposal for episodes ``idx``."""
        return proposals(ctx, idx, self.mode, self.shift)

    def announcements(self, rules: BatchedRules, ctx: ContextBatch, idx: np.ndarray) -> np.ndarray:
        # player 0 proposes; the others do not act at step 1
        out = np.zeros((len(idx), rules.spec.n, len(rules.layout)), dtype=np.int64)
        alloc, prices = self.proposals(ctx, idx)
        out[:, 0] = rules.encode_proposals(alloc, prices)[0]  # type: ignore[attr-defined]
        return out

    def own_answers(self, rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        return answers(rules, ctx, state, self.answer, state.phase == CONFIRM)


def market_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`menu` over a batch: ``(actions (B, K, L), valid (B, K))`` with
    ``K = 3 + 2(n−1)``; at ``respond`` and ``confirm`` entries 0 and 1 are NO and YES, the
    rest invalid. Entries are invalid where ``player`` does not act or where a proposal
    leaves the price grid."""
    n, L = rules.spec.n, len(rules.layout)
    B, K = len(state.phase), len(MENU) + 2 * (n - 1)
    acts = np.zeros((B, K, L), dtype=np.int64)
    valid = np.zeros((B, K), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == PROPOSE) & acting)
    if len(idx):
        for e, (_, a, p) in enumerate(menu_entries(ctx, idx)):
            vec, ok = rules.encode_proposals(a, p)  # type: ignore[attr-defined]
            acts[idx, e] = vec
            valid[idx, e] = ok
    ask = np.flatnonzero(((state.phase == RESPOND) | (state.phase == CONFIRM)) & acting)
    answer_entries(rules, acts, valid, ask)
    return acts, valid


def _batched_agents() -> BatchedAgents:
    return BatchedAgents(
        predicted=BatchedMarket(),
        deviations={
            "endowment": BatchedMarket(proposal="endowment"),
            "overprice": BatchedMarket(proposal="overprice"),
            "shift_pair": BatchedMarket(proposal="shift_pair"),
            "invalid_sum": BatchedMarket(proposal="invalid_sum"),
            "always_yes": BatchedMarket(answers="yes"),
            "always_no": BatchedMarket(answers="no"),
            "individual": BatchedMarket(answers="individual"),
            "random": RandomBatched(),
            "random_answers": ByPhase(
                BatchedMarket(), {"respond": RandomBatched(), "confirm": RandomBatched()}
            ),
        },
        menu=market_menu,
    )


register_agents(
    BudgetBalancedMarket.name,
    MechanismAgents(
        predicted=PredictedMarket,
        deviations=_deviations(),
        menu=menu,
        menu_size=menu_size,
    ),
)
register_batched_agents(BudgetBalancedMarket.name, _batched_agents())
