"""The offers learned from scratch against the theorem's bound, decision by decision.

    python experiments/offers_vs_bounds.py [--out results/offers_vs_bounds]
        [--mechanisms best_belief ...] [--encodings menu factored continuous]
        [--seeds 2] [--budget 1000000] [--rounds 5] [--family 16] [--reuse]

For each mechanism with a bound phase (M1, M2: REV(ω^i) ≥ BB_i; M3: ≥ MIEW_i; M4: the
hidden value ≥ MKW_C) and each encoding, one ``converge`` run with every player learning at
once from random weights (``--scheme simultaneous``, as the learning-from-scratch study's
cells), saving the learned actors; then, on the held-out family, every bound-phase decision
of the learned profile (chance enumerated, exact), and of the predicted profile for
reference: what was achieved (e.g. the announced revenue) against what the bound requires.

Outputs in ``--out``: ``offers.csv`` (mechanism, encoding, seed or ``predicted``, context,
phase, player, achieved, required, probability of the node), ``summary.json`` (per cell: the
share of decisions meeting the bound, the median achieved/required, the share announcing
nothing) and ``offers.png`` (one panel per mechanism and encoding: achieved against required,
the line achieved = required, the predicted play's decisions beside), plus each converge
run's folder under ``cells/``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

BOUND_MECHANISMS = ("best_belief", "normal_form", "knowledge_benchmark", "collusion_leveraging")


def run_cell(mech: str, encoding: str, args: argparse.Namespace, out: Path) -> list[dict]:
    """Train (or reuse) one cell and return its bound-phase decisions on the held-out family."""
    from learning_from_scratch import cell_config
    from mechgym.envs.pettingzoo.registry import entry
    from mechgym.training.batched_policy import BatchedLearnedPolicy
    from mechgym.training.converge import eval_family_contexts, run_converge
    from mechgym.training.metrics import evaluate_profile

    cell = out / "cells" / mech / encoding
    # the study's simultaneous cell, with the actors saved
    cfg, _ = cell_config(mech, encoding, "random", "simultaneous", args, cell, save_models=True)
    ckpt = cell / "checkpoints" / mech
    if not (
        args.reuse and all((ckpt / f"seed_{k}" / "policy.pt").exists() for k in range(args.seeds))
    ):
        summary = run_converge(cfg, progress=False)
        status = summary["mechanisms"][mech].get("status")
        if status != "ok":
            raise SystemExit(f"{mech}/{encoding}: converge ended with status {status}")
    agents = entry(mech).load_agents()
    _, held_out = eval_family_contexts(mech, cfg)
    n = int(held_out[0].n)
    groups = [(p,) for p in range(n)]
    rows: list[dict[str, Any]] = []
    sources: list[tuple[str, Any]] = []
    for k in range(args.seeds):
        policy = BatchedLearnedPolicy.load(ckpt / f"seed_{k}" / "policy.pt")
        sources.append((str(k), (policy.exact_mechanism(), policy.profile())))
    mech_obj = sources[0][1][0]
    sources.append(
        ("predicted", (mech_obj, lambda ctx: dict.fromkeys(range(n), agents.predicted(ctx))))
    )
    for seed, (m, profile) in sources:
        recs: list[dict[str, Any]] = []
        evaluate_profile(
            m, agents, held_out, profile, groups, exploitability=False, bound_records=recs
        )
        for r in recs:
            rows.append(
                {
                    "mechanism": mech,
                    "encoding": encoding,
                    "seed": seed,
                    **{k: r[k] for k in ("context", "phase", "player")},
                    "achieved": int(r["achieved"]),
                    "required": int(r["required"]),
                    "prob": float(r["prob"]),
                }
            )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (mechanism, encoding, learned or predicted): probability-weighted share meeting
    the bound, median achieved/required over decisions with a positive requirement, share
    achieving nothing."""
    import numpy as np

    out: dict[str, Any] = {}
    keys = {(r["mechanism"], r["encoding"], r["seed"] == "predicted") for r in rows}
    for mech, enc, pred in sorted(keys):
        sub = [
            r
            for r in rows
            if (r["mechanism"], r["encoding"], r["seed"] == "predicted") == (mech, enc, pred)
        ]
        w = np.array([r["prob"] for r in sub])
        met = np.array([r["achieved"] >= r["required"] for r in sub], dtype=float)
        zero = np.array([r["achieved"] == 0 for r in sub], dtype=float)
        ratios = [r["achieved"] / r["required"] for r in sub if r["required"] > 0]
        out[f"{mech}/{enc}/{'predicted' if pred else 'learned'}"] = {
            "decisions": len(sub),
            "bound_met": float((w * met).sum() / w.sum()) if w.sum() else None,
            "median_ratio": float(np.median(ratios)) if ratios else None,
            "achieves_nothing": float((w * zero).sum() / w.sum()) if w.sum() else None,
        }
    return out


def plot(out: Path, rows: list[dict[str, Any]], encodings: list[str]) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mechs = list(dict.fromkeys(r["mechanism"] for r in rows))
    if not mechs:
        return None
    fig, axes = plt.subplots(
        len(mechs), len(encodings), figsize=(4.2 * len(encodings), 4 * len(mechs)), squeeze=False
    )
    for i, mech in enumerate(mechs):
        for j, enc in enumerate(encodings):
            ax = axes[i][j]
            sub = [r for r in rows if r["mechanism"] == mech and r["encoding"] == enc]
            learned = [r for r in sub if r["seed"] != "predicted"]
            pred = [r for r in sub if r["seed"] == "predicted"]
            for group, colour, label in (
                (pred, "tab:green", "predicted"),
                (learned, "tab:red", "learned"),
            ):
                if group:
                    ax.scatter(
                        [r["required"] for r in group],
                        [r["achieved"] for r in group],
                        s=[12 + 60 * r["prob"] for r in group],
                        alpha=0.45,
                        color=colour,
                        label=label,
                    )
            top = max([1] + [max(r["required"], r["achieved"]) for r in sub])
            ax.plot([0, top], [0, top], color="black", lw=0.8, label="achieved = required")
            ax.set_title(f"{mech}, {enc}")
            ax.set_xlabel("required by the bound")
            ax.set_ylabel("achieved")
            ax.legend(fontsize=7)
    fig.suptitle("Bound-phase decisions on the held-out family (learned from scratch vs predicted)")
    fig.tight_layout()
    path = out / "offers.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("results/offers_vs_bounds"))
    ap.add_argument("--mechanisms", nargs="+", default=["best_belief"], choices=BOUND_MECHANISMS)
    ap.add_argument("--encodings", nargs="+", default=["menu", "factored", "continuous"])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--budget", type=int, default=1_000_000, help="Learner decisions per run.")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--family", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=0, help="Processes per run (0: one per core).")
    ap.add_argument("--reuse", action="store_true", help="Keep trained cells already in --out.")
    args = ap.parse_args(argv)
    for name in ("seeds", "budget", "rounds", "family"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    from mechgym.machine import machine

    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for mech in args.mechanisms:
        for enc in args.encodings:
            rows += run_cell(mech, enc, args, out)
            print(f"{mech}/{enc}: {len(rows)} decisions so far")
    with (out / "offers.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["mechanism"])
        w.writeheader()
        w.writerows(rows)
    summary = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    summary["cells"] = summarise(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    png = plot(out, rows, list(args.encodings))
    for key, s in summary["cells"].items():
        print(key, s)
    files = "offers.csv, summary.json" + (", offers.png" if png else "")
    print(f"results written to {out.resolve()} ({files})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
