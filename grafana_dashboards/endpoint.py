"""Endpoint drill-down: where each endpoint's time goes (k6's request phases) and how its
latency is distributed over time (a heatmap of server-side bucket counts).

The breakdown and the heatmap repeat per selected endpoint (variable `endpoint`, the
k6 `name` tag). The heatmap's buckets are counted by InfluxDB (`count` with a value
range per bucket), so no raw sample leaves the database.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig

from core import measurements
from grafana_dashboards import events, skeleton, variables
from grafana_dashboards.influxql import InfluxQL
from grafana_dashboards.panels import bucket_heatmap, table_panel, timeseries_panel
from grafana_dashboards.variables import RUN_FILTER, regex_filter, where

FILTERS = (RUN_FILTER, regex_filter("module", "module"), regex_filter("name", "endpoint"))
WHERE = where(*FILTERS)
BY_TIME = "GROUP BY time($__interval)"
# Upper bounds (ms) of the heatmap's latency buckets; the last bucket is open-ended.
BUCKET_BOUNDS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
PHASES = (
    ("http_req_blocked", "blocked"),
    ("http_req_connecting", "connecting"),
    ("http_req_sending", "sending"),
    ("http_req_waiting", "waiting"),
    ("http_req_receiving", "receiving"),
)


def bucket_targets() -> list[InfluxQL]:
    """One count query per bucket [lower, upper) of http_req_duration, aliased by its upper bound."""
    targets = []
    lowers = (0, *BUCKET_BOUNDS_MS)
    uppers: tuple[int | None, ...] = (*BUCKET_BOUNDS_MS, None)
    for lower, upper in zip(lowers, uppers, strict=True):
        cond = f'"value" >= {lower}' + (f' AND "value" < {upper}' if upper is not None else "")
        query = f'SELECT count("value") FROM "{measurements.HTTP_REQ_DURATION}" {where(*FILTERS, cond)} {BY_TIME} fill(0)'
        targets.append(InfluxQL(query).alias("+Inf" if upper is None else str(upper)))
    return targets


def build() -> Dashboard:
    board = skeleton.dashboard(
        skeleton.ENDPOINT_UID,
        "Per endpoint of one run: latency breakdown by request phase and a latency heatmap.",
    )
    for var in (variables.testid(), variables.module(), variables.endpoint()):
        board = board.with_variable(var)
    board = board.annotation(events.phases()).annotation(events.modules())

    summary = table_panel(
        "Endpoints: latency by phase",
        "Per endpoint over the time range: requests, p95 of the total, and the mean of each k6 "
        "request phase (ms). duration = sending + waiting + receiving; blocked includes connecting.",
        [
            InfluxQL(f'SELECT count("value") AS "requests", percentile("value", 95) AS "p95" '
                     f'FROM "{measurements.HTTP_REQ_DURATION}" {WHERE} GROUP BY "name"'),
            *[InfluxQL(f'SELECT mean("value") AS "{label}" FROM "{measurement}" {WHERE} GROUP BY "name"')
              for measurement, label in PHASES],
        ],
    ).transformations([
        DataTransformerConfig(id_val="merge", options={}),
        DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}}),
    ])
    breakdown = timeseries_panel(
        "Latency breakdown: $endpoint",
        "Mean time per k6 request phase for the endpoint (ms). waiting is the server's time to "
        "first byte; blocked (waiting for a connection slot, including connecting) and connecting "
        "grow when the client cannot get connections.",
        "ms",
        [InfluxQL(f'SELECT mean("value") FROM "{measurement}" {WHERE} {BY_TIME} fill(none)').alias(label)
         for measurement, label in PHASES],
    ).repeat("endpoint").repeat_direction("v")
    heat = bucket_heatmap(
        "Latency heatmap: $endpoint",
        "Requests per latency bucket (ms, upper bound) per interval for the endpoint.",
        bucket_targets(),
    ).repeat("endpoint").repeat_direction("v")
    for panel in (summary, breakdown, heat):
        board = board.with_panel(panel)
    return board
