"""Batched scripted play of M5 (seed 003): the batched twin of
:mod:`mechgym.agents.perfect_revenue` — θ̄ and Θ̄, the named deviations and the menu.

Θ̄ is played in the episodes with a shared-reward coalition of two or more players, θ̄
elsewhere (members of coalitions without shared rewards act individually), as the exact
:class:`~mechgym.agents.perfect_revenue.PredictedPerfectRevenue` decides per context.

The array layout cannot express a price or raise above ``price_cap``: where an exact scripted
amount would need one, the batched policy writes the top of the grid instead, and the batched
menu marks the entry invalid.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch

from .batched import (
    BatchedAgents,
    ByPhase,
    RandomBatched,
    acting_players,
    answer_entries,
    register_batched_agents,
)
from .perfect_revenue import PROPOSE_VARIANTS

PROPOSE, RAISE, RESPOND = 0, 1, 2
MENU_SIZE = 2 * len(PROPOSE_VARIANTS)


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
            w = np.argmax(ctx.values.sum(axis=1), axis=1)
            K = structure_prices(ctx, column(ctx, w), collusive)
            num, den = self.price_factor
            K = K * num // den + self.price_shift * (K > 0)
            here = (ph == PROPOSE)[:, None]
            acts[:, :, cols] = np.where(here[:, :, None], np.minimum(K, cap)[:, None, :], 0)
            acts[:, :, lay.index["state"]] = np.where(here, w[:, None], 0)
        if (ph == RAISE).any() and self.raises != "none":
            amounts = truthful_raises(ctx, state, collusive)
            if self.raises == "over":
                raiser = (state.data["nraised"] + 1)[:, None]
                amounts = np.where(np.arange(n)[None, :] != raiser, amounts + 1, 0)
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


def menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.perfect_revenue.menu` over a batch.

    ``(actions (B, 10, L), valid (B, 10))``: ``propose``: 2 states × the 5 price variants;
    ``raise``: to value, none, over; ``respond``: NO, YES. Entries are invalid where
    ``player`` does not act or an amount leaves the grid.
    """
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
        j = 0
        for w in best_states(ctx):
            col = column(ctx, w)
            own = structure_prices(ctx, col, pred)
            other = structure_prices(ctx, col, ~pred)
            first_one = np.zeros_like(own)
            first_one[:, 0] = 1
            variants = {
                "truth": own,
                "half": own // 2,
                "zero": np.zeros_like(own),
                "over": np.where(
                    own.any(axis=1)[:, None], own + (own > 0), np.maximum(own, first_one)
                ),
                "other_structure": other,
            }
            for name in PROPOSE_VARIANTS:
                prices = variants[name]
                acts[:, j, cols] = np.minimum(prices, cap)
                acts[:, j, lay.index["state"]] = w
                valid[:, j] = (prices <= cap).all(axis=1)
                j += 1
        acts[~here] = 0
        valid &= here[:, None]
    rai = acting & (ph == RAISE)
    if rai.any():
        truth = truthful_raises(ctx, state, pred)
        raiser = (state.data["nraised"] + 1)[:, None]
        over = np.where(np.arange(n)[None, :] != raiser, truth + 1, 0)
        for j, amounts in ((0, truth), (2, over)):
            acts[:, j, cols] = np.where(rai[:, None], np.minimum(amounts, cap), 0)
            valid[:, j] = rai & (amounts <= cap).all(axis=1)
        valid[:, 1] |= rai
    res = acting & (ph == RESPOND)
    answer_entries(rules, acts, valid, res)
    return acts, valid


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
        menu=menu,
    ),
)
