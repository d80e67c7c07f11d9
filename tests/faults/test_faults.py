"""Faults during a run: the store dies or restarts, the target dies, the controller is killed,
the out-dir is unusable, two runs share one store. Nothing hangs, leaks or is silently lost."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from core.influx import InfluxClient, quote_literal
from runners.influxd import Influxd, start_influxd
from tests.fixtures.require import need_binary
from tests.fixtures.runs import run_cli, write_plan
from tests.fixtures.target import Target


def _k6_of(testid: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name", "cmdline"])
            if p.info.get("name") == "k6" and any(testid in c for c in (p.info.get("cmdline") or []))]


def _popen(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "loadbearing.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_running(out: Path, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in out.glob("*/run.json") if out.exists() else []:
            if json.loads(rec.read_text()).get("phases"):
                return rec.parent
        time.sleep(0.1)
    raise AssertionError("the run did not start")


@pytest.fixture
def own_influxd(tmp_path: Path):  # type: ignore[no-untyped-def]
    need_binary("influxd", "influxdb")
    server = start_influxd(tmp_path / "influxd")
    yield server
    server.stop()


def test_influxdb_killed_mid_run(tmp_path: Path, own_influxd: Influxd, lb_env: dict[str, str],
                                 target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 20, "duration": "6s"}])
    out = tmp_path / "runs"
    proc = _popen(["run", "parallel", "--plan", str(plan), "--influx-url", own_influxd.url, "--out-dir", str(out)],
                  lb_env)
    run_dir = _wait_running(out)
    time.sleep(2)
    os.kill(own_influxd.pid, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 4, stderr
    assert "Traceback" not in stderr
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "error"
    assert rec["metrics"]["complete"] is False
    assert any("metrics_incomplete" in e for e in rec["errors"])
    # the end-of-run read was retried (bounded in time) before falling back, and run.json says so
    assert any(r["op"] == "query" and r["ok"] is False for r in rec["metrics"]["store_retries"])
    # k6 went on: the summary has the whole run, and run.json carries its numbers
    summary = json.loads((run_dir / "k6" / "a-0.summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["count"] == target.seen("/a")
    assert rec["modules"][0]["requests"] == target.seen("/a")
    assert not (run_dir / "INCOMPLETE").exists()


def test_influxdb_restarted_mid_run(tmp_path: Path, lb_env: dict[str, str], target: Target) -> None:
    need_binary("influxd", "influxdb")
    root = tmp_path / "influxd"
    server = start_influxd(root)
    try:
        plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 20, "duration": "8s"}])
        out = tmp_path / "runs"
        proc = _popen(["run", "parallel", "--plan", str(plan), "--influx-url", server.url, "--out-dir", str(out)],
                      lb_env)
        run_dir = _wait_running(out)
        time.sleep(2)
        server.stop()
        time.sleep(1)
        server = start_influxd(root, http_port=server.http_port)
        proc.communicate(timeout=60)
        rec = json.loads((run_dir / "run.json").read_text())
        k6_count = rec["modules"][0]["k6_requests"]
        stored = rec["metrics"]["stored_requests"]
        assert k6_count == target.seen("/a")
        # what was lost while the store was down is reported, never hidden
        from runners.results import COLLISION_TOLERANCE

        if stored < k6_count - math.ceil(k6_count * COLLISION_TOLERANCE):
            assert proc.returncode == 4 and rec["metrics"]["complete"] is False
            assert f"stored {stored} of k6's {k6_count}" in rec["metrics"]["incomplete_reason"]
        else:
            assert proc.returncode == 0 and rec["metrics"]["complete"] is True
        assert stored > 0
    finally:
        server.stop()


def test_target_killed_mid_run(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                               lb_env: dict[str, str]) -> None:
    from core.state import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.fixtures.target", str(port)])
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/ready")
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        plan = write_plan(tmp_path, f"http://127.0.0.1:{port}", [{"name": "a", "rate": 20, "duration": "5s"}])
        out = tmp_path / "runs"
        proc = _popen(["run", "parallel", "--plan", str(plan), "--influx-url", f"{influxd.url}/{influx.db}",
                       "--out-dir", str(out)], lb_env)
        run_dir = _wait_running(out)
        time.sleep(2)
        server.kill()
        _, stderr = proc.communicate(timeout=60)
    finally:
        server.kill()
        server.wait()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    rec = json.loads((run_dir / "run.json").read_text())
    mod = rec["modules"][0]
    assert rec["status"] == "failed"
    assert 0.2 < mod["error_rate"] < 0.9
    assert mod["requests"] == mod["k6_requests"]


def test_controller_sigkill_leaves_nothing_running(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                                                   lb_env: dict[str, str], target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": n, "rate": 10, "duration": "60s"} for n in ("a", "b")])
    out = tmp_path / "runs"
    proc = _popen(["run", "parallel", "--plan", str(plan), "--runners", "2", "--influx-url",
                   f"{influxd.url}/{influx.db}", "--out-dir", str(out)], lb_env)
    run_dir = _wait_running(out)
    assert len(_k6_of(run_dir.name)) == 4
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    deadline = time.monotonic() + 5
    while _k6_of(run_dir.name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _k6_of(run_dir.name) == []
    assert (run_dir / "INCOMPLETE").exists()
    status = run_cli(["stack", "status"], lb_env)
    assert f"marked run {run_dir.name} as error" in status.stderr
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "error"
    assert "controller died" in (run_dir / "INCOMPLETE").read_text()


def test_out_dir_not_a_directory_exits_2_before_load(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                                                    lb_env: dict[str, str], target: Target) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 10, "duration": "1s"}])
    res = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", f"{influxd.url}/{influx.db}",
                   "--out-dir", str(blocker / "runs")], lb_env)
    assert res.code == 2
    assert "--out-dir" in res.stderr and "cannot write run records" in res.stderr
    assert target.seen() == 0


def test_disk_full_exits_2_before_load(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                                       lb_env: dict[str, str], target: Target) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        (mnt / "filler").write_bytes(b"\0" * 200 * 1024)
        plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 10, "duration": "1s"}])
        res = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", f"{influxd.url}/{influx.db}",
                       "--out-dir", str(mnt / "runs")], lb_env)
        assert res.code == 2, res.stderr
        assert "cannot write run records" in res.stderr and "free space" in res.stderr
        assert target.seen() == 0
    finally:
        subprocess.run(["umount", str(mnt)])


def test_two_runs_at_once_stay_apart(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                                     lb_env: dict[str, str], target: Target) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    p1 = write_plan(tmp_path / "one", target.url, [{"name": "one", "rate": 20, "duration": "3s"}])
    p2 = write_plan(tmp_path / "two", target.url, [{"name": "two", "rate": 35, "duration": "3s"}])
    url = f"{influxd.url}/{influx.db}"
    procs = [_popen(["run", "parallel", "--plan", str(p), "--influx-url", url, "--out-dir", str(tmp_path / "runs")],
                    lb_env) for p in (p1, p2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for (stdout, _), path in zip(outs, ("/one", "/two"), strict=True):
        rec = json.loads((Path(stdout.strip().splitlines()[-1]) / "run.json").read_text())
        testid = quote_literal(rec["testid"])
        n = influx.series(f'SELECT count("value") FROM "http_reqs" WHERE "testid" = {testid}')[0]["values"][0][1]
        assert n == rec["modules"][0]["requests"] == target.seen(path)
        modules = {s["tags"]["module"] for s in influx.series(
            f'SELECT count("value") FROM "http_reqs" WHERE "testid" = {testid} GROUP BY "module"')}
        assert modules == {path.strip("/")}
