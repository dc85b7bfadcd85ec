"""The ``mechgym`` command line: list, evaluate, play, bench (+ train, converge).

Errors that users can fix (bad files, unknown names, bad constants, counts out of range,
options that need another option, values click cannot parse) are printed as one line naming
the problem, with exit code 2, before anything is written; no traceback.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from typing import Annotated, Any

import numpy as np
import typer
import typer.core
from rich.markup import escape
from rich.table import Table

from mechgym.cli_support import console, err, fail, print_error, run_guarded
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.model.limits import MAX_EPISODES, check_seed
from mechgym.options import ProgressOpt, TorchThreadsOpt


class OneLineErrors(typer.core.TyperGroup):
    """A command group whose usage errors (a value click cannot parse, an unknown option, a
    missing argument) are printed as one line, like mechgym's own errors, instead of typer's
    boxed panel."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:  # typer >= 0.25 vendors click
            from typer._click.exceptions import ClickException, NoArgsIsHelpError
        except ImportError:
            from click.exceptions import ClickException, NoArgsIsHelpError
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # the help is already printed
            rv = exc.exit_code
        except ClickException as exc:
            if not standalone_mode:
                raise
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            print_error(" ".join(exc.format_message().split()).rstrip(".") + hint)
            sys.exit(exc.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            print_error("aborted")
            sys.exit(1)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    name="mechgym",
    help="Resilient mechanisms (Chen–Micali) as multi-agent RL environments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ExampleOpt = Annotated[str | None, typer.Option("--example", help="A built-in example context.")]
ContextOpt = Annotated[str | None, typer.Option("--context", help="A context file (JSON or YAML).")]
GenerateOpt = Annotated[
    str | None,
    typer.Option(
        "--generate", help="A generator spec, e.g. 'uniform:n=3,m=2,cap=20,belief=noisy'."
    ),
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="A mechanism constant, e.g. eps=1/20 (repeatable)."),
]
AgentsOpt = Annotated[
    str,
    typer.Option(
        "--agents",
        help="'predicted', a deviation name, 'random', or one name per player separated by commas.",
    ),
]


#: the longest throughput run ``bench --seconds`` takes (it runs several)
MAX_BENCH_SECONDS = 600.0


# -- shared plumbing ----------------------------------------------------------------------


def parse_params(params: list[str] | None) -> dict[str, str]:
    """``["eps=1/20"]`` -> ``{"eps": "1/20"}``."""
    out: dict[str, str] = {}
    for p in params or []:
        if "=" not in p:
            raise ParameterError(p, "write mechanism constants as NAME=VALUE, e.g. eps=1/20")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def load_source(
    example: str | None, context: str | None, generate: str | None, kind: str = "auction"
) -> tuple[Any, Any]:
    """Return ``(context, generator)``, exactly one of them set; with no source, the default
    example of the mechanism's context ``kind``."""
    given = [x for x in (example, context, generate) if x is not None]
    if len(given) > 1:
        raise ParameterError("--example/--context/--generate", "give only one of them")
    if context is not None:
        from mechgym.envs.model.contextfile import load_context

        return load_context(context), None
    if generate is not None:
        from mechgym.envs.model.generators import make_generator

        return None, make_generator(generate)
    from mechgym.envs.model.examples import DEFAULT_EXAMPLE
    from mechgym.envs.model.examples import example as load_example

    return load_example(example or DEFAULT_EXAMPLE[kind]), None


def agent_names(agents: str, n: int) -> list[str]:
    """One agent name per player from an ``--agents`` spec (one name for all, or ``n``)."""
    names = [a.strip() for a in agents.split(",")]
    if len(names) == 1:
        names = names * n
    if len(names) != n:
        raise ParameterError(
            "--agents", f"give one name or {n} names (one per player), got {len(names)}"
        )
    return names


