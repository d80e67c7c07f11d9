"""Capacity: the target's own signals (connection pool, cache, server time) against the
load k6 offered (requests/s on the right axis), with the policies' findings and
recommendations as annotations.

Data contract read here (what demo/services/metrics.py writes once a second; any
target may write the same). Tags on every point: `service`, `testid` (the run), and
optionally `instance` (one series per service instance):
- `app_pool`: `checked_out`, `overflow`, `waiting`, `size` (gauges at report time) and
  `checkout_wait_ms_p95` (p95 of the pool checkout wait over the report interval, ms).
- `app_cache`: `hits`, `misses` — counts *within* the report interval (not running
  totals), summed over instances.
- `app_endpoint`, plus tag `name` (the endpoint, as k6's `name`): `server_ms_p95`
  (server-side p95 over the report interval, ms).
- `loadbearing_events` with `kind` = finding | recommendation (written by `recommend`).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard

from core import measurements
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


def load_target() -> InfluxQL:
    """Requests/s k6 sent to the selected services: the x of every capacity panel."""
    return InfluxQL(f'SELECT sum("value") {PER_SECOND} FROM "{measurements.HTTP_REQS}" {WHERE} {BY_TIME} fill(0)'
                    ).alias(LOAD_SERIES)


def against_load(title: str, description: str, unit: str, targets: list[InfluxQL]) -> timeseries.Panel:
    """A panel of app_* series with the offered load on a right-hand axis."""
    panel = timeseries_panel(title, description + " Dashed: requests/s sent by k6 (right axis).", unit,
                             [*targets, load_target()])
    return right_axis(panel, LOAD_SERIES, "reqps")


def build() -> Dashboard:
    board = skeleton.dashboard(
        skeleton.CAPACITY_UID,
        "The target's connection pool, cache and server time against the offered load, with "
        "findings and recommendations.",
    )
    for var in (variables.testid(), variables.service()):
        board = board.with_variable(var)
    board = (board.annotation(events.findings()).annotation(events.recommendations())
             .annotation(events.phases()).annotation(events.knees()))

    by_service = f'{BY_TIME}, "service" fill(none)'
    by_instance = f'{BY_TIME}, "service", "instance" fill(none)'  # each instance has its own pool
    panels = [
        timeseries_panel("Requests/s by service", "Requests per second k6 sent to each service.", "reqps",
                         [InfluxQL(f'SELECT sum("value") {PER_SECOND} FROM "{measurements.HTTP_REQS}" {WHERE} '
                                   f'{BY_TIME}, "service" fill(0)').alias("$tag_service")], span=24),
        against_load("DB pool: connections checked out vs pool size",
                     "Connections in use, in overflow, and the pool size, per service instance; in use "
                     "= size (+ max overflow) means the pool is the limit.", "short",
                     [InfluxQL(f'SELECT max("checked_out") FROM "{measurements.APP_POOL}" {WHERE} {by_instance}'
                               ).alias("$tag_service $tag_instance checked out"),
                      InfluxQL(f'SELECT max("overflow") FROM "{measurements.APP_POOL}" {WHERE} {by_instance}'
                               ).alias("$tag_service $tag_instance overflow"),
                      InfluxQL(f'SELECT max("size") FROM "{measurements.APP_POOL}" {WHERE} {by_instance}'
                               ).alias("$tag_service $tag_instance pool size")]),
        against_load("DB pool: requests waiting for a connection",
                     "Requests queued for a pooled connection, per service instance.", "short",
                     [InfluxQL(f'SELECT max("waiting") FROM "{measurements.APP_POOL}" {WHERE} {by_instance}'
                               ).alias("$tag_service $tag_instance waiting")]),
        against_load("DB pool: checkout wait p95",
                     "p95 of the time a request waited for a pooled connection (ms), per instance.", "ms",
                     [InfluxQL(f'SELECT max("checkout_wait_ms_p95") FROM "{measurements.APP_POOL}" {WHERE} {by_instance}'
                               ).alias("$tag_service $tag_instance checkout wait p95")]),
        against_load("Cache: hits and misses per second",
                     "Cache lookups per second that hit or missed (all instances of the service).", "ops",
                     [InfluxQL(f'SELECT sum("hits") {PER_SECOND} AS "hits/s", sum("misses") {PER_SECOND} '
                               f'AS "misses/s" FROM "{measurements.APP_CACHE}" {WHERE} {by_service}'
                               ).alias("$tag_service $col")]),
        against_load("Cache: hit ratio",
                     "hits / (hits + misses) per interval.", "percentunit",
                     [InfluxQL(f'SELECT sum("hits") / (sum("hits") + sum("misses")) FROM "{measurements.APP_CACHE}" '
                               f"{WHERE} {by_service}").alias("$tag_service hit ratio")]),
        against_load("Server time p95 by endpoint",
                     "The service's own p95 per endpoint (ms; the worst instance), without network "
                     "and client time.", "ms",
                     [InfluxQL(f'SELECT max("server_ms_p95") FROM "{measurements.APP_ENDPOINT}" {WHERE} '
                               f'{BY_TIME}, "service", "name" fill(none)').alias("$tag_service $tag_name")]),
        table_panel("Findings and recommendations",
                    "What `loadbearing recommend` concluded for this run (kind, title, detail).",
                    [InfluxQL(f'SELECT "kind", "name", "title", "text" FROM "{EVENTS_MEASUREMENT}" '
                              f"{where(RUN_FILTER, CONCLUSIONS)}")],
                    span=24, height=8),
    ]
    for panel in panels:
        board = board.with_panel(panel)
    return board
