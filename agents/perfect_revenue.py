"""Scripted play of M5 (seed 003): the truthful profiles θ̄ (Definition 1) and Θ̄
(Definition 2), documented deviations, and the compact menu.

θ̄ (non-collusive): player 0 announces the lowest-index welfare-maximising state ω* with
K_i = θ_i(ω*); raiser ``d`` raises every ``j ≠ d`` to θ_j(ω*) when the current price is lower
(Δ^d_j = max(0, θ_j(ω*) − K_j − Σ_{ℓ<d} Δ^ℓ_j)); player ``i`` answers YES iff θ_i(ω*) ≥ P*_i.

Θ̄ (collusive, shared-reward coalitions): prices are set on each coalition's lowest-index
member — K_k = Σ_{j∈C} θ_j(ω*) for the lowest member ``k`` of ``C`` and 0 for the others; a
raiser raises the lowest member ``k`` of every coalition by
max(0, Σ_C θ(ω*) − Σ_C K − Σ_C Σ_{ℓ<d} Δ^ℓ) and nobody else; a member answers YES iff
Σ_C θ(ω*) ≥ Σ_C P*. Definition 2 also covers the raiser's own coalition; when its lowest member
is the raiser itself, that entry must stay 0 (Δ^d_d = 0) and we keep it 0.

Which profile is predicted: Θ̄ when the context has a shared-reward coalition of two or more
players, θ̄ otherwise (members of coalitions without shared rewards act individually).

What holds with coalitions (checked exactly by :func:`mechgym.envs.solvers.spe.solve_spe`):
the equilibrium path is Θ̄'s and the equilibrium outcome is unique, with SW = MSW, revenue
≥ (1 − 3εn)·MSW and coalition utilities ≥ 0 — but Θ̄ is *not* subgame perfect: at many
off-path nodes it is strictly worse than the SPE for its mover (not a tie). Example: types
[[1,0],[0,0],[0,1]], coalition {0,1}, after K = (0,0,1), Δ¹ = (1,0,0), Δ² = (0,1,0) Θ̄ has both
members say NO (coalition −3.794), while player 0 saying YES moves the fine for the refusal
off its partner and onto outsider 2 (−1.866). Seed 003's Lemma 1' ("strictly dominant for a
coalition to be unanimous") misses that a NO fines the refuser's raiser, who may be a partner.
So learned play is compared with the SPE profile (:class:`SPEReference`, the agents'
``reference``), and Θ̄'s distance from it is reported separately.
"""

from __future__ import annotations

import weakref
from typing import Any

from mechgym.envs.engine.episode import Episode
from mechgym.envs.engine.errors import SolverError
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue, PRProposal, PRRaise

from .base import MechanismAgents, PhasePolicy, RandomPolicy, register_agents
from .offers import offer_to


def effective_coalitions(ctx: Any) -> tuple[tuple[int, ...], ...]:
    """The coalitions that act jointly: ``ctx.coalitions`` with shared rewards, else singletons."""
    if ctx.shared_reward:
        return tuple(ctx.coalitions)
    return tuple((i,) for i in range(ctx.n))


def truthful_proposal(ctx: Any, collusive: bool) -> PRProposal:
    """θ̄'s (or Θ̄'s) proposal: the lowest-index welfare-maximising state, truthfully priced."""
    w = ctx.best_state()
    col = [int(x) for x in ctx.types[:, w]]
    if not collusive:
        return PRProposal(w, tuple(col))
    prices = [0] * ctx.n
    for c in effective_coalitions(ctx):
        prices[c[0]] = sum(col[j] for j in c)
    return PRProposal(w, tuple(prices))


def truthful_raise(
    mech: PerfectRevenue, ctx: Any, state: Episode, d: int, collusive: bool
) -> PRRaise:
    """θ̄'s (or Θ̄'s) raise of player ``d`` at ``state``."""
    w, cur = mech.proposal_view(state)
    col = [int(x) for x in ctx.types[:, w]]
    amounts = [0] * ctx.n
    if not collusive:
        for j in range(ctx.n):
            if j != d:
                amounts[j] = max(0, col[j] - cur[j])
    else:
        for c in effective_coalitions(ctx):
            k = c[0]
            if k != d:
                amounts[k] = max(0, sum(col[j] for j in c) - sum(cur[j] for j in c))
    return PRRaise(tuple(amounts))


