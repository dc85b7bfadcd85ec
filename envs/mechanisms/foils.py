"""Foils of M5 and M6: simpler mechanisms whose failures motivate the real ones.

* :class:`HopeForTheBest` (seed 003, footnote 3; ``states`` contexts). One simultaneous move:
  every player reports a type profile ``t`` (an ``n × K`` table). If all reports coincide,
  the state is ``argmax_x Σ_i t_i(x)`` (lowest index on ties) and player ``i`` pays
  ``t_i(ω) − ε``; otherwise the null outcome (⊥, 0). Truthful reporting is an equilibrium,
  but so is every unanimous report ``t ≤ θ`` — e.g. all values divided by ``x`` — which
  every player prefers and which raises only a fraction of the revenue.
* :class:`NaiveMarket1` … :class:`NaiveMarket4` (seed 004, Section 5.1; ``market``
  contexts), the "simple but wrong" versions of M6:

  1. every player announces a budget-balanced outcome simultaneously; unanimity implements
     it, otherwise (E, 0). Failure: *multiple equilibria* — any outcome giving everyone
     utility ≥ 0, announced by all, is an equilibrium.
  2. player 0 proposes (A, P); (E, 0) halts; the others answer YES/NO simultaneously; all YES
     implements (A, P_0 + (n−1)ε, P_i − ε), else (E, 0). Failure: *belief mismatch* — two
     players each overcharged may both say YES, each expecting the other's NO.
  3. as 2, but when someone says NO, a coin c1 (Heads w.p. 1 − εY/n) gives (E, 0) and Tails
     the discounted (A, P). Failure: *player 0's manipulation* — a proposal that pays player 0
     a lot and gives one other player a positive surplus is implemented with probability
     εY/n > 0, which can beat the truthful proposal.
  4. as 3 with a fine: c1 Heads w.p. 1 − ε gives (E, (1, 0, …, 0)); Tails flips c2, Heads w.p.
     Y/(nB) the discounted (A, P), else (E, 0); ε ∈ (0, 1/(3n)). Failure: *collusion* — a
     proposal that shifts price between two players is accepted if they collude and
     refused if they are in fact independent, so welfare depends on player 0's beliefs.

Proposals (Naive-1..4) are :class:`~mechgym.envs.mechanisms.budget_balanced_market.MarketProposal`.
The paper asks for budget-balanced integer prices in (−B, B), yet its own truthful equilibrium
(footnote 18: P_i = θ_i(A_i) − θ_i(E_i)) needs prices up to 2B − 2 in magnitude when values lie
in (−B, B). We therefore accept prices in (−2^k, 2^k) = (−2B, 2B), the range M6 itself uses in
step a. The array encoding writes P_j (j ≥ 1) on the grid −(price_cap−1)..(price_cap−1)
restricted to that range and sets P_0 = −Σ_{j≥1} P_j, so P_0 is not bounded (a joint
constraint no MultiDiscrete mask can express); structured proposals are checked the same way
(:class:`MalformedAnnouncementError` otherwise: there is no rule of the mechanism for them).

Array layouts: HOPE-FOR-THE-BEST: ``report_i_s`` (``value_cap + 1``) for every player ``i``
and state ``s``. Naive-1: ``owner_g`` (``n + 1``: 0 = destroyed, ``j + 1`` = player ``j``) and
``price_j`` for ``j = 1..n−1`` (value ``v`` means P_j = v − (B − 1)); Naive-2..4 add ``answer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import check_amount, offer_features
from mechgym.envs.engine.batched import (
    TERMINAL,
    AllAtOnce,
    BatchOutcome,
    BatchState,
    check_context,
    register_batched,
)
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Examples,
    Mechanism,
    Node,
    PendingOffer,
    Terminal,
    as_fraction,
    asked_at,
)
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.budget_balanced_market import MarketProposal, check_proposal
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.model.market import market_msw
from mechgym.envs.model.outcome import Outcome

__all__ = [
    "FOILS",
    "HopeForTheBest",
    "NaiveMarket1",
    "NaiveMarket2",
    "NaiveMarket3",
    "NaiveMarket4",
    "TypeReport",
]

ZERO = Fraction(0)


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def _check_eps(eps: Any, hi: Fraction, name: str = "eps") -> Fraction:
    e = as_fraction(eps, name)
    if not 0 < e < hi:
        raise ParameterError(name, f"must lie in (0, {hi}), got {e}")
    return e


# -- HOPE-FOR-THE-BEST ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeReport:
    """A reported type profile: ``table[i][s]`` = the reported θ_i(s) (non-negative ints)."""

    table: tuple[tuple[int, ...], ...]


class HopeForTheBest(BatchOfOne):
    """HOPE-FOR-THE-BEST (seed 003, footnote 3): agreement on a reported profile ``t`` gives
    (argmax_x Σ t_i(x), t_i(ω) − ε); disagreement gives (⊥, 0).

    Written once (:mod:`mechgym.envs.engine.episode`): :class:`HopeForTheBestRules` is the rule
    over a batch; this exact face runs it on a batch of one with exact money.

    Parameters
    ----------
    eps : number
        The discount ε ∈ (0, 1); default 1/10.
    """

    name = "hope_for_the_best"
    title = "HOPE-FOR-THE-BEST (seed 003, footnote 3; foil of M5)"
    phases = ("report",)
    simultaneous_only = True
    context_kind = "states"
    mask_depends_on_state = False

    parameter_examples: ClassVar[Examples] = {"eps": ("1/3", "1/1000")}

    def __init__(self, eps: Any = Fraction(1, 10)) -> None:
        self.eps = _check_eps(eps, Fraction(1))

    def params(self) -> dict[str, Any]:
        return {"eps": str(self.eps)}

    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        return {"MSW": ctx.msw(), "best_state": ctx.best_state()}

    def validate(self, s: Episode, player: int, action: Any) -> TypeReport:
        agent, phase = f"player_{player}", "report"
        n, num_states = s.ctx.n, s.ctx.num_states
        if not isinstance(action, TypeReport):
            raise MalformedAnnouncementError(
                agent, phase, f"expected a TypeReport(table), got {type(action).__name__}"
            )
        rows = action.table
        if isinstance(rows, str) or not isinstance(rows, Sequence | np.ndarray) or len(rows) != n:
            raise MalformedAnnouncementError(
                agent, phase, f"a report needs one row per player ({n})"
            )
        out = []
        for i, row in enumerate(rows):
            if (
                isinstance(row, str)
                or not isinstance(row, Sequence | np.ndarray)
                or len(row) != num_states
            ):
                raise MalformedAnnouncementError(
                    agent, phase, f"row {i} needs one value per state ({num_states})"
                )
            vals = []
            for x, v in enumerate(row):
                if not _is_int(v) or int(v) < 0:
                    raise MalformedAnnouncementError(
                        agent,
                        phase,
                        f"reported value of player {i} for state {x} must be a non-negative "
                        f"integer, got {v!r}",
                    )
                vals.append(check_amount(v, agent, phase, f"value of player {i} for state {x}"))
            out.append(tuple(vals))
        return TypeReport(tuple(out))

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        tables = [actions[i].table for i in range(s.ctx.n)]
        return {"reports": np.array([tables], dtype=np.int64)}

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout(
            [(f"report_{i}_{x}", spec.value_cap + 1) for i in range(spec.n) for x in range(spec.m)]
        )

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> TypeReport:
        return TypeReport(
            tuple(
                tuple(int(vec[layout.index[f"report_{i}_{x}"]]) for x in range(spec.m))
                for i in range(spec.n)
            )
        )

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        rep = self.validate(s, player, action)
        vec = layout.zeros()
        for i, row in enumerate(rep.table):
            for x, v in enumerate(row):
                if v > spec.value_cap:
                    raise OutOfSpaceError(
                        f"player_{player}",
                        "report",
                        f"value {v} is beyond the grid 0..{spec.value_cap}",
                    )
                vec[layout.index[f"report_{i}_{x}"]] = v
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return spec.m + 2

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        return (
            f"report {[list(r) for r in action.table]}"
            if isinstance(action, TypeReport)
            else repr(action)
        )


REPORT = 0


@register_batched
class HopeForTheBestRules(MoveRules):
    """The rules of :class:`HopeForTheBest` over a batch (``states`` contexts): one
    simultaneous report of an ``n × K`` table; unanimity gives (argmax_x Σ_i t_i(x),
    t_i(ω) − ε), anything else (⊥, 0).

    ``state.data``: ``reported`` ``(B,)``; ``reports`` ``(B, n, n, K)`` (reporter, player,
    state).
    """

    mechanism = HopeForTheBest
    implements = frozenset({"eps"})
    mech: HopeForTheBest

    def __init__(self, mech: HopeForTheBest, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        self.eps = money.constant(mech.eps)
        self.reporting = AllAtOnce(self.layout, spec.n, "report")
        # field report_i_x sits at column i·K + x (i-major), see HopeForTheBest.layout
        self.cols = np.array(
            [[self.layout.index[f"report_{i}_{x}"] for x in range(spec.m)] for i in range(spec.n)]
        )

    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        if not self.money.exact:  # the exact face sizes its rules from the context itself
            check_context(self, ctx)
        B, n, k = ctx.B, ctx.n, ctx.m
        return BatchState(
            phase=np.full(B, REPORT, dtype=np.int64),
            acting=np.ones((B, n), dtype=bool),
            data={
                "reported": np.zeros(B, dtype=bool),
                "reports": np.zeros((B, n, n, k), dtype=np.int64),
            },
        )

    def masks(self, state: BatchState) -> np.ndarray:
        return self.reporting.masks(state.acting)

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        actions = self.reporting.checked(actions, state.acting)
        return {"reports": actions[:, :, self.cols]}

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        live = state.phase == REPORT
        data = dict(state.data)
        data["reports"] = np.where(live[:, None, None, None], moves["reports"], data["reports"])
        data["reported"] = data["reported"] | live
        return BatchState(
            phase=np.where(live, TERMINAL, state.phase),
            acting=np.zeros_like(state.acting),
            data=data,
            chance=list(state.chance),
        )

    def _chosen(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Agreement ``(B,)``, the chosen state ``(B,)`` and the reported table ``(B, n, K)``."""
        reports = state.data["reports"]
        table = reports[:, 0]
        agree = (reports == table[:, None]).all(axis=(1, 2, 3)) & state.data["reported"]
        w = np.argmax(table.sum(axis=1), axis=1)  # lowest index on ties
        return agree, w, table

    def outcome(self, state: BatchState) -> BatchOutcome:
        agree, w, table = self._chosen(state)
        B = table.shape[0]
        chosen = self.money.array(table[np.arange(B), :, w]) - self.eps
        prices = np.where(agree[:, None], chosen, self.money.zeros(chosen.shape))
        return BatchOutcome.of_state(np.where(agree, w, -1).astype(np.int64), prices)

    def outcome_rule(self, state: BatchState) -> str:
        return "agree" if self._chosen(state)[0][0] else "disagree"

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        """[chosen state one-hot | agreement | disagreement] once the reports are in."""
        k = self.spec.m
        B = state.phase.shape[0]
        out = np.zeros((B, k + 2), dtype=np.float32)
        agree, w, _ = self._chosen(state)
        done = state.data["reported"]
        out[np.flatnonzero(agree), w[agree]] = 1.0
        out[:, k] = agree
        out[:, k + 1] = done & ~agree
        return out

    def public_features_all(self, state: BatchState) -> np.ndarray:
        # nothing in the public view depends on who looks
        one = self.public_features(state, 0)
        return np.broadcast_to(one[:, None, :], (one.shape[0], self.spec.n, one.shape[1]))


