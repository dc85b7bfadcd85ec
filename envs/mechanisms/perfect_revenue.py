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

Array layout (every agent): ``answer`` (2: 0 = NO, 1 = YES), ``state`` (K), ``price_j`` for
``j = 0..n−1``. Phase ``propose`` reads ``state`` and ``price_*`` (= K); phase ``raise`` of
player ``d`` reads ``price_j`` for ``j ≠ d`` (= Δ^d_j); phase ``respond`` reads ``answer``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import check_amount, check_entries
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Examples,
    Guarantee,
    Mechanism,
    Node,
    PendingOffer,
    Terminal,
    as_fraction,
    asked_at,
)
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.model.outcome import Outcome

NULL = -1
ZERO = Fraction(0)


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


class PRStage:
    """Prices, best-informed players and rewards after the moves so far (derived data).

    Shared by every state with the same proposal and raises, so that the exact solver does
    not recompute them (or the terminal outcomes built from them) at every node.
    """

    __slots__ = (
        "accept",
        "askers",
        "bip",
        "current",
        "eps",
        "null",
        "null_prices",
        "rewards",
        "state",
    )

    def __init__(
        self,
        state: int,
        current: tuple[int, ...],
        bip: tuple[int, ...],
        rewards: tuple[Fraction, ...],
        eps: Fraction,
        done: bool,
    ) -> None:
        self.state = state
        self.current = current
        self.bip = bip
        self.rewards = rewards
        self.eps = eps
        self.null_prices = tuple(-d for d in rewards)
        n = len(current)
        self.askers = (
            tuple(i for i in range(n) if current[i] > 0 and not (i == 0 and bip[0] == 0))
            if done
            else ()
        )
        self.accept: dict[str, Outcome] = {}
        self.null: Outcome | None = None

    def accepted(self, rule: str) -> Outcome:
        """(ω*, P* − ε − δ), the outcome of steps d and f."""
        out = self.accept.get(rule)
        if out is None:
            cur, eps = self.current, self.eps
            prices = tuple(p - eps - d for p, d in zip(cur, self.rewards, strict=True))
            out = self.accept[rule] = Outcome((), prices, state=self.state, rule=rule)
        return out

    def null_outcome(self) -> Outcome:
        """(⊥, −δ), the outcome when coin c2 shows tails."""
        if self.null is None:
            self.null = Outcome((), self.null_prices, state=NULL, rule="f-tails")
        return self.null


@dataclass(frozen=True)
class PRState:
    """Public state of M5: the whole history (everything is public).

    ``proposal``, ``raises`` (Δ^1, Δ^2, ... so far), ``answers`` (explicit answers of the
    askers, in order) and the coins define the state; ``no`` (the NO-sayers so far) and
    ``stage`` (:class:`PRStage`) are derived from them.
    """

    n: int
    num_states: int
    consts: PRConstants = field(compare=False, hash=False, repr=False)
    proposal: PRProposal | None = None
    raises: tuple[tuple[int, ...], ...] = ()
    answers: tuple[bool, ...] = ()
    c1: int | None = None
    c2: int | None = None
    no: tuple[int, ...] = field(default=(), compare=False, repr=False)
    stage: PRStage | None = field(default=None, compare=False, repr=False)

    @property
    def revenue(self) -> int:
        """r = Σ K."""
        return sum(self.proposal.prices)

    @property
    def raising_done(self) -> bool:
        return len(self.raises) == self.n - 1

    @property
    def current(self) -> tuple[int, ...]:
        """Prices after the raises so far (P* once every raise is made)."""
        return self.stage.current if self.stage is not None else self.proposal.prices

    @property
    def bip(self) -> tuple[int, ...]:
        """Best-informed player of each player so far (0 = nobody raised him)."""
        return self.stage.bip if self.stage is not None else (0,) * self.n

    @property
    def rewards(self) -> tuple[Fraction, ...]:
        """Knowledge rewards δ_i earned so far."""
        return self.stage.rewards if self.stage is not None else (ZERO,) * self.n

    @property
    def askers(self) -> tuple[int, ...]:
        """Players asked YES/NO, in order (the others say YES by default)."""
        return self.stage.askers if self.stage is not None else ()

    @property
    def no_sayers(self) -> tuple[int, ...]:
        return self.no


