"""M4 over a batch: the batched twin of :mod:`mechgym.envs.mechanisms.collusion_leveraging`.

Phases: ``announce`` (0, everyone), then, in the same step, the consistency check (abort:
terminal) or the chance nodes c1 and c2 drawn in that order (c2 heads: terminal), then
``respond`` (1) for the askers of Ω_★ on tails when there are any. Money is float64; the
constants ε, ε1, ε2 are read from the exact mechanism.

``state.data`` holds, per episode: ``announced`` (B,), the alleged coalitions ``ally``
(B, announcer, player) bool, the allocations ``salloc`` and offers ``alloc``, ``prices``
(B, announcer, player), the revenues ``rev`` (B, n), the top announcer ``top``, the star
after c1 ``star`` and R' after c1 ``second`` (B,), the consistency prices ``fined`` (B, n)
and ``aborted`` (B,), the coins ``c1``, ``c2`` (B,: −1 not drawn) and the answers
``answers`` (B, n: +1 YES, −1 NO, 0 not asked).
"""

from __future__ import annotations

import numpy as np
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    ContextBatch,
    check_context,
    draw,
    register_batched,
)
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import EnvSpec
from mechgym.envs.mechanisms.collusion_leveraging import C2, CollusionLeveraging
from mechgym.envs.mechanisms.knowledge_benchmark_batched import (
    checked_actions,
    reduce_last,
    star_offer,
)
from mechgym.envs.mechanisms.offer_rules_batched import (
    PhaseMasks,
    decode_offers,
    merge,
    star_features,
    winner_of,
    write_offer_stage,
)

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
class CollusionLeveragingBatched(BatchedRules):
    """M4's rules over a batch (seed 002, Section 4)."""

    mechanism = CollusionLeveraging
    implements = frozenset({"eps", "eps1", "eps2", "n"})

    def __init__(self, mech: CollusionLeveraging, spec: EnvSpec) -> None:
        super().__init__(mech, spec)
        if mech.n is not None and mech.n != spec.n:
            raise ParameterError(
                "n", f"the mechanism was built for n = {mech.n}, the env has {spec.n} players"
            )
        mech.check_players(spec.n)
        self.eps1 = float(mech.eps1)
        self.eps2 = float(mech.eps2)
        self.c1_probs = np.array([float(p) for p in mech.c1_node(spec.n).probs])
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

    def reset(self, ctx: ContextBatch, rng: np.random.Generator) -> BatchState:
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
            "fined": np.zeros((B, n), dtype=np.float64),
            "aborted": np.zeros(B, dtype=bool),
            "c1": np.full(B, -1, dtype=np.int64),
            "c2": np.full(B, -1, dtype=np.int64),
            "answers": np.zeros((B, n), dtype=np.int8),
        }
        return BatchState(np.zeros(B, dtype=np.int64), np.ones((B, n), dtype=bool), data)

    def masks(self, state: BatchState) -> np.ndarray:
        return self._masks(state.phase, state.acting)

    def _decode(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Alleged coalitions, allocations S^i and outcomes Ω^i of ``(B, n, L)`` arrays."""
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
        return ally, salloc, alloc, prices

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
        B = state.phase.shape[0]
        rows = np.arange(B)
        phase = state.phase.copy()
        acting = state.acting.copy()
        ann = phase == ANNOUNCE
        res = phase == RESPOND
        done = np.zeros_like(ann)
        if ann.any():
            ally, salloc, alloc, prices = self._decode(actions)
            rev = reduce_last(np.add, prices)  # R_i = REV(Ω^i)
            top = winner_of(rev)
            counts = fine_counts(ally)
            fine = rev[rows, top] + self.eps1
            aborted = ann & reduce_last(np.logical_or, counts > 0)
            live = ann & ~aborted
            c1 = draw(rng, self.c1_probs, live)
            c2 = draw(rng, self.c2_probs, live)
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
            said = np.where(actions[:, :, self._answer] != 0, 1, -1).astype(np.int8)
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
        n, e2 = self.spec.n, self.eps2
        B = d["star"].shape[0]
        rows = np.arange(B)
        alloc_s, prices_s = star_offer(d)
        allies = d["ally"][rows, d["star"]]
        free = allies | (prices_s == 0)
        yes = ~free & (d["answers"] == 1)
        no = ~free & ~yes
        pay = np.where(yes, prices_s - e2, 0.0)
        refused = reduce_last(np.add, np.where(no, prices_s, 0))
        star_pays = d["second"] - n * e2 - reduce_last(np.add, pay) + refused
        star = np.arange(n)[None, :] == d["star"][:, None]
        r = d["rev"].astype(np.float64)
        tails_prices = pay + star * star_pays[:, None] - e2 * (r / (1.0 + r))
        tails_alloc = np.where(free | yes, alloc_s, 0)
        heads = (d["c2"] == 0)[:, None]
        aborted = d["aborted"][:, None]
        alloc = np.where(heads, d["salloc"][rows, d["star"]], tails_alloc)
        alloc = np.where(aborted, 0, alloc).astype(np.int64)
        prices = np.where(aborted, d["fined"], np.where(heads, 0.0, tails_prices))
        return BatchOutcome.of_bundles(alloc, prices)

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        alloc, prices = star_offer(state.data)
        return (state.phase == RESPOND)[:, None] & state.acting, alloc, prices

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        d = state.data
        n = self.spec.n
        out = star_features(d, n, self.mech.public_size(self.spec))
        B = out.shape[0]
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
        alloc_s, prices_s = star_offer(d)
        asked = (c2 == 1) & self.askers(d)[:, player]
        write_offer_stage(out, k, self.spec, alloc_s, prices_s, player, asked, d["answers"])
        out[~d["announced"]] = 0.0
        return out
