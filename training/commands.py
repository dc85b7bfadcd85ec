"""The ``train`` and ``converge`` commands of the ``mechgym`` CLI.

``mechgym/cli.py`` calls :func:`add_commands` on its Typer app. Heavy imports (torch, SB3)
happen inside the command functions so that ``mechgym --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mechgym.cli_support import fail
from mechgym.options import AddressOpt, BackendOpt, NumEnvRunnersOpt, TorchThreadsOpt


def _fail(exc: Exception, code: int = 2) -> None:
    fail(str(exc), code)


#: ``train`` options the no-regret rules do not use, and those only they use
SB3_ONLY = ["steps", "n_envs", "eval_every", "encoding", "learn_phases", "tensorboard", "resume"]
NO_REGRET_ONLY = ["rounds"]


def add_commands(app: typer.Typer) -> None:
    """Register ``train`` and ``converge`` on ``app``."""

    @app.command("train")
    def train(
        cli: typer.Context,
        mechanism: Annotated[str, typer.Argument(help="Mechanism name, e.g. best_belief, vcg.")],
        learner: Annotated[
            str, typer.Option("--learner", "-l", help="Learning player (0) or coalition (1,2).")
        ] = "0",
        algo: Annotated[
            str,
            typer.Option(
                help="maskable_ppo, ppo, a2c, dqn, or a no-regret rule: regret_matching, "
                "hedge, fictitious_play."
            ),
        ] = "maskable_ppo",
        steps: Annotated[int, typer.Option(help="Training steps (learner decisions).")] = 20_000,
        rounds: Annotated[
            int, typer.Option(help="No-regret rules: rounds over the evaluation contexts.")
        ] = 100,
        seed: Annotated[int, typer.Option(help="Seed of the env, opponents and model.")] = 0,
        opponents: Annotated[
            str, typer.Option(help="predicted, random, a deviation name, or a MODEL_PATH (.zip).")
        ] = "predicted",
        encoding: Annotated[
            str,
            typer.Option(
                help="menu (Discrete menus around the prediction), multidiscrete (the "
                "MultiDiscrete layout; alias raw), "
                "factored (Discrete sub-decisions, prediction-free) or continuous (factored, "
                "amounts as a Box)."
            ),
        ] = "menu",
        context: Annotated[
            Path | None, typer.Option("--context", help="Context file (JSON/YAML).")
        ] = None,
        example: Annotated[
            str | None, typer.Option("--example", help="Named example, e.g. ausubel-milgrom.")
        ] = None,
        generate: Annotated[
            str | None, typer.Option("--generate", help="Generator spec: uniform:n=3,m=2,cap=10.")
        ] = None,
        learn_phases: Annotated[
            str | None, typer.Option("--learn-phases", help="Comma-separated phases to learn.")
        ] = None,
        out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path(
            "results/train"
        ),
        eval_every: Annotated[
            int | None, typer.Option(help="Exact evaluation every N steps (default steps/5).")
        ] = None,
        eval_contexts: Annotated[
            int, typer.Option(help="Evaluation contexts drawn from a generator.")
        ] = 16,
        tensorboard: Annotated[
            bool, typer.Option("--tensorboard", help="Write TensorBoard logs to OUT/tb.")
        ] = False,
        resume: Annotated[
            Path | None, typer.Option("--resume", help="Continue training a saved model.")
        ] = None,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
        ] = True,
        trust_model: Annotated[
            bool,
            typer.Option(
                "--trust-model",
                help="Load --opponents/--resume models mechgym did not write (they can run code).",
            ),
        ] = False,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace earlier results in --out.")
        ] = False,
        n_envs: Annotated[
            int,
            typer.Option(
                "--n-envs",
                help="Episodes per step on the batched path (1: the exact single-episode env).",
            ),
        ] = 64,
        torch_threads: TorchThreadsOpt = None,
        backend: BackendOpt = "sb3",
        num_env_runners: NumEnvRunnersOpt = None,
        address: AddressOpt = None,
    ) -> None:
        """Train one player or coalition against fixed opponents and report exact metrics."""
        from mechgym.envs.engine.errors import MechgymError, ParameterError
        from rich.console import Console

        from mechgym.options import check_counts, refuse_unless

        from .noregret import RULES as NO_REGRET_RULES
        from .noregret import train_no_regret
        from .train import train_learner

        given = [x for x in (context, example, generate) if x is not None]
        if len(given) > 1:
            _fail(ValueError("give at most one of --context, --example, --generate"))
        try:
            check_counts(
                steps=steps,
                rounds=rounds,
                eval_every=eval_every,
                eval_contexts=eval_contexts,
                n_envs=n_envs,
            )
            no_regret = algo in NO_REGRET_RULES
            refuse_unless(
                cli,
                SB3_ONLY,
                not no_regret,
                f"with --algo {algo} (a no-regret rule: it learns over the menus for --rounds)",
            )
            refuse_unless(
                cli, NO_REGRET_ONLY, no_regret, f"with --algo {algo} (it trains for --steps)"
            )
            refuse_unless(
                cli,
                ["eval_contexts"],
                context is None and example is None,
                "with one fixed --context/--example (it counts the contexts --generate draws)",
            )
            model_given = (
                resume is not None or opponents.endswith(".zip") or Path(opponents).exists()
            )
            refuse_unless(
                cli, ["trust_model"], model_given, "without a model file in --opponents or --resume"
            )
            ctx = gen = None
            if context is not None:
                from mechgym.envs.model.contextfile import load_context

                ctx = load_context(context)
            elif example is not None:
                from mechgym.envs.model.examples import example as load_example

                ctx = load_example(example)
            elif generate is not None:
                from mechgym.envs.model.generators import make_generator

                gen = make_generator(generate)
            phases = (
                [p.strip() for p in learn_phases.split(",") if p.strip()] if learn_phases else None
            )
            from mechgym.envs.model.limits import check_seed

            from .algos import torch_threads as resolve_threads
            from .outputs import check_mechanism_names, refuse_overwrite
            from .policies import trusted_models

            threads = resolve_threads(torch_threads, "--torch-threads")
            check_seed(seed, "--seed")
            check_mechanism_names([mechanism])
            # --resume continues the run in --out; anything else must not replace results
            results = ("model.zip", "metrics.csv", "metrics.json")
            refuse_overwrite(out, results, overwrite or resume is not None)
            if backend not in ("sb3", "rllib"):
                raise ParameterError("backend", f"{backend!r} is not one of sb3, rllib")
            if backend == "sb3" and (num_env_runners is not None or address is not None):
                raise ParameterError(
                    "backend", "--num-env-runners and --address need --backend rllib"
                )
            if backend == "rllib":
                from .rllib_jobs import load_rllib, train_rllib

                rllib = load_rllib()
                if algo != "maskable_ppo" or encoding != "menu":
                    raise ParameterError(
                        "backend",
                        f"--backend rllib trains masked PPO on menus, not --algo {algo} "
                        f"--encoding {encoding}",
                    )
                for name, value in (("--learn-phases", learn_phases), ("--resume", resume)):
                    if value is not None:
                        raise ParameterError(
                            "backend", f"{name} is not offered with --backend rllib"
                        )
                rllib.connect(address)
                rllib.size_env_runners(num_env_runners)
                with trusted_models(trust_model):
                    train_rllib(
                        mechanism,
                        learner=learner,
                        steps=steps,
                        seed=seed,
                        opponents=opponents,
                        context=ctx,
                        generator=gen,
                        out=out,
                        eval_every=eval_every,
                        eval_contexts=eval_contexts,
                        progress=progress,
                        console=Console(),
                        n_envs=n_envs,
                        num_env_runners=num_env_runners,
                        address=address,
                    )
                Console().print(f"results written to {out.resolve()}")
                return
            if algo in NO_REGRET_RULES:
                with trusted_models(trust_model):
                    train_no_regret(
                        mechanism,
                        learner=learner,
                        algo=algo,
                        rounds=rounds,
                        seed=seed,
                        opponents=opponents,
                        context=ctx,
                        generator=gen,
                        eval_contexts=eval_contexts,
                        out=out,
                        console=Console(),
                    )
                Console().print(f"results written to {out.resolve()}")
                return
            with trusted_models(trust_model):
                train_learner(
                    mechanism,
                    learner=learner,
                    algo=algo,
                    steps=steps,
                    seed=seed,
                    opponents=opponents,
                    encoding=encoding,
                    context=ctx,
                    generator=gen,
                    learn_phases=phases,
                    out=out,
                    eval_every=eval_every,
                    eval_contexts=eval_contexts,
                    tensorboard=tensorboard,
                    progress=progress,
                    resume=resume,
                    console=Console(),
                    n_envs=n_envs,
                    torch_threads=threads,
                )
            Console().print(f"results written to {out.resolve()}")
        except MechgymError as exc:
            _fail(exc)

    @app.command("converge")
    def converge(
        cli: typer.Context,
        mechanisms: Annotated[
            list[str] | None, typer.Argument(help="Mechanisms (default: best_belief).")
        ] = None,
        quick: Annotated[
            bool, typer.Option("--quick", help="Small run (2 seeds, 3 rounds, 8 contexts).")
        ] = False,
        seeds: Annotated[
            int | None, typer.Option(help="Training seeds (default 4; quick 2).")
        ] = None,
        steps: Annotated[
            int | None, typer.Option(help="Steps per player per round (default 8192; quick 1024).")
        ] = None,
        rounds: Annotated[
            int | None, typer.Option(help="Rounds of alternation (default 10; quick 3).")
        ] = None,
        family: Annotated[
            int | None, typer.Option(help="Contexts in the family (default 32; quick 8).")
        ] = None,
        generate: Annotated[
            str | None, typer.Option("--generate", help="Generator spec of the family.")
        ] = None,
        algo: Annotated[
            str,
            typer.Option(
                help="maskable_ppo, ppo, a2c, dqn, or a no-regret rule: regret_matching, "
                "hedge, fictitious_play."
            ),
        ] = "maskable_ppo",
        jobs: Annotated[
            int, typer.Option(help="Parallel processes (0: one per core, at most one per seed).")
        ] = 0,
        out: Annotated[
            Path | None,
            typer.Option("--out", help="Output directory (default results/converge)."),
        ] = None,
        tensorboard: Annotated[
            bool, typer.Option("--tensorboard", help="Write TensorBoard logs to OUT/tb.")
        ] = False,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
        ] = True,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config", help="A YAML config, e.g. experiments/configs/converge_quick.yaml."
            ),
        ] = None,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace earlier results in --out.")
        ] = False,
        n_envs: Annotated[
            int | None,
            typer.Option(
                "--n-envs",
                help="Episodes per step on the batched path (default 64; 1: the exact env).",
            ),
        ] = None,
        iterations: Annotated[
            int | None,
            typer.Option(help="No-regret rules: iterations over the family per round (default 5)."),
        ] = None,
        init: Annotated[
            str | None,
            typer.Option(
                help="What plays a player before it has trained (round-based schemes; default "
                "predicted), or the profile the batched learners (simultaneous, alternating, "
                "fictitious) imitate before learning "
                "(menu and multidiscrete encodings; default random: no imitation): predicted, "
                "random, or a named deviation."
            ),
        ] = None,
        scheme: Annotated[
            str | None,
            typer.Option(
                help="Learning scheme: independent (default), ibr, selfplay (SB3), or on the "
                "batched path simultaneous (every player learns at once) or alternating (the "
                "players learn in turn against the others' frozen play, as in independent) or "
                "fictitious (the same, against the others' past actors drawn per episode)."
            ),
        ] = None,
        features: Annotated[
            bool | None,
            typer.Option(
                "--features/--no-features",
                help="End observations with the pending-question features (default on).",
            ),
        ] = None,
        encoding: Annotated[
            str | None,
            typer.Option(
                "--encoding",
                help="menu (default), multidiscrete, factored or continuous (see train --help).",
            ),
        ] = None,
        price_levels: Annotated[
            int | None,
            typer.Option(
                "--price-levels",
                help="factored/continuous: amount levels per field (2..256, default 16).",
            ),
        ] = None,
        price_grid: Annotated[
            str | None,
            typer.Option(
                "--price-grid",
                help="factored/continuous: where the amount levels lie: linear (default), "
                "geometric, or own-lower-bounds (the acting player's own lower bounds, its "
                "private information).",
            ),
        ] = None,
        eval_family: Annotated[
            int | None,
            typer.Option(
                "--eval-family", help="Held-out evaluation contexts (default: as --family)."
            ),
        ] = None,
        eval_seed: Annotated[
            int | None,
            typer.Option(
                "--eval-seed",
                help="Seed of the held-out family (default: the training family's seed + 1).",
            ),
        ] = None,
        eval_generate: Annotated[
            str | None,
            typer.Option(
                "--eval-generate",
                help="Generator spec of the held-out family (default: the training one).",
            ),
        ] = None,
        full_space_limit: Annotated[
            int | None,
            typer.Option(
                "--full-space-limit",
                help="After the last round, also search every legal action for each player's "
                "exact best response on the held-out family where no node has more than this "
                "many (e.g. 4096, which covers M1 and VCG at n=3, m=2; default 0: off, the "
                "menus' lower bound only; at most 65536).",
            ),
        ] = None,
        torch_threads: TorchThreadsOpt = None,
        backend: BackendOpt = "sb3",
        num_env_runners: NumEnvRunnersOpt = None,
        address: AddressOpt = None,
    ) -> None:
        """Train every player of each mechanism and measure convergence to the predictions."""
        from mechgym.envs.engine.errors import MechgymError
        from rich.console import Console

        from mechgym.options import check_counts, given, refuse_unless

        from .converge import ConvergeConfig, run_converge
        from .noregret import RULES as NO_REGRET_RULES

        opts = {
            "seeds": seeds,
            "steps": steps,
            "rounds": rounds,
            "family": family,
            "generator": generate,
            # with --config, only what was typed replaces the file's values
            "algo": algo if config is None or given(cli, "algo") else None,
            "jobs": jobs if config is None or given(cli, "jobs") else None,
            "out": str(out) if out is not None else None,
            "tensorboard": tensorboard or None,
            "mechanisms": tuple(mechanisms) if mechanisms else None,
            "overwrite": overwrite or None,
            "n_envs": n_envs,
            "iterations": iterations,
            "init": init,
            "scheme": scheme,
            "features": features,
            "encoding": encoding,
            "price_levels": price_levels,
            "price_grid": price_grid,
            "eval_family": eval_family,
            "eval_family_seed": eval_seed,
            "eval_generator": eval_generate,
            "full_space_limit": full_space_limit,
            "torch_threads": torch_threads,
            "backend": backend if backend != "sb3" else None,
            "num_env_runners": num_env_runners,
            "address": address,
        }
        try:
            from .algos import torch_threads as resolve_threads

            resolve_threads(torch_threads, "--torch-threads")
            check_counts(
                seeds=seeds,
                steps=steps,
                rounds=rounds,
                family=family,
                jobs=jobs,
                n_envs=n_envs,
                iterations=iterations,
                eval_family=eval_family,
            )
            if config is not None:
                from .converge import load_converge_config

                # options given on the command line win over the file
                given = {k: v for k, v in opts.items() if v is not None}
                if quick:
                    given["quick"] = True
                cfg = load_converge_config(config, **given)
            elif quick:
                cfg = ConvergeConfig.quick_config(**opts)
            else:
                cfg = ConvergeConfig(**{k: v for k, v in opts.items() if v is not None})
            # the algorithm may come from --config: judge the options against the one that runs
            no_regret = cfg.algo in NO_REGRET_RULES
            refuse_unless(
                cli,
                ["steps", "n_envs", "tensorboard"],
                not no_regret,
                f"with --algo {cfg.algo} (a no-regret rule: it runs --iterations per round)",
            )
            refuse_unless(
                cli,
                ["iterations"],
                no_regret,
                f"with --algo {cfg.algo} (it trains --steps per round)",
            )
            summary = run_converge(cfg, console=Console(), progress=progress)
        except MechgymError as exc:
            _fail(exc)
        if summary["jobs_ok"] == 0:
            # nothing to show: say why, and exit non-zero (results were not written)
            first = next(
                f"{mech}: {s['reason'].split('; ')[0]}"
                for mech, s in summary["mechanisms"].items()
                if s.get("status") != "ok"
            )
            where = Path(cfg.out).resolve() / "summary.json"
            _fail(
                ValueError(
                    f"converge: no job succeeded ({summary['jobs_failed']} failed, "
                    f"{summary['mechanisms_skipped']} mechanisms skipped), e.g. {first}; "
                    f"details in {where}"
                ),
                code=1,
            )
