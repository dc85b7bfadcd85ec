"""M5 — the perfect-information revenue mechanism of seed 003 (Section 3). Sequential, 2n moves.

Players are 0-based here: the paper's player 1 is player 0, its player ``i`` is ``i − 1``.

1. Player 0 announces a state ω* and prices K ∈ Z≥0^n. Step b: if Σ K = 0 the game halts at
   the null outcome (⊥, 0) (no rewards).
2. In turn, players ``d = 1..n−1`` announce raises Δ^d ∈ Z≥0^n with Δ^d_d = 0.
   Step c: bip_j = the highest-index player ``d`` with Δ^d_j > 0 (player 0 if nobody raised
   ``j``) and P*_j = K_j + Σ_d Δ^d_j.
3. In turn, every player ``i`` with P*_i > 0 answers YES or NO; a player with P*_i = 0 says YES
   by default, and so does player 0 when nobody raised him (bip_0 = 0).
   d: all YES → (ω*, P* − ε). e: else coin c1, Heads w.p. 1 − ε → (⊥, fines): every NO-sayer
   ``i`` fines bip_i by 2·P*_i. f: Tails → coin c2, Heads w.p. Y/(n·B) with Y = #YES (defaults
   included) and B = Σ_{i says NO} P*_i → (ω*, P* − ε); Tails → (⊥, 0).
   g: in every branch after step b, rewards: P_0 −= 2ε·ΣK − ε·f_r(ω*, K)/n_r (r = ΣK) and
   P_d −= Σ_j ε^d_j Δ^d_j for d ≥ 1.

Decisions checked against the paper
-----------------------------------
* **The raisers set R_i.** Step c writes ``R_i = {j : Δ^i_j > 0}`` but then takes bip_i as the
  highest member of R_i and sets P*_i = K_i + Σ_{ℓ=2}^{bip_i} Δ^ℓ_i, i.e. it sums the raises *of
  i*. Lemma 2's proof ("bip_j = n because n is the last player who raises player j's price")
  confirms the intended set: the players who raised i, R_i = {ℓ : Δ^ℓ_i > 0}. We use that, so
  P*_i = K_i + Σ_ℓ Δ^ℓ_i.
* **B in coin c2** is Σ_{NO} P*_i as the paper writes (not seed 004's 2^{k−1}); it is ≥ 1 since
  only players with P*_i > 0 are asked, and Y ≤ n − 1, so Y/(nB) < 1.
* **Rank f_r** is computed combinatorially (stars and bars), never by enumeration: states in
  index order, then price profiles with larger earlier coordinates first;
  n_r = K · C(r + n − 1, n − 1), so 0 ≤ f_r < n_r.
* **Constants.** 1/(5n) > ε > ε^1_0 > ε^1_1 > … > ε^1_{n−1} > ε^2_0 > … > ε^{n−1}_{n−1} > 0
  (paper ε^2_1 … ε^n_n, shifted to 0-based raisers ``d`` and targets ``j``). Defaults:
  ε = 1/(10n) and ε^d_j = ε · 2^{−((d−1)·n + j + 1)}. Both may be given; they are checked
  when a context fixes ``n`` (:class:`ParameterError`).
* **Collusion.** The mechanism knows nothing of coalitions; Definition 2's Θ̄ (prices and
  raises on each coalition's lowest member, YES iff the coalition's total value covers its
  total price) is the predicted play of :mod:`mechgym.agents.perfect_revenue`. Exact
  backward induction (:func:`mechgym.envs.solvers.spe.solve_spe`) confirms what Theorem 2
  concludes — the equilibrium path is Θ̄'s, the equilibrium outcome is unique, SW = MSW,
  revenue ≥ (1 − 3εn)·MSW, coalition utilities ≥ 0 — but not Lemmas 1′–2′: at many off-path
  nodes Θ̄ is *strictly* worse for its mover than the SPE, not tied with it. A coalition that
  must refuse gains by choosing *which* member says NO, since a refusal fines the refuser's
  raiser (bip), who may be a partner (tests/test_theory_completeness.py has the example).
  Learned play is therefore measured against the SPE profile (the agents' ``reference``).
* **MSW = 0.** Every proposal with Σ K = 0 halts at the same (⊥, 0); then player 0 is
  indifferent between them and the SPE is unique in outcome only.
* **Action grid.** Prices K_j and raises Δ^d_j are array fields ``price_j`` with values
  ``0..EnvSpec.price_cap``; the structured actions accept any non-negative integers. The
  collusive prediction prices a coalition's lowest member at the coalition's total value, so
  its array form needs ``price_cap`` ≥ the largest coalition value.

Written once (:mod:`mechgym.envs.engine.episode`): :class:`PerfectRevenueRules` is the rule
over a batch, with exact or float money; :class:`PerfectRevenue`, the exact face, runs it on a
batch of one with exact money (f_r/n_r from :func:`outcome_rank`; the float path reads a table
of binomials), c1 and c2 explicit chance nodes drawn right after the last answer. Phases:
``propose`` (0, player 0), ``raise`` (1, players 1..n−1 in turn), ``respond`` (2, the askers
in index order).

``state.data``: ``proposed`` ``(B,)`` bool; ``state`` ``(B,)`` ω*; ``K`` ``(B, n)``;
``raises`` ``(B, n, n)`` (row ``d`` = Δ^d, row 0 stays 0); ``nraised`` ``(B,)``; ``current``
``(B, n)`` the prices after the raises so far (P* once raising is done); ``bip`` ``(B, n)``;
``delta`` ``(B, n)`` knowledge rewards δ_i (money); ``asked`` ``(B, n)`` bool; ``answer``
``(B, n)`` int8 (+1 YES, −1 NO, 0 not (yet) answered); ``c1``, ``c2`` ``(B,)`` (−1 = not
drawn).

Float money. Every price is P*_i − ε − δ_i, −δ_i or 2·Σ_{NO, bip = i} P*_j − δ_i (fines),
with integer P* (and fines: exact in float64 below 2^53), δ_0 = 2ε·r − ε·f_r/n_r and
δ_d = Σ_j ε^d_j Δ^d_j. Each is a handful (≤ n + 4) of correctly rounded operations on
numbers of magnitude at most M = max(|price|, r) + 1, so the error is below (n + 4)·2^−53·M:
within 1e-9 of the exact ``Fraction`` whenever M < 2^20 ≈ 10^6 and n ≤ 10, for every
ε ∈ (0, 1/(5n)) and every ε^d_j > 0, however small (an ε^d_j·Δ below the price's
resolution is lost, but then it is below 1e-9 as well). With P*_i ≤ n·price_cap, fines on
one player ≤ 2n²·price_cap: the env's default grid (price_cap = n·value_cap) keeps M < 2^20
for value_cap ≤ 2^19/n³ (e.g. 19,000 at n = 3). f_r/n_r comes from a float64 table of
binomials, exact to a few ulps relative even when n_r exceeds 2^53, and only ε multiplies
it. ``tests/test_batched_spb_m5.py`` checks prices up to ~5·10^5 with ε^d_j down to 10^−20.

Array layout (every agent): ``answer`` (2: 0 = NO, 1 = YES), ``state`` (K), ``price_j`` for
``j = 0..n−1``. Phase ``propose`` reads ``state`` and ``price_*`` (= K); phase ``raise`` of
player ``d`` reads ``price_j`` for ``j ≠ d`` (= Δ^d_j); phase ``respond`` reads ``answer``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import check_amount, check_entries
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchOutcome,
    BatchState,
    check_actions,
    check_context,
    draw,
    register_batched,
)
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.game import Chance, EnvSpec, Examples, Guarantee, as_fraction
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.model.batch import ContextBatch

NULL = -1
ZERO = Fraction(0)
PROPOSE, RAISE, RESPOND = 0, 1, 2


@dataclass(frozen=True)
class PRProposal:
    """Player 0's proposal (ω*, K): a state index and a non-negative integer price per player."""

    state: int
    prices: tuple[int, ...]


