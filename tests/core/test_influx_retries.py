"""The InfluxDB client: one long-lived connection, and retries, bounded in time, for the
idempotent queries and writes when the store drops a connection or restarts.

Real parts only: the session's influxd, a private influxd that is stopped and started
again, and a loopback TCP relay that drops connections (tests/fixtures/flaky_proxy.py)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from core.errors import RunError
from core.influx import InfluxClient, line
from core.state import free_port
from runners.influxd import start_influxd
from tests.fixtures.flaky_proxy import FlakyProxy

# A connection closed under a request: no answer at all, or a reset (unread bytes were discarded).
DROPPED = {"RemoteProtocolError", "ReadError", "WriteError"}


def _client(url: str, **kw: float) -> InfluxClient:
    client = InfluxClient.from_url(url, db=f"r_{uuid.uuid4().hex[:10]}")
    for k, v in kw.items():
        setattr(client, k, v)
    return client


def test_one_connection_for_every_request_until_closed(flaky_proxy: FlakyProxy) -> None:
    with _client(flaky_proxy.url) as client:
        client.ensure_db()
        for i in range(10):
            client.write([line("m", {}, {"v": i}, i + 1)])
            assert client.rows('SELECT count("v") FROM "m"')[0]["count"] == i + 1
        assert flaky_proxy.accepted == 1 and flaky_proxy.open == 1
    deadline = time.monotonic() + 2
    while flaky_proxy.open and time.monotonic() < deadline:
        time.sleep(0.02)
    assert flaky_proxy.open == 0, "close() left the connection open"
    assert client.retries == []


def test_dropped_connections_are_retried_for_queries_and_writes(flaky_proxy: FlakyProxy) -> None:
    flaky_proxy.drop_first = 1
    client = _client(flaky_proxy.url)
    client.ensure_db()  # its first connection is dropped
    flaky_proxy.arm(b"POST /write")
    client.write([line("m", {"k": "a"}, {"v": 1.5}, 1_000)])
    assert not flaky_proxy.armed
    flaky_proxy.arm(b"GET /query")
    rows = client.rows('SELECT "v" FROM "m"')
    client.close()
    assert [r["v"] for r in rows] == [1.5]  # written once: a rewrite of the same point overwrites it
    assert flaky_proxy.dropped == 3
    assert [(r.op, r.attempts, r.ok) for r in client.retries] == [("query", 2, True), ("write", 2, True),
                                                                   ("query", 2, True)]
    assert all(r.error in DROPPED for r in client.retries)


def test_a_restarted_influxd_is_waited_for(tmp_path: Path) -> None:
    port = free_port()
    server = start_influxd(tmp_path / "influxd", port, tied=True)
    client = _client(server.url, retry_s=20.0)
    try:
        client.ensure_db()
        client.write([line("m", {}, {"v": 7.0}, 1_000)])
        server.stop()

        def restart() -> None:
            time.sleep(1.0)
            nonlocal server
            server = start_influxd(tmp_path / "influxd", port)  # not tied: this thread ends at once

        later = threading.Thread(target=restart)
        later.start()
        started = time.monotonic()
        rows = client.rows('SELECT "v" FROM "m"')  # the store is down when this starts
        later.join()
        assert [r["v"] for r in rows] == [7.0]
        assert time.monotonic() - started >= 1.0
        [retry] = client.retries
        assert retry.op == "query" and retry.ok and retry.attempts >= 2 and "ConnectError" in retry.error
    finally:
        client.close()
        server.stop()


def test_retries_are_bounded_in_time() -> None:
    client = _client(f"http://127.0.0.1:{free_port()}", retry_s=1.5)  # nobody listens there
    started = time.monotonic()
    with pytest.raises(RunError) as err:
        client.query("SHOW DATABASES")
    took = time.monotonic() - started
    assert 0.5 <= took < 1.5 + 1.0, took  # no sleep past the budget; one attempt may still run
    assert client.public_url in err.value.message and "retried for" in err.value.message
    [retry] = client.retries
    assert retry.op == "query" and not retry.ok and retry.attempts >= 3


def test_answers_that_will_not_change_are_not_retried(influx: InfluxClient) -> None:
    with pytest.raises(RunError, match=r"InfluxQL error|HTTP 400"):
        influx.query("SELECT nonsense FROM")
    with pytest.raises(RunError, match="HTTP 400"):
        influx.write(["not line protocol"])
    assert influx.retries == []


def test_one_auth_helper_for_every_client() -> None:
    """The controller's client and the demo services' reporter build their HTTP clients from
    `http_options()`: token auth (InfluxDB 2.x/3.x v1 API) or basic auth (1.x)."""
    token = InfluxClient.from_url("http://127.0.0.1:1/db", db=None)
    token.token = "t0k"
    opts = token.http_options()
    assert opts["base_url"] == "http://127.0.0.1:1" and opts["headers"] == {"Authorization": "Token t0k"}
    assert opts["auth"] is None
    basic = InfluxClient.from_url("http://u:p@127.0.0.1:1")
    opts = basic.http_options()
    assert opts["headers"] == {} and isinstance(opts["auth"], httpx.BasicAuth)
    assert opts["auth"]._auth_header == httpx.BasicAuth("u", "p")._auth_header
