"""Sampled evaluation: means with standard errors, and a theorem's guarantee judged with a
confidence interval instead of the point estimate alone.

A guarantee's value is a function of the outcome distribution (an expectation, a probability,
or a minimum of expectations), so its sampling error is estimated by a seeded bootstrap over
the sampled outcomes; ``holds`` then means "not rejected at 95%": for ``value ≥ bound`` the
interval's upper end reaches the bound, for ``value = bound`` the interval contains it. The
point verdict is kept beside it (``holds_point``). The point value is exact (rationals over
the sampled outcomes); the resamples are weighted in floats, which is ample for an interval.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

#: bootstrap resamples and the two-sided confidence level of the interval
BOOTSTRAP = 200
LEVEL = 0.95


def empirical_evaluation(ctx: Any, counts: Sequence[tuple[Any, int]], total: int) -> Any:
    """The exact :class:`~mechgym.envs.engine.game.Evaluation` of an empirical outcome
    distribution (``(outcome, draws)`` pairs out of ``total`` draws)."""
    from mechgym.envs.engine.game import Evaluation

    outcomes = [(Fraction(c, total), o) for o, c in counts if c]
    rev = sum((p * o.revenue for p, o in outcomes), Fraction(0))
    sw = sum((p * ctx.welfare(o) for p, o in outcomes), Fraction(0))
    utils = [Fraction(0)] * ctx.n
    for p, o in outcomes:
        for i, u in enumerate(ctx.utilities(o)):
            utils[i] += p * u
    return Evaluation(rev, sw, tuple(utils), outcomes, [])


def stderr(values: Sequence[float]) -> float | None:
    """Standard error of a sample mean (``None`` for fewer than two values)."""
    if len(values) < 2:
        return None
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def _flat(g: Any) -> list[Any]:
    return [g, *g.parts]


def sampled_guarantee(
    mech: Any, ctx: Any, outcomes: Sequence[Any], rng: np.random.Generator | None = None
) -> dict[str, Any] | None:
    """The guarantee on sampled outcomes, each statement with a bootstrap standard error,
    a 95% interval and the interval's verdict (see the module docstring)."""
    # keyed with the rule too: Outcome's equality ignores it, a statement may not
    keyed = Counter((o, o.rule) for o in outcomes)
    first = {(o, o.rule): o for o in outcomes}
    return guarantee_from_counts(mech, ctx, [(first[k], c) for k, c in keyed.items()], rng)


def guarantee_from_counts(
    mech: Any,
    ctx: Any,
    counts: Sequence[tuple[Any, int]],
    rng: np.random.Generator | None = None,
) -> dict[str, Any] | None:
    """:func:`sampled_guarantee` from ``(distinct outcome, draws)`` pairs. ``rng`` drives
    the bootstrap (default: a generator seeded with 0, so a report is reproducible and the
    caller's stream is left alone)."""
    rng = np.random.default_rng(0) if rng is None else rng
    total = sum(c for _, c in counts)
    g = mech.guarantee(ctx, empirical_evaluation(ctx, counts, total))
    if g is None:
        return None
    first = {k: o for k, (o, _) in enumerate(counts)}
    distinct = list(first)
    probs = np.array([c for _, c in counts], dtype=float) / total
    samples: list[list[float]] = [[] for _ in _flat(g)]
    if len(distinct) > 1:
        from mechgym.envs.engine.game import Evaluation

        # each outcome's revenue, welfare and utilities once; a resample is then a weighting
        outs = [first[k] for k in distinct]
        table = np.array(
            [[float(o.revenue), float(ctx.welfare(o)), *map(float, ctx.utilities(o))] for o in outs]
        )
        for _ in range(BOOTSTRAP):
            draw = rng.multinomial(total, probs)
            sums = draw @ table / total
            ev = Evaluation(
                Fraction(sums[0]),
                Fraction(sums[1]),
                tuple(Fraction(x) for x in sums[2:]),
                [(Fraction(int(c), total), o) for o, c in zip(outs, draw, strict=True) if c],
                [],
            )
            for k, part in enumerate(_flat(mech.guarantee(ctx, ev))):
                samples[k].append(float(part.value))
    alpha = (1 - LEVEL) / 2
    judged = []
    for k, part in enumerate(_flat(g)):
        value, bound = float(part.value), float(part.bound)
        if samples[k]:
            lo, hi = (float(x) for x in np.quantile(samples[k], [alpha, 1 - alpha]))
            se = float(np.std(samples[k], ddof=1))
        else:  # one distinct outcome: no spread to estimate
            lo = hi = value
            se = 0.0
        lo, hi = min(lo, value), max(hi, value)
        ok = lo <= bound <= hi if part.exact else hi >= bound
        judged.append((part, se, lo, hi, ok))
    parts = []
    for part, se, lo, hi, ok in judged:
        parts.append(
            {
                **{k: v for k, v in part.to_json().items() if k != "parts"},
                "holds_point": bool(
                    part.value == part.bound if part.exact else part.value >= part.bound
                ),
                "holds": bool(ok),
                "stderr": se,
                "interval": [lo, hi],
            }
        )
    head = parts[0]
    head["holds"] = all(p["holds"] for p in parts)
    head["holds_point"] = bool(g.holds)
    head["sampled"] = True
    head["level"] = LEVEL
    if len(parts) > 1:
        head["parts"] = parts[1:]
    return head


def guarantee_line(g: dict[str, Any]) -> str:
    """``statement: value ≥ bound, holds`` (``=`` for an equality; ``± stderr`` and the
    interval's verdict for a sampled one), then the other parts and a non-theorem's source."""

    def one(p: dict[str, Any]) -> str:
        rel = "=" if p.get("kind") == "equality" else "≥"
        value = f"{p['value']:.6g}"
        if p.get("stderr"):
            value += f" ± {p['stderr']:.2g}"
        verdict = "holds" if p["holds"] else "violated"
        return f"{p['statement']}: {value} {rel} {p['bound']:.6g}, {verdict}"

    text = "; ".join(one(p) for p in [g, *g.get("parts", [])])
    if g.get("source", "theorem") != "theorem":
        text += f" ({g['source']})"
    return text
