"""M3 over a batch: the batched twin of :mod:`mechgym.envs.mechanisms.knowledge_benchmark`.

Phases: ``announce`` (0, everyone), then ``respond`` (1, the players given a non-empty
bundle in Ω_★) when anyone is asked, then the fair coin, drawn in the step that resolves the
last decision (after ``announce`` when nobody is asked, as the exact engine meets it). Money
is float64; footnote 4's ε (``mech.eps``) and ``positive_prices`` are read from the exact
mechanism.

``state.data`` holds, per episode: ``announced`` (B,), the announcements ``bundle`` (B, n)
and offers ``alloc``, ``prices`` (B, announcer, player), the revenues ``rev`` (B, n), the
star ``star`` and R' ``second`` (B,), the answers ``answers`` (B, n: +1 YES, −1 NO, 0 not
asked) and the coin ``coin`` (B,: 0 heads, 1 tails, −1 not drawn).
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    check_actions,
    check_context,
    register_batched,
)
from mechgym.envs.engine.errors import OutOfSpaceError
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.mechanisms.knowledge_benchmark import KnowledgeBenchmark
from mechgym.envs.mechanisms.offer_rules_batched import (
    PhaseMasks,
    announce_mask_rows,
    decode_offers,
    draw_coin,
    merge,
    star_features,
    winner_of,
    write_offer_stage,
)

ANNOUNCE, RESPOND = 0, 1


def reduce_last(op: np.ufunc, x: np.ndarray) -> np.ndarray:
    """``op`` folded over the last axis, one slice at a time: over a few players this is
    several times faster than numpy's reductions along a short inner axis."""
    out = x[..., 0].astype(np.int64) if x.dtype == bool and op is np.add else x[..., 0]
    for j in range(1, x.shape[-1]):
        out = op(out, x[..., j])
    return out


