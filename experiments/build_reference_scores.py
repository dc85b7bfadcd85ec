"""Build ``mechgym/benchmark/reference_scores.json``: exact random and predicted focal returns
and the theorem's bound for every benchmark task.

Run from the repository root: ``python experiments/build_reference_scores.py``. Everything
is exact (chance enumerated, rational arithmetic), so the file does not depend on the machine;
``tests/test_benchmark.py`` recomputes it and compares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mechgym.benchmark.scoring import REFERENCE_FILE, reference
from mechgym.benchmark.tasks import TASKS


def build() -> dict:
    """The reference table of every task."""
    return {
        "about": "exact focal returns of uniformly random menu play and of predicted play, "
        "and the theorem's guarantee under predicted play; built by "
        "experiments/build_reference_scores.py",
        "tasks": [reference(t) for t in TASKS.values()],
    }


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "mechgym" / "benchmark" / REFERENCE_FILE
    table = build()
    out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(table['tasks'])} tasks to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
