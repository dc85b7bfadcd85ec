"""M4 — the collusion-leveraging mechanism (seed 002, Section 4).

Constants ε, ε1, ε2 ∈ (0, 1) with 2nε2 < ε1. An outcome is *reasonable* if all its prices are
≥ 0.

1. Simultaneously, every player ``i`` announces an alleged coalition C_i ∋ i, an allocation
   S^i for C_i (goods only to members of C_i) and a reasonable outcome Ω^i = (α^i, π^i).
   R_i = REV(Ω^i); ★ = argmax R_i (lowest index); R' = max_{i∉C_★} R_i (0 if none).
   Consistency check: every ``i`` whose C_i names some ``j`` with i ∉ C_j pays a fine
   R_★ + ε1 to the seller and, for each such ``j``, pays R_★ + ε1 to ``j``. If some P_i > 0
   the auction aborts: no goods are allocated, the fines and transfers stand, halt.
   Chance c1: with probability ε the star is replaced by a uniformly random player (each
   with probability ε/n, explicit outcomes ``heads_star_k``) and R' := 0.
   Chance c2 (fair): heads gives A := S^★ and halts (no money changes hands).
2. Tails: every ``i ∉ C_★`` with π^★_i ≥ 1 answers YES or NO simultaneously. Then
   P_★ := R' − nε2; every ``i ∈ C_★`` or with π^★_i = 0 receives α^★_i (at no price); an asker
   saying NO fines ★ by π^★_i; an asker saying YES receives α^★_i, pays π^★_i − ε2, and ★
   receives π^★_i − ε2. Finally every ``i`` receives ε2·(1 − 1/(1 + R_i)).

Decisions taken against or around the spec
------------------------------------------
* A reasonable outcome constrains only the prices (≥ 0): a player given nothing may be priced
  above 0, and the announcer may give goods to itself. The paper's own dominating strategy
  (Lemma 1, σ̂_C) prices members of C at TV_k(α_k) + R_C even where α_k = ∅.
* The abort rule is read literally (some P_i > 0 after the fines). Every fined player pays at
  least one fine to the seller while transfers cancel in total, so this is the same as
  "someone was fined".
* Rewards ε2·R_i/(1 + R_i) are paid on the tails branch of c2 only: the paper pays them in
  the last step of Step 2, after "If Heads: ... HALT" (its Lemma 4 analysis agrees).
* 2nε2 < ε1 needs ``n``: the constructor checks each constant in (0, 1) and, when given the
  optional ``n``, the inequality at once; :meth:`start` always checks it for the context's
  ``n`` (an env therefore reports a bad ε2 at its first ``reset``). Both raise
  :class:`ParameterError` naming ``eps2``.
* Acting agents: coalitions maximise the sum of their members' utilities (the paper's model).
  They act as agents when the context shares rewards; with ``shared_reward=False`` every
  player is rewarded alone and acts as an independent player, so the benchmark MKW is then
  taken over singletons (see :func:`acting_coalitions`).

Written once (:mod:`mechgym.envs.engine.episode`): :class:`CollusionLeveragingRules` is the
rule over a batch, with exact or float money; :class:`CollusionLeveraging`, the exact face,
runs it on a batch of one with exact money, c1 and c2 explicit chance nodes (drawn in the
announcing step, c1 first, only where the auction did not abort).

Array layout (every agent): ``answer`` (2); ``ally_j`` (2 per player: 1 = j ∈ C_i; the mask
forces the announcer's own bit to 1); ``salloc_g`` (n+1 per good: 0 = nobody, ``j + 1`` =
player ``j`` — a good assigned to a player outside the same array's alleged coalition is
*decoded as unallocated*: the mask cannot depend on the ally bits of the same action, so this
is the encoding's meaning, while a structured announcement doing so raises
:class:`MalformedAnnouncementError`); ``owner_g`` (n+1 per good, any player including the
announcer) and ``price_j`` (0..price_cap per player, always read) for Ω^i. Phase ``announce``
reads the ally, salloc, owner and price fields; ``respond`` reads ``answer``.

``state.data``: ``announced`` (B,); ``ally`` (B, n, n) bool (C_i as rows); ``salloc``,
``alloc``, ``prices`` (B, announcer, player); ``rev`` (B, n); ``top``, ``star``, ``second``
(B,); ``fined`` (B, n) money; ``aborted`` (B,); ``c1``, ``c2`` (B,: −1 not drawn; c1 = 0 keeps
the star, k + 1 makes player k the star; c2 = 0 heads, 1 tails); ``answers`` (B, n).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import (
    Offer,
    check_amount,
    check_answer,
    check_bundle,
    describe_offer,
    offer_stage_size,
)
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchOutcome,
    BatchState,
    check_context,
    draw,
    register_batched,
)
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import Chance, EnvSpec, Examples, Guarantee, as_fraction
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.knowledge_benchmark import checked_actions, reduce_last, star_offer
from mechgym.envs.mechanisms.offer_rules import (
    HALF,
    PhaseMasks,
    decode_offers,
    merge,
    star_features,
    winner_of,
    write_offer_stage,
)
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.model.context import Partition
from mechgym.envs.solvers import packing as solvers
from mechgym.envs.solvers.packing import best_knowledge, max_packing, msw

C2 = Chance("c2", ("heads", "tails"), (HALF, HALF))


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


# -- the coalition's knowledge ---------------------------------------------------------------


def acting_coalitions(ctx: Any) -> Partition:
    """The agents of the game: the context's coalitions when rewards are shared, else singletons."""
    return ctx.acting_coalitions


