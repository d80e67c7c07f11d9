"""Compare two runs: the baseline's and the run's p95 and requests/s per endpoint on one
plot each, time-aligned from each run's start.

How the runs are aligned. Grafana shifts time per *panel* (query options: time shift),
never per query, and InfluxQL has no time arithmetic (no timeShift as Graphite or Flux
have; `GROUP BY time(..., offset)` moves bucket edges, not timestamps), so two runs
recorded at different times cannot be overlaid from the raw k6 samples. Instead
`loadbearing compare` (`policies.compare.write_relative_series`) stores each run's
per-bucket p95 and requests/s — aggregates InfluxDB computed — in
`loadbearing_relative`, stamped at 1970-01-01T00:00:00Z plus the seconds since that
run started. This dashboard's time axis is that relative one: it opens on
00:00:00-00:10:00 UTC, so the x axis reads as elapsed time; widen "to" for longer runs.
A run appears in the selectors once `loadbearing compare` has read it (as a baseline or
as the run).

Queries read the stored points as they are (no re-aggregation: a p95 of p95s is not a
p95). Every query filters on one run (`"testid" = '$baseline'` or `'$run'`).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable
from grafana_foundation_sdk.models.common import AxisPlacement
from grafana_foundation_sdk.models.dashboard import DynamicConfigValue, VariableRefresh, VariableSort

from core import measurements
from grafana_dashboards import skeleton
from grafana_dashboards.influxql import InfluxQL, datasource_ref
from grafana_dashboards.panels import timeseries_panel
from grafana_dashboards.variables import ALL_VALUE, regex_filter, where
from policies.compare import RELATIVE_MEASUREMENT

BASELINE = "baseline"
RUN = "run"
# The relative time axis: the first ten minutes after a run's start.
TIME_FROM = "1970-01-01T00:00:00.000Z"
TIME_TO = "1970-01-01T00:10:00.000Z"


def run_filter(variable: str) -> str:
    return f"\"testid\" = '${variable}'"


def _runs(name: str, label: str, description: str) -> QueryVariable:
    return (
        QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(datasource_ref())
        .query(f'SHOW TAG VALUES FROM "{RELATIVE_MEASUREMENT}" WITH KEY = "{measurements.TESTID}"')
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.ALPHABETICAL_DESC)
        .multi(False)
        .include_all(False)
    )


def endpoint() -> QueryVariable:
    """Endpoints (k6 `name`) of either run."""
    return (
        QueryVariable("endpoint")
        .label("Endpoint")
        .description("Endpoints (k6 tag name) the baseline or the run called.")
        .datasource(datasource_ref())
        .query(f'SHOW TAG VALUES FROM "{RELATIVE_MEASUREMENT}" WITH KEY = "name" '
               f"WHERE {run_filter(BASELINE)} OR {run_filter(RUN)}")
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL_VALUE)
    )


DASHED = [DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 6]}),
          DynamicConfigValue(id_val="custom.fillOpacity", value=0)]
ALIGNED = "The x axis is the time since each run started; dashed: the baseline, solid: the run."


def _select(field: str, variable: str, label: str = "") -> InfluxQL:
    cond = where(run_filter(variable), regex_filter("name", "endpoint"))
    return InfluxQL(f'SELECT "{field}" FROM "{RELATIVE_MEASUREMENT}" {cond} GROUP BY "{measurements.MODULE}", "name"'
                    ).alias(f"{variable} {label}$tag_name ($tag_module)")


def overlay(title: str, description: str, field: str, unit: str) -> timeseries.Panel:
    """Baseline (dashed, query A) and run (solid, query B) of one field, every selected endpoint."""
    panel = timeseries_panel(title, f"{description} {ALIGNED}", unit,
                             [_select(field, BASELINE), _select(field, RUN)])
    return panel.override_by_query("A", DASHED)


def per_endpoint() -> timeseries.Panel:
    """One endpoint: p95 of both runs (left axis) and their requests/s (right axis), repeated."""
    panel = timeseries_panel(
        "$endpoint: p95 and requests/s",
        f"The endpoint's p95 (ms, left) and completed requests per second (right). {ALIGNED}", "ms",
        [_select("p95_ms", BASELINE, "p95 "), _select("p95_ms", RUN, "p95 "),
         _select("rps", BASELINE, "req/s "), _select("rps", RUN, "req/s ")], span=24)
    right = [DynamicConfigValue(id_val="custom.axisPlacement", value=AxisPlacement.RIGHT.value),
             DynamicConfigValue(id_val="unit", value="reqps"),
             DynamicConfigValue(id_val="custom.lineWidth", value=1)]
    panel = (panel.override_by_query("A", DASHED).override_by_query("C", [*DASHED, *right])
             .override_by_query("D", right))
    return panel.repeat("endpoint").repeat_direction("v")


def build() -> Dashboard:
    board = skeleton.dashboard(
        skeleton.COMPARE_UID,
        "Two runs side by side: p95 and requests/s per endpoint, time-aligned from each run's start "
        "(series that `loadbearing compare` stores).",
    ).time(TIME_FROM, TIME_TO).timezone("utc").refresh("")
    board = board.with_variable(_runs(BASELINE, "Baseline run", "The run to compare with (dashed)."))
    board = board.with_variable(_runs(RUN, "Run", "The run under test (solid)."))
    board = board.with_variable(endpoint())
    panels = [
        overlay("p95 by endpoint", "p95 of http_req_duration per endpoint and time bucket.", "p95_ms", "ms"),
        overlay("Requests/s by endpoint", "Completed requests per second per endpoint.", "rps", "reqps"),
        per_endpoint(),
    ]
    for panel in panels:
        board = board.with_panel(panel)
    return board
