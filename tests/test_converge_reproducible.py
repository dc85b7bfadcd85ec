"""A rerun of ``converge`` on the same machine gives identical outputs, its learned figures
carry IQM and 95% intervals, and its tables read at 80 columns (issue 17, items 6 and 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mechgym.training.converge import ConvergeConfig, print_table, run_converge
from rich.console import Console

TIMINGS = {"wall_seconds", "wall_seconds_per_seed", "cpu_seconds_per_seed", "eval_seconds_per_seed"}


def _tiny(out: Path) -> ConvergeConfig:
    return ConvergeConfig(
        mechanisms=("best_belief",),
        seeds=2,
        rounds=1,
        steps=128,
        family=2,
        n_envs=8,
        jobs=1,
        save_models=False,
        out=str(out),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, dict]]:
    out = []
    for k in range(2):
        folder = tmp_path_factory.mktemp(f"converge_{k}")
        out.append((folder, run_converge(_tiny(folder), progress=False)))
    return out


def _figures(summary: dict) -> dict:
    """The summary without its timings (which differ between any two runs)."""
    s = json.loads(json.dumps(summary, default=str))
    s.pop("wall_seconds")
    assert set(s.pop("machine")) >= {"cpu", "cores", "versions", "commit"}  # load differs
    s["config"].pop("out")
    for m in s["mechanisms"].values():
        for key in TIMINGS:
            m.pop(key, None)
    return s


def test_a_rerun_is_identical(runs: list[tuple[Path, dict]]) -> None:
    (a, sa), (b, sb) = runs
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    assert _figures(sa) == _figures(sb)
    assert sa["config"]["torch_threads"] == 1


def test_learned_figures_have_iqm_and_interval(runs: list[tuple[Path, dict]]) -> None:
    s = runs[0][1]["mechanisms"]["best_belief"]
    figures = [p["agreement"] for p in s["phases"].values()]
    figures += [s["revenue_ratio"], s["exploitability"], s["guarantee_holds"]]
    for f in figures:
        assert f["n"] == 2
        assert f["ci_low"] <= f["iqm"] <= f["ci_high"]
        assert f["min"] <= f["ci_low"] and f["ci_high"] <= f["max"]
    assert any("IQM" in v for v in s["verdict"])


def test_tables_read_at_80_columns(runs: list[tuple[Path, dict]]) -> None:
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    print_table(runs[0][1], console)
    text = console.export_text()
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    assert "…" not in text
    for head in ("figure", "learned", "predicted", "verdict", "E[REV]/BB", "exploitability"):
        assert head in text
