"""Bad numbers, options without effect, failed runs and models of another setting: each a
one-line error before anything is written (exit 2), or a failed run that says so (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mechgym.envs.engine.errors import ParameterError
from mechgym.envs.model.limits import COUNT_LIMITS, check_count
from typer.testing import CliRunner

from mechgym.cli import app

#: a training run that costs a couple of seconds: the exact env, one evaluation
TINY_TRAIN = ["--n-envs", "1", "--steps", "16", "--eval-every", "1000000", "--no-progress"]


def invoke(args: list[str]):
    return CliRunner().invoke(app, args)


def assert_one_line(res, code: int = 2) -> str:
    """The exit code, and exactly one line of output: an error, no traceback or panel."""
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in res.output and "╭" not in res.output
    return lines[0]


def nothing_in(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


# -- counts --------------------------------------------------------------------------------


def test_check_count_states_the_range() -> None:
    assert check_count(3, "--steps") == 3
    assert check_count(8.0, "family") == 8  # YAML may write 8.0
    for bad in (0, -1, 10**9 + 1, True, 1.5, "3", None):
        with pytest.raises(ParameterError, match=r"--steps: must be an integer in 1\.\."):
            check_count(bad, "--steps")
    assert COUNT_LIMITS["jobs"][0] == 0  # --jobs 0: one per core


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["train", "best_belief", "--steps", "-10"],
            "--steps: must be an integer in 1..1_000_000_000",
        ),
        (["train", "best_belief", "--eval-contexts", "0"], "--eval-contexts: must be"),
        (["train", "best_belief", "--n-envs", "0"], "--n-envs: must be"),
        (["train", "best_belief", "--eval-every", "-3"], "--eval-every: must be"),
        (["train", "best_belief", "--algo", "hedge", "--rounds", "0"], "--rounds: must be"),
        (["converge", "--steps", "-5"], "--steps: must be"),
        (["converge", "--seeds", "0"], "--seeds: must be an integer in 1..100"),
        (["converge", "--family", "0"], "--family: must be"),
        (["converge", "--rounds", "-2"], "--rounds: must be"),
        (["converge", "--jobs", "-1"], "--jobs: must be an integer in 0..1024"),
        (["converge", "--quick", "--n-envs", "0"], "--n-envs: must be"),
        (["benchmark", "run", "best-belief-v0", "--seeds", "101"], "--seeds: must be"),
        # found once the env or the model is built: still before the output folder
        (["train", "vcg", "--learner", "7"], "players [7] are outside 0..2"),
        (["train", "vcg", "--algo", "dqn", "--encoding", "raw"], "dqn needs a Discrete"),
    ],
)
def test_bad_input_refused_before_anything_is_written(args, needle, tmp_path) -> None:
    out = tmp_path / "out"
    line = assert_one_line(invoke([*args, "--out", str(out)]))
    assert needle in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["evaluate", "best_belief", "--episodes", "-5"], "--episodes: must be an integer"),
        (["evaluate", "best_belief", "--episodes", "0", "--batched"], "--episodes: must be"),
        (["evaluate", "best_belief", "--batched", "--batch-size", "0"], "--batch-size: must be"),
        (
            ["evaluate", "best_belief", "--generate", "uniform:n=3,m=2", "--contexts", "0"],
            "must be",
        ),
        # click's own usage errors, in the same one-line style
        (["evaluate", "best_belief", "--episodes", "abc"], "Invalid value for '--episodes'"),
        (["evaluate", "best_belief", "--nope"], "No such option: --nope"),
        (["evaluate"], "Missing argument"),
        (["bench", "--seconds", "-1"], "--seconds: must lie in (0, 600.0]"),
        (["bench", "--seconds", "nan"], "--seconds: must lie in"),
    ],
)
def test_bad_values_are_one_line_errors(args, needle) -> None:
    assert needle in assert_one_line(invoke(args))


def test_converge_config_file_counts_checked(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rounds: -2\nseeds: 1\n")
    out = tmp_path / "out"
    line = assert_one_line(invoke(["converge", "--config", str(cfg), "--out", str(out)]))
    assert "rounds: must be an integer" in line and "KeyError" not in line
    assert not out.exists()


# -- options that need another option --------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("evaluate best_belief --contexts 5", "--contexts: has no effect without --generate"),
        ("evaluate best_belief --batch-size 64", "--batch-size: has no effect without --batched"),
        ("evaluate best_belief --exact --episodes 9", "--episodes: has no effect with --exact"),
        ("train best_belief --rounds 5", "--rounds: has no effect with --algo maskable_ppo"),
        ("train best_belief --algo hedge --steps 64", "--steps: has no effect with --algo hedge"),
        ("train best_belief --algo hedge --n-envs 4", "--n-envs: has no effect"),
        ("train best_belief --example chen-micali-2016 --eval-contexts 4", "--eval-contexts: has"),
        ("train best_belief --trust-model", "--trust-model: has no effect without a model file"),
        ("converge --iterations 3", "--iterations: has no effect with --algo maskable_ppo"),
        ("converge --algo hedge --steps 64", "--steps: has no effect with --algo hedge"),
    ],
)
def test_options_without_effect_are_refused_with_a_hint(line, needle, tmp_path) -> None:
    out = tmp_path / "out"
    args = line.split()
    if args[0] != "evaluate":
        args = [*args, "--out", str(out)]
    assert needle in assert_one_line(invoke(args))
    assert not out.exists()


# -- a run whose every job failed ------------------------------------------------------------


def test_converge_where_every_job_fails_exits_non_zero(tmp_path) -> None:
    """Auction contexts for a market mechanism: every seed raises ContextError."""
    out = tmp_path / "out"
    res = invoke(
        [
            *("converge", "budget_balanced_market", "--generate", "uniform:n=3,m=2,cap=10"),
            *("--algo", "regret_matching", "--seeds", "2", "--rounds", "1", "--family", "2"),
            *("--jobs", "1", "--no-progress", "--out", str(out)),
        ]
    )
    line = assert_one_line(res, code=1)
    assert "no job succeeded (2 failed" in line and "ContextError" in line
    assert "results written" not in res.output
    assert not (out / "metrics.csv").exists()
    summary = json.loads((out / "summary.json").read_text())  # the tracebacks are kept
    assert summary["jobs_ok"] == 0 and summary["jobs_failed"] == 2
    assert summary["mechanisms"]["budget_balanced_market"]["status"] == "failed"


# -- models and their setting ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bb_model(tmp_path_factory) -> Path:
    """A tiny best_belief model saved by ``mechgym train``."""
    out = tmp_path_factory.mktemp("bb")
    res = invoke(["train", "best_belief", "--eval-contexts", "1", *TINY_TRAIN, "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out / "model.zip"


def test_sidecar_records_the_setting(bb_model) -> None:
    meta = json.loads(bb_model.with_suffix(".json").read_text())
    assert meta["sidecar_format"] == 2 and meta["mechanism"] == "best_belief"
    assert meta["spec"]["n"] == 3 and meta["spec"]["m"] == 2
    assert meta["action"] == {"encoding": "menu", "space": "Discrete", "sizes": [14]}
    obs = meta["observation"]
    assert obs["size"] == sum(size for _, size in obs["parts"])
    assert len(obs["fingerprint"]) == 16


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        # the README's own order: a best_belief model as vcg opponents (was KeyError 'owner_0')
        ("train vcg --example ausubel-milgrom --opponents", "mechanism best_belief (here vcg)"),
        ("train vcg --example ausubel-milgrom --resume", "mechanism best_belief (here vcg)"),
        # the batched path of the vectorised env checks the sizes too
        ("train best_belief --generate uniform:n=4,m=2,cap=10 --opponents", "n 3 (here 4)"),
        ("train best_belief --generate uniform:n=3,m=3 --n-envs 1 --opponents", "m 2 (here 3)"),
    ],
)
def test_a_model_of_another_setting_is_a_one_line_error(bb_model, line, needle, tmp_path) -> None:
    out = tmp_path / "out"
    res = invoke(
        [*line.split(), str(bb_model), "--steps", "16", "--no-progress", "--out", str(out)]
    )
    line = assert_one_line(res)
    assert needle in line and str(bb_model) in line
    assert nothing_in(out)


def test_benchmark_score_refuses_a_model_of_another_task(bb_model) -> None:
    line = assert_one_line(invoke(["benchmark", "score", "vcg-v0", "--agents", str(bb_model)]))
    assert "mechanism best_belief (here vcg)" in line
    res = invoke(["benchmark", "score", "best-belief-v0", "--agents", str(bb_model), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["task"] == "best-belief-v0"


def test_a_changed_observation_layout_asks_to_retrain(bb_model, tmp_path) -> None:
    from mechgym.training.policies import load_policy

    p = tmp_path / "m.zip"
    p.write_bytes(bb_model.read_bytes())
    meta = json.loads(bb_model.with_suffix(".json").read_text())
    meta["observation"]["fingerprint"] = "0" * 16
    p.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ParameterError, match=r"observation layout 0{16};.*retrain"):
        load_policy(p)
    meta["spec"]["n"] = 4  # a sidecar that does not belong to the model
    del meta["observation"]
    p.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ParameterError, match=r"reads observations of shape \(102,\)"):
        load_policy(p)


def test_an_old_sidecar_is_checked_on_what_it_records(bb_model, tmp_path) -> None:
    """Sidecars written before the setting fields: mechanism, sizes and encoding are still
    compared, and the spaces rebuilt from them against the model's own."""
    from mechgym.envs.engine.game import EnvSpec
    from mechgym.training.policies import load_policy

    p = tmp_path / "old.zip"
    p.write_bytes(bb_model.read_bytes())
    meta = json.loads(bb_model.with_suffix(".json").read_text())
    for k in ("sidecar_format", "action", "observation"):
        del meta[k]
    p.with_suffix(".json").write_text(json.dumps(meta))
    spec = EnvSpec(n=3, m=2, value_cap=20, price_cap=40)
    assert load_policy(p, mechanism="best_belief", spec=spec).builder.size == 102
    with pytest.raises(ParameterError, match=r"mechanism best_belief \(here vcg\)"):
        load_policy(p, mechanism="vcg", spec=spec)


