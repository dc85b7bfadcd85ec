"""BenchMARL runs mechgym's benchmark tasks: the task class, IPPO and MAPPO experiments, the
hydra entry point, and mechgym's exact score written beside BenchMARL's returns."""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("benchmarl")

import torch
from benchmarl.algorithms import IppoConfig, MappoConfig, MasacConfig, QmixConfig
from benchmarl.environments import task_config_registry
from benchmarl.experiment import Experiment, ExperimentConfig
from benchmarl.models.mlp import MlpConfig
from hydra.core.config_store import ConfigStore
from mechgym.envs.engine.errors import ParameterError
from mechgym.training.algos import configure_torch
from mechgym.training.encodings import aec_observation
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type

from mechgym.benchmark.scoring import load_reference, setup
from mechgym.benchmark.tasks import TASKS
from mechgym.integrations.benchmarl import (
    SCORE_FILE,
    ExperimentPolicy,
    MechgymScore,
    MechgymTask,
    episode_horizon,
    experiment_policy,
    focal_group,
    hydra_name,
    make_env,
    mechgym_task,
)
from mechgym.integrations.torchrl_batched import BatchedMechanismEnv

ALGOS = {"ippo": IppoConfig, "mappo": MappoConfig, "qmix": QmixConfig, "masac": MasacConfig}
TINY = {
    "on_policy_collected_frames_per_batch": 200,
    "on_policy_n_envs_per_worker": 20,
    "on_policy_minibatch_size": 100,
    "on_policy_n_minibatch_iters": 2,
    "evaluation_interval": 200,
    "evaluation_episodes": 16,
}


def experiment_config(folder: Path, iters: int, **overrides: Any) -> ExperimentConfig:
    cfg = ExperimentConfig.get_from_yaml()
    cfg.loggers = ["csv"]
    cfg.render = False
    cfg.max_n_iters = iters
    cfg.max_n_frames = None
    cfg.save_folder = str(folder)
    for k, v in {**TINY, **overrides}.items():
        setattr(cfg, k, v)
    return cfg


def run_experiment(
    task: str, algo: str, folder: Path, iters: int = 2, lr: float | None = None, **overrides: Any
) -> tuple[Experiment, MechgymScore]:
    configure_torch()
    cfg = experiment_config(folder, iters, **overrides)
    if lr is not None:
        cfg.lr = lr
    score = MechgymScore()
    exp = Experiment(
        task=getattr(MechgymTask, task).get_from_yaml(),
        algorithm_config=ALGOS[algo].get_from_yaml(),
        model_config=MlpConfig.get_from_yaml(),
        seed=0,
        config=cfg,
        callbacks=[score],
    )
    exp.run()
    return exp, score


def marl_eval_run(exp: Experiment) -> dict[str, Any]:
    data = json.loads((exp.folder_name / f"{exp.name}.json").read_text())
    return data["mechgym"][exp.task_name][exp.algorithm_name][f"seed_{exp.seed}"]


# -- the task class -----------------------------------------------------------------------------
def test_every_registry_task_is_a_benchmarl_task() -> None:
    names = {m.name for m in MechgymTask}
    assert {mechgym_task(n).id for n in names} == set(TASKS)
    store = ConfigStore.instance().repo["task"]["mechgym"]
    for tid in TASKS:
        assert task_config_registry[hydra_name(tid)] in MechgymTask
        assert f"{hydra_name(tid).split('/')[1]}.yaml" in store
    with pytest.raises(ParameterError, match="no mechgym task"):
        mechgym_task("best_belief_v9")
    with pytest.raises(ParameterError, match="unknown mechgym task options"):
        MechgymTask.VCG_V0.get_task({"frames": 3})


@pytest.mark.parametrize("tid", list(TASKS))
def test_task_env_specs_groups_and_horizon(tid: str) -> None:
    """Each task's env passes TorchRL's spec check, has the focal role as its one group and
    ends every episode (random masked play, scripted background) within the horizon."""
    task = getattr(MechgymTask, tid.replace("-", "_").upper()).get_from_yaml()
    env = task.get_env_fun(num_envs=32, continuous_actions=False, seed=0, device="cpu")()
    check_env_specs(env)
    group = focal_group(TASKS[tid])
    assert task.group_map(env) == {group: [f"player_{p}" for p in sorted(TASKS[tid].focal)]}
    assert list(task.observation_spec(env)[group].keys()) == ["observation"]
    assert list(task.action_mask_spec(env)[group].keys()) == ["action_mask"]
    assert task.action_spec(env)[group, "action"].shape == (len(TASKS[tid].focal),)
    assert "state" in list(task.state_spec(env).keys())
    horizon = task.max_steps(env)
    assert horizon == episode_horizon(tid) >= 1
    td = env.reset()
    for _ in range(horizon):
        td = env.step(env.rand_action(td))["next"]
    assert bool(td["done"].all())


