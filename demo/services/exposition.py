"""GET /metrics of a demo service: Prometheus text in the standard names, as a real service exposes them.

- the connection pool in OpenTelemetry's semantic conventions for database client
  connection pools, as the OpenTelemetry Prometheus exporter names them:
  `db_client_connection_count{db_client_connection_state="used"|"idle"}`,
  `db_client_connection_max` (size + max overflow), `db_client_connection_pending_requests`,
  `db_client_connection_timeouts_total`, `db_client_connection_use_time_seconds` and
  `db_client_connection_wait_time_seconds` (histograms), all with
  `db_client_connection_pool_name` = the service;
- the cache in Micrometer's names: `cache_gets_total{cache=<endpoint>, result="hit"|"miss"}`
  (a coalesced miss waited for another request's load and counts as a hit);
- the server time in OpenTelemetry's HTTP semantic conventions:
  `http_server_request_duration_seconds{http_request_method, http_route, http_response_status_code}`
  (a histogram; the route is its template, `/profiles/{profile_id:int}`).

`Instruments` are prometheus-client metrics updated as things happen (a checkout, a
return, a cache lookup, a response). One process serves one instance; with INSTANCES > 1
the launcher runs N worker processes on one socket and points `PROMETHEUS_MULTIPROC_DIR`
at a directory of its own (prometheus-client's multiprocess mode): each worker writes its
values there, and /metrics, answered by whichever worker the kernel hands the scrape to,
reads every worker's files. Counters and histograms are summed over the workers, so a
total never goes backwards whoever answers; the pool's gauges stay per worker (each worker
has its own pool), told apart by the label `pid`, and leave the exposition when their
worker stops (`close()`).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from core import measurements as names

disable_created_metrics()  # no `_created` series: OpenTelemetry's exporter writes none either

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
POOL = names.POOL_OTEL.pool_label
STATE = names.POOL_OTEL.used[1]
# OpenTelemetry's default explicit buckets for durations in seconds.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _base(metric: str) -> str:
    """A histogram's or counter's name as prometheus-client takes it (it adds the suffixes)."""
    for suffix in ("_sum", "_count", "_total"):
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def multiprocess() -> bool:
    """Whether this process writes its metrics for several workers to share (INSTANCES > 1)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class Instruments:
    """A service's metrics: the pool (`pool_*`), the cache (`cache_lookup`) and the server time (`request`)."""

    def __init__(self, service: str, pool_max: int) -> None:
        self.registry = reg = CollectorRegistry(auto_describe=True)
        otel = names.POOL_OTEL
        self.service = service
        self.pool_max = pool_max
        # Gauges per worker ("liveall": one series per live pid); counters and histograms summed.
        self._count = Gauge(otel.used[0], "Connections in the state of the state label", [POOL, STATE],
                            registry=reg, multiprocess_mode="liveall")
        self._max = Gauge(otel.size, "The maximum number of open connections allowed", [POOL],
                          registry=reg, multiprocess_mode="liveall").labels(service)
        self._pending = Gauge(otel.pending or "", "Pending requests for an open connection", [POOL],
                              registry=reg, multiprocess_mode="liveall").labels(service)
        self._timeouts = Counter(_base(otel.timeouts or ""), "Connection timeouts", [POOL], registry=reg).labels(service)
        self._use = Histogram(_base(otel.use_sum or ""), "Time between borrowing a connection and returning it",
                              [POOL], registry=reg, buckets=SECONDS_BUCKETS).labels(service)
        self._wait = Histogram(_base(otel.wait_sum or ""), "Time it took to obtain an open connection", [POOL],
                               registry=reg, buckets=SECONDS_BUCKETS).labels(service)
        self._gets = Counter(_base(names.CACHE_GETS), "Cache lookups by result", [names.CACHE_NAME, names.CACHE_RESULT],
                             registry=reg)
        self._requests = Histogram(names.HTTP_SERVER_DURATION, "Duration of HTTP server requests",
                                   [names.HTTP_REQUEST_METHOD, names.HTTP_ROUTE, names.HTTP_STATUS_CODE],
                                   registry=reg, buckets=SECONDS_BUCKETS)
        self._max.set(pool_max)
        self.pool_state(0, 0)

    # -- demo.services.db.PoolObserver ------------------------------------------------------------

    def pool_state(self, used: int, pending: int) -> None:
        self._count.labels(self.service, "used").set(used)
        self._count.labels(self.service, "idle").set(max(0, self.pool_max - used))
        self._pending.set(pending)

    def pool_wait(self, seconds: float) -> None:
        self._wait.observe(seconds)

    def pool_use(self, seconds: float) -> None:
        self._use.observe(seconds)

    def pool_timeout(self) -> None:
        self._timeouts.inc()

    # -- the cache and the server ----------------------------------------------------------------

    def cache_lookup(self, cache: str, hit: bool) -> None:
        self._gets.labels(cache, "hit" if hit else "miss").inc()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).observe(seconds)

    # -- exposition ------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """This service's metrics as Prometheus text: this process's, or every worker's (multiprocess)."""
        if not multiprocess():
            return generate_latest(self.registry)
        shared = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(shared)
        return generate_latest(shared)

    def close(self) -> None:
        """This worker stops: its per-worker gauges leave the exposition (its counts stay in the totals)."""
        if multiprocess():
            prometheus_multiprocess.mark_process_dead(os.getpid())
