"""Distance of a (learned) profile to the theory's predictions, computed exactly.

Every figure is computed with :func:`mechgym.envs.engine.game.evaluate_exact` (chance enumerated),
so learned policies must be deterministic: :class:`~mechgym.training.policies.LearnedPolicy`
plays the argmax action under the mask. Over a fixed list of evaluation contexts:

``agreement[phase]``
    Among the decisions of the evaluated (learned) players at nodes the profile visits, the
    share equal to the predicted action (``AGENTS[name].predicted(ctx).act``), weighted by
    the node's visit probability and pooled over contexts (``sum prob*[equal] / sum prob``).
    Where the agents register a ``reference`` (M5 with coalitions: the exact subgame-perfect
    profile, since Θ̄ is off the equilibrium at some off-path nodes), agreement is with the
    reference: the learned action is one of the reference's optimal actions at the node.
``prediction_off[phase]``, ``prediction_gap[phase]``
    Only with a ``reference``: the weighted share of those decisions where the stated
    prediction is not optimal in the reference, and there the mean exact loss of the
    prediction's action against the reference's, for the mover's group with everyone else
    playing the reference afterwards (Θ̄'s off-path gap, reported apart from learning).
``disagreement_loss[phase]``
    How much the disagreements cost: over the decisions counted above that differ from the
    prediction, the weighted mean of the exact expected reward of the decider's group had it
    played the predicted action at that node (everything else unchanged) minus what its
    learned action gets. Near zero means the disagreements are (near-)ties, e.g. answering NO
    to an offer priced exactly at one's value, where YES is better by only ε/n.
``bound_satisfied[phase]``, ``bound_ratio[phase]``
    For bound-type phases (``AGENTS[name].bound_phases``): the weighted share of decisions
    with ``achieved >= required`` and the weighted mean of ``achieved / required`` (decisions
    with ``required > 0``). ``AGENTS[name].bound`` supplies both numbers; where a mechanism
    registers the phase without a ``bound`` function, the phase is reported without it.
``revenue_ratio``, ``welfare_ratio``
    Means over contexts of E[REV] / benchmark (the first of :data:`REVENUE_BENCHMARKS` that
    ``mech.benchmarks(ctx)`` provides and is positive) and E[SW] / MSW.
``guarantee_holds``, ``guarantee_margin``
    Share of contexts where ``mech.guarantee(ctx, ev)`` holds, and mean ``value − bound``
    (``None`` when the mechanism states no guarantee).
``exploitability[group]``
    Mean over contexts of the group's best exact gain from deviating within its action
    encoding while everyone else keeps the profile: an exact best response by search over the
    game tree in which the deviator picks, at each of its nodes, one of the encoding's options
    (the menu entries, plus the profile's own action) and chance is enumerated. Chance and
    play are public in these mechanisms, so conditioning on the state is exact for
    deterministic others. For the raw encoding the options are the menu's (a lower bound).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from mechgym.envs.engine.game import (
    Chance,
    Decision,
    Mechanism,
    Terminal,
    evaluate_exact,
    step_decision,
)

from .learner_env import Group, expected_group_value, group_label, group_value

REVENUE_BENCHMARKS = ("BB", "MIEW", "MKW", "MSW")
MAX_JOINT_OPTIONS = 20_000


@dataclass
class ProfileMetrics:
    """Metrics of one profile over a set of contexts (see the module docstring)."""

    agreement: dict[str, float | None] = field(default_factory=dict)
    agreement_mass: dict[str, float] = field(default_factory=dict)
    prediction_off: dict[str, float | None] = field(default_factory=dict)
    prediction_gap: dict[str, float | None] = field(default_factory=dict)
    #: what agreement compares with: "predicted", or "spe" (exact subgame-perfect profile)
    reference: str = "predicted"
    disagreement_loss: dict[str, float | None] = field(default_factory=dict)
    bound_satisfied: dict[str, float | None] = field(default_factory=dict)
    bound_ratio: dict[str, float | None] = field(default_factory=dict)
    revenue: float = 0.0
    welfare: float = 0.0
    revenue_ratio: float | None = None
    revenue_benchmark: str | None = None
    welfare_ratio: float | None = None
    guarantee_holds: float | None = None
    guarantee_margin: float | None = None
    guarantee_statement: str | None = None
    exploitability: dict[str, float] = field(default_factory=dict)
    value: dict[str, float] = field(default_factory=dict)
    contexts: int = 0

    @property
    def exploitability_max(self) -> float | None:
        return max(self.exploitability.values()) if self.exploitability else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["exploitability_max"] = self.exploitability_max
        return out

    def flat(self) -> list[tuple[str, str, float | None]]:
        """``(metric, key, value)`` rows (key: phase, group or ``""``)."""
        rows: list[tuple[str, str, float | None]] = []
        for name in (
            "agreement",
            "disagreement_loss",
            "bound_satisfied",
            "bound_ratio",
            "prediction_off",
            "prediction_gap",
        ):
            for k, v in getattr(self, name).items():
                rows.append((name, k, v))
        for name in (
            "revenue",
            "welfare",
            "revenue_ratio",
            "welfare_ratio",
            "guarantee_holds",
            "guarantee_margin",
        ):
            rows.append((name, "", getattr(self, name)))
        for k, v in self.exploitability.items():
            rows.append(("exploitability", k, v))
        rows.append(("exploitability_max", "", self.exploitability_max))
        for k, v in self.value.items():
            rows.append(("value", k, v))
        return rows


def bound_function(agents: Any, phase: str) -> Callable[..., tuple[Any, Any]] | None:
    """The achieved/required function of a bound phase, as the mechanism's agents register it."""
    if phase not in agents.bound_phases:
        return None
    return agents.bound