def test_horizon_follows_the_mechanism() -> None:
    """The longest episodes of the rules: one node (VCG), announce and answer (M1), a
    proposal then answers or a confirmation (M6), and M5's 2n sequential moves (n = 3)."""
    assert episode_horizon("vcg-v0") == 1
    assert episode_horizon("best-belief-v0") == 2
    assert episode_horizon("budget-balanced-market-v0") == 2
    assert episode_horizon("perfect-revenue-v0") == 6


# -- experiments --------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["ippo", "mappo"])
def tiny_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp(request.param)
    return run_experiment("BEST_BELIEF_V0", request.param, folder)


def test_experiment_writes_score_beside_returns(tiny_run: Any) -> None:
    exp, score = tiny_run
    run = marl_eval_run(exp)
    steps = {k: v for k, v in run.items() if k.startswith("step_")}
    assert len(steps) == 2 == len(score.history)  # an evaluation per iteration here
    ref = load_reference()["best-belief-v0"]
    for v in steps.values():
        assert len(v["player_0_return"]) == 16
        (norm,) = v["mechgym_normalized"]
        (got,) = v["mechgym_focal_return"]
        want = (got - ref["random_float"]) / (ref["predicted_float"] - ref["random_float"])
        assert math.isclose(norm, want, rel_tol=1e-9, abs_tol=1e-9)
    best = max(v["mechgym_normalized"][0] for v in steps.values())
    assert run["absolute_metrics"]["mechgym_normalized"] == [best]
    assert "return" in run["absolute_metrics"]
    side = json.loads((exp.folder_name / SCORE_FILE).read_text())
    assert side["score"] == score.latest
    exact = Fraction(side["score"]["focal_return_exact"])
    assert side["score"]["normalized"] == pytest.approx(
        float(
            (exact - Fraction(ref["random"]))
            / (Fraction(ref["predicted"]) - Fraction(ref["random"]))
        )
    )
    sub = side["results"]["mechgym"]["best-belief-v0"][exp.algorithm_name]["seed_0"]
    assert [sub[f"step_{k}"]["step_count"] for k in range(2)] == [200, 400]
    scalars = exp.folder_name / exp.name / "scalars"
    assert (scalars / "eval_mechgym_normalized.csv").is_file()
    assert (scalars / "eval_player_0_reward_episode_reward_mean.csv").is_file()


def focal_nodes_agree(tid: str, module: Any, B: int = 32, seed: int = 3) -> int:
    """Play ``module`` (deterministic) in the batched env on the task's evaluation contexts,
    replay each episode on the exact engine with the logged actions and chance draws, and
    check at every focal decision node that the observation and menu mask the env gave equal
    the exact path's and that the policy mechgym scores picks the entry the env got.
    Returns the number of focal decisions checked."""
    from mechgym.envs.engine.game import Chance, Decision, Terminal, step_decision

    task = TASKS[tid]
    s = setup(task)
    group = focal_group(task)
    trained = make_env(task, 1, seed=0, state=False).api.spec  # the spec BenchMARL trains in
    env = BatchedMechanismEnv(
        task.mechanism,
        B,
        contexts=s.contexts,
        learners=[group],
        background=task.background,
        record=True,
        seed=seed,
        value_cap=trained.value_cap,
        price_cap=trained.price_cap,
        constants=task.constants,
    )
    assert env.api.spec == trained
    policy = ExperimentPolicy(module, group, env.group_players[group], s, trained)
    players = env.group_players[group]
    steps = []
    td = env.reset()
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(episode_horizon(tid)):
            td = module(td)
            steps.append(td.clone())
            td = env.step(td)["next"]
    assert bool(td["done"].all())
    ro = env.recording()
    rules = env.api.rules
    mech, spec, layout = rules.mech, rules.spec, rules.layout
    checked = 0
    for b in range(B):
        ctx = ro.ctx.context(b)
        draws = [int(c[b]) for c in ro.final.chance if c[b] >= 0]
        st, t = mech.start(ctx), 0
        while not isinstance(node := mech.node(st), Terminal):
            if isinstance(node, Chance):
                st = mech.chance(st, draws.pop(0))
                continue
            assert isinstance(node, Decision)
            while not ro.acting[t][b].any():
                t += 1
            for j, p in enumerate(players):
                if p not in node.players:
                    continue
                obs = aec_observation(s.mech, ctx, st, p, trained)
                np.testing.assert_array_equal(steps[t][group, "observation"][b, j].numpy(), obs)
                np.testing.assert_array_equal(
                    steps[t][group, "action_mask"][b, j].numpy(), policy.encoding.mask(ctx, st, p)
                )
                assert policy.menu_index(ctx, st, p) == int(steps[t][group, "action"][b, j])
                checked += 1
            acts = {p: mech.decode(st, p, ro.actions[t][b, p], spec, layout) for p in node.players}
            st = step_decision(mech, st, node, acts)
            t += 1
    return checked


