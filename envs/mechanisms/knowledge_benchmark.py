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

Array layout (every agent): ``answer`` (2: 0 = NO, 1 = YES), ``bundle`` (2**m: S_i), then
``owner_g`` (n+1 per good: 0 = unallocated, ``j + 1`` = player ``j``) and ``price_j``
(value ``k`` = price ``k + min_price``, prices ``min_price..price_cap`` with ``min_price`` 0, or
1 with ``positive_prices=True``; read only where ``j`` is given a non-empty bundle). Phase
``announce`` reads ``bundle`` and the offer; ``respond`` reads ``answer``. The mask forbids the
announcer as an owner, so every masked array decodes to a canonical outcome.
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
    offer_mask,
    offer_stage_size,
    write_offer_stage,
)
from mechgym.envs.engine.errors import MalformedAnnouncementError, ParameterError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import (
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
from mechgym.envs.mechanisms.offer_rules import COIN, AnnouncedOffers
from mechgym.envs.model.bundles import format_bundle
from mechgym.envs.model.outcome import Outcome
from mechgym.envs.solvers.packing import best_beliefs, msw


@dataclass(frozen=True)
class KBAnnouncement:
    """Stage-1 action of M3: a canonical outcome Ω_i for the others and a bundle S_i."""

    bundle: int
    offer: Offer


@dataclass(frozen=True)
class KnowledgeBenchmarkState(AnnouncedOffers):
    """Public state of M3 (answers come before the coin)."""

    n: int
    m: int
    announcements: tuple[KBAnnouncement, ...] | None = None
    answers: tuple[tuple[int, bool], ...] | None = None
    coin: int | None = None

    @property
    def star(self) -> int:
        """★: the highest announced revenue, lowest index on ties."""
        return self.top

    @property
    def second(self) -> int:
        """R' = max_{i≠★} R_i."""
        r = self.revenues
        s = self.star
        return max(r[i] for i in range(self.n) if i != s)

    @property
    def star_offer(self) -> Offer:
        assert self.announcements is not None
        return self.announcements[self.star].offer

    @property
    def askers(self) -> tuple[int, ...]:
        """Players offered a non-empty bundle in Ω_★."""
        return tuple(i for i, b in enumerate(self.star_offer.alloc) if b)


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


class KnowledgeBenchmark(Mechanism):
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

    # -- rules -------------------------------------------------------------------------------
    def start(self, ctx: Any) -> KnowledgeBenchmarkState:
        return KnowledgeBenchmarkState(ctx.n, ctx.m)

    def node(self, s: KnowledgeBenchmarkState) -> Node:
        if s.announcements is None:
            return Decision(tuple(range(s.n)), "announce")
        if s.answers is None and s.coin is None:
            askers = s.askers
            if askers:
                return Decision(askers, "respond")
        if s.coin is None:
            return COIN
        return Terminal(self.outcome(s))

    def outcome(self, s: KnowledgeBenchmarkState) -> Outcome:
        """The final outcome once the answers and the coin are known."""
        n, star = s.n, s.star
        offer = s.star_offer
        answers = dict(s.answers or ())
        alloc = [0] * n
        prices = [Fraction(0)] * n
        for i, yes in answers.items():
            if not yes:
                prices[star] += offer.prices[i]
        if s.coin == 0:
            alloc[star] = s.announcements[star].bundle
            return Outcome(tuple(alloc), tuple(prices), rule="heads")
        prices[star] += s.second
        for i, yes in answers.items():
            if yes:
                pay = offer.prices[i] - self.eps
                alloc[i] = offer.alloc[i]
                prices[i] += pay
                prices[star] -= pay
        return Outcome(tuple(alloc), tuple(prices), rule="tails")

    def pending_offer(self, s: KnowledgeBenchmarkState, player: int) -> PendingOffer | None:
        """At ``respond``: the star's offer Ω_★ (footnote 4 charges π − ε on YES; the
        question's price is π)."""
        if not asked_at(self, s, player, "respond"):
            return None
        offer = s.star_offer
        return PendingOffer(int(offer.alloc[player]), int(offer.prices[player]))

    def validate(self, s: KnowledgeBenchmarkState, player: int, action: Any) -> Any:
        agent = f"player_{player}"
        if s.announcements is None:
            phase = "announce"
            if not isinstance(action, KBAnnouncement):
                raise MalformedAnnouncementError(
                    agent, phase, f"expected a KBAnnouncement, got {type(action).__name__}"
                )
            bundle = check_bundle(action.bundle, s.m, agent, phase, "favourite bundle S_i")
            offer = check_offer(
                action.offer, s.n, s.m, player, agent, phase, min_price=self.min_price
            )
            return KBAnnouncement(bundle, offer)
        return check_answer(action, agent, "respond")

    def resolve(
        self, s: KnowledgeBenchmarkState, actions: Mapping[int, Any]
    ) -> KnowledgeBenchmarkState:
        if s.announcements is None:
            return replace(s, announcements=tuple(actions[i] for i in range(s.n)))
        return replace(s, answers=tuple(sorted(actions.items())))

    def chance(self, s: KnowledgeBenchmarkState, index: int) -> KnowledgeBenchmarkState:
        if s.answers is None:  # nobody was asked
            s = replace(s, answers=())
        return replace(s, coin=index)

    # -- encodings ---------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout(
            [("answer", 2), ("bundle", 1 << spec.m), *price_offer_fields(spec, self.min_price)]
        )

    def action_mask(
        self, s: KnowledgeBenchmarkState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        if s.announcements is None:
            return layout.mask({"bundle": True, **offer_mask(spec, player)})
        return layout.mask({"answer": True})

    def decode(
        self,
        s: KnowledgeBenchmarkState,
        player: int,
        vec: np.ndarray,
        spec: EnvSpec,
        layout: ActionLayout,
    ) -> Any:
        if s.announcements is None:
            offer = decode_offer(vec, spec, layout, min_price=self.min_price)
            return KBAnnouncement(int(vec[layout.index["bundle"]]), offer)
        return bool(vec[layout.index["answer"]])

    def encode(
        self,
        s: KnowledgeBenchmarkState,
        player: int,
        action: Any,
        spec: EnvSpec,
        layout: ActionLayout,
    ) -> np.ndarray:
        vec = layout.zeros()
        if s.announcements is None:
            vec[layout.index["bundle"]] = action.bundle
            agent = f"player_{player}"
            encode_price_offer(action.offer, vec, spec, layout, agent, "announce", self.min_price)
        else:
            vec[layout.index["answer"]] = int(bool(action))
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 * spec.n + offer_stage_size(spec)

    def public_features(self, s: KnowledgeBenchmarkState, player: int, spec: EnvSpec) -> np.ndarray:
        """[star one-hot | revenues | Ω_★ (owners, prices) | own question | answers]."""
        n = spec.n
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        if s.announcements is None:
            return out
        out[s.star] = 1.0
        out[n : 2 * n] = s.revenues
        offer = s.star_offer
        write_offer_stage(out, 2 * n, spec, offer, player, bool(offer.alloc[player]), s.answers)
        return out

    def describe_action(self, s: KnowledgeBenchmarkState, player: int, action: Any) -> str:
        if isinstance(action, KBAnnouncement):
            return f"S={{{format_bundle(action.bundle)}}} {describe_offer(action.offer)}"
        return "YES" if action else "NO"


# value k = price k + min_price (read from the instance by make_plan)
register_factored("knowledge_benchmark")