def acting_coalition_of(ctx: Any, i: int) -> tuple[int, ...]:
    """The agent that player ``i`` belongs to (see :func:`acting_coalitions`)."""
    return ctx.coalition_of(i) if ctx.shared_reward else (i,)


def relevant_knowledge(ctx: Any, coalition: Iterable[int]) -> Offer:
    """RK_C (seed 002, Definition 6): the MKW_C-optimal outcome on C's pooled knowledge.

    Members of C are priced at their true value of what they get (0 when they get nothing),
    outsiders at C's pooled lower bound K^C_j(A_j); REV(RK_C) = MKW_C.
    """
    members = tuple(sorted(coalition))
    b = best_knowledge(ctx, members)
    prices = tuple(
        int(ctx.values[j, b.alloc[j]]) if j in members else int(b.prices[j]) for j in range(ctx.n)
    )
    return Offer(tuple(b.alloc), prices)


def best_allocation(ctx: Any, coalition: Iterable[int]) -> tuple[int, ...]:
    """BA^C: a welfare-maximising allocation among the members of C (others get nothing)."""
    members = set(coalition)
    W = np.array(ctx.values, dtype=np.int64)
    for j in range(ctx.n):
        if j not in members:
            W[j] = 0
    return tuple(max_packing(W).alloc)


def hidden_value(ctx: Any, coalition: Iterable[int], offer: Offer) -> int:
    """HiddenV_C(Ω) = Σ_{k∈C} TV_k(α_k) + Σ_{k∉C} π_k of an announced outcome (integral)."""
    return int(solvers.hidden_value(ctx, tuple(coalition), offer.alloc, offer.prices))


# -- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CLAnnouncement:
    """Step-1 action of M4.

    Attributes
    ----------
    coalition : tuple[int, ...]
        C_i, the alleged coalition (must contain the announcer).
    alloc : tuple[int, ...]
        S^i, one bundle per player; only members of C_i may get goods.
    offer : Offer
        Ω^i = (α^i, π^i): any disjoint bundles (the announcer included), prices ≥ 0.
    """

    coalition: tuple[int, ...]
    alloc: tuple[int, ...]
    offer: Offer


def check_coalition(
    coalition: object, n: int, player: int, agent: str, phase: str
) -> tuple[int, ...]:
    """Validate an alleged coalition: distinct player indices that include ``player``."""
    if isinstance(coalition, str | bytes) or not isinstance(coalition, Iterable):
        raise MalformedAnnouncementError(
            agent,
            phase,
            f"the alleged coalition must be a collection of players, got {coalition!r}",
        )
    # at most n + 1 items: an endless iterable is refused, not read forever
    members = list(itertools.islice(coalition, n + 1))
    if len(members) > n:
        raise MalformedAnnouncementError(
            agent, phase, f"an alleged coalition has at most {n} members"
        )
    for p in members:
        if not _is_int(p) or not 0 <= int(p) < n:
            raise MalformedAnnouncementError(
                agent, phase, f"alleged coalition member {p!r} is not a player in 0..{n - 1}"
            )
    ints = [int(p) for p in members]
    if len(set(ints)) != len(ints):
        raise MalformedAnnouncementError(
            agent, phase, f"alleged coalition {ints} lists a player twice"
        )
    if player not in ints:
        raise MalformedAnnouncementError(
            agent,
            phase,
            f"the alleged coalition {sorted(ints)} must contain the announcer (player {player})",
        )
    return tuple(sorted(ints))