@dataclass(frozen=True)
class PRRaise:
    """A raise profile Δ^d: a non-negative integer per player, 0 for the raiser itself."""

    amounts: tuple[int, ...]


def outcome_rank(state: int, prices: Sequence[int], num_states: int) -> tuple[int, int]:
    """``(f_r(ω, P), n_r)`` for ``r = Σ P`` (seed 003, Section 3), by stars and bars.

    Outcomes of revenue ``r`` are ordered by state index, then by price profile with larger
    earlier coordinates first. ``n_r = num_states · C(r + n − 1, n − 1)``.
    """
    n = len(prices)
    r = sum(prices)
    per = math.comb(r + n - 1, n - 1)
    rank = state * per
    rest = r
    for i in range(n - 1):
        parts = n - i - 1
        # profiles equal before i and larger at i come first: Q_i = v > P_i leaves rest − v for
        # `parts` coordinates; summed over v this is C(rest − P_i − 1 + parts, parts).
        if rest - prices[i] >= 1:
            rank += math.comb(rest - prices[i] - 1 + parts, parts)
        rest -= prices[i]
    return rank, num_states * per


@dataclass(frozen=True)
class PRConstants:
    """The resolved constants for ``n`` players: ε and ε^d_j (row ``d − 1`` for raiser ``d``)."""

    n: int
    eps: Fraction
    eps_raise: tuple[tuple[Fraction, ...], ...]

    def raise_eps(self, d: int, j: int) -> Fraction:
        return self.eps_raise[d - 1][j]


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def _example_eps_raise(n: int, m: int) -> list[list[str]]:
    """Raise constants ε^d_j = 1/(3000·3^((d−1)n+j)): decreasing, below any ε ≥ 1/1000."""
    return [[f"1/{3000 * 3 ** ((d - 1) * n + j)}" for j in range(n)] for d in range(1, n)]


