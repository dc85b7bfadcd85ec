"""``mechgym benchmark list | score | run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mechgym.cli_support import fail
from mechgym.options import ProgressOpt, TorchThreadsOpt

#: terminal columns from which ``benchmark list`` shows its wide table
WIDE = 150


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


def add_benchmark_commands(app: typer.Typer) -> None:
    """Mount the ``benchmark`` command group on ``app``."""
    bench = typer.Typer(
        name="benchmark",
        help="Named benchmark tasks with reference scores: list, score, run.",
        no_args_is_help=True,
    )
    app.add_typer(bench, name="benchmark")

    @bench.command("list")
    def list_tasks(
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """The tasks, their focal learners, background and reference scores."""
        from rich import box
        from rich.markup import escape
        from rich.table import Table

        from .scoring import load_reference
        from .tasks import TASKS

        ref = load_reference()
        if as_json:
            rows = [{**t.to_json(), "reference": ref.get(t.id)} for t in TASKS.values()]
            print(json.dumps({"tasks": rows}, indent=2))
            return
        console = _console()
        # the wide layout needs about 150 columns; below, the mechanism (the task id's
        # stem) is left out and the descriptions follow the table, one line each
        wide = console.width >= WIDE
        table = Table(title="mechgym benchmark tasks", box=box.SIMPLE_HEAD, pad_edge=False)
        cols = ["task", "mechanism", "focal", "background"] if wide else ["task", "focal"]
        if not wide:
            cols.append("background")
        for col in cols:
            table.add_column(col, no_wrap=True)
        for col in ("random", "predicted"):
            table.add_column(col, no_wrap=True, justify="right")
        if wide:
            table.add_column("about", overflow="ellipsis", no_wrap=True, max_width=60)
        for t in TASKS.values():
            r = ref.get(t.id, {})
            cells = [t.id, t.mechanism] if wide else [t.id]
            cells += ["+".join(map(str, t.focal)), t.background]
            cells += [
                f"{r.get('random_float', float('nan')):.3f}",
                f"{r.get('predicted_float', float('nan')):.3f}",
            ]
            table.add_row(*cells, *([t.description] if wide else []))
        console.print(table)
        if not wide:
            for t in TASKS.values():
                console.print(f"[bold]{t.id}[/] ({t.mechanism}): {escape(t.description)}")

    @bench.command("score")
    def score_cmd(
        task_id: Annotated[str, typer.Argument(help="Task id, e.g. best-belief-v0.")],
        agents: Annotated[
            str,
            typer.Option("--agents", help="predicted, random, or the path of a saved model."),
        ] = "predicted",
        trust_model: Annotated[
            bool,
            typer.Option("--trust-model", help="Load a model file mechgym did not write."),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Score the focal players' play exactly: raw figures and the normalised score."""
        from mechgym.envs.engine.errors import MechgymError

        from .scoring import (
            focal_return,
            load_reference,
            normalized,
            predicted_policy,
            random_return,
            setup,
        )
        from .tasks import task

        try:
            t = task(task_id)
            s = setup(t)
            ref = load_reference()[t.id]
            if agents == "predicted":
                got = focal_return(s, predicted_policy(s))
            elif agents == "random":
                got = random_return(s)
            else:
                got = focal_return(s, _load(agents, trust_model, t.mechanism, s.spec))
        except MechgymError as exc:
            fail(str(exc))
            return
        result = {
            "task": t.id,
            "agents": agents,
            "focal_return": float(got),
            "focal_return_exact": str(got),
            "random": ref["random_float"],
            "predicted": ref["predicted_float"],
            "normalized": normalized(got, ref),
            "bound": ref["bound"],
        }
        if as_json:
            print(json.dumps(result, indent=2))
        else:
            _console().print(
                f"{t.id}: focal return {result['focal_return']:.4f} "
                f"(random {result['random']:.4f}, predicted {result['predicted']:.4f}) "
                f"→ normalised {result['normalized']:.3f}"
            )

    @bench.command("run")
    def run_cmd(
        task_id: Annotated[str, typer.Argument(help="Task id, e.g. best-belief-v0.")],
        algo: Annotated[
            str,
            typer.Option(
                help="regret_matching, hedge, fictitious_play, maskable_ppo, ppo, a2c or dqn."
            ),
        ] = "regret_matching",
        seeds: Annotated[int, typer.Option(help="Independent runs (1..100).")] = 5,
        quick: Annotated[bool, typer.Option("--quick", help="A small budget, for a try.")] = False,
        out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace results already in --out.")
        ] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the aggregate as JSON.")
        ] = False,
        torch_threads: TorchThreadsOpt = None,
        progress: ProgressOpt = True,
        encoding: Annotated[
            str,
            typer.Option(
                help="Deep learners' encoding: menu, multidiscrete, factored or continuous "
                "(no-regret rules play the menu)."
            ),
        ] = "menu",
    ) -> None:
        """Train the focal learners over seeds; write per-seed and aggregate results."""
        from mechgym.envs.engine.errors import MechgymError
        from mechgym.options import check_counts

        from .run import run_task
        from .tasks import task

        try:
            check_counts(seeds=seeds)
            from mechgym.training.algos import torch_threads as resolve_threads

            threads = resolve_threads(torch_threads, "--torch-threads")
            t = task(task_id)
            folder = out if out is not None else Path("results") / "benchmark" / t.id / algo
            if (folder / "results.json").exists() and not overwrite:
                fail(f"{folder} already holds results; pass --overwrite or another --out")
            summary = run_task(
                t,
                algo,
                seeds=seeds,
                quick=quick,
                out=folder,
                progress=progress,
                console=None if as_json else _console(True),
                torch_threads=threads,
                encoding=encoding,
            )
        except MechgymError as exc:
            fail(str(exc))
            return
        except ImportError as exc:
            fail(f"{exc.name or exc} is missing; install the extra: pip install -e '.[train]'")
            return
        if as_json:
            print(json.dumps(summary, indent=2))
            return
        agg = summary["aggregate"]
        c = _console()
        for key in ("normalized", "focal_return", "nash_conv", "utility_loss", "l2_offer"):
            if key in agg:
                a = agg[key]
                c.print(f"{key}: IQM {a['iqm']:.3f} [95% CI {a['ci_low']:.3f}, {a['ci_high']:.3f}]")
        c.print(f"wrote {folder}/ (results.json, per_seed.csv, aggregate.json/csv, curves.png)")


def _load(path: str, trust: bool, mechanism: str, spec: Any) -> Any:
    from mechgym.training.policies import load_policy

    return load_policy(path, trust=trust or None, mechanism=mechanism, spec=spec)
