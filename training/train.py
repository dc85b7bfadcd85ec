"""Train one learner (a player or a coalition) against given opponents, with exact metrics.

:func:`train_learner` is what ``mechgym train`` runs: it builds a
:class:`~mechgym.training.learner_env.LearnerEnv`, trains an SB3 model with a progress bar,
evaluates the learner's deterministic policy exactly every ``eval_every`` steps (logged to the
console, ``metrics.csv`` and TensorBoard when enabled), saves a checkpoint each time, and
writes the final ``model.zip`` (+ ``model.json``) and ``metrics.json`` (learned profile and
the predicted reference) into ``out``.

Evaluation contexts: the given context, or ``eval_contexts`` contexts drawn from the
generator with the fixed seed :data:`EVAL_SEED`. Opponents are evaluated as they trained,
except random play, which is frozen per node (:class:`MemoRandom`) so that the exact
evaluator sees a deterministic profile.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mechgym.agents.base import PhasePolicy, RandomPolicy

from .learner_env import LearnerEnv, group_label
from .metrics import ProfileMetrics, evaluate_profile
from .policies import LearnedPolicy, check_model_file, load_meta, save_model
from .sidecar import check_setting

EVAL_SEED = 12345


class MemoRandom(RandomPolicy):
    """Random legal play frozen per (state, player): a deterministic stand-in for random
    opponents in exact evaluation."""

    def __init__(self, rng: np.random.Generator, spec: Any) -> None:
        super().__init__(rng, spec)
        self.memo: dict[Any, Any] = {}

    def act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
        try:
            key = (state, player)
            hit = self.memo.get(key)
        except TypeError:
            return super().act(mech, ctx, state, player)
        if hit is None:
            hit = super().act(mech, ctx, state, player)
            self.memo[key] = hit
        return hit


def evaluation_contexts(env: LearnerEnv, count: int, seed: int = EVAL_SEED) -> list[Any]:
    """The env's fixed context, else ``count`` contexts drawn from its generator."""
    setting = env.setting
    if setting.generator is None:
        return [setting.context]
    family = getattr(setting.generator, "contexts", None)
    if family is not None and len(family) <= count:
        return list(family)
    rng = np.random.default_rng(seed)
    return [setting.generator.sample(rng) for _ in range(count)]


def learner_profile(env: LearnerEnv, policy: Any) -> Callable[[Any], dict[int, Any]]:
    """``ctx -> {player: policy}``: the learner's policy (scripted outside its learned
    phases) and the env's opponents (random play frozen per node)."""
    from mechgym.envs.pettingzoo.registry import entry

    from .policies import resolve_sources

    n = env.env_spec.n
    agents = entry(env.mech_name).load_agents()
    rng = np.random.default_rng(EVAL_SEED)
    spec = env._opponents_spec
    if spec == "random":
        sources = dict.fromkeys(range(n), lambda ctx, r: MemoRandom(rng, env.env_spec))
    else:
        sources = resolve_sources(spec, list(range(n)), env.mech_name, env.env_spec)
    scripted = resolve_sources(env._scripted_spec, list(range(n)), env.mech_name, env.env_spec)
    all_phases = set(env.learn_phases) == set(env.mech.phases)
    del agents

    def prof(ctx: Any) -> dict[int, Any]:
        out = {}
        for p in range(n):
            if p in env.group:
                out[p] = (
                    policy
                    if all_phases
                    else PhasePolicy(scripted[p](ctx, rng), dict.fromkeys(env.learn_phases, policy))
                )
            else:
                out[p] = sources[p](ctx, rng)
        return out

    return prof


def evaluate_learner(
    env: LearnerEnv, model: Any, contexts: Sequence[Any], exploitability: bool = True
) -> ProfileMetrics:
    """Exact metrics of the learner's deterministic policy against the env's opponents."""
    return evaluate_policy(env, LearnedPolicy(model, env.builder), contexts, exploitability)


def evaluate_policy(
    env: LearnerEnv, pol: Any, contexts: Sequence[Any], exploitability: bool = True
) -> ProfileMetrics:
    """Exact metrics of a deterministic policy of the learner (any backend's) against the
    env's opponents."""
    ctxs = [_aligned(env, c) for c in contexts]
    return evaluate_profile(
        env.mech,
        env.agents,
        ctxs,
        learner_profile(env, pol),
        [env.group],
        env.encoding,
        phases=env.learn_phases,
        exploitability=exploitability,
    )


