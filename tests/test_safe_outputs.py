"""Model files mechgym did not write are refused before anything unpickles them; commands never
overwrite earlier results silently; unknown mechanisms stop before anything is written."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import typer
from mechgym.envs.engine.errors import ContextFileError, MechgymError, ParameterError
from mechgym.envs.model.generators import make_generator
from mechgym.training.commands import add_commands
from mechgym.training.converge import load_converge_config
from mechgym.training.multi import MultiLearner
from mechgym.training.outputs import check_mechanism_names
from mechgym.training.policies import (
    check_model_file,
    file_sha256,
    load_policy,
    trusted_models,
)
from typer.testing import CliRunner

TINY = {"n_steps": 64, "batch_size": 32, "n_epochs": 1}


def _app() -> typer.Typer:
    app = typer.Typer()
    add_commands(app)
    return app


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> object:
    """A tiny trained vcg model saved by mechgym (model zip + sidecar)."""
    gen = make_generator("uniform:n=3,m=2,cap=10,belief=noisy")
    rng = np.random.default_rng(1)
    tr = MultiLearner("vcg", seed=0, contexts=[gen.sample(rng)], hyper=TINY)
    tr.train_round(64)
    d = tmp_path_factory.mktemp("models")
    rd = tr.save(d)
    return next(rd.glob("group_*.zip"))


def _crafted_zip(path) -> None:
    # stands in for an SB3 zip from elsewhere: it is never opened when refused
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data", "not a model")


def test_mechgym_models_load_and_record_sha256(saved) -> None:
    meta = json.loads(saved.with_suffix(".json").read_text())
    assert meta["sha256"] == file_sha256(saved)
    assert check_model_file(saved) == saved
    load_policy(saved)


def test_tampered_or_foreign_models_are_refused(saved, tmp_path) -> None:
    bad = tmp_path / "m.zip"
    bad.write_bytes(saved.read_bytes() + b"x")
    bad.with_suffix(".json").write_text(saved.with_suffix(".json").read_text())
    with pytest.raises(ParameterError, match="sha256"):
        load_policy(bad)
    alone = tmp_path / "alone.zip"
    _crafted_zip(alone)
    with pytest.raises(ParameterError, match="--trust-model"):
        load_policy(alone)
    with pytest.raises(ParameterError, match="no saved model"):
        check_model_file(tmp_path / "missing.zip")


def test_sidecar_may_name_only_mechgym_classes(saved, tmp_path) -> None:
    p = tmp_path / "evil.zip"
    p.write_bytes(saved.read_bytes())
    meta = json.loads(saved.with_suffix(".json").read_text())
    meta["context_class"] = "os:system"
    p.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ParameterError, match="context classes"):
        load_policy(p)
    meta["context_class"] = "mechgym.envs.model.context:AuctionContext"
    del meta["spec"]
    p.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ParameterError, match="incomplete or malformed"):
        load_policy(p)


def test_trust_model_lets_a_foreign_file_through(saved, tmp_path) -> None:
    p = tmp_path / "copy.zip"
    p.write_bytes(saved.read_bytes())
    meta = json.loads(saved.with_suffix(".json").read_text())
    del meta["sha256"]
    p.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ParameterError):
        load_policy(p)
    with trusted_models():
        load_policy(p)
    load_policy(p, trust=True)


@pytest.mark.parametrize("flag", ["--opponents", "--resume"])
def test_train_refuses_foreign_models_in_one_line(flag: str, tmp_path) -> None:
    evil = tmp_path / "evil.zip"
    _crafted_zip(evil)
    res = CliRunner().invoke(
        _app(),
        [
            *("train", "vcg", "--example", "ausubel-milgrom", flag, str(evil)),
            *("--steps", "64", "--out", str(tmp_path / "out"), "--no-progress"),
        ],
    )
    assert res.exit_code == 2, res.output
    assert "--trust-model" in res.output and "Traceback" not in res.output


def test_converge_unknown_mechanism_writes_nothing(tmp_path) -> None:
    out = tmp_path / "conv"
    res = CliRunner().invoke(
        _app(), ["converge", "best_beleif", "--quick", "--out", str(out), "--no-progress"]
    )
    assert res.exit_code == 2
    assert "did you mean 'best_belief'" in res.output
    assert not out.exists()
    with pytest.raises(ParameterError):
        check_mechanism_names(["nope"])


def test_converge_refuses_to_overwrite(tmp_path) -> None:
    from mechgym.training.converge import ConvergeConfig, run_converge

    out = tmp_path / "conv"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    res = CliRunner().invoke(_app(), ["converge", "--quick", "--out", str(out), "--no-progress"])
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (out / "summary.json").read_text() == "{}"
    with pytest.raises(MechgymError, match="already holds results"):
        run_converge(ConvergeConfig(out=str(out)), progress=False)


def test_train_refuses_to_overwrite(tmp_path) -> None:
    (tmp_path / "metrics.csv").write_text("old")
    res = CliRunner().invoke(
        _app(), ["train", "vcg", "--example", "ausubel-milgrom", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (tmp_path / "metrics.csv").read_text() == "old"


def test_converge_configs_in_experiments_load(tmp_path) -> None:
    from pathlib import Path

    configs = sorted(Path(__file__).parent.parent.glob("experiments/configs/*.yaml"))
    assert configs
    for path in configs:
        cfg = load_converge_config(path, out=str(tmp_path))
        assert cfg.out == str(tmp_path) and cfg.mechanisms
    quick = load_converge_config(
        Path(__file__).parent.parent / "experiments/configs/converge_quick.yaml", seeds=5
    )
    assert quick.seeds == 5 and quick.rounds == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("mechanisms: [best_belief]\nsteeps: 3\n")
    with pytest.raises(ContextFileError, match="steeps"):
        load_converge_config(bad)