# -- Naive markets -----------------------------------------------------------------------


def check_foil_proposal(
    action: Any, n: int, m: int, k: int, agent: str, phase: str
) -> MarketProposal:
    """A well-formed budget-balanced proposal with integer P_j ∈ (−2^k, 2^k) for j ≥ 1."""
    prop = check_proposal(action, n, m, agent, phase)
    bound = 1 << k
    for j, p in enumerate(prop.prices):
        if not isinstance(p, int):
            raise MalformedAnnouncementError(
                agent, phase, f"price of player {j} must be an integer, got {p}"
            )
        if j >= 1 and not -bound < p < bound:
            raise MalformedAnnouncementError(
                agent,
                phase,
                f"price of player {j} ({p}) must lie in (-2^k, 2^k) = ({-bound}, {bound})",
            )
    if sum(prop.prices) != 0:
        raise MalformedAnnouncementError(
            agent, phase, f"prices must sum to 0 (budget balance), got {sum(prop.prices)}"
        )
    return prop


def _market_fields(spec: EnvSpec) -> list[tuple[str, int]]:
    b = spec.price_cap
    return [
        *((f"owner_{g}", spec.n + 1) for g in range(spec.m)),
        *((f"price_{j}", 2 * b - 1) for j in range(1, spec.n)),
    ]