def test_converge_judges_options_by_the_configs_algorithm(tmp_path) -> None:
    """A config's ``algo`` is the one that runs (not the CLI's default), so it decides which
    of the typed options apply."""
    cfg = tmp_path / "nr.yaml"
    cfg.write_text(
        "mechanisms: [vcg]\nalgo: hedge\ngenerator: 'uniform:n=2,m=1,cap=3'\n"
        "seeds: 1\nrounds: 1\nfamily: 1\njobs: 1\n"
    )
    refused = tmp_path / "refused"
    line = assert_one_line(
        invoke(["converge", "--config", str(cfg), "--steps", "5", "--out", str(refused)])
    )
    assert "--steps: has no effect with --algo hedge" in line and not refused.exists()
    out = tmp_path / "out"
    res = invoke(
        ["converge", "--config", str(cfg), "--iterations", "2", "--out", str(out), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    config = json.loads((out / "summary.json").read_text())["config"]
    assert (config["algo"], config["iterations"], config["jobs"]) == ("hedge", 2, 1)


def test_caps_count_where_they_change_the_layout() -> None:
    """The raw encoding's action space grows with the caps; a menu's does not."""
    from mechgym.envs.model.generators import make_generator
    from mechgym.training.learner_env import LearnerEnv
    from mechgym.training.sidecar import differences

    def meta(encoding: str, cap: int) -> dict:
        gen = make_generator(f"uniform:n=2,m=1,cap={cap}")
        return LearnerEnv("vcg", 0, encoding=encoding, generator=gen).meta()

    raw = differences(meta("raw", 3), meta("raw", 5))
    assert raw[0].startswith("action space MultiDiscrete(4) (here MultiDiscrete(6))")
    assert "value_cap 3 (here 5)" in raw
    assert differences(meta("menu", 3), meta("menu", 5)) == []
    assert differences(meta("raw", 3), meta("menu", 3)) == ["encoding multidiscrete (here menu)"]
