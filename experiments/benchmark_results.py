"""Regenerate the README's benchmark results: every task, every learner, several seeds.

Run from the repository root::

    python experiments/benchmark_results.py                 # the README's budget
    python experiments/benchmark_results.py --quick         # a smoke test (2 seeds, tiny budgets)
    python experiments/benchmark_results.py --tasks vcg-v0,best-belief-v0 --algos hedge

For every task of :data:`mechgym.benchmark.TASKS` and every learner, ``run_task`` trains
``--seeds`` independent runs and scores each exactly (chance enumerated) on the task's
evaluation contexts. Per (task, learner) the aggregate over seeds is the interquartile mean
(IQM) with a 95% stratified-bootstrap interval (rliable). Two untrained rows come from the
shipped reference file and one exact evaluation: *random* (uniform over the menu; normalised
score 0 by definition) and *predicted* (the theory's profile; 1 by definition), the latter
with its own NashConv and utility loss, which show how much a best response gains over the
prediction.

Written to ``--docs`` (committed): ``results.md`` (tables and the machine), ``results.csv``
(one row per task and learner), ``normalized.png`` (IQM and interval per task and learner).
Raw per-run outputs (marl-eval JSON, per-seed CSV, curves) go to ``--out`` (not committed).

Budgets: no-regret learners run ``--rounds`` rounds on single-player tasks and
``--coalition-rounds`` on coalition tasks (a coalition's rounds walk joint tables and cost
far more); MaskablePPO runs ``--steps`` environment steps. The defaults fit a shared 2-core
machine in well under an hour and are below the tasks' own budgets (``Task.rounds``,
``Task.steps``); ``results.md`` states the budgets used.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ALGOS = ("regret_matching", "hedge", "fictitious_play", "maskable_ppo")
ROOT = Path(__file__).resolve().parents[1]
HEADLINE = (
    "normalized",
    "focal_return",
    "nash_conv",
    "utility_loss",
    "relative_utility_loss",
    "l2_offer",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="runs per task and learner (default 5)")
    ap.add_argument("--tasks", default="all", help="comma-separated task ids (default: all)")
    ap.add_argument("--algos", default=",".join(ALGOS), help="comma-separated learners")
    ap.add_argument("--rounds", type=int, default=50, help="no-regret rounds, one-player tasks")
    ap.add_argument(
        "--coalition-rounds", type=int, default=10, help="no-regret rounds, coalition tasks"
    )
    ap.add_argument(
        "--steps", type=int, default=None, help="MaskablePPO env steps (default: the task's own)"
    )
    ap.add_argument("--workers", type=int, default=1, help="processes, one task at a time each")
    ap.add_argument("--out", default="results/benchmark_results", help="raw per-run outputs")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="take a (task, learner) from --out when a finished run there has the same "
        "learner, budget and seeds (resume an interrupted run; same code assumed)",
    )
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated TASK:LEARNER pairs to leave out (shown as – in the tables)",
    )
    ap.add_argument("--docs", default="docs/benchmark", help="committed tables and plot")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 seeds, 3 rounds, 512 steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.rounds, args.coalition_rounds, args.steps = 2, 3, 3, 512
    return args


def budget(task: Any, algo: str, args: argparse.Namespace) -> tuple[int, str]:
    """The budget of one (task, learner) and its unit."""
    from mechgym.benchmark.run import NO_REGRET

    if algo in NO_REGRET:
        return (args.coalition_rounds if task.coalition else args.rounds), "rounds"
    return (task.steps if args.steps is None else args.steps), "env steps"


def run_one_task(task_id: str, algos: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Every learner on one task (one setup, so caches serve every learner), plus the
    predicted profile's exact figures."""
    from mechgym.benchmark import TASKS
    from mechgym.benchmark.run import NO_REGRET, evaluate_policy, run_task
    from mechgym.benchmark.scoring import predicted_policy, setup

    task = TASKS[task_id]
    s = setup(task)
    t0 = time.perf_counter()
    pred = evaluate_policy(s, predicted_policy(s))
    out: dict[str, Any] = {
        "task": task_id,
        "predicted": _jsonable(pred),
        "runs": {},
        "failed": {},
    }
    out["predicted_seconds"] = time.perf_counter() - t0
    skip = {tuple(x.split(":", 1)) for x in args.skip.split(",") if x}
    for algo in algos:
        if (task_id, algo) in skip:
            continue
        b, unit = budget(task, algo, args)
        t1 = time.perf_counter()
        folder = Path(args.out) / task_id / algo
        summary = _reusable(folder, algo, b, args) if args.reuse else None
        reused = summary is not None
        if summary is None:
            try:
                summary = run_task(
                    task,
                    algo,
                    seeds=args.seeds,
                    out=folder,
                    progress=False,
                    steps=b if algo not in NO_REGRET else None,
                    rounds=b if algo in NO_REGRET else None,
                    task_setup=s,
                )
            except Exception as exc:  # one failed pair must not lose the rest
                # kept as text: some exceptions do not pickle back from a worker process
                out["failed"][algo] = f"{type(exc).__name__}: {exc}"
                print(f"{task_id} {algo}: FAILED {out['failed'][algo]}", flush=True)
                continue
        per_seed = _read_csv(folder / "per_seed.csv")
        out["runs"][algo] = {
            "budget": b,
            "unit": unit,
            "aggregate": summary["aggregate"],
            "per_seed": per_seed,
            "seconds": summary["wall_seconds"],
            "reused": reused,
        }
        norm = summary["aggregate"].get("normalized", {}).get("iqm", float("nan"))
        print(
            f"{task_id} {algo}: normalised IQM {norm:.3f} ({time.perf_counter() - t1:.0f} s)",
            flush=True,
        )
    return out


