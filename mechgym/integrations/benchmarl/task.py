"""mechgym's benchmark tasks as a BenchMARL environment (``mechgym/<task>``).

Every task of :data:`mechgym.benchmark.tasks.TASKS` is a member of :class:`MechgymTask`
(``best-belief-v0`` → ``MechgymTask.BEST_BELIEF_V0``, hydra name ``mechgym/best_belief_v0``).
Its env is the native batched TorchRL env
:class:`~mechgym.integrations.torchrl_batched.BatchedMechanismEnv`, already vectorised over
BenchMARL's ``num_envs``:

* the task's focal role is the one BenchMARL group (``player_0``, or ``coalition_0_1`` for a
  shared-reward coalition); every other player is scripted (the task's background);
* actions are menu entries (``Categorical(K)``) with ``(group, "action_mask")``; an agent that
  does not act at a node may only pick entry 0, which the rules ignore;
* ``(group, "reward")`` is the utility (or coalition total) at the step an episode ends;
  episodes last one step per decision node, at most :func:`episode_horizon` steps;
* the root ``"state"`` is the PettingZoo envs' global state, for MAPPO's critic.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

import numpy as np
from benchmarl.environments.common import Task, TaskClass
from torchrl.data import Composite
from torchrl.envs import EnvBase

from mechgym.benchmark.tasks import TASKS
from mechgym.benchmark.tasks import Task as BenchTask
from mechgym.envs.engine.errors import ParameterError

ENV_NAME = "mechgym"
HORIZON_PROBE = 512
"""Episodes of uniformly random legal play that :func:`episode_horizon` walks."""


def member_name(task_id: str) -> str:
    """BenchMARL's enum name of a mechgym task id (``best-belief-v0`` → ``BEST_BELIEF_V0``)."""
    return task_id.replace("-", "_").upper()


_BY_MEMBER = {member_name(t): t for t in TASKS}


def mechgym_task(name: str) -> BenchTask:
    """The mechgym task of a BenchMARL task name (``BEST_BELIEF_V0`` or ``best_belief_v0``)."""
    tid = _BY_MEMBER.get(name.upper())
    if tid is None:
        raise ParameterError(
            "task", f"no mechgym task is called {name!r}; known: {', '.join(sorted(_BY_MEMBER))}"
        )
    return TASKS[tid]


def focal_group(task: BenchTask) -> str:
    """The BenchMARL group of the task's focal role (the batched env's group name)."""
    if task.coalition:
        return "coalition_" + "_".join(str(p) for p in sorted(task.focal))
    return f"player_{task.focal[0]}"


@dataclass
class TaskConfig:
    """The options of a mechgym task in BenchMARL (its hydra node ``task``).

    Attributes
    ----------
    state : bool
        Expose the global state (the root ``"state"`` key) to centralised critics.
    """

    state: bool = True


