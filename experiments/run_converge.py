"""Run the convergence experiment from a YAML config (see configs/).

    python experiments/run_converge.py experiments/configs/converge_default.yaml [--out DIR]

Equivalent to ``mechgym converge`` with the config's settings; keys are the fields of
:class:`mechgym.training.converge.ConvergeConfig`.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import yaml
from mechgym.training.converge import ConvergeConfig, run_converge
from rich.console import Console


def load_config(path: Path, out: str | None = None) -> ConvergeConfig:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    known = {f.name for f in fields(ConvergeConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemExit(f"{path}: unknown keys {unknown}; allowed: {sorted(known)}")
    if "mechanisms" in data:
        data["mechanisms"] = tuple(data["mechanisms"])
    if out is not None:
        data["out"] = out
    return ConvergeConfig(**data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    run_converge(load_config(args.config, args.out), console=Console())


if __name__ == "__main__":
    main()
