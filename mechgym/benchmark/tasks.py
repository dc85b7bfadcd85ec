"""Named, versioned benchmark tasks: a mechanism, contexts, focal learners, background bots.

A task fixes everything a score depends on, as a Melting Pot scenario does:

* the mechanism and its constants;
* the context family (a generator spec string) and the seeds of its evaluation contexts
  (context ``k`` is ``make_generator(spec).sample(default_rng(seed_k))``; training draws
  fresh contexts from the same family);
* the focal roles: the players or the coalition that learn (a coalition is made one
  shared-reward block of the context);
* the background: what every other player plays (predicted play or a named deviation);
* the training budget (environment steps for deep RL, rounds for no-regret dynamics);
* the metrics reported.

The focal return of a profile is the focal group's exact expected reward (chance enumerated)
averaged over the evaluation contexts. The normalised score is
``(learned − random) / (predicted − random)``: 1 is predicted play, 0 is uniformly random
play over the learner's menu.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mechgym.envs.engine.errors import ParameterError

DEFAULT_METRICS = (
    "normalized",
    "focal_return",
    "agreement",
    "bound_satisfied",
    "nash_conv",
    "utility_loss",
    "relative_utility_loss",
    "l2_offer",
)


@dataclass(frozen=True)
class Task:
    """One benchmark task (see the module docstring)."""

    id: str
    mechanism: str
    family: str
    focal: tuple[int, ...]
    background: str = "predicted"
    constants: dict[str, Any] = field(default_factory=dict)
    eval_seeds: tuple[int, ...] = tuple(range(8))
    steps: int = 20_000
    rounds: int = 200
    description: str = ""
    metrics: tuple[str, ...] = DEFAULT_METRICS
    example: str | None = None

    @property
    def coalition(self) -> bool:
        """Whether the focal role is a coalition of several players."""
        return len(self.focal) > 1

    def contexts(self) -> list[Any]:
        """The evaluation contexts, the focal coalition made one shared-reward block."""
        from mechgym.training.learner_env import align_context

        if self.example is not None:
            from mechgym.envs.model.examples import example

            return [align_context(example(self.example), self.focal)]
        from mechgym.envs.model.generators import make_generator

        gen = make_generator(self.family)
        return [
            align_context(gen.sample(np.random.default_rng(s)), self.focal) for s in self.eval_seeds
        ]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["focal"] = list(self.focal)
        out["eval_seeds"] = list(self.eval_seeds)
        out["metrics"] = list(self.metrics)
        return out


_AUCTION = "uniform:n=3,m=2,cap=9,belief=noisy"
_STATES = "states:n=3,m=2,cap=3"
_MARKET = "market:n=3,m=2,k=3"

TASKS: dict[str, Task] = {
    t.id: t
    for t in [
        Task(
            "best-belief-v0",
            "best_belief",
            _AUCTION,
            (0,),
            description="M1: one bidder learns to announce and answer against predicted play",
        ),
        Task(
            "best-belief-wrong-beliefs-v0",
            "best_belief",
            "uniform:n=3,m=2,cap=9,belief=wrong",
            (0,),
            description="M1 with wrong beliefs: the learner's lower bounds may be false",
        ),
        Task(
            "best-belief-coalition-v0",
            "best_belief",
            _AUCTION,
            (0, 1),
            description="M1: a two-player coalition with a shared reward learns one joint policy",
        ),
        Task(
            "normal-form-v0",
            "normal_form",
            _AUCTION,
            (0,),
            description="M2: one simultaneous report and offer against predicted play",
        ),
        Task(
            "vcg-v0",
            "vcg",
            _AUCTION,
            (0,),
            description="VCG: truthful reporting is dominant; one bidder learns against truth",
        ),
        Task(
            "vcg-collusion-v0",
            "vcg",
            "uniform:n=3,m=2,cap=9",
            (1, 2),
            example="ausubel-milgrom",
            description="VCG under the Ausubel-Milgrom coalition: the colluders learn to "
            "overbid and drive revenue to 0",
        ),
        Task(
            "knowledge-benchmark-v0",
            "knowledge_benchmark",
            _AUCTION,
            (0,),
            description="M3: announce a knowledge benchmark and answer against predicted play",
        ),
        Task(
            "knowledge-benchmark-coalition-v0",
            "knowledge_benchmark",
            _AUCTION,
            (0, 1),
            description="M3: a two-player coalition with a shared reward",
        ),
        Task(
            "collusion-leveraging-v0",
            "collusion_leveraging",
            _AUCTION,
            (0,),
            description="M4: alleged coalitions, announcements and answers against predicted play",
        ),
        Task(
            "collusion-leveraging-coalition-v0",
            "collusion_leveraging",
            _AUCTION,
            (0, 1),
            description="M4: a two-player coalition leverages its pooled knowledge",
        ),
        Task(
            "second-price-bundle-v0",
            "second_price_bundle",
            _AUCTION,
            (0,),
            description="Second-price bundle auction: one bidder against predicted bidding",
        ),
        Task(
            "perfect-revenue-v0",
            "perfect_revenue",
            _STATES,
            (0,),
            description="M5: propose, raise and answer against the subgame-perfect profile",
        ),
        Task(
            "perfect-revenue-coalition-v0",
            "perfect_revenue",
            # values up to 2: agreement is measured against the exact SPE (backward
            # induction over the coalition's joint moves), whose tree grows fast with values
            "states:n=3,m=2,cap=2",
            (0, 1),
            description="M5, collusive version: a two-player coalition against Θ̄",
        ),
        Task(
            "budget-balanced-market-v0",
            "budget_balanced_market",
            _MARKET,
            (0,),
            description="M6: one trader proposes and answers against predicted play",
        ),
        Task(
            "budget-balanced-market-coalition-v0",
            "budget_balanced_market",
            _MARKET,
            (0, 1),
            description="M6: a two-trader coalition with a shared reward",
        ),
    ]
}


def task(task_id: str) -> Task:
    """The task named ``task_id``."""
    t = TASKS.get(task_id)
    if t is None:
        raise ParameterError(
            "task", f"unknown task {task_id!r}; `mechgym benchmark list` shows the tasks"
        )
    return t
