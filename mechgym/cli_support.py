"""What the ``mechgym`` command line and the command groups it mounts share: the consoles,
the one-line error printer and the exit on a user error.

Imports run one way: :mod:`mechgym.cli` mounts :mod:`mechgym.training.commands` and
:mod:`mechgym.benchmark.commands`, and all three import this module, which imports none of
them.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from mechgym.envs.engine.errors import MechgymError

__all__ = ["console", "err", "fail", "print_error", "run_guarded"]

#: results on stdout
console = Console()
#: errors and progress on stderr
err = Console(stderr=True)


def print_error(message: str) -> None:
    """Print the CLI's one error line on stderr (every command prints its errors through
    this)."""
    one_line = " ".join(str(message).split())  # a library's message may hold newlines
    err.print(f"[bold red]error:[/] {escape(one_line)}", soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """Print a user error as one line and exit with status ``code`` (2: usage)."""
    print_error(message)
    raise typer.Exit(code)


def run_guarded(fn: Any) -> Any:
    """Call ``fn`` and turn mechgym's typed errors into one-line messages."""
    try:
        return fn()
    except MechgymError as exc:
        fail(str(exc))
