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

Written once: each rule of play over a batch of contexts; the exact agents play their
context's row of a batch of one, the batched agents write the rows into the layout (an
amount above ``price_cap`` at the top of the grid; such menu entries invalid).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.engine.episode import batch_of_one
from mechgym.envs.engine.errors import SolverError
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.perfect_revenue import PerfectRevenue, PRProposal, PRRaise

from .base import MechanismAgents, PhasePolicy, RandomPolicy, register_agents
from .batched import (
    BatchedAgents,
    ByPhase,
    RandomBatched,
    acting_players,
    answer_entries,
    register_batched_agents,
)

PROPOSE, RAISE, RESPOND = 0, 1, 2
PROPOSE_VARIANTS = ("truth", "half", "zero", "over", "other_structure")
MENU_SIZE = 2 * len(PROPOSE_VARIANTS)


# -- the rules of play, over a batch ---------------------------------------------------------
def effective_labels(ctx: ContextBatch) -> np.ndarray:
    """``(B, n)`` labels of the coalitions that act jointly: the coalitions where rewards
    are shared, singletons elsewhere."""
    return np.where(ctx.shared_reward[:, None], ctx.coalition, np.arange(ctx.n)[None, :])


def predicted_collusive(ctx: ContextBatch) -> np.ndarray:
    """``(B,)`` whether Θ̄ is predicted: a shared-reward coalition of two or more players."""
    lab = effective_labels(ctx)
    return (lab != np.arange(ctx.n)[None, :]).any(axis=1)


