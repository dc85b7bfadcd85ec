"""A property of every numeric option of the CLI: for any integer (0, negatives, huge), the
command exits 0 with valid outputs, or exits 2 with exactly one line of error, no traceback
and nothing written; never anything else.

Out-of-range draws are unbounded (below the lower end, above the upper end, and a few fixed
extremes). In-range draws are kept to values that run in about a second on tiny contexts
(the range of a cheap option is drawn whole), so the test fits CI on two cores. Every option
also tries one in-range value and the value just below its range, so that both outcomes are
exercised whatever hypothesis draws.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mechgym.envs.model.limits import COUNT_LIMITS, MAX_SEED
from typer.testing import CliRunner

from mechgym.cli import app

#: tiny contexts: two players, one good
TINY = "uniform:n=2,m=1,cap=3"
SB3 = ["--eval-every", "1000000", "--eval-contexts", "1", "--no-progress"]
CONVERGE = {
    "--seeds": "1",
    "--rounds": "1",
    "--family": "1",
    "--iterations": "1",
    "--jobs": "1",
}


def json_report(out: Path, stdout: str) -> None:
    report = json.loads(stdout)
    assert math.isfinite(report["expected_revenue"])


def played(out: Path, stdout: str) -> None:
    assert "revenue" in stdout and "utilities" in stdout


def trained(out: Path, stdout: str) -> None:
    report = json.loads((out / "metrics.json").read_text())
    assert report["final"] is not None and "results written" in stdout


def trained_model(out: Path, stdout: str) -> None:
    trained(out, stdout)
    meta = json.loads((out / "model.json").read_text())
    assert meta["sidecar_format"] == 2 and (out / "model.zip").is_file()


def converged(out: Path, stdout: str) -> None:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mechanisms"]["vcg"]["status"] == "ok"
    assert (out / "metrics.csv").is_file() and "results written" in stdout


def benchmarked(out: Path, stdout: str) -> None:
    assert "aggregate" in json.loads(stdout) and (out / "results.json").is_file()


@dataclass(frozen=True)
class Case:
    """One numeric option of one command: the command line around it, its stated range, the
    in-range values drawn, and the check of a successful run's outputs."""

    base: tuple[str, ...]
    option: str
    lo: int
    hi: int
    valid: st.SearchStrategy[int]
    ok: Callable[[Path, str], None]
    writes: bool = True
    typical: int | None = None

    def __str__(self) -> str:
        return f"{self.base[0]} {self.option}"

    @property
    def tried(self) -> list[int]:
        """Values every run tries besides the draws: an in-range one (``typical``, else the
        lower end) and one just outside."""
        return [self.lo if self.typical is None else self.typical, self.lo - 1]


def count(name: str) -> tuple[int, int]:
    return COUNT_LIMITS[name]


def converge_case(option: str, valid: st.SearchStrategy[int]) -> Case:
    rest = [x for k, v in CONVERGE.items() if k != option for x in (k, v)]
    base = ("converge", "vcg", "--generate", TINY, "--algo", "regret_matching", *rest)
    return Case((*base, "--no-progress"), option, *count(option[2:]), valid, converged)


def converge_sb3_case(option: str, value: int) -> Case:
    """The deep-RL path (MaskablePPO): one in-range value, a few seconds a run."""
    rest = {"--steps": "16", "--n-envs": "2"}
    rest.pop(option)
    base = ("converge", "vcg", "--generate", TINY, *CONVERGE_SB3, *rest.popitem())
    lo, hi = count(option[2:])
    return Case(base, option, lo, hi, st.just(value), converged, typical=value)


