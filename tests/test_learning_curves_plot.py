"""The README's learning-curve figure: every mechanism keeps its own curves, and a panel
without data says why instead of staying empty (issue 17, item 6)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
COLS = ["mechanism", "seed", "round", "steps", "metric", "key", "value"]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location(
        "speed_and_convergence", ROOT / "experiments" / "speed_and_convergence.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(path: Path, mechs: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLS)
        w.writeheader()
        for m in mechs:
            for r, steps in enumerate((0, 512)):
                row = [m, 0, r, steps, "agreement", "respond", 0.5 + r / 4]
                w.writerow(dict(zip(COLS, row, strict=True)))


def test_a_later_run_in_the_same_folder_keeps_earlier_curves(script, tmp_path: Path) -> None:
    # two --together runs share converge/together/: the second replaced the first's rows
    shared = tmp_path / "metrics.csv"
    _write(shared, ["knowledge_benchmark", "normal_form"])
    kept = script.keep_curves(shared, "normal_form", tmp_path / "curves")
    _write(shared, ["collusion_leveraging"])
    fig, (a, b) = plt.subplots(1, 2)
    assert script.curve_panel(a, "normal_form", kept)
    assert len(a.lines) == 2  # the curve and the 0.95 line
    assert not script.curve_panel(b, "knowledge_benchmark", shared)
    assert "no agreement rows" in b.texts[0].get_text()
    plt.close(fig)


def test_a_missing_file_is_named_on_the_panel(script, tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    assert not script.curve_panel(ax, "best_belief", tmp_path / "gone.csv")
    assert "gone.csv: file missing" in ax.texts[0].get_text()
    plt.close(fig)


def test_convergence_tables_show_phases_and_outcomes(script) -> None:
    mod = script
    stat = {"mean": 0.5, "std": 0.1, "min": 0.4}
    phase = {
        "agreement": stat,
        "converged": False,
        "visit_mass": {"mean": 3.0},
        "disagreement_loss": {"mean": 0.25},
    }
    conv = {
        "best_belief": {
            "status": "ok",
            "phases": {"respond": phase},
            "revenue_ratio": stat,
            "revenue_ratio_reference": 0.49,
            "revenue_benchmark": "BB",
            "welfare_ratio": stat,
            "welfare_ratio_reference": 0.7,
            "guarantee_holds": {"mean": 1.0, "std": 0.0},
            "guarantee_holds_reference": 1.0,
            "exploitability": stat,
            "exploitability_reference": 0.65,
            "config": {"seeds": 2, "rounds": 1, "steps": 8, "family": 2, "n_envs": 4, "jobs": 1},
        }
    }
    info = {"cpu": "cpu", "cores": 2, "platform": "p", "python": "3.11", "versions": {}}
    text = mod.tables({**info, "commit": "abc", "load_average": [0.5]}, None, conv)
    assert "| M1 best_belief | respond | 0.50 ± 0.10, 0.40 | not converged |" in text
    assert "| M1 | 0.50 ± 0.10 (0.49) / BB | 0.50 ± 0.10 (0.70) | 1.00 ± 0.00 (1.00) |" in text
    assert "held-out family" in text
