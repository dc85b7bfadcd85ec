"""Scripted play of M4 (collusion leveraging, seed 002), of the second-price bundle auction A'
and of their mixture M'; predictions and documented deviations.

M4, predicted (Lemmas 1–5 and the dominating strategies σ̂_C of their proofs):

* every member of an agent C (a shared-reward coalition, or an independent player) declares
  C_i = C (consistent, inside the true coalition: Lemma 1), S^i = BA^C (a welfare-maximising
  allocation among C's members, the paper's σ̂_C) and Ω^i = RK_C, the relevant knowledge of C
  on its pooled lower bounds (members priced at their true values, outsiders at K^C). So
  every member has REV(Ω^i) = HiddenV_C(Ω^i) = MKW_C, the top announcer in particular
  (Lemmas 4–5); announcing the same outcome also maximises every member's ε2-reward and is
  what σ̂_C announces for the top member j.
* an asker outside the star's agent answers YES iff TV_i(α^★_i) ≥ π^★_i (Lemma 2; strict,
  thanks to the ε2 discount); an asker inside the star's agent always says YES (Lemma 3).

A', predicted: an independent player bids max_S θ_i(S) on its favourite bundle (dominant, as
in a Vickrey auction); in a coalition only the member with the highest such value bids (the
lowest index on ties), the others abstain (bid 0 on the empty bundle), so the coalition
never raises its own price.

The mixture M' plays the predicted strategy of whichever branch the chance node drew.
"""

from __future__ import annotations

import weakref
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import Offer
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.engine.episode import EVERY, batch_of_one
from mechgym.envs.engine.game import Decision, EnvSpec, Mechanism
from mechgym.envs.mechanisms.collusion_leveraging import (
    CLAnnouncement,
    CollusionLeveraging,
    acting_coalition_of,
    hidden_value,
)
from mechgym.envs.mechanisms.second_price_bundle import (
    BundleBid,
    Mixture,
    MixtureRules,
    SecondPriceBundle,
    SecondPriceBundleRules,
)
from mechgym.envs.solvers.batched import pack_batch
from mechgym.envs.solvers.packing import best_knowledge

from .base import MechanismAgents, PhasePolicy, RandomPolicy, register_agents
from .batched import (
    AnnounceThenAnswer,
    BatchedAgents,
    ByPhase,
    RandomBatched,
    acting_players,
    answer_entries,
    batched_agents,
    offered_values,
    register_batched_agents,
)
from .offers import MENU_FACTORS, scale_amounts

ANNOUNCE, RESPOND = 0, 1
MENU_ANNOUNCE = 2 * len(MENU_FACTORS)