def _check_bundles(
    bundles: object, n: int, m: int, agent: str, phase: str, what: str
) -> tuple[int, ...]:
    if isinstance(bundles, str | bytes) or not isinstance(bundles, Iterable):
        raise MalformedAnnouncementError(agent, phase, f"{what} must be a sequence of {n} bundles")
    items = list(itertools.islice(bundles, n + 1))
    if len(items) != n:
        raise MalformedAnnouncementError(
            agent, phase, f"{what} needs {n} bundles, got {len(items)}"
        )
    out = tuple(
        check_bundle(b, m, agent, phase, f"{what}: bundle of player {j}")
        for j, b in enumerate(items)
    )
    used = 0
    for j, b in enumerate(out):
        if used & b:
            raise MalformedAnnouncementError(
                agent, phase, f"{what}: bundle of player {j} overlaps another player's bundle"
            )
        used |= b
    return out


def check_reasonable_offer(offer: object, n: int, m: int, agent: str, phase: str) -> Offer:
    """Validate a reasonable outcome: disjoint bundles for all ``n`` players, integer prices ≥ 0."""
    if not isinstance(offer, Offer):
        raise MalformedAnnouncementError(
            agent, phase, f"expected an Offer as Ω^i, got {type(offer).__name__}"
        )
    alloc = _check_bundles(offer.alloc, n, m, agent, phase, "outcome Ω^i")
    prices = (
        list(itertools.islice(offer.prices, n + 1)) if isinstance(offer.prices, Iterable) else None
    )
    if prices is None or len(prices) != n:
        raise MalformedAnnouncementError(agent, phase, f"outcome Ω^i needs {n} prices")
    for j, p in enumerate(prices):
        if not _is_int(p):
            raise MalformedAnnouncementError(
                agent, phase, f"price for player {j} must be an integer, got {p!r}"
            )
        if int(p) < 0:
            raise MalformedAnnouncementError(
                agent,
                phase,
                f"price for player {j} must be >= 0 (a reasonable outcome), got {int(p)}",
            )
        check_amount(p, agent, phase, f"price for player {j}")
    return Offer(alloc, tuple(int(p) for p in prices))


# -- mechanism -------------------------------------------------------------------------------


def _unit_constant(x: Any, name: str) -> Fraction:
    e = as_fraction(x, name)
    if not 0 < e < 1:
        raise ParameterError(name, f"must lie in (0, 1), got {e}")
    return e


def _players(n: int, m: int) -> int:
    return n


