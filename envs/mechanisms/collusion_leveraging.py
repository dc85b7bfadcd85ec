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

Array layout (every agent): ``answer`` (2); ``ally_j`` (2 per player: 1 = j ∈ C_i; the mask
forces the announcer's own bit to 1); ``salloc_g`` (n+1 per good: 0 = nobody, ``j + 1`` =
player ``j`` — a good assigned to a player outside the same array's alleged coalition is
*decoded as unallocated*: the mask cannot depend on the ally bits of the same action, so this
is the encoding's meaning, while a structured announcement doing so raises
:class:`MalformedAnnouncementError`); ``owner_g`` (n+1 per good, any player including the
announcer) and ``price_j`` (0..price_cap per player, always read) for Ω^i. Phase ``announce``
reads the ally, salloc, owner and price fields; ``respond`` reads ``answer``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
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
    write_offer_stage,
)
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import register_factored
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
from mechgym.envs.mechanisms.offer_rules import HALF, AnnouncedOffers
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.model.context import Partition
from mechgym.envs.model.outcome import Outcome
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


# -- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CollusionLeveragingState(AnnouncedOffers):
    """Public state of M4.

    ``c1`` is 0 when the first coin keeps the announced star (probability 1 − ε) and ``k + 1``
    when it makes player ``k`` the star; ``c2`` is 0 for heads, 1 for tails.
    """

    n: int
    m: int
    announcements: tuple[CLAnnouncement, ...] | None = None
    c1: int | None = None
    c2: int | None = None
    answers: tuple[tuple[int, bool], ...] | None = None

    @property
    def top_second(self) -> int:
        """R' before c1: max_{i ∉ C_★} R_i, 0 if C_★ names everyone."""
        star = self.top
        allies = set(self.announcements[star].coalition)
        rest = [r for i, r in enumerate(self.revenues) if i not in allies]
        return max(rest, default=0)

    def inconsistent(self) -> tuple[tuple[int, ...], ...]:
        """For each ``i``, the ``j ∈ C_i`` (j ≠ i) whose own C_j omits ``i``."""
        anns = self.announcements
        return tuple(
            tuple(j for j in a.coalition if j != i and i not in anns[j].coalition)
            for i, a in enumerate(anns)
        )

    @property
    def star(self) -> int:
        """★ after c1."""
        return self.top if not self.c1 else self.c1 - 1

    @property
    def second(self) -> int:
        """R' after c1 (0 when c1 picked a random star)."""
        return self.top_second if not self.c1 else 0

    @property
    def askers(self) -> tuple[int, ...]:
        """Players outside C_★ with π^★_i ≥ 1."""
        a = self.announcements[self.star]
        allies = set(a.coalition)
        return tuple(i for i in range(self.n) if i not in allies and a.offer.prices[i] >= 1)


# -- mechanism -------------------------------------------------------------------------------


def _unit_constant(x: Any, name: str) -> Fraction:
    e = as_fraction(x, name)
    if not 0 < e < 1:
        raise ParameterError(name, f"must lie in (0, 1), got {e}")
    return e


def _players(n: int, m: int) -> int:
    return n


