"""Shared set-up of the demo tests: the database matrix and service start-up.

`database` is parametrized over SQLite (the default: a temp file per service) and
PostgreSQL (a fresh database of the session's private server), so every test that
uses it passes on both. `services` starts demo services with a database and
stops them all (and checks they are gone) at the end of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psutil
import pytest

from demo.launcher import ServiceHandle, start_service


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment that selects the database: {} (SQLite file) or {'DATABASE_URL': ...}."""
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("postgres_url")}


StartService = Callable[..., ServiceHandle]


@pytest.fixture
def services(database: dict[str, str]) -> Iterator[StartService]:
    """`services(name, **env)` starts a demo service on the test's database."""
    started: list[ServiceHandle] = []

    def start(name: str, **env: str) -> ServiceHandle:
        handle = start_service(name, env={**database, **env})
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
    for handle in started:
        assert not psutil.pid_exists(handle.pid) or psutil.Process(handle.pid).status() == psutil.STATUS_ZOMBIE
