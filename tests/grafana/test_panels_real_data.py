"""Every query of every committed dashboard, run against two real k6 runs in InfluxDB.

Queries come from the committed JSON (what users import) and are rendered by
`grafana_dashboards.queries` the way Grafana renders InfluxQL. One empty panel fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.influx import InfluxClient
from grafana_dashboards import JSON_DIR
from grafana_dashboards.queries import ALL, Query, Renderer, TimeRange, Value, extract, unresolved
from grafana_dashboards.skeleton import COMPARE_UID
from tests.grafana.conftest import RecordedRuns

# Dashboards of one run (variable testid); the compare dashboard has its own test.
DASHBOARDS = sorted(p for p in JSON_DIR.glob("loadbearing-*.json") if p.stem != COMPARE_UID)
# Heatmap panels hold one query per latency bucket; buckets no request fell into are
# legitimately empty, so for them only the panel as a whole must have data.
BUCKETED_PANEL_TYPES = {"heatmap"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def series(client: InfluxClient, rendered: str) -> list[dict[str, Any]]:
    results = client.query(rendered)
    return list(results[0].get("series", [])) if results else []


def values(found: list[dict[str, Any]]) -> list[Any]:
    """Every non-null cell of every series except the time column."""
    out = []
    for s in found:
        cols = s["columns"]
        for row in s.get("values", []):
            out += [v for c, v in zip(cols, row, strict=True) if c != "time" and v is not None]
    return out


def options(found: list[dict[str, Any]]) -> list[str]:
    """Option values of a SHOW TAG VALUES variable query (Grafana takes the `value` column)."""
    return sorted({str(row[s["columns"].index("value")]) for s in found for row in s.get("values", [])})


def normalized(found: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((s["name"], json.dumps(s.get("tags") or {}, sort_keys=True), json.dumps(s["values"]))
                  for s in found)


@dataclass(frozen=True)
class Executed:
    query: Query
    scope: Mapping[str, Value] | None
    rendered: str
    found: list[dict[str, Any]]


def renderer_for(dashboard: dict[str, Any], runs: RecordedRuns, testid: str, *, wide: bool = False,
                 **extra: Value) -> Renderer:
    """Render for the run's own time range, or (wide) a one-hour range around it: $__interval 5s."""
    tr = runs.time_range
    if wide:
        tr = TimeRange(tr.start_ms - 1_800_000, tr.end_ms + 1_800_000)
    return Renderer(dashboard, tr, {"testid": testid, **extra})


def resolve_options(dashboard: dict[str, Any], runs: RecordedRuns, renderer: Renderer,
                    client: InfluxClient) -> dict[str, list[str]]:
    return {q.title: options(series(client, renderer.render(q)))
            for q in extract(dashboard) if q.kind == "variable"}


def execute_panels(dashboard: dict[str, Any], runs: RecordedRuns, renderer: Renderer,
                   client: InfluxClient) -> list[Executed]:
    """Run each panel target, once per value of the variable a repeated panel repeats over."""
    opts = resolve_options(dashboard, runs, renderer, client)
    out = []
    for q in extract(dashboard):
        if q.kind != "panel":
            continue
        scopes: list[Mapping[str, Value] | None] = [None]
        if q.repeat:
            scopes = [{q.repeat: v} for v in opts[q.repeat]]
            assert scopes, f"{q.label} repeats over {q.repeat!r}, which has no options"
        for scope in scopes:
            rendered = renderer.render(q, scope)
            assert not unresolved(rendered), f"{q.label}: unresolved {unresolved(rendered)} in {rendered}"
            out.append(Executed(q, scope, rendered, series(client, rendered)))
    return out


def panel_types(dashboard: dict[str, Any]) -> dict[int, str]:
    return {p["id"]: p["type"] for p in dashboard["panels"]}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_variable_lists_the_runs_values(path: Path, recorded_runs: RecordedRuns) -> None:
    runs = recorded_runs
    dashboard = load(path)
    renderer = renderer_for(dashboard, runs, runs.a.testid)
    opts = resolve_options(dashboard, runs, renderer, runs.mixed)
    expected = {"strategy": [runs.a.strategy], "module": [runs.a.module], "endpoint": ["home", "item"],
                "service": [runs.a.service]}
    assert opts, "dashboard has no query variables"
    for name, found in opts.items():
        if name == "testid":
            assert {runs.a.testid, runs.b.testid} <= set(found)
        else:
            assert name in expected, f"variable {name!r} has no expectation in this test"
            assert found == expected[name], f"variable {name!r} for run A lists {found}"


