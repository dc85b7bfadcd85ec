"""The record of the machine and the software that produced a result.

Every script and command that writes results (``benchmark run``, the scripts of
``experiments/``) stores :func:`machine` beside them, so that the README can state the
machine behind each figure.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "cpu_model", "git_commit", "machine", "package_versions"]

#: the distributions whose versions a record states (``None`` where not installed)
PACKAGES = (
    "mechgym",
    "numpy",
    "torch",
    "gymnasium",
    "pettingzoo",
    "stable-baselines3",
    "sb3-contrib",
    "torchrl",
    "rliable",
    "ray",
)

#: the repository root when mechgym runs from a checkout (an editable install)
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """The installed version of each distribution, ``None`` for one not installed."""
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(root: Path = SOURCE_ROOT) -> str | None:
    """The short commit of the checkout at ``root``; ``None`` outside a git checkout or
    without git."""
    try:
        run = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = run.stdout.strip()
    return commit if run.returncode == 0 and commit else None


def machine(root: Path = SOURCE_ROOT) -> dict[str, Any]:
    """The machine and the versions behind a result, as a JSON-ready dict.

    Parameters
    ----------
    root : Path
        The checkout whose commit is recorded (default: mechgym's own source folder).

    Returns
    -------
    dict
        ``platform``, ``cpu`` (model name), ``cores`` (logical CPUs), ``python``,
        ``versions`` (distribution -> version or ``None``), ``commit`` (short hash or
        ``None``) and ``load_average`` (1, 5 and 15 minutes, at the call; ``None`` where the
        system has none).
    """
    try:
        load: list[float] | None = list(os.getloadavg())
    except (AttributeError, OSError):  # not offered on every system
        load = None
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": package_versions(),
        "commit": git_commit(root),
        "load_average": load,
    }
