"""Batched scripted play of M6 (seed 004): the batched twin of
:mod:`mechgym.agents.budget_balanced_market`.

Predicted play: player 0 proposes the truthful outcome (the canonical welfare optimum, priced
P*_i = θ_i(A*_i) − θ_i(E_i), or (E, 0) when E already maximises welfare); at step 2 a member
of player 0's coalition says YES and anyone else YES iff its acting coalition's surplus is
≥ 0; at step 3 player 0's colluders say YES and anyone else YES iff its own surplus is ≥ 0.
Coalitions act jointly only with shared rewards. The deviations carry the exact agents'
names; the menu has the exact menu's entries in the same order.

The truthful proposal needs MSW per episode: :func:`mechgym.envs.solvers.batched.pack_batch`
enumerates owner vectors for the whole batch when ``(n+1)^m`` is small and falls back to the
exact solver beyond. Where a scripted proposal leaves the price grid (a ``price_cap`` below
the default), the policy writes it clipped to the grid and the menu marks the entry invalid.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.mechanisms.budget_balanced_market import (
    CONFIRM,
    PROPOSE,
    RESPOND,
    BudgetBalancedMarket,
)
from mechgym.envs.solvers.batched import pack_batch

from .batched import (
    BatchedAgents,
    ByPhase,
    RandomBatched,
    acting_players,
    answer_entries,
    register_batched_agents,
)

__all__ = [
    "BatchedMarket",
    "acting_together",
    "endowed_values",
    "market_menu",
    "respond_answers",
    "shift_prices",
    "surpluses",
    "truthful_proposals",
]

PROPOSAL_MODES = ("truthful", "endowment", "overprice", "shift_pair", "invalid_sum")
ANSWER_MODES = ("truthful", "yes", "no", "individual")


def endowed_values(ctx: ContextBatch, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
    """``(b, n)`` θ_i(E_i) for episodes ``idx``."""
    assert ctx.endowment is not None
    values, endow = ctx.values[idx], ctx.endowment[idx]
    return np.take_along_axis(values, endow[:, :, None], axis=2)[:, :, 0]


def truthful_proposals(ctx: ContextBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched :func:`mechgym.agents.budget_balanced_market.truthful_proposal` for episodes
    ``idx``: ``alloc``, ``prices`` ``(len(idx), n)`` int64 ((E, 0) where E maximises welfare,
    else the canonical optimum with P*_i = θ_i(A*_i) − θ_i(E_i), P*_0 = −Σ_{i≥1} P*_i)."""
    assert ctx.endowment is not None
    values, endow = ctx.values[idx], ctx.endowment[idx]
    best, alloc = pack_batch(values)
    endowed = endowed_values(ctx, idx)
    prices = np.take_along_axis(values, alloc[:, :, None], axis=2)[:, :, 0] - endowed
    prices[:, 0] = -prices[:, 1:].sum(axis=1)
    keep = (best == endowed.sum(axis=1))[:, None]
    return np.where(keep, endow, alloc), np.where(keep, 0, prices)


def shift_prices(prices: np.ndarray, j: int, amount: int | np.ndarray) -> np.ndarray:
    """Batched :func:`mechgym.agents.budget_balanced_market.shifted`: move ``amount`` of price
    from player 0 to player ``j`` (stays budget balanced)."""
    out = prices.copy()
    out[:, j] += amount
    out[:, 0] -= amount
    return out


