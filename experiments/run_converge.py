"""Run the convergence experiment from a YAML config (see configs/).

    python experiments/run_converge.py experiments/configs/converge_default.yaml [--out DIR]

Equivalent to ``mechgym converge --config FILE``; keys are the fields of
:class:`mechgym.training.converge.ConvergeConfig`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mechgym.envs.engine.errors import MechgymError
from mechgym.training.converge import load_converge_config, run_converge
from rich.console import Console


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--out", default=None)
    ap.add_argument("--overwrite", action="store_true", default=None)
    args = ap.parse_args()
    try:
        cfg = load_converge_config(args.config, out=args.out, overwrite=args.overwrite)
        run_converge(cfg, console=Console())
    except MechgymError as exc:  # one line, no traceback
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
