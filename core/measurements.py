"""The InfluxDB measurement, tag and field names every side of a run shares (docs/architecture.md).

Written by k6 (its InfluxDB output) and by the controller (its own events, and what it scrapes
from each service's `metrics_url`); read by the policies, the reports and the Grafana
dashboards. Every writer and every reader imports the name from here, and so do the demo
services for the metrics they expose.

Measurements are per sample or per second; tags are the few low-cardinality names a query
groups or filters by. `url` and a script's `key` travel as fields, not tags (cardinality).
"""

from __future__ import annotations

from dataclasses import dataclass

# -- what k6 writes (its metric names; `runners.k6` sets which system tags it keeps) --------------
HTTP_REQS = "http_reqs"                    # one point per request, value 1
HTTP_REQ_DURATION = "http_req_duration"    # ms
HTTP_REQ_WAITING = "http_req_waiting"      # ms, time to first byte
HTTP_REQ_FAILED = "http_req_failed"        # 1 failed, 0 not (expected_response)
ITERATIONS = "iterations"
ITERATION_DURATION = "iteration_duration"
DROPPED_ITERATIONS = "dropped_iterations"
VUS = "vus"
VUS_MAX = "vus_max"

# -- what loadbearing writes ----------------------------------------------------------------------
EVENTS = "loadbearing_events"              # runners.events (run/phase/module), policies.recommend (finding/recommendation)
RUNNER_CPU = "loadbearing_runner"          # runners.generator: each local runner's CPU, once a second
SCRAPE = "loadbearing_scrape"              # runners.scrape: a service's metrics_url (Prometheus text)
SCRAPE_HEALTH = "loadbearing_scrape_health"  # runners.scrape: every scrape attempt
RELATIVE = "loadbearing_relative"          # policies.compare: both runs' series on run-relative time
STORE_MARKER = "loadbearing_store"         # core.store_identity: which store this is

# -- what a service exposes on its metrics_url (Prometheus names; each a field of loadbearing_scrape,
#    each of its labels a tag, as Telegraf's Prometheus input stores them) --------------------------


@dataclass(frozen=True)
class PoolConvention:
    """Where a convention puts a connection pool's numbers, as Prometheus names them.

    `used` is (metric, label, value) selecting the connections in use (label "" when the
    metric counts only those); times are histograms or timers (`_sum` / `_count`) in
    `unit_ms` milliseconds per unit; `pool_label` names the pool."""

    name: str
    size: str
    used: tuple[str, str, str]
    pending: str | None
    timeouts: str | None
    use_sum: str | None
    use_count: str | None
    wait_sum: str | None
    wait_count: str | None
    unit_ms: float
    pool_label: str

    @property
    def counters(self) -> tuple[str, ...]:
        """The cumulative metrics (they only grow within one process)."""
        return tuple(n for n in (self.timeouts, self.use_sum, self.use_count, self.wait_sum, self.wait_count) if n)


POOL_OTEL = PoolConvention(
    "OpenTelemetry db.client.connection.*", "db_client_connection_max",
    ("db_client_connection_count", "db_client_connection_state", "used"),
    "db_client_connection_pending_requests", "db_client_connection_timeouts_total",
    "db_client_connection_use_time_seconds_sum", "db_client_connection_use_time_seconds_count",
    "db_client_connection_wait_time_seconds_sum", "db_client_connection_wait_time_seconds_count",
    1000.0, "db_client_connection_pool_name")
POOL_OTEL_OLD = PoolConvention(
    "OpenTelemetry db.client.connections.* (semconv <= 1.24)", "db_client_connections_max",
    ("db_client_connections_usage", "state", "used"),
    "db_client_connections_pending_requests", "db_client_connections_timeouts_total",
    "db_client_connections_use_time_milliseconds_sum", "db_client_connections_use_time_milliseconds_count",
    "db_client_connections_wait_time_milliseconds_sum", "db_client_connections_wait_time_milliseconds_count",
    1.0, "pool_name")
POOL_HIKARI = PoolConvention(
    "HikariCP (Micrometer) hikaricp_connections_*", "hikaricp_connections_max",
    ("hikaricp_connections_active", "", ""), "hikaricp_connections_pending",
    "hikaricp_connections_timeout_total", "hikaricp_connections_usage_seconds_sum",
    "hikaricp_connections_usage_seconds_count", "hikaricp_connections_acquire_seconds_sum",
    "hikaricp_connections_acquire_seconds_count", 1000.0, "pool")
POOL_CONVENTIONS = (POOL_OTEL, POOL_OTEL_OLD, POOL_HIKARI)

# Micrometer's cache metrics (`cache.gets`, tag `result` = hit | miss, `cache` = its name).
CACHE_GETS = "cache_gets_total"
CACHE_NAME = "cache"
CACHE_RESULT = "result"
# OpenTelemetry's `http.server.request.duration` (seconds; a histogram: `_sum`, `_count`, `_bucket`).
HTTP_SERVER_DURATION = "http_server_request_duration_seconds"
HTTP_ROUTE = "http_route"
HTTP_REQUEST_METHOD = "http_request_method"
HTTP_STATUS_CODE = "http_response_status_code"

# -- tags ---------------------------------------------------------------------------------------------
TESTID = "testid"        # the run (its run id); on every point of a run
STRATEGY = "strategy"    # sequential | hybrid | parallel | capacity
MODULE = "module"        # the plan's module
SERVICE = "service"      # the plan's service (a module's, or the one a scraped point describes)
RUNNER = "runner"        # `<module>-<index>` (core.rundir.runner_name)
NAME = "name"            # the request's name: the script's `name` tag, else k6's URL
METHOD = "method"        # the request's HTTP method (a k6 system tag)
INSTANCE = "instance"    # a service's instance: host:port of the metrics_url scraped (loadbearing_scrape)
KIND = "kind"            # loadbearing_events: run | phase | module | finding | recommendation | knee
EVENT = "event"          # loadbearing_events: start | end, the finding/recommendation kind, or for a knee:
                         # knee | lower_bound | no_knee (runners.capacity: a capacity run's finding per service)
KNEE = "knee"            # loadbearing_events `kind` of a capacity run's knee (its `name` is the service)

# -- fields -------------------------------------------------------------------------------------------
CPU_PERCENT = "cpu_percent"   # loadbearing_runner: CPU of one core, percent


def run_tags(testid: str, strategy: str, module: str, service: str, runner: str) -> dict[str, str]:
    """The tags on every sample a runner writes (k6 `--tag`), as the policies and dashboards read them."""
    return {TESTID: testid, STRATEGY: strategy, MODULE: module, SERVICE: service, RUNNER: runner}