def _reusable(
    folder: Path, algo: str, budget_: int, args: argparse.Namespace
) -> dict[str, Any] | None:
    """A finished run of the same learner, budget and seeds in ``folder``, if any."""
    path = folder / "aggregate.json"
    if not path.exists() or not (folder / "per_seed.csv").exists():
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    if (summary["algo"], summary["budget"], summary["seeds"]) != (algo, budget_, args.seeds):
        return None
    return summary


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            with contextlib.suppress(ValueError):
                r[k] = float(v) if v not in ("", None) else None
    return rows


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def fmt_ci(agg: dict[str, Any], key: str, digits: int = 2) -> str:
    a = agg.get(key)
    if a is None:
        return "–"
    if a["ci_low"] == a["ci_high"]:
        return fmt(a["iqm"], digits)
    return f"{fmt(a['iqm'], digits)} [{fmt(a['ci_low'], digits)}, {fmt(a['ci_high'], digits)}]"


def agreement_text(agg: dict[str, Any], prefix: str = "agreement_") -> str:
    parts = [f"{k[len(prefix) :]} {v['iqm']:.2f}" for k, v in agg.items() if k.startswith(prefix)]
    return ", ".join(parts) if parts else "–"


def predicted_agg(pred: dict[str, Any]) -> dict[str, Any]:
    """The predicted profile's figures in the aggregate layout (one exact value each)."""
    agg: dict[str, Any] = {}
    for k, v in pred.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            agg[k] = {"iqm": float(v), "ci_low": float(v), "ci_high": float(v)}
    for name in ("agreement", "bound_satisfied"):
        for ph, v in (pred.get(name) or {}).items():
            if v is None:
                continue
            agg[f"{name}_{ph}"] = {"iqm": float(v), "ci_low": float(v), "ci_high": float(v)}
    return agg


