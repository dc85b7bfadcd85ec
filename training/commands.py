"""The ``train`` and ``converge`` commands of the ``mechgym`` CLI.

``mechgym/cli.py`` calls :func:`add_commands` on its Typer app. Heavy imports (torch, SB3)
happen inside the command functions so that ``mechgym --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _fail(exc: Exception) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)  # one line
    raise typer.Exit(code=2)


def add_commands(app: typer.Typer) -> None:
    """Register ``train`` and ``converge`` on ``app``."""

    @app.command("train")
    def train(
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
                help="menu (Discrete menus around the prediction), raw (MultiDiscrete layout), "
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
                min=1,
                help="Episodes per step on the batched path (1: the exact single-episode env).",
            ),
        ] = 64,
    ) -> None:
        """Train one player or coalition against fixed opponents and report exact metrics."""
        from mechgym.envs.engine.errors import MechgymError
        from rich.console import Console

        from .noregret import RULES as NO_REGRET_RULES
        from .noregret import train_no_regret
        from .train import train_learner

        given = [x for x in (context, example, generate) if x is not None]
        if len(given) > 1:
            _fail(ValueError("give at most one of --context, --example, --generate"))
        try:
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

            from .outputs import check_mechanism_names, refuse_overwrite
            from .policies import trusted_models

            check_seed(seed, "--seed")
            check_mechanism_names([mechanism])
            # --resume continues the run in --out; anything else must not replace results
            results = ("model.zip", "metrics.csv", "metrics.json")
            refuse_overwrite(out, results, overwrite or resume is not None)
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
                )
            Console().print(f"results written to {out.resolve()}")
        except MechgymError as exc:
            _fail(exc)

    @app.command("converge")
    def converge(
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
                min=1,
                help="Episodes per step on the batched path (default 64; 1: the exact env).",
            ),
        ] = None,
        encoding: Annotated[
            str | None,
            typer.Option(
                "--encoding",
                help="menu (default), raw, factored or continuous (see train --help).",
            ),
        ] = None,
    ) -> None:
        """Train every player of each mechanism and measure convergence to the predictions."""
        from mechgym.envs.engine.errors import MechgymError
        from rich.console import Console

        from .converge import ConvergeConfig, run_converge

        opts = {
            "seeds": seeds,
            "steps": steps,
            "rounds": rounds,
            "family": family,
            "generator": generate,
            "algo": algo,
            "jobs": jobs,
            "out": str(out) if out is not None else None,
            "tensorboard": tensorboard or None,
            "mechanisms": tuple(mechanisms) if mechanisms else None,
            "overwrite": overwrite or None,
            "n_envs": n_envs,
            "encoding": encoding,
        }
        try:
            if config is not None:
                from .outputs import load_converge_config

                # options given on the command line win over the file
                given = {k: v for k, v in opts.items() if v is not None}
                if quick:
                    given["quick"] = True
                cfg = load_converge_config(config, **given)
            elif quick:
                cfg = ConvergeConfig.quick_config(**opts)
            else:
                cfg = ConvergeConfig(**{k: v for k, v in opts.items() if v is not None})
            run_converge(cfg, console=Console(), progress=progress)
        except MechgymError as exc:
            _fail(exc)
