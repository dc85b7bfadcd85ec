"""RLlib sampling throughput per env runner (README "At scale"): one exact episode at a time
against the vectorised env over the batched path, on M1, M3 and M6.

Run in the RLlib virtualenv: ``.venv-rllib/bin/python experiments/rllib_throughput.py``;
prints the README's table and writes the figures as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os

from mechgym.integrations.rllib import sampling_throughput
from mechgym.machine import machine

MECHANISMS = {
    "best_belief": "best_belief (M1)",
    "knowledge_benchmark": "knowledge_benchmark (M3)",
    "budget_balanced_market": "budget_balanced_market (M6)",
}
#: (column, batched, episodes per env step, agent steps timed)
RUNS = (
    ("one exact episode", False, 1, 512),
    ("vectorised, 64 episodes", True, 64, 4096),
    ("vectorised, 256 episodes", True, 256, 8192),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/rllib_throughput.json")
    args = ap.parse_args()
    figures: dict[str, dict[str, dict]] = {}
    rows = [
        "| mechanism | " + " | ".join(r[0] for r in RUNS) + " |",
        "| --- |" + " ---: |" * len(RUNS),
    ]
    for mech, label in MECHANISMS.items():
        figures[mech] = {}
        cells = []
        for column, batched, envs, steps in RUNS:
            r = sampling_throughput(mech, batched=batched, num_envs=envs, agent_steps=steps)
            figures[mech][column] = r
            cells.append(f"{r['agent_steps_per_second']:,.0f} ({r['episodes_per_second']:,.0f})")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    print("\n".join(rows))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump({"machine": machine(), "figures": figures}, fh, indent=2)


if __name__ == "__main__":
    main()
