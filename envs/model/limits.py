"""Stated limits on everything a user can type: context files, generator specs, env
arguments, actions and CLI options.

One place, so that a context file, a generator and an env argument accept exactly the same
sizes. Each limit says why it is what it is:

* amounts (values, prices, bids, reports, caps) are integers of magnitude at most
  :data:`MAX_AMOUNT` = 2**53: exact in float64 (rewards, JSON, HiGHS), and with at most
  :data:`MAX_PLAYERS` of them a sum stays below 2**59, inside the int64 solvers' 2**61;
* :data:`MAX_PLAYERS` players and :data:`MAX_GOODS` goods keep a belief array
  ``(n, n, 2**m)`` at most :data:`MAX_BELIEF_ENTRIES` int64 entries (128 MiB);
* an action mask (int8, one entry per value of every field) holds at most
  :data:`MAX_MASK_SIZE` entries (4 MiB); an action layout whose caps would need more is
  refused wherever it is built (envs, the batched path, learners);
* a context or config file is a regular file of at most :data:`MAX_FILE_BYTES`;
* constants such as ε have numerator and denominator at most :data:`MAX_DENOMINATOR`
  (chance itself is sampled exactly for any rational probability);
* every count, budget and size a command takes (steps, rounds, seeds, contexts, episodes,
  slots, ...) is an integer in the range :data:`COUNT_LIMITS` states for it, checked by
  :func:`check_count` before a command writes anything.
"""

from __future__ import annotations

import math
import numbers
import os
import stat
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from mechgym.envs.engine.errors import ParameterError

__all__ = [
    "COUNT_LIMITS",
    "MAX_AMOUNT",
    "MAX_BELIEF_ENTRIES",
    "MAX_CONTEXTS",
    "MAX_DENOMINATOR",
    "MAX_EPISODES",
    "MAX_FILE_BYTES",
    "MAX_GOODS",
    "MAX_MASK_SIZE",
    "MAX_PLAYERS",
    "MAX_SEED",
    "check_cap",
    "check_count",
    "check_seed",
    "is_amount",
    "read_small_file",
]

MAX_AMOUNT = 1 << 53
MAX_PLAYERS = 64
MAX_GOODS = 12
MAX_BELIEF_ENTRIES = 1 << 24
MAX_MASK_SIZE = 1 << 22
MAX_FILE_BYTES = 16 << 20
MAX_SEED = (1 << 63) - 1
MAX_CONTEXTS = 100_000
#: sampled episodes of one exact-engine evaluation (every outcome is kept for the interval)
MAX_EPISODES = 10_000_000
#: constants such as ε are rationals with numerator and denominator at most this
MAX_DENOMINATOR = 10**30

#: the range ``(lo, hi)`` of every count a command takes, by its name (an option without its
#: dashes, or a config key). Upper ends keep one run's memory bounded (contexts and slots are
#: held in memory at once; per-round curves keep one row per round) and reject typos such as
#: an extra digit group long before they could exhaust a machine.
COUNT_LIMITS: dict[str, tuple[int, int]] = {
    # learner decisions: SB3 keeps counters in int64; 10**9 is days of training on a CPU
    "steps": (1, 10**9),
    "eval-every": (1, 10**9),
    # rounds and iterations each add an evaluation row or a pass over every context
    "rounds": (1, 1_000_000),
    "iterations": (1, 1_000_000),
    # independent runs, each a process or a full training run
    "seeds": (1, 100),
    # contexts drawn and held in memory for exact evaluation
    "family": (1, MAX_CONTEXTS),
    "eval-family": (1, MAX_CONTEXTS),
    "eval-contexts": (1, MAX_CONTEXTS),
    "contexts": (1, MAX_CONTEXTS),
    "episodes": (1, 1 << 40),
    # episodes held at once: (slots, n, layout) int64 buffers of the batched path
    "n-envs": (1, 1 << 16),
    "batch-size": (1, 1 << 20),
    # worker processes (0: one per core)
    "jobs": (0, 1024),
}


def check_count(x: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """A count, budget or size: an integer in ``lo..hi`` (by default the range
    :data:`COUNT_LIMITS` states for ``name``, with or without leading dashes).

    Raises
    ------
    ParameterError
        Naming the option and its range, for booleans, non-integers and integers out of range.
    """
    key = name.lstrip("-").replace("_", "-")
    if lo is None or hi is None:
        dlo, dhi = COUNT_LIMITS[key]
        lo = dlo if lo is None else lo
        hi = dhi if hi is None else hi
    if isinstance(x, float | np.floating) and math.isfinite(x) and float(x).is_integer():
        x = int(x)  # YAML may give 8.0
    if not _is_int(x) or not lo <= int(x) <= hi:
        top = f"{hi:_}" if hi >= 10_000 else str(hi)
        raise ParameterError(name, f"must be an integer in {lo}..{top}, got {x!r}")
    return int(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def check_cap(x: Any, name: str) -> int:
    """An env's ``value_cap`` or ``price_cap``: an integer in ``1..MAX_AMOUNT`` (a string of
    digits, as the CLI's ``--param`` gives, is read as one).

    Raises
    ------
    ParameterError
        For NaN, fractions such as 1.5, booleans, other strings and out-of-range integers.
    """
    if isinstance(x, str) and x.strip().lstrip("+").isdigit() and len(x) < 30:
        x = int(x)  # from the command line (--param value_cap=50)
    if isinstance(x, float | np.floating) and math.isfinite(x) and float(x).is_integer():
        x = int(x)
    if not _is_int(x) or not 1 <= int(x) <= MAX_AMOUNT:
        raise ParameterError(name, f"must be an integer in 1..2**53, got {x!r}")
    return int(x)


def check_seed(x: Any, name: str = "seed") -> int | None:
    """A seed: ``None`` or an integer in ``0..MAX_SEED``."""
    if x is None:
        return None
    if not _is_int(x) or not 0 <= int(x) <= MAX_SEED:
        raise ParameterError(name, f"must be an integer in 0..2**63-1, got {x!r}")
    return int(x)


def is_amount(x: Any) -> bool:
    """Whether ``x`` is an integer or rational of magnitude ≤ 2**53 (denominator ≤ 2**53)."""
    if _is_int(x):
        return abs(int(x)) <= MAX_AMOUNT
    if isinstance(x, numbers.Rational) and not isinstance(x, bool):
        q = Fraction(x)
        return abs(q) <= MAX_AMOUNT and q.denominator <= MAX_AMOUNT
    return False


def read_small_file(path: str | Path, what: str = "file") -> bytes:
    """Read a regular file of at most :data:`MAX_FILE_BYTES` bytes.

    Raises
    ------
    OSError
        As ``open`` does (missing file, permissions).
    ValueError
        With a one-line reason when the path is not a regular file or is too large;
        callers turn it into their typed error.
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory")
    # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"is not a regular {what} (devices, pipes and sockets are refused)")
        if st.st_size > MAX_FILE_BYTES:
            raise ValueError(f"is {st.st_size} bytes; a {what} may hold at most 16 MiB")
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"has more than 16 MiB; a {what} may hold at most 16 MiB")
    return data
