"""The gallery: one row per pathology, with the ground truth built into its server.

Every case is a real server (`tests.gallery.servers`) driven by a plain k6 script that
tags its requests with `name` only, through the real controller (`loadbearing run
parallel`), into a real InfluxDB; `run_case` returns the recommendations document and
`Case.check(doc)` the ways it misses the row (empty: the row passes). The truth is
computed from the parameters the server was built with: its capacity (pool / hold,
workers / work time, 1 / CPU time), the Erlang-C optimum of the true hold time at the
offered rate (`policies.queueing.smallest_pool`, the same arithmetic the acceptance
table of the queueing module checks), and a cache's hit ratio simulated on the
workload's own key distribution.

Sizes fit a shared 2-core machine: a few seconds of load per case, at most 130 req/s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from policies.queueing import smallest_pool

HEADROOM = 0.7          # the autoscaling policy's target utilisation
POOL_SLACK = 2          # +-2 connections for measurement noise (the acceptance's allowance)

ORDERS_JS = """\
import http from 'k6/http';
export default function () {
  const id = Math.floor(Math.random() * 100) + 1;
  http.get(`${__ENV.BASE_URL}/orders/${id}`, { tags: { name: 'orders_get' } });
}
"""
REPORTS_JS = """\
import http from 'k6/http';
export default function () {
  http.get(`${__ENV.BASE_URL}/reports/${Math.floor(Math.random() * 50)}`, { tags: { name: 'reports_get' } });
}
"""
RENDER_JS = """\
import http from 'k6/http';
export default function () {
  http.get(`${__ENV.BASE_URL}/render/${Math.floor(Math.random() * 50)}`, { tags: { name: 'render_get' } });
}
"""
PING_JS = """\
import http from 'k6/http';
export default function () {
  http.get(`${__ENV.BASE_URL}/ping`, { tags: { name: 'ping' } });
}
"""
SILENT_JS = """\
import http from 'k6/http';
export default function () {
  http.get(`${__ENV.BASE_URL}/status`, { tags: { name: 'status_get' } });
}
"""
ITEM_KEYS = 200
ITEM_ZIPF = 1.1
ITEM_WRITE_SHARE = 0.1
ITEMS_JS = f"""\
import http from 'k6/http';
const KEYS = {ITEM_KEYS};
const CDF = (() => {{
  const cdf = [];
  let total = 0;
  for (let k = 1; k <= KEYS; k++) {{ total += 1 / Math.pow(k, {ITEM_ZIPF}); cdf.push(total); }}
  return cdf.map((x) => x / total);
}})();
function itemId() {{
  const u = Math.random();
  let lo = 0;
  let hi = KEYS - 1;
  while (lo < hi) {{ const mid = (lo + hi) >> 1; if (CDF[mid] < u) lo = mid + 1; else hi = mid; }}
  return ((lo * 37) % KEYS) + 1;
}}
export default function () {{
  const id = itemId();
  if (Math.random() < {ITEM_WRITE_SHARE}) {{
    http.put(`${{__ENV.BASE_URL}}/items/${{id}}`, JSON.stringify({{ note: 'x' }}), {{ tags: {{ name: 'items_put' }} }});
  }} else {{
    http.get(`${{__ENV.BASE_URL}}/items/${{id}}`, {{ tags: {{ name: 'items_get' }} }});
  }}
}}
"""


@dataclass(frozen=True)
class Server:
    service: str
    kind: str
    params: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)   # the plan's [services.NAME] facts
    metrics: bool = False                                      # the plan gives metrics_url = /metrics


@dataclass(frozen=True)
class Load:
    module: str
    service: str
    script: str
    rate: float
    seconds: int
    max_vus: int


@dataclass
class Case:
    name: str
    pathology: str
    servers: list[Server]
    loads: list[Load]
    slo_p95_ms: float
    truth: dict[str, Any]
    expect: str
    checks: list[Callable[[dict[str, Any]], str | None]]

    def check(self, doc: dict[str, Any]) -> list[str]:
        """The ways `doc` misses this row (empty: the row passes)."""
        problems = [] if doc.get("valid") else [f"run invalid: {doc.get('invalid_reasons')}"]
        for check in self.checks:
            problem = check(doc)
            if problem:
                problems.append(problem)
        return problems


# -- what a document says --------------------------------------------------------------

def recs(doc: dict[str, Any], kind: str, service: str | None = None) -> list[dict[str, Any]]:
    return [r for r in doc.get("recommendations", []) if r["kind"] == kind
            and (service is None or r["service"] == service)]


def findings(doc: dict[str, Any], kind: str, service: str | None = None) -> list[dict[str, Any]]:
    return [f for f in doc.get("findings", []) if f["kind"] == kind and (service is None or f["service"] == service)]


def pool_in_range(service: str, lo: int, hi: int, path: str | None = None) -> Callable[[dict[str, Any]], str | None]:
    def check(doc: dict[str, Any]) -> str | None:
        got = recs(doc, "db_pool", service)
        if len(got) != 1:
            return f"{service}: expected one db_pool recommendation, got {len(got)}"
        rec = got[0]
        if not lo <= rec["recommended"] <= hi:
            return f"{service}: pool {rec['recommended']} outside [{lo}, {hi}]"
        if path is not None and rec.get("evidence_path") != path:
            return f"{service}: pool evidence path {rec.get('evidence_path')!r}, expected {path!r}"
        return None
    return check


def no_pool(service: str) -> Callable[[dict[str, Any]], str | None]:
    def check(doc: dict[str, Any]) -> str | None:
        return f"{service}: got a db_pool recommendation" if recs(doc, "db_pool", service) else None
    return check


def limit_found(service: str, goodput_lo: float, goodput_hi: float,
                concurrency: float | None = None) -> Callable[[dict[str, Any]], str | None]:
    def check(doc: dict[str, Any]) -> str | None:
        got = findings(doc, "throughput_limit", service)
        if len(got) != 1:
            return f"{service}: expected one throughput_limit finding, got {len(got)}"
        ev = got[0]["evidence"]
        x = ev.get("goodput_rps")
        if x is None or not goodput_lo <= x <= goodput_hi:
            return f"{service}: goodput plateau {x} outside [{goodput_lo:.1f}, {goodput_hi:.1f}]"
        if concurrency is not None:
            inferred = ev.get("concurrency") or {}
            lo, hi = inferred.get("low"), inferred.get("high")
            if lo is None or hi is None or not lo <= concurrency <= hi:
                return f"{service}: inferred concurrency [{lo}, {hi}] does not cover {concurrency:g}"
        return None
    return check


def concurrency_at_most(service: str, most: float) -> Callable[[dict[str, Any]], str | None]:
    """The inferred concurrency is small (a CPU-bound loop: about 1; on a busy machine the client's own
    delays in the fastest request's latency push the estimate up, never to a pool's size)."""
    def check(doc: dict[str, Any]) -> str | None:
        got = findings(doc, "throughput_limit", service)
        point = ((got[0]["evidence"].get("concurrency") or {}).get("point")) if got else None
        if point is None or point > most:
            return f"{service}: inferred concurrency {point}, expected at most {most:g}"
        return None
    return check


def clamp_found(service: str, clamp_ms: float, status: str) -> Callable[[dict[str, Any]], str | None]:
    def check(doc: dict[str, Any]) -> str | None:
        got = findings(doc, "timeout_errors", service)
        if not got:
            return f"{service}: no timeout_errors finding (errors at a clamped latency)"
        ev = got[0]["evidence"]
        if str(ev.get("status")) != status or not 0.8 * clamp_ms <= ev.get("clamp_ms", 0) <= 1.5 * clamp_ms:
            return f"{service}: clamp {ev.get('clamp_ms')} ms / status {ev.get('status')}, expected ~{clamp_ms} / {status}"
        return None
    return check


def instances_in_range(service: str, capacity: float, offered: float, lo_share: float = 0.6,
                       hi_share: float = 1.2) -> Callable[[dict[str, Any]], str | None]:
    """Autoscaling sized from a capacity per instance within [lo_share, hi_share] x the truth."""
    def check(doc: dict[str, Any]) -> str | None:
        got = recs(doc, "autoscaling", service)
        if len(got) != 1:
            return f"{service}: expected one autoscaling recommendation, got {len(got)}"
        rec = got[0]
        need_lo = math.ceil(offered / (hi_share * capacity * HEADROOM) - 1e-9)
        need_hi = math.ceil(offered / (lo_share * capacity * HEADROOM) - 1e-9)
        needed = rec["predicted"]["instances_at_peak"]
        if not need_lo <= needed <= need_hi:
            return f"{service}: {needed} instances at peak outside [{need_lo}, {need_hi}]"
        return None
    return check


def no_response(service: str, sent_at_least: int) -> Callable[[dict[str, Any]], str | None]:
    def check(doc: dict[str, Any]) -> str | None:
        if findings(doc, "too_little_data", service):
            return f"{service}: called too_little_data; it is a service that never answered"
        got = findings(doc, "no_response", service)
        if len(got) != 1:
            return f"{service}: expected one no_response finding, got {len(got)}"
        ev = got[0]["evidence"]
        if ev.get("answered") != 0 or (ev.get("sent_at_least") or 0) < sent_at_least:
            return f"{service}: sent {ev.get('sent_at_least')} / answered {ev.get('answered')}"
        return None
    return check


def cache_for(service: str, endpoint: str, hit_ratio: Callable[[int], float],
              tolerance: float = 0.1) -> Callable[[dict[str, Any]], str | None]:
    def check(doc: dict[str, Any]) -> str | None:
        got = [r for r in recs(doc, "cache", service) if r["endpoint"] == endpoint]
        if len(got) != 1:
            return f"{service}/{endpoint}: expected one cache recommendation, got {len(got)}"
        rec = got[0]
        truth = hit_ratio(int(rec["ttl_s"]))
        if abs(rec["expected_hit_ratio"] - truth) > tolerance:
            return (f"{service}/{endpoint}: expected hit ratio {rec['expected_hit_ratio']} at TTL {rec['ttl_s']} s, "
                    f"simulated {truth:.2f}")
        return None
    return check


def no_cache(service: str, endpoint: str) -> Callable[[dict[str, Any]], str | None]:
    def check(doc: dict[str, Any]) -> str | None:
        got = [r for r in recs(doc, "cache", service) if r["endpoint"] == endpoint]
        return f"{service}/{endpoint}: got a cache recommendation" if got else None
    return check


# -- ground truth -------------------------------------------------------------------------

def erlang_optimum(rate: float, hold_ms: float, slo_p95_ms: float) -> int:
    """The smallest pool whose Erlang-C p95 wait is under 10 % of the SLO, for the true hold time."""
    c = smallest_pool(rate, hold_ms / 1000.0, 0.1 * slo_p95_ms / 1000.0)
    assert c is not None
    return c


def simulated_hit_ratio(rate: float, seconds: float, ttl_s: float, keys: int = ITEM_KEYS, zipf: float = ITEM_ZIPF,
                        write_share: float = ITEM_WRITE_SHARE, trials: int = 20) -> float:
    """Hit ratio of a real TTL cache (filled on a miss, dropped on a write to its key) on this
    workload: Poisson arrivals at `rate`, Zipf keys, `write_share` writes; mean of `trials` runs."""
    weights = [1 / (k ** zipf) for k in range(1, keys + 1)]
    rng = random.Random(11)
    hits = reads = 0
    for _ in range(trials):
        expires: dict[int, float] = {}
        t = 0.0
        while True:
            t += rng.expovariate(rate)
            if t > seconds:
                break
            key = rng.choices(range(keys), weights)[0]
            if rng.random() < write_share:
                expires.pop(key, None)
                continue
            reads += 1
            if expires.get(key, -1.0) > t:
                hits += 1
            else:
                expires[key] = t + ttl_s
    return hits / reads if reads else 0.0


# -- the rows -----------------------------------------------------------------------------

def gallery() -> list[Case]:
    cases: list[Case] = []

    # 1. A pool-bound service whose waiters time out into 5xx, next to a healthy service.
    pool, hold, rate, slo, timeout_s = 2, 40.0, 75, 500.0, 0.3
    best = erlang_optimum(rate, hold, slo)
    cases.append(Case(
        "pool_timeouts", "pool-bound; waiters time out into 503 (beside a healthy service)",
        [Server("orders-api", "pool", {"pool": pool, "hold_ms": hold, "timeout_s": timeout_s},
                {"db_pool_size": pool, "db_max_connections": 100}),
         Server("ping-api", "echo", {})],
        [Load("orders", "orders-api", ORDERS_JS, rate, 12, 300), Load("ping", "ping-api", PING_JS, 20, 12, 20)],
        slo,
        {"capacity_rps": pool / (hold / 1000), "hold_ms": hold, "pool": pool, "erlang_optimum": best,
         "clamp_ms": timeout_s * 1000},
        f"throughput_limit at ~{pool / (hold / 1000):.0f}/s; 503s clamped at ~{timeout_s * 1000:.0f} ms; "
        f"pool {best} +-{POOL_SLACK}; no pool for ping-api",
        [limit_found("orders-api", 0.8 * pool / (hold / 1000), 1.1 * pool / (hold / 1000), pool),
         clamp_found("orders-api", timeout_s * 1000, "503"),
         pool_in_range("orders-api", best - POOL_SLACK, best + POOL_SLACK, "black_box"),
         no_pool("ping-api")]))

    # 2. A pool-bound service that only queues (long latency, no errors).
    pool, hold, rate, slo = 3, 50.0, 80, 1000.0
    best = erlang_optimum(rate, hold, slo)
    cases.append(Case(
        "pool_queue", "pool-bound; requests only queue (long latency, no errors)",
        [Server("ledger-api", "pool", {"pool": pool, "hold_ms": hold},
                {"db_pool_size": pool, "db_max_connections": 100})],
        [Load("ledger", "ledger-api", ORDERS_JS, rate, 12, 400)],
        slo, {"capacity_rps": pool / (hold / 1000), "hold_ms": hold, "pool": pool, "erlang_optimum": best},
        f"throughput_limit at ~{pool / (hold / 1000):.0f}/s; pool {best} +-{POOL_SLACK}",
        [limit_found("ledger-api", 0.8 * pool / (hold / 1000), 1.1 * pool / (hold / 1000), pool),
         pool_in_range("ledger-api", best - POOL_SLACK, best + POOL_SLACK, "black_box")]))

    # 3. A worker-limited service (sync workers, no database facts), beside one that never answers.
    workers, work, rate, slo = 4, 40.0, 130, 500.0
    capacity = workers / (work / 1000)
    cases.append(Case(
        "workers", "worker-limited (sync workers, no database facts); a neighbour that never answers",
        [Server("reports-api", "workers", {"workers": workers, "work_ms": work}),
         Server("status-api", "silent", {})],
        [Load("reports", "reports-api", REPORTS_JS, rate, 10, 400),
         Load("status", "status-api", SILENT_JS, 5, 3, 30)],
        slo, {"capacity_rps": capacity, "concurrency": workers, "silent_sent": 15},
        f"throughput_limit, concurrency ~{workers}; instances for ~{capacity:.0f}/s each; no pool; "
        "status-api: no_response",
        [limit_found("reports-api", 0.8 * capacity, 1.1 * capacity, workers), no_pool("reports-api"),
         instances_in_range("reports-api", capacity, rate, 0.8, 1.15), no_response("status-api", 10)]))

    # 4. A CPU-bound service (one event loop), whose plan declares a pool that is not the limit. Its
    #    capacity is 1 / cpu_ms of the core it gets: on a 2-core machine shared with k6, influxd and
    #    other work that is anywhere from a quarter to all of one core, hence the wide capacity range.
    cpu, rate, slo = 10.0, 130, 500.0
    capacity = 1000.0 / cpu
    cases.append(Case(
        "cpu", "CPU-bound (one event loop); a declared pool of 8 that is not the limit",
        [Server("render-api", "cpu", {"cpu_ms": cpu}, {"db_pool_size": 8, "db_max_connections": 100})],
        [Load("render", "render-api", RENDER_JS, rate, 10, 400)],
        slo, {"capacity_rps": capacity, "concurrency": 1},
        f"throughput_limit, concurrency about 1 (at most 2.5); instances for <= ~{capacity:.0f}/s each; no pool",
        [limit_found("render-api", 0.25 * capacity, 1.1 * capacity), concurrency_at_most("render-api", 2.5),
         no_pool("render-api"),
         instances_in_range("render-api", capacity, rate, 0.25, 1.15)]))

    # 5. A cacheable GET keyed by URL path (Zipf keys), a write endpoint beside it.
    rate, seconds = 100, 15
    reads = rate * (1 - ITEM_WRITE_SHARE)
    cases.append(Case(
        "cache", "cacheable GET keyed by its URL path, skewed keys; a PUT beside it",
        [Server("items-api", "cache", {"mean_ms": 20.0, "write_ms": 5.0})],
        [Load("items", "items-api", ITEMS_JS, rate, seconds, 100)],
        200.0, {"keys": ITEM_KEYS, "zipf": ITEM_ZIPF, "reads_rps": reads},
        "cache for items_get with the simulated hit ratio +-0.1 at its TTL; none for items_put",
        [cache_for("items-api", "items_get", lambda ttl: simulated_hit_ratio(rate, seconds, ttl)),
         no_cache("items-api", "items_put"), no_pool("items-api")]))

    # 6. A pool-bound service exposing standard pool metrics (OpenTelemetry names), no pool in the plan.
    pool, hold, rate, slo = 2, 30.0, 90, 500.0
    best = erlang_optimum(rate, hold, slo)
    cases.append(Case(
        "otel_metrics", "pool-bound, exposing OpenTelemetry db.client.connection.* on /metrics; no pool in the plan",
        [Server("billing-api", "pool", {"pool": pool, "hold_ms": hold, "metrics": "otel"},
                {"db_max_connections": 100}, metrics=True)],
        [Load("billing", "billing-api", ORDERS_JS, rate, 10, 400)],
        slo, {"capacity_rps": pool / (hold / 1000), "hold_ms": hold, "pool": pool, "erlang_optimum": best},
        f"pool {best} +-{POOL_SLACK} from white-box metrics (size and hold time)",
        [pool_in_range("billing-api", best - POOL_SLACK, best + POOL_SLACK, "white_box")]))

    # 7. The same with HikariCP's Micrometer names.
    cases.append(Case(
        "hikari_metrics", "pool-bound, exposing HikariCP's Micrometer hikaricp_connections_* on /metrics",
        [Server("payments-api", "pool", {"pool": pool, "hold_ms": hold, "metrics": "hikari"},
                {"db_max_connections": 100}, metrics=True)],
        [Load("payments", "payments-api", ORDERS_JS, rate, 8, 400)],
        slo, {"capacity_rps": pool / (hold / 1000), "hold_ms": hold, "pool": pool, "erlang_optimum": best},
        f"pool {best} +-{POOL_SLACK} from white-box metrics (size and hold time)",
        [pool_in_range("payments-api", best - POOL_SLACK, best + POOL_SLACK, "white_box")]))
    return cases


CASES = {c.name: c for c in gallery()}