class CollusionLeveraging(BatchOfOne):
    """M4: E[REV] + E[SW] ≥ (1 − ε)·MKW/6 − ε1 in every rational play (Theorem 1).

    Parameters
    ----------
    eps : number in (0, 1), default 1/10
        Probability that c1 replaces the star by a uniformly random player.
    eps1 : number in (0, 1), default 1/10
        Fine added to R_★ for an inconsistent coalition declaration.
    eps2 : number in (0, 1), default 1/1000
        Discount of accepted prices and scale of the revenue rewards; needs 2·n·eps2 < eps1.
    n : int, optional
        The number of players, to check 2·n·eps2 < eps1 at construction (always checked again
        at :meth:`start`).
    """

    name = "collusion_leveraging"
    title = "Collusion-leveraging mechanism (seed 002, Sec. 4)"
    phases = ("announce", "respond")
    mask_depends_on_state = False
    # only the players offered a bundle answer YES/NO
    every_player_acts = False

    # eps2 = 1/100 keeps 2·n·eps2 < eps1 = 1/10 up to n = 4
    parameter_examples: ClassVar[Examples] = {
        "eps": ("1/3", "1/100"),
        "eps1": ("1/2",),
        "eps2": ("1/100",),
        "n": (_players,),
    }

    def __init__(
        self, eps: Any = "1/10", eps1: Any = "1/10", eps2: Any = "1/1000", n: int | None = None
    ) -> None:
        self.eps = _unit_constant(eps, "eps")
        self.eps1 = _unit_constant(eps1, "eps1")
        self.eps2 = _unit_constant(eps2, "eps2")
        if n is not None:
            if not _is_int(n) or int(n) < 2:
                raise ParameterError("n", f"must be an integer >= 2, got {n!r}")
            self.check_players(int(n))
        self.n = None if n is None else int(n)
        self._c1: dict[int, Chance] = {}

    def check_players(self, n: int) -> None:
        """Raise :class:`ParameterError` unless 2·n·ε2 < ε1."""
        if not 2 * n * self.eps2 < self.eps1:
            raise ParameterError(
                "eps2",
                f"needs 2*n*eps2 < eps1; with n = {n}: 2*{n}*{self.eps2} = {2 * n * self.eps2}"
                f" is not below eps1 = {self.eps1}",
            )

    def params(self) -> dict[str, Any]:
        return {"eps": str(self.eps), "eps1": str(self.eps1), "eps2": str(self.eps2)}

    # -- theory ------------------------------------------------------------------------------
    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        """MSW; MKW_C of every acting agent; MKW (pooled knowledge); MKW over singletons."""
        agents = acting_coalitions(ctx)
        per = [best_knowledge(ctx, c).value for c in agents]
        singles = [best_knowledge(ctx, (i,)).value for i in range(ctx.n)]
        return {
            "MSW": msw(ctx).value,
            "coalitions": [list(c) for c in agents],
            "MKW_C": per,
            "MKW": max(per),
            "MKW_singletons": max(singles),
        }

    def guarantee_bound(self, ctx: Any) -> Fraction:
        """(1 − ε)·MKW/6 − ε1 with MKW on the pooled knowledge of the acting coalitions."""
        top = max(best_knowledge(ctx, c).value for c in acting_coalitions(ctx))
        return (1 - self.eps) * Fraction(top, 6) - self.eps1

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee:
        """Theorem 1 of seed 002: E[REV] + E[SW] ≥ (1 − ε)·MKW/6 − ε1."""
        return Guarantee(
            "E[REV] + E[SW] >= (1 - eps) MKW/6 - eps1",
            self.guarantee_bound(ctx),
            ev.expected_welfare + ev.expected_revenue,
        )

    # -- rules -------------------------------------------------------------------------------
    def c1_node(self, n: int) -> Chance:
        """c1: keep the star w.p. 1 − ε, else each player becomes the star w.p. ε/n."""
        node = self._c1.get(n)
        if node is None:
            node = Chance(
                "c1",
                ("tails", *(f"heads_star_{k}" for k in range(n))),
                (1 - self.eps, *([self.eps / n] * n)),
            )
            self._c1[n] = node
        return node

    def validate(self, s: Episode, player: int, action: Any) -> Any:
        agent = f"player_{player}"
        n, m = s.ctx.n, s.ctx.m
        if s.state.phase[0] == ANNOUNCE:
            phase = "announce"
            if not isinstance(action, CLAnnouncement):
                raise MalformedAnnouncementError(
                    agent, phase, f"expected a CLAnnouncement, got {type(action).__name__}"
                )
            coalition = check_coalition(action.coalition, n, player, agent, phase)
            alloc = _check_bundles(action.alloc, n, m, agent, phase, "allocation S^i")
            for j, b in enumerate(alloc):
                if b and j not in coalition:
                    raise MalformedAnnouncementError(
                        agent,
                        phase,
                        f"allocation S^i gives goods to player {j}, "
                        f"outside the alleged coalition {list(coalition)}",
                    )
            offer = check_reasonable_offer(action.offer, n, m, agent, phase)
            return CLAnnouncement(coalition, alloc, offer)
        return check_answer(action, agent, "respond")

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        n = s.ctx.n
        moves = {
            "ally": np.zeros((1, n, n), dtype=bool),
            "salloc": np.zeros((1, n, n), dtype=np.int64),
            "alloc": np.zeros((1, n, n), dtype=np.int64),
            "prices": np.zeros((1, n, n), dtype=np.int64),
            "yes": np.zeros((1, n), dtype=bool),
        }
        for i, a in actions.items():
            if isinstance(a, CLAnnouncement):
                moves["ally"][0, i, list(a.coalition)] = True
                moves["salloc"][0, i] = a.alloc
                moves["alloc"][0, i] = a.offer.alloc
                moves["prices"][0, i] = a.offer.prices
            else:
                moves["yes"][0, i] = bool(a)
        return moves

    # -- encodings ---------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        n, m = spec.n, spec.m
        return ActionLayout(
            [("answer", 2)]
            + [(f"ally_{j}", 2) for j in range(n)]
            + [(f"salloc_{g}", n + 1) for g in range(m)]
            + [(f"owner_{g}", n + 1) for g in range(m)]
            + [(f"price_{j}", spec.price_cap + 1) for j in range(n)]
        )

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        if s.state.phase[0] != ANNOUNCE:
            return bool(vec[layout.index["answer"]])
        n, m = spec.n, spec.m
        ix = layout.index
        coalition = tuple(j for j in range(n) if j == player or vec[ix[f"ally_{j}"]])
        members = set(coalition)
        salloc = [0] * n
        alloc = [0] * n
        for g in range(m):
            o = int(vec[ix[f"salloc_{g}"]])
            if o and o - 1 in members:  # goods for non-members mean "unallocated"
                salloc[o - 1] |= 1 << g
            o = int(vec[ix[f"owner_{g}"]])
            if o:
                alloc[o - 1] |= 1 << g
        prices = tuple(int(vec[ix[f"price_{j}"]]) for j in range(n))
        return CLAnnouncement(coalition, tuple(salloc), Offer(tuple(alloc), prices))

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        ix = layout.index
        if s.state.phase[0] != ANNOUNCE:
            vec[ix["answer"]] = int(bool(action))
            return vec
        agent = f"player_{player}"
        for j in action.coalition:
            vec[ix[f"ally_{j}"]] = 1
        for j, b in enumerate(action.alloc):
            for g in range(spec.m):
                if b >> g & 1:
                    vec[ix[f"salloc_{g}"]] = j + 1
        for j, b in enumerate(action.offer.alloc):
            for g in range(spec.m):
                if b >> g & 1:
                    vec[ix[f"owner_{g}"]] = j + 1
        for j, p in enumerate(action.offer.prices):
            if not 0 <= int(p) <= spec.price_cap:
                raise OutOfSpaceError(
                    agent,
                    "announce",
                    f"price {p} for player {j} is outside the grid 0..{spec.price_cap}",
                )
            vec[ix[f"price_{j}"]] = int(p)
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        n = spec.n
        return n * n + 3 * n + 5 + offer_stage_size(spec)

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        if isinstance(action, CLAnnouncement):
            s_parts = [f"p{j}:{{{format_bundle(b)}}}" for j, b in enumerate(action.alloc) if b]
            return (
                f"C={list(action.coalition)} S=[{', '.join(s_parts) or '-'}] "
                f"{describe_offer(action.offer, priced_empty=True)}"
            )
        return "YES" if action else "NO"