def proposal_reward(consts: PRConstants, num_states: int, proposal: PRProposal) -> Fraction:
    """δ_0 = 2ε·r − ε·f_r(ω*, K)/n_r."""
    f, nr = outcome_rank(proposal.state, proposal.prices, num_states)
    return 2 * consts.eps * sum(proposal.prices) - consts.eps * Fraction(f, nr)


def raise_reward(consts: PRConstants, d: int, amounts: Sequence[int]) -> Fraction:
    """δ_d = Σ_j ε^d_j Δ^d_j."""
    row = consts.eps_raise[d - 1]
    return sum((row[j] * x for j, x in enumerate(amounts) if x), ZERO)


def _example_eps_raise(n: int, m: int) -> list[list[str]]:
    """Raise constants ε^d_j = 1/(3000·3^((d−1)n+j)): decreasing, below any ε ≥ 1/1000."""
    return [[f"1/{3000 * 3 ** ((d - 1) * n + j)}" for j in range(n)] for d in range(1, n)]


class PerfectRevenue(Mechanism):
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

    # -- rules ---------------------------------------------------------------------------------
    def start(self, ctx: Any) -> PRState:
        return PRState(ctx.n, ctx.num_states, self.constants(ctx.n))

    def node(self, s: PRState) -> Node:
        if s.proposal is None:
            return Decision((0,), "propose")
        st = s.stage
        if st is None:  # step b: Σ K = 0
            return Terminal(Outcome((), (ZERO,) * s.n, state=NULL, rule="b"))
        k = len(s.raises)
        if k < s.n - 1:
            return Decision((k + 1,), "raise")
        askers = st.askers
        if len(s.answers) < len(askers):
            return Decision((askers[len(s.answers)],), "respond")
        no = s.no
        if not no:
            return Terminal(st.accepted("d"))
        if s.c1 is None:
            return self._coin1(s.consts.eps)
        if s.c1 == 0:
            fines = list(st.null_prices)
            for i in no:
                fines[st.bip[i]] += 2 * st.current[i]
            return Terminal(Outcome((), tuple(fines), state=NULL, rule="e"))
        if s.c2 is None:
            return self._coin2(s.n - len(no), s.n * sum(st.current[i] for i in no))
        if s.c2 == 0:
            return Terminal(st.accepted("f"))
        return Terminal(st.null_outcome())

    @staticmethod
    @lru_cache(maxsize=64)
    def _coin1(eps: Fraction) -> Chance:
        return Chance("c1", ("heads", "tails"), (1 - eps, eps))

    @staticmethod
    @lru_cache(maxsize=4096)
    def _coin2(yes: int, nb: int) -> Chance:
        p = Fraction(yes, nb)
        return Chance("c2", ("heads", "tails"), (p, 1 - p))

    def pending_offer(self, s: PRState, player: int) -> PendingOffer | None:
        """At ``respond``: the proposed state ω* at the player's price P*_i after every raise."""
        if not asked_at(self, s, player, "respond"):
            return None
        return PendingOffer(int(s.proposal.state), int(s.current[player]))

    def validate(self, s: PRState, player: int, action: Any) -> Any:
        agent = f"player_{player}"
        if s.proposal is None:
            phase = "propose"
            if not isinstance(action, PRProposal):
                raise MalformedAnnouncementError(
                    agent,
                    phase,
                    f"expected a PRProposal(state, prices), got {type(action).__name__}",
                )
            if not _is_int(action.state) or not 0 <= int(action.state) < s.num_states:
                raise MalformedAnnouncementError(
                    agent,
                    phase,
                    f"state {action.state!r} is not a state index in 0..{s.num_states - 1}",
                )
            prices = _amounts(action.prices, s.n, agent, phase, "price")
            return PRProposal(int(action.state), prices)
        if not s.raising_done:
            phase = "raise"
            if not isinstance(action, PRRaise):
                raise MalformedAnnouncementError(
                    agent, phase, f"expected a PRRaise(amounts), got {type(action).__name__}"
                )
            amounts = _amounts(action.amounts, s.n, agent, phase, "raise")
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

    def resolve(self, s: PRState, actions: Mapping[int, Any]) -> PRState:
        (player,) = actions
        a = actions[player]
        c = s.consts
        if s.proposal is None:
            if sum(a.prices) == 0:  # step b: halts; no rewards are paid
                return replace(s, proposal=a)
            rewards = (proposal_reward(c, s.num_states, a), *((ZERO,) * (s.n - 1)))
            stage = PRStage(a.state, a.prices, (0,) * s.n, rewards, c.eps, False)
            return replace(s, proposal=a, stage=stage)
        st = s.stage
        if len(s.raises) < s.n - 1:
            d = len(s.raises) + 1
            prices = tuple(p + x for p, x in zip(st.current, a.amounts, strict=True))
            bip = tuple(d if x > 0 else b for b, x in zip(st.bip, a.amounts, strict=True))
            rewards = list(st.rewards)
            rewards[d] = raise_reward(c, d, a.amounts)
            stage = PRStage(s.proposal.state, prices, bip, tuple(rewards), c.eps, d == s.n - 1)
            return PRState(
                s.n, s.num_states, c, s.proposal, (*s.raises, a.amounts), (), None, None, (), stage
            )
        no = s.no if a else (*s.no, st.askers[len(s.answers)])
        return PRState(
            s.n, s.num_states, c, s.proposal, s.raises, (*s.answers, a), None, None, no, st
        )

    def chance(self, s: PRState, index: int) -> PRState:
        c1, c2 = (index, None) if s.c1 is None else (s.c1, index)
        return PRState(
            s.n, s.num_states, s.consts, s.proposal, s.raises, s.answers, c1, c2, s.no, s.stage
        )

    # -- SPE support ---------------------------------------------------------------------------
    def subgame_key(self, s: PRState) -> tuple[Any, tuple[Fraction, ...]] | None:
        """``(key, price offsets)``: states with the same key have the same subgame, up to
        price offsets added to every terminal outcome below them (the knowledge rewards
        already earned, −δ). Used by :func:`mechgym.envs.solvers.spe.solve_spe` to share work."""
        st = s.stage
        if st is None:
            return None
        return (
            (s.proposal.state, st.current, st.bip, len(s.raises), s.answers, s.c1, s.c2),
            st.null_prices,
        )

    # -- encodings -------------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout(
            [
                ("answer", 2),
                ("state", spec.m),
                *((f"price_{j}", spec.price_cap + 1) for j in range(spec.n)),
            ]
        )

    def action_mask(
        self, s: PRState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        if s.proposal is None:
            return layout.mask({"state": True, **{f"price_{j}": True for j in range(spec.n)}})
        if not s.raising_done:
            return layout.mask({f"price_{j}": True for j in range(spec.n) if j != player})
        return layout.mask({"answer": True})

    def decode(
        self, s: PRState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        amounts = tuple(int(vec[layout.index[f"price_{j}"]]) for j in range(spec.n))
        if s.proposal is None:
            return PRProposal(int(vec[layout.index["state"]]), amounts)
        if not s.raising_done:
            return PRRaise(amounts)
        return bool(vec[layout.index["answer"]])

    def encode(
        self, s: PRState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        agent = f"player_{player}"
        if s.proposal is None or not s.raising_done:
            phase = "propose" if s.proposal is None else "raise"
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

    def public_features(self, s: PRState, player: int, spec: EnvSpec) -> np.ndarray:
        """[state one-hot | K | raises (n×n, row d = Δ^d) | P* | bip+1 | answers (+1 YES,
        −1 NO, defaults +1) | c1 (2) | c2 (2) | own pending price]."""
        n, k = spec.n, spec.m
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        if s.proposal is None:
            return out
        out[s.proposal.state] = 1.0
        out[k : k + n] = s.proposal.prices
        pos = k + n
        for idx, delta in enumerate(s.raises):
            out[pos + (idx + 1) * n : pos + (idx + 2) * n] = delta
        pos += n * n
        prices = s.current or s.proposal.prices
        bip = s.bip or (0,) * n
        if s.raising_done:
            out[pos : pos + n] = prices
            out[pos + n : pos + 2 * n] = [b + 1 for b in bip]
            answers = [1.0] * n
            for i in s.askers:
                answers[i] = 0.0
            for i, yes in zip(s.askers, s.answers, strict=False):
                answers[i] = 1.0 if yes else -1.0
            out[pos + 2 * n : pos + 3 * n] = answers
        pos += 3 * n
        if s.c1 is not None:
            out[pos + s.c1] = 1.0
        if s.c2 is not None:
            out[pos + 2 + s.c2] = 1.0
        out[pos + 4] = prices[player]
        return out

    def describe_action(self, s: PRState, player: int, action: Any) -> str:
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