# -- the rules of play, over a batch ---------------------------------------------------------
def acting_members(ctx: ContextBatch, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
    """``(b, n, n)``: ``[b, i, j]`` iff ``j`` is in player ``i``'s agent (its coalition when
    rewards are shared, else ``{i}``), as :func:`acting_coalition_of`."""
    lab = ctx.coalition[idx]
    n = lab.shape[1]
    same = lab[:, :, None] == lab[:, None, :]
    return same & ctx.shared_reward[idx][:, None, None] | np.eye(n, dtype=bool)


def knowledge(
    ctx: ContextBatch, idx: np.ndarray, members: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RK_C and BA^C for every coalition ``members[b, r]`` (``(len(idx), k, n)`` bool) of
    episodes ``idx``: ``rk_alloc``, ``rk_prices``, ``ba`` ``(len(idx), k, n)``.

    RK_C packs C's pooled knowledge (members at their true values, outsiders at the best
    lower bound any member holds) and prices everyone at their weight there; BA^C packs the
    members' true values.
    """
    assert ctx.lower is not None
    values, lower = ctx.values[idx], ctx.lower[idx]
    b, n, size = values.shape
    k = members.shape[1]
    floor = np.iinfo(np.int64).min
    pooled = np.where(members[:, :, :, None, None], lower[:, None], floor).max(axis=2)
    K = np.where(members[:, :, :, None], values[:, None], pooled)  # (b, k, j, S)
    flat = K.reshape(b * k, n, size)
    _, rk = pack_batch(flat)
    prices = np.take_along_axis(flat, rk[:, :, None], axis=2)[:, :, 0]
    W = np.where(members[:, :, :, None], values[:, None], 0).reshape(b * k, n, size)
    _, ba = pack_batch(W)
    return rk.reshape(b, k, n), prices.reshape(b, k, n), ba.reshape(b, k, n)


def _owners(alloc: np.ndarray, g: int) -> np.ndarray:
    """Owner field of good ``g`` (``j + 1``, 0 = nobody) for bundles ``(..., n)``."""
    return (((alloc >> g) & 1) * np.arange(1, alloc.shape[-1] + 1)).sum(axis=-1)


def write_announcements(
    rules: BatchedRules,
    ally: np.ndarray,
    salloc: np.ndarray,
    alloc: np.ndarray,
    prices: np.ndarray,
) -> np.ndarray:
    """Announcement arrays ``(..., L)`` from alleged coalitions ``ally``, allocations S,
    outcomes (``alloc``, ``prices``), all ``(..., n)``; prices beyond the grid are written at
    its top."""
    spec, ix = rules.spec, rules.layout.index
    out = np.zeros((*ally.shape[:-1], len(rules.layout)), dtype=np.int64)
    n = spec.n
    out[..., ix["ally_0"] : ix["ally_0"] + n] = ally
    for g in range(spec.m):
        out[..., ix[f"salloc_{g}"]] = _owners(salloc, g)
        out[..., ix[f"owner_{g}"]] = _owners(alloc, g)
    out[..., ix["price_0"] : ix["price_0"] + n] = np.minimum(prices, spec.price_cap)
    return out


def predicted_answers(rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
    """``(B, n)`` Lemmas 2–3: YES inside ★'s agent, else YES iff θ_i(α^★_i) ≥ π^★_i (the
    pending offer)."""
    d = state.data
    _, item, price = rules.pending_offers(state)
    value = offered_values(ctx, item)
    rows = np.arange(len(item))
    inside = acting_members(ctx)[rows, :, d["star"]]
    return inside | (value >= price)


def top_bidders(ctx: ContextBatch) -> np.ndarray:
    """``(B, n)`` whether each player is its agent's bidder: the member of its shared-reward
    coalition with the highest max_S θ_i(S), lowest index on ties (every independent player)."""
    n = ctx.n
    top = ctx.values.max(axis=2)
    lab = np.where(ctx.shared_reward[:, None], ctx.coalition, np.arange(n)[None, :])
    same = lab[:, :, None] == lab[:, None, :]  # (B, i, j)
    idx = np.arange(n)
    beats = (top[:, None, :] > top[:, :, None]) | (
        (top[:, None, :] == top[:, :, None]) & (idx[None, :] < idx[:, None])[None]
    )  # j beats i
    return ~(same & beats).any(axis=2)


# -- the exact face ----------------------------------------------------------------------------
def scale_prices(offer: Offer, factor: Fraction) -> Offer:
    """Scale every price of a reasonable outcome (down: floor, up: ceil), keeping the bundles."""
    prices = scale_amounts(np.array(offer.prices, dtype=np.int64), Fraction(factor))
    return Offer(offer.alloc, tuple(int(p) for p in prices))


class _Knowledge:
    """Per-context memo of RK_C and BA^C (contexts are immutable), computed by the one rule
    over a batch (:func:`knowledge`) on the context as a batch of one."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._memo: dict[tuple[int, ...], tuple[Offer, tuple[int, ...]]] = {}

    def _of(self, coalition: tuple[int, ...]) -> tuple[Offer, tuple[int, ...]]:
        if coalition not in self._memo:
            members = np.zeros((1, 1, self.ctx.n), dtype=bool)
            members[0, 0, list(coalition)] = True
            rk, prices, ba = knowledge(batch_of_one(self.ctx), EVERY, members)
            offer = Offer(tuple(int(x) for x in rk[0, 0]), tuple(int(x) for x in prices[0, 0]))
            self._memo[coalition] = (offer, tuple(int(x) for x in ba[0, 0]))
        return self._memo[coalition]

    def rk(self, coalition: tuple[int, ...]) -> Offer:
        return self._of(coalition)[0]

    def ba(self, coalition: tuple[int, ...]) -> tuple[int, ...]:
        return self._of(coalition)[1]


_KNOWLEDGE: weakref.WeakKeyDictionary[Any, _Knowledge] = weakref.WeakKeyDictionary()