def coalition_sums(lab: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(B, n)``: Σ of ``x`` over each player's coalition (by labels ``lab``)."""
    same = lab[:, :, None] == lab[:, None, :]
    return np.einsum("bij,bj->bi", same, x)


def structure_prices(ctx: ContextBatch, col: np.ndarray, collusive: np.ndarray) -> np.ndarray:
    """θ̄'s prices ``col`` or, where ``collusive``, Θ̄'s: each coalition's total on its lowest
    member, 0 on the others."""
    lab = effective_labels(ctx)
    lowest = lab == np.arange(ctx.n)[None, :]
    joint = np.where(lowest, coalition_sums(lab, col), 0)
    return np.where(collusive[:, None], joint, col)


def column(ctx: ContextBatch, w: np.ndarray) -> np.ndarray:
    """``(B, n)`` θ_i(w_b) per episode."""
    return ctx.values[np.arange(ctx.B), :, w]


def truthful_raises(ctx: ContextBatch, state: BatchState, collusive: np.ndarray) -> np.ndarray:
    """``(B, n)`` θ̄'s (or Θ̄'s) raise Δ^d of the pending raiser ``d = nraised + 1``."""
    d = state.data
    n = ctx.n
    col = column(ctx, d["state"])
    cur = d["current"]
    raiser = (d["nraised"] + 1)[:, None]
    idx = np.arange(n)[None, :]
    single = np.where(idx != raiser, np.maximum(0, col - cur), 0)
    lab = effective_labels(ctx)
    gap = np.maximum(0, coalition_sums(lab, col) - coalition_sums(lab, cur))
    joint = np.where((lab == idx) & (idx != raiser), gap, 0)
    return np.where(collusive[:, None], joint, single)


def truthful_answers(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, collusive: np.ndarray
) -> np.ndarray:
    """``(B, n)`` YES iff θ_i(ω*) ≥ P*_i (θ̄), or Σ_C θ(ω*) ≥ Σ_C P* over i's coalition (Θ̄),
    for the state and price of :meth:`BatchedRules.pending_offers` (read where asked); the
    partners' prices are the public prices after every raise, as in the exact agent."""
    asked, item, price = rules.pending_offers(state)
    # one player is asked at a time; ω* is the same for everyone of the episode
    w = item[np.arange(ctx.B), asked.argmax(axis=1)]
    col = column(ctx, w)
    cur = np.where(asked, price, state.data["current"])
    lab = effective_labels(ctx)
    joint = coalition_sums(lab, col) >= coalition_sums(lab, cur)
    return np.where(collusive[:, None], joint, col >= cur)


def best_states(ctx: ContextBatch) -> tuple[np.ndarray, np.ndarray]:
    """The two states of the menu: welfare rank 0 and 1 (lowest index on ties; rank 0 twice
    with a single state)."""
    order = np.argsort(-ctx.values.sum(axis=1), axis=1, kind="stable")
    return order[:, 0], order[:, min(1, order.shape[1] - 1)]


def proposals(
    ctx: ContextBatch, collusive: np.ndarray, factor: tuple[int, int] = (1, 1), shift: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """θ̄'s (or, where ``collusive``, Θ̄'s) proposal per episode: the lowest-index
    welfare-maximising state ``(B,)`` and its prices ``(B, n)`` (times ``factor``, rounded
    down, plus ``shift`` on every positive price)."""
    w = np.argmax(ctx.values.sum(axis=1), axis=1)
    K = structure_prices(ctx, column(ctx, w), collusive)
    num, den = factor
    return w, K * num // den + shift * (K > 0)


def over_raises(state: BatchState, amounts: np.ndarray) -> np.ndarray:
    """The raise one above ``amounts`` for everyone but the raiser."""
    raiser = (state.data["nraised"] + 1)[:, None]
    return np.where(np.arange(amounts.shape[1])[None, :] != raiser, amounts + 1, 0)


def menu_proposals(
    ctx: ContextBatch, collusive: np.ndarray
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The menu's proposals ``(label, state (B,), prices (B, n))``: the two best states × the
    price variants."""
    out = []
    for rank, w in enumerate(best_states(ctx)):
        col = column(ctx, w)
        own = structure_prices(ctx, col, collusive)
        other = structure_prices(ctx, col, ~collusive)
        first_one = np.zeros_like(own)
        first_one[:, 0] = 1
        variants = {
            "truth": own,
            "half": own // 2,
            "zero": np.zeros_like(own),
            "over": np.where(own.any(axis=1)[:, None], own + (own > 0), np.maximum(own, first_one)),
            "other_structure": other,
        }
        out += [(f"state=rank{rank} K={name}", w, variants[name]) for name in PROPOSE_VARIANTS]
    return out


# -- the exact face ----------------------------------------------------------------------------
def effective_coalitions(ctx: Any) -> tuple[tuple[int, ...], ...]:
    """The coalitions that act jointly: ``ctx.coalitions`` with shared rewards, else singletons."""
    if ctx.shared_reward:
        return tuple(ctx.coalitions)
    return tuple((i,) for i in range(ctx.n))


def _ints(x: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in x)


def truthful_proposal(ctx: Any, collusive: bool) -> PRProposal:
    """θ̄'s (or Θ̄'s) proposal: the lowest-index welfare-maximising state, truthfully priced."""
    w, K = proposals(batch_of_one(ctx), np.array([collusive]))
    return PRProposal(int(w[0]), _ints(K[0]))


def truthful_raise(mech: PerfectRevenue, ctx: Any, state: Any, d: int, collusive: bool) -> PRRaise:
    """θ̄'s (or Θ̄'s) raise of player ``d`` (the pending raiser) at ``state``."""
    return PRRaise(_ints(truthful_raises(state.batch, state.state, np.array([collusive]))[0]))


def truthful_answer(mech: PerfectRevenue, ctx: Any, state: Any, i: int, collusive: bool) -> bool:
    """YES iff θ_i(ω*) ≥ P*_i (θ̄), or Σ_C θ(ω*) ≥ Σ_C P* over i's coalition C (Θ̄), for the
    state ω* at the price P*_i the mechanism asks ``i`` about; the partners' prices P*_j are
    the public prices after every raise (they are asked in turn, not now)."""
    rules = mech.rules(ctx.n, ctx.m)
    yes = truthful_answers(rules, state.batch, state.state, np.array([collusive]))
    return bool(yes[0, i])


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
            bool(predicted_collusive(batch_of_one(ctx))[0]) if collusive is None else collusive
        )
        self.price_shift = price_shift
        self.price_factor = price_factor
        self.raises = raises
        self.answers = answers

    def proposal(self) -> PRProposal:
        w, K = proposals(
            batch_of_one(self.ctx), np.array([self.collusive]), self.price_factor, self.price_shift
        )
        return PRProposal(int(w[0]), _ints(K[0]))

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase == "propose":
            return self.proposal()
        if node.phase == "raise":
            if self.raises == "none":
                return PRRaise((0,) * ctx.n)
            amounts = truthful_raises(state.batch, state.state, np.array([self.collusive]))
            if self.raises == "over":
                amounts = over_raises(state.state, amounts)
            return PRRaise(_ints(amounts[0]))
        if self.answers == "yes":
            return True
        if self.answers == "no":
            return False
        return truthful_answer(mech, ctx, state, player, self.collusive)


def menu_size(phase: str, spec: EnvSpec) -> int:
    """propose: 2 states × 5 price variants; raise: none / to value / over; respond: NO, YES."""
    return {"propose": 2 * len(PROPOSE_VARIANTS), "raise": 3}.get(phase, 2)


def menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions; the predicted action is the first of each phase's menu except
    ``respond`` (NO, YES)."""
    node = mech.node(state)
    if node.phase == "respond":
        return [("NO", False), ("YES", True)]
    collusive = predicted_collusive(batch_of_one(ctx))
    if node.phase == "raise":
        truth = truthful_raises(state.batch, state.state, collusive)
        over = over_raises(state.state, truth)
        none = PRRaise((0,) * ctx.n)
        return [
            ("to_value", PRRaise(_ints(truth[0]))),
            ("none", none),
            ("over", PRRaise(_ints(over[0]))),
        ]
    entries = menu_proposals(batch_of_one(ctx), collusive)
    return [(label, PRProposal(int(w[0]), _ints(p[0]))) for label, w, p in entries]


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


# -- the batched face --------------------------------------------------------------------------
class BatchedPerfectRevenue:
    """θ̄ or Θ̄ over a batch, with the exact agent's options.

    Parameters
    ----------
    collusive : bool, optional
        Force Θ̄ (True) or θ̄ (False); default per episode as the exact agent.
    price_shift : int
        Added to every positive proposed price.
    price_factor : tuple (num, den)
        Proposed prices are floor(K · num / den).
    raises : {"truthful", "none", "over"}
    answers : {"truthful", "yes", "no"}
    """

    def __init__(
        self,
        collusive: bool | None = None,
        price_shift: int = 0,
        price_factor: tuple[int, int] = (1, 1),
        raises: str = "truthful",
        answers: str = "truthful",
    ) -> None:
        self.collusive = collusive
        self.price_shift = price_shift
        self.price_factor = price_factor
        self.raises = raises
        self.answers = answers

    def collusive_of(self, ctx: ContextBatch) -> np.ndarray:
        if self.collusive is None:
            return predicted_collusive(ctx)
        return np.full(ctx.B, self.collusive)

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        lay, cap = rules.layout, rules.spec.price_cap
        B, n = state.acting.shape
        mine = acting_players(state, players)
        acts = np.zeros((B, n, len(lay)), dtype=np.int64)
        cols = np.array([lay.index[f"price_{j}"] for j in range(n)])
        collusive = self.collusive_of(ctx)
        ph = state.phase
        if (ph == PROPOSE).any():
            w, K = proposals(ctx, collusive, self.price_factor, self.price_shift)
            here = (ph == PROPOSE)[:, None]
            acts[:, :, cols] = np.where(here[:, :, None], np.minimum(K, cap)[:, None, :], 0)
            acts[:, :, lay.index["state"]] = np.where(here, w[:, None], 0)
        if (ph == RAISE).any() and self.raises != "none":
            amounts = truthful_raises(ctx, state, collusive)
            if self.raises == "over":
                amounts = over_raises(state, amounts)
            here = (ph == RAISE)[:, None, None]
            acts[:, :, cols] = np.where(
                here, np.minimum(amounts, cap)[:, None, :], acts[:, :, cols]
            )
        if (ph == RESPOND).any():
            if self.answers == "truthful":
                yes = truthful_answers(rules, ctx, state, collusive)
            else:
                yes = np.full((B, n), self.answers == "yes")
            acts[:, :, lay.index["answer"]] = np.where((ph == RESPOND)[:, None], yes, 0)
        return np.where(mine[:, :, None], acts, 0)


def batched_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`menu` over a batch: ``(actions (B, 10, L), valid (B, 10))``; ``propose``: 2
    states × the 5 price variants; ``raise``: to value, none, over; ``respond``: NO, YES.
    Entries are invalid where ``player`` does not act or an amount leaves the grid."""
    lay, cap = rules.layout, rules.spec.price_cap
    B, n = state.acting.shape
    cols = np.array([lay.index[f"price_{j}"] for j in range(n)])
    acts = np.zeros((B, MENU_SIZE, len(lay)), dtype=np.int64)
    valid = np.zeros((B, MENU_SIZE), dtype=bool)
    acting = state.acting[:, player]
    ph = state.phase
    pred = predicted_collusive(ctx)
    here = acting & (ph == PROPOSE)
    if here.any():
        for j, (_, w, prices) in enumerate(menu_proposals(ctx, pred)):
            acts[:, j, cols] = np.minimum(prices, cap)
            acts[:, j, lay.index["state"]] = w
            valid[:, j] = (prices <= cap).all(axis=1)
        acts[~here] = 0
        valid &= here[:, None]
    rai = acting & (ph == RAISE)
    if rai.any():
        truth = truthful_raises(ctx, state, pred)
        for j, amounts in ((0, truth), (2, over_raises(state, truth))):
            acts[:, j, cols] = np.where(rai[:, None], np.minimum(amounts, cap), 0)
            valid[:, j] = rai & (amounts <= cap).all(axis=1)
        valid[:, 1] |= rai
    res = acting & (ph == RESPOND)
    answer_entries(rules, acts, valid, res)
    return acts, valid


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
register_batched_agents(
    "perfect_revenue",
    BatchedAgents(
        predicted=BatchedPerfectRevenue(),
        deviations={
            "underprice": BatchedPerfectRevenue(price_factor=(1, 2)),
            "overprice": BatchedPerfectRevenue(price_shift=1),
            "no_raise": BatchedPerfectRevenue(raises="none"),
            "overraise": BatchedPerfectRevenue(raises="over"),
            "always_yes": BatchedPerfectRevenue(answers="yes"),
            "always_no": BatchedPerfectRevenue(answers="no"),
            "individual": BatchedPerfectRevenue(collusive=False),
            "random": RandomBatched(),
            "random_answers": ByPhase(BatchedPerfectRevenue(), {"respond": RandomBatched()}),
        },
        menu=batched_menu,
    ),
)
