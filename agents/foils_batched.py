"""Batched scripted play of the foils of M5 and M6: the batched twin of
:mod:`mechgym.agents.foils`, one section per foil.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.engine.errors import ParameterError

from .batched import (
    BatchedAgents,
    RandomBatched,
    acting_players,
    answer_entries,
    register_batched_agents,
)
from .budget_balanced_market import (
    respond_answers,
    shift_prices,
    surpluses,
    truthful_proposals,
)
from .foils import REPORT_FACTORS

NAIVE_PROPOSALS = ("truthful", "status_quo", "manipulate", "shift_pair")

# == HOPE-FOR-THE-BEST ===========================================================================


def _report_columns(rules: BatchedRules) -> np.ndarray:
    """``(n, K)`` columns of the fields ``report_i_x``."""
    spec, lay = rules.spec, rules.layout
    return np.array(
        [[lay.index[f"report_{i}_{x}"] for x in range(spec.m)] for i in range(spec.n)],
        dtype=np.int64,
    )


def scaled_reports(rules: BatchedRules, ctx: ContextBatch, num: int, den: int) -> np.ndarray:
    """``(B, L)`` the array form of :func:`mechgym.agents.foils.scaled_report`: every true value
    times ``num/den``, rounded down (written at the top of the grid where it leaves it)."""
    cols = _report_columns(rules)
    out = np.zeros((ctx.B, len(rules.layout)), dtype=np.int64)
    out[:, cols] = np.minimum(ctx.values * num // den, rules.spec.value_cap)
    return out


class BatchedHope:
    """Everyone reports the true profile scaled by ``num/den`` (1 = truthful)."""

    def __init__(self, num: int = 1, den: int = 1) -> None:
        self.num = num
        self.den = den

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        mine = acting_players(state, players)
        report = scaled_reports(rules, ctx, self.num, self.den)
        return np.where(mine[:, :, None], report[:, None, :], 0)


def hope_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.foils.hope_menu` over a batch: ``(actions (B, 4, L),
    valid (B, 4))``, the true profile times 1, 3/4, 1/2, 0. Entries are invalid where
    ``player`` does not act or a reported value leaves the grid."""
    acting = state.acting[:, player]
    acts = (
        np.stack([scaled_reports(rules, ctx, a, b) for a, b in REPORT_FACTORS], axis=1)
        * acting[:, None, None]
    )
    on_grid = np.stack(
        [(ctx.values * a // b <= rules.spec.value_cap).all(axis=(1, 2)) for a, b in REPORT_FACTORS],
        axis=1,
    )
    return acts, on_grid & acting[:, None]


register_batched_agents(
    "hope_for_the_best",
    BatchedAgents(
        predicted=BatchedHope(),
        deviations={
            "scaled_half": BatchedHope(1, 2),
            "zero": BatchedHope(0, 1),
            "random": RandomBatched(),
        },
        menu=hope_menu,
    ),
)

# == end of HOPE-FOR-THE-BEST ====================================================================


# == Naive-1 … Naive-4 ===========================================================================
#
# Predicted play (as :class:`mechgym.agents.foils.PredictedNaive`): everyone announces (Naive-1)
# or player 0 proposes (Naive-2..4) M6's truthful outcome; the others answer with M6's step-2
# rule. Where a scripted proposal leaves the price grid (the default ``price_cap`` = B holds
# prices up to B − 1, truthful ones reach 2B − 2), the policy writes it clipped to the grid
# and the menu marks the entry invalid; ``price_cap`` = 2B holds every one.


def manipulative_proposals(ctx: ContextBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched :func:`mechgym.agents.foils.manipulative_proposal` for episodes ``idx``: player
    0 takes its favourite bundle (lowest on ties), the others keep the rest of their
    endowments, player 1 pays B − 1 to player 0."""
    assert ctx.endowment is not None and ctx.k is not None
    b = 1 << (ctx.k - 1)
    favourite = np.argmax(ctx.values[idx, 0, :], axis=1)
    alloc = ctx.endowment[idx] & ~favourite[:, None]
    alloc[:, 0] = favourite
    prices = np.zeros_like(alloc)
    prices[:, 1] = b - 1
    prices[:, 0] = -(b - 1)
    return alloc, prices


class BatchedNaive:
    """Truthful proposals and M6's answer rules over a batch, with the exact agent's
    deviations (:class:`mechgym.agents.foils.PredictedNaive`).

    Parameters
    ----------
    proposal : {"truthful", "status_quo", "manipulate", "shift_pair"}
    answers : {"truthful", "yes", "no"}
    shift : int
        The price ``shift_pair`` moves onto player 1 and off player 2.
    """

    def __init__(
        self, proposal: str = "truthful", answers: str = "truthful", shift: int = 1
    ) -> None:
        if proposal not in NAIVE_PROPOSALS or answers not in ("truthful", "yes", "no"):
            raise ParameterError(
                "proposal/answers",
                f"got {proposal!r}/{answers!r}; use one of {NAIVE_PROPOSALS} / truthful, yes, no",
            )
        self.mode = proposal
        self.answers = answers
        self.shift = shift

    def proposals(self, ctx: ContextBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``alloc``, ``prices`` ``(len(idx), n)`` of the proposal for episodes ``idx``."""
        assert ctx.endowment is not None
        if self.mode == "status_quo":
            endow = ctx.endowment[idx]
            return endow.copy(), np.zeros_like(endow)
        if self.mode == "manipulate":
            return manipulative_proposals(ctx, idx)
        alloc, prices = truthful_proposals(ctx, idx)
        if self.mode == "shift_pair" and ctx.n >= 3:
            prices = shift_prices(shift_prices(prices, 1, self.shift), 2, -self.shift)
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
        idx = np.flatnonzero((state.phase == 0) & mine.any(axis=1))
        if len(idx):
            assert ctx.k is not None
            alloc, prices = self.proposals(ctx, idx)
            vec = rules.encode_proposals(alloc, prices, ctx.k)[0]  # type: ignore[attr-defined]
            acts[idx] = np.where(mine[idx, :, None], vec[:, None, :], 0)
        if len(rules.phases) > 1:
            answering = mine & (state.phase == 1)[:, None]
            if answering.any():
                if self.answers == "truthful":
                    _, item, price = rules.pending_offers(state)
                    yes = respond_answers(ctx, surpluses(ctx, item, price))
                else:
                    yes = np.full((B, n), self.answers == "yes")
                acts[:, :, rules.layout.index["answer"]] = np.where(answering, yes, 0)
        return acts


def naive_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.foils.naive_menu` over a batch.

    Returns ``(actions (B, K, L), valid (B, K))`` with ``K = 2 + 2(n−1)``: at ``announce`` /
    ``propose`` truthful, status quo (E, 0), then ±1 moved onto each player 1..n−1 (the
    truthful proposal where P_j would leave (−B, B)); at ``respond`` entries 0 and 1 are NO
    and YES, the rest invalid. Entries are invalid where ``player`` does not act or where a
    proposal leaves the price grid.
    """
    n, L = rules.spec.n, len(rules.layout)
    B, K = len(state.phase), 2 + 2 * (n - 1)
    acts = np.zeros((B, K, L), dtype=np.int64)
    valid = np.zeros((B, K), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == 0) & acting)
    if len(idx):
        assert ctx.endowment is not None and ctx.k is not None
        b = 1 << (ctx.k - 1)
        alloc, base = truthful_proposals(ctx, idx)
        endow = ctx.endowment[idx]
        entries = [(alloc, base), (endow, np.zeros_like(endow))]
        for j in range(1, n):
            for step in (1, -1):
                cand = shift_prices(base, j, step)
                # the exact menu stays in (−B, B) for P_j, falling back to the truthful one
                ok = (np.abs(cand[:, j]) < b)[:, None]
                entries.append((alloc, np.where(ok, cand, base)))
        for e, (a, p) in enumerate(entries):
            vec, ok = rules.encode_proposals(a, p, ctx.k)  # type: ignore[attr-defined]
            acts[idx, e] = vec
            valid[idx, e] = ok
    if len(rules.phases) > 1:
        ask = np.flatnonzero((state.phase == 1) & acting)
        answer_entries(rules, acts, valid, ask)
    return acts, valid


def _naive_agents() -> BatchedAgents:
    return BatchedAgents(
        predicted=BatchedNaive(),
        deviations={
            "status_quo": BatchedNaive(proposal="status_quo"),
            "manipulate": BatchedNaive(proposal="manipulate"),
            "shift_pair": BatchedNaive(proposal="shift_pair"),
            "always_yes": BatchedNaive(answers="yes"),
            "always_no": BatchedNaive(answers="no"),
            "random": RandomBatched(),
        },
        menu=naive_menu,
    )


for _name in ("naive_market_1", "naive_market_2", "naive_market_3", "naive_market_4"):
    register_batched_agents(_name, _naive_agents())

# == end of Naive-1 … Naive-4 ====================================================================