@pytest.mark.parametrize("wide", [False, True], ids=["run-range", "hour-range"])
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_query_returns_data(path: Path, wide: bool, recorded_runs: RecordedRuns) -> None:
    runs = recorded_runs
    dashboard = load(path)
    renderer = renderer_for(dashboard, runs, runs.a.testid, wide=wide)
    executed = execute_panels(dashboard, runs, renderer, runs.mixed)
    types = panel_types(dashboard)
    assert {e.query.panel_id for e in executed} == set(types), "a panel has no query"

    empty_targets = [f"{e.query.label} {dict(e.scope or {})}: {e.rendered}" for e in executed
                     if not values(e.found) and types[e.query.panel_id or 0] not in BUCKETED_PANEL_TYPES]
    assert not empty_targets, "queries returned no data:\n" + "\n".join(empty_targets)

    by_panel: dict[tuple[int | None, str], list[Any]] = {}
    for e in executed:
        by_panel.setdefault((e.query.panel_id, json.dumps(dict(e.scope or {}))), []).extend(values(e.found))
    blank = [f"panel {pid} {scope}" for (pid, scope), vals in by_panel.items() if not any(v != 0 for v in vals)]
    assert not blank, f"panels showing nothing but zeros or nulls: {blank}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_annotation_shows_only_the_runs_events(path: Path, recorded_runs: RecordedRuns) -> None:
    runs = recorded_runs
    dashboard = load(path)
    renderer = renderer_for(dashboard, runs, runs.a.testid)
    annotations = [q for q in extract(dashboard) if q.kind == "annotation"]
    assert annotations, "dashboard has no InfluxDB annotations"
    kinds = {"Phases": "phase", "Modules": "module", "Findings": "finding", "Recommendations": "recommendation",
             "Knees": "knee"}
    for q in annotations:
        rows = [dict(zip(s["columns"], r, strict=True)) for s in series(runs.mixed, renderer.render(q))
                for r in s["values"]]
        assert len(rows) == 2 if q.title in ("Phases", "Modules") else len(rows) == 1, (q.label, rows)
        for row in rows:
            assert row["kind"] == kinds[q.title]
            assert f"[{runs.a.testid}]" in row["title"], row
            assert row["text"] and row["event"] and row["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_two_runs_in_one_database_never_mix(path: Path, recorded_runs: RecordedRuns) -> None:
    """Every panel for run A reads the same from the shared database as from A's own."""
    runs = recorded_runs
    dashboard = load(path)
    renderer = renderer_for(dashboard, runs, runs.a.testid)
    shared = execute_panels(dashboard, runs, renderer, runs.mixed)
    alone = execute_panels(dashboard, runs, renderer, runs.solo)
    assert [e.rendered for e in shared] == [e.rendered for e in alone]
    for s, a in zip(shared, alone, strict=True):
        assert normalized(s.found) == normalized(a.found), f"{s.query.label} differs with run B present"


def _panel(dashboard: dict[str, Any], title: str) -> list[Query]:
    found = [q for q in extract(dashboard) if q.kind == "panel" and q.title == title]
    assert found, f"no panel {title!r}"
    return found


def test_overview_requests_are_the_selected_runs_requests(recorded_runs: RecordedRuns) -> None:
    runs = recorded_runs
    overview = load(JSON_DIR / "loadbearing-overview.json")
    (requests,) = _panel(overview, "Requests")
    counts = {}
    for run in (runs.a, runs.b):
        (total,) = values(series(runs.mixed, renderer_for(overview, runs, run.testid).render(requests)))
        counts[run.testid] = total
    assert counts == runs.requests  # what the target served, per run
    assert counts[runs.a.testid] != counts[runs.b.testid]
    # ~2 requests per iteration at 30/s for 4 s, and at 20/s for 3 s
    assert 200 <= counts[runs.a.testid] <= 260 and 100 <= counts[runs.b.testid] <= 140


@pytest.mark.parametrize("wide", [False, True], ids=["run-range", "hour-range"])
def test_rates_integrate_to_the_totals(wide: bool, recorded_runs: RecordedRuns) -> None:
    """$__interval_ms in each per-second rate matches the GROUP BY time($__interval) Grafana renders."""
    runs = recorded_runs
    overview = load(JSON_DIR / "loadbearing-overview.json")
    renderer = renderer_for(overview, runs, runs.a.testid, wide=wide)
    (rps,) = _panel(overview, "Requests/s by endpoint")
    assert renderer.interval_ms(rps) == (5000 if wide else 1000)
    found = series(runs.mixed, renderer.render(rps))
    assert {s["tags"]["name"] for s in found} == {"home", "item"}
    integral = sum(values(found)) * renderer.interval_ms(rps) / 1000
    assert integral == pytest.approx(runs.requests[runs.a.testid])
    (by_status,) = _panel(overview, "Requests/s by status")
    found = series(runs.mixed, renderer.render(by_status))
    assert {s["tags"]["status"] for s in found} == {"200", "500"}
    assert sum(values(found)) * renderer.interval_ms(by_status) / 1000 == pytest.approx(integral)
    sent, received = _panel(overview, "Data sent and received")
    for target, measurement in ((sent, "data_sent"), (received, "data_received")):
        (total,) = values(series(runs.mixed, f'SELECT sum("value") FROM "{measurement}" WHERE '
                                             f"\"testid\" = '{runs.a.testid}'"))
        rate = values(series(runs.mixed, renderer.render(target)))
        assert sum(rate) * renderer.interval_ms(target) / 1000 == pytest.approx(total)


def test_slo_line_follows_the_slo_variable(recorded_runs: RecordedRuns) -> None:
    runs = recorded_runs
    overview = load(JSON_DIR / "loadbearing-overview.json")
    for title in ("Latency p95 by endpoint", "Latency p99 by endpoint"):
        _, slo = _panel(overview, title)
        default = values(series(runs.mixed, renderer_for(overview, runs, runs.a.testid).render(slo)))
        custom = values(series(runs.mixed, renderer_for(overview, runs, runs.a.testid,
                                                        slo_p95_ms="250").render(slo)))
        assert default and set(default) == {500}
        assert custom and set(custom) == {250}


def test_heatmap_buckets_count_every_request_of_the_endpoint(recorded_runs: RecordedRuns) -> None:
    """The buckets are contiguous and cover all latencies: per endpoint they sum to its requests."""
    runs = recorded_runs
    board = load(JSON_DIR / "loadbearing-endpoint.json")
    heat = [q for q in extract(board) if q.kind == "panel" and q.repeat and q.title.startswith("Latency heatmap")]
    renderer = renderer_for(board, runs, runs.a.testid)
    served = runs.mixed.rows(f'SELECT count("value") FROM "http_req_duration" WHERE "testid" = '
                             f"'{runs.a.testid}' GROUP BY \"name\"")
    expected = {row["name"]: row["count"] for row in served}
    assert set(expected) == {"home", "item"}
    nonempty_buckets = 0
    for name, count in expected.items():
        per_bucket = [sum(values(series(runs.mixed, renderer.render(q, {"endpoint": name})))) for q in heat]
        assert sum(per_bucket) == count, (name, per_bucket)
        nonempty_buckets = max(nonempty_buckets, sum(1 for c in per_bucket if c))
    assert nonempty_buckets >= 2  # /items sleeps 0-45 ms: more than one bucket has requests


def test_all_and_multi_select_filter_like_grafana(recorded_runs: RecordedRuns) -> None:
    """All (.*), one value and several values of `module` select the same run-A requests."""
    runs = recorded_runs
    overview = load(JSON_DIR / "loadbearing-overview.json")
    (requests,) = _panel(overview, "Requests")
    totals = []
    for module in (ALL, runs.a.module, [runs.a.module, "other.module"]):
        rendered = renderer_for(overview, runs, runs.a.testid, module=module).render(requests)
        totals.append(values(series(runs.mixed, rendered)))
    assert totals[0] == totals[1] == totals[2] == [runs.requests[runs.a.testid]]
    nothing = renderer_for(overview, runs, runs.a.testid, module="shopXv2").render(requests)
    assert values(series(runs.mixed, nothing)) == []  # the escaped "." does not match any character