@pytest.mark.parametrize("tid", list(TASKS))
def test_exact_policy_plays_what_the_batched_env_plays(tid: str) -> None:
    """A masked actor over every task: what mechgym scores exactly is what the env played."""
    from tensordict.nn import TensorDictModule
    from torchrl.modules import MaskedCategorical, ProbabilisticActor

    group = focal_group(TASKS[tid])
    probe = MechgymTask[tid.replace("-", "_").upper()].get_from_yaml()
    env = probe.get_env_fun(num_envs=1, continuous_actions=False, seed=0, device="cpu")()
    torch.manual_seed(0)
    net = TensorDictModule(
        torch.nn.Linear(env.obs_size, env.K), [(group, "observation")], [(group, "logits")]
    )
    actor = ProbabilisticActor(
        net,
        in_keys={"logits": (group, "logits"), "mask": (group, "action_mask")},
        out_keys=[(group, "action")],
        distribution_class=MaskedCategorical,
    )
    assert focal_nodes_agree(tid, actor) >= 32


def test_exact_policy_plays_what_the_experiment_plays(tmp_path: Path) -> None:
    """The same with the policy a BenchMARL experiment trained (a coalition group)."""
    exp, _ = run_experiment("BEST_BELIEF_COALITION_V0", "ippo", tmp_path, iters=1)
    group = focal_group(TASKS["best-belief-coalition-v0"])
    assert experiment_policy(exp).module is exp.group_policies[group]
    assert focal_nodes_agree("best-belief-coalition-v0", exp.group_policies[group]) >= 32


@pytest.mark.parametrize("algo", ["qmix", "masac"])
def test_off_policy_algorithms_run(algo: str, tmp_path: Path) -> None:
    """Value decomposition over the global state (QMIX) and discrete SAC train, and the
    score callback writes its figures."""
    exp, score = run_experiment(
        "BEST_BELIEF_COALITION_V0",
        algo,
        tmp_path,
        iters=1,
        off_policy_collected_frames_per_batch=200,
        off_policy_n_envs_per_worker=20,
        off_policy_n_optimizer_steps=5,
        off_policy_train_batch_size=64,
    )
    assert len(score.history) == 1 and math.isfinite(score.history[0]["normalized"])
    assert "mechgym_normalized" in marl_eval_run(exp)["step_1"]


def test_hydra_entry_point(tmp_path: Path) -> None:
    """The documented command: BenchMARL's hydra configs, a mechgym task, the score file."""
    overrides = [f"experiment.{k}={v}" for k, v in TINY.items()]
    cmd = [
        sys.executable,
        "-m",
        "mechgym.integrations.benchmarl.run",
        "algorithm=mappo",
        "task=mechgym/best_belief_coalition_v0",
        "experiment.loggers=[csv]",
        "experiment.max_n_iters=1",
        f"hydra.run.dir={tmp_path / 'run'}",
        *overrides,
    ]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mechgym score on best-belief-coalition-v0: normalised" in done.stdout
    (folder,) = [p for p in (tmp_path / "run").iterdir() if p.name.startswith("mappo_")]
    side = json.loads((folder / SCORE_FILE).read_text())
    assert math.isfinite(side["score"]["normalized"])
    data = json.loads((folder / f"{folder.name}.json").read_text())
    run = data["mechgym"]["best_belief_coalition_v0"]["mappo"]["seed_0"]
    assert "mechgym_normalized" in run["step_1"] and "coalition_0_1_return" in run["step_1"]
    bad = subprocess.run(
        [*cmd[:4], "task=mechgym/nope"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert bad.returncode != 0 and "mechgym/nope" in bad.stderr


def test_readme_command_composes(tmp_path: Path) -> None:
    """The README's command, as written, is a valid hydra config (``--cfg job`` composes it
    without training; the run itself is the slow test's budget)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (cmd,) = [
        b for b in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL) if "benchmarl.run" in b
    ]
    args = shlex.split(cmd.replace("\\\n", " "))
    assert args[:3] == ["python", "-m", "mechgym.integrations.benchmarl.run"]
    done = subprocess.run(
        [sys.executable, *args[1:], "--cfg", "job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "max_n_frames: 24000" in done.stdout and "state: true" in done.stdout


# -- learning -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "algo"), [("BEST_BELIEF_V0", "ippo"), ("BEST_BELIEF_COALITION_V0", "mappo")]
)
def test_benchmarl_learns_above_random(task: str, algo: str, tmp_path: Path) -> None:
    """24k frames: the exact normalised score climbs well above uniform random play (0)."""
    _, score = run_experiment(
        task,
        algo,
        tmp_path,
        iters=12,
        lr=3e-3,
        on_policy_collected_frames_per_batch=2000,
        on_policy_n_envs_per_worker=250,
        on_policy_minibatch_size=500,
        on_policy_n_minibatch_iters=8,
        evaluation_interval=8000,
        evaluation_episodes=64,
    )
    first, last = score.history[0]["normalized"], score.history[-1]["normalized"]
    assert last > 0.5, score.history
    assert last >= first - 0.1, score.history
