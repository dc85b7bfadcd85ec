"""M1 — the best-belief mechanism M_BB (seed 000, Section 6).

1. Simultaneously, every player ``i`` announces a bundle ξ_i and an offer ω^i for the others.
   R_i = REV(ω^i); the winner ``w`` is the highest announcer (lowest index on ties).
2. A fair coin. Heads: ``w`` receives ξ_w for free and the game halts (no rewards).
3. Tails: every player offered a bundle in ω^w answers YES or NO, simultaneously. YES buys at
   π − ε/n; NO charges π to the winner. Then every player receives δ_i = (ε/n)·R_i/(1+R_i).

Array layout (every agent): ``answer`` (2: 0 = NO, 1 = YES), ``bundle`` (2**m: ξ), then the
offer fields of :mod:`mechgym.envs.actions` (``owner_g``, ``price_j``). Phase ``announce`` reads
``bundle`` and the offer; phase ``respond`` reads ``answer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

from .actions import (
    Offer,
    check_answer,
    check_bundle,
    check_offer,
    decode_offer,
    encode_offer,
    offer_fields,
    offer_mask,
    offer_stage_size,
    write_offer_stage,
)
from .bundles import format_bundle
from .engine import Chance, Decision, EnvSpec, Node, Terminal
from .errors import MalformedAnnouncementError
from .offer_rules import (  # noqa: F401  (check_eps re-exported for other mechanisms)
    Seed000Mechanism,
    check_eps,
    heads_outcome,
    tails_outcome,
    winner_of,
)
from .spaces import ActionLayout

HALF = Fraction(1, 2)
COIN = Chance("coin", ("heads", "tails"), (HALF, HALF))


@dataclass(frozen=True)
class BBAnnouncement:
    """Stage-1 action of M_BB: a favourite bundle ξ and an offer ω for the others."""

    bundle: int
    offer: Offer


@dataclass(frozen=True)
class BestBeliefState:
    """Public state of M_BB."""

    n: int
    m: int
    announcements: tuple[BBAnnouncement, ...] | None = None
    coin: int | None = None
    answers: tuple[tuple[int, bool], ...] | None = None

    @cached_property
    def revenues(self) -> tuple[int, ...]:
        assert self.announcements is not None
        return tuple(a.offer.revenue for a in self.announcements)

    @cached_property
    def winner(self) -> int:
        return winner_of(self.revenues)

    @property
    def askers(self) -> tuple[int, ...]:
        """Players offered a non-empty bundle by the winner."""
        offer = self.announcements[self.winner].offer
        return tuple(i for i, b in enumerate(offer.alloc) if b)


class BestBelief(Seed000Mechanism):
    """M_BB: revenue ≥ BB/2 − ε in expectation under undominated play (Theorem 2)."""

    name = "best_belief"
    title = "Best-belief mechanism M_BB (seed 000, Sec. 6)"
    phases = ("announce", "respond")
    mask_depends_on_state = False

    # -- rules -------------------------------------------------------------------------------
    def start(self, ctx: Any) -> BestBeliefState:
        return BestBeliefState(ctx.n, ctx.m)

    def node(self, s: BestBeliefState) -> Node:
        if s.announcements is None:
            return Decision(tuple(range(s.n)), "announce")
        if s.coin is None:
            return COIN
        w = s.winner
        if s.coin == 0:
            return Terminal(heads_outcome(s.n, w, s.announcements[w].bundle))
        if s.answers is None:
            askers = s.askers
            if askers:
                return Decision(askers, "respond")
            return Terminal(
                tails_outcome(s.n, w, s.announcements[w].offer, {}, s.revenues, self.eps)
            )
        return Terminal(
            tails_outcome(s.n, w, s.announcements[w].offer, dict(s.answers), s.revenues, self.eps)
        )

    def validate(self, s: BestBeliefState, player: int, action: Any) -> Any:
        agent = f"player_{player}"
        if s.announcements is None:
            phase = "announce"
            if not isinstance(action, BBAnnouncement):
                raise MalformedAnnouncementError(
                    agent, phase, f"expected a BBAnnouncement, got {type(action).__name__}"
                )
            bundle = check_bundle(action.bundle, s.m, agent, phase, "favourite bundle")
            offer = check_offer(action.offer, s.n, s.m, player, agent, phase)
            return BBAnnouncement(bundle, offer)
        return check_answer(action, agent, "respond")

    def resolve(self, s: BestBeliefState, actions: Mapping[int, Any]) -> BestBeliefState:
        if s.announcements is None:
            return replace(s, announcements=tuple(actions[i] for i in range(s.n)))
        return replace(s, answers=tuple(sorted(actions.items())))

    # -- encodings ---------------------------------------------------------------------------
    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([("answer", 2), ("bundle", 1 << spec.m), *offer_fields(spec)])

    def action_mask(
        self, s: BestBeliefState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        if s.announcements is None:
            return layout.mask({"bundle": True, **offer_mask(spec, player)})
        return layout.mask({"answer": True})

    def decode(
        self, s: BestBeliefState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        if s.announcements is None:
            return BBAnnouncement(int(vec[layout.index["bundle"]]), decode_offer(vec, spec, layout))
        return bool(vec[layout.index["answer"]])

    def encode(
        self, s: BestBeliefState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        if s.announcements is None:
            vec[layout.index["bundle"]] = action.bundle
            encode_offer(action.offer, vec, spec, layout, f"player_{player}", "announce")
        else:
            vec[layout.index["answer"]] = int(bool(action))
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 2 * spec.n + 2 + offer_stage_size(spec)

    def public_features(self, s: BestBeliefState, player: int, spec: EnvSpec) -> np.ndarray:
        n = spec.n
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        if s.announcements is None:
            return out
        w = s.winner
        out[w] = 1.0
        out[n : 2 * n] = s.revenues
        k = 2 * n
        if s.coin is not None:
            out[k + s.coin] = 1.0
        offer = s.announcements[w].offer
        write_offer_stage(out, k + 2, spec, offer, player, bool(offer.alloc[player]), s.answers)
        return out

    def describe_action(self, s: BestBeliefState, player: int, action: Any) -> str:
        if isinstance(action, BBAnnouncement):
            return f"xi={{{format_bundle(action.bundle)}}} {describe_offer(action.offer)}"
        return "YES" if action else "NO"


def describe_offer(offer: Offer) -> str:
    """``offer: p1 gets {0} at 25, p2 gets {0,1} at 10 (REV 35)``."""
    parts = [
        f"p{j} gets {{{format_bundle(b)}}} at {p}"
        for j, (b, p) in enumerate(zip(offer.alloc, offer.prices, strict=True))
        if b
    ]
    return "offer: " + (", ".join(parts) if parts else "nothing") + f" (REV {offer.revenue})"
