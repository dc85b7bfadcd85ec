"""``mechgym benchmark run``: train a task's focal learners over seeds and report with intervals.

Per seed the focal players (or coalition) learn against the task's background, then their
deterministic policy is scored exactly on the task's evaluation contexts: focal return,
normalised score, agreement and bound satisfaction (mechgym's metrics) and NashConv,
utility losses and the offers' L2 distance (the field's). Across seeds the aggregate is the
interquartile mean (IQM) with a 95% stratified-bootstrap confidence interval, both from
rliable. Written into the output folder:

``results.json``
    marl-eval's raw layout ``{env: {task: {algo: {"seed_k": {"step_j": {...},
    "absolute_metrics": {...}}}}}}``.
``per_seed.csv``, ``aggregate.json``, ``aggregate.csv``, ``curves.png``.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.model.limits import check_count
from mechgym.machine import machine
from mechgym.training.intervals import interval_estimates

from .scoring import TaskSetup, focal_return, load_reference, normalized, setup
from .tasks import Task

NO_REGRET = ("regret_matching", "hedge", "fictitious_play")
DEEP = ("maskable_ppo", "ppo", "a2c", "dqn")
ALGOS = (*DEEP, *NO_REGRET)
SCALARS = (
    "normalized",
    "focal_return",
    "nash_conv",
    "utility_loss",
    "relative_utility_loss",
    "l2_offer",
)
QUICK_STEPS = 2048
QUICK_ROUNDS = 30


def _train_deep(
    task: Task,
    s: TaskSetup,
    algo: str,
    seed: int,
    steps: int,
    out: Path,
    progress: bool,
    torch_threads: int | None = None,
    bar: Any = None,
    encoding: str = "menu",
) -> tuple[Any, list[dict[str, Any]]]:
    """Train with stable-baselines3 through ``train_learner``; return the focal policy and
    its evaluation history (``steps``, ``learner_value`` on the trainer's own contexts)."""
    from mechgym.training.policies import load_policy
    from mechgym.training.train import train_learner

    kwargs: dict[str, Any] = {}
    if task.example is not None:
        kwargs["context"] = task.example
    else:
        kwargs["generator"] = task.family
    kwargs.update(
        learner=list(task.focal) if task.coalition else task.focal[0],
        algo=algo,
        steps=steps,
        seed=seed,
        opponents=task.background,
        encoding=encoding,
        out=out,
        progress=progress,
        torch_threads=torch_threads,
        progress_bar=bar,
    )
    try:
        report = train_learner(task.mechanism, **kwargs)
    except ParameterError as exc:
        if exc.name != "features":
            raise
        # no batched observation features for this mechanism: the exact single-episode env
        report = train_learner(task.mechanism, n_envs=1, **kwargs)
    policy = load_policy(report["model"])
    history = [
        {"step_count": int(h["steps"]), "learner_value": h.get("learner_value")}
        for h in report["history"]
    ]
    return policy, history


def _train_no_regret(
    s: TaskSetup, algo: str, rounds: int, seed: int, progress: Callable[[int], None] | None
) -> tuple[Any, list[dict[str, Any]]]:
    from mechgym.training.learner_env import group_label
    from mechgym.training.noregret import NoRegretLearner

    learner = NoRegretLearner(
        s.mech,
        s.contexts,
        [s.task.focal],
        s.background,
        s.encoding.options,
        rule=algo,
        rng=np.random.default_rng(seed),
    )
    learner.run(rounds, progress=progress)
    label = group_label(s.task.focal)
    history = [
        {"step_count": k + 1, "learner_value": row[label]} for k, row in enumerate(learner.history)
    ]
    return learner.policy(), history


def evaluate_policy(s: TaskSetup, policy: Any) -> dict[str, Any]:
    """Every exact figure of a focal policy on the task's evaluation contexts."""
    from mechgym.training.equilibrium import equilibrium_metrics
    from mechgym.training.learner_env import group_label
    from mechgym.training.metrics import evaluate_profile

    ref = load_reference()[s.task.id]
    got = focal_return(s, policy)
    prof = s.profile(policy)
    label = group_label(s.task.focal)
    met = evaluate_profile(
        s.mech, s.agents, s.contexts, prof, [s.task.focal], s.encoding, exploitability=False
    )
    eq = equilibrium_metrics(
        s.mech,
        s.spec,
        s.contexts,
        prof,
        s.predicted,
        [s.task.focal],
        menu_options=s.encoding.options,
    )
    return {
        "focal_return": float(got),
        "normalized": normalized(got, ref),
        "agreement": met.agreement,
        "bound_satisfied": met.bound_satisfied,
        "guarantee_holds": met.guarantee_holds,
        "nash_conv": eq.nash_conv,
        "deviation_space": eq.action_space,
        "utility_loss": eq.utility_loss.get(label),
        "relative_utility_loss": eq.relative_utility_loss.get(label),
        "l2_offer": eq.l2_offer,
    }


def run_task(
    task: Task,
    algo: str = "regret_matching",
    seeds: int = 5,
    quick: bool = False,
    out: str | Path = "results/benchmark",
    progress: bool = True,
    console: Any = None,
    steps: int | None = None,
    rounds: int | None = None,
    task_setup: TaskSetup | None = None,
    torch_threads: int | None = None,
    encoding: str = "menu",
) -> dict[str, Any]:
    """Train ``seeds`` independent runs of ``algo`` on ``task`` and write the results.

    ``encoding`` is the deep learners' action encoding (``menu``, ``multidiscrete``, ``factored``,
    ``continuous``); no-regret rules play the menu and take only ``menu``.

    ``steps`` / ``rounds`` override the budget (the task's own, or the quick one with
    ``quick``); ``task_setup`` reuses a :func:`setup` of the same task (its caches, e.g. the
    subgame-perfect reference of M5, then serve several calls); ``torch_threads`` those of
    the deep-RL learners (:func:`~mechgym.training.algos.configure_torch`).

    Returns
    -------
    dict
        The aggregate (also written to ``aggregate.json``).
    """
    if algo not in ALGOS:
        raise ParameterError("algo", f"unknown algorithm {algo!r}; use one of {', '.join(ALGOS)}")
    check_count(seeds, "seeds")
    from mechgym.envs.engine.spaces import canonical_encoding
    from mechgym.training.encodings import ENCODINGS

    encoding = canonical_encoding(encoding)
    if encoding not in ENCODINGS:
        raise ParameterError(
            "encoding", f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}"
        )
    if algo in NO_REGRET and encoding != "menu":
        raise ParameterError("encoding", f"{algo} plays the menu; use --encoding menu")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = setup(task) if task_setup is None else task_setup
    if s.task != task:
        raise ParameterError("task_setup", f"is a setup of {s.task.id}, not of {task.id}")
    if steps is None:
        steps = QUICK_STEPS if quick else task.steps
    if rounds is None:
        rounds = QUICK_ROUNDS if quick else task.rounds
    if steps < 1 or rounds < 1:
        raise ParameterError("budget", f"steps and rounds must be ≥ 1, got {steps}, {rounds}")
    from mechgym.progress import progress as progress_bar

    per_seed: list[dict[str, Any]] = []
    raw_runs: dict[str, Any] = {}
    t0 = time.perf_counter()
    deep = algo in DEEP
    bar = progress_bar(
        total=seeds * (steps if deep else rounds),
        desc=f"{task.id} {algo}",
        unit="steps" if deep else "rounds",
        disable=not progress,
    )
    for seed in range(seeds):
        t_seed = time.perf_counter()
        if not deep:
            policy, history = _train_no_regret(s, algo, rounds, seed, bar.update)
            budget = rounds
        else:
            policy, history = _train_deep(
                task,
                s,
                algo,
                seed,
                steps,
                out / f"seed_{seed}",
                progress,
                torch_threads=torch_threads,
                bar=bar,
                encoding=encoding,
            )
            budget = steps
        figures = evaluate_policy(s, policy)
        row = {"seed": seed, "budget": budget, "seconds": time.perf_counter() - t_seed}
        row.update({k: v for k, v in figures.items() if not isinstance(v, dict)})
        for ph, v in figures["agreement"].items():
            row[f"agreement_{ph}"] = v
        for ph, v in figures["bound_satisfied"].items():
            row[f"bound_satisfied_{ph}"] = v
        per_seed.append(row)
        run: dict[str, Any] = {
            f"step_{k}": {"step_count": h["step_count"], "learner_value": [h["learner_value"]]}
            for k, h in enumerate(history)
            if h["learner_value"] is not None
        }
        run["absolute_metrics"] = {
            k: [float(v)]
            for k, v in row.items()
            if k not in ("seed", "budget", "seconds", "deviation_space")
            and isinstance(v, int | float)
        }
        raw_runs[f"seed_{seed}"] = run
        if console is not None:
            msg = (
                f"{task.id} {algo} seed {seed}: normalised {row['normalized']:.3f}, "
                f"focal return {row['focal_return']:.3f}"
            )
            if bar.disable:
                console.print(msg)
            else:
                bar.write(msg, file=sys.stderr)  # above the bar, not through it
    bar.close()
    keys = sorted({k for r in per_seed for k, v in r.items() if isinstance(v, int | float)})
    scalars = [k for k in keys if k not in ("seed", "budget", "seconds")]
    arrays = {
        k: np.array([np.nan if r.get(k) is None else float(r[k]) for r in per_seed])
        for k in scalars
    }
    agg = interval_estimates(arrays)
    ref = load_reference()[task.id]
    summary = {
        "task": task.id,
        "algo": algo,
        "seeds": seeds,
        "budget": steps if algo in DEEP else rounds,
        "budget_unit": "env steps" if algo in DEEP else "rounds",
        "quick": quick,
        "reference": {"random": ref["random_float"], "predicted": ref["predicted_float"]},
        "aggregate": agg,
        "wall_seconds": time.perf_counter() - t0,
        "torch_threads": _threads_used(deep, torch_threads),
        "machine": machine(),
    }
    (out / "results.json").write_text(
        json.dumps({"mechgym": {task.id: {algo: raw_runs}}}, indent=1), encoding="utf-8"
    )
    _write_csv(out / "per_seed.csv", per_seed)
    (out / "aggregate.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    _write_csv(
        out / "aggregate.csv",
        [{"metric": k, **v} for k, v in agg.items()],
    )
    _plot(out / "curves.png", raw_runs, task, algo)
    return summary


def _threads_used(deep: bool, threads: int | None) -> int | None:
    """The torch threads of the deep-RL learners (``None``: no torch in a no-regret run)."""
    if not deep:
        return None
    from mechgym.training.algos import torch_threads

    return torch_threads(threads)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        for k in r:
            if k not in fields:
                fields.append(k)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def _plot(path: Path, runs: dict[str, Any], task: Task, algo: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, run in runs.items():
        steps = [v["step_count"] for k, v in run.items() if k.startswith("step_")]
        vals = [v["learner_value"][0] for k, v in run.items() if k.startswith("step_")]
        if steps:
            ax.plot(steps, vals, lw=1, label=name)
    ref = load_reference()[task.id]
    if algo in NO_REGRET:
        ax.axhline(ref["predicted_float"], color="k", ls="--", lw=1, label="predicted")
        ax.axhline(ref["random_float"], color="grey", ls=":", lw=1, label="random")
    ax.set_xlabel("rounds" if algo in NO_REGRET else "env steps")
    ax.set_ylabel("focal value")
    ax.set_title(f"{task.id} — {algo}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
