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

Written once (:mod:`mechgym.envs.engine.episode`): :class:`BudgetBalancedMarketRules` is the
rule over a batch, with exact or float money; :class:`BudgetBalancedMarket`, the exact face,
runs it on a batch of one with exact money (a structured proposal may carry ``Fraction``
prices: the exact moves keep them, and step a reads them), c0, w, c1 and c2 explicit chance
nodes. Phases: ``propose`` 0 (player 0), ``respond`` 1 (players 1..n−1), ``confirm`` 2
(player w). After the proposal, step a and the (E, 0) halt end an episode at once; otherwise
c0 and, on Tails (M′), w are drawn, in that order; after the answers, c1 and on Tails c2.

``state.data``: ``alloc``, ``pstar`` ``(B, n)`` (the proposal A*, P*: int64, or exact
amounts on the exact path); ``proposed``, ``halt``, ``endow`` ``(B,)`` bool; ``c0``, ``w``,
``c1``, ``c2`` ``(B,)`` int64 (−1 until drawn); ``answers`` ``(B, n)`` int8 (+1 YES, −1 NO, 0
not given; column 0 unused); ``confirm`` ``(B,)`` int8; ``out_alloc``, ``out_prices``
(money), ``out_destroyed``: the terminal outcome, written when an episode ends.

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
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.batched import TERMINAL, BatchOutcome, BatchState, draw, register_batched
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import Chance, EnvSpec, Examples, Guarantee, as_fraction
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.market_rules import (
    FieldRanges,
    _end,
    _rows,
    bundle_bits,
    check_batch,
    checked,
    decode_owners,
    destroyed_of,
    encode_owners,
    fresh_outcome,
    owners_of,
    put_onehot,
    read_outcome,
    row_all,
    row_any,
    row_sum,
)
from mechgym.envs.mechanisms.offer_rules import PhaseMasks
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.model.limits import is_amount
from mechgym.envs.model.market import market_msw

ZERO = Fraction(0)
IMBALANCE = (0, 1, -1)
PROPOSE, RESPOND, CONFIRM = 0, 1, 2


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


class BudgetBalancedMarket(BatchOfOne):
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

    parameter_examples: ClassVar[Examples] = {"eps": ("1/30",), "delta": ("1/1000",)}

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

    # -- moves ---------------------------------------------------------------------------------
    def validate(self, s: Episode, player: int, action: Any) -> Any:
        agent = f"player_{player}"
        ph = int(s.state.phase[0])
        if ph == PROPOSE:
            return check_proposal(action, s.ctx.n, s.ctx.m, agent, "propose")
        if not isinstance(action, bool | np.bool_):
            raise MalformedAnnouncementError(
                agent, self.phases[ph], f"answer YES/NO with True/False, got {action!r}"
            )
        return bool(action)

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        n = s.ctx.n
        moves: Moves = {
            "alloc": np.zeros((1, n), dtype=np.int64),
            "pstar": np.zeros((1, n), dtype=object),
            "yes": np.zeros((1, n), dtype=bool),
        }
        for i, a in actions.items():
            if isinstance(a, MarketProposal):
                moves["alloc"][0] = a.alloc
                moves["pstar"][0] = a.prices  # ints or Fractions: step a reads them
            else:
                moves["yes"][0, i] = bool(a)
        return moves

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

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        if s.state.phase[0] == PROPOSE:
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
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        agent = f"player_{player}"
        if s.state.phase[0] == PROPOSE:
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

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        if isinstance(action, MarketProposal):
            parts = [
                f"p{j}: {{{format_bundle(b)}}} at {p}"
                for j, (b, p) in enumerate(zip(action.alloc, action.prices, strict=True))
            ]
            return "propose " + ", ".join(parts)
        return "YES" if action else "NO"


# -- constants ---------------------------------------------------------------------------------


