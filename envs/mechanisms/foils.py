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
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import check_amount
from mechgym.envs.engine.batched import (
    TERMINAL,
    AllAtOnce,
    BatchOutcome,
    BatchState,
    check_context,
    draw,
    register_batched,
)
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import (
    Chance,
    EnvSpec,
    Examples,
    Mechanism,
    as_fraction,
)
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.budget_balanced_market import MarketProposal, check_proposal
from mechgym.envs.mechanisms.market_rules import (
    FieldRanges,
    bundle_bits,
    check_batch,
    checked,
    decode_owners,
    destroyed_of,
    encode_owners,
    finish,
    fresh_outcome,
    owners_of,
    put_onehot,
    read_outcome,
    row_all,
    row_sum,
)
from mechgym.envs.mechanisms.offer_rules import PhaseMasks
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.model.market import market_msw

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

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        return self.reporting.rows(state.acting)

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


PROPOSE, RESPOND = 0, 1


class _MarketFoil(BatchOfOne):
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


class NaiveMarket1(_MarketFoil):
    """Naive-1 (seed 004, Sec. 5.1): unanimous budget-balanced announcements are implemented,
    anything else gives (E, 0). Fails by multiple equilibria."""

    name = "naive_market_1"
    title = "Naive-1 market (seed 004, Sec. 5.1; foil of M6)"
    phases = ("announce",)
    simultaneous_only = True

    def validate(self, s: Episode, player: int, action: Any) -> MarketProposal:
        c = s.ctx
        return check_foil_proposal(action, c.n, c.m, c.k, f"player_{player}", "announce")

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        n = s.ctx.n
        alloc = np.array([[actions[i].alloc for i in range(n)]], dtype=np.int64)
        prices = np.array([[actions[i].prices for i in range(n)]], dtype=np.int64)
        return {"alloc": alloc, "prices": prices}

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout(_market_fields(spec))

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        return _decode_market(vec, spec, layout)

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        _encode_market(
            self.validate(s, player, action), vec, spec, layout, f"player_{player}", "announce"
        )
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return spec.m + spec.n + 1

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        return (
            f"announce alloc={list(action.alloc)} prices={list(action.prices)}"
            if isinstance(action, MarketProposal)
            else repr(action)
        )


class _ProposeAndAnswer(_MarketFoil):
    """Naive-2..4: player 0 proposes, the others answer YES/NO simultaneously."""

    phases = ("propose", "respond")
    simultaneous_only = True

    def validate(self, s: Episode, player: int, action: Any) -> Any:
        agent, c = f"player_{player}", s.ctx
        if s.state.phase[0] == PROPOSE:
            return check_foil_proposal(action, c.n, c.m, c.k, agent, "propose")
        if not isinstance(action, bool | np.bool_):
            raise MalformedAnnouncementError(
                agent, "respond", f"answer YES/NO with True/False, got {action!r}"
            )
        return bool(action)

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        n = s.ctx.n
        moves: Moves = {
            "alloc": np.zeros((1, n), dtype=np.int64),
            "prices": np.zeros((1, n), dtype=np.int64),
            "yes": np.zeros((1, n), dtype=bool),
        }
        for i, a in actions.items():
            if isinstance(a, MarketProposal):
                moves["alloc"][0], moves["prices"][0] = a.alloc, a.prices
            else:
                moves["yes"][0, i] = bool(a)
        return moves

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([("answer", 2), *_market_fields(spec)])

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        if s.state.phase[0] == PROPOSE:
            return _decode_market(vec, spec, layout)
        return bool(vec[layout.index["answer"]])

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        if s.state.phase[0] == PROPOSE:
            _encode_market(
                self.validate(s, player, action), vec, spec, layout, f"player_{player}", "propose"
            )
        else:
            vec[layout.index["answer"]] = int(bool(action))
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 * spec.m + 2 * spec.n + 5

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        if isinstance(action, MarketProposal):
            return f"propose alloc={list(action.alloc)} prices={list(action.prices)}"
        return "YES" if action else "NO"


class NaiveMarket2(_ProposeAndAnswer):
    """Naive-2: all YES implements the discounted proposal, any NO gives (E, 0). Fails by
    belief mismatch."""

    name = "naive_market_2"
    title = "Naive-2 market (seed 004, Sec. 5.1; foil of M6)"


class NaiveMarket3(_ProposeAndAnswer):
    """Naive-3: after a NO, coin c1 (Heads w.p. 1 − εY/n) gives (E, 0), Tails the discounted
    proposal. Fails by player 0's manipulation."""

    name = "naive_market_3"
    title = "Naive-3 market (seed 004, Sec. 5.1; foil of M6)"


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