def checked_actions(rules: BatchedRules, state: BatchState, actions: np.ndarray) -> np.ndarray:
    """``actions`` ``(B, n, L)`` as int64 once every acting player's entry is in the space and
    allowed by its mask; otherwise a typed error names the episode, agent, phase and field."""
    arr = np.asarray(actions)
    if arr.dtype.kind not in "iub":
        raise OutOfSpaceError("batch", "-", f"actions must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    names = np.asarray([*rules.phases, "terminal"])
    check_actions(rules.layout, rules.masks(state), arr, state.acting, names[state.phase])
    return arr


def star_offer(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ω_★ per episode: ``alloc``, ``prices`` ``(B, n)``."""
    rows = np.arange(data["star"].shape[0])
    return data["alloc"][rows, data["star"]], data["prices"][rows, data["star"]]


@register_batched
class KnowledgeBenchmarkBatched(BatchedRules):
    """M3's rules over a batch (seed 001, Section 6; footnote 4's ε included)."""

    mechanism = KnowledgeBenchmark
    implements = frozenset({"eps", "positive_prices"})

    def __init__(self, mech: KnowledgeBenchmark, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        self.eps = float(mech.eps)
        self.min_price = mech.min_price
        lay = self.layout
        respond = np.broadcast_to(lay.mask({"answer": True}), (spec.n, lay.mask_size))
        self._masks = PhaseMasks(
            [announce_mask_rows(lay, spec, {"bundle": True}), respond], lay.mask({})
        )
        self._bundle = lay.index["bundle"]
        self._answer = lay.index["answer"]

    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
        check_context(self, ctx)
        B, n = ctx.B, ctx.n
        data = {
            "announced": np.zeros(B, dtype=bool),
            "bundle": np.zeros((B, n), dtype=np.int64),
            "alloc": np.zeros((B, n, n), dtype=np.int64),
            "prices": np.zeros((B, n, n), dtype=np.int64),
            "rev": np.zeros((B, n), dtype=np.int64),
            "star": np.zeros(B, dtype=np.int64),
            "second": np.zeros(B, dtype=np.int64),
            "answers": np.zeros((B, n), dtype=np.int8),
            "coin": np.full(B, -1, dtype=np.int64),
        }
        return BatchState(np.zeros(B, dtype=np.int64), np.ones((B, n), dtype=bool), data)

    def masks(self, state: BatchState) -> np.ndarray:
        return self._masks(state.phase, state.acting)

    def step(
        self,
        ctx: ContextBatch,
        state: BatchState,
        actions: np.ndarray,
        rng: np.random.Generator,
    ) -> BatchState:
        actions = checked_actions(self, state, actions)
        d = dict(state.data)
        chance = list(state.chance)
        n = self.spec.n
        phase = state.phase.copy()
        acting = state.acting.copy()
        ann = phase == ANNOUNCE
        res = phase == RESPOND
        coin_live = np.zeros_like(ann)
        if ann.any():
            alloc, prices = decode_offers(actions, self.spec, self.layout, self.min_price)
            rev = reduce_last(np.add, prices)  # R_i = REV(Ω_i)
            star = winner_of(rev)
            others = np.where(np.arange(n) == star[:, None], np.iinfo(np.int64).min, rev)
            d["alloc"] = merge(ann, alloc, d["alloc"])
            d["prices"] = merge(ann, prices, d["prices"])
            d["bundle"] = merge(ann, actions[:, :, self._bundle], d["bundle"])
            d["rev"] = merge(ann, rev, d["rev"])
            d["star"] = merge(ann, star, d["star"])
            d["second"] = merge(ann, reduce_last(np.maximum, others), d["second"])
            d["announced"] = d["announced"] | ann
            asked = star_offer(d)[0] != 0
            to_respond = ann & reduce_last(np.logical_or, asked)
            phase[to_respond] = RESPOND
            acting = merge(ann, asked & to_respond[:, None], acting)
            coin_live |= ann & ~to_respond
        if res.any():
            said = np.where(actions[:, :, self._answer] != 0, 1, -1).astype(np.int8)
            d["answers"] = np.where(res[:, None] & acting, said, d["answers"])
            coin_live |= res
        if coin_live.any():
            coin = draw_coin(rng, coin_live)
            chance.append(coin)
            d["coin"] = merge(coin_live, coin, d["coin"])
            phase[coin_live] = TERMINAL
            acting[coin_live] = False
        return BatchState(phase, acting, d, chance)

    def outcome(self, state: BatchState) -> BatchOutcome:
        d = state.data
        B, n = d["star"].shape[0], self.spec.n
        rows = np.arange(B)
        alloc_s, prices_s = star_offer(d)
        star = np.arange(n)[None, :] == d["star"][:, None]
        yes = d["answers"] == 1
        fines = reduce_last(np.add, np.where(d["answers"] == -1, prices_s, 0)).astype(np.float64)
        heads = (d["coin"] == 0)[:, None]
        # Tails: every YES-sayer buys at π − ε and the proceeds go to ★, who also pays R'.
        pay = np.where(yes, prices_s - self.eps, 0.0)
        star_pays = fines + np.where(heads[:, 0], 0.0, d["second"] - reduce_last(np.add, pay))
        prices = np.where(heads, 0.0, pay) + star * star_pays[:, None]
        alloc = np.where(heads, star * d["bundle"][rows, d["star"]][:, None], 0)
        alloc = np.where(~heads & yes, alloc_s, alloc).astype(np.int64)
        return BatchOutcome.of_bundles(alloc, prices)

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        alloc, prices = star_offer(state.data)
        return (state.phase == RESPOND)[:, None] & state.acting, alloc, prices

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        d = state.data
        n = self.spec.n
        out = star_features(d, n, self.mech.public_size(self.spec))
        alloc_s, prices_s = star_offer(d)
        asked = alloc_s[:, player] != 0
        write_offer_stage(out, 2 * n, self.spec, alloc_s, prices_s, player, asked, d["answers"])
        out[~d["announced"]] = 0.0
        return out
