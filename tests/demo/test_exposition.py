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
    route = (("http_request_method", "GET"), ("http_response_status_code", "200"),
             ("http_route", "/profiles/{profile_id:int}"))
    assert got[("http_server_request_duration_seconds_count", route)] == 3
    assert 0 < got[("http_server_request_duration_seconds_sum", route)] < 10


def test_several_workers_behind_one_socket_expose_every_workers_metrics() -> None:
    """INSTANCES=3: each scrape reaches one worker, and every one shows the totals of all three
    (prometheus-client's multiprocess mode), so a counter never goes backwards between scrapes."""
    requests = 30
    with start_service("profile-api", env={"INSTANCES": "3", "DB_POOL_SIZE": "2", "CACHE_TTL_S": "0",
                                           "PROFILE_DB_MS": "1"}) as svc:
        served_by: set[int] = set()
        checkouts = 0
        for i in range(requests):  # a new connection each time: the kernel spreads them over the workers
            with httpx.Client() as client:
                assert client.get(f"{svc.url}/profiles/{i % 5 + 1}", timeout=10).status_code == 200
        for _ in range(40):  # every worker's own /status, to know the truth per process
            with httpx.Client() as client:
                status = client.get(f"{svc.url}/status", timeout=10).json()
            if status["pid"] not in served_by:
                served_by.add(status["pid"])
                checkouts += status["pool"]["checkouts"]
            if len(served_by) == 3:
                break
        assert len(served_by) == 3
        scrapes = []
        for _ in range(12):
            with httpx.Client() as client:
                text = client.get(f"{svc.url}/metrics", timeout=10).text
            scrapes.append({(s.name, tuple(sorted(s.labels.items()))): s.value
                            for f in text_string_to_metric_families(text) for s in f.samples})
    route = (("http_request_method", "GET"), ("http_response_status_code", "200"),
             ("http_route", "/profiles/{profile_id:int}"))
    pool = (("db_client_connection_pool_name", "profile-api"),)
    for got in scrapes:  # whichever worker answered: the same totals, all three workers' pools
        assert got[("http_server_request_duration_seconds_count", route)] == requests
        assert got[("db_client_connection_use_time_seconds_count", pool)] == checkouts >= requests
        sizes = {dict(labels)["pid"]: v for (name, labels), v in got.items() if name == "db_client_connection_max"}
        assert sorted(int(pid) for pid in sizes) == sorted(served_by) and set(sizes.values()) == {2}