FOILS: dict[str, type[Mechanism]] = {
    cls.name: cls
    for cls in (HopeForTheBest, NaiveMarket1, NaiveMarket2, NaiveMarket3, NaiveMarket4)
}
"""Foil name -> mechanism class."""


# names and labels of the coins of Naive-3 and Naive-4; their probabilities depend on the
# episode (Y, k), so the rules pass them per episode and these nodes only name them
C1 = Chance("c1", ("heads", "tails"), (Fraction(1), Fraction(0)))
C2 = Chance("c2", ("heads", "tails"), (Fraction(1), Fraction(0)))


# -- the Naive markets' rules ----------------------------------------------------------------
#
# ``state.data`` of the Naive markets: ``k`` ``(B,)`` (the batch's bits, one value: the price
# mask depends on it); ``alloc``, ``prices`` ``(B, n)`` int64 (Naive-1: player 0's
# announcement; Naive-2..4: the proposal, P_0 = −Σ_{j≥1} P_j); ``proposed`` ``(B,)`` bool;
# Naive-1: ``agree`` ``(B,)`` int8 (+1 unanimous, −1 not, 0 before); Naive-2..4: ``answers``
# ``(B, n)`` int8 (+1 YES, −1 NO, 0 not given; column 0 unused), ``c1``, ``c2`` ``(B,)`` int64
# (−1 until drawn); ``out_*``: the terminal outcome.


