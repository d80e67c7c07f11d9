"""Capacity: the target's own signals (connection pool, cache, server time) against the
load k6 offered (requests/s on the right axis), with the policies' findings and
recommendations as annotations.

Data contract read here: what the controller scrapes from each service's `metrics_url`
(Prometheus text) into `loadbearing_scrape`, one field per metric name and one tag per
label, tagged `testid`, `service` and `instance` (host:port of the URL scraped). The
names are the standard ones (`core.measurements`), never a convention of our own:
- the pool in OpenTelemetry's `db.client.connection.*` (the Prometheus exporter's names),
  the older `db.client.connections.*`, or HikariCP's Micrometer `hikaricp_connections_*`:
  one column per convention in each pool panel, whichever the service exposes;
- the cache in Micrometer's `cache_gets_total{cache, result="hit"|"miss"}`;
- the server time in OpenTelemetry's `http_server_request_duration_seconds` (per route).
Counters are turned into increases per series (`GROUP BY *` in a subquery, from one scrape
to the next) before they are summed per interval, so instances and label sets never mix.
- `loadbearing_events` with `kind` = finding | recommendation (written by `recommend`).
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard

from core import measurements
from core.measurements import PoolConvention
from grafana_dashboards import events, skeleton, variables
from grafana_dashboards.events import EVENTS_MEASUREMENT
from grafana_dashboards.influxql import InfluxQL
from grafana_dashboards.panels import right_axis, table_panel, timeseries_panel
from grafana_dashboards.variables import RUN_FILTER, regex_filter, where

WHERE = where(RUN_FILTER, regex_filter("service", "service"))
BY_TIME = "GROUP BY time($__interval)"
PER_SECOND = "* 1000 / $__interval_ms"
LOAD_SERIES = "requests/s (k6)"
CONCLUSIONS = '"kind" =~ /^(finding|recommendation)$/'
SCRAPE = f'"{measurements.SCRAPE}"'
BY_INSTANCE = f'{BY_TIME}, "service", "instance" fill(none)'  # each instance has its own pool


def load_target() -> InfluxQL:
    """Requests/s k6 sent to the selected services: the x of every capacity panel."""
    return InfluxQL(f'SELECT sum("value") {PER_SECOND} FROM "{measurements.HTTP_REQS}" {WHERE} {BY_TIME} fill(0)'
                    ).alias(LOAD_SERIES)


def against_load(title: str, description: str, unit: str, targets: list[InfluxQL]) -> timeseries.Panel:
    """A panel of the services' own series with the offered load on a right-hand axis."""
    panel = timeseries_panel(title, description + " Dashed: requests/s sent by k6 (right axis).", unit,
                             [*targets, load_target()])
    return right_axis(panel, LOAD_SERIES, "reqps")


def _conventions(metric: Callable[[PoolConvention], str | None]) -> list[tuple[PoolConvention, str]]:
    return [(c, name) for c in measurements.POOL_CONVENTIONS if (name := metric(c))]


def _label(conv: PoolConvention) -> str:
    return conv.name.split(" ")[0] if conv is not measurements.POOL_OTEL_OLD else "OpenTelemetry <= 1.24"


def pool_gauge(metric: Callable[[PoolConvention], str | None], what: str, *, in_use: bool = False) -> InfluxQL:
    """One column per pool convention: the largest value of `metric` per service instance and interval.
    `in_use`: only the series of connections in use (a state label's other values left out)."""
    cols = ", ".join(f'max("{name}") AS "{what} ({_label(c)})"' for c, name in _conventions(metric))
    cond = "".join(f' AND ("{c.used[1]}" = \'{c.used[2]}\' OR "{c.used[1]}" = \'\')'
                   for c in measurements.POOL_CONVENTIONS if in_use and c.used[1])
    return InfluxQL(f"SELECT {cols} FROM {SCRAPE} {WHERE}{cond} {BY_INSTANCE}").alias(
        "$tag_service $tag_instance $col")


def _per_series(fields: dict[str, str], cond: str = "") -> str:
    """A subquery: each counter's increase from one scrape to the next, series by series (`GROUP BY *`),
    stamped at the later scrape (so a run shorter than one interval still shows its rate)."""
    cols = ", ".join(f'non_negative_difference("{name}") AS "{alias}"' for alias, name in fields.items())
    return f"(SELECT {cols} FROM {SCRAPE} {WHERE}{cond} GROUP BY *)"


def mean_wait() -> InfluxQL:
    """Mean checkout wait per interval (ms): increase of the wait time's sum over its count's, per convention."""
    convs = [c for c in measurements.POOL_CONVENTIONS if c.wait_sum and c.wait_count]
    fields = {f"{k}{i}": name for i, c in enumerate(convs)
              for k, name in (("s", c.wait_sum or ""), ("n", c.wait_count or ""))}
    cols = ", ".join(f'sum("s{i}") / sum("n{i}") * {c.unit_ms:g} AS "mean wait ({_label(c)})"'
                     for i, c in enumerate(convs))
    return InfluxQL(f"SELECT {cols} FROM {_per_series(fields)} WHERE $timeFilter {BY_INSTANCE}").alias(
        "$tag_service $tag_instance $col")


