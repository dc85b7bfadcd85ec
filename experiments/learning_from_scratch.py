"""Does learning *find* the predictions? The convergence study without the answer built in.

    python experiments/learning_from_scratch.py [--out results/learning_from_scratch]
        [--mechanisms best_belief ...] [--encodings menu factored continuous
        factored+own-lower-bounds]
        [--inits predicted random] [--schemes independent simultaneous alternating fictitious]
        [--seeds 5] [--budget 1000000] [--rounds 10] [--reuse] [--quick]

For every mechanism (default: the six of the papers, M1–M6) and every cell of the matrix
encoding × initial profile × learning scheme, one ``converge`` run (every player learns;
:mod:`mechgym.training.converge`) with ``--seeds`` seeds at a budget of ``--budget`` learner
decisions per run (spread over the rounds and players), trained on one family of contexts
and evaluated, after every round, exactly on a **held-out** family drawn with another seed.
Nothing is tuned per cell: the same budget, hyper-parameters and thresholds everywhere.

Per cell the final figures on the held-out family, as IQM and 95% stratified-bootstrap
interval over seeds (rliable): agreement with the YES/NO rule, bound satisfaction and the
achieved/required ratio of bound phases (e.g. announced revenue / BB_i), agreement of
proposal phases (M5/M6: seeds that reach the SPE proposal), E[REV]/benchmark, guarantee
holds, exploitability (with the strategy space it was computed over); the training family's
figures beside; wall and CPU seconds. A cell whose encoding or scheme a mechanism does not
offer is listed with the reason. An encoding token ``ENC+GRID`` runs the factored or
continuous encoding ``ENC`` on the amount grid ``GRID`` (converge ``--price-grid``: e.g.
``factored+own-lower-bounds``, prices from the player's own lower bounds, its private
information); a plain token uses the linear 16-level grid.

Outputs in ``--out``: ``machine.json``, ``study.json`` (every cell's converge summary),
``study.csv`` (one row per cell and phase), ``tables.md`` (the README's tables),
``study.png`` (final held-out agreement and bound satisfaction per cell) and
``cells/<mech>/<encoding>-<init>-<scheme>/`` (each converge run's CSV, JSON, curves and
plots).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from speed_and_convergence import LABEL, SIX, YES_NO, cpu_seconds

from mechgym.machine import git_commit, machine

ENCODINGS = ("menu", "factored", "continuous")
INITS = ("predicted", "random")
#: independent = SB3's best-response rounds; on the batched path, simultaneous = every
#: player at once, alternating = best-response rounds (each player in turn, the others frozen),
#: fictitious = the same against the others' past actors, one drawn per episode
SCHEMES = ("independent", "simultaneous", "alternating", "fictitious")
#: phases whose prediction is a unique proposal (the SPE's, M5 and M6)
PROPOSALS = ("propose",)


def split_encoding(token: str) -> tuple[str, str]:
    """``"factored+own-lower-bounds"`` -> ``("factored", "own-lower-bounds")``; a plain
    encoding keeps the linear grid."""
    enc, _, grid = token.partition("+")
    return enc, grid or "linear"


def cell_name(encoding: str, init: str, scheme: str) -> str:
    return f"{encoding}-{init}-{scheme}"


def final_points(cell_out: Path, family: str = "heldout") -> dict[tuple[str, str], dict[str, Any]]:
    """The last round's IQM and interval per (metric, key) from a run's ``curves.csv``."""
    path = cell_out / "curves.csv"
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["family"] == family]
    if not rows:
        return {}
    last = max(int(r["round"]) for r in rows)
    return {
        (r["metric"], r["key"]): {k: float(r[k]) for k in ("iqm", "ci_low", "ci_high", "min")}
        for r in rows
        if int(r["round"]) == last
    }


def seeds_reaching(cell_out: Path, phase: str, family: str = "heldout") -> tuple[int, int]:
    """(seeds whose final agreement in ``phase`` is 1, seeds) from ``metrics.csv``."""
    path = cell_out / "metrics.csv"
    if not path.exists():
        return 0, 0
    with path.open(encoding="utf-8") as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if r["family"] == family and r["metric"] == "agreement" and r["key"] == phase
        ]
    if not rows:
        return 0, 0
    last = max(int(r["round"]) for r in rows)
    final = [float(r["value"]) for r in rows if int(r["round"]) == last and r["value"] != ""]
    return sum(v >= 1.0 - 1e-12 for v in final), len(final)


def cell_config(
    mech: str,
    encoding: str,
    init: str,
    scheme: str,
    args: argparse.Namespace,
    cell_out: Path,
    **overrides: Any,
) -> tuple[Any, int]:
    """One cell's converge config: every player learns, ``args.budget`` learner decisions
    spread over ``args.rounds`` rounds and the mechanism's players (``args``: ``seeds``,
    ``rounds``, ``budget``, ``family``, ``jobs``; ``quick`` and ``features`` where given);
    ``overrides`` replace fields. Returns the config and its decisions per run."""
    from mechgym.training.converge import ConvergeConfig, draw_family

    encoding, price_grid = split_encoding(encoding)
    _, one = draw_family(mech, None, 1, 0)
    players = int(one[0].n)
    steps = max(1, args.budget // (args.rounds * players))
    base = ConvergeConfig.quick_config() if getattr(args, "quick", False) else ConvergeConfig()
    cfg = replace(
        base,
        mechanisms=(mech,),
        seeds=args.seeds,
        rounds=args.rounds,
        steps=steps,
        family=args.family,
        encoding=encoding,
        price_grid=price_grid,
        init=init,
        scheme=scheme,
        out=str(cell_out),
        overwrite=True,
        jobs=args.jobs,
        save_models=False,
        features=getattr(args, "features", True),
        full_space_limit=getattr(args, "full_space_limit", 0),
    )
    if getattr(args, "critic_warmup", 0):
        cfg = replace(cfg, hyper={**cfg.hyper, "critic_warmup": args.critic_warmup})
    if getattr(args, "hyper", None):
        cfg = replace(cfg, hyper={**cfg.hyper, **args.hyper})
    return replace(cfg, **overrides), steps * args.rounds * players


def run_cell(
    mech: str, encoding: str, init: str, scheme: str, args: argparse.Namespace, out: Path
) -> dict[str, Any] | None:
    """One converge run of the matrix; its summary plus timings and the study's budget
    (``None``: with ``--aggregate``, a cell not in ``--out``)."""
    from mechgym.envs.engine.errors import MechgymError
    from mechgym.training.converge import run_converge

    cell_out = out / "cells" / mech / cell_name(encoding, init, scheme)
    if args.aggregate and not (cell_out / "summary.json").exists():
        return None
    if (args.reuse or args.aggregate) and (cell_out / "summary.json").exists():
        summary = json.loads((cell_out / "summary.json").read_text(encoding="utf-8"))
        s = summary["mechanisms"][mech]
        c = summary["config"]
        players = len(s.get("groups") or []) or 1
        return {
            **s,
            "cell_out": str(cell_out),
            "reused": True,
            "decisions_per_run": c["steps"] * c["rounds"] * players,
            "wall_seconds_total": summary.get("wall_seconds"),
        }
    cfg, decisions = cell_config(mech, encoding, init, scheme, args, cell_out)
    t0, c0 = time.perf_counter(), cpu_seconds()
    try:
        summary = run_converge(cfg, progress=False)
    except MechgymError as exc:
        return {"status": "skipped", "reason": str(exc), "cell_out": str(cell_out)}
    s = dict(summary["mechanisms"][mech])
    s["wall_seconds_total"] = time.perf_counter() - t0
    s["cpu_seconds_total"] = cpu_seconds() - c0
    s["decisions_per_run"] = decisions
    s["cell_out"] = str(cell_out)
    return s


def cell_rows(
    mech: str, encoding: str, init: str, scheme: str, s: dict[str, Any]
) -> list[dict[str, Any]]:
    """``study.csv`` rows of one cell: one per phase, with the outcome figures repeated."""
    base = {"mechanism": mech, "encoding": encoding, "init": init, "scheme": scheme}
    if s.get("status") != "ok":
        return [{**base, "phase": "-", "status": s.get("status"), "reason": s.get("reason")}]
    cell_out = Path(s["cell_out"])
    held, train = final_points(cell_out), final_points(cell_out, "train")
    rows = []
    for phase, p in s["phases"].items():
        a = held.get(("agreement", phase), {})
        b = held.get(("bound_satisfied", phase), {})
        r = held.get(("bound_ratio", phase), {})
        reach, seeds = seeds_reaching(cell_out, phase) if phase in PROPOSALS else (None, None)
        rows.append(
            {
                **base,
                "phase": phase,
                "status": "ok",
                "kind": "yes/no"
                if phase in YES_NO
                else "bound"
                if "bound" in p
                else "proposal"
                if phase in PROPOSALS
                else "other",
                "agreement_iqm": a.get("iqm"),
                "agreement_ci_low": a.get("ci_low"),
                "agreement_ci_high": a.get("ci_high"),
                "agreement_min": a.get("min"),
                "agreement_train_iqm": train.get(("agreement", phase), {}).get("iqm"),
                # what the learned play at this phase's nodes costs its player against the
                # predicted action there, the others as learned (exact, summary's final round)
                "disagreement_cost_iqm": (p.get("disagreement_loss") or {}).get("iqm"),
                "bound_satisfied_iqm": b.get("iqm"),
                "bound_satisfied_ci_low": b.get("ci_low"),
                "bound_satisfied_ci_high": b.get("ci_high"),
                "bound_ratio_iqm": r.get("iqm"),
                "seeds_reaching_prediction": reach,
                "seeds": seeds if seeds is not None else len(s["seeds"]),
                "revenue_ratio_iqm": held.get(("revenue_ratio", ""), {}).get("iqm"),
                "revenue_ratio_reference": s.get("revenue_ratio_reference"),
                "guarantee_holds_iqm": held.get(("guarantee_holds", ""), {}).get("iqm"),
                "guarantee_holds_train_iqm": train.get(("guarantee_holds", ""), {}).get("iqm"),
                "exploitability_iqm": held.get(("exploitability_max", ""), {}).get("iqm"),
                "exploitability_reference": s.get("exploitability_reference"),
                "exploitability_space": s.get("exploitability_space"),
                # over every legal action (exact), held out, where the space is small enough
                "exploitability_full_iqm": (s.get("exploitability_full") or {}).get("iqm"),
                "exploitability_full_ci_low": (s.get("exploitability_full") or {}).get("ci_low"),
                "exploitability_full_ci_high": (s.get("exploitability_full") or {}).get("ci_high"),
                "exploitability_full_reference": s.get("exploitability_full_reference"),
                "decisions_per_run": s.get("decisions_per_run"),
                "wall_seconds": s.get("wall_seconds_total"),
                "cpu_seconds": s.get("cpu_seconds_total"),
            }
        )
    return rows


def _ci(r: dict[str, Any], key: str) -> str:
    v = r.get(f"{key}_iqm")
    if v is None or v == "":
        return "n/a"
    lo, hi = r.get(f"{key}_ci_low"), r.get(f"{key}_ci_high")
    if lo is None or hi is None or lo == "" or hi == "":
        return f"{float(v):.2f}"
    return f"{float(v):.2f} [{float(lo):.2f}, {float(hi):.2f}]"


def _decisions(x: Any) -> str:
    return "n/a" if x is None or x == "" else f"{int(x):,}"


def _f(x: Any) -> str:
    return "n/a" if x is None or x == "" else f"{float(x):.2f}"


def parse_hyper(items: list[str]) -> dict[str, Any]:
    """``["hidden=256,256", "entropy_coef=0.05"]`` -> the batched learner's settings (a
    comma list is a tuple of ints; otherwise an int, else a float); unknown names or bad
    values raise ``ValueError`` naming them."""
    from mechgym.training.batched_ppo import BatchedPPOConfig

    known = set(BatchedPPOConfig.__dataclass_fields__)
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in known:
            names = ", ".join(sorted(known))
            raise ValueError(f"{item!r}: use NAME=VALUE with NAME one of {names}")
        try:
            if "," in raw or name == "hidden":
                out[name] = tuple(int(v) for v in raw.split(","))
            else:
                out[name] = int(raw) if raw.lstrip("-").isdigit() else float(raw)
        except ValueError:
            raise ValueError(f"{item!r}: {raw!r} is not a number") from None
    BatchedPPOConfig(**out).check()
    return out


def _ppo_settings(hyper: dict[str, Any] | None = None) -> str:
    from mechgym.training.batched_ppo import BatchedPPOConfig

    c = BatchedPPOConfig(**(hyper or {}))
    return (
        f"{c.batch_size} episodes × {c.rollout_steps} steps per update, {c.epochs} epochs × "
        f"{c.minibatches} minibatches, lr {c.learning_rate:g}, entropy {c.entropy_coef:g}, "
        f"MLP {'×'.join(map(str, c.hidden))}"
    )


def compact_table(rows: list[dict[str, Any]]) -> str:
    """One row per mechanism and phase, one column per cell of the matrix that ran: the
    held-out agreement IQM, and for bound phases ``agreement / bound met``; proposal phases
    add the seeds reaching the SPE proposal."""
    ok = [r for r in rows if r.get("status") == "ok"]
    cells = list(dict.fromkeys((r["encoding"], r["init"], r["scheme"]) for r in ok))
    if not cells:
        return ""
    keys = list(dict.fromkeys((r["mechanism"], r["phase"]) for r in ok))
    by = {(r["mechanism"], r["phase"], r["encoding"], r["init"], r["scheme"]): r for r in ok}
    head = " | ".join(f"{e} / {i} / {s}" for e, i, s in cells)
    lines = [
        f"| mech | phase | {head} |",
        "|---|---|" + "---|" * len(cells),
    ]
    for mech, phase in keys:
        out = []
        for cell in cells:
            r = by.get((mech, phase, *cell))
            if r is None:
                out.append("–")
                continue
            text = _f(r["agreement_iqm"])
            if r.get("kind") == "bound":
                text += f" / {_f(r['bound_satisfied_iqm'])}"
            if r.get("seeds_reaching_prediction") is not None:
                text += f" ({r['seeds_reaching_prediction']}/{r['seeds']})"
            out.append(text)
        lines.append(f"| {LABEL.get(mech, mech)} | {phase} | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def tables(info: dict[str, Any], rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The README's tables: one line per cell and phase, held-out figures first."""
    v = info.get("versions", {})
    full = any(r.get("exploitability_full_iqm") not in (None, "") for r in rows)
    lines = [
        f"Machine: {info.get('cpu')}, {info.get('cores')} cores, {info.get('platform')}; "
        f"python {info.get('python')}, numpy {v.get('numpy')}, torch {v.get('torch')}, "
        f"TorchRL {v.get('torchrl')}, stable-baselines3 {v.get('stable-baselines3')}; "
        f"commit {info.get('commit')} (the table's; a reused cell's own is in its "
        "summary.json).",
        f"Budget: {args.budget:,} learner decisions per run (a reused cell states its own) "
        f"over {args.rounds} rounds, {args.seeds} seeds (a cell's own count in its row), "
        f"{args.family} training contexts, "
        "held-out family of the same size drawn with another seed. Figures: IQM [95% CI] over "
        "seeds on the held-out family (train: the training family's IQM). Cost vs predicted: "
        "what the learned action at the phase's nodes costs its player against the predicted "
        "action there, everyone else as learned (exact, final round; > 0: the prediction pays "
        "more). Exploitability: the largest gain of one player's exact best response, over the "
        "menu options (for factored and continuous, a lower bound)"
        + (
            " and, in its own column, over every legal action of the mechanism (a true "
            "exploitability; n/a where a node has more than --full-space-limit actions)"
            if full
            else ""
        )
        + ".",
        "",
        "Learners: simultaneous = every player at once, batched PPO on TorchRL's ClipPPOLoss "
        f"and GAE ({_ppo_settings(getattr(args, 'hyper', None))}), from random initial "
        "weights (init random) or from "
        "actors that first imitated the predicted profile (init predicted: behaviour cloning "
        "on the training family, outside the budget; each cell's summary.json gives the "
        "cloned agreement"
        + (
            f"; then {getattr(args, 'critic_warmup', 0)} updates of the critics alone on the "
            "clone's returns, also outside the budget"
            if getattr(args, "critic_warmup", 0)
            else ""
        )
        + "); alternating = the same batched learners in best-response rounds (each player "
        "in turn against the others' frozen actors, played by their mode; an untrained actor "
        "samples); fictitious = the same rounds against the others' past actors, one drawn "
        "uniformly per episode (fictitious play; evaluated: the latest actors); "
        "independent = best-response rounds, SB3 MaskablePPO. "
        "Observations: the AEC vector"
        + (
            " and the pending-question features (own value of the offered item, its price, "
            "their difference)"
            if args.features
            else " alone (no pending-question features)"
        )
        + "; factored moves add the move so far.",
        "",
        "| mech | encoding | init | scheme | seeds | decisions | phase | agreement | (train) |"
        " bound met |"
        " achieved/required | cost vs predicted | E[REV]/bench (pred.) | guarantee holds |"
        " exploitability (pred.) |"
        + (" exploitability, full space (pred.) |" if full else "")
        + " wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        + ("---|" if full else ""),
    ]
    for r in rows:
        label = LABEL.get(r["mechanism"], r["mechanism"])
        if r.get("status") != "ok":
            lines.append(
                f"| {label} | {r['encoding']} | {r['init']} | {r['scheme']} | - | - | - | "
                f"{r.get('status')}: {r.get('reason')} |  |  |  |  |  |  |  |  |"
            )
            continue
        agree = _ci(r, "agreement")
        if r.get("seeds_reaching_prediction") is not None:
            agree += f" ({r['seeds_reaching_prediction']}/{r['seeds']} seeds exact)"
        lines.append(
            f"| {label} | {r['encoding']} | {r['init']} | {r['scheme']} | {r.get('seeds', '')} | "
            f"{_decisions(r.get('decisions_per_run'))} | {r['phase']} | {agree} | "
            f"{_f(r['agreement_train_iqm'])} | {_ci(r, 'bound_satisfied')} | "
            f"{_f(r['bound_ratio_iqm'])} | {_f(r.get('disagreement_cost_iqm'))} | "
            f"{_f(r['revenue_ratio_iqm'])} "
            f"({_f(r['revenue_ratio_reference'])}) | {_f(r['guarantee_holds_iqm'])} | "
            f"{_f(r['exploitability_iqm'])} ({_f(r['exploitability_reference'])}) | "
            + (
                f"{_ci(r, 'exploitability_full')} ({_f(r['exploitability_full_reference'])}) | "
                if full
                else ""
            )
            + f"{_f(r['wall_seconds'])} |"
        )
    compact = compact_table(rows)
    if compact:
        lines += [
            "",
            "Compact: held-out agreement IQM per cell (bound phases: agreement / bound met; "
            "proposal phases: seeds reaching the SPE proposal).",
            "",
            compact,
        ]
    return "\n".join(lines) + "\n"