class PerfectRevenue(BatchOfOne):
    """M5: unique SPE θ̄ with SW = MSW and REV ≥ (1 − 3εn)·MSW (seed 003, Theorems 1–2).

    Parameters
    ----------
    eps : number, optional
        ε ∈ (0, 1/(5n)); default 1/(10n).
    eps_raise : sequence of sequences, optional
        ε^d_j for raisers ``d = 1..n−1`` (rows) and targets ``j = 0..n−1`` (columns), strictly
        decreasing in the order of the rows and below ε; default ε·2^{−((d−1)n + j + 1)}.
    """

    name = "perfect_revenue"
    title = "Perfect-information revenue mechanism (seed 003, Sec. 3)"
    phases = ("propose", "raise", "respond")
    simultaneous_only = False
    context_kind = "states"
    mask_depends_on_state = False

    def default_price_cap(self, n: int, value_cap: int) -> int:
        """Collusive proposals put a coalition's total price on its lowest member."""
        return n * value_cap

    parameter_examples: ClassVar[Examples] = {
        "eps": ("1/30", "1/1000"),
        "eps_raise": (_example_eps_raise,),
    }

    def __init__(self, eps: Any = None, eps_raise: Any = None) -> None:
        self._eps = None if eps is None else as_fraction(eps, "eps")
        if self._eps is not None and not 0 < self._eps < Fraction(1, 10):
            raise ParameterError("eps", f"must lie in (0, 1/(5n)) and n >= 2, got {self._eps}")
        self._eps_raise = None
        if eps_raise is not None:
            try:
                rows = [tuple(as_fraction(x, "eps_raise") for x in row) for row in eps_raise]
            except TypeError:
                raise ParameterError("eps_raise", "must be a sequence of rows of numbers") from None
            self._eps_raise = tuple(rows)
        self._consts: dict[int, PRConstants] = {}

    # -- constants ---------------------------------------------------------------------------
    def constants(self, n: int) -> PRConstants:
        """ε and ε^d_j for ``n`` players, validated (:class:`ParameterError`)."""
        c = self._consts.get(n)
        if c is not None:
            return c
        eps = Fraction(1, 10 * n) if self._eps is None else self._eps
        if not 0 < eps < Fraction(1, 5 * n):
            raise ParameterError(
                "eps", f"must lie in (0, 1/(5n)) = (0, 1/{5 * n}) for n = {n}, got {eps}"
            )
        if self._eps_raise is None:
            rows = tuple(
                tuple(eps / 2 ** ((d - 1) * n + j + 1) for j in range(n)) for d in range(1, n)
            )
        else:
            rows = self._eps_raise
            if len(rows) != n - 1 or any(len(r) != n for r in rows):
                raise ParameterError(
                    "eps_raise",
                    f"needs {n - 1} rows (raisers 1..{n - 1}) of {n} entries for n = {n}",
                )
            order = [x for r in rows for x in r]
            prev = eps
            for k, x in enumerate(order):
                if not 0 < x < prev:
                    d, j = divmod(k, n)
                    raise ParameterError(
                        f"eps_raise[{d}][{j}]",
                        "the constants must satisfy 1/(5n) > eps > eps^1_0 > ... > "
                        f"eps^(n-1)_(n-1) > 0; got {x} after {prev}",
                    )
                prev = x
        c = PRConstants(n, eps, rows)
        self._consts[n] = c
        return c

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"eps": "1/(10n)" if self._eps is None else str(self._eps)}
        out["eps_raise"] = (
            "eps*2^-((d-1)n+j+1)"
            if self._eps_raise is None
            else [[str(x) for x in r] for r in self._eps_raise]
        )
        return out

    # -- theory --------------------------------------------------------------------------------
    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        c = self.constants(ctx.n)
        return {
            "MSW": ctx.msw(),
            "best_state": ctx.best_state(),
            "eps": str(c.eps),
            "revenue_bound": str((1 - 3 * c.eps * ctx.n) * ctx.msw()),
        }

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee:
        """Theorems 1–2 whole: E[REV] ≥ (1 − 3εn)·MSW, with parts SW = MSW and ℙ3 — every
        player's expected utility ≥ 0 (Theorem 1), every acting coalition's (Theorem 2 (3))."""
        c = self.constants(ctx.n)
        best = ctx.msw()
        groups = ctx.acting_coalitions
        worst = min(ev.coalition_utility(g) for g in groups)
        who = "coalition C of E[U_C]" if ctx.collusive else "player i of E[u_i]"
        return Guarantee(
            "SW = MSW and E[REV] >= (1 - 3 eps n) MSW",
            (1 - 3 * c.eps * ctx.n) * best,
            Fraction(ev.expected_revenue),
            parts=(
                Guarantee("E[SW] = MSW", Fraction(best), Fraction(ev.expected_welfare), exact=True),
                Guarantee(f"min over {who} >= 0", Fraction(0), Fraction(worst)),
            ),
        )

    # -- moves ---------------------------------------------------------------------------------
    def validate(self, s: Episode, player: int, action: Any) -> Any:
        agent, n = f"player_{player}", s.ctx.n
        ph = int(s.state.phase[0])
        if ph == PROPOSE:
            phase = "propose"
            if not isinstance(action, PRProposal):
                raise MalformedAnnouncementError(
                    agent,
                    phase,
                    f"expected a PRProposal(state, prices), got {type(action).__name__}",
                )
            k = s.ctx.num_states
            if not _is_int(action.state) or not 0 <= int(action.state) < k:
                raise MalformedAnnouncementError(
                    agent, phase, f"state {action.state!r} is not a state index in 0..{k - 1}"
                )
            prices = _amounts(action.prices, n, agent, phase, "price")
            return PRProposal(int(action.state), prices)
        if ph == RAISE:
            phase = "raise"
            if not isinstance(action, PRRaise):
                raise MalformedAnnouncementError(
                    agent, phase, f"expected a PRRaise(amounts), got {type(action).__name__}"
                )
            amounts = _amounts(action.amounts, n, agent, phase, "raise")
            if amounts[player] != 0:
                raise MalformedAnnouncementError(
                    agent,
                    phase,
                    f"a player may not raise its own price (amount {amounts[player]} for "
                    f"player {player})",
                )
            return PRRaise(amounts)
        if not isinstance(action, bool | np.bool_):
            raise MalformedAnnouncementError(
                agent, "respond", f"answer YES/NO with True/False, got {action!r}"
            )
        return bool(action)

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        n = s.ctx.n
        ((_, a),) = actions.items()  # one mover per node
        moves: Moves = {
            "state": np.zeros(1, dtype=np.int64),
            "K": np.zeros((1, n), dtype=np.int64),
            "amounts": np.zeros((1, n), dtype=np.int64),
            "yes": np.zeros(1, dtype=bool),
        }
        if isinstance(a, PRProposal):
            moves["state"][0], moves["K"][0] = a.state, a.prices
        elif isinstance(a, PRRaise):
            moves["amounts"][0] = a.amounts
        else:
            moves["yes"][0] = bool(a)
        return moves

    def proposal_view(self, s: Episode) -> tuple[int, tuple[int, ...]]:
        """The proposed state ω* and the prices after the raises so far (public)."""
        d = s.state.data
        return int(d["state"][0]), tuple(int(x) for x in d["current"][0])

    # -- SPE support ---------------------------------------------------------------------------
    def subgame_key(self, s: Episode) -> tuple[Any, tuple[Fraction, ...]] | None:
        """``(key, price offsets)``: states with the same key have the same subgame, up to
        price offsets added to every terminal outcome below them (the knowledge rewards
        already earned, −δ). Used by :func:`mechgym.envs.solvers.spe.solve_spe` to share work."""
        d = s.state.data
        if s.pending is not None or not d or not d["proposed"][0] or d["K"][0].sum() == 0:
            return None
        key = (
            int(d["state"][0]),
            tuple(int(x) for x in d["current"][0]),
            tuple(int(x) for x in d["bip"][0]),
            int(d["nraised"][0]),
            tuple(int(x) for x in d["answer"][0]),
            int(d["c1"][0]),
            int(d["c2"][0]),
        )
        return key, tuple(-Fraction(x) for x in d["delta"][0])

    # -- encodings -------------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout(
            [
                ("answer", 2),
                ("state", spec.m),
                *((f"price_{j}", spec.price_cap + 1) for j in range(spec.n)),
            ]
        )

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        amounts = tuple(int(vec[layout.index[f"price_{j}"]]) for j in range(spec.n))
        ph = int(s.state.phase[0])
        if ph == PROPOSE:
            return PRProposal(int(vec[layout.index["state"]]), amounts)
        if ph == RAISE:
            return PRRaise(amounts)
        return bool(vec[layout.index["answer"]])

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        agent = f"player_{player}"
        ph = int(s.state.phase[0])
        if ph in (PROPOSE, RAISE):
            phase = "propose" if ph == PROPOSE else "raise"
            checked = self.validate(s, player, action)
            amounts = checked.prices if phase == "propose" else checked.amounts
            for j, x in enumerate(amounts):
                if x > spec.price_cap:
                    raise OutOfSpaceError(
                        agent,
                        phase,
                        f"amount {x} for player {j} is beyond the grid 0..{spec.price_cap}",
                    )
                vec[layout.index[f"price_{j}"]] = x
            if phase == "propose":
                vec[layout.index["state"]] = checked.state
            return vec
        vec[layout.index["answer"]] = int(bool(action))
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        n = spec.n
        return spec.m + n * n + 4 * n + 5

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        if isinstance(action, PRProposal):
            return f"state={action.state} K={list(action.prices)}"
        if isinstance(action, PRRaise):
            raised = {j: x for j, x in enumerate(action.amounts) if x}
            return f"raise {raised}" if raised else "no raise"
        return "YES" if action else "NO"