def _market_mask(spec: EnvSpec, k: int) -> dict[str, Any]:
    """Owners free; P_j on the grid −(price_cap−1)..(price_cap−1), restricted to (−2^k, 2^k)."""
    shift = spec.price_cap - 1
    bound = 1 << k
    prices = np.array(
        [abs(v - shift) < bound for v in range(2 * spec.price_cap - 1)], dtype=np.int8
    )
    if not prices.any():  # pragma: no cover - price_cap >= 1 always allows 0
        prices[shift] = 1
    fields: dict[str, Any] = {f"owner_{g}": True for g in range(spec.m)}
    fields.update({f"price_{j}": prices for j in range(1, spec.n)})
    return fields


def _decode_market(vec: np.ndarray, spec: EnvSpec, layout: ActionLayout) -> MarketProposal:
    alloc = [0] * spec.n
    for g in range(spec.m):
        o = int(vec[layout.index[f"owner_{g}"]])
        if o:
            alloc[o - 1] |= 1 << g
    shift = spec.price_cap - 1
    prices = [int(vec[layout.index[f"price_{j}"]]) - shift for j in range(1, spec.n)]
    return MarketProposal(tuple(alloc), (-sum(prices), *prices))


def _encode_market(
    prop: MarketProposal,
    vec: np.ndarray,
    spec: EnvSpec,
    layout: ActionLayout,
    agent: str,
    phase: str,
) -> None:
    for j, b in enumerate(prop.alloc):
        for g in range(spec.m):
            if b >> g & 1:
                vec[layout.index[f"owner_{g}"]] = j + 1
    shift = spec.price_cap - 1
    for j in range(1, spec.n):
        v = prop.prices[j] + shift
        if not 0 <= v < 2 * spec.price_cap - 1:
            raise OutOfSpaceError(
                agent,
                phase,
                f"price {prop.prices[j]} for player {j} is beyond the grid {-shift}..{shift}",
            )
        vec[layout.index[f"price_{j}"]] = v


