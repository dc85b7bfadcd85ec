"""No lost results: output folders, mechanism names and experiment configs checked before a
command writes anything."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mechgym.envs.engine.errors import ContextFileError, ParameterError


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


def load_converge_config(path: str | Path, **overrides: Any) -> Any:
    """A :class:`~mechgym.training.converge.ConvergeConfig` from a YAML file (keys are its
    fields, e.g. ``experiments/configs/converge_quick.yaml``); ``overrides`` that are not
    ``None`` replace the file's values."""
    from dataclasses import fields

    import yaml
    from mechgym.envs.model.limits import read_small_file

    from .converge import ConvergeConfig

    source = str(path)
    try:
        text = read_small_file(path, "config file").decode("utf-8")
    except FileNotFoundError:
        raise ContextFileError(source, "file", "no such file") from None
    except (OSError, ValueError) as exc:
        raise ContextFileError(source, "file", str(exc)) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ContextFileError(source, "yaml", f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ContextFileError(source, "(top level)", "must be a mapping of settings")
    known = {f.name for f in fields(ConvergeConfig)}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ContextFileError(
            source, ", ".join(unknown), f"unknown keys; allowed: {', '.join(sorted(known))}"
        )
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "mechanisms" in data:
        mechs = data["mechanisms"]
        data["mechanisms"] = (mechs,) if isinstance(mechs, str) else tuple(mechs)
    try:
        return ConvergeConfig(**data)
    except TypeError as exc:
        raise ContextFileError(source, "(settings)", str(exc)) from None