def best_response_value(
    mech: Mechanism,
    ctx: Any,
    policies: Mapping[int, Any],
    group: Group,
    options: Callable[[Any, Any, int], list[Any]],
    objective: Callable[[Any, Any], Fraction] | None = None,
) -> Fraction:
    """The group's exact best value when it may pick any of ``options(ctx, state, p)`` (plus
    the profile's own action) at each of its nodes, everyone else fixed.

    ``objective(ctx, outcome)`` replaces the group's reward as what is maximised (e.g. minus
    the revenue, to find the worst revenue a coalition can cause within its options).
    """
    memo: dict[Any, Fraction] = {}

    def value(state: Any) -> Fraction:
        try:
            key = state
            hit = memo.get(key)
        except TypeError:
            key, hit = None, None
        if hit is not None:
            return hit
        node = mech.node(state)
        if isinstance(node, Terminal):
            v = (
                group_value(ctx, node.outcome, group)
                if objective is None
                else Fraction(objective(ctx, node.outcome))
            )
        elif isinstance(node, Chance):
            v = sum(
                (pr * value(mech.chance(state, k)) for k, pr in enumerate(node.probs) if pr > 0),
                Fraction(0),
            )
        else:
            assert isinstance(node, Decision)
            fixed = {
                p: policies[p].act(mech, ctx, state, p) for p in node.players if p not in group
            }
            mine = [p for p in node.players if p in group]
            if not mine:
                v = value(step_decision(mech, state, node, fixed))
            else:
                choices = []
                for p in mine:
                    opts = list(options(ctx, state, p))
                    own = policies[p].act(mech, ctx, state, p)
                    if not any(own == o for o in opts):
                        opts.append(own)
                    choices.append(opts)
                total = 1
                for c in choices:
                    total *= len(c)
                if total > MAX_JOINT_OPTIONS:
                    raise ValueError(
                        f"joint deviation space of {total} options is too large to search"
                    )
                v = None
                for combo in itertools.product(*choices):
                    acts = {**fixed, **dict(zip(mine, combo, strict=True))}
                    cand = value(step_decision(mech, state, node, acts))
                    if v is None or cand > v:
                        v = cand
        if key is not None:
            memo[key] = v
        return v

    return value(mech.start(ctx))