def surpluses(ctx: ContextBatch, alloc: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """``(B, n)`` θ_i(A*_i) − θ_i(E_i) − P*_i of proposals ``alloc``, ``prices`` ``(B, n)``."""
    gained = np.take_along_axis(ctx.values, alloc[:, :, None], axis=2)[:, :, 0]
    return gained - endowed_values(ctx) - prices


def acting_together(ctx: ContextBatch) -> np.ndarray:
    """``(B, n, n)``: ``[b, i, j]`` whether ``j`` is in ``i``'s acting coalition (its
    coalition with shared rewards, else itself), as ``acting_coalition``."""
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


class BatchedMarket:
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
            from mechgym.envs.engine.errors import ParameterError

            raise ParameterError(
                "proposal/answers",
                f"got {proposal!r}/{answers!r}; use one of {PROPOSAL_MODES} / {ANSWER_MODES}",
            )
        self.mode = proposal
        self.answers = answers
        self.shift = shift

    def proposals(self, ctx: ContextBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``alloc``, ``prices`` ``(len(idx), n)`` of the proposal for episodes ``idx``."""
        assert ctx.endowment is not None
        if self.mode == "endowment":
            endow = ctx.endowment[idx]
            return endow.copy(), np.zeros_like(endow)
        alloc, prices = truthful_proposals(ctx, idx)
        if self.mode == "overprice":
            prices = shift_prices(prices, 1, 1)
        elif self.mode == "shift_pair" and ctx.n >= 3:
            prices = shift_prices(shift_prices(prices, 1, self.shift), 2, -self.shift)
        elif self.mode == "invalid_sum":
            prices = prices.copy()
            prices[:, 0] += 1
        return alloc, prices

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        B, n, L = len(state.phase), rules.spec.n, len(rules.layout)
        acts = np.zeros((B, n, L), dtype=np.int64)
        mine = acting_players(state, players)
        idx = np.flatnonzero((state.phase == PROPOSE) & mine[:, 0])
        if len(idx):
            alloc, prices = self.proposals(ctx, idx)
            acts[idx, 0] = rules.encode_proposals(alloc, prices)[0]  # type: ignore[attr-defined]
        answering = mine & ((state.phase == RESPOND) | (state.phase == CONFIRM))[:, None]
        if answering.any():
            if self.answers in ("yes", "no"):
                yes = np.full((B, n), self.answers == "yes")
            else:
                # the offers of the mechanism (A*_i at P*_i; every player but 0 at step 2)
                _, item, price = rules.pending_offers(state)
                surplus = surpluses(ctx, item, price)
                if self.answers == "individual":
                    yes = surplus >= 0
                else:
                    yes = np.where(
                        (state.phase == RESPOND)[:, None],
                        respond_answers(ctx, surplus),
                        confirm_answers(ctx, surplus),
                    )
            acts[:, :, rules.layout.index["answer"]] = np.where(answering, yes, 0)
        return acts


def market_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.budget_balanced_market.menu` over a batch.

    Returns ``(actions (B, K, L), valid (B, K))`` with ``K = 3 + 2(n−1)``: at ``propose``
    truthful, (E, 0), an invalid sum, then ±1 moved onto each player 1..n−1; at ``respond``
    and ``confirm`` entries 0 and 1 are NO and YES, the rest invalid. Entries are invalid
    where ``player`` does not act or where a proposal leaves the price grid.
    """
    n, L = rules.spec.n, len(rules.layout)
    B, K = len(state.phase), 3 + 2 * (n - 1)
    acts = np.zeros((B, K, L), dtype=np.int64)
    valid = np.zeros((B, K), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == PROPOSE) & acting)
    if len(idx):
        assert ctx.endowment is not None
        alloc, base = truthful_proposals(ctx, idx)
        endow = ctx.endowment[idx]
        invalid = base.copy()
        invalid[:, 0] += 1
        entries = [(alloc, base), (endow, np.zeros_like(endow)), (alloc, invalid)]
        for j in range(1, n):
            entries += [(alloc, shift_prices(base, j, 1)), (alloc, shift_prices(base, j, -1))]
        for e, (a, p) in enumerate(entries):
            vec, ok = rules.encode_proposals(a, p)  # type: ignore[attr-defined]
            acts[idx, e] = vec
            valid[idx, e] = ok
    ask = np.flatnonzero(((state.phase == RESPOND) | (state.phase == CONFIRM)) & acting)
    answer_entries(rules, acts, valid, ask)
    return acts, valid


def _agents() -> BatchedAgents:
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


register_batched_agents(BudgetBalancedMarket.name, _agents())