def make_profile(name: str, ctx: Any, agents: str, rng: np.random.Generator) -> dict[int, Any]:
    """Policies per player from an ``--agents`` spec."""
    from mechgym.envs.pettingzoo.registry import entry

    scripted = entry(name).load_agents()
    names = agent_names(agents, ctx.n)
    cache: dict[str, Any] = {}
    profile = {}
    for i, a in enumerate(names):
        if a not in cache:
            if a == "predicted":
                cache[a] = scripted.predicted(ctx)
            elif a in scripted.deviations:
                cache[a] = scripted.deviations[a](ctx, rng)
            else:
                known = ", ".join(["predicted", *scripted.deviations])
                raise ParameterError("--agents", f"unknown agent '{a}' for {name}; known: {known}")
        profile[i] = cache[a]
    return profile


def num(x: Fraction | int) -> float:
    """A float for JSON; exact values are reported beside as strings."""
    return float(x)


def exact_report(mech: Any, ctx: Any, profile: dict[int, Any]) -> dict[str, Any]:
    """Exact expectations of a profile, the benchmarks and the guarantee."""
    from mechgym.envs.engine.game import evaluate_exact

    ev = evaluate_exact(mech, ctx, profile)
    g = mech.guarantee(ctx, ev)
    return {
        "mechanism": mech.name,
        "params": mech.params(),
        "context": ctx.describe(),
        "exact": True,
        "expected_revenue": num(ev.expected_revenue),
        "expected_revenue_exact": str(ev.expected_revenue),
        "expected_welfare": num(ev.expected_welfare),
        "expected_welfare_exact": str(ev.expected_welfare),
        "expected_utilities": [num(u) for u in ev.expected_utilities],
        "expected_utilities_exact": [str(u) for u in ev.expected_utilities],
        "outcomes": len(ev.outcomes),
        "benchmarks": mech.benchmarks(ctx),
        "guarantee": g.to_json() if g is not None else None,
    }