def knowledge_of(ctx: Any) -> _Knowledge:
    """The shared memo of a context's RK_C and BA^C."""
    know = _KNOWLEDGE.get(ctx)
    if know is None:
        know = _KNOWLEDGE[ctx] = _Knowledge(ctx)
    return know


def predicted_announcement(
    know: _Knowledge, player: int, coalition: tuple[int, ...], factor: Any = 1
) -> CLAnnouncement:
    """Declare ``coalition``, announce S = BA^coalition and Ω = RK_coalition (prices scaled)."""
    offer = know.rk(coalition)
    if factor != 1:
        offer = scale_prices(offer, Fraction(factor))
    return CLAnnouncement(coalition, know.ba(coalition), offer)


def m4_answer(mech: Mechanism, ctx: Any, state: Any, player: int) -> bool:
    """Lemmas 2–3: YES inside the star's agent, else YES iff TV_i(α^★_i) ≥ π^★_i (the
    pending offer)."""
    # one rule for both paths: the batched answer on the exact state's batch of one
    rules = mech.rules(ctx.n, ctx.m)
    return bool(predicted_answers(rules, state.batch, state.state)[0, player])


class PredictedM4:
    """The predicted profile of M4 and its documented deviations.

    Parameters
    ----------
    ctx : AuctionContext
    factor : Fraction, default 1
        Scales the announced prices (underbidding / overbidding).
    answer : {"predicted", "yes", "no"}
    declare : {"coalition", "alone", "inconsistent"}
        ``"coalition"``: the predicted consistent declaration. ``"alone"``: every player
        declares itself alone and announces its own RK_{i}, BA^{i} (coalitions that do not
        coordinate). ``"inconsistent"``: as predicted, except that player 0 adds player 1 to
        its alleged coalition and player 1 declares itself alone (the consistency check then
        fines and aborts).
    """

    def __init__(
        self, ctx: Any, factor: Any = 1, answer: str = "predicted", declare: str = "coalition"
    ) -> None:
        self.ctx = ctx
        self.know = knowledge_of(ctx)
        self.factor = factor
        self.answer = answer
        self.declare = declare

    def announce(self, ctx: Any, player: int) -> CLAnnouncement:
        if self.declare == "alone":
            return predicted_announcement(self.know, player, (player,), self.factor)
        coalition = acting_coalition_of(ctx, player)
        if self.declare == "inconsistent":
            if player == 1:
                return predicted_announcement(self.know, player, (1,), self.factor)
            if player == 0:
                ann = predicted_announcement(self.know, player, coalition, self.factor)
                return CLAnnouncement(tuple(sorted({*coalition, 1})), ann.alloc, ann.offer)
        return predicted_announcement(self.know, player, coalition, self.factor)

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        node = mech.node(state)
        assert isinstance(node, Decision)
        if node.phase == "announce":
            return self.announce(ctx, player)
        if self.answer == "yes":
            return True
        if self.answer == "no":
            return False
        return m4_answer(mech, ctx, state, player)


# -- A' and the mixture ------------------------------------------------------------------------


def _abstain() -> BundleBid:
    return BundleBid(0, 0)


class PredictedSecondPrice:
    """Predicted play of A' (truthful favourite bid, coalitions let only their top member bid)
    and of the mixture M' (the revenue branch's predicted play).

    Parameters
    ----------
    ctx : AuctionContext
    factor : Fraction, default 1
        Scales the bid value (down: floor, up: ceil).
    collude : bool, default True
        Whether coalition members other than the top one abstain.
    revenue : dict, optional
        Keyword arguments for the revenue branch's predicted policy.
    """

    def __init__(
        self, ctx: Any, factor: Any = 1, collude: bool = True, revenue: dict[str, Any] | None = None
    ) -> None:
        self.ctx = ctx
        self.factor = Fraction(factor)
        self.collude = collude
        self.revenue_kwargs = revenue or {}
        self._revenue: dict[type, Any] = {}

    def bid(self, ctx: Any, player: int) -> BundleBid:
        one = batch_of_one(ctx)
        if self.collude and not top_bidders(one)[0, player]:
            return _abstain()
        value = scale_amounts(one.values.max(axis=2), self.factor)[0, player]
        return BundleBid(int(value), int(np.argmax(one.values[0, player])))

    def revenue_policy(self, mech: Mechanism) -> Any:
        pol = self._revenue.get(type(mech))
        if pol is None:
            pol = revenue_policy_for(mech, self.ctx, **self.revenue_kwargs)
            self._revenue[type(mech)] = pol
        return pol

    def act(self, mech: Mechanism, ctx: Any, state: Any, player: int) -> Any:
        if isinstance(mech, Mixture):
            inner_mech, inner = mech.branch(state)
            if not isinstance(inner_mech, SecondPriceBundle):
                return self.revenue_policy(inner_mech).act(inner_mech, ctx, inner, player)
            mech, state = inner_mech, inner
        return self.bid(ctx, player)