def check_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` checked against :class:`TaskConfig`, defaults filled in."""
    config = dict(config or {})
    known = {f.name for f in fields(TaskConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ParameterError(
            "task", f"unknown mechgym task options {unknown}; known: {sorted(known)}"
        )
    return TaskConfig(**config).__dict__


def make_env(
    task: BenchTask,
    num_envs: int,
    seed: int | None = None,
    device: Any = "cpu",
    state: bool = True,
) -> Any:
    """The task's :class:`BatchedMechanismEnv`: ``num_envs`` episodes, the focal group learning."""
    from mechgym.integrations.torchrl_batched import BatchedMechanismEnv

    source: dict[str, Any] = (
        {"context": task.example} if task.example is not None else {"generate": task.family}
    )
    return BatchedMechanismEnv(
        task.mechanism,
        num_envs,
        **source,
        coalitions=[task.focal] if task.coalition else None,
        learners=[focal_group(task)],
        background=task.background,
        return_state=state,
        seed=seed,
        device=device,
        constants=task.constants,
    )


@cache
def episode_horizon(task_id: str) -> int:
    """The most decision nodes an episode of the task passes through.

    Walked on the batched rules: :data:`HORIZON_PROBE` episodes of uniformly random legal
    play over the full array layout (seeded), which reaches every phase and every turn of the
    sequential phases (M5's raisers); the figure is what BenchMARL's evaluation rollouts run
    for.
    """
    from mechgym.envs.engine.batched import rollout

    env = make_env(TASKS[task_id], HORIZON_PROBE, seed=0, state=False)
    api = env.api
    rng = np.random.default_rng(0)
    return len(rollout(api.rules, api.source.sample(HORIZON_PROBE, rng), rng).actions)


class MechgymClass(TaskClass):
    """BenchMARL's task class of the mechgym tasks (see the module docstring)."""

    def __init__(self, name: str, config: dict[str, Any] | None) -> None:
        self.bench_task = mechgym_task(name)
        super().__init__(name=name, config=check_config(config))

    def get_env_fun(
        self,
        num_envs: int,
        continuous_actions: bool,
        seed: int | None,
        device: Any,
    ) -> Callable[[], EnvBase]:
        config = copy.deepcopy(self.config)
        task = self.bench_task
        return lambda: make_env(task, num_envs, seed=seed, device=device, **config)

    def supports_continuous_actions(self) -> bool:
        return False

    def supports_discrete_actions(self) -> bool:
        return True

    def max_steps(self, env: EnvBase) -> int:
        return episode_horizon(self.bench_task.id)

    def has_render(self, env: EnvBase) -> bool:
        return False

    def group_map(self, env: EnvBase) -> dict[str, list[str]]:
        return {g: list(env.group_map[g]) for g in env.learners}

    # BenchMARL reads the specs of one episode (its env may be batched)

    def _group_keys(self, env: EnvBase, keep: str) -> Composite:
        spec = env.full_observation_spec_unbatched.clone()
        for group in self.group_map(env):
            sub = spec[group]
            for key in list(sub.keys()):
                if key != keep:
                    del sub[key]
        if "state" in list(spec.keys()):
            del spec["state"]
        return spec

    def observation_spec(self, env: EnvBase) -> Composite:
        return self._group_keys(env, "observation")

    def action_mask_spec(self, env: EnvBase) -> Composite | None:
        return self._group_keys(env, "action_mask")

    def info_spec(self, env: EnvBase) -> Composite | None:
        return None

    def state_spec(self, env: EnvBase) -> Composite | None:
        spec = env.full_observation_spec_unbatched
        if "state" in list(spec.keys()):
            return Composite({"state": spec["state"].clone()})
        return None

    def action_spec(self, env: EnvBase) -> Composite:
        return env.full_action_spec_unbatched

    @staticmethod
    def env_name() -> str:
        return ENV_NAME

    def __getstate__(self) -> dict[str, Any]:
        # the mechgym task is rebuilt from the name: BenchMARL pickles the task class
        return {"name": self.name, "config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["config"])


def _get_from_yaml(self: Task, path: str | None = None) -> TaskClass:
    """The task with its default options (or those of the yaml file at ``path``)."""
    config: dict[str, Any] = {}
    if path is not None:
        from benchmarl.utils import _read_yaml_config

        config = _read_yaml_config(path)
    return self.get_task(config=check_config(config))


def _build_enum() -> type[Task]:
    # members follow the benchmark registry, so a new task appears here without an edit
    ns = enum.EnumMeta.__prepare__("MechgymTask", (Task,))
    for name in _BY_MEMBER:
        ns[name] = None
    ns["__module__"] = __name__
    ns["__doc__"] = "Enum of mechgym's benchmark tasks, one member per task id."
    ns["associated_class"] = staticmethod(lambda: MechgymClass)
    ns["get_from_yaml"] = _get_from_yaml
    return enum.EnumMeta("MechgymTask", (Task,), ns)


MechgymTask: Any = _build_enum()
"""BenchMARL ``Task`` enum of mechgym's benchmark tasks (``MechgymTask.BEST_BELIEF_V0``)."""