def evaluate_reference(env: LearnerEnv, contexts: Sequence[Any]) -> ProfileMetrics:
    """The same metrics when the learner plays the prediction."""
    ctxs = [_aligned(env, c) for c in contexts]
    agents = env.agents

    class _Pred:
        def act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
            return agents.predicted(ctx).act(mech, ctx, state, player)

    return evaluate_profile(
        env.mech,
        agents,
        ctxs,
        learner_profile(env, _Pred()),
        [env.group],
        env.encoding,
        phases=env.learn_phases,
    )


def _aligned(env: LearnerEnv, ctx: Any) -> Any:
    from .learner_env import align_context

    return align_context(ctx, env.group) if env.align_coalitions else ctx


def train_learner(
    mechanism: str,
    learner: Any = 0,
    algo: str = "maskable_ppo",
    steps: int = 20_000,
    seed: int = 0,
    opponents: Any = "predicted",
    encoding: str = "menu",
    context: Any = None,
    generator: Any = None,
    learn_phases: Sequence[str] | None = None,
    out: str | Path = "results/train",
    eval_every: int | None = None,
    eval_contexts: int = 16,
    tensorboard: bool = False,
    progress: bool = True,
    resume: str | Path | None = None,
    hyper: dict[str, Any] | None = None,
    console: Any = None,
    n_envs: int = 64,
    torch_threads: int | None = None,
    progress_bar: Any = None,
) -> dict[str, Any]:
    """Train one learner and report exact metrics (see the module docstring).

    ``n_envs > 1`` trains on the vectorised env of :mod:`mechgym.training.vec_env` (the
    batched path, ``n_envs`` episodes at once); ``n_envs=1`` on the exact single-episode
    :class:`LearnerEnv`, the reference. Evaluation is exact either way. ``torch_threads``:
    see :func:`~mechgym.training.algos.configure_torch` (default 1, or
    ``MECHGYM_TORCH_THREADS``). ``progress_bar``: an open :func:`mechgym.progress.progress`
    bar that the training steps advance (shared by several runs) instead of a bar of its own.

    Returns
    -------
    dict
        ``{"final": ..., "reference": ..., "history": [...], "model": path, ...}``.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    from .algos import configure_torch, load_model, make_model

    threads = configure_torch(torch_threads)
    out = Path(out)
    kwargs = {
        "opponents": opponents,
        "encoding": encoding,
        "learn_phases": learn_phases,
        "context": context,
        "generator": generator,
        "seed": seed,
    }
    if n_envs > 1:
        from .vec_env import VecLearnerEnv

        env: Any = VecLearnerEnv(mechanism, learner, n_envs=n_envs, **kwargs)
        env.seed(seed)
        env.reset()
        contexts = evaluation_contexts(env, eval_contexts)
    else:
        env = LearnerEnv(mechanism, learner, **kwargs)
        env.reset(seed=seed)
        contexts = evaluation_contexts(env, eval_contexts)
    if resume and check_model_file(resume).with_suffix(".json").exists():
        # a model of another setting is refused by name (a trusted foreign zip has no sidecar)
        check_setting(load_meta(resume), env.meta(), resume, "continue training here")
    tb = str(out / "tb") if tensorboard else None
    if resume:
        model = load_model(algo, str(resume), env=env, tensorboard_log=tb)
    else:
        model = make_model(algo, env, seed=seed, tensorboard_log=tb, **(hyper or {}))
    # only once env and model are built: a bad learner, opponent or algorithm writes nothing
    out.mkdir(parents=True, exist_ok=True)
    every = int(eval_every or max(steps // 5, 1))
    history: list[dict[str, Any]] = []
    csv_path = out / "metrics.csv"
    meta = {**env.meta(), "algo": algo, "seed": seed, "opponents": str(opponents)}
    t0 = time.perf_counter()

    def evaluate(tag: str) -> ProfileMetrics:
        met = evaluate_learner(env, model, contexts)
        row = {
            "steps": int(model.num_timesteps),
            "seconds": time.perf_counter() - t0,
            **_row(met, env),
        }
        history.append(row)
        _append_csv(csv_path, row)
        save_model(model, out / "checkpoint.zip", meta)
        if console is not None:
            from rich.markup import escape

            console.log(escape(_line(row)))
        return met

    class _Eval(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next = every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                met = evaluate("periodic")
                for k, v in _row(met, env).items():
                    if isinstance(v, int | float):
                        self.logger.record(f"mechgym/{k}", v)
                self.next += every
            return True

    if csv_path.exists() and not resume:
        csv_path.unlink()
    from mechgym.progress import sb3_callback

    bar = [sb3_callback(steps, f"train {env.mech_name}", progress_bar)] if progress else []
    model.learn(
        steps,
        callback=[_Eval(), *bar],  # mechgym's one progress-bar style, not SB3's own
        reset_num_timesteps=not resume,
        tb_log_name=f"learner_{group_label(env.group)}",
    )
    final = (
        evaluate("final") if not history or history[-1]["steps"] != model.num_timesteps else None
    )
    if final is None:
        final = evaluate_learner(env, model, contexts)
    ref = evaluate_reference(env, contexts)
    path = save_model(model, out / "model.zip", meta)
    report = {
        "mechanism": env.mech_name,
        "learner": list(env.group),
        "algo": algo,
        "encoding": encoding,
        "n_envs": n_envs,
        "steps": int(model.num_timesteps),
        "seed": seed,
        "opponents": str(opponents),
        "learn_phases": list(env.learn_phases),
        "eval_contexts": len(contexts),
        "wall_seconds": time.perf_counter() - t0,
        "torch_threads": threads,
        "final": final.to_json(),
        "reference": ref.to_json(),
        "history": history,
        "model": str(path),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    if console is not None:
        print_report(report, console)
    return report


def _row(met: ProfileMetrics, env: LearnerEnv) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for ph, v in met.agreement.items():
        row[f"agreement_{ph}"] = v
    for ph, v in met.bound_satisfied.items():
        row[f"bound_{ph}"] = v
    row["learner_value"] = met.value.get(group_label(env.group))
    row["revenue_ratio"] = met.revenue_ratio
    row["welfare_ratio"] = met.welfare_ratio
    row["guarantee_holds"] = met.guarantee_holds
    row["exploitability"] = met.exploitability.get(group_label(env.group))
    return row


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _line(row: dict[str, Any]) -> str:
    parts = [f"step {row['steps']:,}"]
    for k, v in row.items():
        if k in ("steps", "seconds") or v is None:
            continue
        parts.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")
    return "  ".join(parts)


def print_report(report: dict[str, Any], console: Any) -> None:
    """The final metrics as a rich table: learned vs predicted."""
    from rich.markup import escape
    from rich.table import Table

    f, r = report["final"], report["reference"]
    head = f"{report['mechanism']}: learner {report['learner']} after {report['steps']:,} steps"
    t = Table(title=escape(f"{head} ({report['algo']}, {report['encoding']})"))
    t.add_column("metric")
    t.add_column("learned")
    t.add_column("predicted")

    def num(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    def add(label: str, a: Any, b: Any) -> None:
        t.add_row(escape(label), num(a), num(b))

    for ph in f["agreement"]:
        add(f"agreement [{ph}]", f["agreement"][ph], r["agreement"].get(ph))
    for ph in f["bound_satisfied"]:
        add(f"bound satisfied [{ph}]", f["bound_satisfied"][ph], r["bound_satisfied"].get(ph))
        add(f"bound ratio [{ph}]", f["bound_ratio"][ph], r["bound_ratio"].get(ph))
    for k, v in f["value"].items():
        add(f"E[reward] of {k}", v, r["value"].get(k))
    add(f"E[REV]/{f['revenue_benchmark']}", f["revenue_ratio"], r["revenue_ratio"])
    add("E[SW]/MSW", f["welfare_ratio"], r["welfare_ratio"])
    add(
        f"guarantee holds, share of contexts ({f['guarantee_statement']})",
        f["guarantee_holds"],
        r["guarantee_holds"],
    )
    for k, v in f["exploitability"].items():
        add(f"exploitability of {k}", v, r["exploitability"].get(k))
    console.print(t)
    console.print(f"model: {report['model']}   wall time {report['wall_seconds']:.1f} s")
