"""Scripted play of the foils of M5 and M6 (HOPE-FOR-THE-BEST, Naive-1 … Naive-4).

Predicted play is the "intended" truthful play, which each foil admits as an equilibrium but
does not single out:

* HOPE-FOR-THE-BEST: everyone reports the true type profile.
* Naive-1: everyone announces M6's truthful outcome
  (:func:`mechgym.agents.budget_balanced_market.truthful_proposal`).
* Naive-2 … 4: player 0 proposes the truthful outcome; the others answer with M6's rules
  (YES iff the coalition's surplus Σ θ_j(A_j) − θ_j(E_j) − P_j ≥ 0; player 0's colluders YES).

The deviations reproduce each foil's documented failure: ``scaled`` reports (HOPE), the
``status_quo`` announcement (Naive-1), ``always_yes`` answers (belief mismatch, Naive-2),
``manipulate`` proposals (Naive-3) and ``shift_pair`` proposals (collusion, Naive-4).

Written once: each rule of play over a batch of contexts; the exact agents play their
context's row of a batch of one, the batched agents write the rows into the layout. Where a
scripted proposal leaves the price grid (the default ``price_cap`` = B holds prices up to
B − 1, truthful ones reach 2B − 2), the batched policy writes it clipped to the grid and the
batched menu marks the entry invalid; ``price_cap`` = 2B holds every one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.engine.episode import EVERY, batch_of_one
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.budget_balanced_market import MarketProposal
from mechgym.envs.mechanisms.foils import FOILS, TypeReport

from .base import MechanismAgents, RandomPolicy, register_agents
from .batched import (
    AnnounceThenAnswer,
    BatchedAgents,
    RandomBatched,
    acting_players,
    answer_entries,
    register_batched_agents,
)
from .budget_balanced_market import (
    answer_rule,
    as_proposal,
    respond_answers,
    shift_prices,
    surpluses,
    truthful_proposals,
)

#: report factors of HOPE-FOR-THE-BEST's menu (floor of value × factor)
REPORT_FACTORS: tuple[tuple[int, int], ...] = ((1, 1), (3, 4), (1, 2), (0, 1))
NAIVE_PROPOSALS = ("truthful", "status_quo", "manipulate", "shift_pair")


# -- the rules of play, over a batch ---------------------------------------------------------
def scaled_profiles(ctx: ContextBatch, num: int, den: int) -> np.ndarray:
    """``(B, n, K)`` every true value times ``num/den``, rounded down (the equilibria E_x of
    footnote 3)."""
    return ctx.values * num // den


def manipulative_proposals(ctx: ContextBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Naive-3's profitable deviation for player 0 (seed 004, "a new problem") in episodes
    ``idx``: player 0 takes its favourite bundle (lowest on ties), the others keep what
    remains of their endowments, player 1 pays the most the range allows (B − 1) to player 0;
    player 1 says NO, but anyone left with its endowment at price 0 says YES, so the proposal
    is implemented with probability εY/n > 0."""
    assert ctx.endowment is not None and ctx.k is not None
    b = 1 << (ctx.k - 1)
    favourite = np.argmax(ctx.values[idx, 0, :], axis=1)
    alloc = ctx.endowment[idx] & ~favourite[:, None]
    alloc[:, 0] = favourite
    prices = np.zeros_like(alloc)
    prices[:, 1] = b - 1
    prices[:, 0] = -(b - 1)
    return alloc, prices


