"""Shared pytest settings.

``MECHGYM_NO_SKIP=1`` turns every skip into a failure: CI sets it where an optional extra
is installed (the RLlib virtualenv), so that a missing or broken library cannot pass as a
skip there.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if (
        os.environ.get("MECHGYM_NO_SKIP") == "1"
        and report.skipped
        and not hasattr(report, "wasxfail")
    ):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but MECHGYM_NO_SKIP=1 forbids skips here: {reason}"
