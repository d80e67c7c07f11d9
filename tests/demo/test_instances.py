"""INSTANCES: N worker processes of one service on one port (SO_REUSEPORT), each its own instance
(pool, cache, request slots), the load spread evenly; and shipping-api, whose instances each serve a
bounded number of requests at a time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from core.errors import RunError
from demo.launcher import REPO_ROOT, start_service
from demo.services.settings import SettingsError, from_env

QUOTE = {"origin": "DE", "destination": "US", "weight_kg": 2.5}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _pids_answering(url: str, tries: int = 60) -> set[int]:
    return {int(httpx.get(f"{url}/health", timeout=5).json()["pid"]) for _ in range(tries)}


def test_n_instances_share_one_port_each_with_its_own_pool(postgres_url: str) -> None:
    handle = start_service("profile-api", env={"INSTANCES": "3", "DB_POOL_SIZE": "2", "DATABASE_URL": postgres_url})
    try:
        workers = handle.worker_pids()
        assert len(workers) == 3 and handle.pid not in workers
        assert _pids_answering(handle.url) == set(workers)  # one port, three processes answering it
        listening = [c for c in psutil.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == handle.port]
        assert sorted(c.pid for c in listening) == workers  # each worker listens on the port (SO_REUSEPORT)
        metrics = httpx.get(f"{handle.url}/status", timeout=5).json()
        assert metrics["settings"]["instances"] == 3
        assert metrics["instance"] == f"{handle.port}-{metrics['pid']}"  # each instance names itself in its /status
        # Every instance opened its own pool of 2: 3 x 2 connections count against max_connections.
        import psycopg

        with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND pid <> pg_backend_pid()").fetchone()
        assert row is not None and row[0] == 6
    finally:
        code = handle.stop()
    assert code == 0  # the supervisor stopped its workers and exited on SIGTERM
    assert _wait_gone(workers, 5)


def test_new_connections_are_spread_over_the_instances() -> None:
    handle = start_service("shipping-api", env={"INSTANCES": "3"})
    try:
        counts: dict[int, int] = {}
        for _ in range(150):  # a new connection each
            pid = int(httpx.get(f"{handle.url}/health", timeout=5).json()["pid"])
            counts[pid] = counts.get(pid, 0) + 1
    finally:
        handle.stop()
    assert len(counts) == 3 and min(counts.values()) >= 25, counts  # 50 each on average; none left idle


def test_a_dead_instance_stops_the_service(tmp_path: Path) -> None:
    handle = start_service("shipping-api", env={"INSTANCES": "2"}, log_path=tmp_path / "shipping.log")
    workers = handle.worker_pids()
    os.kill(workers[0], signal.SIGKILL)
    try:
        handle.process.wait(10)  # the supervisor stops the other instance and exits 1
    finally:
        code = handle.stop()
    assert code == 1 and _wait_gone(workers, 5)
    assert f"instance {workers[0]} exited with code -9; stopping the others" in handle.log_path.read_text()


def test_stop_leaves_no_worker_nor_file_behind() -> None:
    handle = start_service("shipping-api", env={"INSTANCES": "2"})
    workers = handle.worker_pids()
    data_dir = Path(httpx.get(f"{handle.url}/status", timeout=5).json()["settings"]["sqlite_path"]).parent
    assert data_dir.is_dir() and handle.log_path.parent.is_dir()
    # one database for every instance: both answer from the same file
    paths = set()
    for _ in range(40):
        paths.add(httpx.get(f"{handle.url}/status", timeout=5).json()["settings"]["sqlite_path"])
    assert paths == {str(data_dir / "shipping-api.sqlite3")}
    handle.stop()
    assert _wait_gone([handle.pid, *workers], 5)
    assert not data_dir.exists() and not handle.log_path.parent.exists()


def test_instances_exit_when_the_process_that_started_them_dies() -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from demo.launcher import start_service; "
         "h = start_service('shipping-api', env={'INSTANCES': '2'}); "
         "print(h.pid, *h.worker_pids(), flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert starter.stdout is not None
        pids = [int(p) for p in starter.stdout.readline().split()]
        assert len(pids) == 3 and not any(_gone(p) for p in pids)
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
    assert _wait_gone(pids, 15), "the orphaned instances kept running"


@pytest.mark.parametrize(("value", "message"), [("0", "INSTANCES='0' must be >= 1"),
                                                ("17", "INSTANCES='17' must be <= 16"),
                                                ("two", "INSTANCES='two' is not an integer")])
def test_a_bad_instance_count_is_named(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        from_env("core-api", {"INSTANCES": value})
    with pytest.raises(RunError, match=message):
        start_service("core-api", env={"INSTANCES": value})


async def _quotes(url: str, n: int) -> list[tuple[int, float]]:
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=n, max_keepalive_connections=n)) as client:
        async def one() -> tuple[int, float]:
            started = time.perf_counter()
            r = await client.post("/quotes", json=QUOTE)
            return r.status_code, time.perf_counter() - started

        return await asyncio.gather(*(one() for _ in range(n)))


def test_an_instance_serves_max_inflight_requests_at_a_time() -> None:
    # 2 slots, 150 ms each: 6 requests at once are served in 3 waves, whatever the CPU could do
    handle = start_service("shipping-api", env={"MAX_INFLIGHT": "2", "CARRIER_MS": "150"})
    try:
        results = asyncio.run(_quotes(handle.url, 6))
        metrics = httpx.get(f"{handle.url}/status", timeout=5).json()
    finally:
        handle.stop()
    assert [s for s, _ in results] == [200] * 6
    took = sorted(t for _, t in results)
    assert took[0] >= 0.15 and took[-1] >= 3 * 0.15  # the last pair waited for two others
    assert metrics["inflight"]["limit"] == 2 and metrics["inflight"]["served"] == 6
    assert metrics["pool"]["checkout_wait_ms_mean"] < 50  # the pool is not what they waited for


def test_a_request_that_waits_too_long_for_a_slot_gets_503() -> None:
    handle = start_service("shipping-api", env={"MAX_INFLIGHT": "1", "CARRIER_MS": "400", "INFLIGHT_TIMEOUT": "0.1"})
    try:
        results = asyncio.run(_quotes(handle.url, 3))
        bad = httpx.post(f"{handle.url}/quotes", json={**QUOTE, "destination": "XX"}, timeout=5)
    finally:
        handle.stop()
    assert sorted(s for s, _ in results) == [200, 503, 503]
    assert bad.status_code == 422 and "destination" in bad.json()["error"]