def sampled_report(
    mech: Any,
    ctx: Any,
    profile: dict[int, Any],
    episodes: int,
    rng: np.random.Generator,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Sample episodes (chance from ``rng``) with a progress bar; means with standard errors,
    and the guarantee judged with a 95% interval (:mod:`mechgym.sampled`)."""
    from mechgym.envs.engine.game import play
    from mechgym.progress import progress
    from mechgym.sampled import sampled_guarantee, stderr

    outcomes = []
    bar = progress(
        range(episodes), desc=f"{mech.name} episodes", unit="ep", disable=not show_progress
    )
    for _ in bar:
        outcome, _ = play(mech, ctx, profile, rng)
        outcomes.append(outcome)
    revs = [float(o.revenue) for o in outcomes]
    sws = [float(ctx.welfare(o)) for o in outcomes]
    u = np.array([[float(x) for x in ctx.utilities(o)] for o in outcomes])
    return {
        "mechanism": mech.name,
        "params": mech.params(),
        "context": ctx.describe(),
        "exact": False,
        "episodes": episodes,
        "expected_revenue": float(np.mean(revs)),
        "revenue_stderr": stderr(revs),
        "expected_revenue_stderr": stderr(revs),  # the names --batched uses
        "expected_welfare": float(np.mean(sws)),
        "expected_welfare_stderr": stderr(sws),
        "expected_utilities": u.mean(axis=0).tolist(),
        "expected_utilities_stderr": [stderr(list(col)) for col in u.T],
        "benchmarks": mech.benchmarks(ctx),
        "guarantee": sampled_guarantee(mech, ctx, outcomes),
    }


# -- commands -------------------------------------------------------------------------------


@app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the mechanisms, their env ids and guarantees."""
    from mechgym.envs.model.examples import EXAMPLES
    from mechgym.envs.pettingzoo.registry import available

    rows = [
        {
            "name": e.name,
            "env_id": e.env_id,
            "seed": e.seed,
            "summary": e.summary,
            "parallel": bool(e.mechanism_class().simultaneous_only),
        }
        for e in available()
    ]
    if as_json:
        print(json.dumps({"mechanisms": rows, "examples": sorted(EXAMPLES)}, indent=2))
        return
    from rich import box

    table = Table(title="mechgym mechanisms", box=box.SIMPLE_HEAD)
    for col, key in (("name", "name"), ("env id", "env_id")):
        # ids are copied from here: never cut or wrapped, whatever the terminal's width
        table.add_column(col, no_wrap=True, min_width=max(len(r[key]) for r in rows))
    table.add_column("paper", overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["env_id"], r["seed"])
    console.print(table)
    for r in rows:
        kind = "AEC and parallel envs" if r["parallel"] else "AEC env"
        console.print(f"[bold]{r['name']}[/] ({kind}): {escape(r['summary'])}")
    console.print(f"examples: {', '.join(sorted(EXAMPLES))}")


@app.command()
def evaluate(
    cli: typer.Context,
    mechanism: Annotated[str, typer.Argument(help="Mechanism name, e.g. best_belief.")],
    example: ExampleOpt = None,
    context: ContextOpt = None,
    generate: GenerateOpt = None,
    agents: AgentsOpt = "predicted",
    exact: Annotated[bool, typer.Option("--exact", help="Enumerate chance exactly.")] = False,
    batched: Annotated[
        bool, typer.Option("--batched", help="Sample on the batched path (batched agents).")
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Episodes per batch with --batched.")
    ] = 4096,
    episodes: Annotated[int, typer.Option("--episodes", help="Sampled episodes.")] = 1000,
    contexts: Annotated[
        int, typer.Option("--contexts", help="Contexts drawn with --generate.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
    param: ParamOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    show_progress: ProgressOpt = True,
) -> None:
    """Expected revenue, welfare and utilities of a profile, against the theorem's guarantee."""

    def go() -> None:
        from mechgym.envs.pettingzoo.envmodule import build_mechanism
        from mechgym.envs.pettingzoo.registry import entry
        from mechgym.options import check_counts, refuse_unless

        check_counts(episodes=episodes, contexts=contexts, batch_size=batch_size)
        check_seed(seed, "--seed")
        if batched and exact:
            raise ParameterError("--exact/--batched", "give only one of them")
        refuse_unless(
            cli, ["contexts"], generate is not None, "without --generate (contexts it draws)"
        )
        refuse_unless(cli, ["batch_size"], batched, "without --batched")
        refuse_unless(cli, ["episodes"], not exact, "with --exact (nothing is sampled)")
        if not batched and not exact and episodes > MAX_EPISODES:
            # the sampled path keeps every outcome; --batched streams larger runs
            raise ParameterError(
                "--episodes", f"at most {MAX_EPISODES} without --batched, got {episodes}"
            )
        e = entry(mechanism)
        mech = build_mechanism(e.mechanism_class(), parse_params(param))
        ctx0, gen = load_source(example, context, generate, e.mechanism_class().context_kind)
        rng = np.random.default_rng(check_seed(seed, "--seed"))
        if batched:
            from mechgym.batched_eval import batched_reports, pooled_stderr

            src = ctx0 if gen is None else gen
            reports = batched_reports(
                mech, src, agents, episodes, contexts, rng, batch_size, progress=show_progress
            )
            for report in reports:
                report["agents"] = agent_names(agents, int(src.n))
            out = reports[0] if len(reports) == 1 else summarize(reports)
            if len(reports) > 1:
                out["batched"] = True
                for key in ("expected_revenue", "expected_welfare"):
                    out[f"mean_{key}_stderr"] = pooled_stderr(reports, key)
            if as_json:
                print(json.dumps(out, indent=2))
            else:
                show_report(out)
            return
        ctxs = [ctx0] if gen is None else [gen.sample(rng) for _ in range(contexts)]
        reports = []
        for ctx in ctxs:
            profile = make_profile(e.name, ctx, agents, rng)
            if exact:
                report = exact_report(mech, ctx, profile)
            else:
                report = sampled_report(mech, ctx, profile, episodes, rng, show_progress)
            report["agents"] = agent_names(agents, ctx.n)  # the profile, one name per player
            reports.append(report)
        out = reports[0] if len(reports) == 1 else summarize(reports)
        if len(reports) > 1 and not exact:
            from mechgym.batched_eval import pooled_stderr

            for key in ("expected_revenue", "expected_welfare"):
                out[f"mean_{key}_stderr"] = pooled_stderr(reports, key)
        if as_json:
            print(json.dumps(out, indent=2))
        else:
            show_report(out)

    run_guarded(go)


def summarize(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-context reports."""
    gs = [r["guarantee"] for r in reports if r.get("guarantee")]
    slack = [g["value"] - g["bound"] for g in gs]
    return {
        "mechanism": reports[0]["mechanism"],
        "contexts": len(reports),
        "exact": reports[0]["exact"],
        "guarantee_statement": gs[0]["statement"] if gs else None,
        "guarantee_holds": bool(gs) and all(bool(g["holds"]) for g in gs),
        "guarantee_holds_contexts": sum(bool(g["holds"]) for g in gs),
        "guarantee_min_slack": min(slack) if slack else None,
        "mean_expected_revenue": float(np.mean([r["expected_revenue"] for r in reports])),
        "mean_expected_welfare": float(np.mean([r["expected_welfare"] for r in reports])),
        "results": reports,
    }


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def show_report(out: dict[str, Any]) -> None:
    """Human-readable report; sampled figures carry their standard errors (± one s.e.)."""
    if "results" in out:
        console.print(
            f"[bold]{out['mechanism']}[/]: {out['contexts']} contexts, guarantee "
            f"'{escape(str(out['guarantee_statement']))}' holds on "
            f"{out['guarantee_holds_contexts']} of {out['contexts']}, "
            f"min slack {_g(out['guarantee_min_slack'])}"
        )

        def mean(key: str) -> str:
            se = out.get(f"mean_{key}_stderr")
            return f"{out[f'mean_{key}']:.4f}" + ("" if se is None else f" ± {se:.2g}")

        console.print(
            escape(f"mean E[REV] = {mean('expected_revenue')}, ")
            + escape(f"mean E[SW] = {mean('expected_welfare')}")
        )
        return
    how = "exact" if out["exact"] else f"sampled, {out['episodes']:,} episodes, ± 1 s.e."
    table = Table(title=f"{out['mechanism']} ({how})")
    table.add_column("quantity")
    table.add_column("value", overflow="fold")

    def pm(x: float, se: float | None) -> str:
        return f"{x:.6g}" + ("" if se is None else f" ± {se:.2g}")

    table.add_row(escape("E[REV]"), pm(out["expected_revenue"], out.get("expected_revenue_stderr")))
    table.add_row(escape("E[SW]"), pm(out["expected_welfare"], out.get("expected_welfare_stderr")))
    ses = out.get("expected_utilities_stderr") or [None] * len(out["expected_utilities"])
    table.add_row(
        escape("E[u_i]"),
        ", ".join(pm(u, se) for u, se in zip(out["expected_utilities"], ses, strict=True)),
    )
    if out.get("agents"):
        table.add_row("agents", escape(", ".join(out["agents"])))
    for k, v in out["benchmarks"].items():
        table.add_row(escape(k), escape(str(v)))
    g = out.get("guarantee")
    if g:
        from mechgym.sampled import guarantee_line

        colour = "green" if g["holds"] else "red"
        table.add_row("guarantee", f"[{colour}]{escape(guarantee_line(g))}[/]")
    console.print(table)


@app.command()
def play(
    mechanism: Annotated[str, typer.Argument(help="Mechanism name, e.g. best_belief.")],
    example: ExampleOpt = None,
    context: ContextOpt = None,
    generate: GenerateOpt = None,
    agents: AgentsOpt = "predicted",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    param: ParamOpt = None,
) -> None:
    """Play one episode through the PettingZoo env and print its transcript."""

    def go() -> None:
        from mechgym.envs.pettingzoo.registry import entry

        e = entry(mechanism)
        ctx, gen = load_source(example, context, generate, e.mechanism_class().context_kind)
        rng = np.random.default_rng(check_seed(seed, "--seed"))
        if gen is not None:
            ctx = gen.sample(rng)
        env = e.load_env_module().raw_env(context=ctx, seed=seed, **parse_params(param))
        env.reset(seed=seed)
        profile = make_profile(e.name, ctx, agents, rng)
        for agent in env.agent_iter():
            _, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            i = int(agent.split("_")[1])
            env.step(profile[i].act(env.mechanism, ctx, env.game_state, i))
        console.print(f"[bold]{e.name}[/] on {ctx.name or 'context'} (seed {seed})")
        console.print(env.transcript(), markup=False, highlight=False)
        utils = ctx.utilities(env.outcome)
        console.print(
            f"revenue {float(env.outcome.revenue):.6g}, welfare {ctx.welfare(env.outcome)}"
        )
        console.print("utilities " + ", ".join(f"{float(u):.6g}" for u in utils))

    run_guarded(go)


@app.command()
def bench(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    seconds: Annotated[float, typer.Option("--seconds", help="Seconds per throughput run.")] = 1.5,
    training: Annotated[bool, typer.Option(help="Also time the env's share of a PPO run.")] = True,
    quick: Annotated[
        bool, typer.Option("--quick", help="Every key, measured briefly (no training run).")
    ] = False,
    torch_threads: TorchThreadsOpt = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="A git revision of this checkout (e.g. a tag or hash) whose env throughput "
            "and batched-rules figures are measured in the same run, with ratios.",
        ),
    ] = None,
    show_progress: ProgressOpt = True,
) -> None:
    """Env throughput against PettingZoo's rps_v2, batched rules' decisions per second, DP
    against MILP, env share of training; with --baseline, an earlier revision beside."""
    from mechgym.bench import run_bench

    if not 0 < seconds <= MAX_BENCH_SECONDS:  # also refuses NaN
        fail(f"parameter --seconds: must lie in (0, {MAX_BENCH_SECONDS}], got {seconds}")

    def go() -> Any:
        threads = None
        if training and not quick:
            try:
                from mechgym.training.algos import torch_threads as resolve_threads
            except ImportError:  # no 'train' extra: run_bench reports the run as skipped
                pass
            else:
                threads = resolve_threads(torch_threads, "--torch-threads")
        if baseline is not None:
            from mechgym.bench_baseline import checkout_root, resolve_revision

            resolve_revision(checkout_root(), baseline)  # refuse a bad revision before timing
        out = run_bench(
            seconds=seconds,
            training=training,
            console=None if as_json else err,
            quick=quick,
            progress=show_progress,
            threads=threads,
        )
        if baseline is not None:
            from mechgym.bench_baseline import compare, measure_baseline

            if not as_json:
                err.print(f"[dim]building and measuring the baseline {baseline} ...[/]")
            out["baseline"] = measure_baseline(baseline, seconds, quick)
            out["versus_baseline"] = compare(out, out["baseline"])
        return out

    result = run_guarded(go)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        from mechgym.bench import show_bench

        show_bench(result, console)


def _mount_training() -> None:
    try:
        from mechgym.training.commands import add_commands
    except ImportError:  # the training package is optional at import time
        return
    add_commands(app)


#: the optional dependencies of each extra, by the module name a missing one raises
EXTRAS = {
    "torch": "train",
    "stable_baselines3": "train",
    "sb3_contrib": "train",
    "tensorboard": "train",
    "ray": "rllib",
    "pygame": "bench",
}


def missing_extra_hint(exc: ModuleNotFoundError) -> str | None:
    """A one-line hint naming the extra that provides a missing module, or ``None``."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return (
        f"this command needs the '{extra}' extra ({top} is not installed): "
        f"pip install -e '.[{extra}]'"
    )


_mount_training()


def _mount_benchmark() -> None:
    from mechgym.benchmark.commands import add_benchmark_commands

    add_benchmark_commands(app)


_mount_benchmark()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ModuleNotFoundError as exc:
        hint = missing_extra_hint(exc)
        if hint is None:
            raise
        print_error(hint)
        sys.exit(2)


if __name__ == "__main__":
    main()
