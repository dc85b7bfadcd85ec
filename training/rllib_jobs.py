"""The ``train`` and ``converge`` jobs on the RLlib backend (``--backend rllib``).

They write what the SB3 backend writes, with its writers and its exact metrics:

* :func:`train_rllib` — one player learns (RLlib's masked PPO) while the others follow
  ``opponents`` inside the env; exact evaluation every ``eval_every`` learner steps into
  ``metrics.csv``, and ``metrics.json`` with the final and predicted figures; the RLlib
  checkpoint in ``rllib_checkpoint/``.
* :func:`run_rllib_job` — a :func:`~mechgym.training.converge.run_job` for converge: every
  player learns at once (one policy each) on the job's family of contexts, evaluated
  exactly after every round; :func:`~mechgym.training.converge.run_converge` writes
  ``metrics.csv``, ``summary.json`` and the plots as for SB3.

Sampling runs on ``num_env_runners`` Ray processes (sized to the cluster by default), on the
batched path (``n_envs`` episodes per env step) or, with ``n_envs=1``, on the exact env.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mechgym.envs.engine.errors import ParameterError


def load_rllib() -> Any:
    """The RLlib integration module, or a :class:`ParameterError` saying how to install it."""
    try:
        from mechgym.integrations import rllib
    except ImportError as exc:
        raise ParameterError("backend", str(exc)) from None
    return rllib


def _learned_steps(result: dict[str, Any], agents: Sequence[str]) -> int:
    """Agent steps the given agents have sampled so far (RLlib's lifetime counters)."""
    counts = result.get("env_runners", {}).get("num_agent_steps_sampled_lifetime", {}) or {}
    return int(sum(float(counts.get(a, 0)) for a in agents))


def train_rllib(
    mechanism: str,
    learner: Any = 0,
    steps: int = 20_000,
    seed: int = 0,
    opponents: Any = "predicted",
    context: Any = None,
    generator: Any = None,
    out: str | Path = "results/train",
    eval_every: int | None = None,
    eval_contexts: int = 16,
    progress: bool = True,
    console: Any = None,
    n_envs: int = 64,
    num_env_runners: int | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """Train one player with RLlib's masked PPO and report exact metrics (see the module
    docstring); the figures and files are those of :func:`~mechgym.training.train.train_learner`."""
    rllib = load_rllib()
    from mechgym.envs.pettingzoo.aec import agent_name

    from mechgym.progress import progress as progress_bar

    from .learner_env import LearnerEnv
    from .train import (
        _append_csv,
        _line,
        _row,
        evaluate_policy,
        evaluate_reference,
        evaluation_contexts,
        print_report,
    )

    out = Path(out)
    cfg_env = rllib.env_config(
        mechanism, generator, context, None, seed, None, None, opponents
    )  # validates the contexts and sizes the price grid
    # the exact learner env evaluates, as for SB3: same menus, observations and opponents
    env = LearnerEnv(
        mechanism,
        learner,
        opponents=opponents,
        encoding="menu",
        context=context,
        generator=generator,
        seed=seed,
        price_cap=cfg_env["price_cap"],
    )
    if len(env.group) != 1:
        raise ParameterError(
            "learner",
            f"--backend rllib trains one player, not the coalition {list(env.group)}; "
            "use --backend sb3 for a coalition learner",
        )
    (player,) = env.group
    pid = agent_name(player)
    contexts = evaluation_contexts(env, eval_contexts)
    every = int(eval_every or max(steps // 5, 1))
    rllib.connect(address)
    config = rllib.ppo_config(
        mechanism,
        generate=generator,
        example=context,
        seed=seed,
        num_env_runners=num_env_runners,
        train_batch_size=max(min(1024, every), 32),  # an iteration ends near each evaluation
        batched=n_envs > 1,
        num_envs_per_env_runner=n_envs if n_envs > 1 else None,
        learners=[player],
        opponents=opponents,
    )
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "metrics.csv"
    if csv_path.exists():
        csv_path.unlink()
    history: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    algo = config.build_algo()
    try:

        def evaluate(done: int) -> Any:
            policy = rllib.ModulePolicy(
                {pid: algo.get_module(pid)}, {player: pid}, env.encoding, env.setting.context_class
            )
            met = evaluate_policy(env, policy, contexts)
            row = {"steps": done, "seconds": time.perf_counter() - t0, **_row(met, env)}
            history.append(row)
            _append_csv(csv_path, row)
            if console is not None:
                from rich.markup import escape

                console.log(escape(_line(row)))
            return met

        done, next_eval = 0, every
        with progress_bar(
            total=steps, desc=f"train {mechanism} (rllib)", unit="steps", disable=not progress
        ) as bar:
            while done < steps:
                now = _learned_steps(algo.train(), [pid])
                if now <= done:
                    raise ParameterError(
                        "learner", f"player {player} was not asked to decide in an iteration"
                    )
                bar.update(min(now, steps) - min(done, steps))
                done = now
                if done >= next_eval and done < steps:
                    evaluate(done)
                    next_eval = (done // every + 1) * every
        final = evaluate(done)
        checkpoint = algo.save_to_path(str((out / "rllib_checkpoint").resolve()))
    finally:
        algo.stop()
    ref = evaluate_reference(env, contexts)
    report = {
        "mechanism": mechanism,
        "learner": [player],
        "algo": "rllib_ppo",
        "backend": "rllib",
        "encoding": "menu",
        "n_envs": n_envs,
        "num_env_runners": config.num_env_runners,
        "steps": done,
        "seed": seed,
        "opponents": str(opponents),
        "learn_phases": list(env.learn_phases),
        "eval_contexts": len(contexts),
        "wall_seconds": time.perf_counter() - t0,
        "final": final.to_json(),
        "reference": ref.to_json(),
        "history": history,
        "model": str(checkpoint),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    if console is not None:
        print_report(report, console)
    return report


def run_rllib_job(mech: str, seed: int, cfg: Any, events: Any = None) -> dict[str, Any]:
    """One converge job on RLlib: every player learns at once, ``cfg.steps`` decisions per
    player per round, evaluated exactly after every round (and before the first)."""
    rllib = load_rllib()
    from mechgym.envs.pettingzoo.aec import agent_name
    from mechgym.envs.pettingzoo.registry import entry

    from .converge import (
        _emit,
        eval_family_contexts,
        evaluate_round,
        family_contexts,
        job_result,
    )
    from .encodings import MenuEncoding
    from .learner_env import learner_setting

    if cfg.encoding != "menu" or cfg.algo != "maskable_ppo" or cfg.scheme != "independent":
        raise ParameterError(
            "backend",
            "--backend rllib runs masked PPO on the menu encoding, every player at once "
            f"(got algo={cfg.algo}, encoding={cfg.encoding})",
        )
    t0, c0 = time.perf_counter(), time.process_time()
    _, contexts = family_contexts(mech, cfg)
    _, held_out = eval_family_contexts(mech, cfg)
    rllib.connect(cfg.address)
    config = rllib.ppo_config(
        mech,
        contexts=contexts,
        seed=seed,
        num_env_runners=cfg.num_env_runners,
        train_batch_size=max(min(1024, cfg.steps), 32),
        batched=cfg.n_envs > 1,
        num_envs_per_env_runner=cfg.n_envs if cfg.n_envs > 1 else None,
    )
    price_cap = config.env_config["price_cap"]
    raw = learner_setting(mech, contexts=contexts, price_cap=price_cap)
    agents = entry(mech).load_agents()
    enc = MenuEncoding(mech, raw.mechanism, raw.spec, agents)
    n = raw.spec.n
    groups = [(p,) for p in range(n)]
    names = [agent_name(p) for p in range(n)]
    algo = config.build_algo()
    rows: list[dict[str, Any]] = []
    final: dict[str, dict[str, Any]] = {}
    eval_s = 0.0
    done = 0
    try:
        for r in range(cfg.rounds + 1):
            if r > 0:
                target = r * cfg.steps * n
                while done < target:
                    now = _learned_steps(algo.train(), names)
                    _emit(events, mech, seed, "train", min(now, target) - min(done, target))
                    done = now
                if cfg.save_models:
                    algo.save_to_path(
                        str((Path(cfg.out) / "checkpoints" / mech / f"seed_{seed}").resolve())
                    )
            te = time.perf_counter()
            policy = rllib.ModulePolicy(
                {a: algo.get_module(a) for a in names},
                dict(zip(range(n), names, strict=True)),
                enc,
                raw.context_class,
            )
            rows += evaluate_round(
                (mech, seed, r, done),
                (
                    raw.mechanism,
                    agents,
                    lambda ctx, policy=policy: dict.fromkeys(range(n), policy),
                    groups,
                ),
                enc,
                cfg,
                held_out,
                contexts,
                final,
            )
            eval_s += time.perf_counter() - te
            _emit(events, mech, seed, "eval", r)
    finally:
        algo.stop()
    # CPU seconds: this process only, not the env runners
    return job_result((mech, seed, done), rows, final, groups, (t0, c0, eval_s))