CONVERGE_SB3 = ("--seeds", "1", "--rounds", "1", "--family", "1", "--jobs", "1", "--no-progress")
EVAL = ("evaluate", "vcg", "--example", "ausubel-milgrom", "--json")
CASES = [
    Case(EVAL, "--episodes", *count("episodes"), st.integers(1, 40), json_report, False),
    Case(
        (*EVAL, "--batched", "--episodes", "64"),
        "--batch-size",
        *count("batch-size"),
        st.integers(1, count("batch-size")[1]),
        json_report,
        False,
    ),
    Case(
        ("evaluate", "vcg", "--generate", TINY, "--exact", "--json"),
        "--contexts",
        *count("contexts"),
        st.integers(1, 4),
        lambda out, stdout: json.loads(stdout),
        False,
    ),
    Case(("play", "vcg"), "--seed", 0, MAX_SEED, st.integers(0, MAX_SEED), played, False),
    Case(
        ("train", "vcg", "--generate", TINY, "--algo", "regret_matching", "--eval-contexts", "1"),
        "--rounds",
        *count("rounds"),
        st.integers(1, 3),
        trained,
    ),
    Case(
        ("train", "vcg", "--generate", TINY, "--algo", "regret_matching", "--rounds", "1"),
        "--eval-contexts",
        *count("eval-contexts"),
        st.integers(1, 3),
        trained,
    ),
    Case(
        ("train", "vcg", "--generate", TINY, "--n-envs", "1", *SB3),
        "--steps",
        *count("steps"),
        st.just(16),
        trained_model,
        typical=16,
    ),
    Case(
        ("train", "vcg", "--generate", TINY, "--steps", "16", *SB3),
        "--n-envs",
        *count("n-envs"),
        st.just(2),
        trained_model,
        typical=2,
    ),
    Case(
        ("train", "vcg", "--generate", TINY, "--n-envs", "1", "--steps", "16", "--no-progress"),
        "--eval-every",
        *count("eval-every"),
        st.just(10**6),
        trained_model,
        typical=10**6,
    ),
    Case(
        ("train", "vcg", "--generate", TINY, "--algo", "regret_matching", "--rounds", "1"),
        "--seed",
        0,
        MAX_SEED,
        st.integers(0, MAX_SEED),
        trained,
    ),
    Case((*EVAL, "--exact"), "--seed", 0, MAX_SEED, st.integers(0, MAX_SEED), json_report, False),
    converge_sb3_case("--steps", 16),
    converge_sb3_case("--n-envs", 2),
    converge_case("--seeds", st.just(1)),
    converge_case("--rounds", st.integers(1, 2)),
    converge_case("--family", st.integers(1, 2)),
    converge_case("--iterations", st.integers(1, 2)),
    converge_case("--jobs", st.integers(0, 1)),
    Case(
        ("benchmark", "run", "vcg-v0", "--quick", "--json"),
        "--seeds",
        *count("seeds"),
        st.just(1),
        benchmarked,
    ),
]


def out_of_range(lo: int, hi: int) -> st.SearchStrategy[int]:
    extremes = [lo - 1, hi + 1, -1, 0, -(2**63), 2**63, 10**30]
    return st.one_of(
        st.integers(max_value=lo - 1),
        st.integers(min_value=hi + 1),
        st.sampled_from([x for x in extremes if not lo <= x <= hi]),
    )


#: one run per command line: hypothesis may draw a value twice
_RUNS: dict[tuple[str, ...], tuple[int, str, str, Path]] = {}


def run(case: Case, value: int, root: Path) -> tuple[int, str, str, Path]:
    argv = (*case.base, case.option, str(value))
    if argv not in _RUNS:
        out = Path(tempfile.mkdtemp(dir=root)) / "out"
        args = [*argv, "--out", str(out)] if case.writes else list(argv)
        res = CliRunner().invoke(app, args)
        assert res.exception is None or isinstance(res.exception, SystemExit), (
            args,
            res.exception,
        )
        _RUNS[argv] = (res.exit_code, res.stdout, res.output, out)
    return _RUNS[argv]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_numeric_options_exit_0_with_outputs_or_2_with_one_line(case: Case, tmp_path) -> None:
    key = (*case.base, case.option)

    @settings(
        max_examples=5,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(value=st.one_of(out_of_range(case.lo, case.hi), case.valid))
    def prop(value: int) -> None:
        code, stdout, output, out = run(case, value, tmp_path)
        assert "Traceback" not in output and "╭" not in output, output
        if case.lo <= value <= case.hi:  # drawn from the in-range values: they all run
            assert code == 0, (value, output)
            case.ok(out, stdout)
            return
        assert code == 2, (value, code, output)
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), output
        assert case.option in lines[0], lines[0]
        assert not out.exists(), "a refused command wrote its output folder"

    for value in case.tried:
        prop = example(value=value)(prop)
    prop()
    # both outcomes were exercised: the property did not pass on refusals alone
    codes = {code for argv, (code, *_) in _RUNS.items() if argv[: len(case.base) + 1] == key}
    assert codes == {0, 2}, codes
