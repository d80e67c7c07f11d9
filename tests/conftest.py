"""Shared test set-up.

Fixtures for real services live in tests/fixtures/<service>.py and are loaded as
plugins here. Under LOADBEARING_REQUIRE_ALL=1 (CI) a skip is a failure: every
service the suite needs must be installed and started.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem not in ("__init__", "require")  # require.py holds helpers, not fixtures
)

REQUIRE_ALL = os.environ.get("LOADBEARING_REQUIRE_ALL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under LOADBEARING_REQUIRE_ALL=1 (CI must run everything): {reason}"