def evaluate_profile(
    mech: Mechanism,
    agents: Any,
    contexts: Sequence[Any],
    profile: Callable[[Any], Mapping[int, Any]],
    groups: Sequence[Group],
    encoding: Any = None,
    phases: Sequence[str] | None = None,
    exploitability: bool = True,
    bound_records: list[dict[str, Any]] | None = None,
) -> ProfileMetrics:
    """Exact metrics of a deterministic profile against the predictions.

    Parameters
    ----------
    mech : Mechanism
    agents : MechanismAgents
        ``AGENTS[name]`` (predictions, bound phases).
    contexts : sequence of contexts
        The fixed evaluation set.
    profile : callable ctx -> {player: policy}
        The profile to evaluate (learned and scripted players alike).
    groups : sequence of groups
        The evaluated (learned) players or coalitions: agreement and bounds are measured on
        their decisions, exploitability per group.
    encoding : Encoding, optional
        Supplies the deviation options (``encoding.options``); no exploitability without it.
    phases : sequence of str, optional
        Phases whose decisions count for agreement and bounds (default: all).
    bound_records : list, optional
        Receives one dict per bound-phase decision of the evaluated players: ``context``
        (its index), ``phase``, ``player``, ``achieved``, ``required`` (exact) and ``prob``
        (the node's probability under the profile), for plots of play against the bound.
    """
    members = {p for g in groups for p in g}
    group_of = {p: tuple(g) for g in groups for p in g}
    loss_num: dict[str, Fraction] = {}
    loss_den: dict[str, Fraction] = {}
    phase_set = set(phases) if phases else set(mech.phases)
    agree_num: dict[str, Fraction] = {}
    agree_den: dict[str, Fraction] = {}
    bsat_num: dict[str, Fraction] = {}
    bden: dict[str, Fraction] = {}
    bratio_num: dict[str, Fraction] = {}
    bratio_den: dict[str, Fraction] = {}
    revs, sws, rev_ratios, sw_ratios, holds, margins = [], [], [], [], [], []
    statement = None
    bench_name = None
    gap_num: dict[str, Fraction] = {}
    off_num: dict[str, Fraction] = {}
    off_den: dict[str, Fraction] = {}
    exact_reference = agents.reference is not None
    refs: list[Any] = []
    expl: dict[str, list[float]] = {group_label(g): [] for g in groups}
    vals: dict[str, list[float]] = {group_label(g): [] for g in groups}
    for ci, ctx in enumerate(contexts):
        policies = dict(profile(ctx))
        pred = agents.predicted(ctx)
        ref = agents.reference(ctx) if agents.reference is not None else None
        if ref is not None:
            refs.append(ref)
        ev = evaluate_exact(mech, ctx, policies)
        for visit in ev.visits:
            phase = visit.node.phase
            if phase not in phase_set:
                continue
            bound = bound_function(agents, phase)
            for p in visit.node.players:
                if p not in members:
                    continue
                act = visit.actions[p]
                agree_den[phase] = agree_den.get(phase, Fraction(0)) + visit.prob
                pred_act = pred.act(mech, ctx, visit.state, p)
                if ref is None:
                    agrees = act == pred_act
                else:
                    optimal = ref.optimal_actions(mech, ctx, visit.state, p)
                    agrees = act in optimal
                    off_den[phase] = off_den.get(phase, Fraction(0)) + visit.prob
                    if pred_act not in optimal:
                        off_num[phase] = off_num.get(phase, Fraction(0)) + visit.prob
                        gap = _reference_gap(
                            mech, ctx, ref, visit, p, optimal[0], pred_act, group_of[p]
                        )
                        gap_num[phase] = gap_num.get(phase, Fraction(0)) + visit.prob * gap
                    pred_act = optimal[0]
                if agrees:
                    agree_num[phase] = agree_num.get(phase, Fraction(0)) + visit.prob
                else:
                    loss = _switch_gain(mech, ctx, policies, visit, p, pred_act, group_of[p])
                    loss_num[phase] = loss_num.get(phase, Fraction(0)) + visit.prob * loss
                    loss_den[phase] = loss_den.get(phase, Fraction(0)) + visit.prob
                if bound is not None:
                    achieved, required = bound(mech, ctx, visit.state, p, act)
                    if bound_records is not None:
                        bound_records.append(
                            {
                                "context": ci,
                                "phase": phase,
                                "player": p,
                                "achieved": achieved,
                                "required": required,
                                "prob": visit.prob,
                            }
                        )
                    bden[phase] = bden.get(phase, Fraction(0)) + visit.prob
                    if achieved >= required:
                        bsat_num[phase] = bsat_num.get(phase, Fraction(0)) + visit.prob
                    if required > 0:
                        r = Fraction(achieved) / Fraction(required)
                        bratio_num[phase] = bratio_num.get(phase, Fraction(0)) + visit.prob * r
                        bratio_den[phase] = bratio_den.get(phase, Fraction(0)) + visit.prob
        revs.append(float(ev.expected_revenue))
        sws.append(float(ev.expected_welfare))
        bench = mech.benchmarks(ctx)
        for key in REVENUE_BENCHMARKS:
            b = bench.get(key)
            if isinstance(b, int | float | Fraction) and b > 0:
                rev_ratios.append(float(Fraction(ev.expected_revenue) / Fraction(b)))
                bench_name = key
                break
        msw = bench.get("MSW")
        if isinstance(msw, int | float | Fraction) and msw > 0:
            sw_ratios.append(float(Fraction(ev.expected_welfare) / Fraction(msw)))
        g = mech.guarantee(ctx, ev)
        if g is not None:
            holds.append(1.0 if g.holds else 0.0)
            margins.append(float(g.value - g.bound))
            statement = g.statement
        for grp in groups:
            label = group_label(grp)
            current = expected_group_value(ctx, ev, grp)
            vals[label].append(float(current))
            if exploitability and encoding is not None:
                br = best_response_value(mech, ctx, policies, grp, encoding.options)
                expl[label].append(float(br - current))

    def _mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    out = ProfileMetrics(contexts=len(contexts))
    for phase in mech.phases:
        if phase not in phase_set:
            continue
        den = agree_den.get(phase)
        out.agreement[phase] = float(agree_num.get(phase, 0) / den) if den else None
        out.agreement_mass[phase] = float(den or 0)
        ld = loss_den.get(phase)
        out.disagreement_loss[phase] = float(loss_num[phase] / ld) if ld else None
        if ref_seen := off_den.get(phase):
            out.prediction_off[phase] = float(off_num.get(phase, 0) / ref_seen)
            on = off_num.get(phase)
            out.prediction_gap[phase] = float(gap_num[phase] / on) if on else None
        if phase in agents.bound_phases and bound_function(agents, phase) is not None:
            bd = bden.get(phase)
            out.bound_satisfied[phase] = float(bsat_num.get(phase, 0) / bd) if bd else None
            rd = bratio_den.get(phase)
            out.bound_ratio[phase] = float(bratio_num[phase] / rd) if rd else None
    out.revenue = _mean(revs) or 0.0
    out.welfare = _mean(sws) or 0.0
    out.revenue_ratio = _mean(rev_ratios)
    out.revenue_benchmark = bench_name
    out.welfare_ratio = _mean(sw_ratios)
    out.guarantee_holds = _mean(holds)
    out.guarantee_margin = _mean(margins)
    out.guarantee_statement = statement
    if exact_reference:
        out.reference = "spe" if all(getattr(r, "exact", True) for r in refs) else "spe-partial"
    out.exploitability = {k: sum(v) / len(v) for k, v in expl.items() if v}
    out.value = {k: sum(v) / len(v) for k, v in vals.items() if v}
    return out