class MarketConstants:
    """M6's constants for ``n`` players and ``k`` bits in ``money`` (the exact fractions, or
    their floats); chance probabilities as floats for drawing, and the exact nodes."""

    def __init__(self, mech: BudgetBalancedMarket, n: int, k: int, money: Money = FLOAT) -> None:
        eps, delta = mech.constants(n, k)
        b = 1 << (k - 1)
        q = money.constant
        self.k = k
        self.bound = 1 << k
        self.c0_node = Chance("c0", ("heads", "tails"), (1 - delta, delta))
        self.c1_node = Chance("c1", ("heads", "tails"), (1 - eps, eps))
        self.w_node = Chance("w", tuple(f"player_{i}" for i in range(n)), (Fraction(1, n),) * n)
        self.c0 = np.array([float(p) for p in self.c0_node.probs])
        self.c1 = np.array([float(p) for p in self.c1_node.probs])
        self.w = np.array([float(p) for p in self.w_node.probs])
        # c2 Heads w.p. Y/(nB), per Y = 0..n−1 (exact rows on the exact path)
        c2 = [(Fraction(y, n * b), 1 - Fraction(y, n * b)) for y in range(n)]
        self.c2_node = Chance("c2", ("heads", "tails"), c2[0])
        self.c2 = np.array(
            [[q(p) for p in row] for row in c2], dtype=object if money.exact else None
        )
        self.accept = money.array(
            np.array([q(2 * (n - 1) * eps)] + [q(-2 * eps)] * (n - 1), dtype=object)
        )
        self.fine_e = money.array(
            np.array([q(2 * n * (n - y) * b + (n - 1) * eps) for y in range(n)], dtype=object)
        )
        self.rest = q(-eps)
        self.fine_a = money.array(np.array([1] + [0] * (n - 1), dtype=object))  # step a: P_0 = 1
        self.p0_rest = q((n - 1) * eps)
        self.rest_p0 = money.array(np.array([self.p0_rest] + [self.rest] * (n - 1), dtype=object))
        self.j_w = q(-2 * eps)
        self.j_0 = q(n * eps)
        self.fine_k = q(Fraction(n * n * b) / delta + (n - 1) * eps)


