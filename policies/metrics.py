"""The metrics reader: InfluxQL aggregates of one run, computed by InfluxDB.

Every number the policies use comes from a server-side aggregate (count, mean,
percentile, count(distinct), GROUP BY time() buckets): raw samples are never
pulled into Python. Built on `core.influx.InfluxClient`, so it speaks InfluxDB
1.x (basic auth) and 2.x/3.x v1-compatibility endpoints (`Authorization: Token`
from LOADBEARING_INFLUX_TOKEN) alike.

`MetricsReader.read()` returns a `Measurements`; every query it ran is kept in
`reader.queries` (label -> InfluxQL) so that recommendations can cite them.
Percentiles are InfluxDB's nearest-rank percentiles of the stored samples (never
averages of per-runner percentiles).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from core import measurements as names
from core.influx import InfluxClient, quote_ident, quote_literal
from core.measurements import CACHE_GETS, POOL_CONVENTIONS, PoolConvention

# Candidate cache TTLs (seconds) replayed against the run's own key stream.
TTL_CANDIDATES = (1, 5, 10, 30, 60)
# Percentiles of each GET endpoint read for the cache policy (misses keep today's latency).
# The points the cache policy interpolates misses' latency from: it asks for today's
# 100 x (1 - 0.05 / (1 - h)) percentile (h: the predicted hit ratio), never above p95, and
# clamps below p50. Each percentile() is its own scan and sort of the endpoint's samples in
# InfluxDB 1.x (~0.12 s per 10^6 samples here), so the grid holds no point the policy cannot use.
PERCENTILE_GRID = (50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.0, 94.0, 95.0)
# Slack around the run window for runner clocks (remote runners).
WINDOW_SLACK_MS = 60_000
_GROUP = (names.MODULE, names.SERVICE, names.NAME, names.METHOD)


def bucket_seconds(run_seconds: float, target_buckets: int = 120) -> int:
    """A round bucket size giving at most ~`target_buckets` buckets for the run."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if run_seconds / step <= target_buckets:
            return step
    return 3600


@dataclass(frozen=True, order=True)
class EndpointKey:
    module: str
    service: str
    name: str
    method: str

    @property
    def label(self) -> str:
        return f"{self.method} {self.name}" if self.method else self.name


@dataclass
class EndpointStats:
    key: EndpointKey
    requests: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    min_ok_ms: float | None = None
    p1_ok_ms: float | None = None     # 1st percentile of successful requests (R0's upper bound)
    wait_p50_ms: float | None = None
    wait_p95_ms: float | None = None
    failed: int = 0
    error_rate: float = 0.0


@dataclass
class Bucket:
    """One time bucket of one endpoint: completed requests, mean and p95 duration, failures."""

    t_ms: int
    requests: int
    mean_ms: float
    p95_ms: float
    failed: int = 0


@dataclass
class ModuleBucket:
    t_ms: int
    vus: float = 0.0
    dropped: float = 0.0


@dataclass
class KeySpace:
    """Distinct keys an endpoint was called with (`key` field/tag, else `url` when informative)."""

    source: str | None          # "key" | "url" | None (unknown: requests are name-tagged)
    requests: int
    distinct: int
    # TTL (s) -> sum over fixed windows of that length of distinct keys per window
    # (the misses of a cache with that TTL, replayed on this run's request stream).
    window_distinct: dict[int, int] = field(default_factory=dict)


@dataclass
class PoolStats:
    """A service's connection pool, from the metrics its `metrics_url` exposed (white box).

    `convention` names the metric names it came from (OpenTelemetry's `db.client.connection.*`,
    their older `db.client.connections.*`, or HikariCP's Micrometer `hikaricp_connections_*`).
    Sizes and gauges are per pool (one per instance, or per worker process where an instance
    runs several; the largest pool's size, the mean of the pools' means); counts are summed
    over every series, each counted on its own (`GROUP BY *`)."""

    convention: str
    metrics: dict[str, str]              # role -> the metric name read (size, used, pending, timeouts, hold, wait)
    instances: int                       # pools seen (series of the size or in-use gauge)
    size: float | None
    used_mean: float | None
    used_peak: float | None              # the most connections seen in use at one scrape
    pending_max: float
    timeouts: float
    hold_ms: float | None                # mean time a connection was held (use_time / usage)
    uses: float                          # connections returned in the window (use_time count)
    wait_mean_ms: float | None
    series: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waited(self) -> bool:
        return self.pending_max > 0 or self.timeouts > 0 or (self.wait_mean_ms or 0.0) >= 1.0


