"""CLI tables read at 80 columns, ``--json`` stays complete, JSON fields say what they mean,
sampled figures show their standard errors (issue 17, item 7)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mechgym.cli import app


def _run(args: list[str], columns: int = 80) -> str:
    res = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.stdout


def _fits(text: str, width: int = 80) -> None:
    lines = text.splitlines()
    assert lines and max(map(len, lines)) <= width, max(lines, key=len)
    assert "…" not in text  # nothing cut off


def test_benchmark_list_at_80_columns() -> None:
    from mechgym.benchmark.tasks import TASKS

    text = _run(["benchmark", "list"])
    _fits(text)
    for t in TASKS.values():
        assert t.id in text and t.mechanism in text
    for head in ("task", "focal", "background", "random", "predicted"):
        assert head in text


def test_benchmark_list_wide_and_json_complete() -> None:
    from mechgym.benchmark.tasks import TASKS

    wide = _run(["benchmark", "list"], columns=200)
    assert "mechanism" in wide and "about" in wide
    rows = json.loads(_run(["benchmark", "list", "--json"]))["tasks"]
    assert [r["id"] for r in rows] == list(TASKS)
    assert all(r["description"] and r["reference"]["predicted_float"] is not None for r in rows)


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["evaluate", "best_belief", "--example", "chen-micali-2016", "--episodes", "200"],
        ["evaluate", "budget_balanced_market", "--example", "market-swap", "--exact"],
        ["bench", "--quick"],
    ],
)
def test_other_tables_at_80_columns(args: list[str]) -> None:
    _fits(_run(args))


def test_benchmark_score_holds_is_a_boolean() -> None:
    out = json.loads(_run(["benchmark", "score", "best-belief-v0", "--json"]))
    assert out["bound"]["holds"] is True
    assert out["bound"]["holds_share"] == 1.0
    assert out["normalized"] == 1.0


def test_guarantee_kind_says_what_the_statement_is() -> None:
    ineq = json.loads(_run(["evaluate", "best_belief", "--exact", "--json"]))
    assert ineq["exact"] is True  # chance enumerated
    g = ineq["guarantee"]
    assert "exact" not in g
    assert g["kind"] == "inequality" and g["source"] == "theorem" and g["holds"] is True
    eq = json.loads(_run(["evaluate", "vcg", "--example", "ausubel-milgrom", "--exact", "--json"]))[
        "guarantee"
    ]
    assert eq["statement"] == "E[SW] = MSW" and eq["kind"] == "equality"


def test_several_contexts_report_booleans_and_counts() -> None:
    args = ["evaluate", "best_belief", "--generate", "uniform:n=3,m=2,cap=10", "--contexts", "3"]
    out = json.loads(_run([*args, "--exact", "--json"]))
    assert out["guarantee_holds"] is True and out["guarantee_holds_contexts"] == 3
    sampled = json.loads(_run([*args, "--episodes", "100", "--json"]))
    assert sampled["mean_expected_revenue_stderr"] > 0
    text = _run([*args, "--episodes", "100"])
    assert "holds on 3 of 3" in text and text.count("±") == 2


def test_sampled_evaluate_shows_standard_errors() -> None:
    text = _run(["evaluate", "best_belief", "--example", "chen-micali-2016", "--episodes", "300"])
    assert "300 episodes" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") >= 3}
    for key in ("E[REV]", "E[SW]"):
        assert "±" in rows[key]
    assert rows["E[u_i]"].count("±") == 3  # one per player
    # a figure with no spread still says so, rather than hiding its error
    vcg = _run(["evaluate", "vcg", "--example", "ausubel-milgrom", "--agents", "collusive_overbid"])
    assert "0 ± 0" in vcg
    exact = _run(["evaluate", "best_belief", "--example", "chen-micali-2016", "--exact"])
    assert "±" not in exact.split("guarantee")[0]
