"""CLI polish: full ids in ``list``, the agent profile and standard errors in ``evaluate``,
the guarantee judged with an interval, a hint for missing extras, ``converge --config``, no
stray SB3 temp folders."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from mechgym.envs.pettingzoo.registry import available
from typer.testing import CliRunner

from mechgym.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_list_prints_full_env_ids() -> None:
    res = CliRunner().invoke(app, ["list"], terminal_width=60)
    assert res.exit_code == 0
    for e in available():
        assert e.env_id in res.output


def test_evaluate_json_records_the_profile() -> None:
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "best_belief",
            "--agents",
            "predicted,underbid,predicted",
            "--exact",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["agents"] == ["predicted", "underbid", "predicted"]


def test_sampled_evaluation_reports_standard_errors_and_an_interval() -> None:
    res = CliRunner().invoke(
        app, ["evaluate", "budget_balanced_market", "--episodes", "300", "--json", "--seed", "4"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["revenue_stderr"] is not None and out["expected_welfare_stderr"] is not None
    assert len(out["expected_utilities_stderr"]) == len(out["expected_utilities"])
    g = out["guarantee"]
    lo, hi = g["interval"]
    assert lo <= g["value"] <= hi and g["stderr"] >= 0
    assert g["holds"] == (hi >= g["bound"] and all(p["holds"] for p in g.get("parts", [])))
    assert g["holds_point"] == (
        g["value"] >= g["bound"] and all(p["holds_point"] for p in g["parts"])
    )
    # printed as "statement: value ± stderr ≥ bound, holds"
    text = CliRunner().invoke(app, ["evaluate", "best_belief", "--episodes", "200"]).output
    assert "E[REV] >= BB/2 - eps:" in text and "≥ 74.9" in text


def test_sampled_guarantee_judged_with_the_interval() -> None:
    """A rare event: with 40 episodes the point estimate of P[...] may fall below 1 − δ
    while the interval still reaches it; the verdict follows the interval."""
    from mechgym.envs.engine.game import Guarantee, Mechanism
    from mechgym.envs.model.outcome import Outcome

    from mechgym.sampled import sampled_guarantee

    class Coin(Mechanism):
        def guarantee(self, ctx, ev):
            p = ev.probability(lambda o: o.rule == "a")
            return Guarantee("P[a] >= 9/10", type(p)(9, 10), p)

        start = node = validate = resolve = layout = action_mask = None
        decode = encode = public_size = public_features = None

    Coin.__abstractmethods__ = frozenset()
    a, b = Outcome((0, 0), (0, 0), rule="a"), Outcome((0, 0), (0, 0), rule="b")

    class Ctx:
        n = 2

        def welfare(self, o):
            return 0

        def utilities(self, o):
            return (0, 0)

    draws = [a] * 34 + [b] * 6  # 0.85 < 0.9, within sampling error of 40 draws
    g = sampled_guarantee(Coin(), Ctx(), draws, np.random.default_rng(0))
    assert g["holds_point"] is False and g["holds"] is True and g["interval"][1] >= 0.9
    clear = sampled_guarantee(Coin(), Ctx(), [a] * 5 + [b] * 35, np.random.default_rng(0))
    assert clear["holds"] is False


def test_missing_extra_gives_a_one_line_hint(monkeypatch, capsys, tmp_path) -> None:
    from mechgym import cli

    for mod in [m for m in sys.modules if m.split(".")[0] in ("stable_baselines3", "sb3_contrib")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)
    for mod in [
        m
        for m in sys.modules
        if m.startswith("mechgym.training.") and m != "mechgym.training.commands"
    ]:
        monkeypatch.delitem(sys.modules, mod)
    argv = ["mechgym", "train", "vcg", "--example", "ausubel-milgrom", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "'train' extra" in err and "\n" not in err and "Traceback" not in err


def test_no_stray_sb3_temp_folders(monkeypatch, tmp_path) -> None:
    from mechgym.envs.model.generators import make_generator
    from mechgym.training.multi import MultiLearner

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ctx = make_generator("uniform:n=3,m=2,cap=10,belief=noisy").sample(np.random.default_rng(1))
    tr = MultiLearner(
        "vcg", seed=0, contexts=[ctx], hyper={"n_steps": 64, "batch_size": 32, "n_epochs": 1}
    )
    tr.train_round(64)
    assert not list(tmp_path.glob("SB3-*"))


def test_converge_runs_a_config_file(tmp_path) -> None:
    import typer
    from mechgym.training.commands import add_commands

    sub = typer.Typer()
    add_commands(sub)
    out = tmp_path / "conv"
    res = CliRunner().invoke(
        sub,
        [
            "converge",
            "--config",
            str(ROOT / "experiments/configs/converge_quick.yaml"),
            *("--steps", "64", "--rounds", "1", "--family", "2", "--seeds", "1"),
            *("--jobs", "1", "--out", str(out), "--no-progress"),
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["quick"] is True and summary["config"]["seeds"] == 1
    assert "results written to" in res.output
    # the README names config files that exist
    readme = (ROOT / "README.md").read_text()
    for name in __import__("re").findall(r"experiments/configs/[\w.]+\.yaml", readme):
        assert (ROOT / name).exists(), name
