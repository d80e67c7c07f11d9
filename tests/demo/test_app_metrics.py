"""Server-side metrics: app_pool, app_cache and app_endpoint points land in a real InfluxDB."""

from __future__ import annotations

import time

import httpx

from core.influx import InfluxClient, quote_literal
from demo.launcher import start_service
from tests.demo.conftest import StartService


def test_services_write_app_metrics_to_influxdb(services: StartService, influx: InfluxClient) -> None:
    env = {"LOADBEARING_INFLUX_URL": influx.url, "LOADBEARING_INFLUX_DB": influx.db,
           "LOADBEARING_TESTID": "demo-metrics-1"}
    profile = services("profile-api", CACHE_TTL_S="30", DB_POOL_SIZE="3", PROFILE_DB_MS="20", **env)
    core = services("core-api", **env)
    gets = 0
    with httpx.Client(timeout=10) as c:
        for i in range(30):
            assert c.get(f"{profile.url}/profiles/{1 + i % 5}").status_code == 200
            gets += 1
            if i % 10 == 0:
                assert c.put(f"{profile.url}/profiles/{1 + i % 5}", json={"headline": f"v{i}"}).status_code == 200
            assert c.get(f"{core.url}/jobs").status_code == 200
            time.sleep(0.05)
    profile.stop()  # the last partial second is written at shutdown
    core.stop()

    testid = quote_literal("demo-metrics-1")
    where = f"testid = {testid} AND service = {quote_literal('profile-api')}"
    counts = {r["name"]: r["sum"] for r in influx.rows(
        f'SELECT sum("count") FROM app_endpoint WHERE {where} GROUP BY "name"')}
    assert counts == {"profile_get": 30, "profile_put": 3}
    cache = influx.rows(f"SELECT sum(hits) AS hits, sum(misses) AS misses FROM app_cache WHERE {where}")[0]
    assert cache["hits"] + cache["misses"] == gets
    assert cache["misses"] >= 5 + 3  # 5 ids, and each write forced one more miss
    pool = influx.rows(f"SELECT max(size) AS size, sum(checkouts) AS checkouts, max(hold_ms_mean) AS hold "
                       f"FROM app_pool WHERE {where}")[0]
    assert pool["size"] == 3
    assert pool["checkouts"] == cache["misses"] + 3
    assert pool["hold"] >= 20
    seconds = influx.rows(f"SELECT count(size) FROM app_pool WHERE {where}")[0]["count"]
    assert seconds >= 2  # one point a second while it ran

    core_jobs = influx.rows(f"SELECT sum(\"count\") FROM app_endpoint WHERE testid = {testid} "
                            f"AND service = {quote_literal('core-api')} AND \"name\" = 'jobs_list'")
    assert core_jobs[0]["sum"] == 30
    fields = {r["fieldKey"] for r in influx.rows("SHOW FIELD KEYS FROM app_pool")}
    assert {"checked_out", "overflow", "waiting", "checkout_wait_ms_p95", "checkout_wait_ms_mean", "size"} <= fields
    assert {r["fieldKey"] for r in influx.rows("SHOW FIELD KEYS FROM app_endpoint")} >= {
        "count", "server_ms_mean", "server_ms_p95"}


def test_an_unreachable_store_does_not_break_the_service() -> None:
    with start_service("profile-api", env={"LOADBEARING_INFLUX_URL": "http://127.0.0.1:9",
                                           "PROFILE_DB_MS": "1"}) as profile:
        _serves_while_writes_fail(profile.url)


def _serves_while_writes_fail(url: str) -> None:
    assert httpx.get(f"{url}/profiles/1", timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        influx = httpx.get(f"{url}/status", timeout=10).json()["influx"]
        if influx["write_errors"] > 0:
            break
        time.sleep(0.2)
    assert influx["enabled"] and influx["write_errors"] > 0 and influx["last_error"]
    assert httpx.get(f"{url}/profiles/2", timeout=10).status_code == 200
