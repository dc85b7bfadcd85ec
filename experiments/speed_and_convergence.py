"""Regenerate the README's speed and convergence tables.

    python experiments/speed_and_convergence.py [--out results/speed_and_convergence]
        [--mechanisms best_belief ...] [--skip-speed] [--skip-converge] [--quick]

(``--skip-speed --skip-converge`` rebuilds ``tables.md`` from the outputs already in
``--out``.)

1. **Speed** (``mechgym bench``'s figures, one run): agent-steps per second of the exact
   PettingZoo envs and agent-decisions per second of the batched rules, both against
   PettingZoo's ``rps_v2`` in the same run; MaskablePPO's steps per second and env share on
   the exact single env and on the vectorised env (``n_envs`` slots).
2. **Convergence**: the default ``mechgym converge MECH`` for each of the six mechanisms
   (M1–M6), one after another, timed (wall clock and CPU seconds of every process). Per
   phase: agreement of the learned profile with the predicted actions (mean ± std, min over
   seeds), the verdict (mean ≥ 0.95 and min ≥ 0.90), the visit mass behind it, the cost of a
   disagreement, bound satisfaction; the share of YES/NO questions that are ties
   (θ_i(α_i) = π_i, where YES beats NO only by the tie-breaker) under predicted play.

Outputs in ``--out``: ``machine.json`` (platform, cores, load, versions, commit),
``speed.json`` / ``speed.csv``, ``convergence.json`` / ``convergence.csv``, ``tables.md``
(the README's tables), ``speed.png``, ``convergence.png`` (final YES/NO agreement per
mechanism and seed) and ``learning_curves.png`` (agreement against training steps), and
``converge/<mech>/`` (each converge run's own CSV, JSON and plots).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from mechgym.envs.mechanisms.catalogue import SPECS

from mechgym.machine import machine

SIX = (
    "best_belief",
    "knowledge_benchmark",
    "collusion_leveraging",
    "perfect_revenue",
    "budget_balanced_market",
    "normal_form",
)
LABEL = {name: SPECS[name].label for name in SIX}
#: phases whose prediction is the YES/NO rule
YES_NO = ("respond", "confirm")


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# -- speed ---------------------------------------------------------------------------------------
def run_speed(out: Path, quick: bool) -> dict[str, Any]:
    from mechgym.bench import run_bench

    res = run_bench(seconds=0.2 if quick else 1.5, training=False, quick=quick)
    from mechgym.training.bench import training_speed, vec_env_time_share

    res["training"] = (
        training_speed(single_steps=256, vector_steps=2048)
        if quick
        else {
            **training_speed(single_steps=2048, vector_steps=131_072, n_envs=1024),
            "vector_64": vec_env_time_share(steps=32_768, n_envs=64),
        }
    )
    (out / "speed.json").write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")
    rows = []
    ref = res["throughput"]["rps_v2"]
    rows.append({"kind": "reference", "name": "rps_v2", "per_second": ref, "ratio_to_rps": 1.0})
    for name, r in res["throughput"]["envs"].items():
        rows.append(
            {
                "kind": "exact env (agent-steps)",
                "name": name,
                "per_second": r["steps_per_second"],
                "ratio_to_rps": r["ratio_to_rps"],
            }
        )
    for name, r in res.get("batched", {}).items():
        if "skipped" in r:
            continue
        rows.append(
            {
                "kind": "batched rules (agent-decisions)",
                "name": name,
                "per_second": r["decisions_per_second"],
                "ratio_to_rps": r["ratio_to_rps"],
            }
        )
    for kind in ("single", "vector", "vector_64"):
        if kind not in res["training"]:
            continue
        t = res["training"][kind]
        rows.append(
            {
                "kind": f"MaskablePPO {kind} (n_envs={t['n_envs']})",
                "env_share": t["env_share"],
                "name": t["mechanism"],
                "per_second": t["steps_per_second"],
                "ratio_to_rps": None,
            }
        )
    with (out / "speed.csv").open("w", newline="", encoding="utf-8") as fh:
        cols = ["kind", "name", "per_second", "ratio_to_rps", "env_share"]
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(rows)
    plot_speed(out, res)
    return res


def plot_speed(out: Path, res: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, exact, batched = [], [], []
    for name, r in res.get("batched", {}).items():
        if "skipped" in r or name not in res["throughput"]["envs"]:
            continue
        names.append(name)
        exact.append(res["throughput"]["envs"][name]["steps_per_second"])
        batched.append(r["decisions_per_second"])
    if not names:
        return
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], exact, 0.4, label="exact PettingZoo env")
    ax.bar([i + 0.2 for i in x], batched, 0.4, label="batched rules")
    if res["throughput"]["rps_v2"]:
        ax.axhline(res["throughput"]["rps_v2"], color="k", ls="--", lw=1, label="rps_v2")
    ax.set_yscale("log")
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("agent decisions / s")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "speed.png", dpi=110)
    plt.close(fig)


# -- convergence -----------------------------------------------------------------------------------
def tie_share(mech: str, cfg: Any) -> float | None:
    """Share of YES/NO questions (visit-weighted) with θ_i(α_i) = π_i under predicted play."""
    from mechgym.envs.engine.game import evaluate_exact
    from mechgym.envs.pettingzoo.registry import entry
    from mechgym.training.converge import family_contexts
    from mechgym.training.encodings import pending_question
    from mechgym.training.learner_env import learner_setting
    from mechgym.training.metrics import predicted_profile

    _, contexts = family_contexts(mech, cfg)
    raw = learner_setting(mech, contexts=contexts)
    agents = entry(mech).load_agents()
    total, ties = Fraction(0), Fraction(0)
    for ctx in contexts:
        values = getattr(ctx, "values", None)
        if values is None:
            return None
        ev = evaluate_exact(raw.mechanism, ctx, predicted_profile(agents, ctx.n)(ctx))
        for v in ev.visits:
            if v.node.phase not in YES_NO:
                continue
            for p in v.node.players:
                q = pending_question(raw.mechanism, ctx, v.state, p)
                if q is None:
                    continue
                total += v.prob
                if int(values[p][q[0]]) == int(q[1]):
                    ties += v.prob
    return float(ties / total) if total else None


def _finish_summary(s: dict[str, Any], mech: str, cfg: Any, metrics_csv: Path) -> None:
    """Timing estimates and tie shares added to a mechanism's converge summary."""
    cpu = s.get("cpu_seconds_per_seed") or {}
    if cpu.get("n"):
        total = cpu["mean"] * cpu["n"]
        s["cpu_seconds_seeds"] = total
        # the seeds run in min(2, seeds) worker processes: on 2 idle cores the run takes
        # about its CPU seconds shared over them (plus start-up and the reference run)
        s["estimated_wall_seconds_2_cores"] = total / min(2, cpu["n"])
    s["metrics_csv"] = str(metrics_csv)
    try:
        s["tie_share"] = tie_share(mech, cfg)
    except Exception as exc:  # a figure for the report, not a reason to stop
        s["tie_share_error"] = f"{type(exc).__name__}: {exc}"