def truthful_answer(
    mech: PerfectRevenue, ctx: Any, state: Episode, i: int, collusive: bool
) -> bool:
    """YES iff θ_i(ω*) ≥ P*_i (θ̄), or Σ_C θ(ω*) ≥ Σ_C P* over i's coalition C (Θ̄), for the
    state ω* at the price P*_i the mechanism asks ``i`` about; the partners' prices P*_j are
    the public prices after every raise (they are asked in turn, not now)."""
    q = offer_to(mech, state, i)
    members = ctx.coalition_of(i) if collusive and ctx.shared_reward else (i,)
    value = sum(int(ctx.types[j, q.item]) for j in members)
    current = mech.proposal_view(state)[1]
    price = q.price + sum(current[j] for j in members if j != i)
    return value >= price


class PredictedPerfectRevenue:
    """θ̄ or Θ̄ for every player.

    Parameters
    ----------
    ctx : StateContext
    collusive : bool, optional
        Force Θ̄ (True) or θ̄ (False); default Θ̄ iff a shared-reward coalition has 2+ members.
    price_shift : int
        Added to every positive proposed price (deviation "overprice" uses +1).
    price_factor : tuple (num, den)
        Proposed prices are floor(K · num / den) (deviation "underprice" uses 1/2).
    raises : {"truthful", "none", "over"}
    answers : {"truthful", "yes", "no"}
    """

    def __init__(
        self,
        ctx: Any,
        collusive: bool | None = None,
        price_shift: int = 0,
        price_factor: tuple[int, int] = (1, 1),
        raises: str = "truthful",
        answers: str = "truthful",
    ) -> None:
        self.ctx = ctx
        self.collusive = (
            any(len(c) > 1 for c in effective_coalitions(ctx)) if collusive is None else collusive
        )
        self.price_shift = price_shift
        self.price_factor = price_factor
        self.raises = raises
        self.answers = answers

    def proposal(self) -> PRProposal:
        base = truthful_proposal(self.ctx, self.collusive)
        num, den = self.price_factor
        prices = tuple(p * num // den + (self.price_shift if p > 0 else 0) for p in base.prices)
        return PRProposal(base.state, prices)

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase == "propose":
            return self.proposal()
        if node.phase == "raise":
            if self.raises == "none":
                return PRRaise((0,) * ctx.n)
            r = truthful_raise(mech, ctx, state, player, self.collusive)
            if self.raises == "over":
                return PRRaise(tuple(x + 1 if j != player else 0 for j, x in enumerate(r.amounts)))
            return r
        if self.answers == "yes":
            return True
        if self.answers == "no":
            return False
        return truthful_answer(mech, ctx, state, player, self.collusive)


PROPOSE_VARIANTS = ("truth", "half", "zero", "over", "other_structure")


def menu_size(phase: str, spec: EnvSpec) -> int:
    """propose: 2 states × 5 price variants; raise: none / to value / over; respond: NO, YES."""
    return {"propose": 2 * len(PROPOSE_VARIANTS), "raise": 3}.get(phase, 2)


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions; the predicted action is the first of each phase's menu except
    ``respond`` (NO, YES)."""
    node = mech.node(state)
    pred = PredictedPerfectRevenue(ctx)
    if node.phase == "respond":
        return [("NO", False), ("YES", True)]
    if node.phase == "raise":
        truth = truthful_raise(mech, ctx, state, player, pred.collusive)
        over = tuple(x + 1 if j != player else 0 for j, x in enumerate(truth.amounts))
        return [("to_value", truth), ("none", PRRaise((0,) * ctx.n)), ("over", PRRaise(over))]
    welfare = ctx.types.sum(axis=0)
    order = sorted(range(ctx.num_states), key=lambda s: (-int(welfare[s]), s))
    states = [order[0], order[1] if len(order) > 1 else order[0]]
    out: list[tuple[str, Any]] = []
    for rank, w in enumerate(states):
        col = [int(x) for x in ctx.types[:, w]]
        own = _structure_prices(ctx, col, pred.collusive)
        other = _structure_prices(ctx, col, not pred.collusive)
        variants = {
            "truth": own,
            "half": tuple(p // 2 for p in own),
            "zero": (0,) * ctx.n,
            "over": tuple(p + 1 if p > 0 else 0 for p in own) if any(own) else (1, *own[1:]),
            "other_structure": other,
        }
        for name in PROPOSE_VARIANTS:
            out.append((f"state=rank{rank} K={name}", PRProposal(w, variants[name])))
    return out


def _structure_prices(ctx: Any, col: list[int], collusive: bool) -> tuple[int, ...]:
    if not collusive:
        return tuple(col)
    prices = [0] * ctx.n
    for c in effective_coalitions(ctx):
        prices[c[0]] = sum(col[j] for j in c)
    return tuple(prices)


def _spec_of(ctx: Any) -> EnvSpec:
    cap = ctx.value_cap
    return EnvSpec(ctx.n, ctx.m, cap, ctx.n * cap)


def _deviations() -> dict[str, Any]:
    return {
        "underprice": lambda ctx, rng: PredictedPerfectRevenue(ctx, price_factor=(1, 2)),
        "overprice": lambda ctx, rng: PredictedPerfectRevenue(ctx, price_shift=1),
        "no_raise": lambda ctx, rng: PredictedPerfectRevenue(ctx, raises="none"),
        "overraise": lambda ctx, rng: PredictedPerfectRevenue(ctx, raises="over"),
        "always_yes": lambda ctx, rng: PredictedPerfectRevenue(ctx, answers="yes"),
        "always_no": lambda ctx, rng: PredictedPerfectRevenue(ctx, answers="no"),
        "individual": lambda ctx, rng: PredictedPerfectRevenue(ctx, collusive=False),
        "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
        "random_answers": lambda ctx, rng: PhasePolicy(
            PredictedPerfectRevenue(ctx), {"respond": RandomPolicy(rng, _spec_of(ctx))}
        ),
    }


#: node budget of the exact SPE behind :class:`SPEReference` (3 players, 2 states, values
#: 0..1 take about 40,000 nodes); beyond it the reference falls back to Θ̄
SPE_MAX_NODES = 150_000


# solved equilibria per context (weakly held) and mechanism
_SPE_CACHE: weakref.WeakKeyDictionary[Any, dict[int, Any]] = weakref.WeakKeyDictionary()


class SPEReference:
    """The profile agreement is measured against: θ̄ for independent players (Theorem 1: the
    unique SPE), the exact subgame-perfect profile of backward induction with coalitions.

    The SPE is solved once per (mechanism, context) on the price grid 0..(largest coalition
    value). ``exact`` is False when the tree exceeds :data:`SPE_MAX_NODES`; the reference is
    then Θ̄ (agreement with the prediction, as before).
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.predicted = PredictedPerfectRevenue(ctx)
        self.exact = True

    def _spe(self, mech: Mechanism, ctx: Any) -> Any:
        from mechgym.envs.solvers.spe import solve_spe

        per_ctx = _SPE_CACHE.setdefault(ctx, {})
        if id(mech) not in per_ctx:
            cap = max(1, int(ctx.types.max()))
            price_cap = max(
                1, max(int(ctx.types[list(c)].max(axis=1).sum()) for c in ctx.coalitions)
            )
            spec = EnvSpec(ctx.n, ctx.num_states, cap, max(cap, price_cap))
            grid = spec.price_cap + 1
            # the full tree's size, before sharing: proposals × raises × answers
            size = ctx.num_states * grid**ctx.n * grid ** ((ctx.n - 1) ** 2) * 2**ctx.n
            if size > 10 * SPE_MAX_NODES:
                per_ctx[id(mech)] = (mech, None)  # far too large: Θ̄, without trying
                return None
            try:
                per_ctx[id(mech)] = (mech, solve_spe(mech, ctx, spec, max_nodes=SPE_MAX_NODES))
            except SolverError:
                per_ctx[id(mech)] = (mech, None)
        owner, res = per_ctx[id(mech)]
        return res if owner is mech else None

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        if not self.predicted.collusive:
            return self.predicted.act(mech, ctx, state, player)
        res = self._spe(mech, ctx)
        if res is None:
            self.exact = False
            return self.predicted.act(mech, ctx, state, player)
        return res.policy.act(mech, ctx, state, player)

    def optimal_actions(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> tuple:
        """Every action that is optimal for the mover in the reference (several at a tie)."""
        if self.predicted.collusive:
            res = self._spe(mech, ctx)
            if res is not None:
                return tuple(res.policy.record(state).tied)
            self.exact = False
        return (self.predicted.act(mech, ctx, state, player),)


register_agents(
    PerfectRevenue.name,
    MechanismAgents(
        predicted=PredictedPerfectRevenue,
        deviations=_deviations(),
        menu=menu,
        menu_size=menu_size,
        reference=SPEReference,
    ),
)

__all__ = [
    "PredictedPerfectRevenue",
    "effective_coalitions",
    "menu",
    "menu_size",
    "truthful_answer",
    "truthful_proposal",
    "truthful_raise",
]