class _NaiveRules(MoveRules):
    """What the Naive markets' rules share: the proposal codec, price masks per ``k`` and
    the constants in the rules' money."""

    def __init__(self, mech: _MarketFoil, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        self.eps = mech.eps_for(spec.n)  # validates ε for this n
        self.shift = spec.price_cap - 1
        self.i_price = self.layout.index["price_1"] if spec.n > 1 else 0
        self._maskers: dict[int, PhaseMasks] = {}
        self._ranges: dict[int, FieldRanges] = {}

    def _phase_rows(self, k: int) -> list[np.ndarray]:
        """Per phase, ``(n, mask_size)`` masks of the acting players."""
        raise NotImplementedError

    def masker(self, k: int) -> PhaseMasks:
        """The mask tables for ``k`` bits (the price grid is cut to (−2^k, 2^k))."""
        mk = self._maskers.get(k)
        if mk is None:
            rows = self._phase_rows(k)
            mk = self._maskers[k] = PhaseMasks(rows, self.layout.mask({}))
            self._ranges[k] = FieldRanges(self.layout, rows)
        return mk

    def ranges(self, k: int) -> FieldRanges:
        """The legal ranges of every field for ``k`` bits (see :class:`FieldRanges`)."""
        self.masker(k)
        return self._ranges[k]

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        ks = state.data["k"]
        k = int(ks[0]) if ks.shape[0] else 0
        return self.masker(k).rows(state.phase, state.acting)

    def proposal_rows(self, k: int) -> np.ndarray:
        """``(n, mask_size)``: the mask of a proposal (owners free, prices cut to k)."""
        row = self.layout.mask(_market_mask(self.spec, k))
        return np.broadcast_to(row, (self.spec.n, self.layout.mask_size))

    # -- codec -------------------------------------------------------------------------------
    def decode_proposals(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``alloc``, ``prices`` ``(..., n)`` int64 of proposals ``(..., L)``, as the exact
        decoder (P_j = v − (price_cap − 1), P_0 = −Σ_{j≥1} P_j)."""
        n = self.spec.n
        alloc = decode_owners(vecs, self.layout, n, self.spec.m)
        pj = vecs[..., self.i_price : self.i_price + n - 1] - self.shift
        return alloc, np.concatenate([-row_sum(pj)[..., None], pj], axis=-1)

    def encode_proposals(
        self, alloc: np.ndarray, prices: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``(..., L)`` of proposals ``alloc``, ``prices`` ``(..., n)`` int64 and
        whether each is expressible (budget balanced, P_j ∈ (−2^k, 2^k) and on the grid
        −(price_cap−1)..(price_cap−1) for j ≥ 1), as the exact ``encode``; rows that are not
        hold clipped prices."""
        n = self.spec.n
        out = np.zeros((*alloc.shape[:-1], len(self.layout)), dtype=np.int64)
        encode_owners(alloc, out, self.layout, self.spec.m)
        pj = prices[..., 1:]
        ok = (prices.sum(axis=-1) == 0) & (np.abs(pj) < (1 << k)).all(axis=-1)
        ok &= (np.abs(pj) <= self.shift).all(axis=-1)
        out[..., self.i_price : self.i_price + n - 1] = np.clip(pj, -self.shift, self.shift) + (
            self.shift
        )
        return out, ok

    def start(self, ctx: ContextBatch) -> dict[str, np.ndarray]:
        """Fresh data arrays (after checking the batch's kind and sizes)."""
        check_batch(self, ctx)
        B, n = ctx.B, self.spec.n
        return {
            "k": np.full(B, int(ctx.k), dtype=np.int64),
            "alloc": np.zeros((B, n), dtype=np.int64),
            "prices": np.zeros((B, n), dtype=np.int64),
            "proposed": np.zeros(B, dtype=bool),
            **fresh_outcome(B, n, self.money),
        }

    def discounted(self, prices: np.ndarray) -> np.ndarray:
        """(P_0 + (n−1)ε, P_i − ε) in the rules' money."""
        n, eps = self.spec.n, self.eps
        adj = self.money.array(np.array([(n - 1) * eps] + [-eps] * (n - 1), dtype=object))
        return self.money.array(prices) + adj

    def zeros(self, B: int) -> np.ndarray:
        """``(B, n)`` zero prices."""
        return self.money.zeros((B, self.spec.n))

    def probs(self, rows: list[tuple[Fraction, Fraction]]) -> np.ndarray:
        """Chance rows as floats for drawing, exact on the exact path."""
        if self.money.exact:
            return np.array(rows, dtype=object)
        return np.array([[float(p) for p in row] for row in rows])

    def outcome(self, state: BatchState) -> BatchOutcome:
        return read_outcome(state.data)


@register_batched
class NaiveMarket1Rules(_NaiveRules):
    """The rules of :class:`NaiveMarket1`: one simultaneous announcement (phase 0);
    unanimity implements it, else (E, 0)."""

    mechanism = NaiveMarket1
    implements = frozenset({"eps"})

    def _phase_rows(self, k: int) -> list[np.ndarray]:
        return [self.proposal_rows(k)]

    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        B, n = ctx.B, self.spec.n
        data = self.start(ctx)
        data["agree"] = np.zeros(B, dtype=np.int8)
        return BatchState(np.zeros(B, dtype=np.int64), np.ones((B, n), dtype=bool), data, [])

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        actions = checked(self, state, actions, self.ranges(int(state.data["k"][0])))
        alloc, prices = self.decode_proposals(actions)
        return {"alloc": alloc, "prices": prices}

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        live = state.phase == 0
        if not live.any():
            return state
        d = dict(state.data)
        every_alloc, every_prices = moves["alloc"], moves["prices"]  # (B, announcer, player)
        agree = live & (
            (every_alloc == every_alloc[:, :1]).all(axis=(1, 2))
            & (every_prices == every_prices[:, :1]).all(axis=(1, 2))
        )
        alloc, prices = every_alloc[:, 0], every_prices[:, 0]
        d["alloc"] = np.where(live[:, None], alloc, d["alloc"])
        d["prices"] = np.where(live[:, None], prices, d["prices"])
        d["proposed"] = d["proposed"] | live
        d["agree"] = np.where(live, np.where(agree, 1, -1), d["agree"]).astype(np.int8)
        money = self.money.array(prices)
        finish(d, agree, alloc, money, destroyed_of(alloc, self.spec.m))
        finish(d, live & ~agree, ctx.endowment, self.zeros(ctx.B), 0)
        phase = np.where(live, TERMINAL, state.phase)
        return BatchState(phase, state.acting & ~live[:, None], d, list(state.chance))

    def outcome_rule(self, state: BatchState) -> str:
        return "agree" if state.data["agree"][0] == 1 else "disagree"

    def public_features_all(self, state: BatchState) -> np.ndarray:
        # nothing in the public view depends on who looks
        one = self.public_features(state, 0)
        return np.broadcast_to(one[:, None, :], (one.shape[0], self.spec.n, one.shape[1]))

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        """[the outcome's owners and prices | agreement flag] once announced."""
        n, m = self.spec.n, self.spec.m
        d = state.data
        out = np.zeros((d["alloc"].shape[0], m + n + 1), dtype=np.float32)
        if not d["proposed"].any():
            return out
        agree = d["agree"] == 1
        out[:, :m] = np.where(agree[:, None], owners_of(d["alloc"], m), 0)
        out[:, m : m + n] = np.where(agree[:, None], d["prices"], 0)
        out[:, -1] = d["agree"]
        return out


class _ProposeAndAnswerRules(_NaiveRules):
    """Naive-2..4: player 0 proposes (phase 0), the others answer YES/NO (phase 1)."""

    def __init__(self, mech: _MarketFoil, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        self.i_answer = self.layout.index["answer"]

    def _phase_rows(self, k: int) -> list[np.ndarray]:
        answer = self.layout.mask({"answer": True})
        return [self.proposal_rows(k), np.broadcast_to(answer, (self.spec.n, answer.shape[0]))]

    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        B, n = ctx.B, self.spec.n
        data = self.start(ctx)
        data["answers"] = np.zeros((B, n), dtype=np.int8)
        data["c1"] = np.full(B, -1, dtype=np.int64)
        data["c2"] = np.full(B, -1, dtype=np.int64)
        acting = np.zeros((B, n), dtype=bool)
        acting[:, 0] = True
        return BatchState(np.zeros(B, dtype=np.int64), acting, data, [])

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        actions = checked(self, state, actions, self.ranges(int(state.data["k"][0])))
        alloc, prices = self.decode_proposals(actions[:, 0, :])
        return {"alloc": alloc, "prices": prices, "yes": actions[:, :, self.i_answer] == 1}

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        n = self.spec.n
        B = ctx.B
        d = dict(state.data)
        phase = state.phase.copy()
        acting = np.zeros_like(state.acting)
        chance = list(state.chance)
        E = ctx.endowment

        P = state.phase == 0
        if P.any():
            alloc, prices = moves["alloc"], moves["prices"]
            d["alloc"] = np.where(P[:, None], alloc, d["alloc"])
            d["prices"] = np.where(P[:, None], prices, d["prices"])
            d["proposed"] = d["proposed"] | P
            endow = P & row_all(alloc == E) & row_all(prices == 0)
            finish(d, endow, E, self.zeros(B), 0)
            ask = P & ~endow
            phase = np.where(endow, TERMINAL, np.where(ask, 1, phase))
            acting[:, 1:] |= ask[:, None]

        R = state.phase == 1
        if R.any():
            yes = moves["yes"][:, 1:]
            ans = np.zeros((B, n), dtype=np.int8)
            ans[:, 1:] = np.where(yes, 1, -1)
            d["answers"] = np.where(R[:, None], ans, d["answers"])
            y = row_sum(yes)
            alloc = d["alloc"]
            disc = self.discounted(d["prices"])
            destroyed = destroyed_of(alloc, self.spec.m)
            all_yes = R & (y == n - 1)
            finish(d, all_yes, alloc, disc, destroyed)
            self._after_no(ctx, d, R & ~all_yes, y, disc, destroyed, chance, rng)
            phase = np.where(R, TERMINAL, phase)

        return BatchState(phase, acting, d, chance)

    def _after_no(
        self,
        ctx: ContextBatch,
        d: dict[str, np.ndarray],
        some_no: np.ndarray,
        y: np.ndarray,
        disc: np.ndarray,
        destroyed: np.ndarray,
        chance: list[np.ndarray],
        rng: Any,
    ) -> None:
        """Settle the episodes ``some_no`` (drawing and logging their coins)."""
        raise NotImplementedError

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = state.data
        return (state.phase == 1)[:, None] & state.acting, d["alloc"], d["prices"]

    def outcome_rule(self, state: BatchState) -> str:
        d = state.data
        if d["proposed"][0] and (d["answers"][0, 1:] == 0).all():
            return "endowment"
        if (d["answers"][0, 1:] == 1).all():
            return "all-yes"
        return self.after_no_rule(d)

    def after_no_rule(self, d: dict[str, np.ndarray]) -> str:
        """The rule that settled episode 0 after a NO."""
        raise NotImplementedError

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        return self.public_features_all(state)[:, player]

    def public_features_all(self, state: BatchState) -> np.ndarray:
        """[proposal owners and prices | answers (+1/−1) | c1 (2) | c2 (2) | own bundle bits |
        own price]."""
        n, m = self.spec.n, self.spec.m
        d = state.data
        B = d["alloc"].shape[0]
        size = 2 * m + 2 * n + 5
        if not d["proposed"].any():
            return np.zeros((B, n, size), dtype=np.float32)
        out = np.zeros((B, size), dtype=np.float32)
        out[:, :m] = owners_of(d["alloc"], m)
        out[:, m : m + n] = d["prices"]
        pos = m + n
        out[:, pos + 1 : pos + n] = d["answers"][:, 1:]
        pos += n
        put_onehot(out, pos, d["c1"], 2)
        put_onehot(out, pos + 2, d["c2"], 2)
        pos += 4
        every = np.repeat(out[:, None, :], n, axis=1)
        every[:, :, pos : pos + m] = bundle_bits(d["alloc"], m)  # each player's own bundle
        every[:, :, pos + m] = d["prices"]
        every[~d["proposed"]] = 0
        return every


@register_batched
class NaiveMarket2Rules(_ProposeAndAnswerRules):
    """The rules of :class:`NaiveMarket2`: any NO gives (E, 0)."""

    mechanism = NaiveMarket2
    implements = frozenset({"eps"})

    def _after_no(
        self,
        ctx: ContextBatch,
        d: dict[str, np.ndarray],
        some_no: np.ndarray,
        y: np.ndarray,
        disc: np.ndarray,
        destroyed: np.ndarray,
        chance: list[np.ndarray],
        rng: Any,
    ) -> None:
        finish(d, some_no, ctx.endowment, self.zeros(ctx.B), 0)

    def after_no_rule(self, d: dict[str, np.ndarray]) -> str:
        return "some-no"


@register_batched
class NaiveMarket3Rules(_ProposeAndAnswerRules):
    """The rules of :class:`NaiveMarket3`: after a NO, coin c1 (Heads w.p. 1 − εY/n) gives
    (E, 0), Tails the discounted proposal."""

    mechanism = NaiveMarket3
    implements = frozenset({"eps"})

    def __init__(self, mech: NaiveMarket3, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        n = spec.n
        # per Y = 0..n−1
        self.c1 = self.probs([(1 - self.eps * y / n, self.eps * y / n) for y in range(n)])

    def _after_no(
        self,
        ctx: ContextBatch,
        d: dict[str, np.ndarray],
        some_no: np.ndarray,
        y: np.ndarray,
        disc: np.ndarray,
        destroyed: np.ndarray,
        chance: list[np.ndarray],
        rng: Any,
    ) -> None:
        c1 = draw(rng, self.c1[np.minimum(y, self.spec.n - 1)], some_no, C1)
        chance.append(c1)
        d["c1"] = np.where(some_no, c1, d["c1"])
        finish(d, c1 == 0, ctx.endowment, self.zeros(ctx.B), 0)
        finish(d, c1 == 1, d["alloc"], disc, destroyed)

    def after_no_rule(self, d: dict[str, np.ndarray]) -> str:
        return "c1-heads" if d["c1"][0] == 0 else "c1-tails"


@register_batched
class NaiveMarket4Rules(_ProposeAndAnswerRules):
    """The rules of :class:`NaiveMarket4`: after a NO, c1 Heads (1 − ε) fines player 0 by 1
    at E; Tails flips c2 (Heads w.p. Y/(nB)) between the discounted proposal and (E, 0)."""

    mechanism = NaiveMarket4
    implements = frozenset({"eps"})

    def __init__(self, mech: NaiveMarket4, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        self.c1_node = Chance("c1", ("heads", "tails"), (1 - self.eps, self.eps))
        self.c1 = np.array([float(p) for p in self.c1_node.probs])
        self._c2: dict[int, np.ndarray] = {}

    def c2(self, k: int) -> np.ndarray:
        """``(n, 2)``: c2's probabilities per Y for ``k`` bits (B = 2^{k−1})."""
        table = self._c2.get(k)
        if table is None:
            n, b = self.spec.n, 1 << (k - 1)
            rows = [(Fraction(y, n * b), 1 - Fraction(y, n * b)) for y in range(n)]
            table = self._c2[k] = self.probs(rows)
        return table

    def _after_no(
        self,
        ctx: ContextBatch,
        d: dict[str, np.ndarray],
        some_no: np.ndarray,
        y: np.ndarray,
        disc: np.ndarray,
        destroyed: np.ndarray,
        chance: list[np.ndarray],
        rng: Any,
    ) -> None:
        n = self.spec.n
        c1 = draw(rng, self.c1, some_no, self.c1_node)
        chance.append(c1)
        d["c1"] = np.where(some_no, c1, d["c1"])
        fine = self.zeros(ctx.B)
        fine[:, 0] = 1
        finish(d, c1 == 0, ctx.endowment, fine, 0)
        t = c1 == 1
        c2 = draw(rng, self.c2(int(ctx.k))[np.minimum(y, n - 1)], t, C2)
        chance.append(c2)
        d["c2"] = np.where(t, c2, d["c2"])
        finish(d, c2 == 0, d["alloc"], disc, destroyed)
        finish(d, c2 == 1, ctx.endowment, self.zeros(ctx.B), 0)

    def after_no_rule(self, d: dict[str, np.ndarray]) -> str:
        if d["c1"][0] == 0:
            return "c1-heads"
        return "c2-heads" if d["c2"][0] == 0 else "c2-tails"


for _name in ("naive_market_1", "naive_market_2", "naive_market_3", "naive_market_4"):
    register_factored(_name, prices_need_goods=False)  # every transfer stands