def timeouts() -> InfluxQL:
    convs = [c for c in measurements.POOL_CONVENTIONS if c.timeouts]
    fields = {f"t{i}": c.timeouts or "" for i, c in enumerate(convs)}
    cols = ", ".join(f'sum("t{i}") {PER_SECOND} AS "timeouts/s ({_label(c)})"' for i, c in enumerate(convs))
    return InfluxQL(f"SELECT {cols} FROM {_per_series(fields)} WHERE $timeFilter {BY_INSTANCE}").alias(
        "$tag_service $tag_instance $col")


def cache_rates() -> InfluxQL:
    """Cache lookups per second by result, summed over caches and instances."""
    return InfluxQL(f'SELECT sum("n") {PER_SECOND} FROM {_per_series({"n": measurements.CACHE_GETS})} '
                    f'WHERE $timeFilter {BY_TIME}, "service", "{measurements.CACHE_RESULT}" fill(none)').alias(
        f"$tag_service $tag_{measurements.CACHE_RESULT}/s")


def cache_hit_ratio() -> InfluxQL:
    """hits / (hits + misses) per interval, over every cache and instance of the service."""
    result = measurements.CACHE_RESULT
    hits = _per_series({"hit": measurements.CACHE_GETS}, f" AND \"{result}\" = 'hit'")
    misses = _per_series({"miss": measurements.CACHE_GETS}, f" AND \"{result}\" = 'miss'")
    return InfluxQL(f'SELECT sum("hit") / (sum("hit") + sum("miss")) FROM {hits}, {misses} WHERE $timeFilter '
                    f'{BY_TIME}, "service" fill(none)').alias("$tag_service hit ratio")


def server_time() -> InfluxQL:
    """Mean server time per route (ms): increase of the duration's sum over its count's, every status and instance."""
    metric = measurements.HTTP_SERVER_DURATION
    fields = {"s": f"{metric}_sum", "n": f"{metric}_count"}
    return InfluxQL(f'SELECT sum("s") / sum("n") * 1000 FROM {_per_series(fields)} WHERE $timeFilter '
                    f'{BY_TIME}, "service", "{measurements.HTTP_ROUTE}" fill(none)').alias(
        f"$tag_service $tag_{measurements.HTTP_ROUTE}")


def build() -> Dashboard:
    board = skeleton.dashboard(
        skeleton.CAPACITY_UID,
        "The target's connection pool, cache and server time (scraped from its metrics_url) against the "
        "offered load, with findings and recommendations.",
    )
    for var in (variables.testid(), variables.service()):
        board = board.with_variable(var)
    board = (board.annotation(events.findings()).annotation(events.recommendations())
             .annotation(events.phases()).annotation(events.knees()))

    panels = [
        timeseries_panel("Requests/s by service", "Requests per second k6 sent to each service.", "reqps",
                         [InfluxQL(f'SELECT sum("value") {PER_SECOND} FROM "{measurements.HTTP_REQS}" {WHERE} '
                                   f'{BY_TIME}, "service" fill(0)').alias("$tag_service")], span=24),
        against_load("DB pool: connections in use vs pool size",
                     "Connections in use and the pool's maximum, per service instance (the busiest pool of an "
                     "instance that runs several, e.g. one per worker process); in use = maximum means the "
                     "pool is the limit.", "short",
                     [pool_gauge(lambda c: c.used[0], "in use", in_use=True),
                      pool_gauge(lambda c: c.size, "pool size")]),
        against_load("DB pool: requests waiting for a connection",
                     "Requests queued for a pooled connection, per service instance (sampled at each scrape).",
                     "short", [pool_gauge(lambda c: c.pending, "waiting")]),
        against_load("DB pool: mean checkout wait and timeouts",
                     "Mean time a request waited for a pooled connection (ms) per interval, and checkouts that "
                     "timed out per second, per service instance.", "ms", [mean_wait(), timeouts()]),
        against_load("Cache: hits and misses per second",
                     "Cache lookups per second that hit or missed (every cache and instance of the service; "
                     "Micrometer's cache_gets_total).", "ops", [cache_rates()]),
        against_load("Cache: hit ratio", "hits / (hits + misses) per interval.", "percentunit",
                     [cache_hit_ratio()]),
        against_load("Server time by route",
                     "The service's own mean time per request and route (ms; OpenTelemetry's "
                     "http.server.request.duration), without network and client time.", "ms", [server_time()]),
        table_panel("Findings and recommendations",
                    "What `loadbearing recommend` concluded for this run (kind, title, detail).",
                    [InfluxQL(f'SELECT "kind", "name", "title", "text" FROM "{EVENTS_MEASUREMENT}" '
                              f"{where(RUN_FILTER, CONCLUSIONS)}")],
                    span=24, height=8),
    ]
    for panel in panels:
        board = board.with_panel(panel)
    return board
