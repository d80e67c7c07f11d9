"""Ctrl-C, SIGTERM and a killed runner: exit 4 quickly, run.json says why, no k6 left behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from core.influx import InfluxClient
from runners.influxd import Influxd
from tests.fixtures.runs import write_plan
from tests.fixtures.target import Target


def _k6_of(testid: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info.get("cmdline") or []
        if p.info.get("name") == "k6" and any(testid in c for c in cmd):
            found.append(p)
    return found


def _start(tmp_path: Path, influxd: Influxd, influx: InfluxClient, env: dict[str, str],
           target: Target) -> tuple[subprocess.Popen[str], Path]:
    plan = write_plan(tmp_path, target.url, [{"name": n, "rate": 20, "duration": "60s"} for n in ("a", "b")])
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "loadbearing.cli", "run", "parallel", "--plan", str(plan),
                             "--runners", "2", "--influx-url", f"{influxd.url}/{influx.db}", "--out-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = list(out.glob("*/run.json")) if out.exists() else []
        if runs and json.loads(runs[0].read_text()).get("phases"):
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the run did not start")
    time.sleep(1.0)  # load is flowing
    return proc, runs[0].parent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_aborts_gracefully(tmp_path: Path, influxd: Influxd, influx: InfluxClient, lb_env: dict[str, str],
                                  target: Target, sig: signal.Signals) -> None:
    proc, run_dir = _start(tmp_path, influxd, influx, lb_env, target)
    testid = run_dir.name
    assert len(_k6_of(testid)) == 4
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 <= 10
    assert proc.returncode == 4, err
    assert "Traceback" not in err
    assert out.strip().splitlines()[-1] == str(run_dir)
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "aborted"
    assert not (run_dir / "INCOMPLETE").exists()
    assert _k6_of(testid) == []
    # k6 got SIGINT, so each runner still wrote its summary
    assert len(list((run_dir / "k6").glob("*.summary.json"))) == 4
    assert all(m["requests"] and m["requests"] > 0 for m in rec["modules"])


def test_killed_runner_ends_the_run(tmp_path: Path, influxd: Influxd, influx: InfluxClient, lb_env: dict[str, str],
                                    target: Target) -> None:
    proc, run_dir = _start(tmp_path, influxd, influx, lb_env, target)
    testid = run_dir.name
    victims = [p for p in _k6_of(testid) if any("runner=a-1" in c for c in p.cmdline())]
    assert len(victims) == 1
    t0 = time.monotonic()
    victims[0].kill()
    _out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 <= 5
    assert proc.returncode == 4
    assert "runner a-1" in err and "SIGKILL" in err
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "error"
    mod_a = next(m for m in rec["modules"] if m["name"] == "a")
    assert any("a-1" in f for f in mod_a["failures"])
    assert _k6_of(testid) == []