def _destroyed(m: int, alloc: Sequence[int]) -> int:
    used = 0
    for b in alloc:
        used |= b
    return ((1 << m) - 1) & ~used


@dataclass(frozen=True)
class NaiveState:
    """Public state of the Naive markets (Naive-1 uses ``announcements``)."""

    n: int
    m: int
    k: int
    endowment: tuple[int, ...]
    eps: Fraction
    announcements: tuple[MarketProposal, ...] | None = None
    proposal: MarketProposal | None = None
    answers: tuple[bool, ...] | None = None
    c1: int | None = None
    c2: int | None = None

    @property
    def B(self) -> int:
        return 1 << (self.k - 1)

    @property
    def yes_count(self) -> int:
        return sum(self.answers)


class _MarketFoil(Mechanism):
    context_kind = "market"
    mask_depends_on_state = True
    parameter_examples: ClassVar[Examples] = {"eps": ("1/3", "1/1000")}

    def __init__(self, eps: Any = Fraction(1, 10)) -> None:
        self.eps = _check_eps(eps, Fraction(1))

    def params(self) -> dict[str, Any]:
        return {"eps": str(self.eps)}

    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        best, _ = market_msw(ctx)
        return {"MSW": best, "SW_E": ctx.endowment_welfare}

    def eps_for(self, n: int) -> Fraction:
        """ε for ``n`` players."""
        return self.eps

    def start(self, ctx: Any) -> NaiveState:
        return NaiveState(ctx.n, ctx.m, ctx.k, tuple(ctx.endowment), self.eps_for(ctx.n))

    def _endowment_outcome(
        self, s: NaiveState, rule: str, prices: Sequence[Fraction] | None = None
    ) -> Outcome:
        return Outcome(
            s.endowment, tuple(prices) if prices is not None else (ZERO,) * s.n, rule=rule
        )

    def _discounted(self, s: NaiveState, rule: str) -> Outcome:
        """(A, (P_0 + (n−1)ε, P_i − ε))."""
        p = s.proposal
        eps, n = s.eps, s.n
        prices = tuple(
            Fraction(x) + ((n - 1) * eps if i == 0 else -eps) for i, x in enumerate(p.prices)
        )
        return Outcome(p.alloc, prices, destroyed=_destroyed(s.m, p.alloc), rule=rule)


