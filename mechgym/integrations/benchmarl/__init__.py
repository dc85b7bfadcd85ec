"""BenchMARL: mechgym's benchmark tasks as a BenchMARL environment, scored by mechgym.

* :class:`MechgymTask` / :class:`MechgymClass` (:mod:`.task`): every task of the benchmark
  registry as a BenchMARL task (``MechgymTask.BEST_BELIEF_V0``), on the native batched
  TorchRL env; the focal role is the BenchMARL group, the background is scripted.
* :class:`MechgymScore` (:mod:`.score`): a BenchMARL callback that scores the trained policy
  exactly after each evaluation and writes mechgym's normalised score beside BenchMARL's
  returns in its marl-eval JSON.
* ``python -m mechgym.integrations.benchmarl.run``: BenchMARL's hydra entry point with the
  mechgym tasks (``task=mechgym/best_belief_v0``) and the score callback.

Importing this package registers the tasks with BenchMARL's task registry and hydra's
config store (:func:`register`), so BenchMARL's hydra helpers find them too.
"""

from __future__ import annotations

from .score import SCORE_FILE, ExperimentPolicy, MechgymScore, experiment_policy, score_experiment
from .task import (
    ENV_NAME,
    MechgymClass,
    MechgymTask,
    TaskConfig,
    episode_horizon,
    focal_group,
    make_env,
    mechgym_task,
    member_name,
)

__all__ = [
    "ENV_NAME",
    "SCORE_FILE",
    "ExperimentPolicy",
    "MechgymClass",
    "MechgymScore",
    "MechgymTask",
    "TaskConfig",
    "episode_horizon",
    "experiment_policy",
    "focal_group",
    "hydra_name",
    "make_env",
    "mechgym_task",
    "member_name",
    "register",
    "score_experiment",
]


def hydra_name(task_id: str) -> str:
    """The hydra ``task=`` value of a mechgym task id (``mechgym/best_belief_v0``)."""
    return f"{ENV_NAME}/{member_name(task_id).lower()}"


def register() -> None:
    """Add the mechgym tasks to BenchMARL's task registry and hydra's config store
    (group ``task/mechgym``, one node per task, schema :class:`TaskConfig`); idempotent."""
    from benchmarl.environments import task_config_registry
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for member in MechgymTask:
        name = member.name.lower()
        task_config_registry[f"{ENV_NAME}/{name}"] = member
        store.store(group=f"task/{ENV_NAME}", name=name, node=TaskConfig)


register()
