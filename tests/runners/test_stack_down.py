"""`stack down` signals the stack's own influxd and nothing else; `stack status` kills only
the stale k6 runners it started.

A state or pid file names a PID; after a crash or a reboot that PID can belong to anything
(and these commands may run as root). The process's name and create time are recorded
beside the PID and both are checked before any signal."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.fixtures.require import need_binary
from tests.fixtures.runs import run_cli


def test_up_records_the_identity_and_down_stops_that_influxd(lb_env: dict[str, str]) -> None:
    need_binary("influxd", "influxdb")
    up = run_cli(["stack", "up", "--provider", "process"], lb_env)
    assert up.code == 0, up.stderr
    state = json.loads((Path(lb_env["LOADBEARING_STATE_DIR"]) / "stack.json").read_text())
    proc = psutil.Process(state["pid"])
    try:
        assert state["pid_name"] == proc.name() == "influxd"
        assert state["pid_create_time"] == proc.create_time()
        status = run_cli(["stack", "status"], lb_env)
        assert status.code == 0 and status.stdout.strip() == up.stdout.strip()
        down = run_cli(["stack", "down"], lb_env)
        assert down.code == 0, down.stderr
        assert "stack down" in down.stderr
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    finally:
        if proc.is_running():
            proc.kill()


def _impostor(tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    """A process named like one of ours that is not: /bin/sleep copied to `name`."""
    exe = tmp_path / "bin" / name
    if not exe.exists():
        exe.parent.mkdir(exist_ok=True)
        shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    proc = subprocess.Popen([str(exe), "60"])
    time.sleep(0.1)
    return proc


@pytest.fixture
def bystander(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = _impostor(tmp_path, "influxd")
    yield proc
    proc.kill()
    proc.wait()


def _state(lb_env: dict[str, str], **fields: object) -> None:
    state = Path(lb_env["LOADBEARING_STATE_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    (state / "stack.json").write_text(json.dumps(
        {"provider": "process", "influx_url": "http://127.0.0.1:9", "influx_db": "loadbearing", **fields}))


@pytest.mark.parametrize("case", ["pid reused by a process named alike", "another name", "state from before"])
def test_down_never_signals_a_process_that_is_not_the_stacks_influxd(
        case: str, lb_env: dict[str, str], bystander: subprocess.Popen[bytes]) -> None:
    me = psutil.Process(bystander.pid)
    if case == "pid reused by a process named alike":  # what a reboot does: same PID, same name, new process
        _state(lb_env, pid=me.pid, pid_name="influxd", pid_create_time=me.create_time() - 3600)
    elif case == "another name":
        _state(lb_env, pid=me.pid, pid_name="sleep", pid_create_time=me.create_time())
    else:  # a state file written before identities were recorded: only our config on the command line counts
        _state(lb_env, pid=me.pid)
    down = run_cli(["stack", "down"], lb_env)
    assert down.code == 0, down.stderr
    assert bystander.poll() is None and me.status() != psutil.STATUS_ZOMBIE, "stack down signalled a stranger"
    assert f"pid {me.pid}" in down.stderr and "not signalled" in down.stderr
    assert not (Path(lb_env["LOADBEARING_STATE_DIR"]) / "stack.json").exists()
    status = run_cli(["stack", "status"], lb_env)
    assert status.code == 0 and "no stack" in status.stderr


def test_status_kills_a_stale_runner_only_when_it_is_the_same_process(tmp_path: Path, lb_env: dict[str, str]) -> None:
    """A runner pid file whose controller is gone: the k6 it names is killed only when its name
    and create time are the recorded ones (another k6 may have got the PID since)."""
    runners = Path(lb_env["LOADBEARING_STATE_DIR"]) / "runners" / "run-x"
    runners.mkdir(parents=True)
    stranger, stale = _impostor(tmp_path, "k6"), _impostor(tmp_path, "k6")
    try:
        for proc, shift in ((stranger, -3600.0), (stale, 0.0)):
            me = psutil.Process(proc.pid)
            (runners / f"{proc.pid}.json").write_text(json.dumps(
                {"pid": proc.pid, "runner": f"a-{shift:g}", "run_dir": str(tmp_path / "no-run"),
                 "name": me.name(), "create_time": me.create_time() + shift}))
        status = run_cli(["stack", "status"], lb_env)
        assert status.code == 0, status.stderr
        assert stale.wait(timeout=5) == -9
        assert stranger.poll() is None, "stack status killed a process that only had a recorded PID"
        assert f"(pid {stale.pid})" in status.stderr and f"(pid {stranger.pid})" not in status.stderr
    finally:
        for proc in (stranger, stale):
            proc.kill()
            proc.wait()