ANNOUNCE, RESPOND = 0, 1


def inconsistent(ally: np.ndarray) -> np.ndarray:
    """``(B, n, n)``: ``[b, i, j]`` iff ``j ∈ C_i``, ``j ≠ i`` and ``i ∉ C_j``."""
    n = ally.shape[1]
    return ally & ~np.eye(n, dtype=bool) & ~ally.transpose(0, 2, 1)


def fine_counts(ally: np.ndarray) -> np.ndarray:
    """``(B, n)`` int: each player's consistency price in units of the fine R_★ + ε1.

    A player naming ``k`` allies who omit it pays ``1 + k`` fines (one to the seller, one to
    each such ally) and receives one from every player who names it in vain.
    """
    bad = inconsistent(ally)
    named = reduce_last(np.add, bad)
    return (named > 0) + named - reduce_last(np.add, bad.transpose(0, 2, 1))


@register_batched
class CollusionLeveragingRules(MoveRules):
    """The rules of :class:`CollusionLeveraging` over a batch."""

    mechanism = CollusionLeveraging
    implements = frozenset({"eps", "eps1", "eps2", "n"})

    def __init__(self, mech: CollusionLeveraging, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        if mech.n is not None and mech.n != spec.n:
            raise ParameterError(
                "n", f"the mechanism was built for n = {mech.n}, the env has {spec.n} players"
            )
        mech.check_players(spec.n)
        self.eps1 = money.constant(mech.eps1)
        self.eps2 = money.constant(mech.eps2)
        self.c1 = mech.c1_node(spec.n)
        self.c1_probs = np.array([float(p) for p in self.c1.probs])
        self.c2_probs = np.array([float(p) for p in C2.probs])
        lay = self.layout
        n = spec.n
        announce = np.stack(
            [
                lay.mask(
                    {
                        **{name: True for name in lay.names if name != "answer"},
                        f"ally_{i}": np.array([0, 1], dtype=np.int8),
                    }
                )
                for i in range(n)
            ]
        )
        respond = np.broadcast_to(lay.mask({"answer": True}), (n, lay.mask_size))
        self._masks = PhaseMasks([announce, respond], lay.mask({}))
        self._answer = lay.index["answer"]
        self._ally = lay.index["ally_0"]
        self._salloc = [lay.index[f"salloc_{g}"] for g in range(spec.m)]
        self._price = lay.index["price_0"]

    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
        check_context(self, ctx)
        B, n = ctx.B, ctx.n
        data = {
            "announced": np.zeros(B, dtype=bool),
            "ally": np.zeros((B, n, n), dtype=bool),
            "salloc": np.zeros((B, n, n), dtype=np.int64),
            "alloc": np.zeros((B, n, n), dtype=np.int64),
            "prices": np.zeros((B, n, n), dtype=np.int64),
            "rev": np.zeros((B, n), dtype=np.int64),
            "top": np.zeros(B, dtype=np.int64),
            "star": np.zeros(B, dtype=np.int64),
            "second": np.zeros(B, dtype=np.int64),
            "fined": self.money.zeros((B, n)),
            "aborted": np.zeros(B, dtype=bool),
            "c1": np.full(B, -1, dtype=np.int64),
            "c2": np.full(B, -1, dtype=np.int64),
            "answers": np.zeros((B, n), dtype=np.int8),
        }
        return BatchState(np.zeros(B, dtype=np.int64), np.ones((B, n), dtype=bool), data)

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        return self._masks.rows(state.phase, state.acting)

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        """Alleged coalitions, allocations S^i and outcomes Ω^i of ``(B, n, L)`` arrays."""
        actions = checked_actions(self, state, actions)
        n = self.spec.n
        ally = actions[:, :, self._ally : self._ally + n] != 0
        ally |= np.eye(n, dtype=bool)
        players = np.arange(1, n + 1)
        salloc = np.zeros(ally.shape, dtype=np.int64)
        for g, k in enumerate(self._salloc):
            # goods for players outside the same array's alleged coalition stay unallocated
            salloc |= ((actions[:, :, k, None] == players) & ally) << g
        alloc, _ = decode_offers(actions, self.spec, self.layout, 0)
        prices = actions[:, :, self._price : self._price + n].astype(np.int64)
        yes = actions[:, :, self._answer] != 0
        return {"ally": ally, "salloc": salloc, "alloc": alloc, "prices": prices, "yes": yes}

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        d = dict(state.data)
        chance = list(state.chance)
        B = state.phase.shape[0]
        rows = np.arange(B)
        phase = state.phase.copy()
        acting = state.acting.copy()
        ann = phase == ANNOUNCE
        res = phase == RESPOND
        done = np.zeros_like(ann)
        if ann.any():
            ally, salloc = moves["ally"], moves["salloc"]
            alloc, prices = moves["alloc"], moves["prices"]
            rev = reduce_last(np.add, prices)  # R_i = REV(Ω^i)
            top = winner_of(rev)
            counts = fine_counts(ally)
            fine = self.money.array(rev[rows, top]) + self.eps1
            aborted = ann & reduce_last(np.logical_or, counts > 0)
            live = ann & ~aborted
            c1 = draw(rng, self.c1_probs, live, self.c1)
            c2 = draw(rng, self.c2_probs, live, C2)
            if live.any():
                chance.append(c1)
                chance.append(c2)
            # R' before c1: max R_i over i ∉ C_top (revenues are ≥ 0, so 0 when none)
            top_second = reduce_last(np.maximum, np.where(ally[rows, top], 0, rev))
            star = np.where(c1 > 0, c1 - 1, top)
            second = np.where(c1 > 0, 0, top_second)
            d["ally"] = merge(ann, ally, d["ally"])
            d["salloc"] = merge(ann, salloc, d["salloc"])
            d["alloc"] = merge(ann, alloc, d["alloc"])
            d["prices"] = merge(ann, prices, d["prices"])
            d["rev"] = merge(ann, rev, d["rev"])
            d["top"] = merge(ann, top, d["top"])
            d["star"] = merge(ann, star, d["star"])
            d["second"] = merge(ann, second, d["second"])
            d["fined"] = merge(ann, counts * fine[:, None], d["fined"])
            d["aborted"] = d["aborted"] | aborted
            d["c1"] = merge(ann, c1, d["c1"])
            d["c2"] = merge(ann, c2, d["c2"])
            d["announced"] = d["announced"] | ann
            asked = self.askers(d)
            to_respond = live & (c2 == 1) & reduce_last(np.logical_or, asked)
            phase[to_respond] = RESPOND
            acting = merge(ann, asked & to_respond[:, None], acting)
            done |= ann & ~to_respond
        if res.any():
            said = np.where(moves["yes"], 1, -1).astype(np.int8)
            d["answers"] = np.where(res[:, None] & acting, said, d["answers"])
            done |= res
        phase[done] = TERMINAL
        acting[done] = False
        return BatchState(phase, acting, d, chance)

    @staticmethod
    def askers(d: dict[str, np.ndarray]) -> np.ndarray:
        """``(B, n)``: players outside C_★ with π^★_i ≥ 1 (asked on tails of c2)."""
        rows = np.arange(d["star"].shape[0])
        return ~d["ally"][rows, d["star"]] & (d["prices"][rows, d["star"]] >= 1)

    def outcome(self, state: BatchState) -> BatchOutcome:
        d = state.data
        n, e2, money = d["rev"].shape[1], self.eps2, self.money
        B = d["star"].shape[0]
        rows = np.arange(B)
        alloc_s, prices_s = star_offer(d)
        allies = d["ally"][rows, d["star"]]
        free = allies | (prices_s == 0)
        yes = ~free & (d["answers"] == 1)
        no = ~free & ~yes
        zeros = money.zeros((B, n))
        pay = np.where(yes, money.array(prices_s) - e2, zeros)
        refused = money.array(reduce_last(np.add, np.where(no, prices_s, 0)))
        star_pays = money.array(d["second"]) - n * e2 - reduce_last(np.add, pay) + refused
        star = np.arange(n)[None, :] == d["star"][:, None]
        r = money.array(d["rev"])
        tails_prices = pay + star * star_pays[:, None] - e2 * money.ratio(r, 1 + r)
        tails_alloc = np.where(free | yes, alloc_s, 0)
        heads = (d["c2"] == 0)[:, None]
        aborted = d["aborted"][:, None]
        alloc = np.where(heads, d["salloc"][rows, d["star"]], tails_alloc)
        alloc = np.where(aborted, 0, alloc).astype(np.int64)
        prices = np.where(aborted, d["fined"], np.where(heads, zeros, tails_prices))
        return BatchOutcome.of_bundles(alloc, prices)

    def outcome_rule(self, state: BatchState) -> str:
        d = state.data
        if d["aborted"][0]:
            return "abort"
        return "heads" if d["c2"][0] == 0 else "tails"

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        alloc, prices = star_offer(state.data)
        return (state.phase == RESPOND)[:, None] & state.acting, alloc, prices

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        return self.public_features_all(state)[:, player]

    def public_features_all(self, state: BatchState) -> np.ndarray:
        """[star one-hot | revenues | declared coalitions (n×n) | aborted | c1 (kept, random) |
        c2 (heads, tails) | Ω^★ (owners, prices) | own question | answers]."""
        d = state.data
        n = self.spec.n
        out = star_features(d, n, self.mech.public_size(self.spec))
        B = out.shape[0]
        if not d["announced"].any():
            return np.zeros((B, n, out.shape[1]), dtype=np.float32)
        k = 2 * n
        out[:, k : k + n * n] = d["ally"].reshape(B, n * n)
        k += n * n
        out[:, k] = d["aborted"]
        k += 1
        c1, c2 = d["c1"], d["c2"]
        out[:, k] = c1 == 0
        out[:, k + 1] = c1 > 0
        k += 2
        out[:, k] = c2 == 0
        out[:, k + 1] = c2 == 1
        k += 2
        out[~d["announced"]] = 0.0
        out = np.repeat(out[:, None, :], n, axis=1)
        alloc_s, prices_s = star_offer(d)
        asked = (c2 == 1)[:, None] & self.askers(d)
        write_offer_stage(out, k, self.spec, alloc_s, prices_s, None, asked, d["answers"])
        out[~d["announced"]] = 0.0
        return out


# reasonable offers price every player; a factored offer prices only non-empty bundles
register_factored("collusion_leveraging", price_offset=0)
