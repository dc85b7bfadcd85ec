"""Learned collusion: a coalition learner of players 1 and 2 on the Ausubel–Milgrom example.

    python experiments/coalitions.py [--steps 3000] [--seeds 3] [--out results/coalitions]

On VCG the losers' coalition learns the Ausubel–Milgrom overbid (coalition utility 10 instead
of 0, revenue 0). On the best-belief mechanism M1 the same coalition, trained the same way,
cannot push revenue below the guarantee for the independent player 0: E[REV] >= BB_0/2 - eps,
checked exactly, also for the revenue-minimising coalition strategy within the menu.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import evaluate_exact
from mechgym.envs.model.examples import example
from mechgym.training.algos import configure_torch, make_model
from mechgym.training.learner_env import LearnerEnv
from mechgym.training.metrics import best_response_value
from mechgym.training.outputs import refuse_overwrite
from mechgym.training.policies import LearnedPolicy
from rich.console import Console
from rich.table import Table


def run(mech: str, seed: int, steps: int) -> dict:
    ctx = example("ausubel-milgrom")
    env = LearnerEnv(mech, (1, 2), context=ctx, seed=seed)
    model = make_model("maskable_ppo", env, seed=seed)
    model.learn(steps)
    pred = env.agents.predicted(ctx)
    pol = LearnedPolicy(model, env.builder)
    profile = {0: pred, 1: pol, 2: pol}
    ev = evaluate_exact(env.mech, ctx, profile)
    honest = evaluate_exact(env.mech, ctx, dict.fromkeys(range(3), pred))
    best = best_response_value(env.mech, ctx, profile, (1, 2), env.encoding.options)
    worst_rev = -best_response_value(
        env.mech, ctx, profile, (1, 2), env.encoding.options, objective=lambda c, o: -o.revenue
    )
    g = env.mech.guarantee(ctx, ev)
    return {
        "mechanism": mech,
        "seed": seed,
        "steps": steps,
        "coalition_utility": float(ev.coalition_utility((1, 2))),
        "coalition_utility_truthful": float(honest.coalition_utility((1, 2))),
        "coalition_best_in_menu": float(best),
        "revenue": float(ev.expected_revenue),
        "revenue_truthful": float(honest.expected_revenue),
        "worst_revenue_in_menu": float(worst_rev),
        "guarantee": g.statement,
        "guarantee_bound": float(g.bound),
        "guarantee_holds": g.holds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("results/coalitions"))
    ap.add_argument("--overwrite", action="store_true", help="Replace earlier results in --out.")
    args = ap.parse_args()
    # refuse before training: earlier results are never replaced silently
    try:
        refuse_overwrite(args.out, ("coalitions.json",), args.overwrite)
    except ParameterError as exc:
        raise SystemExit(f"error: {exc}") from None
    configure_torch(1)
    rows = [run(m, s, args.steps) for m in ("vcg", "best_belief") for s in range(args.seeds)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "coalitions.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    t = Table(title="coalition {1,2} learner on ausubel-milgrom (exact)")
    for col in (
        "mech",
        "seed",
        "U(1+2) learned",
        "U truthful",
        "best in menu",
        "E[REV]",
        "guarantee",
    ):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["mechanism"],
            str(r["seed"]),
            f"{r['coalition_utility']:.3f}",
            f"{r['coalition_utility_truthful']:.3f}",
            f"{r['coalition_best_in_menu']:.3f}",
            f"{r['revenue']:.3f}",
            f"{r['guarantee']}: {'holds' if r['guarantee_holds'] else 'FAILS'}"
            f" (bound {r['guarantee_bound']:.2f})",
        )
    Console().print(t)
    Console().print(f"results written to {(args.out / 'coalitions.json').resolve()}")


if __name__ == "__main__":
    main()
