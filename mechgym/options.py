"""Command-line options shared by several ``mechgym`` commands."""

from __future__ import annotations

from typing import Annotated

import typer

TorchThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--torch-threads",
        help="Torch CPU threads per learner process (default: $MECHGYM_TORCH_THREADS, else 1).",
        show_default=False,
    ),
]
ProgressOpt = Annotated[
    bool,
    typer.Option("--progress/--no-progress", help="Show a progress bar (stderr, terminals only)."),
]
