"""Run overview: one run (testid) at a glance — load, latency against the SLO, errors,
checks, bytes — with the strategy's phases and module starts/ends as annotations.

Every query filters on the run (`"testid" = '$testid'`) and on the selected strategy
and modules; numbers are aggregated by InfluxDB, never from raw samples.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig

from core import measurements
from grafana_dashboards import events, skeleton, variables
from grafana_dashboards.influxql import InfluxQL
from grafana_dashboards.panels import slo_line, stat_panel, table_panel, timeseries_panel
from grafana_dashboards.variables import RUN_FILTER, regex_filter, where

WHERE = where(RUN_FILTER, regex_filter("strategy", "strategy"), regex_filter("module", "module"))
BY_TIME = "GROUP BY time($__interval)"
PER_SECOND = "* 1000 / $__interval_ms"
SLO_SERIES = "SLO p95"


def vus_query(group_by: str = "") -> str:
    """Concurrent VUs: each runner's max per interval, summed over runners (optionally per tag)."""
    extra = f', "{group_by}"' if group_by else ""
    return (f'SELECT sum("max") AS "vus" FROM (SELECT max("value") FROM "{measurements.VUS}" {WHERE} '
            f'{BY_TIME}, "runner"{extra}) WHERE $timeFilter {BY_TIME}{extra} fill(none)')


def slo_target() -> InfluxQL:
    """The SLO variable as a series over the run's intervals (drawn as a threshold line)."""
    return InfluxQL(f'SELECT count("value") * 0 + $slo_p95_ms AS "slo" FROM "{measurements.HTTP_REQ_DURATION}" '
                    f"{WHERE} {BY_TIME} fill(none)").alias(SLO_SERIES)


def latency_panel(percentile: int) -> timeseries.Panel:
    panel = timeseries_panel(
        f"Latency p{percentile} by endpoint",
        f"p{percentile} of http_req_duration per endpoint (k6 tag `name`) per interval; the dashed "
        "red line is the SLO (variable slo_p95_ms, the plan's slo.p95_ms).",
        "ms",
        [
            InfluxQL(f'SELECT percentile("value", {percentile}) FROM "{measurements.HTTP_REQ_DURATION}" {WHERE} '
                     f'{BY_TIME}, "name" fill(none)').alias(f"$tag_name p{percentile}"),
            slo_target(),
        ],
    )
    return slo_line(panel, SLO_SERIES)


def build() -> Dashboard:
    board = skeleton.dashboard(
        skeleton.OVERVIEW_UID,
        "One loadbearing run: load, latency against the SLO, errors and checks, with phases.",
    )
    for var in (variables.testid(), variables.strategy(), variables.module(), variables.slo_p95_ms()):
        board = board.with_variable(var)
    board = board.annotation(events.phases()).annotation(events.modules()).annotation(events.knees())

    stats = [
        stat_panel("Requests", "HTTP requests sent by k6 in the run (sum of http_reqs).", "short",
                   InfluxQL(f'SELECT sum("value") AS "requests" FROM "{measurements.HTTP_REQS}" {WHERE}'), decimals=0),
        stat_panel("Peak VUs", "Highest number of concurrent VUs, summed over the run's runners.",
                   "short", InfluxQL(f'SELECT max("vus") FROM ({vus_query()})'), decimals=0),
        stat_panel("p95 latency", "95th percentile of http_req_duration over the time range.", "ms",
                   InfluxQL(f'SELECT percentile("value", 95) AS "p95" FROM "{measurements.HTTP_REQ_DURATION}" {WHERE}')),
        stat_panel("p99 latency", "99th percentile of http_req_duration over the time range.", "ms",
                   InfluxQL(f'SELECT percentile("value", 99) AS "p99" FROM "{measurements.HTTP_REQ_DURATION}" {WHERE}')),
        stat_panel("Error rate", "Share of failed requests: mean of k6's http_req_failed (0/1).",
                   "percentunit",
                   InfluxQL(f'SELECT mean("value") AS "error_rate" FROM "{measurements.HTTP_REQ_FAILED}" {WHERE}'),
                   thresholds=[(None, "green"), (0.01, "red")]),
        stat_panel("Checks passed", "Share of passed k6 checks (mean of checks, 0/1).", "percentunit",
                   InfluxQL(f'SELECT mean("value") AS "checks" FROM "checks" {WHERE}'),
                   thresholds=[(None, "red"), (0.99, "green")]),
    ]
    series = [
        timeseries_panel("VUs by module", "Concurrent VUs per module, summed over runners.", "short",
                         [InfluxQL(vus_query("module")).alias("$tag_module")]),
        timeseries_panel("Requests/s by endpoint", "Requests per second per endpoint (k6 tag name).",
                         "reqps",
                         [InfluxQL(f'SELECT sum("value") {PER_SECOND} AS "rps" FROM "{measurements.HTTP_REQS}" {WHERE} '
                                   f'{BY_TIME}, "name" fill(0)').alias("$tag_name")]),
        latency_panel(95),
        latency_panel(99),
        timeseries_panel("Error rate by endpoint",
                         "Share of failed requests per endpoint: mean of http_req_failed (0/1), "
                         "failures by k6's expected statuses (not a custom metric).", "percentunit",
                         [InfluxQL(f'SELECT mean("value") FROM "{measurements.HTTP_REQ_FAILED}" {WHERE} '
                                   f'{BY_TIME}, "name" fill(none)').alias("$tag_name")]),
        timeseries_panel("Requests/s by status", "Requests per second per HTTP status (0 = no response).",
                         "reqps",
                         [InfluxQL(f'SELECT sum("value") {PER_SECOND} FROM "{measurements.HTTP_REQS}" {WHERE} '
                                   f'{BY_TIME}, "status" fill(0)').alias("HTTP $tag_status")]),
        timeseries_panel("Checks pass rate", "Share of passed checks per check name.", "percentunit",
                         [InfluxQL(f'SELECT mean("value") FROM "checks" {WHERE} '
                                   f'{BY_TIME}, "check" fill(none)').alias("$tag_check")]),
        timeseries_panel("Data sent and received", "Bytes per second sent and received by k6.", "Bps",
                         [InfluxQL(f'SELECT sum("value") {PER_SECOND} FROM "data_sent" {WHERE} '
                                   f"{BY_TIME} fill(0)").alias("sent"),
                          InfluxQL(f'SELECT sum("value") {PER_SECOND} FROM "data_received" {WHERE} '
                                   f"{BY_TIME} fill(0)").alias("received")]),
    ]
    endpoints = table_panel(
        "Endpoints",
        "Per endpoint over the time range: requests, latency percentiles (ms) and error rate.",
        [
            InfluxQL(f'SELECT count("value") AS "requests", percentile("value", 50) AS "p50", '
                     f'percentile("value", 95) AS "p95", percentile("value", 99) AS "p99", '
                     f'max("value") AS "max" FROM "{measurements.HTTP_REQ_DURATION}" {WHERE} GROUP BY "{measurements.MODULE}", "name"'),
            InfluxQL(f'SELECT mean("value") AS "error_rate" FROM "{measurements.HTTP_REQ_FAILED}" {WHERE} '
                     f'GROUP BY "{measurements.MODULE}", "name"'),
        ],
    ).transformations([
        DataTransformerConfig(id_val="merge", options={}),
        DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}}),
    ])
    for panel in [*stats, *series, endpoints]:
        board = board.with_panel(panel)
    return board
