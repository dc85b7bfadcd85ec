"""Shared pytest settings.

``MECHGYM_NO_SKIP=1`` turns every skip (of a test, or of a whole module at collection) into
a failure: CI sets it where an optional extra is installed (the RLlib virtualenv), so that a
missing or broken library cannot pass as a skip there.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def _no_skip(report: Any) -> None:
    if os.environ.get("MECHGYM_NO_SKIP") != "1" or not report.skipped:
        return
    if hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped, but MECHGYM_NO_SKIP=1 forbids skips here: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    _no_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    outcome = yield
    _no_skip(outcome.get_result())