def keep_curves(metrics_csv: Path, mech: str, folder: Path) -> Path:
    """Copy ``mech``'s rows of a converge run's ``metrics.csv`` to ``folder/<mech>.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    with metrics_csv.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r["mechanism"] == mech]
        cols = reader.fieldnames or []
    path = folder / f"{mech}.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def run_convergence(
    out: Path, mechanisms: tuple[str, ...], quick: bool, together: bool = False, jobs: int = 0
) -> dict[str, Any]:
    """The default converge per mechanism (one run each, timed), or all of them in one run
    (``together``, spread over ``jobs`` processes: faster on a busy machine, timed per job
    in CPU seconds). Results merge into ``out/convergence.json``."""
    from mechgym.training.converge import ConvergeConfig, run_converge
    from rich.console import Console

    path = out / "convergence.json"
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    console = Console()
    base = ConvergeConfig.quick_config() if quick else ConvergeConfig()
    batches = [tuple(mechanisms)] if together else [(m,) for m in mechanisms]
    for batch in batches:
        name = batch[0] if len(batch) == 1 else "together"
        cfg = replace(
            base, mechanisms=batch, out=str(out / "converge" / name), overwrite=True, jobs=jobs
        )
        t0, c0 = time.perf_counter(), cpu_seconds()
        load0 = os.getloadavg()[0]
        summary = run_converge(cfg, console=console, progress=False)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        for mech in batch:
            s = summary["mechanisms"][mech]
            s["wall_seconds_total"] = wall
            s["cpu_seconds_total"] = cpu
            s["run_mechanisms"] = list(batch)
            s["load_average"] = [load0, os.getloadavg()[0]]
            s["config"] = summary["config"]
            if s.get("status") == "ok":
                # results merge across invocations, but a later --together run replaces
                # converge/together/: each mechanism keeps its own copy of its curves
                curves = keep_curves(Path(cfg.out) / "metrics.csv", mech, out / "curves")
                _finish_summary(s, mech, cfg, curves)
            results[mech] = s
        console.print(
            f"[bold]{', '.join(batch)}[/]: {wall:.0f} s wall, {cpu:.0f} s CPU (load {load0:.1f})"
        )
        path.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    rows = []
    for mech, s in results.items():
        if s.get("status") != "ok":
            rows.append({"mechanism": mech, "phase": "-", "status": s.get("status")})
            continue
        for phase, p in s["phases"].items():
            a = p["agreement"]
            rows.append(
                {
                    "mechanism": mech,
                    "phase": phase,
                    "status": "ok",
                    "agreement_mean": a["mean"],
                    "agreement_std": a["std"],
                    "agreement_min": a["min"],
                    "converged": p["converged"],
                    "visit_mass": p["visit_mass"]["mean"],
                    "disagreement_loss": p["disagreement_loss"]["mean"],
                    "bound_satisfied": (p.get("bound_satisfied") or {}).get("mean"),
                    "tie_share": s.get("tie_share") if phase in YES_NO else None,
                    "steps_per_seed": s["steps_per_seed"],
                    "seeds": len(s["seeds"]),
                    "wall_seconds": s["wall_seconds_total"],
                    "cpu_seconds_seeds": s.get("cpu_seconds_seeds"),
                    "estimated_wall_seconds_2_cores": s.get("estimated_wall_seconds_2_cores"),
                }
            )
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        with (out / "convergence.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, restval="")
            w.writeheader()
            w.writerows(rows)
    plot_convergence(out, results)
    return results


def curve_panel(ax: Any, mech: str, path: Path) -> bool:
    """Draw ``mech``'s agreement per phase and seed from ``path`` (a converge
    ``metrics.csv``) on ``ax``; without data, say why on the panel. Returns whether any
    curve was drawn."""
    ax.set_title(f"{LABEL.get(mech, mech)} ({mech})", fontsize=8)
    data = []
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            data = [
                r
                for r in csv.DictReader(fh)
                if r["metric"] == "agreement" and r["mechanism"] == mech and r["value"] != ""
            ]
    if not data:
        # say why rather than draw an empty frame
        why = "file missing" if not path.exists() else "no agreement rows for it"
        ax.text(
            0.5,
            0.5,
            f"no learning curve:\n{path.name}: {why}",
            ha="center",
            va="center",
            fontsize=7,
            transform=ax.transAxes,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return False
    for key in sorted({r["key"] for r in data}):
        for seed in sorted({r["seed"] for r in data}):
            pts = sorted(
                (int(r["steps"]), float(r["value"]))
                for r in data
                if r["key"] == key and r["seed"] == seed
            )
            if pts:
                pts = [(x / 1000, y) for x, y in pts]
                ax.plot(
                    *zip(*pts, strict=True),
                    lw=1,
                    alpha=0.8,
                    ls="-" if key in YES_NO else ":",
                    label=f"{key}" if seed == "0" else None,
                )
    ax.axhline(0.95, color="k", ls="--", lw=0.8)
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("training steps, thousands (all players)", fontsize=7)
    ax.legend(fontsize=6)
    return True


def plot_convergence(out: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = {m: s for m, s in results.items() if s.get("status") == "ok"}
    if not ok:
        return
    fig, ax = plt.subplots(figsize=(7, 3.6))
    labels = []
    for k, (mech, s) in enumerate(ok.items()):
        phases = [ph for ph in s["phases"] if ph in YES_NO] or list(s["phases"])
        for j, ph in enumerate(phases):
            a = s["phases"][ph]["agreement"]
            x = k + 0.15 * j
            ax.errorbar(
                [x],
                [a["mean"]],
                yerr=[[a["mean"] - a["min"]], [a["max"] - a["mean"]]],
                fmt="o",
                capsize=3,
                label=None,
            )
        labels.append(f"{LABEL.get(mech, mech)}\n{'/'.join(phases)}")
    ax.axhline(0.95, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(ok)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylim(-0.03, 1.05)
    ax.set_ylabel("YES/NO agreement (mean, min–max over seeds)")
    fig.tight_layout()
    fig.savefig(out / "convergence.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(ok), figsize=(3.2 * len(ok), 3.0), squeeze=False)
    for ax, mech in zip(axes[0], ok, strict=True):
        curve_panel(ax, mech, out / "curves" / f"{mech}.csv")  # kept there by keep_curves
    cfg = next(iter(ok.values())).get("config") or {}
    if cfg:
        fig.suptitle(
            f"agreement with the prediction per phase over training: {cfg.get('seeds')} seeds × "
            f"{cfg.get('rounds')} rounds × {cfg.get('steps')} steps per player, "
            f"{cfg.get('family')} contexts",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)


# -- tables ----------------------------------------------------------------------------------------
def _f(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def tables(info: dict[str, Any], speed: dict[str, Any] | None, conv: dict[str, Any] | None) -> str:
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['platform']}, Python "
        f"{info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
        + f"; commit {info['commit']}; load average at start "
        f"{_f((info['load_average'] or [None])[0], 1)}.",
        "",
    ]
    if speed:
        ref = speed["throughput"]["rps_v2"]
        lines += [
            "| mechanism | exact env agent-steps/s (× rps_v2) | batched decisions/s (× rps_v2) |",
            "|---|---|---|",
        ]
        for name, r in speed["throughput"]["envs"].items():
            b = speed.get("batched", {}).get(name, {})
            bt = (
                f"{b['decisions_per_second']:,.0f} ({_f(b['ratio_to_rps'], 1)})"
                if b and "skipped" not in b
                else "n/a"
            )
            lines.append(
                f"| {name} | {r['steps_per_second']:,.0f} ({_f(r['ratio_to_rps'])}) | {bt} |"
            )
        lines += [f"\n`rps_v2`: {ref:,.0f} agent-steps/s in the same run.\n" if ref else ""]
        lines += [
            "| MaskablePPO on best_belief | n_envs | steps/s | env share |",
            "|---|---|---|---|",
        ]
        for kind in ("single", "vector", "vector_64"):
            if kind not in speed["training"]:
                continue
            t = speed["training"][kind]
            lines.append(
                f"| {kind} | {t['n_envs']} | {t['steps_per_second']:,.0f} | {t['env_share']:.0%} |"
            )
        if speed["training"].get("speedup"):
            lines.append(f"\nvector / single: {speed['training']['speedup']:.1f}×\n")
        batched = speed["training"].get("batched") or {}
        if "by_encoding" in batched:
            lines += [
                "| batched PPO learner (M1, every player learning) | B | torch threads | "
                "decisions/s | × vector env |",
                "|---|---|---|---|---|",
            ]
            for enc, r in batched["by_encoding"].items():
                lines.append(
                    f"| {enc} | {r['batch_size']} | {r.get('torch_threads', 1)} | "
                    f"{r['decisions_per_second']:,.0f} | {_f(r.get('ratio_to_vector'), 1)} |"
                )
            lines.append("")
    if conv:
        lines += [
            "| mechanism | phase | agreement (mean ± std, min) | verdict | visit mass | "
            "cost of a disagreement | bound met | ties among YES/NO | "
            "CPU s (≈ s on 2 idle cores) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for mech, s in conv.items():
            if s.get("status") != "ok":
                lines.append(f"| {mech} | – | {s.get('status')}: {s.get('reason')} | | | | | | |")
                continue
            # a run of one mechanism: its CPU seconds are the whole run's (workers included)
            cpu = s.get("cpu_seconds_seeds")
            if cpu is None and s.get("run_mechanisms", [mech]) == [mech]:
                cpu = s.get("cpu_seconds_total")
            est = s.get("estimated_wall_seconds_2_cores")
            if est is None and cpu is not None:
                est = cpu / 2
            for ph, p in s["phases"].items():
                a = p["agreement"]
                verdict = "converged" if p["converged"] else "not converged"
                bound = p.get("bound_satisfied")
                lines.append(
                    f"| {LABEL.get(mech, '')} {mech} | {ph} | {_f(a['mean'])} ± {_f(a['std'])}, "
                    f"{_f(a['min'])} | {verdict} | {_f(p['visit_mass']['mean'], 1)} | "
                    f"{_f(p['disagreement_loss']['mean'], 3)} | "
                    f"{_f(bound['mean']) if bound else '–'} | "
                    f"{_f(s.get('tie_share')) if ph in YES_NO else '–'} | "
                    f"{_f(cpu, 0)} ({_f(est, 0)}) |"
                )
        lines += [
            "",
            "| mechanism | E[REV] / benchmark: learned (predicted) | E[SW] / MSW | "
            "guarantee holds | exploitability |",
            "|---|---|---|---|---|",
        ]
        for mech, s in conv.items():
            if s.get("status") != "ok":
                continue

            def pair(key: str, s: dict[str, Any] = s) -> str:
                v, ref = s.get(key) or {}, s.get(f"{key}_reference")
                return f"{_f(v.get('mean'))} ± {_f(v.get('std'))} ({_f(ref)})"

            bench = s.get("revenue_benchmark") or ""
            lines.append(
                f"| {LABEL.get(mech, '')} | {pair('revenue_ratio')} / {bench} | "
                f"{pair('welfare_ratio')} | {pair('guarantee_holds')} | {pair('exploitability')} |"
            )
        cfg = next(iter(conv.values())).get("config", {})
        if cfg:
            lines.append(
                f"\nBudget per mechanism: {cfg.get('seeds')} seeds × {cfg.get('rounds')} rounds × "
                f"{cfg.get('steps')} steps per player, {cfg.get('family')} contexts, "
                f"n_envs = {cfg.get('n_envs')}, {cfg.get('jobs')} parallel processes; every "
                "figure on the held-out family (as many contexts, drawn with the training "
                "family's seed + 1).\n"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/speed_and_convergence", type=Path)
    ap.add_argument("--mechanisms", nargs="*", default=list(SIX))
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-converge", action="store_true")
    ap.add_argument("--quick", action="store_true", help="Tiny budgets (a smoke test).")
    ap.add_argument("--together", action="store_true", help="One converge run for all mechanisms.")
    ap.add_argument("--jobs", type=int, default=0, help="Processes of a --together run.")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rebuild = args.skip_speed and args.skip_converge and (out / "machine.json").exists()
    if rebuild:  # tables from the outputs already in --out: keep the run's own machine record
        info = json.loads((out / "machine.json").read_text(encoding="utf-8"))
    else:
        info = machine()
        (out / "machine.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    speed = None if args.skip_speed else run_speed(out, args.quick)
    if speed is None and (out / "speed.json").exists():
        speed = json.loads((out / "speed.json").read_text(encoding="utf-8"))
    conv = None
    if not args.skip_converge:
        conv = run_convergence(
            out, tuple(args.mechanisms), args.quick, together=args.together, jobs=args.jobs
        )
    elif (out / "convergence.json").exists():
        conv = json.loads((out / "convergence.json").read_text(encoding="utf-8"))
    if conv:
        conv = {m: conv[m] for m in [*SIX, *conv] if m in conv}
        plot_convergence(out, conv)
    if not rebuild:
        info["load_average_at_end"] = os.getloadavg()
        (out / "machine.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    text = tables(info, speed, conv)
    (out / "tables.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
