"""DEMO_SLOW_ENDPOINTS: a deliberate regression of named endpoints (the compare acceptance test uses it)."""

from __future__ import annotations

import time

import httpx
import pytest

from core.errors import RunError
from demo.launcher import start_service
from demo.services.settings import SettingsError, from_env


def _slowest_ms(client: httpx.Client, path: str, times: int = 5) -> tuple[float, float]:
    took = []
    for _ in range(times):
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        took.append((time.perf_counter() - started) * 1000)
    return min(took), max(took)


def test_only_the_named_endpoint_is_slowed() -> None:
    core = start_service("core-api", env={"DEMO_SLOW_ENDPOINTS": "jobs_search=300"})
    try:
        with httpx.Client(base_url=core.url, timeout=10) as c:
            fastest_search, _ = _slowest_ms(c, "/jobs/search?q=python")
            _, slowest_list = _slowest_ms(c, "/jobs?page=1")
            metrics = c.get("/status").json()
    finally:
        core.stop()
    assert fastest_search >= 300
    assert slowest_list < 250
    # The server's own timing includes the delay, as a real slow code path would.
    assert metrics["endpoints"]["jobs_search"]["mean_ms"] >= 300


@pytest.mark.parametrize("value", ["jobs_search", "jobs_search=fast", "=200", "jobs_search=-5"])
def test_a_bad_setting_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="DEMO_SLOW_ENDPOINTS"):
        from_env("core-api", {"DEMO_SLOW_ENDPOINTS": value})
    with pytest.raises(RunError, match="DEMO_SLOW_ENDPOINTS"):
        start_service("core-api", env={"DEMO_SLOW_ENDPOINTS": value})


def test_several_endpoints_and_spaces() -> None:
    settings = from_env("profile-api", {"DEMO_SLOW_ENDPOINTS": " profile_get=100 , profile_put=2.5"})
    assert dict(settings.slow_ms) == {"profile_get": 100.0, "profile_put": 2.5}
    assert dict(from_env("core-api", {}).slow_ms) == {}
