"""converge from scratch: initial profile, scheme and encoding options, a held-out evaluation
family, and learning curves with IQM and 95% intervals."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import typer
from mechgym.training.algos import configure_torch
from mechgym.training.commands import add_commands
from mechgym.training.converge import (
    ConvergeConfig,
    eval_family_contexts,
    family_contexts,
    overlap,
)
from mechgym.training.curves import learning_curves
from typer.testing import CliRunner


@pytest.fixture(autouse=True, scope="module")
def _torch() -> None:
    configure_torch(1)


def _app() -> typer.Typer:
    app = typer.Typer()
    add_commands(app)
    return app


def test_held_out_family_is_drawn_with_another_seed() -> None:
    cfg = ConvergeConfig(family=16)
    _, train = family_contexts("best_belief", cfg)
    _, held = eval_family_contexts("best_belief", cfg)
    assert len(held) == 16
    assert overlap(train, held) == 0
    assert overlap(train, train) == 16
    # an explicit seed equal to the training one gives the training family back
    _, same = eval_family_contexts("best_belief", ConvergeConfig(family=16, eval_family_seed=2024))
    assert overlap(train, same) == 16
    _, four = eval_family_contexts("best_belief", ConvergeConfig(family=16, eval_family=4))
    assert len(four) == 4


def test_converge_from_random_init_reports_held_out_and_train(tmp_path) -> None:
    out = tmp_path / "conv"
    res = CliRunner().invoke(
        _app(),
        [
            "converge",
            "vcg",
            "--seeds",
            "2",
            "--steps",
            "64",
            "--rounds",
            "2",
            "--family",
            "3",
            "--eval-family",
            "4",
            "--init",
            "random",
            "--scheme",
            "ibr",
            "--n-envs",
            "4",
            "--out",
            str(out),
            "--no-progress",
            "--jobs",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["init"] == "random" and summary["config"]["scheme"] == "ibr"
    s = summary["mechanisms"]["vcg"]
    assert s["evaluated_on"] == "heldout"
    assert s["contexts"]["eval_family"] == 4 and s["contexts"]["eval_family_seed"] == 2025
    assert s["contexts"]["eval_overlap"] == 0
    assert "train_family" in s and s["train_family"]["phases"]
    assert s["exploitability_space"].startswith("menu options")
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["family"] for r in rows} == {"heldout", "train"}
    # held-out every round; the training family before the first and after the last
    assert {r["round"] for r in rows if r["family"] == "train"} == {"0", "2"}
    with (out / "curves.csv").open() as fh:
        curves = list(csv.DictReader(fh))
    held = [c for c in curves if c["family"] == "heldout" and c["metric"] == "agreement"]
    assert {c["round"] for c in held} == {"0", "1", "2"}
    for c in curves:
        assert float(c["ci_low"]) <= float(c["iqm"]) + 1e-12
        assert float(c["iqm"]) <= float(c["ci_high"]) + 1e-12
    assert (out / "vcg_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "vcg_curves.png" in s["plots"]


def test_unknown_init_is_one_line(tmp_path) -> None:
    res = CliRunner().invoke(
        _app(),
        ["converge", "--init", "nonsense", "--out", str(tmp_path / "x"), "--no-progress"],
    )
    assert res.exit_code == 2
    assert "nonsense" in res.output and "Traceback" not in res.output


def test_learning_curves_aggregate_seeds_per_round() -> None:
    rows = [
        {
            "mechanism": "m",
            "family": "heldout",
            "seed": s,
            "round": r,
            "steps": 100 * r,
            "metric": "agreement",
            "key": "respond",
            "value": v,
        }
        for s, vals in enumerate([[0.0, 0.5], [0.2, 0.7], [0.4, 0.9], [None, 1.0]])
        for r, v in enumerate(vals)
    ]
    rows.append({**rows[0], "metric": "not_a_curve"})
    curves = learning_curves(rows)
    assert [(c["round"], c["seeds"]) for c in curves] == [(0, 3), (1, 4)]
    last = curves[1]
    assert last["mean"] == pytest.approx(np.mean([0.5, 0.7, 0.9, 1.0]))
    assert last["min"] == 0.5 and last["max"] == 1.0
    assert last["ci_low"] <= last["iqm"] <= last["ci_high"]
    # seeded bootstrap: a rerun gives the same interval
    assert learning_curves(rows) == curves


def _study_module(monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root / "experiments"))
    spec = importlib.util.spec_from_file_location(
        "learning_from_scratch", root / "experiments" / "learning_from_scratch.py"
    )
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "learning_from_scratch", mod)
    spec.loader.exec_module(mod)
    return mod


def test_study_encoding_tokens_name_a_price_grid(monkeypatch) -> None:
    mod = _study_module(monkeypatch)
    assert mod.split_encoding("factored") == ("factored", "linear")
    assert mod.split_encoding("factored+own-lower-bounds") == ("factored", "own-lower-bounds")
    args = mod.parse_args(["--encodings", "continuous+geometric", "--quick"])
    cfg, _ = mod.cell_config("best_belief", args.encodings[0], "random", "simultaneous", args, ".")
    assert (cfg.encoding, cfg.price_grid) == ("continuous", "geometric")
    for bad in ("menu+geometric", "factored+nonsense", "tabular+linear"):
        with pytest.raises(SystemExit):
            mod.parse_args(["--encodings", bad])


def test_study_hyper_settings_reach_every_cell(monkeypatch) -> None:
    """``--hyper NAME=VALUE``: the batched learner's settings for every cell (a comma list is
    a tuple of widths), stated in the tables' text; unknown names and bad values stop the
    script before any cell runs."""
    mod = _study_module(monkeypatch)
    args = mod.parse_args(["--hyper", "hidden=256,256", "entropy_coef=0.05", "epochs=4"])
    assert args.hyper == {"hidden": (256, 256), "entropy_coef": 0.05, "epochs": 4}
    cfg, _ = mod.cell_config("best_belief", "factored", "random", "alternating", args, ".")
    assert cfg.hyper == args.hyper and cfg.scheme == "alternating"
    assert "MLP 256×256" in mod._ppo_settings(args.hyper)
    assert "entropy 0.05" in mod._ppo_settings(args.hyper)
    assert mod.parse_args([]).hyper == {}
    for bad in (["widths=3"], ["hidden=a,b"], ["epochs=0"], ["learning_rate"]):
        with pytest.raises(SystemExit):
            mod.parse_args(["--hyper", *bad])


def test_learning_from_scratch_study_script(tmp_path, monkeypatch) -> None:
    mod = _study_module(monkeypatch)
    out = tmp_path / "study"
    argv = ["--out", str(out), "--mechanisms", "vcg", "--encodings", "menu", "no_such"]
    argv += ["--inits", "random", "--schemes", "independent", "--seeds", "2", "--jobs", "1"]
    argv += ["--budget", "384", "--rounds", "1", "--family", "2"]
    assert mod.main(argv) == 0
    with (out / "study.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    ok = [r for r in rows if r["status"] == "ok"]
    assert [(r["encoding"], r["phase"]) for r in ok] == [("menu", "report")]
    assert ok[0]["decisions_per_run"] == "384"
    assert 0.0 <= float(ok[0]["agreement_iqm"]) <= 1.0
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert skipped and "no_such" in skipped[0]["reason"]
    text = (out / "tables.md").read_text()
    assert "| vcg | menu | random | independent | 2 | 384 | report |" in text
    # VCG has neither YES/NO nor bound phases: nothing to plot
    assert not (out / "study.png").exists()
    # a rerun with --reuse keeps the finished cell
    assert mod.main([*argv, "--reuse"]) == 0
    study = json.loads((out / "study.json").read_text())
    assert study["vcg/menu-random-independent"]["reused"] is True
    # --aggregate runs nothing: the finished cell is tabled, a cell never run is left out
    more = [*argv[:5], "menu", "factored", *argv[7:], "--aggregate"]
    assert mod.main(more) == 0
    text = (out / "tables.md").read_text()
    assert "| vcg | menu | random | independent | 2 | 384 | report |" in text
    assert "factored" not in text.split("|---|")[-1]
    assert not (out / "cells" / "vcg" / "factored-random-independent").exists()


def test_simultaneous_scheme_learns_all_players_at_once_on_held_out(tmp_path) -> None:
    from mechgym.envs.engine.errors import ParameterError
    from mechgym.training.converge import run_converge

    cfg = ConvergeConfig(
        mechanisms=("best_belief",),
        seeds=2,
        rounds=2,
        steps=256,
        family=3,
        eval_family=3,
        scheme="simultaneous",
        jobs=1,
        out=str(tmp_path / "sim"),
        hyper={"batch_size": 64},
    )
    summary = run_converge(cfg, progress=False)
    s = summary["mechanisms"]["best_belief"]
    assert s["status"] == "ok", s
    assert s["evaluated_on"] == "heldout" and s["groups"] == [[0], [1], [2]]
    # every player learned: each round collects at least steps x players decisions
    assert s["steps_per_seed"] >= 2 * 256 * 3
    with (tmp_path / "sim" / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["round"] for r in rows} == {"0", "1", "2"}
    assert {r["family"] for r in rows} == {"heldout", "train"}
    # same seed, same run: the seeded batched learner reproduces its figures
    again = run_converge(
        ConvergeConfig(**{**cfg.__dict__, "out": str(tmp_path / "sim2")}), progress=False
    )
    with (tmp_path / "sim2" / "metrics.csv").open() as fh:
        assert list(csv.DictReader(fh)) == rows
    assert again["mechanisms"]["best_belief"]["status"] == "ok"
    with pytest.raises(ParameterError, match="read from a box"):
        run_converge(
            ConvergeConfig(
                scheme="simultaneous",
                init="predicted",
                encoding="continuous",
                out=str(tmp_path / "x"),
            ),
            progress=False,
        )
    assert not (tmp_path / "x").exists()


def test_alternating_best_response_rounds_on_the_batched_path(tmp_path) -> None:
    """``--scheme alternating``: best-response rounds with the batched learner; every player
    trains its own budget in each round (so the total matches simultaneous learning's), the
    run is seeded, and a cloned start is imitated before round 0 as in ``simultaneous``;
    ``fictitious`` runs the same rounds against the others' past actors."""
    from mechgym.training.converge import run_converge

    cfg = _tiny_simultaneous(
        tmp_path / "alt", scheme="alternating", rounds=2, family=3, encoding="factored"
    )
    summary = run_converge(cfg, progress=False)
    s = summary["mechanisms"]["best_belief"]
    assert s["status"] == "ok", s
    assert summary["config"]["scheme"] == "alternating"
    assert s["steps_per_seed"] >= 2 * 256 * 3 and s["idle_rounds"] == {"0": {}}
    with (tmp_path / "alt" / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["round"] for r in rows} == {"0", "1", "2"}
    again = run_converge(replace(cfg, out=str(tmp_path / "alt2")), progress=False)
    assert again["mechanisms"]["best_belief"]["status"] == "ok"
    with (tmp_path / "alt2" / "metrics.csv").open() as fh:
        assert list(csv.DictReader(fh)) == rows
    # the two batched schemes are different dynamics from the same seed
    sim = run_converge(
        replace(cfg, scheme="simultaneous", out=str(tmp_path / "sim")), progress=False
    )
    assert sim["mechanisms"]["best_belief"]["status"] == "ok"
    with (tmp_path / "sim" / "metrics.csv").open() as fh:
        sim_rows = list(csv.DictReader(fh))
    assert [r for r in sim_rows if r["round"] == "0"] == [r for r in rows if r["round"] == "0"]
    assert sim_rows != rows
    # fictitious: the same rounds against the others' past actors (one drawn per episode)
    fict = run_converge(
        replace(cfg, scheme="fictitious", out=str(tmp_path / "fict")), progress=False
    )
    f = fict["mechanisms"]["best_belief"]
    assert f["status"] == "ok" and f["steps_per_seed"] >= 2 * 256 * 3
    with (tmp_path / "fict" / "metrics.csv").open() as fh:
        fict_rows = list(csv.DictReader(fh))
    assert [r for r in fict_rows if r["round"] == "0"] == [r for r in rows if r["round"] == "0"]
    assert fict_rows != rows
    cloned = run_converge(
        replace(cfg, init="predicted", encoding="menu", rounds=1, out=str(tmp_path / "c")),
        progress=False,
    )
    c = cloned["mechanisms"]["best_belief"]
    assert c["status"] == "ok" and c["imitation"]["0"]["agreement"] >= 0.9


def test_simultaneous_learners_start_at_the_prediction_by_imitation(tmp_path) -> None:
    """``--init predicted`` with ``--scheme simultaneous``: the actors imitate the predicted
    profile before round 0, so round 0 plays it on the held-out family (YES/NO agreement and
    bounds at the predicted profile's), where random weights do not."""
    from mechgym.training.converge import run_converge

    def round0(init: str) -> dict:
        cfg = ConvergeConfig(
            mechanisms=("best_belief",),
            seeds=1,
            rounds=1,
            steps=2048,
            family=8,
            eval_family=8,
            scheme="simultaneous",
            init=init,
            jobs=1,
            out=str(tmp_path / init),
            hyper={"batch_size": 256},
        )
        summary = run_converge(cfg, progress=False)
        s = summary["mechanisms"]["best_belief"]
        assert s["status"] == "ok"
        if init == "random":
            assert s["imitation"] is None
        else:
            clone = s["imitation"]["0"]
            assert clone["decisions"] >= 2048 * 3 and clone["expressible"] == 1.0
            assert clone["agreement"] >= 0.95
        with (tmp_path / init / "metrics.csv").open() as fh:
            rows = [r for r in csv.DictReader(fh) if r["family"] == "heldout"]
        rows = [r for r in rows if r["round"] == "0"]
        return {(r["metric"], r["key"]): r["value"] for r in rows}

    imitated, fresh = round0("predicted"), round0("random")
    assert float(imitated[("agreement", "respond")]) >= 0.95
    assert float(imitated[("bound_satisfied", "announce")]) >= 0.95
    assert float(fresh[("bound_satisfied", "announce")]) < 0.95


def _tiny_simultaneous(out, **kw) -> ConvergeConfig:
    """One seed, one round of 256 steps per player: a simultaneous M1 run for wiring checks."""
    base = {
        "mechanisms": ("best_belief",),
        "seeds": 1,
        "rounds": 1,
        "steps": 256,
        "scheme": "simultaneous",
        "jobs": 1,
        "out": str(out),
        "hyper": {"batch_size": 64},
        "exploitability": False,
    }
    return ConvergeConfig(**{**base, **kw})


def test_simultaneous_continuous_without_question_features(tmp_path) -> None:
    """The Beta-headed batched learner runs the continuous encoding; ``features=False``
    leaves the observations the AEC vector (and the move so far) alone."""
    from mechgym.training.converge import run_converge

    cfg = _tiny_simultaneous(tmp_path / "c", family=3, encoding="continuous", features=False)
    summary = run_converge(cfg, progress=False)
    assert summary["mechanisms"]["best_belief"]["status"] == "ok"
    assert summary["config"]["features"] is False and summary["config"]["encoding"] == "continuous"
    # the learned actors are saved per seed and load back as they were trained
    from mechgym.training.batched_policy import BatchedLearnedPolicy

    path = tmp_path / "c" / "checkpoints" / "best_belief" / "seed_0" / "policy.pt"
    policy = BatchedLearnedPolicy.load(path)
    assert policy.encoding == "continuous" and not policy.features
    assert policy.players == [0, 1, 2]


def test_full_space_exploitability_of_the_final_profile(tmp_path) -> None:
    """With ``full_space_limit``, the final held-out evaluation adds each player's exact best
    response over every legal action (M1 at n=3, m=2: 3,600 announcements), beside the
    menus' lower bound; beyond the limit the figure is left out, not approximated."""
    from mechgym.envs.engine.errors import ParameterError
    from mechgym.training.converge import FULL_SPACE_LABEL, run_converge

    base = {
        "mechanisms": ("best_belief",),
        "seeds": 1,
        "rounds": 1,
        "steps": 128,
        "family": 1,
        "scheme": "simultaneous",
        "encoding": "factored",
        "jobs": 1,
        "hyper": {"batch_size": 64},
        "save_models": False,
    }
    cfg = ConvergeConfig(**base, out=str(tmp_path / "f"), full_space_limit=4096)
    s = run_converge(cfg, progress=False)["mechanisms"]["best_belief"]
    assert s["exploitability_full_space"] == FULL_SPACE_LABEL
    assert s["exploitability_full"]["n"] == 1 and s["exploitability_full"]["min"] >= 0
    assert s["exploitability_full_reference"] >= 0
    with (tmp_path / "f" / "metrics.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == "exploitability_full"]
    assert {(r["round"], r["family"], r["key"]) for r in rows} == {
        ("1", "heldout", k) for k in ("0", "1", "2")
    }
    # 3,600 announcements exceed a limit of 1000: no full-space figure
    small = ConvergeConfig(**base, out=str(tmp_path / "s"), full_space_limit=1000)
    t = run_converge(small, progress=False)["mechanisms"]["best_belief"]
    assert t["exploitability_full_space"] is None and t["exploitability_full"]["n"] == 0
    with pytest.raises(ParameterError, match="full-space-limit"):
        run_converge(ConvergeConfig(**base, out=str(tmp_path / "x"), full_space_limit=-1))
    assert not (tmp_path / "x").exists()
    result = CliRunner().invoke(_app(), ["converge", "--full-space-limit", "100000"])
    assert result.exit_code != 0 and "full-space-limit" in result.output


def test_price_grid_reaches_the_learners_and_their_checkpoints(tmp_path) -> None:
    """``price_grid`` is the factored encoding's grid in the simultaneous learners: on the
    players' own lower bounds every predicted M1 offer is a grid point (its clone is exact),
    and the saved actors keep the grid they were trained on; ``hyper["critic_warmup"]``
    fits the critics to the clone before PPO."""
    from mechgym.training.batched_policy import BatchedLearnedPolicy
    from mechgym.training.converge import run_converge

    cfg = _tiny_simultaneous(
        tmp_path / "olb",
        family=4,
        encoding="factored",
        price_grid="own-lower-bounds",
        init="predicted",
        hyper={"batch_size": 64, "imitation_epochs": 2, "critic_warmup": 2},
    )
    summary = run_converge(cfg, progress=False)
    s = summary["mechanisms"]["best_belief"]
    assert s["status"] == "ok", s
    assert summary["config"]["price_grid"] == "own-lower-bounds"
    assert all(c["expressible"] == 1.0 for c in s["imitation"].values())
    # the critics were fitted to the clone's returns before PPO, outside the budget
    assert [c["critic_warmup"]["updates"] for c in s["imitation"].values()] == [2]
    path = tmp_path / "olb" / "checkpoints" / "best_belief" / "seed_0" / "policy.pt"
    assert BatchedLearnedPolicy.load(path).price_grid == "own-lower-bounds"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--encoding", "factored", "--price-grid", "nonsense"], "nonsense"),
        (["--encoding", "factored", "--price-levels", "1"], "2..256"),
        (["--encoding", "menu", "--price-grid", "geometric"], "factored and continuous"),
    ],
)
def test_bad_price_grid_is_one_line(tmp_path, args, needle) -> None:
    out = tmp_path / "x"
    res = CliRunner().invoke(
        _app(), ["converge", *args, "--out", str(out), "--no-progress", "--quick"]
    )
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not out.exists()
