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

import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from core.influx import InfluxClient, quote_ident, quote_literal

# Candidate cache TTLs (seconds) replayed against the run's own key stream.
TTL_CANDIDATES = (1, 5, 10, 30, 60)
# Slack around the run window for runner clocks (remote runners).
WINDOW_SLACK_MS = 60_000
_GROUP = ("module", "service", "name", "method")


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
    """The target's own connection-pool metrics (`app_pool`) over its service's active window."""

    size: float | None
    max_overflow: float | None
    checked_out_mean: float | None
    waiting_max: float
    wait_p95_max_ms: float
    wait_mean_ms: float | None
    hold_ms: float | None
    checkouts: float
    timeouts: float
    matched_by: str                       # "testid" | "time window"
    series: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waited(self) -> bool:
        return self.waiting_max > 0 or self.wait_p95_max_ms >= 1.0 or self.timeouts > 0


@dataclass
class CacheStats:
    hits: float
    misses: float
    ttl_s: float | None

    @property
    def hit_ratio(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


@dataclass
class AppEndpoint:
    count: float
    errors: float
    server_ms_mean: float | None
    server_ms_p95: float | None


@dataclass
class Measurements:
    interval_s: int
    endpoints: dict[EndpointKey, EndpointStats] = field(default_factory=dict)
    series: dict[EndpointKey, list[Bucket]] = field(default_factory=dict)
    stored: dict[str, dict[str, int]] = field(default_factory=dict)   # module -> measurement -> count
    modules: dict[str, list[ModuleBucket]] = field(default_factory=dict)
    keyspaces: dict[EndpointKey, KeySpace] = field(default_factory=dict)
    pools: dict[str, PoolStats] = field(default_factory=dict)
    caches: dict[str, CacheStats] = field(default_factory=dict)
    app_endpoints: dict[tuple[str, str], AppEndpoint] = field(default_factory=dict)
    runner_cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    near_pairs: dict[str, int] = field(default_factory=dict)   # module -> same-series samples <= 25 ns apart


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
        return f'"testid" = {quote_literal(self.testid)} AND {self.time_clause()}'

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
        src = f'FROM "http_req_duration" WHERE {self.where} GROUP BY {self._group()}'
        # One statement for all percentiles: InfluxDB reads the samples once (less CPU than three).
        counts, ok, failed = self.multi("endpoints", [
            f'SELECT count("value") AS "requests", mean("value") AS "mean", percentile("value", 50) AS "p50", '
            f'percentile("value", 95) AS "p95", percentile("value", 99) AS "p99" {src}',
            'SELECT min("value") AS "min_ok" FROM "http_req_duration" '
            f"WHERE {self.where} AND \"expected_response\" = 'true' GROUP BY {self._group()}",
            'SELECT count("value") AS "n", sum("value") AS "failed" '
            f'FROM "http_req_failed" WHERE {self.where} GROUP BY {self._group()}',
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
        for row in failed:
            if (st := out.get(_key(row))) is not None:
                n = int(row.get("n") or 0)
                st.failed = round(_num(row.get("failed")) or 0.0)
                st.error_rate = st.failed / n if n else 0.0
        return out

    def waiting_stats(self, stats: dict[EndpointKey, EndpointStats]) -> None:
        """Fill p50/p95 of http_req_waiting (time to first byte) into `stats` (not needed by the policies)."""
        src = f'FROM "http_req_waiting" WHERE {self.where} GROUP BY {self._group()}'
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
            f'FROM "http_req_duration" WHERE {self.where} GROUP BY {self._group(step)} fill(none)',
            'SELECT sum("value") AS "failed" '
            f'FROM "http_req_failed" WHERE {self.where} GROUP BY {self._group(step)} fill(none)',
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
            'SELECT count("value") AS "n" FROM "http_reqs", "http_req_duration", "http_req_failed" '
            f'WHERE {self.where} GROUP BY "module"'])
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            out.setdefault(str(row.get("module") or ""), {})[str(row["_name"])] = int(row.get("n") or 0)
        return out

    def module_series(self) -> dict[str, list[ModuleBucket]]:
        step = f"time({self.interval_s}s)"
        vus, dropped = self.multi("module_series", [
            f'SELECT sum("v") AS "vus" FROM (SELECT max("value") AS "v" FROM "vus" WHERE {self.where} '
            f'GROUP BY {step}, "module", "runner") WHERE {self.time_clause()} GROUP BY {step}, "module" fill(none)',
            f'SELECT sum("value") AS "dropped" FROM "dropped_iterations" WHERE {self.where} '
            f'GROUP BY {step}, "module" fill(none)',
        ])
        out: dict[str, dict[int, ModuleBucket]] = {}
        for row in vus:
            t = int(row["time"])
            out.setdefault(str(row.get("module") or ""), {})[t] = ModuleBucket(t, vus=_num(row.get("vus")) or 0.0)
        for row in dropped:
            t = int(row["time"])
            b = out.setdefault(str(row.get("module") or ""), {}).setdefault(t, ModuleBucket(t))
            b.dropped = _num(row.get("dropped")) or 0.0
        return {m: [v[t] for t in sorted(v)] for m, v in sorted(out.items())}

    def duration_percentile(self, key: EndpointKey, pct: float) -> float | None:
        """One percentile (0-100) of an endpoint's http_req_duration."""
        cond = " AND ".join(f"{quote_ident(t)} = {quote_literal(getattr(key, t))}" for t in _GROUP)
        label = f"percentile_{pct:g}:{key.service}/{key.name}"
        rows = self.rows(label, f'SELECT percentile("value", {pct:.4g}) AS "p" FROM "http_req_duration" '
                                f"WHERE {self.where} AND {cond}")
        return _num(rows[0].get("p")) if rows else None

    # -- key spaces (cache policy) -------------------------------------------------------

    def keyspaces(self, keys: Iterable[EndpointKey] | None = None) -> dict[EndpointKey, KeySpace]:
        """Distinct keys per GET endpoint (all of them when `keys` is None) and the replayed
        misses for each candidate TTL.

        The `key` field when the endpoint's requests carry one, else `url` when it is
        informative (k6 stores the request's `name` in `url` when a script names its
        requests; then `url` says nothing about the keys and the key space is unknown).
        """
        wanted = None if keys is None else set(keys)
        fields, tags = self.multi("http_reqs_schema", ['SHOW FIELD KEYS FROM "http_reqs"',
                                                       'SHOW TAG KEYS FROM "http_reqs"'])
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
                f'FROM "http_reqs" WHERE {get} GROUP BY {self._group()}',
                *(f'SELECT count(distinct({f})) AS "keys" FROM "http_reqs" WHERE {get} '
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
            f'SELECT count("value") AS "n" FROM "http_reqs" WHERE {get} GROUP BY {self._group()}, "key"'])
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

    # -- the target's own metrics (app_*) ------------------------------------------------

    def _app_rows(self, label: str, select: str, measurement: str, service: str, window: tuple[int, int],
                  group: str = "") -> tuple[list[dict[str, Any]], str]:
        """Rows of an app_* aggregate for one service in its active window: points tagged with this
        run's testid, else points with no testid at all (never another run's)."""
        lo, hi = window
        span = f"time >= {lo}ms AND time <= {hi}ms"
        svc = f'"service" = {quote_literal(service)}'
        tail = f" GROUP BY {group}" if group else ""
        by_id = self.rows(f"{label}:{service}", f'SELECT {select} FROM "{measurement}" WHERE {svc} AND '
                                                f'"testid" = {quote_literal(self.testid)} AND {span}{tail}')
        if by_id:
            return by_id, "testid"
        # Points without a testid tag (a target not told the run's id), inside the service's window.
        return self.rows(f"{label}:{service}", f'SELECT {select} FROM "{measurement}" WHERE {svc} AND '
                                               f"\"testid\" = '' AND {span}{tail}"), "time window"

    def pool_stats(self, service: str, window: tuple[int, int]) -> PoolStats | None:
        rows, matched = self._app_rows(
            "app_pool", 'max("size") AS "size", max("max_overflow") AS "max_overflow", '
            'mean("checked_out") AS "checked_out", max("waiting") AS "waiting", max("waiting_max") AS "waiting_max", '
            'max("checkout_wait_ms_p95") AS "wait_p95", mean("checkout_wait_ms_mean") AS "wait_mean", '
            'sum("checkouts") AS "checkouts", sum("timeouts") AS "timeouts"', "app_pool", service, window)
        if not rows:
            return None
        r = rows[0]
        lo, hi = window
        cond = f'"service" = {quote_literal(service)} AND time >= {lo}ms AND time <= {hi}ms'
        cond += f' AND "testid" = {quote_literal(self.testid if matched == "testid" else "")}'
        weighted = self.rows(f"app_pool_hold:{service}",
                             'SELECT sum("w") AS "hold_x_checkouts" FROM (SELECT "hold_ms_mean" * "checkouts" AS "w" '
                             f'FROM "app_pool" WHERE {cond}) WHERE time >= {lo}ms AND time <= {hi}ms')
        checkouts = _num(r.get("checkouts")) or 0.0
        hold_sum = _num(weighted[0].get("hold_x_checkouts")) if weighted else None
        step = f"time({self.interval_s}s)"
        series = self.rows(f"app_pool_series:{service}",
                           'SELECT mean("checked_out") AS "checked_out", max("waiting") AS "waiting", '
                           'max("checkout_wait_ms_p95") AS "wait_p95_ms", max("size") AS "size" '
                           f'FROM "app_pool" WHERE {cond} GROUP BY {step} fill(none)')
        return PoolStats(
            size=_num(r.get("size")),
            max_overflow=_num(r.get("max_overflow")),
            checked_out_mean=_num(r.get("checked_out")),
            waiting_max=max(_num(r.get("waiting")) or 0.0, _num(r.get("waiting_max")) or 0.0),
            wait_p95_max_ms=_num(r.get("wait_p95")) or 0.0,
            wait_mean_ms=_num(r.get("wait_mean")),
            hold_ms=(hold_sum / checkouts) if hold_sum is not None and checkouts > 0 else None,
            checkouts=checkouts,
            timeouts=_num(r.get("timeouts")) or 0.0,
            matched_by=matched,
            series=[{"t_ms": int(s["time"]), "checked_out": _num(s.get("checked_out")),
                     "waiting": _num(s.get("waiting")), "wait_p95_ms": _num(s.get("wait_p95_ms")),
                     "size": _num(s.get("size"))} for s in series],
        )

    def cache_stats(self, service: str, window: tuple[int, int]) -> CacheStats | None:
        rows, _ = self._app_rows("app_cache", 'sum("hits") AS "hits", sum("misses") AS "misses", '
                                 'max("ttl_s") AS "ttl_s"', "app_cache", service, window)
        if not rows:
            return None
        r = rows[0]
        return CacheStats(hits=_num(r.get("hits")) or 0.0, misses=_num(r.get("misses")) or 0.0,
                          ttl_s=_num(r.get("ttl_s")))

    def app_endpoint_stats(self, service: str, window: tuple[int, int]) -> dict[tuple[str, str], AppEndpoint]:
        rows, _ = self._app_rows("app_endpoint", 'sum("count") AS "count", sum("errors") AS "errors", '
                                 'mean("server_ms_mean") AS "mean", max("server_ms_p95") AS "p95"',
                                 "app_endpoint", service, window, group='"name"')
        return {(service, str(r.get("name") or "")): AppEndpoint(
            count=_num(r.get("count")) or 0.0, errors=_num(r.get("errors")) or 0.0,
            server_ms_mean=_num(r.get("mean")), server_ms_p95=_num(r.get("p95"))) for r in rows}

    def runner_cpu(self) -> dict[str, dict[str, float]]:
        """Per runner: max and p90 of `loadbearing_runner.cpu_percent`, when the controller wrote it."""
        rows = self.rows("runner_cpu", 'SELECT max("cpu_percent") AS "max", percentile("cpu_percent", 90) AS "p90" '
                                       f'FROM "loadbearing_runner" WHERE {self.where} GROUP BY "runner"')
        return {str(r.get("runner") or ""): {"max": _num(r.get("max")) or 0.0, "p90": _num(r.get("p90")) or 0.0}
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
        }
        for svc, window in sorted(services.items()):
            jobs[f"pool:{svc}"] = partial(self.pool_stats, svc, window)
            jobs[f"cache:{svc}"] = partial(self.cache_stats, svc, window)
            jobs[f"app_endpoint:{svc}"] = partial(self.app_endpoint_stats, svc, window)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {name: pool.submit(fn) for name, fn in jobs.items()}
            results = {name: f.result() for name, f in futures.items()}
        m.endpoints = results["endpoints"]
        m.series = results["series"]
        m.stored = results["stored"]
        m.modules = results["modules"]
        m.runner_cpu = results["cpu"]
        for svc in sorted(services):
            if (p := results[f"pool:{svc}"]) is not None:
                m.pools[svc] = p
            if (c := results[f"cache:{svc}"]) is not None:
                m.caches[svc] = c
            m.app_endpoints.update(results[f"app_endpoint:{svc}"])
        m.keyspaces = {k: v for k, v in results["keyspaces"].items() if k in m.endpoints}
        return m