def naive_proposals(
    ctx: ContextBatch, idx: np.ndarray, mode: str, shift: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``alloc``, ``prices`` ``(len(idx), n)`` of proposal ``mode`` for episodes ``idx``."""
    assert ctx.endowment is not None
    if mode == "status_quo":
        endow = ctx.endowment[idx]
        return endow.copy(), np.zeros_like(endow)
    if mode == "manipulate":
        return manipulative_proposals(ctx, idx)
    alloc, prices = truthful_proposals(ctx, idx)
    if mode == "shift_pair" and ctx.n >= 3:
        prices = shift_prices(shift_prices(prices, 1, shift), 2, -shift)
    return alloc, prices


def naive_menu_entries(
    ctx: ContextBatch, idx: np.ndarray
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The menu's proposals ``(label, alloc, prices)``: truthful, status quo (E, 0), then ±1
    moved onto each player 1..n−1 (the truthful proposal where P_j would leave (−B, B))."""
    assert ctx.endowment is not None and ctx.k is not None
    b = 1 << (ctx.k - 1)
    alloc, base = truthful_proposals(ctx, idx)
    endow = ctx.endowment[idx]
    out = [("truthful", alloc, base), ("status_quo", endow, np.zeros_like(endow))]
    for j in range(1, ctx.n):
        for step in (1, -1):
            cand = shift_prices(base, j, step)
            ok = (np.abs(cand[:, j]) < b)[:, None]
            out.append((f"p{j}{'+' if step > 0 else '-'}1", alloc, np.where(ok, cand, base)))
    return out


# -- the exact face ----------------------------------------------------------------------------
def scaled_report(ctx: Any, num: int, den: int) -> TypeReport:
    """Every true value times ``num/den``, rounded down (the equilibria E_x of footnote 3)."""
    table = scaled_profiles(batch_of_one(ctx), num, den)[0]
    return TypeReport(tuple(tuple(int(v) for v in row) for row in table))


class PredictedHope:
    """Everyone reports the true profile scaled by ``num/den`` (1 = truthful)."""

    def __init__(self, ctx: Any, num: int = 1, den: int = 1) -> None:
        self.report = scaled_report(ctx, num, den)

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        return self.report


def manipulative_proposal(ctx: Any) -> MarketProposal:
    """:func:`manipulative_proposals` of one context."""
    alloc, prices = manipulative_proposals(batch_of_one(ctx), EVERY)
    return as_proposal(alloc[0], prices[0])


class PredictedNaive:
    """Truthful proposal(s) and M6's answer rules, with optional deviations.

    Parameters
    ----------
    proposal : {"truthful", "status_quo", "manipulate", "shift_pair"}
    answers : {"truthful", "yes", "no"}
    shift : int
        The price moved from player 2 to player 1 by ``shift_pair``.
    """

    def __init__(
        self, ctx: Any, proposal: str = "truthful", answers: str = "truthful", shift: int = 1
    ) -> None:
        self.ctx = ctx
        self.mode = proposal
        self.answers = answers
        self.shift = shift

    def proposal(self) -> MarketProposal:
        alloc, prices = naive_proposals(batch_of_one(self.ctx), EVERY, self.mode, self.shift)
        return as_proposal(alloc[0], prices[0])

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase in ("announce", "propose"):
            return self.proposal()
        if self.answers == "yes":
            return True
        if self.answers == "no":
            return False
        return answer_rule(mech, ctx, state, player)


def hope_menu_size(phase: str, spec: EnvSpec) -> int:
    """Reports: the true profile times 1, 3/4, 1/2, 0."""
    return len(REPORT_FACTORS)


def hope_menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Scaled reports; the truthful one first."""
    return [(f"report*{a}/{b}", scaled_report(ctx, a, b)) for a, b in REPORT_FACTORS]


def naive_menu_size(phase: str, spec: EnvSpec) -> int:
    """Proposals: truthful, status quo (E, 0), ±1 moved onto each player 1..n−1; answers:
    NO, YES."""
    return 2 + 2 * (spec.n - 1) if phase in ("announce", "propose") else 2


def naive_menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions; the truthful proposal first."""
    node = mech.node(state)
    if node.phase == "respond":
        return [("NO", False), ("YES", True)]
    entries = naive_menu_entries(batch_of_one(ctx), EVERY)
    return [(label, as_proposal(a[0], p[0])) for label, a, p in entries]


def _spec_of(ctx: Any) -> EnvSpec:
    cap = ctx.value_cap
    return EnvSpec(ctx.n, ctx.m, cap, cap)


# -- the batched face --------------------------------------------------------------------------
def _report_columns(rules: BatchedRules) -> np.ndarray:
    """``(n, K)`` columns of the fields ``report_i_x``."""
    spec, lay = rules.spec, rules.layout
    return np.array(
        [[lay.index[f"report_{i}_{x}"] for x in range(spec.m)] for i in range(spec.n)],
        dtype=np.int64,
    )


def scaled_reports(rules: BatchedRules, ctx: ContextBatch, num: int, den: int) -> np.ndarray:
    """``(B, L)`` :func:`scaled_profiles` in the layout (at the top of the grid where a value
    leaves it)."""
    cols = _report_columns(rules)
    out = np.zeros((ctx.B, len(rules.layout)), dtype=np.int64)
    out[:, cols] = np.minimum(scaled_profiles(ctx, num, den), rules.spec.value_cap)
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


def batched_hope_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hope_menu` over a batch: ``(actions (B, 4, L), valid (B, 4))``; entries are
    invalid where ``player`` does not act or a reported value leaves the grid."""
    acting = state.acting[:, player]
    acts = (
        np.stack([scaled_reports(rules, ctx, a, b) for a, b in REPORT_FACTORS], axis=1)
        * acting[:, None, None]
    )
    cap = rules.spec.value_cap
    on_grid = np.stack(
        [(scaled_profiles(ctx, a, b) <= cap).all(axis=(1, 2)) for a, b in REPORT_FACTORS],
        axis=1,
    )
    return acts, on_grid & acting[:, None]


class BatchedNaive(AnnounceThenAnswer):
    """Truthful proposals and M6's answer rules over a batch, with the exact agent's
    deviations (:class:`PredictedNaive`).

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
        self.answer = answers
        self.shift = shift

    def proposals(self, ctx: ContextBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``alloc``, ``prices`` ``(len(idx), n)`` of the proposal for episodes ``idx``."""
        return naive_proposals(ctx, idx, self.mode, self.shift)

    def announcements(self, rules: BatchedRules, ctx: ContextBatch, idx: np.ndarray) -> np.ndarray:
        # every announcer (Naive-1: all players; Naive-2..4: player 0) makes the proposal
        assert ctx.k is not None
        alloc, prices = self.proposals(ctx, idx)
        vec = rules.encode_proposals(alloc, prices, ctx.k)[0]  # type: ignore[attr-defined]
        return np.broadcast_to(vec[:, None, :], (len(idx), rules.spec.n, vec.shape[-1]))

    def own_answers(self, rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        _, item, price = rules.pending_offers(state)
        return respond_answers(ctx, surpluses(ctx, item, price))


def batched_naive_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`naive_menu` over a batch: ``(actions (B, K, L), valid (B, K))`` with
    ``K = 2 + 2(n−1)``; at ``respond`` entries 0 and 1 are NO and YES, the rest invalid.
    Entries are invalid where ``player`` does not act or where a proposal leaves the price
    grid."""
    n, L = rules.spec.n, len(rules.layout)
    B, K = len(state.phase), 2 + 2 * (n - 1)
    acts = np.zeros((B, K, L), dtype=np.int64)
    valid = np.zeros((B, K), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == 0) & acting)
    if len(idx):
        assert ctx.k is not None
        for e, (_, a, p) in enumerate(naive_menu_entries(ctx, idx)):
            vec, ok = rules.encode_proposals(a, p, ctx.k)  # type: ignore[attr-defined]
            acts[idx, e] = vec
            valid[idx, e] = ok
    if len(rules.phases) > 1:
        ask = np.flatnonzero((state.phase == 1) & acting)
        answer_entries(rules, acts, valid, ask)
    return acts, valid


# -- registration ------------------------------------------------------------------------------
register_agents(
    "hope_for_the_best",
    MechanismAgents(
        predicted=PredictedHope,
        deviations={
            "scaled_half": lambda ctx, rng: PredictedHope(ctx, 1, 2),
            "zero": lambda ctx, rng: PredictedHope(ctx, 0, 1),
            "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
        },
        menu=hope_menu,
        menu_size=hope_menu_size,
    ),
)
register_batched_agents(
    "hope_for_the_best",
    BatchedAgents(
        predicted=BatchedHope(),
        deviations={
            "scaled_half": BatchedHope(1, 2),
            "zero": BatchedHope(0, 1),
            "random": RandomBatched(),
        },
        menu=batched_hope_menu,
    ),
)

for _name in FOILS:
    if _name.startswith("naive_market"):
        register_agents(
            _name,
            MechanismAgents(
                predicted=PredictedNaive,
                deviations={
                    "status_quo": lambda ctx, rng: PredictedNaive(ctx, proposal="status_quo"),
                    "manipulate": lambda ctx, rng: PredictedNaive(ctx, proposal="manipulate"),
                    "shift_pair": lambda ctx, rng: PredictedNaive(ctx, proposal="shift_pair"),
                    "always_yes": lambda ctx, rng: PredictedNaive(ctx, answers="yes"),
                    "always_no": lambda ctx, rng: PredictedNaive(ctx, answers="no"),
                    "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
                },
                menu=naive_menu,
                menu_size=naive_menu_size,
            ),
        )
        register_batched_agents(
            _name,
            BatchedAgents(
                predicted=BatchedNaive(),
                deviations={
                    "status_quo": BatchedNaive(proposal="status_quo"),
                    "manipulate": BatchedNaive(proposal="manipulate"),
                    "shift_pair": BatchedNaive(proposal="shift_pair"),
                    "always_yes": BatchedNaive(answers="yes"),
                    "always_no": BatchedNaive(answers="no"),
                    "random": RandomBatched(),
                },
                menu=batched_naive_menu,
            ),
        )
