"""Batched scripted play of the second-price bundle auction A' and of the mixture M': the
batched twin of the A' part of :mod:`mechgym.agents.collusion_leveraging`.

A', predicted: an independent player bids max_S θ_i(S) on its favourite bundle (lowest
bitmask on ties); in a shared-reward coalition only the member with the highest such value
bids (lowest index on ties), the others abstain (bid 0 on the empty bundle). The mixture
plays the drawn branch: A' as above, the revenue branch through that mechanism's registered
batched agents (predicted play, or its ``underbid``/``overbid`` deviation where the exact
agent scales the revenue branch's prices by the same factor).

The array layout cannot express a bid above ``price_cap``: where an exact scripted bid would
need one (overbidding near the top of the grid), the batched policy bids the top of the grid
instead, and the batched menu marks the entry invalid.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from mechgym.envs.engine.batched import BatchedRules, BatchState, ContextBatch
from mechgym.envs.mechanisms.second_price_bundle import MixtureRules, SecondPriceBundleRules

from .batched import (
    BatchedAgents,
    RandomBatched,
    acting_players,
    batched_agents,
    register_batched_agents,
)
from .offers import MENU_FACTORS

MENU_BID = 2 * len(MENU_FACTORS)


def scale_values(values: np.ndarray, factor: Fraction) -> np.ndarray:
    """``values · factor`` rounded down when ``factor < 1``, up otherwise (integer arrays)."""
    f = Fraction(factor)
    a, b = f.numerator, f.denominator
    return values * a // b if f < 1 else -((-values * a) // b)


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
        value = np.minimum(scale_values(ctx.values.max(axis=2), self.factor), cap)
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


def sp_menu(
    rules: BatchedRules, ctx: ContextBatch, state: BatchState, player: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exact :func:`mechgym.agents.collusion_leveraging.sp_menu` over a batch.

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
                sp_menu
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
                bid = scale_values(top, f)
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
        menu=sp_menu,
    ),
)
register_batched_agents("mixture", batched_agents("second_price_bundle"))
