"""The second-price bundle auction A' and the mixture M' (seed 002) over a batch: the batched
twins of :mod:`mechgym.envs.mechanisms.second_price_bundle`.

A' (:class:`SecondPriceBundleBatched`): phase ``bid`` (index 0), every player bids a value and
a bundle; the episode ends in the same step. ``state.data``: ``bid_value``, ``bid_bundle``
``(B, n)``.

M' (:class:`MixtureBatched`) composes the batched rules of its two branches
(:func:`~mechgym.envs.engine.batched.batched_rules` of each inner mechanism), so no rule is
written twice. ``reset`` draws the chance node ``mix`` (revenue w.p. 1/(c+1)) for every
episode, then resets both branches over the whole batch; an episode's inner state in the
branch it did not draw is marked terminal, so that branch's rules ignore it. ``state.data``
holds ``branch`` ``(B,)`` (0 = revenue, 1 = auction) and each branch's arrays under the
prefixes ``"0/"`` and ``"1/"``; the mixture's ``phase`` indexes the union of the branches'
phases, as :attr:`Mixture.phases`. Actions and masks are the union layout; each branch reads
its own columns, and its mask is written into the union as :meth:`Mixture.action_mask` does.
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    AllAtOnce,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    batched_rules,
    check_actions,
    check_context,
    draw,
    register_batched,
)
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.mechanisms.second_price_bundle import Mixture, SecondPriceBundle

BID = 0


def second_price(values: np.ndarray, bundles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(alloc, prices)`` ``(B, n)`` of A': the highest value (lowest index on ties) wins its
    bundle and pays the second-highest value; nobody else gets or pays anything."""
    B, n = values.shape
    rows = np.arange(B)
    w = np.argmax(values, axis=1)  # first maximum: lowest index on ties
    others = values.copy()
    others[rows, w] = -1  # values are >= 0
    alloc = np.zeros((B, n), dtype=np.int64)
    prices = np.zeros((B, n), dtype=np.float64)
    alloc[rows, w] = bundles[rows, w]
    prices[rows, w] = others.max(axis=1)
    return alloc, prices