def _switch_gain(
    mech: Mechanism,
    ctx: Any,
    policies: Mapping[int, Any],
    visit: Any,
    player: int,
    alt: Any,
    group: Group,
) -> Fraction:
    """Exact gain of ``group`` if ``player`` played ``alt`` at this visited node only."""

    def value(actions: Mapping[int, Any]) -> Fraction:
        child = step_decision(mech, visit.state, visit.node, actions)
        ev = evaluate_exact(mech, ctx, policies, state=child)
        return expected_group_value(ctx, ev, group)

    return value({**visit.actions, player: alt}) - value(visit.actions)


def _reference_gap(
    mech: Mechanism,
    ctx: Any,
    ref: Any,
    visit: Any,
    player: int,
    best: Any,
    other: Any,
    group: Group,
) -> Fraction:
    """Exact value for ``group`` of ``best`` minus that of ``other`` at a visited node, with
    everyone playing the reference afterwards."""
    prof = dict.fromkeys(range(ctx.n), ref)

    def value(action: Any) -> Fraction:
        child = step_decision(mech, visit.state, visit.node, {**visit.actions, player: action})
        ev = evaluate_exact(mech, ctx, prof, state=child)
        return expected_group_value(ctx, ev, group)

    return value(best) - value(other)


def predicted_profile(agents: Any, n: int) -> Callable[[Any], dict[int, Any]]:
    """The profile in which everyone plays the prediction."""

    def profile(ctx: Any) -> dict[int, Any]:
        pol = agents.predicted(ctx)
        return dict.fromkeys(range(n), pol)

    return profile