def revenue_policy_for(mech: Mechanism, ctx: Any, **kwargs: Any) -> Any:
    """The predicted policy of a mixture's revenue branch."""
    if isinstance(mech, CollusionLeveraging):
        return PredictedM4(ctx, **kwargs)
    from mechgym.envs.mechanisms.knowledge_benchmark import KnowledgeBenchmark

    if isinstance(mech, KnowledgeBenchmark):
        from .knowledge_benchmark import PredictedM3

        return PredictedM3(ctx, **kwargs)
    from .best_belief import PredictedSeed000

    return PredictedSeed000(ctx, **kwargs)


# -- menus and bounds --------------------------------------------------------------------------


def m4_menu_size(phase: str, spec: EnvSpec) -> int:
    """Announce: 2 declarations × 7 price factors; respond: NO, YES."""
    return 2 * len(MENU_FACTORS) if phase == "announce" else 2


def m4_menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """Compact actions from the agent's (pooled) private knowledge: declare the true coalition
    (announce RK_C, BA^C) or declare oneself alone (RK_{i}, BA^{i}), × the announced prices
    scaled by a factor; NO/YES when asked."""
    node = mech.node(state)
    if node.phase == "respond":
        return [("NO", False), ("YES", True)]
    know = knowledge_of(ctx)
    out = []
    for label, coalition in (("coalition", acting_coalition_of(ctx, player)), ("alone", (player,))):
        for f in MENU_FACTORS:
            out.append(
                (f"declare={label} offer*{f}", predicted_announcement(know, player, coalition, f))
            )
    return out


def m4_bound(mech: Mechanism, ctx: Any, state: Any, player: int, action: Any) -> tuple[int, int]:
    """Lemma 4: HiddenV_C(Ω^i) ≥ MKW_C (binding for C's top announcer; the predicted play
    meets it for every member, all announcing RK_C)."""
    coalition = acting_coalition_of(ctx, player)
    return hidden_value(ctx, coalition, action.offer), best_knowledge(ctx, coalition).value


def sp_menu_size(phase: str, spec: EnvSpec) -> int:
    """Bid: 2 bundles × 7 value factors (factor 0 = abstain); the mixture's revenue phases as M4."""
    if phase == "bid":
        return 2 * len(MENU_FACTORS)
    return m4_menu_size(phase, spec)


def sp_menu(mech: Mechanism, ctx: Any, state: Any, player: int) -> list[tuple[str, Any]]:
    """A': (favourite or runner-up bundle) × (own top value scaled; factor 0 abstains, the
    predicted bid of a non-top coalition member). Mixture: the drawn branch's menu."""
    if isinstance(mech, Mixture):
        inner_mech, inner = mech.branch(state)
        if not isinstance(inner_mech, SecondPriceBundle):
            return _revenue_menu(inner_mech)(inner_mech, ctx, inner, player)
    values = np.asarray(ctx.values[player], dtype=np.int64)
    ranked = np.argsort(-values, kind="stable")  # lowest bitmask first on ties
    top = values.max()
    out = []
    for r in (0, 1):
        for f in MENU_FACTORS:
            if f == 0:
                out.append((f"abstain#{r}", _abstain()))
            else:
                bid = int(scale_amounts(top, f))
                bundle = int(ranked[min(r, len(ranked) - 1)])
                out.append((f"bid=top*{f} S=rank{r}", BundleBid(bid, bundle)))
    return out


