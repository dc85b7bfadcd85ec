"""Learning curves: distance to the predictions along training, per seed and aggregated.

From the rows of ``metrics.csv`` (one evaluation per seed and round, see
:func:`mechgym.training.converge.metric_rows`), :func:`learning_curves` aggregates, per
mechanism, evaluation family, metric and round, the seeds' values into the interquartile mean
(IQM) and its 95% stratified-bootstrap interval (:func:`~mechgym.training.intervals.
interval_estimates`). The curves cover:

* ``agreement[phase]`` for every decision phase (YES/NO phases among them),
* ``bound_satisfied[phase]`` and ``bound_ratio[phase]`` (achieved / required, e.g. the
  announced revenue over BB_i) for bound phases,
* ``revenue_ratio`` (E[REV] / the mechanism's revenue benchmark),
* ``guarantee_holds`` (share of contexts where the theorem's inequality holds),
* ``exploitability_max`` (the largest exact gain of a group by deviating; labelled with the
  strategy space the best response searched: see :data:`EXPLOITABILITY_SPACE`).

:func:`write_curves` writes ``curves.csv`` and one ``<mech>_curves.png`` per mechanism (thin
lines: seeds; thick line and band: IQM and 95% interval; dashed: the predicted profile).
"""

from __future__ import annotations

import csv
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .intervals import interval_estimates

CURVE_METRICS = (
    "agreement",
    "bound_satisfied",
    "bound_ratio",
    "revenue_ratio",
    "guarantee_holds",
    "exploitability_max",
)

#: what the exploitability's best response searches, per learner action encoding
EXPLOITABILITY_SPACE = {
    "menu": "menu options (the learners' own strategy space)",
    "multidiscrete": "menu options (a lower bound on the full layout's exploitability)",
}

CURVE_COLUMNS = (
    "mechanism",
    "family",
    "metric",
    "key",
    "round",
    "steps",
    "seeds",
    "iqm",
    "ci_low",
    "ci_high",
    "mean",
    "min",
    "max",
)


def exploitability_space(encoding: str) -> str:
    """The label of the strategy space an exploitability figure was computed over."""
    return EXPLOITABILITY_SPACE.get(
        encoding, "menu options (a lower bound on the encoding's exploitability)"
    )


def learning_curves(rows: Iterable[Mapping[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """IQM, 95% interval, mean, min and max over seeds per (mechanism, family, metric, key,
    round); rows with a missing value are left out of that point."""
    points: dict[tuple[str, str, str, str, int], dict[int, float]] = defaultdict(dict)
    steps: dict[tuple[str, str, str, str, int], list[float]] = defaultdict(list)
    for r in rows:
        if r["metric"] not in CURVE_METRICS or r["value"] is None:
            continue
        v = float(r["value"])
        if not np.isfinite(v):
            continue
        key = (r["mechanism"], r.get("family", "train"), r["metric"], r["key"], int(r["round"]))
        points[key][int(r["seed"])] = v
        steps[key].append(float(r["steps"]))
    out: list[dict[str, Any]] = []
    for key in sorted(points):
        vals = np.array([points[key][s] for s in sorted(points[key])], dtype=np.float64)
        est = interval_estimates({"v": vals}, seed=seed)["v"]
        mech, family, metric, k, rnd = key
        out.append(
            {
                "mechanism": mech,
                "family": family,
                "metric": metric,
                "key": k,
                "round": rnd,
                "steps": float(np.mean(steps[key])),
                "seeds": int(vals.size),
                "iqm": est["iqm"],
                "ci_low": est["ci_low"],
                "ci_high": est["ci_high"],
                "mean": float(vals.mean()),
                "min": float(vals.min()),
                "max": float(vals.max()),
            }
        )
    return out


def write_curves_csv(path: Path, curves: Sequence[Mapping[str, Any]]) -> None:
    """``curves.csv``: one row per point of :func:`learning_curves`."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS)
        w.writeheader()
        for c in curves:
            w.writerow({k: c[k] for k in CURVE_COLUMNS})


def plot_curves(
    out: Path,
    mech: str,
    rows: Sequence[Mapping[str, Any]],
    curves: Sequence[Mapping[str, Any]],
    reference: Mapping[str, Any],
    bound_phases: Mapping[str, str],
    encoding: str,
    family: str = "heldout",
) -> str | None:
    """``<mech>_curves.png``: one panel per curve of ``mech`` on ``family``; returns the file
    name, or ``None`` when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [c for c in curves if c["mechanism"] == mech and c["family"] == family]
    panels: list[tuple[str, str, str, float | None]] = []
    for phase in reference.get("agreement", {}):
        panels.append(
            ("agreement", phase, f"{phase}: agreement", _ref(reference, "agreement", phase))
        )
    for phase in reference.get("agreement", {}):
        if phase in bound_phases:
            panels.append(
                (
                    "bound_satisfied",
                    phase,
                    f"{phase}: {bound_phases[phase]} met",
                    _ref(reference, "bound_satisfied", phase),
                )
            )
    bench = reference.get("revenue_benchmark") or "benchmark"
    panels.append(("revenue_ratio", "", f"E[REV] / {bench}", reference.get("revenue_ratio")))
    panels.append(("guarantee_holds", "", "guarantee holds", reference.get("guarantee_holds")))
    panels.append(
        (
            "exploitability_max",
            "",
            "exploitability\nover " + exploitability_space(encoding),
            reference.get("exploitability_max"),
        )
    )
    panels = [p for p in panels if any(c["metric"] == p[0] and c["key"] == p[1] for c in mine)]
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.3 * nrows), squeeze=False)
    seeds = sorted({int(r["seed"]) for r in rows if r["mechanism"] == mech})
    for ax, (metric, key, title, ref) in zip(axes.ravel(), panels, strict=False):
        for s in seeds:
            pts = sorted(
                (float(r["steps"]) / 1000.0, float(r["value"]))
                for r in rows
                if r["mechanism"] == mech
                and r.get("family", "train") == family
                and r["metric"] == metric
                and r["key"] == key
                and int(r["seed"]) == s
                and r["value"] is not None
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), lw=0.8, alpha=0.45)
        pts_c = sorted(
            (c["steps"], c["iqm"], c["ci_low"], c["ci_high"])
            for c in mine
            if c["metric"] == metric and c["key"] == key
        )
        x = np.array([p[0] for p in pts_c]) / 1000.0
        ax.fill_between(x, [p[2] for p in pts_c], [p[3] for p in pts_c], alpha=0.25, lw=0)
        ax.plot(x, [p[1] for p in pts_c], lw=2.0, color="C0", label="IQM, 95% CI")
        if ref is not None:
            ax.axhline(float(ref), color="k", ls="--", lw=1, label="predicted profile")
        # long space labels wrap inside the panel instead of running past it
        ax.set_title(textwrap.fill(title, 48), fontsize=9)
        ax.set_xlabel("training steps (thousands, all players)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{mech}: learning curves on the {family} family ({len(seeds)} seeds)")
    fig.tight_layout()
    name = f"{mech}_curves.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _ref(reference: Mapping[str, Any], metric: str, key: str) -> float | None:
    v = reference.get(metric, {})
    return v.get(key) if isinstance(v, Mapping) else None