def plot(out: Path, rows: list[dict[str, Any]]) -> None:
    """Final held-out YES/NO agreement and bound satisfaction per cell, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    panels = [
        ("YES/NO agreement", [r for r in ok if r["kind"] == "yes/no"], "agreement"),
        ("bound met", [r for r in ok if r["kind"] == "bound"], "bound_satisfied"),
    ]
    panels = [p for p in panels if p[1]]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for ax, (title, sub, key) in zip(axes[0], panels, strict=True):
        labels = [
            f"{LABEL.get(r['mechanism'], r['mechanism'])} {r['phase']}\n"
            f"{r['encoding']}/{r['init']}/{r['scheme']}"
            for r in sub
        ]
        y = [float(r[f"{key}_iqm"]) if r[f"{key}_iqm"] is not None else float("nan") for r in sub]
        lo = [
            yi - float(r[f"{key}_ci_low"]) if r[f"{key}_ci_low"] is not None else 0.0
            for yi, r in zip(y, sub, strict=True)
        ]
        hi = [
            float(r[f"{key}_ci_high"]) - yi if r[f"{key}_ci_high"] is not None else 0.0
            for yi, r in zip(y, sub, strict=True)
        ]
        ax.errorbar(range(len(sub)), y, yerr=[lo, hi], fmt="o", capsize=3)
        ax.axhline(0.95, color="k", ls="--", lw=1, label="target 0.95")
        ax.set_xticks(range(len(sub)), labels, rotation=90, fontsize=6)
        ax.set_ylim(-0.03, 1.05)
        ax.set_title(f"{title} on held-out contexts (IQM, 95% CI)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "study.png", dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/learning_from_scratch", type=Path)
    ap.add_argument("--mechanisms", nargs="*", default=list(SIX))
    ap.add_argument("--encodings", nargs="*", default=list(ENCODINGS))
    ap.add_argument("--inits", nargs="*", default=list(INITS))
    ap.add_argument("--schemes", nargs="*", default=list(SCHEMES))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=1_000_000, help="Learner decisions per run.")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--family", type=int, default=32, help="Training (and held-out) contexts.")
    ap.add_argument("--jobs", type=int, default=0, help="Processes per run (0: one per core).")
    ap.add_argument("--reuse", action="store_true", help="Keep cells already in --out.")
    ap.add_argument(
        "--aggregate",
        action="store_true",
        help="Run nothing: tables and plot from the cells already in --out (others left out).",
    )
    ap.add_argument(
        "--no-features",
        dest="features",
        action="store_false",
        help="Observations without the pending-question features (the AEC vector alone).",
    )
    ap.add_argument(
        "--full-space-limit",
        type=int,
        default=0,
        help="Also the exact exploitability over every legal action where no node has more "
        "than this many (converge --full-space-limit; 0: off).",
    )
    ap.add_argument(
        "--critic-warmup",
        type=int,
        default=0,
        help="Simultaneous learners started at a profile: updates of the critics alone on the "
        "cloned actors' returns before PPO (outside the budget; 0: none).",
    )
    ap.add_argument(
        "--hyper",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="Batched learner settings for every cell (e.g. hidden=256,256 entropy_coef=0.05); "
        "default: BatchedPPOConfig's.",
    )
    ap.add_argument("--quick", action="store_true", help="Tiny budgets (a smoke test).")
    args = ap.parse_args(argv)
    try:
        args.hyper = parse_hyper(args.hyper)
    except ValueError as exc:  # parsing, then BatchedPPOConfig.check (a ParameterError)
        ap.error(f"--hyper: {exc}")
    for name in ("seeds", "budget", "rounds", "family"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.critic_warmup < 0:
        ap.error("--critic-warmup must be at least 0")
    from mechgym.envs.engine.factored import FACTORED_ENCODINGS, PRICE_GRIDS

    # an unknown plain encoding becomes a skipped cell with converge's reason; a grid token
    # is checked here, before any cell runs
    for token in (t for t in args.encodings if "+" in t):
        enc, grid = split_encoding(token)
        if enc not in FACTORED_ENCODINGS or grid not in PRICE_GRIDS:
            ap.error(
                f"--encodings: unknown {token!r}; a price grid goes with factored or "
                f"continuous, as ENC+GRID with GRID one of {', '.join(PRICE_GRIDS)}"
            )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    if info["commit"] is None:
        # mechgym installed outside a checkout (a frozen install): this script's checkout
        info["commit"] = git_commit(Path(__file__).resolve().parents[1])
    (out / "machine.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    path = out / "study.json"
    study: dict[str, Any] = (
        json.loads(path.read_text(encoding="utf-8")) if args.reuse and path.exists() else {}
    )
    rows: list[dict[str, Any]] = []
    for mech in args.mechanisms:
        for enc in args.encodings:
            for init in args.inits:
                for scheme in args.schemes:
                    key = f"{mech}/{cell_name(enc, init, scheme)}"
                    s = run_cell(mech, enc, init, scheme, args, out)
                    if s is None:
                        continue
                    study[key] = s
                    path.write_text(json.dumps(study, indent=2, default=str), encoding="utf-8")
                    rows += cell_rows(mech, enc, init, scheme, s)
                    print(f"{key}: {s.get('status')} ({_f(s.get('wall_seconds_total'))} s)")
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "study.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(rows)
    plot(out, rows)
    text = tables(info, rows, args)
    (out / "tables.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"results written to {out.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