def _revenue_menu(mech: Mechanism) -> Any:
    if isinstance(mech, CollusionLeveraging):
        return m4_menu
    from mechgym.envs.mechanisms.best_belief import BestBelief

    if isinstance(mech, BestBelief):
        from . import best_belief

        return best_belief.menu
    from . import knowledge_benchmark

    return knowledge_benchmark.menu


def sp_bound(mech: Mechanism, ctx: Any, state: Any, player: int, action: Any) -> tuple[Any, Any]:
    """The revenue branch's bound (only the mixture's announce phase has one)."""
    inner_mech, inner = mech.branch(state)
    if isinstance(inner_mech, CollusionLeveraging):
        return m4_bound(inner_mech, ctx, inner, player, action)
    from mechgym.envs.mechanisms.best_belief import BestBelief

    if isinstance(inner_mech, BestBelief):
        from .best_belief import bb_bound

        return bb_bound(inner_mech, ctx, inner, player, action)
    from . import knowledge_benchmark

    return knowledge_benchmark.bound(inner_mech, ctx, inner, player, action)


def _spec_of(ctx: Any) -> EnvSpec:
    cap = ctx.value_cap
    return EnvSpec(ctx.n, ctx.m, cap, cap)


M4_DEVIATIONS = {
    "inconsistent": lambda ctx, rng: PredictedM4(ctx, declare="inconsistent"),
    "alone": lambda ctx, rng: PredictedM4(ctx, declare="alone"),
    "underbid": lambda ctx, rng: PredictedM4(ctx, factor=MENU_FACTORS[1]),
    "overbid": lambda ctx, rng: PredictedM4(ctx, factor=MENU_FACTORS[5]),
    "always_yes": lambda ctx, rng: PredictedM4(ctx, answer="yes"),
    "always_no": lambda ctx, rng: PredictedM4(ctx, answer="no"),
    "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
    "random_answers": lambda ctx, rng: PhasePolicy(
        PredictedM4(ctx), {"respond": RandomPolicy(rng, _spec_of(ctx))}
    ),
}

SP_DEVIATIONS = {
    "no_collusion": lambda ctx, rng: PredictedSecondPrice(ctx, collude=False),
    "underbid": lambda ctx, rng: PredictedSecondPrice(
        ctx, factor=MENU_FACTORS[1], revenue={"factor": MENU_FACTORS[1]}
    ),
    "overbid": lambda ctx, rng: PredictedSecondPrice(
        ctx, factor=MENU_FACTORS[5], revenue={"factor": MENU_FACTORS[5]}
    ),
    "random": lambda ctx, rng: RandomPolicy(rng, _spec_of(ctx)),
}

register_agents(
    "collusion_leveraging",
    MechanismAgents(
        predicted=PredictedM4,
        deviations=M4_DEVIATIONS,
        menu=m4_menu,
        menu_size=m4_menu_size,
        bound_phases={"announce": "HiddenV_C(Omega^i) >= MKW_C"},
        bound=m4_bound,
    ),
)

register_agents(
    "second_price_bundle",
    MechanismAgents(
        predicted=PredictedSecondPrice,
        deviations=SP_DEVIATIONS,
        menu=sp_menu,
        menu_size=sp_menu_size,
        bound_phases={"announce": "revenue branch of the mixture: as its mechanism"},
        bound=sp_bound,
    ),
)


# -- the batched face of M4 --------------------------------------------------------------------
class BatchedM4(AnnounceThenAnswer):
    """Predicted play of M4 over a batch and its deviations, as
    :class:`mechgym.agents.collusion_leveraging.PredictedM4`.

    Parameters
    ----------
    factor : Fraction, default 1
        Scales the announced prices.
    answer : {"predicted", "yes", "no"}
    declare : {"coalition", "alone", "inconsistent"}
        ``"alone"``: everyone declares itself alone and announces RK_{i}, BA^{i}.
        ``"inconsistent"``: as predicted, except that player 0 adds player 1 to its alleged
        coalition and player 1 declares itself alone.
    """

    def __init__(
        self, factor: Fraction = Fraction(1), answer: str = "predicted", declare: str = "coalition"
    ) -> None:
        self.factor = Fraction(factor)
        self.answer = answer
        self.declare = declare

    def announcements(self, rules: BatchedRules, ctx: ContextBatch, idx: np.ndarray) -> np.ndarray:
        """``(len(idx), n, L)`` announcements of every player of episodes ``idx``."""
        n = rules.spec.n
        eye = np.broadcast_to(np.eye(n, dtype=bool), (len(idx), n, n))
        members = eye if self.declare == "alone" else acting_members(ctx, idx).copy()
        if self.declare == "inconsistent":
            members[:, 1] = eye[:, 1]
        rk, prices, ba = knowledge(ctx, idx, members)
        if self.factor != 1:
            prices = scale_amounts(prices, self.factor)
        ally = members.copy()
        if self.declare == "inconsistent":
            ally[:, 0, 1] = True
        return write_announcements(rules, ally, ba, rk, prices)

    def own_answers(self, rules: BatchedRules, ctx: ContextBatch, state: BatchState) -> np.ndarray:
        return predicted_answers(rules, ctx, state)


