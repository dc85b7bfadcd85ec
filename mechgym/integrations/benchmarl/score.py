"""mechgym's normalised benchmark score of a BenchMARL experiment, beside its returns.

:class:`ExperimentPolicy` plays a BenchMARL experiment's trained group policy on the exact
path (argmax under the menu mask, as BenchMARL's deterministic evaluation does), so
:func:`mechgym.benchmark.scoring.focal_return` scores it exactly (chance enumerated) on the
task's evaluation contexts. :class:`MechgymScore`, a BenchMARL callback, does so after every
BenchMARL evaluation and writes the figures

* into BenchMARL's own marl-eval JSON, as the step's ``mechgym_normalized`` and
  ``mechgym_focal_return`` metrics (with their maxima under ``absolute_metrics``, as BenchMARL
  does for its returns);
* into ``mechgym_score.json`` in the experiment folder: the latest :func:`score` figures and
  the history, in the marl-eval layout that ``mechgym benchmark run`` writes;
* to BenchMARL's loggers, as ``eval/mechgym/normalized`` and ``eval/mechgym/focal_return``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchmarl.experiment.callback import Callback
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from mechgym.benchmark.scoring import TaskSetup, score, setup
from mechgym.envs.engine.errors import ParameterError
from mechgym.training.encodings import aec_observation

from .task import MechgymClass, focal_group

SCORE_FILE = "mechgym_score.json"


class ExperimentPolicy:
    """A BenchMARL group policy as a deterministic mechgym policy over engine states.

    The observation is the AEC vector and the mask that of the menus, both under the spec of
    the env the policy was trained in (its price grid is wider than the task's default, as
    for every menu learner), so the policy sees on the exact path what it saw in the env.

    Parameters
    ----------
    module : TensorDictModule
        The group's policy (``experiment.group_policies[group]``), reading
        ``(group, "observation")`` and ``(group, "action_mask")``.
    group : str
        The BenchMARL group.
    players : list of int
        The group's players, in the order of its agent axis.
    s : TaskSetup
        The task's scoring setup (mechanism and menu agents).
    spec : EnvSpec
        The training env's spec (``env.api.spec``).
    """

    def __init__(
        self, module: Any, group: str, players: list[int], s: TaskSetup, spec: Any
    ) -> None:
        from mechgym.training.encodings import make_encoding

        self.module = module
        self.group = group
        self.players = list(players)
        self.mech = s.mech
        self.spec = spec
        self.encoding = make_encoding("menu", s.task.mechanism, s.mech, spec, s.agents)
        self._cache: dict[bytes, int] = {}

    def menu_index(self, ctx: Any, state: Any, player: int) -> int:
        """The menu entry the policy picks for ``player`` at ``state``."""
        if player not in self.players:
            raise ParameterError(
                "policy", f"this BenchMARL policy plays for players {self.players}, not {player}"
            )
        obs = aec_observation(self.mech, ctx, state, player, self.spec)
        mask = np.asarray(self.encoding.mask(ctx, state, player), dtype=bool)
        key = bytes([player]) + obs.tobytes() + mask.tobytes()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        k, j = len(self.players), self.players.index(player)
        obs_t = torch.zeros((1, k, obs.size), dtype=torch.float32)
        mask_t = torch.zeros((1, k, mask.size), dtype=torch.bool)
        mask_t[..., 0] = True  # the other members' rows: the no-op, as in the env
        obs_t[0, j] = torch.from_numpy(obs)
        mask_t[0, j] = torch.from_numpy(mask)
        td = TensorDict(
            {self.group: TensorDict({"observation": obs_t, "action_mask": mask_t}, [1, k])}, [1]
        )
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            out = self.module(td)
        a = int(out[self.group, "action"][0, j])
        self._cache[key] = a
        return a

    def act(self, mech: Any, ctx: Any, state: Any, player: int) -> Any:
        return self.encoding.decode(ctx, state, player, self.menu_index(ctx, state, player))


def task_env(experiment: Any) -> Any:
    """The :class:`BatchedMechanismEnv` under BenchMARL's transforms of an experiment."""
    env = experiment.test_env
    while hasattr(env, "base_env"):
        env = env.base_env
    return env