def _amounts(raw: Any, n: int, agent: str, phase: str, what: str) -> tuple[int, ...]:
    if isinstance(raw, str) or not isinstance(raw, Sequence | np.ndarray):
        raise MalformedAnnouncementError(
            agent, phase, f"{what}s must be a sequence of {n} non-negative integers"
        )
    if len(raw) != n:
        raise MalformedAnnouncementError(
            agent, phase, f"needs {n} {what}s (one per player), got {len(raw)}"
        )
    out = []
    for j, x in enumerate(check_entries(raw, n, agent, phase, f"the {what}s")):
        if not _is_int(x) or int(x) < 0:
            raise MalformedAnnouncementError(
                agent, phase, f"{what} for player {j} must be a non-negative integer, got {x!r}"
            )
        out.append(check_amount(x, agent, phase, f"{what} for player {j}"))
    return tuple(out)


# the second coin: its probability depends on the episode (passed per episode by the rules)
C2 = Chance("c2", ("heads", "tails"), (Fraction(1), Fraction(0)))
_NAMES = np.array(["propose", "raise", "respond", "-"])


@register_batched
class PerfectRevenueRules(MoveRules):
    """The rules of :class:`PerfectRevenue` over a batch (``states`` contexts)."""

    mechanism = PerfectRevenue
    implements = frozenset({"eps", "eps_raise"})
    mech: PerfectRevenue

    def __init__(self, mech: PerfectRevenue, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        n, lay = spec.n, self.layout
        c = mech.constants(n)
        self.eps = money.constant(c.eps)
        self.c1_node = Chance("c1", ("heads", "tails"), (1 - c.eps, c.eps))
        self.c1_probs = np.array([float(p) for p in self.c1_node.probs])
        # ε^d_j per raiser row d (row 0, player 0, never raises)
        table = np.zeros((n, n), dtype=object)
        for d in range(1, n):
            table[d] = c.eps_raise[d - 1]
        self.eps_raise = money.array(table)
        self.i_answer = lay.index["answer"]
        self.i_state = lay.index["state"]
        self.i_price = np.array([lay.index[f"price_{j}"] for j in range(n)], dtype=np.int64)
        idle = lay.mask({})
        prices = {f"price_{j}": True for j in range(n)}
        table = np.empty((4, n, lay.mask_size), dtype=np.int8)
        table[:] = idle
        table[PROPOSE, 0] = lay.mask({"state": True, **prices})
        for d in range(1, n):
            table[RAISE, d] = lay.mask({f"price_{j}": True for j in range(n) if j != d})
        table[RESPOND] = lay.mask({"answer": True})
        self.table = table  # index 3 (= TERMINAL via −1) stays idle
        self.idle = idle
        # whole (n, S) blocks per (phase, actor), actor n = nobody: one gather per call
        blocks = np.empty((4, n + 1, n, lay.mask_size), dtype=np.int8)
        blocks[:] = idle
        for ph in range(3):
            for i in range(n):
                blocks[ph, i, i] = table[ph, i]
        self.blocks = blocks
        self._flat_blocks = blocks.reshape(-1, lay.mask_size)
        # binomials C(a, b) for a ≤ r + n − 1, r ≤ n·price_cap, b < n: products of b
        # factors over b!, relative error ≤ 2n·2^−53 (f_r/n_r only scales ε)
        a = np.arange(n * spec.price_cap + n + 1, dtype=np.float64)[:, None]
        comb = np.ones((a.shape[0], n), dtype=np.float64)
        for b in range(1, n):
            comb[:, b] = comb[:, b - 1] * np.maximum(a[:, 0] - (b - 1), 0) / b
        self.comb = comb

    # -- helpers -----------------------------------------------------------------------------
    def rank_ratio(self, state: np.ndarray, prices: np.ndarray, num_states: int) -> np.ndarray:
        """f_r(ω, K)/n_r per episode (see :func:`outcome_rank`): exact ``Fraction`` s with
        exact money, else vectorised over a float table of binomials."""
        if self.money.exact:
            ranks = [
                outcome_rank(int(w), [int(x) for x in k], num_states)
                for w, k in zip(state, prices, strict=True)
            ]
            return np.array([Fraction(f, nr) for f, nr in ranks], dtype=object)
        n = prices.shape[1]
        r = prices.sum(axis=1)
        per = self.comb[r + n - 1, n - 1]
        rank = state * per
        rest = r.copy()
        for i in range(n - 1):
            parts = n - i - 1
            gap = rest - prices[:, i]
            rank = rank + np.where(gap >= 1, self.comb[np.maximum(gap - 1 + parts, 0), parts], 0.0)
            rest = gap
        return rank / (num_states * per)

    # -- rules -------------------------------------------------------------------------------
    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        check_context(self, ctx)
        B, n = ctx.B, ctx.n
        acting = np.zeros((B, n), dtype=bool)
        acting[:, 0] = True
        zi = np.zeros((B, n), dtype=np.int64)
        return BatchState(
            phase=np.full(B, PROPOSE, dtype=np.int64),
            acting=acting,
            data={
                "proposed": np.zeros(B, dtype=bool),
                "state": np.zeros(B, dtype=np.int64),
                "K": zi,
                "raises": np.zeros((B, n, n), dtype=np.int64),
                "nraised": np.zeros(B, dtype=np.int64),
                "current": zi.copy(),
                "bip": zi.copy(),
                "delta": self.money.zeros((B, n)),
                "asked": np.zeros((B, n), dtype=bool),
                "answer": np.zeros((B, n), dtype=np.int8),
                "c1": np.full(B, -1, dtype=np.int64),
                "c2": np.full(B, -1, dtype=np.int64),
            },
        )

    @staticmethod
    def actor(state: BatchState) -> np.ndarray:
        """``(B,)`` the one acting player of each episode, ``n`` where nobody acts."""
        acting = state.acting
        return np.where(acting.any(axis=1), acting.argmax(axis=1), acting.shape[1])

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        n = self.spec.n
        block = (state.phase % 4) * (n + 1) + self.actor(state)  # TERMINAL (−1) is block 3
        return self._flat_blocks, block[:, None] * n + np.arange(n)

    def _check(self, state: BatchState, actions: np.ndarray, who: np.ndarray) -> None:
        """Typed errors for bad actions; only the one acting row per episode (``who``) is read
        unless something is wrong (then :func:`check_actions` names it)."""
        B, n = state.acting.shape
        lay = self.layout
        if actions.shape == (B, n, len(lay)):
            live = who < n
            row = actions[np.arange(B), np.minimum(who, n - 1)]
            inside = ((row >= 0) & (row < lay.sizes)).all(axis=1)
            mask = self.blocks[state.phase, who, np.minimum(who, n - 1)]
            pos = lay.offsets[:-1] + np.clip(row, 0, lay.sizes - 1)
            ok = inside & np.take_along_axis(mask, pos, axis=1).all(axis=1)
            if (ok | ~live).all():
                return
        check_actions(lay, self.masks(state), actions, state.acting, _NAMES[state.phase])

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        actions = np.asarray(actions, dtype=np.int64)
        B, n = state.acting.shape
        actor = self.actor(state)
        self._check(state, actions, actor)
        who = np.minimum(actor, n - 1)
        row = actions[np.arange(B), who]
        return {
            "state": actions[:, 0, self.i_state],
            "K": actions[:, 0, self.i_price],
            "amounts": row[:, self.i_price],
            "yes": row[:, self.i_answer] == 1,
        }

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        B, n = state.acting.shape
        actor = self.actor(state)
        money = self.money
        rows = np.arange(B)
        ph = state.phase
        d = dict(state.data)
        phase = ph.copy()
        who = np.minimum(actor, n - 1)  # the one acting player (n − 1 when none: unread)
        chance = list(state.chance)

        prop = ph == PROPOSE
        if prop.any():
            K = moves["K"]
            w = moves["state"]
            go = prop & (K.sum(axis=1) > 0)  # step b: Σ K = 0 halts without rewards
            d["proposed"] = d["proposed"] | prop
            d["state"] = np.where(prop, w, d["state"])
            d["K"] = np.where(prop[:, None], K, d["K"])
            d["current"] = np.where(prop[:, None], K, d["current"])
            r = money.array(K.sum(axis=1))
            delta0 = 2 * self.eps * r - self.eps * self.rank_ratio(w, K, ctx.values.shape[2])
            delta = d["delta"].copy()
            delta[:, 0] = np.where(go, delta0, delta[:, 0])
            d["delta"] = delta
            phase = np.where(prop, np.where(go, RAISE, TERMINAL), phase)

        rai = ph == RAISE
        if rai.any():
            amounts = moves["amounts"] * rai[:, None]
            raiser = d["nraised"] + 1
            current = d["current"] + amounts
            d["current"] = current
            d["bip"] = np.where(amounts > 0, raiser[:, None], d["bip"])
            raises = d["raises"].copy()
            raises[rows[rai], raiser[rai]] = amounts[rai]
            d["raises"] = raises
            delta = d["delta"].copy()
            dr = (self.eps_raise[np.minimum(raiser, n - 1)] * amounts).sum(axis=1)
            delta[rows[rai], raiser[rai]] = dr[rai]
            d["delta"] = delta
            d["nraised"] = np.where(rai, raiser, d["nraised"])
            done = rai & (raiser == n - 1)
            asked = (current > 0) & done[:, None]
            asked[:, 0] &= d["bip"][:, 0] != 0  # player 0 says YES by default if nobody raised him
            d["asked"] = np.where(done[:, None], asked, d["asked"])
            phase = np.where(rai, np.where(done, RESPOND, RAISE), phase)
            phase = np.where(done & ~asked.any(axis=1), TERMINAL, phase)  # step d: no asker

        res = ph == RESPOND
        if res.any():
            yes = moves["yes"]
            answer = d["answer"].copy()
            answer[rows[res], who[res]] = np.where(yes[res], 1, -1).astype(np.int8)
            d["answer"] = answer
            pending = d["asked"] & (answer == 0)
            finished = res & ~pending.any(axis=1)
            no = answer == -1
            refused = finished & no.any(axis=1)
            phase = np.where(finished, TERMINAL, phase)
            if refused.any():
                c1 = draw(rng, self.c1_probs, refused, self.c1_node)
                chance.append(c1)
                d["c1"] = np.where(refused, c1, d["c1"])
                tails = refused & (c1 == 1)
                if tails.any():
                    nb = n * (d["current"] * no).sum(axis=1)
                    p = money.ratio(n - no.sum(axis=1), np.maximum(nb, 1))
                    c2 = draw(rng, np.stack([p, 1 - p], axis=1), tails, C2)
                    chance.append(c2)
                    d["c2"] = np.where(tails, c2, d["c2"])

        # who acts next: player 0 proposes, raiser nraised + 1, or the first pending asker
        nxt = np.where(
            phase == RAISE,
            d["nraised"] + 1,
            np.argmax(d["asked"] & (d["answer"] == 0), axis=1),
        )
        acting = (np.arange(n)[None, :] == nxt[:, None]) & ((phase == RAISE) | (phase == RESPOND))[
            :, None
        ]
        acting |= (phase == PROPOSE)[:, None] & (np.arange(n) == 0)[None, :]
        return BatchState(phase=phase, acting=acting, data=d, chance=chance)

    def outcome(self, state: BatchState) -> BatchOutcome:
        d = state.data
        n = d["current"].shape[1]
        money = self.money
        current = money.array(d["current"])
        delta = d["delta"]
        no = d["answer"] == -1
        halted = d["proposed"] & (d["K"].sum(axis=1) == 0)
        accepted = ~halted & (~no.any(axis=1) | (d["c2"] == 0))
        fined = ~halted & (d["c1"] == 0)
        # step e: every NO-sayer i fines bip_i by 2·P*_i
        hit = (d["bip"][:, :, None] == np.arange(n)[None, None, :]) & no[:, :, None]
        fines = 2 * (hit * current[:, :, None]).sum(axis=1)
        prices = np.where(
            accepted[:, None],
            current - self.eps - delta,
            np.where(fined[:, None], fines - delta, -delta),
        )
        prices = np.where(halted[:, None], money.zeros(prices.shape), prices)
        st = np.where(accepted, d["state"], -1)
        return BatchOutcome.of_state(st, prices)

    def outcome_rule(self, state: BatchState) -> str:
        d = state.data
        if d["K"][0].sum() == 0:
            return "b"
        if not (d["answer"][0] == -1).any():
            return "d"
        if d["c1"][0] == 0:
            return "e"
        return "f" if d["c2"][0] == 0 else "f-tails"

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = state.data
        asked = (state.phase == RESPOND)[:, None] & state.acting
        item = np.broadcast_to(d["state"][:, None], asked.shape)
        return asked, item, d["current"]

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        return self.public_features_all(state)[:, player]

    def public_features_all(self, state: BatchState) -> np.ndarray:
        """[state one-hot | K | raises (n×n) | P* | bip+1 | answers | c1 | c2 | own price]."""
        d = state.data
        B, n = d["current"].shape
        k = self.spec.m
        out = np.zeros((B, self.mech.public_size(self.spec)), dtype=np.float32)
        prop = d["proposed"]
        out[np.flatnonzero(prop), d["state"][prop]] = 1.0
        out[:, k : k + n] = d["K"]
        pos = k + n
        out[:, pos : pos + n * n] = d["raises"].reshape(B, n * n)
        pos += n * n
        done = (d["nraised"] == n - 1)[:, None]
        out[:, pos : pos + n] = np.where(done, d["current"], 0)
        out[:, pos + n : pos + 2 * n] = np.where(done, d["bip"] + 1, 0)
        answers = np.where(d["asked"], d["answer"], 1)
        out[:, pos + 2 * n : pos + 3 * n] = np.where(done, answers, 0)
        pos += 3 * n
        c1, c2 = d["c1"], d["c2"]
        out[np.flatnonzero(c1 >= 0), pos + c1[c1 >= 0]] = 1.0
        out[np.flatnonzero(c2 >= 0), pos + 2 + c2[c2 >= 0]] = 1.0
        out = np.repeat(out[:, None, :], n, axis=1)
        out[:, :, pos + 4] = np.where(prop[:, None], d["current"], 0)
        return out
