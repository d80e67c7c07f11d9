"""The demo services expose /metrics in the standard names, parsed by prometheus-client as a scrape does."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from demo.launcher import start_service


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_pool_and_cache_in_opentelemetry_and_micrometer_names() -> None:
    with start_service("profile-api", env={"DB_POOL_SIZE": "3", "CACHE_TTL_S": "30", "PROFILE_DB_MS": "5"}) as svc:
        for _ in range(3):
            assert httpx.get(f"{svc.url}/profiles/7", timeout=10).status_code == 200
        status = httpx.get(f"{svc.url}/status", timeout=10).json()
        got = _samples(svc.url)
    pool = (("db_client_connection_pool_name", "profile-api"),)
    assert got[("db_client_connection_max", pool)] == 3
    assert got[("db_client_connection_count", (*pool, ("db_client_connection_state", "idle")))] == 3
    assert got[("db_client_connection_count", (*pool, ("db_client_connection_state", "used")))] == 0
    assert got[("db_client_connection_pending_requests", pool)] == 0
    assert got[("db_client_connection_timeouts_total", pool)] == 0
    uses = got[("db_client_connection_use_time_seconds_count", pool)]
    assert uses == status["pool"]["checkouts"] >= 1              # one load; the other reads hit the cache
    assert got[("db_client_connection_use_time_seconds_sum", pool)] >= 0.005 * uses
    hits = got[("cache_gets_total", (("cache", "profile_get"), ("result", "hit")))]
    misses = got[("cache_gets_total", (("cache", "profile_get"), ("result", "miss")))]
    assert (hits, misses) == (2, 1)
