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
"""

from __future__ import annotations

from typing import Any

from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.budget_balanced_market import MarketProposal
from mechgym.envs.mechanisms.foils import FOILS, TypeReport

from .base import MechanismAgents, RandomPolicy, register_agents
from .budget_balanced_market import respond_rule, shifted, truthful_proposal

#: report factors of HOPE-FOR-THE-BEST's menu (floor of value × factor)
REPORT_FACTORS: tuple[tuple[int, int], ...] = ((1, 1), (3, 4), (1, 2), (0, 1))


def scaled_report(ctx: Any, num: int, den: int) -> TypeReport:
    """Every true value times ``num/den``, rounded down (the equilibria E_x of footnote 3)."""
    return TypeReport(tuple(tuple(int(v) * num // den for v in row) for row in ctx.types))


class PredictedHope:
    """Everyone reports the true profile scaled by ``num/den`` (1 = truthful)."""

    def __init__(self, ctx: Any, num: int = 1, den: int = 1) -> None:
        self.report = scaled_report(ctx, num, den)

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        return self.report


def manipulative_proposal(ctx: Any) -> MarketProposal:
    """Naive-3's profitable deviation for player 0 (seed 004, "a new problem"): player 0 takes
    its favourite bundle (the others keep what remains of their endowments), charges player 1
    the most the range allows (B − 1) and receives it; everyone else pays 0. Player 1 says NO,
    but anyone left with its endowment at price 0 says YES, so the proposal is implemented
    with probability εY/n > 0."""
    b = 1 << (ctx.k - 1)
    favourite = int(max(range(1 << ctx.m), key=lambda s: (int(ctx.values[0, s]), -s)))
    alloc = [e & ~favourite for e in ctx.endowment]
    alloc[0] = favourite
    prices = [0] * ctx.n
    prices[1] = b - 1
    prices[0] = -(b - 1)
    return MarketProposal(tuple(alloc), tuple(prices))


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
        ctx = self.ctx
        if self.mode == "status_quo":
            return MarketProposal(tuple(ctx.endowment), (0,) * ctx.n)
        if self.mode == "manipulate":
            return manipulative_proposal(ctx)
        base = truthful_proposal(ctx)
        if self.mode == "shift_pair" and ctx.n >= 3:
            return shifted(shifted(base, 1, self.shift), 2, -self.shift)
        return base

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase in ("announce", "propose"):
            return self.proposal()
        if self.answers == "yes":
            return True
        if self.answers == "no":
            return False
        return respond_rule(mech, ctx, state, player)


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
    base = truthful_proposal(ctx)
    b = 1 << (ctx.k - 1)
    out: list[tuple[str, Any]] = [
        ("truthful", base),
        ("status_quo", MarketProposal(tuple(ctx.endowment), (0,) * ctx.n)),
    ]
    for j in range(1, ctx.n):
        for step in (1, -1):
            cand = shifted(base, j, step)
            # keep the menu legal: P_j must stay in (−B, B); fall back to the truthful one
            ok = -b < cand.prices[j] < b
            out.append((f"p{j}{'+' if step > 0 else '-'}1", cand if ok else base))
    return out


def _spec_of(ctx: Any) -> EnvSpec:
    cap = ctx.value_cap
    return EnvSpec(ctx.n, ctx.m, cap, cap)


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

__all__ = [
    "PredictedHope",
    "PredictedNaive",
    "hope_menu",
    "hope_menu_size",
    "manipulative_proposal",
    "naive_menu",
    "naive_menu_size",
    "scaled_report",
]
