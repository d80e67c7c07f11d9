"""Dashboard variables (the run filter) and the InfluxQL WHERE fragments that use them.

Contract: every panel, variable and annotation query of every loadbearing dashboard
filters on the run with `RUN_FILTER` ("testid" = '$testid'); `testid` is single-valued
so a panel never sums two runs. Multi-valued filters (strategy, module, endpoint,
service) use Grafana's InfluxQL form `"tag" =~ /^$var$/` with the custom all value
`.*`, which Grafana inserts unescaped; selected values are regex-escaped by Grafana.

Variable options come from `SHOW TAG VALUES` on `http_reqs`, which every k6 run writes.
`testid` is sorted alphabetically descending: newest run first when run ids begin with
a UTC timestamp (the controller's `run_id` format).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import QueryVariable, TextBoxVariable
from grafana_foundation_sdk.models.dashboard import VariableRefresh, VariableSort

from core import measurements
from grafana_dashboards.influxql import datasource_ref

ALL_VALUE = ".*"
DEFAULT_SLO_P95_MS = 500
RUN_FILTER = f"\"{measurements.TESTID}\" = '$testid'"
RUNS_MEASUREMENT = measurements.HTTP_REQS


def regex_filter(tag: str, variable: str) -> str:
    """`"tag" =~ /^$variable$/`: matches the variable's selected values (or all of them)."""
    return f'"{tag}" =~ /^${variable}$/'


def where(*conditions: str) -> str:
    """`WHERE c1 AND c2 ... AND $timeFilter` (the time filter always comes last)."""
    return "WHERE " + " AND ".join([*conditions, "$timeFilter"])


def _tag_values(key: str, *conditions: str) -> str:
    q = f'SHOW TAG VALUES FROM "{RUNS_MEASUREMENT}" WITH KEY = "{key}"'
    if conditions:
        q += " WHERE " + " AND ".join(conditions)
    return q


def testid() -> QueryVariable:
    """The run: one testid at a time, newest first."""
    return (
        QueryVariable("testid")
        .label("Run (testid)")
        .description("The run to show (k6 tag testid = the run id). Newest first.")
        .datasource(datasource_ref())
        .query(_tag_values("testid"))
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_DESC)
        .multi(False)
        .include_all(False)
    )


def _multi(name: str, label: str, query: str, description: str) -> QueryVariable:
    return (
        QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(datasource_ref())
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL_VALUE)
    )


def strategy() -> QueryVariable:
    return _multi("strategy", "Strategy", _tag_values("strategy", RUN_FILTER),
                  "The run's strategy (sequential, hybrid or parallel).")


def module() -> QueryVariable:
    return _multi("module", "Module", _tag_values("module", RUN_FILTER),
                  "k6 modules (one script per API module) of the run.")


def endpoint() -> QueryVariable:
    return _multi("endpoint", "Endpoint",
                  _tag_values("name", RUN_FILTER, regex_filter("module", "module")),
                  "Endpoints: the `name` tag of the requests in the chosen modules.")


def service() -> QueryVariable:
    return _multi("service", "Service", _tag_values("service", RUN_FILTER),
                  "Target services (k6 tag service; what was scraped from their metrics_url carries the same tag).")


def slo_p95_ms() -> TextBoxVariable:
    """The latency SLO drawn on the latency panels; set it to the plan's `slo.p95_ms`."""
    return (
        TextBoxVariable("slo_p95_ms")
        .label("SLO p95 (ms)")
        .description("Latency SLO (the plan's slo.p95_ms) drawn as a line on the latency panels.")
        .default_value(str(DEFAULT_SLO_P95_MS))
    )