def table_rows(results: list[dict[str, Any]], algos: list[str]) -> list[dict[str, Any]]:
    """One flat row per task and learner (random, predicted, then the learners)."""
    from mechgym.benchmark.scoring import load_reference

    ref = load_reference()
    rows: list[dict[str, Any]] = []
    for res in results:
        tid = res["task"]
        r = ref[tid]
        pred = predicted_agg(res["predicted"])
        rows.append(
            {
                "task": tid,
                "learner": "random (untrained)",
                "seeds": 0,
                "budget": 0,
                "unit": "",
                "agg": {
                    "normalized": {"iqm": 0.0, "ci_low": 0.0, "ci_high": 0.0},
                    "focal_return": {
                        "iqm": r["random_float"],
                        "ci_low": r["random_float"],
                        "ci_high": r["random_float"],
                    },
                },
                "space": "",
            }
        )
        rows.append(
            {
                "task": tid,
                "learner": "predicted (untrained)",
                "seeds": 0,
                "budget": 0,
                "unit": "",
                "agg": pred,
                "space": res["predicted"].get("deviation_space", ""),
            }
        )
        for algo in algos:
            run = res["runs"].get(algo)
            if run is None:
                continue
            spaces = {str(p.get("deviation_space")) for p in run["per_seed"]}
            rows.append(
                {
                    "task": tid,
                    "learner": algo,
                    "seeds": len(run["per_seed"]),
                    "budget": run["budget"],
                    "unit": run["unit"],
                    "agg": run["aggregate"],
                    "space": "/".join(sorted(spaces)),
                    "seconds": run["seconds"],
                    "reused": run.get("reused", False),
                }
            )
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    flat: list[dict[str, Any]] = []
    keys: list[str] = ["task", "learner", "seeds", "budget", "unit", "deviation_space"]
    for row in rows:
        f: dict[str, Any] = {
            "task": row["task"],
            "learner": row["learner"],
            "seeds": row["seeds"],
            "budget": row["budget"],
            "unit": row["unit"],
            "deviation_space": row["space"],
        }
        for metric, a in row["agg"].items():
            for part in ("iqm", "ci_low", "ci_high"):
                col = f"{metric}_{part}"
                f[col] = a[part]
                if col not in keys:
                    keys.append(col)
        flat.append(f)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for f in flat:
            w.writerow(f)