def batched_m4_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`m4_menu` over a batch.

    Returns ``(actions (B, 14, L), valid (B, 14))``: at ``announce`` the 14 entries (declare
    the agent or oneself alone, × the menu's price factors); at ``respond`` entries 0 and 1
    are NO and YES, the rest invalid. Entries are invalid where ``player`` does not act or
    where a price leaves the grid.
    """
    spec = rules.spec
    L, B, n = len(rules.layout), len(state.phase), spec.n
    acts = np.zeros((B, MENU_ANNOUNCE, L), dtype=np.int64)
    valid = np.zeros((B, MENU_ANNOUNCE), dtype=bool)
    acting = state.acting[:, player]
    idx = np.flatnonzero((state.phase == ANNOUNCE) & acting)
    if len(idx):
        j = 0
        for members in (
            acting_members(ctx, idx)[:, player],
            np.broadcast_to(np.arange(n) == player, (len(idx), n)),
        ):
            rk, base, ba = knowledge(ctx, idx, members[:, None, :])
            for f in MENU_FACTORS:
                prices = base[:, 0] if f == 1 else scale_amounts(base[:, 0], f)
                acts[idx, j] = write_announcements(rules, members, ba[:, 0], rk[:, 0], prices)
                valid[idx, j] = (prices <= spec.price_cap).all(axis=1)
                j += 1
    resp = np.flatnonzero((state.phase == RESPOND) & acting)
    answer_entries(rules, acts, valid, resp)
    return acts, valid


register_batched_agents(
    "collusion_leveraging",
    BatchedAgents(
        predicted=BatchedM4(),
        deviations={
            "inconsistent": BatchedM4(declare="inconsistent"),
            "alone": BatchedM4(declare="alone"),
            "underbid": BatchedM4(factor=MENU_FACTORS[1]),
            "overbid": BatchedM4(factor=MENU_FACTORS[5]),
            "always_yes": BatchedM4(answer="yes"),
            "always_no": BatchedM4(answer="no"),
            "random": RandomBatched(),
            "random_answers": ByPhase(BatchedM4(), {"respond": RandomBatched()}),
        },
        menu=batched_m4_menu,
    ),
)


# -- the batched face of A' and the mixture ----------------------------------------------------
MENU_BID = 2 * len(MENU_FACTORS)


class BatchedSecondPrice:
    """Predicted play of A' and of the mixture M' over a batch.

    Parameters
    ----------
    factor : Fraction, default 1
        Scales the bid value (down: floor, up: ceil).
    collude : bool, default True
        Whether coalition members other than the top one abstain.
    revenue : str, optional
        The revenue branch's play: its batched predicted agent (None) or the named deviation
        of its batched agents.
    """

    def __init__(
        self, factor: Fraction = Fraction(1), collude: bool = True, revenue: str | None = None
    ) -> None:
        self.factor = Fraction(factor)
        self.collude = collude
        self.revenue = revenue

    def bids(self, rules: BatchedRules, ctx: ContextBatch) -> np.ndarray:
        """``(B, n, L)`` every player's A' bid (abstentions included)."""
        lay, cap = rules.layout, rules.spec.price_cap
        value = np.minimum(scale_amounts(ctx.values.max(axis=2), self.factor), cap)
        bundle = np.argmax(ctx.values, axis=2)  # favourite, lowest bitmask on ties
        if self.collude:
            bidder = top_bidders(ctx)
            value, bundle = value * bidder, bundle * bidder
        out = np.zeros((ctx.B, ctx.n, len(lay)), dtype=np.int64)
        out[:, :, lay.index["bid_value"]] = value
        out[:, :, lay.index["bid_bundle"]] = bundle
        return out

    def branch_policy(self, rules: BatchedRules) -> object:
        """The policy this agent plays on a mixture branch with ``rules``."""
        if isinstance(rules, SecondPriceBundleRules):
            return self
        agents = batched_agents(rules.mech.name)
        return agents.predicted if self.revenue is None else agents.deviations[self.revenue]

    def act(
        self,
        rules: BatchedRules,
        ctx: ContextBatch,
        state: BatchState,
        players: list[int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        mine = acting_players(state, players)
        if isinstance(rules, MixtureRules):
            branch = state.data["branch"]
            acts = np.zeros((len(branch), rules.spec.n, len(rules.layout)), dtype=np.int64)
            for k, inner in enumerate(rules.inner):
                here = branch == k
                if not (here[:, None] & mine).any():
                    continue
                sub = rules.inner_state(state, k)
                a = self.branch_policy(inner).act(inner, ctx, sub, players, rng)  # type: ignore[attr-defined]
                acts = np.where(here[:, None, None], rules.to_union_actions(a, k), acts)
            return np.where(mine[:, :, None], acts, 0)
        return np.where(mine[:, :, None], self.bids(rules, ctx), 0)


def batched_sp_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sp_menu` over a batch.

    A': ``(actions (B, 14, L), valid (B, 14))``, (favourite or runner-up bundle) × (own top
    value scaled by the menu's factors; factor 0 abstains). Mixture: the drawn branch's menu
    in the union layout (the revenue branch's from its registered batched agents), padded
    with invalid entries to the longest. Entries are invalid where ``player`` does not act or
    the bid leaves the grid.
    """
    if isinstance(rules, MixtureRules):
        branch = state.data["branch"]
        parts = []
        for k, inner in enumerate(rules.inner):
            sub = rules.inner_state(state, k)
            fn = (
                batched_sp_menu
                if isinstance(inner, SecondPriceBundleRules)
                else batched_agents(inner.mech.name).menu
            )
            a, v = fn(inner, ctx, sub, player)  # type: ignore[misc]
            parts.append((rules.to_union_actions(a, k), v & (branch == k)[:, None]))
        size = max(p[1].shape[1] for p in parts)
        acts = np.zeros((len(branch), size, len(rules.layout)), dtype=np.int64)
        valid = np.zeros((len(branch), size), dtype=bool)
        for k, (a, v) in enumerate(parts):
            here = branch == k
            acts[here, : a.shape[1]] = a[here]
            valid[here, : v.shape[1]] = v[here]
        return acts, valid
    lay, cap = rules.layout, rules.spec.price_cap
    B = ctx.B
    acting = state.acting[:, player]
    values = ctx.values[:, player]
    ranked = np.argsort(-values, axis=1, kind="stable")  # lowest bitmask first on ties
    top = values.max(axis=1)
    acts = np.zeros((B, MENU_BID, len(lay)), dtype=np.int64)
    valid = np.zeros((B, MENU_BID), dtype=bool)
    j = 0
    for r in (0, 1):
        for f in MENU_FACTORS:
            if f != 0:
                bid = scale_amounts(top, f)
                acts[:, j, lay.index["bid_value"]] = np.minimum(bid, cap)
                acts[:, j, lay.index["bid_bundle"]] = ranked[:, min(r, values.shape[1] - 1)]
                valid[:, j] = bid <= cap
            else:
                valid[:, j] = True
            j += 1
    return acts * acting[:, None, None], valid & acting[:, None]


register_batched_agents(
    "second_price_bundle",
    BatchedAgents(
        predicted=BatchedSecondPrice(),
        deviations={
            "no_collusion": BatchedSecondPrice(collude=False),
            "underbid": BatchedSecondPrice(factor=MENU_FACTORS[1], revenue="underbid"),
            "overbid": BatchedSecondPrice(factor=MENU_FACTORS[5], revenue="overbid"),
            "random": RandomBatched(),
        },
        menu=batched_sp_menu,
    ),
)
register_batched_agents("mixture", batched_agents("second_price_bundle"))
