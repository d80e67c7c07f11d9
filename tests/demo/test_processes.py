"""Service processes: start, stop, and nothing left behind, even when the starter dies."""

from __future__ import annotations

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
from core.state import free_port
from demo.launcher import REPO_ROOT, start_service

# uvicorn shuts down gracefully on SIGTERM, then re-raises it: exit code -15 (or 0).
CLEAN_EXIT = {0, -signal.SIGTERM}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return False


def test_stop_leaves_no_process_port_or_file_behind() -> None:
    handles = [start_service("core-api"), start_service("profile-api")]
    pids = [h.pid for h in handles]
    data_dirs = [Path(httpx.get(f"{h.url}/status", timeout=10).json()["settings"]["sqlite_path"]).parent
                 for h in handles]
    log_dirs = [h.log_path.parent for h in handles]
    assert all(d.is_dir() for d in data_dirs)
    assert all(psutil.Process(pid).children(recursive=True) == [] for pid in pids)  # one process each
    codes = [h.stop() for h in handles]
    assert set(codes) <= CLEAN_EXIT  # shut down by SIGTERM, not killed
    assert all(_gone(pid) for pid in pids)
    assert not any(d.exists() for d in data_dirs + log_dirs)
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert not {h.port for h in handles} & listening
    handles[0].stop()  # idempotent


def test_a_service_exits_when_the_process_that_started_it_dies() -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c",
         "import time, httpx; from demo.launcher import start_service; h = start_service('profile-api'); "
         "print(h.pid, httpx.get(h.url + '/status').json()['settings']['sqlite_path'], h.log_path, flush=True); "
         "time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert starter.stdout is not None
        pid, db_file, log_file = starter.stdout.readline().split()
        service_pid = int(pid)
        assert not _gone(service_pid)
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
    assert _wait_gone(service_pid, 10), "the orphaned service kept running"
    assert not Path(db_file).parent.exists() and not Path(log_file).parent.exists()  # it cleaned up too


def test_bad_settings_are_reported_by_name() -> None:
    with pytest.raises(RunError, match="DB_POOL_SIZE='lots' is not an integer"):
        start_service("profile-api", env={"DB_POOL_SIZE": "lots"})
    with pytest.raises(RunError, match="unknown demo service"):
        start_service("search-api")
    cli = subprocess.run(
        [sys.executable, "-m", "demo.launcher", "core-api", "--port", str(free_port())],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "DB_POOL_TIMEOUT": "-1"},
    )
    assert cli.returncode == 2
    assert "DB_POOL_TIMEOUT='-1' must be >= 0.001" in cli.stderr


def test_the_command_line_entry_point_serves_until_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "demo.launcher", "core-api", "--port", str(port)],
                            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code
            except httpx.HTTPError:
                time.sleep(0.1)
        assert status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) in CLEAN_EXIT