class CollusionLeveraging(Mechanism):
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
    def start(self, ctx: Any) -> CollusionLeveragingState:
        if self.n is not None and ctx.n != self.n:
            raise ParameterError(
                "n", f"the mechanism was built for n = {self.n}, the context has {ctx.n} players"
            )
        self.check_players(ctx.n)
        return CollusionLeveragingState(ctx.n, ctx.m)

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

    def fines(self, s: CollusionLeveragingState) -> tuple[Fraction, ...]:
        """Prices after the consistency check (fines to the seller, transfers between players)."""
        fine = s.revenues[s.top] + self.eps1
        prices = [Fraction(0)] * s.n
        for i, bad in enumerate(s.inconsistent()):
            if bad:
                prices[i] += fine
                for j in bad:
                    prices[i] += fine
                    prices[j] -= fine
        return tuple(prices)

    def node(self, s: CollusionLeveragingState) -> Node:
        if s.announcements is None:
            return Decision(tuple(range(s.n)), "announce")
        fined = self.fines(s)
        if any(p > 0 for p in fined):
            return Terminal(Outcome((0,) * s.n, fined, rule="abort"))
        if s.c1 is None:
            return self.c1_node(s.n)
        if s.c2 is None:
            return C2
        if s.c2 == 0:
            alloc = s.announcements[s.star].alloc
            return Terminal(Outcome(tuple(alloc), (Fraction(0),) * s.n, rule="heads"))
        if s.answers is None:
            askers = s.askers
            if askers:
                return Decision(askers, "respond")
        return Terminal(self.tails_outcome(s, dict(s.answers or ())))

    def tails_outcome(self, s: CollusionLeveragingState, answers: Mapping[int, bool]) -> Outcome:
        """Step 2's sale of Ω^★ and the final rewards."""
        n, star, e2 = s.n, s.star, self.eps2
        ann = s.announcements[star]
        allies = set(ann.coalition)
        offer = ann.offer
        alloc = [0] * n
        prices = [Fraction(0)] * n
        prices[star] = s.second - n * e2
        for i in range(n):
            if i in allies or offer.prices[i] == 0:
                alloc[i] = offer.alloc[i]
            elif answers[i]:
                alloc[i] = offer.alloc[i]
                prices[i] += offer.prices[i] - e2
                prices[star] -= offer.prices[i] - e2
            else:
                prices[star] += offer.prices[i]
        for i, r in enumerate(s.revenues):
            prices[i] -= e2 * Fraction(r, 1 + r)
        return Outcome(tuple(alloc), tuple(prices), rule="tails")

    def pending_offer(self, s: CollusionLeveragingState, player: int) -> PendingOffer | None:
        """At ``respond`` (askers outside C_★ with π^★_i ≥ 1): the star's offer Ω^★ after c1."""
        if not asked_at(self, s, player, "respond"):
            return None
        offer = s.announcements[s.star].offer
        return PendingOffer(int(offer.alloc[player]), int(offer.prices[player]))

    def validate(self, s: CollusionLeveragingState, player: int, action: Any) -> Any:
        agent = f"player_{player}"
        if s.announcements is None:
            phase = "announce"
            if not isinstance(action, CLAnnouncement):
                raise MalformedAnnouncementError(
                    agent, phase, f"expected a CLAnnouncement, got {type(action).__name__}"
                )
            coalition = check_coalition(action.coalition, s.n, player, agent, phase)
            alloc = _check_bundles(action.alloc, s.n, s.m, agent, phase, "allocation S^i")
            for j, b in enumerate(alloc):
                if b and j not in coalition:
                    raise MalformedAnnouncementError(
                        agent,
                        phase,
                        f"allocation S^i gives goods to player {j}, "
                        f"outside the alleged coalition {list(coalition)}",
                    )
            offer = check_reasonable_offer(action.offer, s.n, s.m, agent, phase)
            return CLAnnouncement(coalition, alloc, offer)
        return check_answer(action, agent, "respond")

    def resolve(
        self, s: CollusionLeveragingState, actions: Mapping[int, Any]
    ) -> CollusionLeveragingState:
        if s.announcements is None:
            return replace(s, announcements=tuple(actions[i] for i in range(s.n)))
        return replace(s, answers=tuple(sorted(actions.items())))

    def chance(self, s: CollusionLeveragingState, index: int) -> CollusionLeveragingState:
        if s.c1 is None:
            return replace(s, c1=index)
        return replace(s, c2=index)

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

    def action_mask(
        self, s: CollusionLeveragingState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        if s.announcements is None:
            allowed: dict[str, Any] = {name: True for name in layout.names if name != "answer"}
            allowed[f"ally_{player}"] = np.array([0, 1], dtype=np.int8)
            return layout.mask(allowed)
        return layout.mask({"answer": True})

    def decode(
        self,
        s: CollusionLeveragingState,
        player: int,
        vec: np.ndarray,
        spec: EnvSpec,
        layout: ActionLayout,
    ) -> Any:
        if s.announcements is not None:
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
        self,
        s: CollusionLeveragingState,
        player: int,
        action: Any,
        spec: EnvSpec,
        layout: ActionLayout,
    ) -> np.ndarray:
        vec = layout.zeros()
        ix = layout.index
        if s.announcements is not None:
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

    def public_features(
        self, s: CollusionLeveragingState, player: int, spec: EnvSpec
    ) -> np.ndarray:
        """[star one-hot | revenues | declared coalitions (n×n) | aborted | c1 (kept, random) |
        c2 (heads, tails) | Ω^★ (owners, prices) | own question | answers]."""
        n = spec.n
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        if s.announcements is None:
            return out
        out[s.star] = 1.0
        out[n : 2 * n] = s.revenues
        k = 2 * n
        for i, a in enumerate(s.announcements):
            for j in a.coalition:
                out[k + i * n + j] = 1.0
        k += n * n
        out[k] = 1.0 if any(p > 0 for p in self.fines(s)) else 0.0
        k += 1
        if s.c1 is not None:
            out[k + (1 if s.c1 else 0)] = 1.0
        k += 2
        if s.c2 is not None:
            out[k + s.c2] = 1.0
        k += 2
        offer = s.announcements[s.star].offer
        asked = s.c2 == 1 and player in s.askers
        write_offer_stage(out, k, spec, offer, player, asked, s.answers)
        return out

    def describe_action(self, s: CollusionLeveragingState, player: int, action: Any) -> str:
        if isinstance(action, CLAnnouncement):
            s_parts = [f"p{j}:{{{format_bundle(b)}}}" for j, b in enumerate(action.alloc) if b]
            return (
                f"C={list(action.coalition)} S=[{', '.join(s_parts) or '-'}] "
                f"{describe_offer(action.offer, priced_empty=True)}"
            )
        return "YES" if action else "NO"


# reasonable offers price every player; a factored offer prices only non-empty bundles
register_factored("collusion_leveraging", price_offset=0)
