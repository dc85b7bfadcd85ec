"""Several learners, checkpoints, the train/converge commands and the env-time benchmark."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import typer
from mechgym.envs.model.examples import example
from mechgym.envs.model.generators import make_generator
from mechgym.training.algos import configure_torch
from mechgym.training.bench import env_time_share
from mechgym.training.commands import add_commands
from mechgym.training.multi import MultiLearner
from mechgym.training.policies import LearnedPolicy, SharedPolicy, load_policy
from typer.testing import CliRunner

TINY = {"n_steps": 64, "batch_size": 32, "n_epochs": 2}


@pytest.fixture(autouse=True, scope="module")
def _torch() -> None:
    configure_torch(1)


def _app() -> typer.Typer:
    app = typer.Typer()
    add_commands(app)
    return app


def _family(k: int) -> list:
    gen = make_generator("uniform:n=3,m=2,cap=10,belief=noisy")
    rng = np.random.default_rng(1)
    return [gen.sample(rng) for _ in range(k)]


def test_help_lists_commands() -> None:
    res = CliRunner().invoke(_app(), ["--help"])
    assert res.exit_code == 0
    assert "train" in res.output and "converge" in res.output


@pytest.mark.parametrize("scheme", ["independent", "ibr", "selfplay"])
def test_schemes_train_and_resume(scheme: str, tmp_path) -> None:
    ctxs = _family(3)
    tr = MultiLearner("vcg", scheme=scheme, seed=0, contexts=ctxs, hyper=TINY)
    tr.train_round(64)
    assert tr.round == 1 and tr.total_steps == 3 * 64
    assert tr.trained == {(0,), (1,), (2,)}
    prof = tr.profile()(ctxs[0])
    if scheme == "selfplay":
        assert isinstance(prof[0], SharedPolicy) and prof[0] is prof[2]
    else:
        assert all(isinstance(prof[p], LearnedPolicy) for p in range(3))
    tr.save(tmp_path)
    again = MultiLearner.resume(tmp_path, contexts=ctxs, hyper=TINY)
    assert again.round == 1 and again.steps == tr.steps and again.scheme == scheme
    state = tr.mech.start(ctxs[0])
    for p in range(3):
        a = tr.profile()(ctxs[0])[p].act(tr.mech, ctxs[0], state, p)
        b = again.profile()(ctxs[0])[p].act(again.mech, ctxs[0], state, p)
        assert a == b
    again.train_round(64)
    assert again.round == 2


def test_train_command_on_coalition(tmp_path) -> None:
    out = tmp_path / "vcg"
    res = CliRunner().invoke(
        _app(),
        [
            "train",
            "vcg",
            "--learner",
            "1,2",
            "--example",
            "ausubel-milgrom",
            "--steps",
            "512",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["learner"] == [1, 2] and report["steps"] >= 512
    assert report["reference"]["value"]["1+2"] == 0.0
    assert report["reference"]["exploitability"]["1+2"] == 10.0
    assert len(report["history"]) >= 2
    assert (out / "model.zip").exists() and (out / "model.json").exists()
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and "agreement_report" in rows[0]
    # the saved model plays again as a frozen opponent
    pol = load_policy(out / "model.zip")
    ctx = example("ausubel-milgrom")
    from mechgym.envs.mechanisms.vcg import VCG

    assert len(pol.act(VCG(), ctx, VCG().start(ctx), 1)) == 4
    res = CliRunner().invoke(
        _app(),
        [
            "train",
            "vcg",
            "--learner",
            "0",
            "--example",
            "ausubel-milgrom",
            "--steps",
            "256",
            "--opponents",
            str(out / "model.zip"),
            "--out",
            str(tmp_path / "vs"),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output


def test_train_command_errors(tmp_path) -> None:
    res = CliRunner().invoke(_app(), ["train", "vcg", "--example", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown example" in res.output
    res = CliRunner().invoke(_app(), ["train", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown mechanism" in res.output


def test_converge_quick_end_to_end(tmp_path) -> None:
    out = tmp_path / "conv"
    res = CliRunner().invoke(
        _app(),
        [
            "converge",
            "--quick",
            "--steps",
            "64",
            "--rounds",
            "2",
            "--family",
            "3",
            "--out",
            str(out),
            "--no-progress",
            "--jobs",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    bb = summary["mechanisms"]["best_belief"]
    assert bb["status"] == "ok" and bb["seeds"] == [0, 1]
    for phase in ("announce", "respond"):
        assert set(bb["phases"][phase]["agreement"]) == {
            *("mean", "std", "min", "max", "n"),
            *("iqm", "ci_low", "ci_high"),
        }
    assert bb["phases"]["announce"]["bound"] == "BB_i"
    assert bb["reference"]["agreement"]["respond"] == 1.0
    assert bb["exploitability"]["n"] == 2
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["round"] for r in rows} == {"0", "1", "2"}
    assert {r["seed"] for r in rows} == {"0", "1"}
    for name in ("best_belief_agreement.png", "best_belief_revenue.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "checkpoints" / "best_belief" / "seed_1" / "trainer.json").exists()
    assert "converge" in res.output


def test_converge_reports_unknown_mechanism(tmp_path) -> None:
    from mechgym.envs.engine.errors import ParameterError
    from mechgym.training.converge import ConvergeConfig, run_converge

    out = tmp_path / "conv"
    with pytest.raises(ParameterError, match="unknown mechanism 'no_such'"):
        run_converge(ConvergeConfig(mechanisms=("no_such",), out=str(out)), progress=False)
    assert not out.exists()


def test_env_time_share() -> None:
    res = env_time_share("vcg", steps=64, algo="ppo")
    assert 0.0 < res["env_share"] < 1.0
    assert res["steps"] >= 64 and res["episodes"] >= 64


@pytest.mark.slow
def test_converge_quick_parallel_with_tensorboard(tmp_path) -> None:
    out = tmp_path / "par"
    res = CliRunner().invoke(
        _app(),
        [
            "converge",
            "--quick",
            "--steps",
            "128",
            "--out",
            str(out),
            "--no-progress",
            "--jobs",
            "2",
            "--tensorboard",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mechanisms"]["best_belief"]["status"] == "ok"
    assert any((out / "tb" / "best_belief").rglob("events.out.tfevents.*"))
