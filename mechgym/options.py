"""Command-line options shared by several ``mechgym`` commands, and the checks of options
that run before a command does anything.

Counts and budgets are checked against :data:`mechgym.envs.model.limits.COUNT_LIMITS`; an
option that has no effect without another one (``evaluate --contexts`` without
``--generate``) is refused with a hint rather than silently ignored. Both raise
:class:`~mechgym.envs.engine.errors.ParameterError`, which the CLI prints as one line.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.model.limits import check_count

__all__ = [
    "AddressOpt",
    "BackendOpt",
    "NumEnvRunnersOpt",
    "ProgressOpt",
    "TorchThreadsOpt",
    "check_counts",
    "given",
    "refuse_unless",
]

TorchThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--torch-threads",
        help="Torch CPU threads per learner process (default: $MECHGYM_TORCH_THREADS, else 1).",
        show_default=False,
    ),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend", help="sb3 (stable-baselines3) or rllib (Ray RLlib, the rllib extra)."
    ),
]
NumEnvRunnersOpt = Annotated[
    int | None,
    typer.Option(
        "--num-env-runners",
        min=0,
        help="rllib: sampling processes (default: sized to the Ray cluster's CPUs).",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="rllib: an existing Ray cluster, e.g. 127.0.0.1:6379."),
]
ProgressOpt = Annotated[
    bool,
    typer.Option("--progress/--no-progress", help="Show a progress bar (stderr, terminals only)."),
]


def given(ctx: Any, name: str) -> bool:
    """Whether the option of parameter ``name`` was typed on the command line (not its
    default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def check_counts(**values: int | None) -> None:
    """Check every count (``None``: not set) against its stated range; keyword names are the
    options' parameter names (``n_envs`` for ``--n-envs``)."""
    for name, value in values.items():
        if value is not None:
            check_count(value, "--" + name.replace("_", "-"))


def refuse_unless(ctx: Any, names: list[str], condition: bool, hint: str) -> None:
    """Refuse the options ``names`` (parameter names) that were typed on the command line
    when ``condition`` does not hold: they would have no effect.

    Raises
    ------
    ParameterError
        Naming the first such option: "has no effect {hint}", e.g. ``hint="without
        --generate"``.
    """
    if condition:
        return
    for name in names:
        if given(ctx, name):
            raise ParameterError("--" + name.replace("_", "-"), f"has no effect {hint}")
