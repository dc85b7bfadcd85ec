"""M3 — the knowledge-benchmark mechanism (seed 001, Section 6).

1. Simultaneously, every player ``i`` announces a canonical outcome Ω_i = (α^i, π^i) for the
   others and a bundle S_i. R_i = REV(Ω_i); the star ★ is the highest announcer (lowest index
   on ties) and R' = max_{i≠★} R_i.
2. Simultaneously, every player offered a non-empty bundle in Ω_★ answers YES or NO. Each NO
   fines ★ by π^★_i, whatever the coin says.
3. A fair coin. Heads: A_★ := S_★. Tails: P_★ += R'; every YES-sayer ``i`` buys α^★_i at π^★_i
   and the proceeds go to ★ (P_★ −= π^★_i).

Decisions taken against or around the spec
------------------------------------------
* Canonical outcomes follow the paper's Definition 2: prices are integers ≥ 0, 0 wherever
  nothing is given, and the announcer gives itself nothing. A non-empty bundle *may* be priced
  0 (the definition says "≥ 0"; MECHANISMS.md's "zero exactly where nothing is given" is read
  as the second condition only). Such a player is still asked (the paper asks every ``i`` with
  α^★_i ≠ ∅). ``positive_prices=True`` gives the other reading (Section 6's informal "for a
  positive price"): a given bundle then needs a price ≥ 1.
* Footnote 4: with ``eps > 0`` a YES-sayer pays π^★_i − ε (and ★ receives that amount), which
  makes YES the strict best response at TV_i(α) = π. ``eps = 0`` (default) is the main text.
  Prices are integers and ε < 1, so the undominated answers are the same in both variants
  (YES iff TV_i(α) ≥ π); the tails revenue is R' plus the fines in both (the sale's proceeds
  are a transfer to ★), so the guarantee keeps its exact form MIEW(K_I)/2 in both variants.
* The guarantee is Theorem 2: E[SW] + E[REV] ≥ MIEW(K_I)/2, MIEW taken over the context's
  independent players (0 when there are none).

Written once (:mod:`mechgym.envs.engine.episode`): :class:`KnowledgeBenchmarkRules` is the
rule over a batch, with exact or float money; :class:`KnowledgeBenchmark`, the exact face, runs
it on a batch of one with exact money, the coin an explicit chance node. Phases:
``announce`` (0, everyone), then ``respond`` (1, the players given a non-empty bundle in Ω_★)
when anyone is asked, then the fair coin, drawn in the step that resolves the last decision.

Array layout (every agent): ``answer`` (2: 0 = NO, 1 = YES), ``bundle`` (2**m: S_i), then
``owner_g`` (n+1 per good: 0 = unallocated, ``j + 1`` = player ``j``) and ``price_j``
(value ``k`` = price ``k + min_price``, prices ``min_price..price_cap`` with ``min_price`` 0, or
1 with ``positive_prices=True``; read only where ``j`` is given a non-empty bundle). Phase
``announce`` reads ``bundle`` and the offer; ``respond`` reads ``answer``. The mask forbids the
announcer as an owner, so every masked array decodes to a canonical outcome.

``state.data``: ``announced`` (B,), the announcements ``bundle`` (B, n) and offers ``alloc``,
``prices`` (B, announcer, player), the revenues ``rev`` (B, n), the star ``star`` and R'
``second`` (B,), the answers ``answers`` (B, n: +1 YES, −1 NO, 0 not asked) and the coin
``coin`` (B,: 0 heads, 1 tails, −1 not drawn).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
from mechgym.envs.engine.actions import (
    Offer,
    check_answer,
    check_bundle,
    check_offer,
    decode_offer,
    describe_offer,
    encode_offer,
    offer_stage_size,
)
from mechgym.envs.engine.batched import (
    TERMINAL,
    BatchedRules,
    BatchOutcome,
    BatchState,
    check_actions,
    check_context,
    register_batched,
)
from mechgym.envs.engine.episode import BatchOfOne, Episode, MoveRules, Moves
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError, ParameterError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import EnvSpec, Examples, Guarantee, as_fraction
from mechgym.envs.engine.money import FLOAT, Money
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.offer_rules import (
    PhaseMasks,
    announce_mask_rows,
    announce_or_answer_moves,
    decode_offers,
    draw_coin,
    merge,
    star_features,
    winner_of,
    write_offer_stage,
)
from mechgym.envs.model.batch import ContextBatch
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.solvers.packing import best_beliefs, msw

ANNOUNCE, RESPOND = 0, 1


@dataclass(frozen=True)
class KBAnnouncement:
    """Stage-1 action of M3: a canonical outcome Ω_i for the others and a bundle S_i."""

    bundle: int
    offer: Offer


def price_offer_fields(spec: EnvSpec, min_price: int) -> list[tuple[str, int]]:
    """Offer fields with prices ``min_price..price_cap``: ``owner_g`` and ``price_j``."""
    return [(f"owner_{g}", spec.n + 1) for g in range(spec.m)] + [
        (f"price_{j}", spec.price_cap + 1 - min_price) for j in range(spec.n)
    ]


def encode_price_offer(
    offer: Offer,
    vec: np.ndarray,
    spec: EnvSpec,
    layout: ActionLayout,
    agent: str,
    phase: str,
    min_price: int,
) -> None:
    """Write an offer with prices in ``min_price..price_cap`` into ``vec``; others raise."""
    # The shared codec checks price - min_price < spec.price_cap; this grid reaches price_cap.
    grid = replace(spec, price_cap=spec.price_cap + 1 - min_price)
    encode_offer(offer, vec, grid, layout, agent, phase, min_price=min_price)


class KnowledgeBenchmark(BatchOfOne):
    """M3: E[SW] + E[REV] ≥ MIEW(K_I)/2 under knowingly surviving play (Theorem 2).

    Parameters
    ----------
    eps : number in [0, 1), default 0
        Footnote 4: a YES-sayer pays π − ε instead of π (0 = the paper's main text).
    positive_prices : bool, default False
        Require a positive price wherever a bundle is given (the informal reading of Section 6,
        "a non-empty set of goods (for a positive price)"); default: Definition 2's prices ≥ 0.
    """

    name = "knowledge_benchmark"
    title = "Knowledge-benchmark mechanism (seed 001, Sec. 6)"
    phases = ("announce", "respond")
    mask_depends_on_state = False
    # only the players offered a bundle answer YES/NO
    every_player_acts = False

    parameter_examples: ClassVar[Examples] = {"eps": ("1/5", "1/2"), "positive_prices": (True,)}

    def __init__(self, eps: Any = 0, positive_prices: bool = False) -> None:
        e = as_fraction(eps, "eps")
        if not 0 <= e < 1:
            raise ParameterError("eps", f"must lie in [0, 1) (footnote 4's ε; 0 = off), got {e}")
        self.eps = e
        if not isinstance(positive_prices, bool | np.bool_):
            raise ParameterError(
                "positive_prices", f"must be true or false, got {positive_prices!r}"
            )
        self.min_price = 1 if positive_prices else 0

    def params(self) -> dict[str, Any]:
        return {"eps": str(self.eps), "positive_prices": bool(self.min_price)}

    # -- theory ------------------------------------------------------------------------------
    def benchmarks(self, ctx: Any) -> dict[str, Any]:
        """MSW, MIEW_i for every player, MIEW over the independent players."""
        per = [b.value for b in best_beliefs(ctx)]
        indep = [per[i] for i in ctx.independent]
        return {
            "MSW": msw(ctx).value,
            "MIEW_i": per,
            "MIEW": max(indep) if indep else 0,
            "MIEW_all": max(per),
        }

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee:
        """Theorem 2 of seed 001: E[SW] + E[REV] ≥ MIEW(K_I)/2."""
        bench = self.benchmarks(ctx)
        return Guarantee(
            "E[SW] + E[REV] >= MIEW(K_I)/2",
            Fraction(bench["MIEW"], 2),
            ev.expected_welfare + ev.expected_revenue,
        )

    # -- moves -------------------------------------------------------------------------------
    def validate(self, s: Episode, player: int, action: Any) -> Any:
        agent, n, m = f"player_{player}", s.ctx.n, s.ctx.m
        if s.state.phase[0] == ANNOUNCE:
            phase = "announce"
            if not isinstance(action, KBAnnouncement):
                raise MalformedAnnouncementError(
                    agent, phase, f"expected a KBAnnouncement, got {type(action).__name__}"
                )
            bundle = check_bundle(action.bundle, m, agent, phase, "favourite bundle S_i")
            offer = check_offer(action.offer, n, m, player, agent, phase, min_price=self.min_price)
            return KBAnnouncement(bundle, offer)
        return check_answer(action, agent, "respond")

    def moves(self, s: Episode, actions: Mapping[int, Any]) -> Moves:
        return announce_or_answer_moves(s.ctx.n, actions, KBAnnouncement)

    # -- encodings ---------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout(
            [("answer", 2), ("bundle", 1 << spec.m), *price_offer_fields(spec, self.min_price)]
        )

    def decode(
        self, s: Episode, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        if s.state.phase[0] == ANNOUNCE:
            offer = decode_offer(vec, spec, layout, min_price=self.min_price)
            return KBAnnouncement(int(vec[layout.index["bundle"]]), offer)
        return bool(vec[layout.index["answer"]])

    def encode(
        self, s: Episode, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        if s.state.phase[0] == ANNOUNCE:
            vec[layout.index["bundle"]] = action.bundle
            agent = f"player_{player}"
            encode_price_offer(action.offer, vec, spec, layout, agent, "announce", self.min_price)
        else:
            vec[layout.index["answer"]] = int(bool(action))
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 * spec.n + offer_stage_size(spec)

    def describe_action(self, s: Episode, player: int, action: Any) -> str:
        if isinstance(action, KBAnnouncement):
            return f"S={{{format_bundle(action.bundle)}}} {describe_offer(action.offer)}"
        return "YES" if action else "NO"


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
class KnowledgeBenchmarkRules(MoveRules):
    """The rules of :class:`KnowledgeBenchmark` over a batch (footnote 4's ε included)."""

    mechanism = KnowledgeBenchmark
    implements = frozenset({"eps", "positive_prices"})

    def __init__(self, mech: KnowledgeBenchmark, spec: EnvSpec, money: Money = FLOAT) -> None:
        super().__init__(mech, spec, money)
        self.eps = money.constant(mech.eps)
        self.min_price = mech.min_price
        lay = self.layout
        respond = np.broadcast_to(lay.mask({"answer": True}), (spec.n, lay.mask_size))
        self._masks = PhaseMasks(
            [announce_mask_rows(lay, spec, {"bundle": True}), respond], lay.mask({})
        )
        self._bundle = lay.index["bundle"]
        self._answer = lay.index["answer"]

    def reset(self, ctx: ContextBatch, rng: Any) -> BatchState:
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

    def mask_rows(self, state: BatchState) -> tuple[np.ndarray, np.ndarray]:
        return self._masks.rows(state.phase, state.acting)

    def decode_moves(self, state: BatchState, actions: np.ndarray) -> Moves:
        actions = checked_actions(self, state, actions)
        alloc, prices = decode_offers(actions, self.spec, self.layout, self.min_price)
        return {
            "bundle": actions[:, :, self._bundle],
            "alloc": alloc,
            "prices": prices,
            "yes": actions[:, :, self._answer] != 0,
        }

    def apply(self, ctx: ContextBatch, state: BatchState, moves: Moves, rng: Any) -> BatchState:
        d = dict(state.data)
        chance = list(state.chance)
        n = ctx.n
        phase = state.phase.copy()
        acting = state.acting.copy()
        ann = phase == ANNOUNCE
        res = phase == RESPOND
        coin_live = np.zeros_like(ann)
        if ann.any():
            alloc, prices = moves["alloc"], moves["prices"]
            rev = reduce_last(np.add, prices)  # R_i = REV(Ω_i)
            star = winner_of(rev)
            others = np.where(np.arange(n) == star[:, None], np.iinfo(np.int64).min, rev)
            d["alloc"] = merge(ann, alloc, d["alloc"])
            d["prices"] = merge(ann, prices, d["prices"])
            d["bundle"] = merge(ann, moves["bundle"], d["bundle"])
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
            said = np.where(moves["yes"], 1, -1).astype(np.int8)
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
        B, n = d["star"].shape[0], d["rev"].shape[1]
        money = self.money
        rows = np.arange(B)
        alloc_s, prices_s = star_offer(d)
        star = np.arange(n)[None, :] == d["star"][:, None]
        yes = d["answers"] == 1
        fines = money.array(reduce_last(np.add, np.where(d["answers"] == -1, prices_s, 0)))
        heads = (d["coin"] == 0)[:, None]
        zeros = money.zeros((B, n))
        # Tails: every YES-sayer buys at π − ε and the proceeds go to ★, who also pays R'.
        pay = np.where(yes, money.array(prices_s) - self.eps, zeros)
        tails_star = money.array(d["second"]) - reduce_last(np.add, pay)
        star_pays = fines + np.where(heads[:, 0], zeros[:, 0], tails_star)
        prices = np.where(heads, zeros, pay) + star * star_pays[:, None]
        alloc = np.where(heads, star * d["bundle"][rows, d["star"]][:, None], 0)
        alloc = np.where(~heads & yes, alloc_s, alloc).astype(np.int64)
        return BatchOutcome.of_bundles(alloc, prices)

    def outcome_rule(self, state: BatchState) -> str:
        return "heads" if state.data["coin"][0] == 0 else "tails"

    def pending_offers(self, state: BatchState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        alloc, prices = star_offer(state.data)
        return (state.phase == RESPOND)[:, None] & state.acting, alloc, prices

    def public_features(self, state: BatchState, player: int) -> np.ndarray:
        return self.public_features_all(state)[:, player]

    def public_features_all(self, state: BatchState) -> np.ndarray:
        """[star one-hot | revenues | Ω_★ (owners, prices) | own question | answers]."""
        d = state.data
        n = self.spec.n
        one = star_features(d, n, self.mech.public_size(self.spec))
        out = np.repeat(one[:, None, :], n, axis=1)
        if not d["announced"].any():
            return np.zeros_like(out)
        alloc_s, prices_s = star_offer(d)
        write_offer_stage(
            out, 2 * n, self.spec, alloc_s, prices_s, None, alloc_s != 0, d["answers"]
        )
        out[~d["announced"]] = 0.0
        return out


# value k = price k + min_price (read from the instance by make_plan)
register_factored("knowledge_benchmark")