@register_batched
class SecondPriceBundleBatched(BatchedRules):
    """Batched rules of :class:`~mechgym.envs.mechanisms.second_price_bundle.SecondPriceBundle`."""

    mechanism = SecondPriceBundle

    def __init__(self, mech: SecondPriceBundle, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        self.bidding = AllAtOnce(self.layout, spec.n, "bid")
        self.i_value = self.layout.index["bid_value"]
        self.i_bundle = self.layout.index["bid_bundle"]

    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        check_context(self, ctx)
        B, n = ctx.B, self.spec.n
        return BatchState(
            phase=np.full(B, BID, dtype=np.int64),
            acting=np.ones((B, n), dtype=bool),
            data={
                "bid_value": np.zeros((B, n), dtype=np.int64),
                "bid_bundle": np.zeros((B, n), dtype=np.int64),
            },
        )

    def masks(self, state: BatchState) -> np.ndarray:
        return self.bidding.masks(state.acting)

    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        actions = self.bidding.checked(actions, state.acting)
        live = state.phase == BID
        data = dict(state.data)
        data["bid_value"] = np.where(live[:, None], actions[:, :, self.i_value], data["bid_value"])
        data["bid_bundle"] = np.where(
            live[:, None], actions[:, :, self.i_bundle], data["bid_bundle"]
        )
        return BatchState(
            phase=np.where(live, TERMINAL, state.phase),
            acting=np.zeros_like(state.acting),
            data=data,
            chance=list(state.chance),
        )

    def outcome(self, state: BatchState) -> BatchOutcome:
        alloc, prices = second_price(state.data["bid_value"], state.data["bid_bundle"])
        return BatchOutcome.of_bundles(alloc, prices)

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        # The only decision node is the first one: nothing public has happened yet.
        return np.zeros((state.phase.shape[0], 0), dtype=np.float32)


@register_batched
class MixtureBatched(BatchedRules):
    """Batched rules of :class:`~mechgym.envs.mechanisms.second_price_bundle.Mixture`, composed
    from the batched rules of its revenue branch (0) and its auction branch (1)."""

    mechanism = Mixture
    implements = frozenset({"revenue", "c", "auction"})
    mech: Mixture

    def __init__(self, mech: Mixture, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        self.inner = tuple(batched_rules(m, spec) for m in mech.mechs)
        u = mech._union(spec)
        self.cols = u.cols
        self.probs = np.array([float(mech.p), float(1 - mech.p)])
        lay = self.layout
        self.idle = lay.mask({})
        # per branch: inner phase index -> mixture phase index (the last entry maps TERMINAL)
        self.to_mix = []
        self.to_inner = []
        self.gather = []
        for k, rules in enumerate(self.inner):
            to_mix = [self.phases.index(ph) for ph in rules.phases]
            self.to_mix.append(np.array([*to_mix, TERMINAL], dtype=np.int64))
            to_inner = np.full(len(self.phases) + 1, TERMINAL, dtype=np.int64)
            for j, t in enumerate(to_mix):
                to_inner[t] = j
            self.to_inner.append(to_inner)
            # union mask = a constant row (idle elsewhere, 0 on the branch's fields, so values
            # beyond the branch's own size stay masked out) with each sub field's part copied
            # to its union field; consecutive fields are copied as one slice
            sub = u.subs[k]
            const = self.idle.copy()
            runs: list[list[int]] = []  # [src_lo, dst_lo, length]
            for f, name in enumerate(sub.names):
                lo = int(lay.offsets[lay.index[name]])
                const[lo : int(lay.offsets[lay.index[name] + 1])] = 0
                src, size = int(sub.offsets[f]), int(sub.sizes[f])
                if runs and runs[-1][0] + runs[-1][2] == src and runs[-1][1] + runs[-1][2] == lo:
                    runs[-1][2] += size
                else:
                    runs.append([src, lo, size])
            self.gather.append((const, [(slice(a, a + n), slice(b, b + n)) for a, b, n in runs]))
        self.sizes = tuple(m.public_size(spec) for m in mech.mechs)

    # -- composition -------------------------------------------------------------------------
    def inner_state(self, state: BatchState, k: int) -> BatchState:
        """Branch ``k``'s view of the batch: episodes of the other branch are terminal."""
        mine = state.data["branch"] == k
        pre = f"{k}/"
        return BatchState(
            phase=np.where(mine, self.to_inner[k][state.phase], TERMINAL),
            acting=state.acting & mine[:, None],
            data={key[len(pre) :]: v for key, v in state.data.items() if key.startswith(pre)},
        )

    def _merge(
        self, branch: np.ndarray, inner: tuple[BatchState, BatchState], chance: list[np.ndarray]
    ) -> BatchState:
        phase = np.where(
            branch == 0, self.to_mix[0][inner[0].phase], self.to_mix[1][inner[1].phase]
        )
        acting = np.where(branch[:, None] == 0, inner[0].acting, inner[1].acting)
        data: dict[str, np.ndarray] = {"branch": branch}
        for k, st in enumerate(inner):
            data.update({f"{k}/{key}": v for key, v in st.data.items()})
            # an inner rule logs its own episodes only; the mask also covers the resets,
            # which cannot know the branch
            chance.extend(np.where(branch == k, c, -1) for c in st.chance)
        return BatchState(
            phase=phase, acting=acting & (phase != TERMINAL)[:, None], data=data, chance=chance
        )

    def inner_actions(self, actions: np.ndarray, k: int) -> np.ndarray:
        """Branch ``k``'s columns of union-layout actions."""
        return actions[..., self.cols[k]]

    def to_union_actions(self, sub_actions: np.ndarray, k: int) -> np.ndarray:
        """Branch ``k``'s actions written into the union layout (other fields 0)."""
        out = np.zeros((*sub_actions.shape[:-1], len(self.layout)), dtype=np.int64)
        out[..., self.cols[k]] = sub_actions
        return out

    def to_union_mask(self, sub_mask: np.ndarray, k: int) -> np.ndarray:
        """Branch ``k``'s flat mask written into the union layout."""
        const, runs = self.gather[k]
        out = np.empty((*sub_mask.shape[:-1], self.layout.mask_size), dtype=np.int8)
        out[...] = const
        for src, dst in runs:
            out[..., dst] = sub_mask[..., src]
        return out

    # -- rules -------------------------------------------------------------------------------
    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        check_context(self, ctx)
        branch = draw(rng, self.probs, np.ones(ctx.B, dtype=bool))
        inner = tuple(rules.reset(ctx, rng) for rules in self.inner)
        for k, st in enumerate(inner):
            mine = branch == k
            st.phase = np.where(mine, st.phase, TERMINAL)
            st.acting = st.acting & mine[:, None]
        return self._merge(branch, inner, [branch])  # type: ignore[arg-type]

    def masks(self, state: BatchState) -> np.ndarray:
        branch = state.data["branch"]
        parts = [
            self.to_union_mask(rules.masks(self.inner_state(state, k)), k)
            for k, rules in enumerate(self.inner)
        ]
        np.copyto(parts[0], parts[1], where=(branch == 1)[:, None, None])
        return parts[0]

    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        actions = np.asarray(actions, dtype=np.int64)
        names = np.array([*self.phases, "-"])[state.phase]
        B, n = state.acting.shape
        if actions.shape != (B, n, len(self.layout)):
            check_actions(self.layout, self.masks(state), actions, state.acting, names)
        branch = state.data["branch"]
        new = []
        for k, rules in enumerate(self.inner):
            st = self.inner_state(state, k)
            if not st.done.all():
                # each branch checks its own columns on its own masks (no union masks); the
                # union's other columns must be 0 for its acting players
                sub = self.inner_actions(actions, k)
                foreign = np.delete(actions, self.cols[k], axis=2)
                check_actions(rules.layout, rules.masks(st), sub, st.acting, names)
                if (foreign[st.acting] != 0).any():
                    check_actions(self.layout, self.masks(state), actions, state.acting, names)
                st = rules.step(ctx, st, sub, rng)
            new.append(st)
        return self._merge(branch, tuple(new), list(state.chance))  # type: ignore[arg-type]

    def outcome(self, state: BatchState) -> BatchOutcome:
        branch = state.data["branch"]
        outs = [rules.outcome(self.inner_state(state, k)) for k, rules in enumerate(self.inner)]
        rev = branch == 0
        return BatchOutcome(
            np.where(rev[:, None], outs[0].alloc, outs[1].alloc),
            np.where(rev[:, None], outs[0].prices, outs[1].prices),
            np.where(rev, outs[0].state, outs[1].state),
            np.where(rev, outs[0].destroyed, outs[1].destroyed),
        )

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        branch = state.data["branch"][:, None]
        asked, item, price = self.inner[0].pending_offers(self.inner_state(state, 0))
        other = self.inner[1].pending_offers(self.inner_state(state, 1))
        mine = branch == 0
        return (
            np.where(mine, asked, other[0]),
            np.where(mine, item, other[1]),
            np.where(mine, price, other[2]),
        )

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        """[branch one-hot | revenue branch's features | auction branch's features]."""
        branch = state.data["branch"]
        B = branch.shape[0]
        out = np.zeros((B, 2 + sum(self.sizes)), dtype=np.float32)
        out[np.arange(B), branch] = 1.0
        pos = 2
        for k, rules in enumerate(self.inner):
            size = self.sizes[k]
            if size:
                feats = rules.public_features(self.inner_state(state, k), player)
                out[:, pos : pos + size] = np.where((branch == k)[:, None], feats, 0.0)
            pos += size
        return out