class NaiveMarket1(_MarketFoil):
    """Naive-1 (seed 004, Sec. 5.1): unanimous budget-balanced announcements are implemented,
    anything else gives (E, 0). Fails by multiple equilibria."""

    name = "naive_market_1"
    title = "Naive-1 market (seed 004, Sec. 5.1; foil of M6)"
    phases = ("announce",)
    simultaneous_only = True

    def node(self, s: NaiveState) -> Node:
        if s.announcements is None:
            return Decision(tuple(range(s.n)), "announce")
        first = s.announcements[0]
        if any(a != first for a in s.announcements[1:]):
            return Terminal(self._endowment_outcome(s, "disagree"))
        return Terminal(
            Outcome(
                first.alloc,
                tuple(Fraction(p) for p in first.prices),
                destroyed=_destroyed(s.m, first.alloc),
                rule="agree",
            )
        )

    def validate(self, s: NaiveState, player: int, action: Any) -> MarketProposal:
        return check_foil_proposal(action, s.n, s.m, s.k, f"player_{player}", "announce")

    def resolve(self, s: NaiveState, actions: Mapping[int, Any]) -> NaiveState:
        return replace(s, announcements=tuple(actions[i] for i in range(s.n)))

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout(_market_fields(spec))

    def action_mask(
        self, s: NaiveState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        return layout.mask(_market_mask(spec, s.k))

    def decode(
        self, s: NaiveState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        return _decode_market(vec, spec, layout)

    def encode(
        self, s: NaiveState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        _encode_market(
            self.validate(s, player, action), vec, spec, layout, f"player_{player}", "announce"
        )
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return spec.m + spec.n + 1

    def public_features(self, s: NaiveState, player: int, spec: EnvSpec) -> np.ndarray:
        """[the outcome's owners and prices | agreement flag] once announced."""
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        if s.announcements is None:
            return out
        o = self.node(s).outcome
        agree = o.rule == "agree"
        out[: spec.m + spec.n] = offer_features(s.announcements[0] if agree else None, spec)
        out[-1] = 1.0 if agree else -1.0
        return out

    def describe_action(self, s: NaiveState, player: int, action: Any) -> str:
        return (
            f"announce alloc={list(action.alloc)} prices={list(action.prices)}"
            if isinstance(action, MarketProposal)
            else repr(action)
        )


class _ProposeAndAnswer(_MarketFoil):
    """Naive-2..4: player 0 proposes, the others answer YES/NO simultaneously."""

    phases = ("propose", "respond")
    simultaneous_only = True

    def node(self, s: NaiveState) -> Node:
        if s.proposal is None:
            return Decision((0,), "propose")
        p = s.proposal
        if p.alloc == s.endowment and all(x == 0 for x in p.prices):
            return Terminal(self._endowment_outcome(s, "endowment"))
        if s.answers is None:
            return Decision(tuple(range(1, s.n)), "respond")
        if s.yes_count == s.n - 1:
            return Terminal(self._discounted(s, "all-yes"))
        return self._after_no(s)

    def _after_no(self, s: NaiveState) -> Node:
        raise NotImplementedError

    def pending_offer(self, s: NaiveState, player: int) -> PendingOffer | None:
        """At ``respond``: the proposal's A*_i in place of E_i at P*_i."""
        if not asked_at(self, s, player, "respond"):
            return None
        return PendingOffer(int(s.proposal.alloc[player]), int(s.proposal.prices[player]))

    def validate(self, s: NaiveState, player: int, action: Any) -> Any:
        agent = f"player_{player}"
        if s.proposal is None:
            return check_foil_proposal(action, s.n, s.m, s.k, agent, "propose")
        if not isinstance(action, bool | np.bool_):
            raise MalformedAnnouncementError(
                agent, "respond", f"answer YES/NO with True/False, got {action!r}"
            )
        return bool(action)

    def resolve(self, s: NaiveState, actions: Mapping[int, Any]) -> NaiveState:
        if s.proposal is None:
            return replace(s, proposal=actions[0])
        return replace(s, answers=tuple(actions[i] for i in range(1, s.n)))

    def chance(self, s: NaiveState, index: int) -> NaiveState:
        if s.c1 is None:
            return replace(s, c1=index)
        return replace(s, c2=index)

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([("answer", 2), *_market_fields(spec)])

    def action_mask(
        self, s: NaiveState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        if s.proposal is None:
            return layout.mask(_market_mask(spec, s.k))
        return layout.mask({"answer": True})

    def decode(
        self, s: NaiveState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        if s.proposal is None:
            return _decode_market(vec, spec, layout)
        return bool(vec[layout.index["answer"]])

    def encode(
        self, s: NaiveState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        if s.proposal is None:
            _encode_market(
                self.validate(s, player, action), vec, spec, layout, f"player_{player}", "propose"
            )
        else:
            vec[layout.index["answer"]] = int(bool(action))
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 * spec.m + 2 * spec.n + 5

    def public_features(self, s: NaiveState, player: int, spec: EnvSpec) -> np.ndarray:
        """[proposal owners and prices | answers (+1/−1) | c1 (2) | c2 (2) | own bundle bits |
        own price]."""
        n, m = spec.n, spec.m
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        if s.proposal is None:
            return out
        out[: m + n] = offer_features(s.proposal, spec)
        pos = m + n
        if s.answers is not None:
            for i, yes in enumerate(s.answers, start=1):
                out[pos + i] = 1.0 if yes else -1.0
        pos += n
        if s.c1 is not None:
            out[pos + s.c1] = 1.0
        if s.c2 is not None:
            out[pos + 2 + s.c2] = 1.0
        pos += 4
        own = s.proposal.alloc[player]
        out[pos : pos + m] = [(own >> g) & 1 for g in range(m)]
        out[pos + m] = float(s.proposal.prices[player])
        return out

    def describe_action(self, s: NaiveState, player: int, action: Any) -> str:
        if isinstance(action, MarketProposal):
            return f"propose alloc={list(action.alloc)} prices={list(action.prices)}"
        return "YES" if action else "NO"


class NaiveMarket2(_ProposeAndAnswer):
    """Naive-2: all YES implements the discounted proposal, any NO gives (E, 0). Fails by
    belief mismatch."""

    name = "naive_market_2"
    title = "Naive-2 market (seed 004, Sec. 5.1; foil of M6)"

    def _after_no(self, s: NaiveState) -> Node:
        return Terminal(self._endowment_outcome(s, "some-no"))


class NaiveMarket3(_ProposeAndAnswer):
    """Naive-3: after a NO, coin c1 (Heads w.p. 1 − εY/n) gives (E, 0), Tails the discounted
    proposal. Fails by player 0's manipulation."""

    name = "naive_market_3"
    title = "Naive-3 market (seed 004, Sec. 5.1; foil of M6)"

    def _after_no(self, s: NaiveState) -> Node:
        if s.c1 is None:
            p = s.eps * s.yes_count / s.n
            return Chance("c1", ("heads", "tails"), (1 - p, p))
        if s.c1 == 0:
            return Terminal(self._endowment_outcome(s, "c1-heads"))
        return Terminal(self._discounted(s, "c1-tails"))


class NaiveMarket4(_ProposeAndAnswer):
    """Naive-4: after a NO, c1 Heads (1 − ε) fines player 0 by 1 at E; Tails flips c2 (Heads
    w.p. Y/(nB)) between the discounted proposal and (E, 0); ε ∈ (0, 1/(3n)). Fails under
    collusion that player 0 misjudges."""

    name = "naive_market_4"
    title = "Naive-4 market (seed 004, Sec. 5.1; foil of M6)"

    parameter_examples: ClassVar[Examples] = {"eps": ("1/20",)}

    def __init__(self, eps: Any = None) -> None:
        self.eps = None if eps is None else _check_eps(eps, Fraction(1, 6))

    def params(self) -> dict[str, Any]:
        return {"eps": "1/(4n)" if self.eps is None else str(self.eps)}

    def eps_for(self, n: int) -> Fraction:
        """ε ∈ (0, 1/(3n)); default 1/(4n)."""
        eps = Fraction(1, 4 * n) if self.eps is None else self.eps
        if not eps < Fraction(1, 3 * n):
            raise ParameterError(
                "eps", f"must lie in (0, 1/(3n)) = (0, 1/{3 * n}) for n = {n}, got {eps}"
            )
        return eps

    def _after_no(self, s: NaiveState) -> Node:
        eps = s.eps
        if s.c1 is None:
            return Chance("c1", ("heads", "tails"), (1 - eps, eps))
        if s.c1 == 0:
            return Terminal(
                self._endowment_outcome(s, "c1-heads", (Fraction(1), *((ZERO,) * (s.n - 1))))
            )
        if s.c2 is None:
            p = Fraction(s.yes_count, s.n * s.B)
            return Chance("c2", ("heads", "tails"), (p, 1 - p))
        if s.c2 == 0:
            return Terminal(self._discounted(s, "c2-heads"))
        return Terminal(self._endowment_outcome(s, "c2-tails"))


FOILS: dict[str, type[Mechanism]] = {
    cls.name: cls
    for cls in (HopeForTheBest, NaiveMarket1, NaiveMarket2, NaiveMarket3, NaiveMarket4)
}
"""Foil name -> mechanism class."""


for _name in ("naive_market_1", "naive_market_2", "naive_market_3", "naive_market_4"):
    register_factored(_name, prices_need_goods=False)  # every transfer stands
