"""Equilibrium distance under the field's names, computed exactly (chance enumerated).

Beside mechgym's own agreement and bound metrics (:mod:`mechgym.training.metrics`):

``nash_conv``
    OpenSpiel's NashConv: Σ_g [BR_g(σ_−g) − u_g(σ)] over the evaluated groups g (players or
    coalitions), where BR_g is the group's exact best response. Over the *full* action space
    (every legal array action at every node) when the game is small enough to enumerate
    (:data:`MAX_FULL_OPTIONS` per player and node), else within the menus.
``exploitability[g]``
    The group's term of that sum: what it gains by its best response.
``utility_loss[g]``
    bnelearn's utility loss ε: the same gain, BR_g(σ_−g) − u_g(σ).
``relative_utility_loss[g]``
    bnelearn's ℒ: 1 − u_g(σ_g, σ*_−g) / u_g(σ*), the share of its predicted-equilibrium
    utility that the group loses by playing σ_g against predicted opponents σ*_−g
    (``None`` where u_g(σ*) = 0).
``l2_offer``
    L2 distance of announced offers to the predicted ones: the root of the visit-weighted
    mean of ||π − π*||² over the evaluated players' announcements (price vectors of the
    offers they announce against the predicted ones at the same node).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ActionError
from mechgym.envs.engine.game import (
    Chance,
    Decision,
    EnvSpec,
    Mechanism,
    Terminal,
    evaluate_exact,
    step_decision,
)

from .learner_env import Group, expected_group_value, group_label, group_value
from .metrics import best_response_value

MAX_FULL_OPTIONS = 512
"""Largest number of legal array actions per group and node searched exhaustively (a
coalition counts its members' joint actions): beyond it the search falls back to the menus,
since a best response explores every option at every node below."""

FULL_SPACE_LIMIT = 4096
"""Default largest number of legal (joint) actions at one node for
:func:`full_space_exploitability` (M1 at n = 3, m = 2 has 3,600 announcements; M3's 15,876
and beyond are left to the menus' lower bound)."""


class TooManyOptions(ValueError):
    """A node has more legal actions than the full-space search accepts."""


Mixed = Callable[[Any, Any, int], Sequence[tuple[Fraction, Any]]]
"""``(ctx, state, player) -> [(probability, structured action), ...]``."""


def full_options(
    mech: Mechanism, spec: EnvSpec, limit: int = 4096
) -> Callable[[Any, Any, int], list[Any]]:
    """Options callable listing every legal action (decoded from the array layout's mask).

    Raises
    ------
    TooManyOptions
        When a node has more than ``limit`` legal actions.
    """
    layout = mech.layout(spec)

    def options(ctx: Any, state: Any, player: int) -> list[Any]:
        mask = mech.action_mask(state, player, spec, layout)
        legal = [np.flatnonzero(layout.field_mask(mask, f)) for f in layout.names]
        total = math.prod(len(x) for x in legal)
        if total > limit:
            raise TooManyOptions(f"{total} legal actions at one node exceed the limit {limit}")
        out = []
        for combo in itertools.product(*legal):
            vec = np.asarray(combo, dtype=np.int64)
            try:
                out.append(mech.decode(state, player, vec, spec, layout))
            except ActionError:
                continue
        return out

    return options


def count_full_options(mech: Mechanism, spec: EnvSpec, state: Any, player: int) -> int:
    """Number of legal array actions of ``player`` at ``state``."""
    layout = mech.layout(spec)
    mask = mech.action_mask(state, player, spec, layout)
    return math.prod(int(layout.field_mask(mask, f).sum()) for f in layout.names)


def fits_full_space(
    mech: Mechanism,
    spec: EnvSpec,
    contexts: Sequence[Any],
    profile: Callable[[Any], Mapping[int, Any]],
    groups: Sequence[Group],
    limit: int,
) -> bool:
    """Whether every node on the profile's path has at most ``limit`` legal (joint) actions
    for each group acting there."""
    evs = (evaluate_exact(mech, ctx, profile(ctx)) for ctx in contexts)
    return all(_path_fits(mech, spec, ev, groups, limit) for ev in evs)


def _path_fits(
    mech: Mechanism, spec: EnvSpec, ev: Any, groups: Sequence[Group], limit: int
) -> bool:
    """:func:`fits_full_space` for one evaluated context."""
    for v in ev.visits:
        for g in groups:
            sizes = [count_full_options(mech, spec, v.state, p) for p in v.node.players if p in g]
            if math.prod(sizes) > limit:
                return False
    return True


def full_space_exploitability(
    mech: Mechanism,
    spec: EnvSpec,
    contexts: Sequence[Any],
    profile: Callable[[Any], Mapping[int, Any]],
    groups: Sequence[Group],
    limit: int = FULL_SPACE_LIMIT,
) -> dict[str, float] | None:
    """Each group's exact gain by its best response over **every** legal action of the
    mechanism (the array layout, not an encoding's subset), mean over ``contexts``; chance
    enumerated, the others' (deterministic) policies fixed.

    A true exploitability, whatever encoding the profile was learned in: the mechanism's own
    strategy space contains every encoding's. ``None`` where a node on the profile's path, or
    one a deviation reaches, has more than ``limit`` legal actions (for one player; a
    coalition's joint actions on the path).
    """
    # every path checked before the costly searches; each context evaluated once
    played = [(ctx, dict(profile(ctx))) for ctx in contexts]
    evs = [evaluate_exact(mech, ctx, pol) for ctx, pol in played]
    if not all(_path_fits(mech, spec, ev, groups, limit) for ev in evs):
        return None
    options = full_options(mech, spec, limit)
    gains: dict[str, list[float]] = {group_label(g): [] for g in groups}
    try:
        for (ctx, pol), ev in zip(played, evs, strict=True):
            for g in groups:
                br = best_response_value(mech, ctx, pol, g, options)
                gains[group_label(g)].append(float(br - expected_group_value(ctx, ev, g)))
    except TooManyOptions:
        return None
    return {k: sum(v) / len(v) for k, v in gains.items() if v}


def mixed_value(
    mech: Mechanism,
    ctx: Any,
    policies: Mapping[int, Any],
    group: Group,
    mixed: Mapping[int, Mixed],
    state: Any = None,
) -> Fraction:
    """The group's exact expected reward when players in ``mixed`` play mixed strategies
    (``mixed[p](ctx, state, p)`` lists probabilities and actions) and the others play their
    deterministic ``policies``; chance is enumerated."""
    memo: dict[Any, Fraction] = {}

    def value(st: Any) -> Fraction:
        try:
            hit = memo.get(st)
            key = st
        except TypeError:
            hit, key = None, None
        if hit is not None:
            return hit
        node = mech.node(st)
        if isinstance(node, Terminal):
            v = group_value(ctx, node.outcome, group)
        elif isinstance(node, Chance):
            v = sum(
                (pr * value(mech.chance(st, k)) for k, pr in enumerate(node.probs) if pr > 0),
                Fraction(0),
            )
        else:
            assert isinstance(node, Decision)
            fixed = {p: policies[p].act(mech, ctx, st, p) for p in node.players if p not in mixed}
            randomised = [p for p in node.players if p in mixed]
            dists = [list(mixed[p](ctx, st, p)) for p in randomised]
            v = Fraction(0)
            for combo in itertools.product(*dists):
                pr = Fraction(1)
                acts = dict(fixed)
                for p, (q, a) in zip(randomised, combo, strict=True):
                    pr *= Fraction(q)
                    acts[p] = a
                if pr:
                    v += pr * value(step_decision(mech, st, node, acts))
        if key is not None:
            memo[key] = v
        return v

    return value(mech.start(ctx) if state is None else state)


def uniform_over(options: Callable[[Any, Any, int], list[Any]]) -> Mixed:
    """The mixed strategy that picks one of ``options`` uniformly."""

    def mixed(ctx: Any, state: Any, player: int) -> list[tuple[Fraction, Any]]:
        opts = options(ctx, state, player)
        return [(Fraction(1, len(opts)), a) for a in opts]

    return mixed


@dataclass
class EquilibriumMetrics:
    """Equilibrium-distance figures of one profile, means over contexts (module docstring)."""

    nash_conv: float | None = None
    action_space: str = "menu"
    exploitability: dict[str, float] = field(default_factory=dict)
    utility_loss: dict[str, float] = field(default_factory=dict)
    relative_utility_loss: dict[str, float | None] = field(default_factory=dict)
    l2_offer: float | None = None
    contexts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "nash_conv": self.nash_conv,
            "action_space": self.action_space,
            "exploitability": self.exploitability,
            "utility_loss": self.utility_loss,
            "relative_utility_loss": self.relative_utility_loss,
            "l2_offer": self.l2_offer,
            "contexts": self.contexts,
        }


def offer_prices(action: Any) -> tuple[Fraction, ...] | None:
    """The price vector of an announcement carrying an offer (``None`` for other actions)."""
    offer = getattr(action, "offer", None)
    if offer is None and hasattr(action, "prices") and hasattr(action, "alloc"):
        offer = action
    return None if offer is None else tuple(Fraction(p) for p in offer.prices)


def equilibrium_metrics(
    mech: Mechanism,
    spec: EnvSpec,
    contexts: Sequence[Any],
    profile: Callable[[Any], Mapping[int, Any]],
    predicted: Callable[[Any], Mapping[int, Any]],
    groups: Sequence[Group],
    menu_options: Callable[[Any, Any, int], list[Any]] | None = None,
    action_space: str = "auto",
) -> EquilibriumMetrics:
    """NashConv, exploitability, bnelearn's utility losses and the offers' L2 distance.

    Parameters
    ----------
    profile, predicted : callable ctx -> {player: policy}
        The evaluated profile and the theory's (deterministic) profile.
    groups : sequence of groups
        The evaluated players or coalitions.
    menu_options : callable, optional
        Deviation options within the menus (used when the full action space is too large,
        or always with ``action_space="menu"``).
    action_space : {"auto", "full", "menu"}
        ``auto`` searches the full action space when every node of the evaluated groups on
        the profile's path has at most :data:`MAX_FULL_OPTIONS` legal (joint) actions, else
        the menus.
    """
    full = full_options(mech, spec)
    space = action_space
    if space == "auto":
        fits = fits_full_space(mech, spec, contexts, profile, groups, MAX_FULL_OPTIONS)
        space = "full" if fits else "menu"
    if space == "menu" and menu_options is None:
        raise ValueError("menu deviations need menu_options")
    options = full if space == "full" else menu_options
    gains: dict[str, list[float]] = {group_label(g): [] for g in groups}
    rel: dict[str, list[float]] = {group_label(g): [] for g in groups}
    sq_num = Fraction(0)
    sq_den = Fraction(0)
    members = {p for g in groups for p in g}
    for ctx in contexts:
        pol = dict(profile(ctx))
        pred = dict(predicted(ctx))
        ev = evaluate_exact(mech, ctx, pol)
        ev_pred = evaluate_exact(mech, ctx, pred)
        for g in groups:
            label = group_label(g)
            current = expected_group_value(ctx, ev, g)
            br = best_response_value(mech, ctx, pol, g, options)  # type: ignore[arg-type]
            gains[label].append(float(br - current))
            star = expected_group_value(ctx, ev_pred, g)
            mine = {**pred, **{p: pol[p] for p in g}}
            ev_dev = evaluate_exact(mech, ctx, mine)
            against = expected_group_value(ctx, ev_dev, g)
            if star != 0:
                rel[label].append(float(1 - against / star))
        for visit in ev.visits:
            for p in visit.node.players:
                if p not in members:
                    continue
                got = offer_prices(visit.actions[p])
                if got is None:
                    continue
                want = offer_prices(pred[p].act(mech, ctx, visit.state, p))
                if want is None or len(want) != len(got):
                    continue
                sq_num += visit.prob * sum(((a - b) ** 2 for a, b in zip(got, want, strict=True)))
                sq_den += visit.prob
    out = EquilibriumMetrics(action_space=space, contexts=len(contexts))
    out.exploitability = {k: sum(v) / len(v) for k, v in gains.items() if v}
    out.utility_loss = dict(out.exploitability)
    out.relative_utility_loss = {k: (sum(v) / len(v) if v else None) for k, v in rel.items()}
    out.nash_conv = sum(out.exploitability.values()) if out.exploitability else None
    out.l2_offer = math.sqrt(float(sq_num / sq_den)) if sq_den else None
    return out
