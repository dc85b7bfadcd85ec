"""Torch threads of learners: one default (1), changed by MECHGYM_TORCH_THREADS or
--torch-threads, set wherever mechgym builds a learner (issue 17, item 3)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from mechgym.envs.engine.errors import ParameterError
from mechgym.training import algos
from mechgym.training.algos import THREADS_ENV, configure_torch, make_model, torch_threads
from typer.testing import CliRunner

from mechgym.cli import app


@pytest.fixture(autouse=True)
def _fresh_threads(monkeypatch: pytest.MonkeyPatch):
    """Each test starts as a new process would: no explicit count, no env var; the count
    in force before is restored afterwards."""
    before = torch.get_num_threads()
    monkeypatch.setattr(algos, "_chosen", None)
    monkeypatch.delenv(THREADS_ENV, raising=False)
    yield
    torch.set_num_threads(before)


def test_readme_vec_env_snippet_runs_as_written_on_one_thread() -> None:
    # the README's VecLearnerEnv + MaskablePPO snippet, with torch's pool at 2 beforehand
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    training = text.split("\n### Training\n", 1)[1].split("\n## ", 1)[0]
    (code,) = [
        c for c in re.findall(r"```python\n(.*?)```", training, re.S) if "VecLearnerEnv(" in c
    ]
    torch.set_num_threads(2)
    scope: dict = {"__name__": "__main__"}
    exec(compile(code, "README VecLearnerEnv snippet", "exec"), scope)
    assert scope["model"].num_timesteps >= 16_384
    assert torch.get_num_threads() == 1


def test_make_model_reads_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from mechgym.training.learner_env import LearnerEnv

    monkeypatch.setenv(THREADS_ENV, "2")
    torch.set_num_threads(1)
    make_model("maskable_ppo", LearnerEnv("best_belief", 0), seed=0)
    assert torch.get_num_threads() == 2


def test_an_explicit_count_outlives_later_learners() -> None:
    from mechgym.training.learner_env import LearnerEnv

    assert configure_torch(2) == 2
    make_model("ppo", LearnerEnv("best_belief", 0), seed=0)
    assert torch.get_num_threads() == 2 and torch_threads() == 2


@pytest.mark.parametrize("bad", ["0", "-3", "two", "1.5", "100000"])
def test_a_bad_environment_variable_is_a_typed_error(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(THREADS_ENV, bad)
    with pytest.raises(ParameterError, match=THREADS_ENV):
        torch_threads()


@pytest.mark.parametrize(
    "args",
    [
        ["train", "best_belief"],
        ["converge", "--quick"],
        ["benchmark", "run", "best-belief-v0", "--algo", "ppo"],
        ["bench"],
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(args: list[str], tmp_path) -> None:
    res = CliRunner().invoke(app, [*args, "--torch-threads", "0"], catch_exceptions=False)
    assert res.exit_code == 2
    assert "--torch-threads" in res.output and "Traceback" not in res.output
    assert not any(tmp_path.iterdir())


def test_train_option_sets_and_reports_the_count(tmp_path) -> None:
    out = tmp_path / "run"
    args = ["train", "best_belief", "--steps", "64", "--n-envs", "8", "--eval-contexts", "2"]
    res = CliRunner().invoke(
        app, [*args, "--out", str(out), "--no-progress", "--torch-threads", "2"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "metrics.json").read_text())["torch_threads"] == 2
    assert torch.get_num_threads() == 2
    table = [line for line in res.stdout.splitlines() if "│" in line]
    assert table and max(map(len, table)) <= 80 and "…" not in res.stdout  # 80 columns


def test_bench_reports_the_thread_count() -> None:
    from mechgym.training.bench import training_speed

    r = training_speed(single_steps=64, vector_steps=128, n_envs=16)
    assert r["torch_threads"] == 1
    assert r["single"]["torch_threads"] == r["vector"]["torch_threads"] == 1
    assert torch.get_num_threads() == 1
