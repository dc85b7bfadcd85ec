"""No lost results: output folders and mechanism names checked before a command writes
anything (experiment configs are read by :func:`mechgym.training.converge.load_converge_config`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

from mechgym.envs.engine.errors import ParameterError


def check_mechanism_names(names: Iterable[str]) -> None:
    """Raise a :class:`ParameterError` for a name that is not in the catalogue, with the
    closest known name (``best_beleif`` -> ``best_belief``)."""
    from mechgym.envs.pettingzoo.registry import CATALOGUE

    for name in names:
        if name not in CATALOGUE:
            close = difflib.get_close_matches(name, list(CATALOGUE), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(CATALOGUE)}"
            raise ParameterError("mechanism", f"unknown mechanism '{name}'; {hint}")


def refuse_overwrite(out: str | Path, names: Sequence[str], overwrite: bool) -> Path:
    """Make sure writing ``names`` into ``out`` loses nothing.

    Returns ``out`` as a path. Raises a :class:`ParameterError` when one of ``names`` already
    exists there and ``overwrite`` is false, so that earlier results are never replaced
    silently.
    """
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ParameterError("--out", f"{p} exists and is not a folder")
    if not overwrite:
        found = [n for n in names if (p / n).exists()]
        if found:
            raise ParameterError(
                "--out",
                f"{p} already holds results ({', '.join(found)}); pass --overwrite to replace "
                "them or choose another --out",
            )
    return p