@dataclass(frozen=True)
class CountersBackwards:
    """A service's counters went down between two scrapes of one series: they are not one process's.

    A counter only grows within a process, so a fall means the scrapes of one URL reached
    different processes (instances or worker processes behind one address, each with its own
    counts) or the service restarted during the run. Rates over such a series mix processes,
    so the service's white-box numbers are not used (`times`: the most falls of one counter)."""

    metric: str
    instance: str
    times: int


@dataclass
class CacheStats:
    """A service's cache counters (Micrometer's `cache_gets_total{result="hit"|"miss"}`), over the run."""

    hits: float
    misses: float
    metric: str = "cache_gets_total"

    @property
    def hit_ratio(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


@dataclass
class ScrapeHealth:
    """How the scrapes of a service's metrics_url went (`loadbearing_scrape_health`)."""

    attempts: int
    failed: int
    last_error: str | None


@dataclass
class FailureGroup:
    """Failed requests of one endpoint with one status: how many, and how long they took."""

    status: str
    count: int
    p10_ms: float
    p50_ms: float
    p90_ms: float
    error_code: str = ""


@dataclass
class Measurements:
    interval_s: int
    endpoints: dict[EndpointKey, EndpointStats] = field(default_factory=dict)
    series: dict[EndpointKey, list[Bucket]] = field(default_factory=dict)
    stored: dict[str, dict[str, int]] = field(default_factory=dict)   # module -> measurement -> count
    modules: dict[str, list[ModuleBucket]] = field(default_factory=dict)
    keyspaces: dict[EndpointKey, KeySpace] = field(default_factory=dict)
    pools: dict[str, PoolStats] = field(default_factory=dict)       # white box, per service
    caches: dict[str, CacheStats] = field(default_factory=dict)     # white box, per service
    scrapes: dict[str, ScrapeHealth] = field(default_factory=dict)  # per service with a metrics_url
    backwards: dict[str, CountersBackwards] = field(default_factory=dict)  # services whose counters fell
    failures: dict[EndpointKey, list[FailureGroup]] = field(default_factory=dict)
    unanswered: dict[str, dict[str, int]] = field(default_factory=dict)  # module -> error_code -> status-0 requests
    # GET endpoint -> percentile (PERCENTILE_GRID) -> ms: what the cache policy reads misses' latency from
    percentiles: dict[EndpointKey, dict[float, float]] = field(default_factory=dict)
    runner_cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    near_pairs: dict[str, int] = field(default_factory=dict)   # module -> same-series samples <= 25 ns apart

    def percentile(self, key: EndpointKey, pct: float) -> float | None:
        """The endpoint's `pct` percentile, interpolated linearly between the grid's points
        (below the grid: its lowest point; above it: its highest)."""
        grid = self.percentiles.get(key) or {}
        if not grid:
            return None
        points = sorted(grid)
        if pct <= points[0]:
            return grid[points[0]]
        for lo, hi in itertools.pairwise(points):
            if lo <= pct <= hi:
                return grid[lo] + (grid[hi] - grid[lo]) * (pct - lo) / (hi - lo)
        return grid[points[-1]]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return None if math.isnan(value) else float(value)
    return None


def _key(row: dict[str, Any]) -> EndpointKey:
    return EndpointKey(*(str(row.get(t) or "") for t in _GROUP))


class MetricsReader:
    """Reads one run (`testid`, time window in epoch ms) from InfluxDB with aggregates only."""

    def __init__(self, client: InfluxClient, testid: str, start_ms: int, end_ms: int,
                 interval_s: int | None = None, workers: int = 4) -> None:
        self.client = client
        self.testid = testid
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.interval_s = interval_s or bucket_seconds((end_ms - start_ms) / 1000.0)
        self.workers = workers
        self.queries: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release the shared HTTP connections."""
        self.client.close()

    # -- query helpers -------------------------------------------------------------------

    def time_clause(self, start_ms: int | None = None, end_ms: int | None = None) -> str:
        lo = (self.start_ms if start_ms is None else start_ms) - WINDOW_SLACK_MS
        hi = (self.end_ms if end_ms is None else end_ms) + WINDOW_SLACK_MS
        return f"time >= {lo}ms AND time <= {hi}ms"

    @property
    def where(self) -> str:
        return f'"{names.TESTID}" = {quote_literal(self.testid)} AND {self.time_clause()}'

    def _group(self, *extra: str) -> str:
        return ", ".join([*extra, *(quote_ident(t) for t in _GROUP)])

    def rows(self, label: str, q: str) -> list[dict[str, Any]]:
        """Run one labelled query (recorded for evidence); rows with series tags merged."""
        with self._lock:
            self.queries[label] = q
        return self.client.rows(q)

    def multi(self, label: str, statements: list[str]) -> list[list[dict[str, Any]]]:
        """Several statements, run concurrently (InfluxDB runs the statements of one request one
        after another); one row list (with the measurement in `_name`) per statement, in order."""
        with self._lock:
            self.queries[label] = ";\n".join(statements)

        def run(q: str) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            for res in self.client.query(q):
                for s in res.get("series", []) or []:
                    for values in s.get("values", []):
                        row = dict(zip(s["columns"], values, strict=False))
                        row.update(s.get("tags") or {})
                        row["_name"] = s.get("name")
                        rows.append(row)
            return rows

        if len(statements) == 1:
            return [run(statements[0])]
        with ThreadPoolExecutor(max_workers=min(len(statements), self.workers)) as pool:
            return list(pool.map(run, statements))

    # -- k6 samples ----------------------------------------------------------------------

    def endpoint_stats(self) -> dict[EndpointKey, EndpointStats]:
        """Per endpoint: requests, mean, p50/p95/p99 of http_req_duration, fastest success, failures."""
        src = f'FROM "{names.HTTP_REQ_DURATION}" WHERE {self.where} GROUP BY {self._group()}'
        # One statement for all percentiles: InfluxDB reads the samples once (less CPU than three).
        counts, ok, failed = self.multi("endpoints", [
            f'SELECT count("value") AS "requests", mean("value") AS "mean", percentile("value", 50) AS "p50", '
            f'percentile("value", 95) AS "p95", percentile("value", 99) AS "p99" {src}',
            f'SELECT min("value") AS "min_ok", percentile("value", 1) AS "p1_ok" FROM "{names.HTTP_REQ_DURATION}" '
            f"WHERE {self.where} AND \"expected_response\" = 'true' GROUP BY {self._group()}",
            'SELECT count("value") AS "n", sum("value") AS "failed" '
            f'FROM "{names.HTTP_REQ_FAILED}" WHERE {self.where} GROUP BY {self._group()}',
        ])
        out: dict[EndpointKey, EndpointStats] = {}
        for row in counts:
            key = _key(row)
            out[key] = EndpointStats(key=key, requests=int(row.get("requests") or 0),
                                     mean_ms=_num(row.get("mean")) or 0.0, p50_ms=_num(row.get("p50")) or 0.0,
                                     p95_ms=_num(row.get("p95")) or 0.0, p99_ms=_num(row.get("p99")) or 0.0)
        for row in ok:
            if (st := out.get(_key(row))) is not None:
                st.min_ok_ms = _num(row.get("min_ok"))
                st.p1_ok_ms = _num(row.get("p1_ok"))
        for row in failed:
            if (st := out.get(_key(row))) is not None:
                n = int(row.get("n") or 0)
                st.failed = round(_num(row.get("failed")) or 0.0)
                st.error_rate = st.failed / n if n else 0.0
        return out

    def waiting_stats(self, stats: dict[EndpointKey, EndpointStats]) -> None:
        """Fill p50/p95 of http_req_waiting (time to first byte) into `stats` (not needed by the policies)."""
        src = f'FROM "{names.HTTP_REQ_WAITING}" WHERE {self.where} GROUP BY {self._group()}'
        p50, p95 = self.multi("waiting", [f'SELECT percentile("value", 50) AS "p" {src}',
                                          f'SELECT percentile("value", 95) AS "p" {src}'])
        for rows, attr in ((p50, "wait_p50_ms"), (p95, "wait_p95_ms")):
            for row in rows:
                if (st := stats.get(_key(row))) is not None:
                    setattr(st, attr, _num(row.get("p")))

    def endpoint_series(self) -> dict[EndpointKey, list[Bucket]]:
        step = f"time({self.interval_s}s)"
        durations, failed = self.multi("endpoint_series", [
            'SELECT count("value") AS "requests", mean("value") AS "mean", percentile("value", 95) AS "p95" '
            f'FROM "{names.HTTP_REQ_DURATION}" WHERE {self.where} GROUP BY {self._group(step)} fill(none)',
            'SELECT sum("value") AS "failed" '
            f'FROM "{names.HTTP_REQ_FAILED}" WHERE {self.where} GROUP BY {self._group(step)} fill(none)',
        ])
        out: dict[EndpointKey, dict[int, Bucket]] = {}
        for row in durations:
            t = int(row["time"])
            out.setdefault(_key(row), {})[t] = Bucket(
                t_ms=t, requests=int(row.get("requests") or 0), mean_ms=_num(row.get("mean")) or 0.0,
                p95_ms=_num(row.get("p95")) or 0.0)
        for row in failed:
            bucket = out.get(_key(row), {}).get(int(row["time"]))
            if bucket is not None:
                bucket.failed = round(_num(row.get("failed")) or 0.0)
        return {k: [v[t] for t in sorted(v)] for k, v in sorted(out.items())}

    def stored_counts(self) -> dict[str, dict[str, int]]:
        (rows,) = self.multi("stored_samples", [
            f'SELECT count("value") AS "n" FROM "{names.HTTP_REQS}", "{names.HTTP_REQ_DURATION}", "{names.HTTP_REQ_FAILED}" '
            f'WHERE {self.where} GROUP BY "{names.MODULE}"'])
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            out.setdefault(str(row.get(names.MODULE) or ""), {})[str(row["_name"])] = int(row.get("n") or 0)
        return out

    def module_series(self) -> dict[str, list[ModuleBucket]]:
        step = f"time({self.interval_s}s)"
        vus, dropped = self.multi("module_series", [
            f'SELECT sum("v") AS "vus" FROM (SELECT max("value") AS "v" FROM "{names.VUS}" WHERE {self.where} '
            f'GROUP BY {step}, "{names.MODULE}", "{names.RUNNER}") WHERE {self.time_clause()} GROUP BY {step}, "{names.MODULE}" fill(none)',
            f'SELECT sum("value") AS "dropped" FROM "{names.DROPPED_ITERATIONS}" WHERE {self.where} '
            f'GROUP BY {step}, "{names.MODULE}" fill(none)',
        ])
        out: dict[str, dict[int, ModuleBucket]] = {}
        for row in vus:
            t = int(row["time"])
            out.setdefault(str(row.get(names.MODULE) or ""), {})[t] = ModuleBucket(t, vus=_num(row.get("vus")) or 0.0)
        for row in dropped:
            t = int(row["time"])
            b = out.setdefault(str(row.get(names.MODULE) or ""), {}).setdefault(t, ModuleBucket(t))
            b.dropped = _num(row.get("dropped")) or 0.0
        return {m: [v[t] for t in sorted(v)] for m, v in sorted(out.items())}

    def percentile_grid(self) -> dict[EndpointKey, dict[float, float]]:
        """PERCENTILE_GRID of every GET endpoint's http_req_duration (one statement; InfluxDB scans once per point)."""
        cols = ", ".join(f'percentile("value", {p:g}) AS "p{p:g}"' for p in PERCENTILE_GRID)
        (rows,) = self.multi("percentiles", [f'SELECT {cols} FROM "{names.HTTP_REQ_DURATION}" WHERE {self.where} '
                                             f"AND \"method\" = 'GET' GROUP BY {self._group()}"])
        out: dict[EndpointKey, dict[float, float]] = {}
        for row in rows:
            grid = {p: v for p in PERCENTILE_GRID if (v := _num(row.get(f"p{p:g}"))) is not None}
            if grid:
                out[_key(row)] = grid
        return out

    def failure_groups(self) -> dict[EndpointKey, list[FailureGroup]]:
        """Failed requests per endpoint and status: count and the spread of their durations."""
        (rows,) = self.multi("failures", [
            'SELECT count("value") AS "n", percentile("value", 10) AS "p10", percentile("value", 50) AS "p50", '
            f'percentile("value", 90) AS "p90" FROM "{names.HTTP_REQ_DURATION}" WHERE {self.where} '
            f"AND \"expected_response\" = 'false' GROUP BY {self._group()}, \"status\", \"error_code\""])
        out: dict[EndpointKey, list[FailureGroup]] = {}
        for row in rows:
            out.setdefault(_key(row), []).append(FailureGroup(
                status=str(row.get("status") or ""), count=int(row.get("n") or 0),
                p10_ms=_num(row.get("p10")) or 0.0, p50_ms=_num(row.get("p50")) or 0.0,
                p90_ms=_num(row.get("p90")) or 0.0, error_code=str(row.get("error_code") or "")))
        return {k: sorted(v, key=lambda g: (-g.count, g.status)) for k, v in sorted(out.items())}

    def unanswered_requests(self) -> dict[str, dict[str, int]]:
        """Per module: requests k6 stored without any HTTP status (timeouts, resets), by k6 error code."""
        (rows,) = self.multi("unanswered", [f'SELECT count("value") AS "n" FROM "{names.HTTP_REQS}" WHERE {self.where} '
                                            "AND \"status\" = '0' GROUP BY \"module\", \"error_code\""])
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            out.setdefault(str(row.get(names.MODULE) or ""), {})[str(row.get("error_code") or "")] = int(row.get("n") or 0)
        return out

    # -- key spaces (cache policy) -------------------------------------------------------

    def keyspaces(self, keys: Iterable[EndpointKey] | None = None) -> dict[EndpointKey, KeySpace]:
        """Distinct keys per GET endpoint (all of them when `keys` is None) and the replayed
        misses for each candidate TTL.

        The `key` field when the endpoint's requests carry one, else `url` when it is
        informative (k6 stores the request's `name` in `url` when a script names its
        requests; then `url` says nothing about the keys and the key space is unknown).
        """
        wanted = None if keys is None else set(keys)
        fields, tags = self.multi("http_reqs_schema", [f'SHOW FIELD KEYS FROM "{names.HTTP_REQS}"',
                                                       f'SHOW TAG KEYS FROM "{names.HTTP_REQS}"'])
        field_names = {str(r.get("fieldKey")) for r in fields}
        tag_names = {str(r.get("tagKey")) for r in tags}
        get = f"{self.where} AND \"method\" = 'GET'"
        if "key" not in field_names and "key" in tag_names:
            return self._keyspaces_from_tag(wanted, get)
        out: dict[EndpointKey, KeySpace] = {}
        for source in ("key", "url"):
            if source not in field_names:
                continue
            if out and all(ks.source is not None for ks in out.values()):
                break
            f = quote_ident(source)
            results = self.multi(f"cache_keys_{source}", [
                f'SELECT count(distinct({f})) AS "keys", count("value") AS "requests", first({f}) AS "sample" '
                f'FROM "{names.HTTP_REQS}" WHERE {get} GROUP BY {self._group()}',
                *(f'SELECT count(distinct({f})) AS "keys" FROM "{names.HTTP_REQS}" WHERE {get} '
                  f'GROUP BY {self._group(f"time({ttl}s)")} fill(none)' for ttl in TTL_CANDIDATES)])
            for row in results[0]:
                key = _key(row)
                if wanted is not None and key not in wanted:
                    continue
                current = out.setdefault(key, KeySpace(None, int(row.get("requests") or 0), 0))
                if current.source is not None:
                    continue
                distinct = int(row.get("keys") or 0)
                if distinct == 0 or (source == "url" and distinct <= 1 and str(row.get("sample")) == key.name):
                    continue
                out[key] = KeySpace(source, int(row.get("requests") or 0), distinct)
            for ttl, rows in zip(TTL_CANDIDATES, results[1:], strict=True):
                for row in rows:
                    ks = out.get(_key(row))
                    if ks is not None and ks.source == source:
                        ks.window_distinct[ttl] = ks.window_distinct.get(ttl, 0) + int(row.get("keys") or 0)
        for k in wanted or ():
            out.setdefault(k, KeySpace(None, 0, 0))
        return dict(sorted(out.items()))

    def _keyspaces_from_tag(self, wanted: set[EndpointKey] | None, get: str) -> dict[EndpointKey, KeySpace]:
        """`key` stored as a tag (a script tagged it but K6_INFLUXDB_TAGS_AS_FIELDS lacks it): one series per key."""
        (rows,) = self.multi("cache_keys_tag", [
            f'SELECT count("value") AS "n" FROM "{names.HTTP_REQS}" WHERE {get} GROUP BY {self._group()}, "key"'])
        out: dict[EndpointKey, KeySpace] = {}
        for row in rows:
            key = _key(row)
            if wanted is not None and key not in wanted:
                continue
            ks = out.setdefault(key, KeySpace("key", 0, 0))
            ks.requests += int(row.get("n") or 0)
            if row.get("key"):
                ks.distinct += 1
        for k in wanted or ():
            out.setdefault(k, KeySpace(None, 0, 0))
        return dict(sorted(out.items()))

    # -- the services' own metrics, scraped from metrics_url (white box) ----------------------

    def _scrape_where(self, service: str, window: tuple[int, int], cond: str = "") -> str:
        lo, hi = window
        return (f'"{names.TESTID}" = {quote_literal(self.testid)} AND "{names.SERVICE}" = {quote_literal(service)} '
                f"AND time >= {lo}ms AND time <= {hi}ms" + (f" AND {cond}" if cond else ""))

    def _scraped(self, label: str, select: str, service: str, window: tuple[int, int], cond: str = "",
                 group: str = "") -> list[dict[str, Any]]:
        tail = f" GROUP BY {group}" if group else ""
        return self.rows(f"{label}:{service}", f'SELECT {select} FROM "{names.SCRAPE}" '
                                               f"WHERE {self._scrape_where(service, window, cond)}{tail}")

    def _increases(self, label: str, service: str, window: tuple[int, int],
                   counters: dict[str, str]) -> dict[str, float]:
        """Each counter's increase over the window, series by series (`spread` per series, `GROUP BY *`,
        then summed): instances, workers and label sets are never mixed in one spread."""
        if not counters:
            return {}
        inner = ", ".join(f"spread({quote_ident(name)}) AS {quote_ident(alias)}" for alias, name in counters.items())
        outer = ", ".join(f"sum({quote_ident(alias)}) AS {quote_ident(alias)}" for alias in counters)
        rows = self.rows(f"{label}:{service}", f'SELECT {outer} FROM (SELECT {inner} FROM "{names.SCRAPE}" '
                                               f"WHERE {self._scrape_where(service, window)} GROUP BY *)")
        return {alias: _num(rows[0].get(alias)) or 0.0 if rows else 0.0 for alias in counters}

    def counters_backwards(self, service: str, window: tuple[int, int],
                           counters: list[str]) -> CountersBackwards | None:
        """Whether any of `counters` went down from one scrape to the next within one series (see
        `CountersBackwards`); the counter that fell most often, where."""
        if not counters:
            return None
        where = self._scrape_where(service, window)
        results = self.multi(f"counters_backwards:{service}", [
            f'SELECT count("d") AS "n" FROM (SELECT difference({quote_ident(c)}) AS "d" FROM "{names.SCRAPE}" '
            f'WHERE {where} GROUP BY *) WHERE "d" < 0 GROUP BY "{names.INSTANCE}"' for c in counters])
        worst: CountersBackwards | None = None
        for counter, rows in zip(counters, results, strict=True):
            for row in rows:
                times = int(row.get("n") or 0)
                if times > 0 and (worst is None or times > worst.times):
                    worst = CountersBackwards(counter, str(row.get(names.INSTANCE) or ""), times)
        return worst

    def scraped_fields(self) -> set[str]:
        (rows,) = self.multi("scraped_fields", [f'SHOW FIELD KEYS FROM "{names.SCRAPE}"'])
        return {str(r.get("fieldKey")) for r in rows}

    def pool_stats(self, service: str, window: tuple[int, int], fields: set[str]) -> PoolStats | None:
        """The first pool convention whose metrics the service exposed (see `pool_conventions`)."""
        for conv in POOL_CONVENTIONS:
            if conv.size not in fields and conv.used[0] not in fields:
                continue
            stats = self._pool_stats(conv, service, window, fields)
            if stats is not None:
                return stats
        return None

    def _pool_stats(self, conv: PoolConvention, service: str, window: tuple[int, int],
                    fields: set[str]) -> PoolStats | None:
        def has(name: str | None) -> bool:
            return name is not None and name in fields

        gauges = []
        if has(conv.size):
            gauges.append(f'max({quote_ident(conv.size)}) AS "size"')
        if has(conv.pending):
            gauges.append(f'max({quote_ident(conv.pending or "")}) AS "pending"')
        per_pool = self._scraped(f"pool_{conv.name}", ", ".join(gauges), service, window,
                                 group="*") if gauges else []
        used_name, state_tag, state = conv.used
        used_cond = f"{quote_ident(state_tag)} = {quote_literal(state)}" if state_tag else ""
        used_rows = self._scraped(f"pool_{conv.name}_used", f'mean({quote_ident(used_name)}) AS "used", '
                                  f'max({quote_ident(used_name)}) AS "peak"', service,
                                  window, used_cond, group="*") if has(used_name) else []
        if not per_pool and not used_rows:
            return None
        counts = self._increases(f"pool_{conv.name}_counters", service, window, {
            alias: name or "" for alias, name in (("timeouts", conv.timeouts), ("use_sum", conv.use_sum),
                                                  ("use_n", conv.use_count), ("wait_sum", conv.wait_sum),
                                                  ("wait_n", conv.wait_count)) if has(name)})
        sizes = [v for r in per_pool if (v := _num(r.get("size"))) is not None]
        use_sum, uses = counts.get("use_sum", 0.0), counts.get("use_n", 0.0)
        wait_sum, waits = counts.get("wait_sum", 0.0), counts.get("wait_n", 0.0)
        used = [v for r in used_rows if (v := _num(r.get("used"))) is not None]
        step = f"time({self.interval_s}s)"
        series_sel = [f'mean({quote_ident(used_name)}) AS "used"'] if has(used_name) else []
        series = self._scraped(f"pool_{conv.name}_series", ", ".join(series_sel), service, window, used_cond,
                               group=f"{step} fill(none)") if series_sel else []
        pending_series = self._scraped(f"pool_{conv.name}_pending_series",
                                       f'max({quote_ident(conv.pending or "")}) AS "pending"', service, window,
                                       group=f"{step} fill(none)") if has(conv.pending) else []
        pending_at = {int(r["time"]): _num(r.get("pending")) for r in pending_series}
        return PoolStats(
            convention=conv.name,
            metrics={role: name or "" for role, name in (("size", conv.size), ("used", used_name),
                                                         ("pending", conv.pending), ("timeouts", conv.timeouts),
                                                         ("hold", conv.use_sum), ("wait", conv.wait_sum))
                     if has(name)},
            instances=max(1, len(used_rows) or len(sizes)),
            size=max(sizes) if sizes else None,
            used_mean=sum(used) / len(used) if used else None,
            used_peak=max((v for r in used_rows if (v := _num(r.get("peak"))) is not None), default=None),
            pending_max=max((_num(r.get("pending")) or 0.0 for r in per_pool), default=0.0),
            timeouts=counts.get("timeouts", 0.0),
            hold_ms=use_sum / uses * conv.unit_ms if uses > 0 else None,
            uses=uses,
            wait_mean_ms=wait_sum / waits * conv.unit_ms if waits > 0 else None,
            series=[{"t_ms": int(r["time"]), "used": _num(r.get("used")),
                     "pending": pending_at.get(int(r["time"]))} for r in series],
        )

    def cache_stats(self, service: str, window: tuple[int, int], fields: set[str]) -> CacheStats | None:
        if CACHE_GETS not in fields:
            return None
        inner = (f'SELECT spread({quote_ident(CACHE_GETS)}) AS "n" FROM "{names.SCRAPE}" WHERE '
                 f"{self._scrape_where(service, window)} GROUP BY *")
        rows = self.rows(f"cache_gets:{service}", f'SELECT sum("n") AS "n" FROM ({inner}) '
                                                  f'GROUP BY "{names.CACHE_RESULT}"')
        counts = {str(r.get(names.CACHE_RESULT) or ""): _num(r.get("n")) or 0.0 for r in rows}
        if not counts:
            return None
        return CacheStats(hits=counts.get("hit", 0.0), misses=counts.get("miss", 0.0))

    def white_box(self, service: str, window: tuple[int, int],
                  fields: set[str]) -> tuple[PoolStats | None, CacheStats | None, CountersBackwards | None]:
        """The service's pool and cache numbers, unless its counters went backwards (then neither)."""
        counters = [c for conv in POOL_CONVENTIONS for c in conv.counters if c in fields]
        if CACHE_GETS in fields:
            counters.append(CACHE_GETS)
        fell = self.counters_backwards(service, window, counters)
        if fell is not None:
            return None, None, fell
        return self.pool_stats(service, window, fields), self.cache_stats(service, window, fields), None

    def scrape_health(self) -> dict[str, ScrapeHealth]:
        total, failed = self.multi("scrape_health", [
            f'SELECT count("ms") AS "n" FROM "{names.SCRAPE_HEALTH}" WHERE {self.where} GROUP BY "{names.SERVICE}"',
            f'SELECT count("ms") AS "n", last("error") AS "error" FROM "{names.SCRAPE_HEALTH}" '
            f'WHERE {self.where} AND "ok" = false GROUP BY "{names.SERVICE}"'])
        bad = {str(r.get(names.SERVICE)): r for r in failed}
        return {str(r.get(names.SERVICE)): ScrapeHealth(
            attempts=int(r.get("n") or 0), failed=int((bad.get(str(r.get(names.SERVICE))) or {}).get("n") or 0),
            last_error=(bad.get(str(r.get(names.SERVICE))) or {}).get("error")) for r in total}

    def runner_cpu(self) -> dict[str, dict[str, float]]:
        """Per runner: max and p90 of `loadbearing_runner.cpu_percent`, when the controller wrote it."""
        rows = self.rows("runner_cpu", f'SELECT max("{names.CPU_PERCENT}") AS "max", percentile("{names.CPU_PERCENT}", 90) '
                                       f'AS "p90" FROM "{names.RUNNER_CPU}" WHERE {self.where} GROUP BY "{names.RUNNER}"')
        return {str(r.get(names.RUNNER) or ""): {"max": _num(r.get("max")) or 0.0, "p90": _num(r.get("p90")) or 0.0}
                for r in rows}

    # -- everything ----------------------------------------------------------------------

    def read(self, services: dict[str, tuple[int, int]]) -> Measurements:
        """All aggregates of the run. `services` maps each service to its active window (epoch ms)."""
        m = Measurements(interval_s=self.interval_s)
        jobs: dict[str, Callable[[], Any]] = {
            "endpoints": self.endpoint_stats,
            "series": self.endpoint_series,
            "stored": self.stored_counts,
            "modules": self.module_series,
            "cpu": self.runner_cpu,
            "keyspaces": self.keyspaces,
            "percentiles": self.percentile_grid,
            "failures": self.failure_groups,
            "unanswered": self.unanswered_requests,
            "scrapes": self.scrape_health,
        }
        fields = self.scraped_fields()
        for svc, window in sorted(services.items()):
            if fields:
                jobs[f"white_box:{svc}"] = partial(self.white_box, svc, window, fields)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {name: pool.submit(fn) for name, fn in jobs.items()}
            results = {name: f.result() for name, f in futures.items()}
        m.endpoints = results["endpoints"]
        m.series = results["series"]
        m.stored = results["stored"]
        m.modules = results["modules"]
        m.runner_cpu = results["cpu"]
        m.percentiles = results["percentiles"]
        m.failures = results["failures"]
        m.unanswered = results["unanswered"]
        m.scrapes = results["scrapes"]
        for svc in sorted(services):
            pool_stats, cache_stats, fell = results.get(f"white_box:{svc}") or (None, None, None)
            if pool_stats is not None:
                m.pools[svc] = pool_stats
            if cache_stats is not None:
                m.caches[svc] = cache_stats
            if fell is not None:
                m.backwards[svc] = fell
        m.keyspaces = {k: v for k, v in results["keyspaces"].items() if k in m.endpoints}
        return m
