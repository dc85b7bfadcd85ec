"""M6 — the budget-balanced market mechanism of seed 004 (Section 5.2), steps a–k.

Players are 0-based: the paper's player 1 (the proposer) is player 0. ``B = 2^{k−1}``.

1. Player 0 announces an outcome (A*, P*): a bundle per player (goods in no bundle are
   destroyed) and a price per player.
   a: if some P*_i (i ≠ 0) is not an integer in (−2^k, 2^k), or Σ P* ≠ 0: A = E, P_0 = 1,
      everyone else pays 0; halt. (The mechanism's own rule for an invalid proposal.)
   b: if (A*, P*) = (E, 0): halt at (E, 0).
   c: coin c0: Heads w.p. 1 − δ; Tails: go to M'.
2. Simultaneously every i ≠ 0 says YES or NO; Y = #YES.
   d: Y = n − 1: A = A*, P_0 = P*_0 + 2(n−1)ε, P_i = P*_i − 2ε; halt.
   e: coin c1, Heads w.p. 1 − ε: A = E, P_0 = 2n(n−Y)B + (n−1)ε, P_i = −ε; halt.
   f: coin c2, Heads w.p. Y/(nB): as in d; halt.
   g: A = E, P_0 = (n−1)ε, P_i = −ε; halt.
M' (probability δ): h: w uniform over the players.
   i: w = 0: A_0 = A*_0, P_0 = (n−1)ε, everyone else gets nothing and P_i = −ε; every good
      outside A*_0 is destroyed; halt.
3. Player w says YES or NO.
   j: YES: A_w = A*_w, P_w = P*_w − 2ε, P_0 = −P*_w + nε, the others get nothing and
      P_i = −ε; goods outside A*_w destroyed; halt.
   k: NO: A_w = E_w, the others get nothing, P_0 = n²B/δ + (n−1)ε, P_i = −ε (i ≠ 0); goods
      outside E_w destroyed; halt.

Constants: ε ∈ (0, 1/(5n)) (default 1/(10n)) and δ ∈ (0, ε/B) (default ε/(2B)), checked when a
context fixes ``n`` and ``k`` (:class:`ParameterError`).

Invalid proposals. Step a is the paper's rule, so a proposal that is *well formed* (a
bundle and a rational price per player, bundles disjoint) but has a price outside
(−2^k, 2^k), a non-integer price, or prices not summing to 0 is legal and ends the game by
step a. Structured actions that are not even well formed (wrong lengths, overlapping
bundles, non-numeric prices) raise :class:`MalformedAnnouncementError`.

Array layout (every agent): ``answer`` (2: 0 = NO, 1 = YES); ``owner_g`` per good (``n + 1``:
0 = destroyed, ``j + 1`` = player ``j``); ``price_j`` for ``j = 1..n−1`` with value ``v``
meaning P*_j = v − 2·price_cap (so with the default ``price_cap = B`` the grid is
−2^k..2^k, endpoints included, which step a rejects); ``imbalance`` (3: value ``s`` sets
P*_0 = −Σ_{j≥1} P*_j + (0, +1, −1)[s], so Σ P* ≠ 0 is expressible). Phase ``propose`` reads
the owners, prices and imbalance; ``respond`` (step 2) and ``confirm`` (step 3) read
``answer``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Guarantee,
    Mechanism,
    Node,
    Terminal,
    as_fraction,
)
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.model.limits import is_amount
from mechgym.envs.model.market import market_msw
from mechgym.envs.model.outcome import Outcome

ZERO = Fraction(0)
IMBALANCE = (0, 1, -1)


@dataclass(frozen=True)
class MarketProposal:
    """An outcome (A*, P*) announced for everyone: a bundle and a price per player.

    Goods in no bundle are destroyed. Prices are ``int`` or :class:`fractions.Fraction`.
    """

    alloc: tuple[int, ...]
    prices: tuple[Any, ...]

    @property
    def destroyed_mask(self) -> int:
        used = 0
        for b in self.alloc:
            used |= b
        return used


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def check_proposal(action: Any, n: int, m: int, agent: str, phase: str) -> MarketProposal:
    """Validate that a proposal is well formed; return it with plain entries.

    Well formed: a :class:`MarketProposal` with ``n`` pairwise disjoint bundles over ``m``
    goods and ``n`` rational prices (``int`` or ``Fraction``). Whether the prices satisfy
    step a is the mechanism's business, not a format error.
    """
    if not isinstance(action, MarketProposal):
        raise MalformedAnnouncementError(
            agent, phase, f"expected a MarketProposal(alloc, prices), got {type(action).__name__}"
        )
    if (
        isinstance(action.alloc, str)
        or not isinstance(action.alloc, Sequence | np.ndarray)
        or len(action.alloc) != n
    ):
        raise MalformedAnnouncementError(agent, phase, f"alloc needs one bundle per player ({n})")
    if (
        isinstance(action.prices, str)
        or not isinstance(action.prices, Sequence | np.ndarray)
        or len(action.prices) != n
    ):
        raise MalformedAnnouncementError(agent, phase, f"prices needs one price per player ({n})")
    used = 0
    alloc = []
    for j, b in enumerate(action.alloc):
        if not _is_int(b) or not 0 <= int(b) < 1 << m:
            raise MalformedAnnouncementError(
                agent, phase, f"bundle for player {j} ({b!r}) is not a bitmask over {m} goods"
            )
        b = int(b)
        if used & b:
            raise MalformedAnnouncementError(
                agent, phase, f"bundle for player {j} overlaps another player's bundle"
            )
        used |= b
        alloc.append(b)
    prices: list[Any] = []
    for j, p in enumerate(action.prices):
        if _is_int(p):
            prices.append(int(p))
        elif isinstance(p, numbers.Rational) and not isinstance(p, bool):
            q = Fraction(p)
            prices.append(int(q) if q.denominator == 1 else q)
        else:
            raise MalformedAnnouncementError(
                agent,
                phase,
                f"price for player {j} must be an int or a fractions.Fraction, got {p!r}",
            )
        if not is_amount(prices[-1]):
            # rewards are floats and solvers int64: keep every price exact in float64
            raise MalformedAnnouncementError(
                agent,
                phase,
                f"price for player {j} must have magnitude and denominator at most 2**53",
            )
    return MarketProposal(tuple(alloc), tuple(prices))


def proposal_step_a(proposal: MarketProposal, k: int) -> str | None:
    """Why step a halts on ``proposal`` (``None`` if it does not)."""
    bound = 1 << k
    for j, p in enumerate(proposal.prices[1:], start=1):
        if not isinstance(p, int):
            return f"price of player {j} ({p}) is not an integer"
        if not -bound < p < bound:
            return f"price of player {j} ({p}) is outside (-2^k, 2^k) = ({-bound}, {bound})"
    if sum(proposal.prices, ZERO) != 0:
        return f"prices sum to {sum(proposal.prices, ZERO)}, not 0"
    return None


@dataclass(frozen=True)
class MarketState:
    """Public state of M6."""

    n: int
    m: int
    k: int
    endowment: tuple[int, ...]
    eps: Fraction
    delta: Fraction
    proposal: MarketProposal | None = None
    c0: int | None = None
    answers: tuple[bool, ...] | None = None
    c1: int | None = None
    c2: int | None = None
    w: int | None = None
    confirm: bool | None = None

    @property
    def B(self) -> int:
        return 1 << (self.k - 1)

    @property
    def halt_a(self) -> str | None:
        return None if self.proposal is None else proposal_step_a(self.proposal, self.k)

    @property
    def is_endowment(self) -> bool:
        p = self.proposal
        return p.alloc == self.endowment and all(x == 0 for x in p.prices)

    @property
    def yes_count(self) -> int:
        return sum(self.answers)


class BudgetBalancedMarket(Mechanism):
    """M6: welfare-maximising and budget balanced with probability ≥ 1 − δ (seed 004, Thm 1).

    Parameters
    ----------
    eps : number, optional
        ε ∈ (0, 1/(5n)); default 1/(10n).
    delta : number, optional
        δ ∈ (0, ε/B); default ε/(2B).
    """

    name = "budget_balanced_market"
    title = "Budget-balanced market mechanism (seed 004, Sec. 5.2)"
    phases = ("propose", "respond", "confirm")
    simultaneous_only = True
    context_kind = "market"
    mask_depends_on_state = False
    # player 0 proposes alone, players 1..n-1 respond, one player confirms
    every_player_acts = False

    def __init__(self, eps: Any = None, delta: Any = None) -> None:
        self._eps = None if eps is None else as_fraction(eps, "eps")
        self._delta = None if delta is None else as_fraction(delta, "delta")
        if self._eps is not None and not 0 < self._eps < Fraction(1, 10):
            raise ParameterError("eps", f"must lie in (0, 1/(5n)) with n >= 2, got {self._eps}")
        if self._delta is not None and not 0 < self._delta < Fraction(1, 10):
            raise ParameterError("delta", f"must lie in (0, eps/B), got {self._delta}")

    # -- constants ---------------------------------------------------------------------------
    def constants(self, n: int, k: int) -> tuple[Fraction, Fraction]:
        """``(ε, δ)`` for ``n`` players and ``k`` bits, validated."""
        eps = Fraction(1, 10 * n) if self._eps is None else self._eps
        if not 0 < eps < Fraction(1, 5 * n):
            raise ParameterError(
                "eps", f"must lie in (0, 1/(5n)) = (0, 1/{5 * n}) for n = {n}, got {eps}"
            )
        b = 1 << (k - 1)
        delta = eps / (2 * b) if self._delta is None else self._delta
        if not 0 < delta < eps / b:
            raise ParameterError(
                "delta", f"must lie in (0, eps/B) = (0, {eps / b}) for B = {b}, got {delta}"
            )
        return eps, delta

    def params(self) -> dict[str, Any]:
        return {
            "eps": "1/(10n)" if self._eps is None else str(self._eps),
            "delta": "eps/(2B)" if self._delta is None else str(self._delta),
        }

    # -- theory --------------------------------------------------------------------------------
    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        eps, delta = self.constants(ctx.n, ctx.k)
        best, alloc = market_msw(ctx)
        return {
            "MSW": best,
            "SW_E": ctx.endowment_welfare,
            "gain": best - ctx.endowment_welfare,
            "optimal_alloc": [format_bundle(b) for b in alloc],
            "eps": str(eps),
            "delta": str(delta),
        }

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee:
        """Theorem 1 whole: P[SW = MSW and Σ P = 0] ≥ 1 − δ (the probability is the value),
        with total participation (Definition 3): every acting coalition's E[u_C] ≥ 0."""
        _, delta = self.constants(ctx.n, ctx.k)
        best = ctx.msw()
        prob = ev.probability(lambda o: ctx.welfare(o) == best and o.revenue == 0)
        worst = min(ev.coalition_utility(g) for g in ctx.acting_coalitions)
        return Guarantee(
            "P[SW = MSW and sum P = 0] >= 1 - delta",
            1 - delta,
            prob,
            parts=(
                Guarantee("min over coalitions C of E[u_C] >= 0", Fraction(0), Fraction(worst)),
            ),
        )

    # -- rules ---------------------------------------------------------------------------------
    def start(self, ctx: Any) -> MarketState:
        eps, delta = self.constants(ctx.n, ctx.k)
        return MarketState(ctx.n, ctx.m, ctx.k, tuple(ctx.endowment), eps, delta)

    def node(self, s: MarketState) -> Node:
        n, eps = s.n, s.eps
        if s.proposal is None:
            return Decision((0,), "propose")
        if s.halt_a is not None:
            return Terminal(self._out(s, s.endowment, 0, {0: Fraction(1)}, ZERO, "a"))
        if s.is_endowment:
            return Terminal(self._out(s, s.endowment, 0, {}, ZERO, "b"))
        if s.c0 is None:
            return Chance("c0", ("heads", "tails"), (1 - s.delta, s.delta))
        a_star = s.proposal.alloc
        p_star = s.proposal.prices
        if s.c0 == 0:
            if s.answers is None:
                return Decision(tuple(range(1, n)), "respond")
            y = s.yes_count
            if y == n - 1:
                return Terminal(self._accept(s, "d"))
            if s.c1 is None:
                return Chance("c1", ("heads", "tails"), (1 - eps, eps))
            if s.c1 == 0:
                fine = 2 * n * (n - y) * s.B + (n - 1) * eps
                return Terminal(self._out(s, s.endowment, 0, {0: fine}, -eps, "e"))
            if s.c2 is None:
                p = Fraction(y, n * s.B)
                return Chance("c2", ("heads", "tails"), (p, 1 - p))
            if s.c2 == 0:
                return Terminal(self._accept(s, "f"))
            return Terminal(self._out(s, s.endowment, 0, {0: (n - 1) * eps}, -eps, "g"))
        if s.w is None:
            return Chance("w", tuple(f"player_{i}" for i in range(n)), (Fraction(1, n),) * n)
        w = s.w
        alloc = [0] * n
        if w == 0:
            alloc[0] = a_star[0]
            return Terminal(self._out(s, tuple(alloc), -1, {0: (n - 1) * eps}, -eps, "i"))
        if s.confirm is None:
            return Decision((w,), "confirm")
        if s.confirm:
            alloc[w] = a_star[w]
            prices = {w: p_star[w] - 2 * eps, 0: -p_star[w] + n * eps}
            return Terminal(self._out(s, tuple(alloc), -1, prices, -eps, "j"))
        alloc[w] = s.endowment[w]
        fine = Fraction(n * n * s.B) / s.delta + (n - 1) * eps
        return Terminal(self._out(s, tuple(alloc), -1, {0: fine}, -eps, "k"))

    @staticmethod
    def _out(
        s: MarketState,
        alloc: tuple[int, ...],
        destroy: int,
        prices: Mapping[int, Any],
        rest: Fraction,
        rule: str,
    ) -> Outcome:
        """An outcome: ``prices`` for the listed players, ``rest`` for the others; ``destroy``
        = -1 destroys every good outside ``alloc``."""
        full = (1 << s.m) - 1
        used = 0
        for b in alloc:
            used |= b
        destroyed = full & ~used if destroy == -1 else 0
        p = tuple(Fraction(prices[i]) if i in prices else rest for i in range(s.n))
        return Outcome(alloc, p, destroyed=destroyed, rule=rule)

    @staticmethod
    def _accept(s: MarketState, rule: str) -> Outcome:
        """Steps d/f: A = A*, P_0 = P*_0 + 2(n−1)ε, P_i = P*_i − 2ε."""
        n, eps = s.n, s.eps
        a = s.proposal.alloc
        prices = tuple(
            Fraction(p) + (2 * (n - 1) * eps if i == 0 else -2 * eps)
            for i, p in enumerate(s.proposal.prices)
        )
        used = 0
        for b in a:
            used |= b
        return Outcome(a, prices, destroyed=((1 << s.m) - 1) & ~used, rule=rule)

    def validate(self, s: MarketState, player: int, action: Any) -> Any:
        agent = f"player_{player}"
        if s.proposal is None:
            return check_proposal(action, s.n, s.m, agent, "propose")
        phase = "respond" if s.w is None else "confirm"
        if not isinstance(action, bool | np.bool_):
            raise MalformedAnnouncementError(
                agent, phase, f"answer YES/NO with True/False, got {action!r}"
            )
        return bool(action)

    def resolve(self, s: MarketState, actions: Mapping[int, Any]) -> MarketState:
        if s.proposal is None:
            return replace(s, proposal=actions[0])
        if s.w is None:
            return replace(s, answers=tuple(actions[i] for i in range(1, s.n)))
        return replace(s, confirm=actions[s.w])

    def chance(self, s: MarketState, index: int) -> MarketState:
        if s.c0 is None:
            return replace(s, c0=index)
        if s.c0 == 1:
            return replace(s, w=index)
        if s.c1 is None:
            return replace(s, c1=index)
        return replace(s, c2=index)

    # -- encodings -------------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        grid = 4 * spec.price_cap + 1
        return ActionLayout(
            [
                ("answer", 2),
                *((f"owner_{g}", spec.n + 1) for g in range(spec.m)),
                *((f"price_{j}", grid) for j in range(1, spec.n)),
                ("imbalance", 3),
            ]
        )

    def action_mask(
        self, s: MarketState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        if s.proposal is None:
            fields: dict[str, Any] = {f"owner_{g}": True for g in range(spec.m)}
            fields.update({f"price_{j}": True for j in range(1, spec.n)})
            fields["imbalance"] = True
            return layout.mask(fields)
        return layout.mask({"answer": True})

    def decode(
        self, s: MarketState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        if s.proposal is None:
            alloc = [0] * spec.n
            for g in range(spec.m):
                o = int(vec[layout.index[f"owner_{g}"]])
                if o:
                    alloc[o - 1] |= 1 << g
            shift = 2 * spec.price_cap
            prices = [int(vec[layout.index[f"price_{j}"]]) - shift for j in range(1, spec.n)]
            p0 = -sum(prices) + IMBALANCE[int(vec[layout.index["imbalance"]])]
            return MarketProposal(tuple(alloc), (p0, *prices))
        return bool(vec[layout.index["answer"]])

    def encode(
        self, s: MarketState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        agent = f"player_{player}"
        if s.proposal is None:
            prop = check_proposal(action, spec.n, spec.m, agent, "propose")
            for j, b in enumerate(prop.alloc):
                for g in range(spec.m):
                    if b >> g & 1:
                        vec[layout.index[f"owner_{g}"]] = j + 1
            shift = 2 * spec.price_cap
            for j in range(1, spec.n):
                p = prop.prices[j]
                if not isinstance(p, int) or not -shift <= p <= shift:
                    raise OutOfSpaceError(
                        agent,
                        "propose",
                        f"price {p} for player {j} is not on the grid {-shift}..{shift}",
                    )
                vec[layout.index[f"price_{j}"]] = p + shift
            gap = prop.prices[0] + sum(prop.prices[1:])
            if gap not in IMBALANCE:
                raise OutOfSpaceError(
                    agent,
                    "propose",
                    f"prices sum to {gap}; the array encoding expresses sums -1, 0, 1 only",
                )
            vec[layout.index["imbalance"]] = IMBALANCE.index(gap)
            return vec
        vec[layout.index["answer"]] = int(bool(action))
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 * spec.m + 3 * spec.n + 10

    def public_features(self, s: MarketState, player: int, spec: EnvSpec) -> np.ndarray:
        """[owner+1 of each good in A* | P* | step-a halt, (E,0) | c0 (2) | step-2 answers
        (+1/−1 per player) | c1 (2) | c2 (2) | w one-hot | step-3 answer | own A* bundle bits |
        own P*]."""
        n, m = spec.n, spec.m
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        p = s.proposal
        if p is None:
            return out
        for j, b in enumerate(p.alloc):
            for g in range(m):
                if b >> g & 1:
                    out[g] = j + 1
        out[m : m + n] = [float(x) for x in p.prices]
        pos = m + n
        out[pos] = 1.0 if s.halt_a is not None else 0.0
        out[pos + 1] = 1.0 if s.halt_a is None and s.is_endowment else 0.0
        pos += 2
        if s.c0 is not None:
            out[pos + s.c0] = 1.0
        pos += 2
        if s.answers is not None:
            for i, yes in enumerate(s.answers, start=1):
                out[pos + i] = 1.0 if yes else -1.0
        pos += n
        if s.c1 is not None:
            out[pos + s.c1] = 1.0
        if s.c2 is not None:
            out[pos + 2 + s.c2] = 1.0
        pos += 4
        if s.w is not None:
            out[pos + s.w] = 1.0
        pos += n
        if s.confirm is not None:
            out[pos] = 1.0 if s.confirm else -1.0
        pos += 1
        own = p.alloc[player]
        out[pos : pos + m] = [(own >> g) & 1 for g in range(m)]
        out[pos + m] = float(p.prices[player])
        return out

    def describe_action(self, s: MarketState, player: int, action: Any) -> str:
        if isinstance(action, MarketProposal):
            parts = [
                f"p{j}: {{{format_bundle(b)}}} at {p}"
                for j, (b, p) in enumerate(zip(action.alloc, action.prices, strict=True))
            ]
            return "propose " + ", ".join(parts)
        return "YES" if action else "NO"


# every player's transfer P*_j stands, with goods or without
register_factored("budget_balanced_market", prices_need_goods=False)
