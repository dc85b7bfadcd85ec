"""M2 — the normal-form mechanism M_Normal (seed 000, Section 4).

One simultaneous move: every player reports a full valuation v_i and an offer ω^i for the
others. The winner ``w`` is the highest announced revenue (lowest index on ties). A fair coin:
heads gives ``w`` a bundle maximising v_w (lowest bitmask on ties) for free; tails sells ω^w,
with player ``i``'s answer read off its report (YES iff v_i(α^w_i) ≥ π^w_i), then pays every
reward δ_i. Unlike M1 the whole valuation is revealed.

Array layout: ``value_S`` for every non-empty bundle S (0..value_cap), then the offer fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from mechgym.envs.engine.actions import (
    Offer,
    check_offer,
    check_valuation,
    decode_offer,
    describe_offer,
    encode_offer,
    favourite_bundle,
    offer_features,
    offer_fields,
    offer_mask,
    valuation_fields,
)
from mechgym.envs.engine.errors import MalformedAnnouncementError, OutOfSpaceError
from mechgym.envs.engine.factored import register_factored
from mechgym.envs.engine.game import Decision, EnvSpec, Guarantee, Node, Terminal
from mechgym.envs.engine.spaces import ActionLayout
from mechgym.envs.mechanisms.offer_rules import (
    COIN,
    AnnouncedOffers,
    Seed000Mechanism,
    heads_outcome,
    tails_outcome,
)


@dataclass(frozen=True)
class NormalAnnouncement:
    """The only action of M_Normal: a reported valuation (2**m entries) and an offer."""

    valuation: tuple[int, ...]
    offer: Offer


@dataclass(frozen=True)
class NormalFormState(AnnouncedOffers):
    """Public state of M_Normal."""

    n: int
    m: int
    announcements: tuple[NormalAnnouncement, ...] | None = None
    coin: int | None = None

    @property
    def winner(self) -> int:
        """The highest announcer w."""
        return self.top

    def accepted(self) -> dict[int, bool]:
        """Each offered player's answer as read from its reported valuation."""
        offer = self.announcements[self.winner].offer
        return {
            i: self.announcements[i].valuation[b] >= offer.prices[i]
            for i, b in enumerate(offer.alloc)
            if b
        }


class NormalForm(Seed000Mechanism):
    """M_Normal: revenue ≥ BB/2 − ε in expectation under undominated play (Theorem 1)."""

    name = "normal_form"
    title = "Normal-form mechanism M_Normal (seed 000, Sec. 4)"
    phases = ("announce",)
    mask_depends_on_state = False

    def guarantee(self, ctx: Any, ev: Any) -> Guarantee | None:
        """Theorem 1 of seed 000, E[REV] ≥ BB/2 − ε, when every player acts alone; the paper
        states its collusion bound (Section 6.2.3) for M_BB only, so none is claimed here."""
        if ctx.collusive:
            return None
        return super().guarantee(ctx, ev)

    def start(self, ctx: Any) -> NormalFormState:
        return NormalFormState(ctx.n, ctx.m)

    def node(self, s: NormalFormState) -> Node:
        if s.announcements is None:
            return Decision(tuple(range(s.n)), "announce")
        if s.coin is None:
            return COIN
        w = s.winner
        if s.coin == 0:
            return Terminal(heads_outcome(s.n, w, favourite_bundle(s.announcements[w].valuation)))
        return Terminal(
            tails_outcome(s.n, w, s.announcements[w].offer, s.accepted(), s.revenues, self.eps)
        )

    def validate(self, s: NormalFormState, player: int, action: Any) -> Any:
        agent, phase = f"player_{player}", "announce"
        if not isinstance(action, NormalAnnouncement):
            raise MalformedAnnouncementError(
                agent, phase, f"expected a NormalAnnouncement, got {type(action).__name__}"
            )
        return NormalAnnouncement(
            check_valuation(action.valuation, s.m, agent, phase),
            check_offer(action.offer, s.n, s.m, player, agent, phase),
        )

    def resolve(self, s: NormalFormState, actions: Mapping[int, Any]) -> NormalFormState:
        return replace(s, announcements=tuple(actions[i] for i in range(s.n)))

    def layout(self, spec: EnvSpec) -> ActionLayout:
        return ActionLayout([*valuation_fields(spec), *offer_fields(spec)])

    def action_mask(
        self, s: NormalFormState, player: int, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vals = {f"value_{b}": True for b in range(1, 1 << spec.m)}
        return layout.mask({**vals, **offer_mask(spec, player)})

    def decode(
        self, s: NormalFormState, player: int, vec: np.ndarray, spec: EnvSpec, layout: ActionLayout
    ) -> Any:
        report = (0, *(int(vec[layout.index[f"value_{b}"]]) for b in range(1, 1 << spec.m)))
        return NormalAnnouncement(report, decode_offer(vec, spec, layout))

    def encode(
        self, s: NormalFormState, player: int, action: Any, spec: EnvSpec, layout: ActionLayout
    ) -> np.ndarray:
        vec = layout.zeros()
        encode_valuation(action.valuation, vec, spec, layout, f"player_{player}", "announce")
        encode_offer(action.offer, vec, spec, layout, f"player_{player}", "announce")
        return vec

    def public_size(self, spec: EnvSpec) -> int:
        return 4 * spec.n + spec.m + 2

    def public_features(self, s: NormalFormState, player: int, spec: EnvSpec) -> np.ndarray:
        n, m = spec.n, spec.m
        out = np.zeros(self.public_size(spec), dtype=np.float32)
        if s.announcements is None:
            return out
        w = s.winner
        out[w] = 1.0
        out[n : 2 * n] = s.revenues
        if s.coin is not None:
            out[2 * n + s.coin] = 1.0
        k = 2 * n + 2
        out[k : k + m + n] = offer_features(s.announcements[w].offer, spec)
        k += m + n
        if s.coin == 1:
            for i, yes in s.accepted().items():
                out[k + i] = 1.0 if yes else -1.0
        return out

    def describe_action(self, s: NormalFormState, player: int, action: Any) -> str:
        return f"v={list(action.valuation)} {describe_offer(action.offer)}"


def encode_valuation(
    valuation: tuple[int, ...],
    vec: np.ndarray,
    spec: EnvSpec,
    layout: ActionLayout,
    agent: str,
    phase: str,
) -> None:
    """Write a reported valuation into ``vec``; raise if a value exceeds the grid."""
    for b in range(1, 1 << spec.m):
        x = int(valuation[b])
        if not 0 <= x <= spec.value_cap:
            raise OutOfSpaceError(
                agent, phase, f"value {x} of bundle {b} is outside the grid 0..{spec.value_cap}"
            )
        vec[layout.index[f"value_{b}"]] = x


# offers carry positive prices: field value k is price k + 1
register_factored("normal_form", price_offset=1)