def markdown(
    rows: list[dict[str, Any]],
    algos: list[str],
    args: argparse.Namespace,
    wall: float,
    machine: dict[str, Any],
) -> str:
    from mechgym.benchmark import TASKS
    from mechgym.benchmark.scoring import load_reference

    ref = load_reference()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    ppo = (
        f"{args.steps:,}"
        if args.steps is not None
        else f"{_uniq(TASKS[t].steps for t in tasks)} (the task's own)"
    )
    learned = [r for r in rows if r["seeds"]]
    compute = sum(r.get("seconds", 0.0) for r in learned)
    reused = sum(bool(r.get("reused")) for r in learned)
    timing = (
        f"Training and scoring took {compute / 60:.1f} min, wall clock summed over "
        f"(task, learner) pairs ({machine.get('workers', 1)} worker processes); this "
        f"invocation's wall time was {wall / 60:.1f} min"
        + (
            f"; {reused} of the {len(learned)} (task, learner) pairs were taken from earlier "
            "runs with the same learner, budget and seeds (`--reuse`), their time included."
            if reused
            else "."
        )
    )
    lines = [
        "# Benchmark results",
        "",
        "Generated by `"
        + " ".join(["python experiments/benchmark_results.py", *_cli(args)])
        + "`; do not edit by hand.",
        "",
        f"Budgets: {args.seeds} seeds per task and learner; no-regret learners "
        f"{args.rounds} rounds on one-player tasks and {args.coalition_rounds} on coalition "
        f"tasks; MaskablePPO {ppo} env steps (the tasks' own budgets are "
        f"{_uniq(TASKS[t].rounds for t in tasks)} rounds and "
        f"{_uniq(TASKS[t].steps for t in tasks)} steps). {timing}",
        "",
        "Every figure is an exact expectation over the task's evaluation contexts (chance "
        "enumerated) of the learned deterministic policy; across seeds, the IQM and its 95% "
        "stratified-bootstrap interval (rliable, 2,000 resamples). The untrained rows are "
        "exact: random play has normalised score 0 and predicted play 1 by definition.",
        "",
        "## Tasks",
        "",
        "| task | mechanism | focal | background | random focal return | predicted focal "
        "return | contexts |",
        "|---|---|---|---|---|---|---|",
    ]
    for tid in tasks:
        t, r = TASKS[tid], ref[tid]
        focal = (
            "coalition " + "+".join(map(str, t.focal)) if t.coalition else f"player {t.focal[0]}"
        )
        ctx = f"`{t.example}`" if t.example else f"`{t.family}`"
        lines.append(
            f"| `{tid}` | `{t.mechanism}` | {focal} | {t.background} | "
            f"{r['random_float']:.3f} | {r['predicted_float']:.3f} | {r['contexts']} × {ctx} |"
        )
    lines += [
        "",
        "## Normalised score (IQM [95% CI])",
        "",
        "1 = predicted play, 0 = uniformly random menu play; above 1 the learner beats the "
        "prediction.",
        "",
        "| task | " + " | ".join(algos) + " |",
        "|---|" + "---|" * len(algos),
    ]
    by = {(r["task"], r["learner"]): r for r in rows}
    for tid in tasks:
        cells = [
            fmt_ci(by[(tid, a)]["agg"], "normalized") if (tid, a) in by else "–" for a in algos
        ]
        lines.append(f"| `{tid}` | " + " | ".join(cells) + " |")
    cols = ["predicted (untrained)", *algos]
    lines += [
        "",
        "## NashConv of the focal group (IQM [95% CI])",
        "",
        "The focal group's exact best-response gain against the rest of the profile (here "
        "NashConv = its exploitability = bnelearn's utility loss); the space searched is in "
        "the last column. A positive value for predicted play means a focal deviation beats "
        "the prediction.",
        "",
        "| task | " + " | ".join(c.replace(" (untrained)", "") for c in cols) + " | space |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for tid in tasks:
        cells = [fmt_ci(by[(tid, c)]["agg"], "nash_conv") if (tid, c) in by else "–" for c in cols]
        spaces = sorted({by[(tid, c)]["space"] for c in cols if (tid, c) in by} - {""})
        lines.append(f"| `{tid}` | " + " | ".join(cells) + f" | {'/'.join(spaces) or '–'} |")
    lines += [
        "",
        "## All metrics (IQM [95% CI] over seeds)",
        "",
        "NashConv and utility loss are the focal group's best-response gain against the "
        "rest of the profile (space: `full` = the full action space, `menu` = within the "
        "menus); relative utility loss is bnelearn's 1 − u(learned vs predicted others) / "
        "u(predicted), per context, averaged; L2 is "
        "the distance of announced offer prices to the predicted ones; agreement and bound "
        "satisfaction are per phase (IQM over seeds).",
        "",
        "| task | learner | budget | normalised | focal return | NashConv | utility loss | "
        "rel. utility loss | L2 offers | agreement | bound met | space |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a = r["agg"]
        bud = f"{r['budget']:,} {r['unit']}" if r["budget"] else "–"
        lines.append(
            f"| `{r['task']}` | {r['learner']} | {bud} | {fmt_ci(a, 'normalized')} | "
            f"{fmt_ci(a, 'focal_return')} | {fmt_ci(a, 'nash_conv')} | "
            f"{fmt_ci(a, 'utility_loss')} | {fmt_ci(a, 'relative_utility_loss')} | "
            f"{fmt_ci(a, 'l2_offer')} | {agreement_text(a)} | "
            f"{agreement_text(a, 'bound_satisfied_')} | {r['space'] or '–'} |"
        )
    lines += ["", "## Machine and versions", "", "```"]
    lines += [f"{k}: {v}" for k, v in machine.items() if k != "versions"]
    lines += [f"{k}: {v}" for k, v in machine.get("versions", {}).items() if v]
    lines += ["```", ""]
    return "\n".join(lines)


def _uniq(values: Any) -> str:
    vals = sorted(set(values))
    return "/".join(f"{v:,}" for v in vals)


def _cli(args: argparse.Namespace) -> list[str]:
    out = []
    if args.quick:
        return ["--quick"]
    for name, default in (
        ("seeds", 5),
        ("rounds", 50),
        ("coalition_rounds", 10),
        ("steps", None),
    ):
        v = getattr(args, name)
        if v != default:
            out.append(f"--{name.replace('_', '-')} {v}")
    if args.workers != 1:
        out.append(f"--workers {args.workers}")
    if args.reuse:
        out.append("--reuse")
    if args.skip:
        out.append(f"--skip {args.skip}")
    if args.tasks != "all":
        out.append(f"--tasks {args.tasks}")
    if args.algos != ",".join(ALGOS):
        out.append(f"--algos {args.algos}")
    return out


def plot(path: Path, rows: list[dict[str, Any]], algos: list[str]) -> None:
    """Normalised score, IQM with 95% CI, per task (rows) and learner (markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    by = {(r["task"], r["learner"]): r for r in rows}
    lo, hi = -0.25, 2.0
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(tasks) + 1.4))
    markers = "osD^v<>"
    width = 0.7
    for k, algo in enumerate(algos):
        off = (k - (len(algos) - 1) / 2) * width / max(len(algos), 1)
        for i, tid in enumerate(tasks):
            row = by.get((tid, algo))
            a = None if row is None else row["agg"].get("normalized")
            if a is None:
                continue
            y = i + off
            x = a["iqm"]
            xc = float(np.clip(x, lo, hi))
            ax.plot(
                [np.clip(a["ci_low"], lo, hi), np.clip(a["ci_high"], lo, hi)],
                [y, y],
                color=f"C{k}",
                lw=1.5,
            )
            ax.plot(
                xc,
                y,
                markers[k % len(markers)],
                color=f"C{k}",
                ms=5,
                label=algo if i == 0 else None,
            )
            if x != xc:
                ax.annotate(
                    f"{x:.1f}",
                    (xc, y),
                    xytext=(-4 if x > hi else 4, 0),
                    textcoords="offset points",
                    ha="right" if x > hi else "left",
                    va="center",
                    fontsize=7,
                    color=f"C{k}",
                )
    ax.axvline(0, color="grey", ls=":", lw=1)
    ax.axvline(1, color="k", ls="--", lw=1)
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels(tasks, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(lo, hi)
    ax.set_xlabel("normalised score (0 = random, 1 = predicted); IQM and 95% CI over seeds")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from mechgym.benchmark import TASKS
    from mechgym.benchmark.run import ALGOS as KNOWN
    from mechgym.machine import machine

    args = parse_args(argv)
    task_ids = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    algos = args.algos.split(",")
    bad = [t for t in task_ids if t not in TASKS] + [a for a in algos if a not in KNOWN]
    if bad:
        print(f"unknown task or learner: {', '.join(bad)}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            # coalition tasks (joint tables, the longest) first, so no worker idles at the end
            order = sorted(task_ids, key=lambda t: not TASKS[t].coalition)
            futures = {t: pool.submit(run_one_task, t, algos, args) for t in order}
            results = [futures[t].result() for t in task_ids]
    else:
        results = [run_one_task(t, algos, args) for t in task_ids]
    wall = time.perf_counter() - t0
    failed = [f"{r['task']} {a}: {e}" for r in results for a, e in r["failed"].items()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "all.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    rows = table_rows(results, algos)
    write_csv(docs / "results.csv", rows)
    info = machine()
    info["workers"] = args.workers
    (docs / "results.md").write_text(markdown(rows, algos, args, wall, info), encoding="utf-8")
    plot(docs / "normalized.png", rows, algos)
    print(f"wrote {docs / 'results.md'}, results.csv, normalized.png ({wall / 60:.1f} min)")
    if failed:
        print("failed (rerun with --reuse to fill in):\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