@register_batched
class BudgetBalancedMarketRules(MoveRules):
    """The rules of :class:`BudgetBalancedMarket` over a batch."""

    mechanism = BudgetBalancedMarket
    implements = frozenset({"eps", "delta"})
    mech: BudgetBalancedMarket

    def __init__(self, mech: BudgetBalancedMarket, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        lay, n, m = self.layout, spec.n, spec.m
        proposal = {f"owner_{g}": True for g in range(m)}
        proposal.update({f"price_{j}": True for j in range(1, n)})
        proposal["imbalance"] = True
        answer = np.broadcast_to(lay.mask({"answer": True}), (n, lay.mask_size))
        rows = [np.broadcast_to(lay.mask(proposal), (n, lay.mask_size)), answer, answer]
        self.masker = PhaseMasks(rows, lay.mask({}))
        self.ranges = FieldRanges(lay, rows)
        self.i_answer = lay.index["answer"]
        self.i_price = lay.index["price_1"] if n > 1 else 0
        self.i_imbalance = lay.index["imbalance"]
        self.shift = 2 * spec.price_cap
        self._consts: dict[int, MarketConstants] = {}

    def constants(self, k: int) -> MarketConstants:
        """The constants for ``k`` bits in the rules' money (validated by the mechanism)."""
        c = self._consts.get(k)
        if c is None:
            c = self._consts[k] = MarketConstants(self.mech, self.spec.n, k, self.money)
        return c

    # -- codec -------------------------------------------------------------------------------
    def decode_proposals(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``alloc``, ``pstar`` ``(..., n)`` int64 and the imbalance ``(...,)`` of proposals
        ``(..., L)`` (as the exact ``decode``: P*_0 = −Σ_{j≥1} P*_j + imbalance)."""
        n, m = self.spec.n, self.spec.m
        alloc = decode_owners(vecs, self.layout, n, m)
        pj = vecs[..., self.i_price : self.i_price + n - 1] - self.shift
        imb = np.asarray(IMBALANCE, dtype=np.int64)[vecs[..., self.i_imbalance]]
        p0 = -row_sum(pj) + imb
        return alloc, np.concatenate([p0[..., None], pj], axis=-1), imb

    def encode_proposals(
        self, alloc: np.ndarray, prices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``(..., L)`` of proposals ``alloc``, ``prices`` ``(..., n)`` int64 and
        whether each is on the grid (P*_j ∈ −2·price_cap..2·price_cap, Σ P* ∈ {−1, 0, 1}), as
        the exact ``encode``; off-grid rows hold garbage."""
        n = self.spec.n
        out = np.zeros((*alloc.shape[:-1], len(self.layout)), dtype=np.int64)
        encode_owners(alloc, out, self.layout, self.spec.m)
        v = prices[..., 1:] + self.shift
        ok = ((v >= 0) & (v <= 2 * self.shift)).all(axis=-1)
        out[..., self.i_price : self.i_price + n - 1] = np.clip(v, 0, 2 * self.shift)
        gap = prices.sum(axis=-1)
        ok &= np.abs(gap) <= 1
        out[..., self.i_imbalance] = np.where(gap == -1, 2, np.where(gap == 1, 1, 0))
        return out, ok

    # -- rules -------------------------------------------------------------------------------
    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        check_batch(self, ctx)
        self.constants(int(ctx.k))  # validate ε, δ for this n and k up front
        B, n = ctx.B, self.spec.n
        data = {
            "alloc": np.zeros((B, n), dtype=np.int64),
            "pstar": np.zeros((B, n), dtype=np.int64),
            "proposed": np.zeros(B, dtype=bool),
            "halt": np.zeros(B, dtype=bool),
            "endow": np.zeros(B, dtype=bool),
            "c0": np.full(B, -1, dtype=np.int64),
            "w": np.full(B, -1, dtype=np.int64),
            "c1": np.full(B, -1, dtype=np.int64),
            "c2": np.full(B, -1, dtype=np.int64),
            "answers": np.zeros((B, n), dtype=np.int8),
            "confirm": np.zeros(B, dtype=np.int8),
            **fresh_outcome(B, n, self.money),
        }
        acting = np.zeros((B, n), dtype=bool)
        acting[:, 0] = True
        return BatchState(np.full(B, PROPOSE, dtype=np.int64), acting, data, [])

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        return self.masker.rows(state.phase, state.acting)

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        actions = checked(self, state, actions, self.ranges)
        alloc, pstar, _ = self.decode_proposals(actions[:, 0])
        return {"alloc": alloc, "pstar": pstar, "yes": actions[:, :, self.i_answer] == 1}

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        c = self.constants(int(ctx.k))
        money = self.money
        n, m = self.spec.n, self.spec.m
        B = ctx.B
        full = (1 << m) - 1
        E = ctx.endowment
        assert E is not None
        # each episode sits in one phase: work on the episodes of each phase only
        d = {key: v.copy() for key, v in state.data.items()}
        phase = state.phase.copy()
        acting = np.zeros_like(state.acting)
        chance = list(state.chance)

        P = _rows(state.phase == PROPOSE)
        if P is not None:
            alloc, pstar = moves["alloc"][P], moves["pstar"][P]
            if pstar.dtype == object and d["pstar"].dtype != object:
                d["pstar"] = d["pstar"].astype(object)  # exact moves may carry Fractions
            d["alloc"][P], d["pstar"][P], d["proposed"][P] = alloc, pstar, True
            # step a: some P*_j (j ≥ 1) not an integer or outside (−2^k, 2^k), or Σ P* ≠ 0
            whole = integral(pstar[:, 1:])
            halt = row_any(~whole | (np.abs(pstar[:, 1:]) >= c.bound)) | (row_sum(pstar) != 0)
            endow = ~halt & row_all(alloc == E[P]) & row_all(pstar == 0)
            d["halt"][P], d["endow"][P] = halt, endow
            stop = np.zeros(B, dtype=bool)
            stop[P] = halt
            _end(d, np.flatnonzero(stop), E[stop], c.fine_a, 0)
            stop[P] = endow
            _end(d, np.flatnonzero(stop), E[stop], 0, 0)
            live = np.zeros(B, dtype=bool)
            live[P] = ~halt & ~endow
            phase[P] = np.where(halt | endow, TERMINAL, phase[P])
            c0 = draw(rng, c.c0, live, c.c0_node)
            chance.append(c0)
            d["c0"][live] = c0[live]
            tails = c0 == 1
            w = draw(rng, c.w, tails, c.w_node)
            chance.append(w)
            d["w"][tails] = w[tails]
            heads = np.flatnonzero(c0 == 0)
            phase[heads] = RESPOND
            acting[heads, 1:] = True
            # step i: w = 0 keeps A*_0 at (n−1)ε, everything else destroyed
            W0 = np.flatnonzero(tails & (w == 0))
            a_i = np.zeros((W0.size, n), dtype=np.int64)
            a_i[:, 0] = d["alloc"][W0, 0]
            _end(d, W0, a_i, c.rest_p0, full & ~a_i[:, 0])
            phase[W0] = TERMINAL
            WP = np.flatnonzero(tails & (w > 0))
            phase[WP] = CONFIRM
            acting[WP, w[WP]] = True

        R = np.flatnonzero(state.phase == RESPOND)
        if R.size:
            yes = moves["yes"][R, 1:]
            d["answers"][R, 1:] = np.where(yes, 1, -1)
            y = np.zeros(B, dtype=np.int64)
            y[R] = row_sum(yes)
            all_yes = R[y[R] == n - 1]
            _end(d, all_yes, *self._accepted(d, all_yes, c))  # step d
            live = np.zeros(B, dtype=bool)
            live[R] = True
            live[all_yes] = False
            c1 = draw(rng, c.c1, live, c.c1_node)
            chance.append(c1)
            d["c1"][live] = c1[live]
            # step e: (E, fine on player 0, −ε to everyone else)
            e = np.flatnonzero(c1 == 0)
            fine = money.array(np.full((e.size, n), c.rest, dtype=object))
            fine[:, 0] = c.fine_e[y[e]]
            _end(d, e, E[e], fine, 0)
            t = c1 == 1
            c2 = draw(rng, c.c2[np.minimum(y, n - 1)], t, c.c2_node)
            chance.append(c2)
            d["c2"][t] = c2[t]
            f = np.flatnonzero(c2 == 0)
            _end(d, f, *self._accepted(d, f, c))  # step f
            g = np.flatnonzero(c2 == 1)
            _end(d, g, E[g], c.rest_p0, 0)  # step g
            phase[R] = TERMINAL

        C = np.flatnonzero(state.phase == CONFIRM)
        if C.size:
            w = d["w"][C]
            yes = moves["yes"][C, w]
            d["confirm"][C] = np.where(yes, 1, -1)
            at_w = np.arange(n)[None, :] == w[:, None]
            # step j: w keeps A*_w at P*_w − 2ε, player 0 pays −P*_w + nε;
            # step k: w keeps E_w, player 0 pays n²B/δ + (n−1)ε; −ε for everyone else
            kept = np.where(yes, d["alloc"][C, w], E[C, w])
            p_w = money.array(d["pstar"][C, w])
            prices = money.array(np.full((C.size, n), c.rest, dtype=object))
            prices[:, 0] = np.where(yes, -p_w + c.j_0, c.fine_k)
            prices = np.where(at_w & yes[:, None], (p_w + c.j_w)[:, None], prices)
            _end(d, C, np.where(at_w, kept[:, None], 0), prices, full & ~kept)
            phase[C] = TERMINAL

        return BatchState(phase, acting, d, chance)

    def _accepted(
        self, d: dict[str, np.ndarray], idx: np.ndarray, c: MarketConstants
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Steps d/f for episodes ``idx``: (A*, P*_0 + 2(n−1)ε, P*_i − 2ε), goods outside A*
        destroyed."""
        alloc = d["alloc"][idx]
        return alloc, self.money.array(d["pstar"][idx]) + c.accept, destroyed_of(alloc, self.spec.m)

    def outcome(self, state: BatchState) -> BatchOutcome:
        return read_outcome(state.data)

    def outcome_rule(self, state: BatchState) -> str:
        """The step of the paper that ended episode 0 (a, b, d … k)."""
        d = state.data
        if d["halt"][0]:
            return "a"
        if d["endow"][0]:
            return "b"
        if d["c0"][0] == 1:
            if d["w"][0] == 0:
                return "i"
            return "j" if d["confirm"][0] == 1 else "k"
        if (d["answers"][0, 1:] == 1).all():
            return "d"
        if d["c1"][0] == 0:
            return "e"
        return "f" if d["c2"][0] == 0 else "g"

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = state.data
        asking = (state.phase == RESPOND) | (state.phase == CONFIRM)
        return asking[:, None] & state.acting, d["alloc"], d["pstar"]

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        return self.public_features_all(state)[:, player]

    def public_features_all(self, state: BatchState) -> np.ndarray:
        """[owner+1 of each good in A* | P* | step-a halt, (E, 0) | c0 (2) | step-2 answers |
        c1 (2) | c2 (2) | w one-hot | step-3 answer | own A* bundle bits | own P*]."""
        n, m = self.spec.n, self.spec.m
        d = state.data
        B = d["alloc"].shape[0]
        size = self.mech.public_size(self.spec)
        if not d["proposed"].any():
            return np.zeros((B, n, size), dtype=np.float32)
        out = np.zeros((B, size), dtype=np.float32)
        out[:, :m] = owners_of(d["alloc"], m)
        pstar = d["pstar"].astype(np.float64)
        out[:, m : m + n] = pstar
        pos = m + n
        out[:, pos] = d["halt"]
        out[:, pos + 1] = d["endow"]
        pos += 2
        put_onehot(out, pos, d["c0"], 2)
        pos += 2
        out[:, pos + 1 : pos + n] = d["answers"][:, 1:]
        pos += n
        put_onehot(out, pos, d["c1"], 2)
        put_onehot(out, pos + 2, d["c2"], 2)
        pos += 4
        put_onehot(out, pos, d["w"], n)
        pos += n
        out[:, pos] = d["confirm"]
        pos += 1
        every = np.repeat(out[:, None, :], n, axis=1)
        every[:, :, pos : pos + m] = bundle_bits(d["alloc"], m)  # each player's own A*_i
        every[:, :, pos + m] = pstar
        every[~d["proposed"]] = 0
        return every


def integral(x: np.ndarray) -> np.ndarray:
    """Whether each amount is an integer (int64 arrays: all; exact ones: denominator 1)."""
    if x.dtype != object:
        return np.ones(x.shape, dtype=bool)
    return np.vectorize(lambda v: Fraction(v).denominator == 1, otypes=[bool])(x)


# every player's transfer P*_j stands, with goods or without
register_factored("budget_balanced_market", prices_need_goods=False)
