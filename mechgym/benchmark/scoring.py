"""Exact scores of a task: focal returns of random, predicted and learned play, the bound.

Everything here is exact (chance enumerated, rational arithmetic): random play is the
uniform mixture over the focal learner's menu at each of its decisions, evaluated as a
mixed strategy, not sampled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from typing import Any

import numpy as np

from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.engine.game import evaluate_exact

from .tasks import Task

REFERENCE_FILE = "reference_scores.json"


@dataclass
class TaskSetup:
    """What scoring a task needs: mechanism, contexts, menus, background and predictions."""

    task: Task
    mech: Any
    agents: Any
    spec: Any
    contexts: list[Any]
    encoding: Any
    background: Callable[[Any], dict[int, Any]]
    predicted: Callable[[Any], dict[int, Any]]

    def profile(self, focal_policy: Any) -> Callable[[Any], dict[int, Any]]:
        """``ctx -> {player: policy}`` with the focal players on ``focal_policy``."""

        def prof(ctx: Any) -> dict[int, Any]:
            out = dict(self.background(ctx))
            for p in self.task.focal:
                out[p] = focal_policy
            return out

        return prof


def setup(task: Task) -> TaskSetup:
    """Build the task's mechanism, evaluation contexts, menu encoding and profiles."""
    from mechgym.envs.pettingzoo.registry import entry
    from mechgym.training.encodings import make_encoding
    from mechgym.training.learner_env import learner_setting
    from mechgym.training.metrics import predicted_profile

    e = entry(task.mechanism)
    contexts = task.contexts()
    raw = learner_setting(task.mechanism, contexts=contexts, constants=task.constants)
    mech = raw.mechanism
    agents = e.load_agents()
    spec = raw.spec
    encoding = make_encoding("menu", task.mechanism, mech, spec, agents)
    n = spec.n
    predicted = predicted_profile(agents, n)
    if task.background == "predicted":
        background = predicted
    else:
        dev = agents.deviations.get(task.background)
        if dev is None:
            raise ParameterError(
                "background", f"{task.mechanism} has no deviation named {task.background!r}"
            )

        def background(ctx: Any) -> dict[int, Any]:
            pol = dev(ctx, np.random.default_rng(0))
            return dict.fromkeys(range(n), pol)

    return TaskSetup(task, mech, agents, spec, contexts, encoding, background, predicted)


def focal_return(s: TaskSetup, focal_policy: Any) -> Fraction:
    """Mean over the evaluation contexts of the focal group's exact expected reward."""
    from mechgym.training.learner_env import expected_group_value

    prof = s.profile(focal_policy)
    total = Fraction(0)
    for ctx in s.contexts:
        ev = evaluate_exact(s.mech, ctx, prof(ctx))
        total += expected_group_value(ctx, ev, s.task.focal)
    return total / len(s.contexts)


def random_return(s: TaskSetup) -> Fraction:
    """Exact focal return of uniformly random play over the menu at each focal decision."""
    from mechgym.training.equilibrium import mixed_value, uniform_over

    mixed = uniform_over(s.encoding.options)
    total = Fraction(0)
    for ctx in s.contexts:
        pol = s.background(ctx)
        total += mixed_value(s.mech, ctx, pol, s.task.focal, dict.fromkeys(s.task.focal, mixed))
    return total / len(s.contexts)


def bound(s: TaskSetup) -> dict[str, Any]:
    """The theorem's guarantee under predicted play: mean bound and value, ``holds`` (on
    every evaluation context) and ``holds_share`` (the share of contexts where it holds)."""
    bounds, values, holds = [], [], []
    statement = None
    for ctx in s.contexts:
        ev = evaluate_exact(s.mech, ctx, s.predicted(ctx))
        g = s.mech.guarantee(ctx, ev)
        if g is None:
            continue
        statement = g.statement
        bounds.append(Fraction(g.bound))
        values.append(Fraction(g.value))
        holds.append(g.holds)
    if not bounds:
        return {
            "statement": None,
            "bound": None,
            "value": None,
            "holds": None,
            "holds_share": None,
        }
    return {
        "statement": statement,
        "bound": str(sum(bounds, Fraction(0)) / len(bounds)),
        "value": str(sum(values, Fraction(0)) / len(values)),
        "holds": all(holds),
        "holds_share": sum(holds) / len(holds),
    }


def reference(task: Task) -> dict[str, Any]:
    """The task's reference scores: random and predicted focal returns and the bound."""
    s = setup(task)
    pred = focal_return(s, _Predicted(s))
    rand = random_return(s)
    if pred == rand:
        raise ParameterError(
            "task", f"{task.id}: predicted and random play score alike; no normalisation"
        )
    return {
        "task": task.id,
        "random": str(rand),
        "predicted": str(pred),
        "random_float": float(rand),
        "predicted_float": float(pred),
        "bound": bound(s),
        "contexts": len(s.contexts),
    }


class _Predicted:
    """Predicted play for the focal players (built per context)."""

    def __init__(self, s: TaskSetup) -> None:
        self.s = s
        self._by_ctx: dict[int, Any] = {}

    def act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
        pol = self._by_ctx.get(id(ctx))
        if pol is None:
            pol = self.s.agents.predicted(ctx)
            self._by_ctx[id(ctx)] = pol
        return pol.act(mech, ctx, state, player)


def predicted_policy(s: TaskSetup) -> Any:
    """The focal players' predicted play as one policy object."""
    return _Predicted(s)


def load_reference() -> dict[str, dict[str, Any]]:
    """The reference scores shipped with the package, by task id."""
    text = resources.files("mechgym.benchmark").joinpath(REFERENCE_FILE).read_text("utf-8")
    return {row["task"]: row for row in json.loads(text)["tasks"]}


def normalized(learned: Fraction | float, ref: Mapping[str, Any]) -> float:
    """``(learned − random) / (predicted − random)`` with the reference's exact figures."""
    rand = Fraction(ref["random"])
    pred = Fraction(ref["predicted"])
    return float((Fraction(learned) - rand) / (pred - rand))


def score(task: Task, focal_policy: Any, s: TaskSetup | None = None) -> dict[str, Any]:
    """Exact raw figures and the normalised score of a focal policy on a task."""
    s = setup(task) if s is None else s
    ref = load_reference().get(task.id)
    if ref is None:
        raise ParameterError("task", f"{task.id} has no reference scores; rebuild them")
    got = focal_return(s, focal_policy)
    return {
        "task": task.id,
        "focal_return": float(got),
        "focal_return_exact": str(got),
        "random": ref["random_float"],
        "predicted": ref["predicted_float"],
        "normalized": normalized(got, ref),
        "bound": ref["bound"],
    }