def experiment_policy(experiment: Any, s: TaskSetup | None = None) -> ExperimentPolicy:
    """The focal group's policy of a BenchMARL experiment on a mechgym task."""
    task = experiment.task
    if not isinstance(task, MechgymClass):
        raise ParameterError("experiment", f"runs {task!r}, not a mechgym task")
    s = setup(task.bench_task) if s is None else s
    group = focal_group(task.bench_task)
    env = task_env(experiment)
    policy = ExperimentPolicy(
        experiment.group_policies[group], group, env.group_players[group], s, env.api.spec
    )
    if policy.encoding.K != env.K:
        raise ParameterError(
            "experiment",
            f"the env's menus have {env.K} entries, the exact ones {policy.encoding.K}",
        )
    return policy


def score_experiment(experiment: Any, s: TaskSetup | None = None) -> dict[str, Any]:
    """Exact focal return and normalised score of an experiment's current policy."""
    task = experiment.task.bench_task
    s = setup(task) if s is None else s
    return score(task, experiment_policy(experiment, s), s)


class MechgymScore(Callback):
    """BenchMARL callback: the exact mechgym score after each evaluation (module docstring).

    Attributes
    ----------
    history : list of dict
        ``{"step_count", "normalized", "focal_return"}`` per evaluation.
    latest : dict or None
        The last :func:`score_experiment` figures.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, Any]] = []
        self.latest: dict[str, Any] | None = None
        self._setup: TaskSetup | None = None

    def __getstate__(self) -> dict[str, Any]:
        # BenchMARL pickles its callbacks into config.pkl at setup: keep that small
        return {"history": self.history, "latest": self.latest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()
        self.history = state["history"]
        self.latest = state["latest"]

    def on_setup(self) -> None:
        task = self.experiment.task
        if not isinstance(task, MechgymClass):
            raise ParameterError("callbacks", f"MechgymScore scores mechgym tasks, not {task!r}")
        self._setup = setup(task.bench_task)

    def on_evaluation_end(self, rollouts: list[Any]) -> None:
        exp = self.experiment
        figures = score_experiment(exp, self._setup)
        self.latest = figures
        row = {
            "step_count": int(exp.total_frames),
            "normalized": figures["normalized"],
            "focal_return": figures["focal_return"],
        }
        self.history.append(row)
        exp.logger.log(
            {
                "eval/mechgym/normalized": figures["normalized"],
                "eval/mechgym/focal_return": figures["focal_return"],
            },
            step=exp.n_iters_performed,
        )
        writer = exp.logger.json_writer
        if writer is not None:
            _add_to_marl_eval(writer, row)
        self.write(Path(exp.folder_name))

    def write(self, folder: Path) -> Path:
        """Write ``mechgym_score.json`` (latest figures and history) into ``folder``."""
        exp = self.experiment
        runs: dict[str, Any] = {
            f"step_{k}": {
                "step_count": h["step_count"],
                "normalized": [h["normalized"]],
                "focal_return": [h["focal_return"]],
            }
            for k, h in enumerate(self.history)
        }
        if self.history:
            runs["absolute_metrics"] = {
                "normalized": [max(h["normalized"] for h in self.history)],
                "focal_return": [max(h["focal_return"] for h in self.history)],
            }
        tid = exp.task.bench_task.id
        body = {
            "score": self.latest,
            "results": {"mechgym": {tid: {exp.algorithm_name: {f"seed_{exp.seed}": runs}}}},
        }
        path = folder / SCORE_FILE
        path.write_text(json.dumps(body, indent=1), encoding="utf-8")
        return path


def _add_to_marl_eval(writer: Any, row: dict[str, Any]) -> None:
    """Put the score into the step BenchMARL's JSON writer just wrote, and rewrite its file."""
    data = writer.run_data
    steps = [
        k for k, v in data.items() if k.startswith("step_") and v["step_count"] == row["step_count"]
    ]
    if not steps:
        return
    step = data[steps[-1]]
    best = data["absolute_metrics"]
    for name in ("normalized", "focal_return"):
        key = f"mechgym_{name}"
        step[key] = [row[name]]
        best[key] = [max(row[name], best.get(key, [row[name]])[0])]
    with open(writer.path, "w") as fh:
        json.dump(writer.data, fh, indent=4)
