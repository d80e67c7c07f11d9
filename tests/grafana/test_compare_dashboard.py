"""Every query of the compare dashboard against two real k6 runs in a real InfluxDB.

The runs are the Grafana tests' `recorded_runs` (A and B, both hitting endpoints `home`
and `item`); their run-relative series are written by the same code `loadbearing compare`
uses (`read_endpoints` reads InfluxDB's aggregates, `relative_lines` stamps them at
1970-01-01 + seconds since the run started). Queries come from the committed JSON and
are rendered for the dashboard's own default time range, as Grafana would open it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from core.influx import InfluxClient
from grafana_dashboards import JSON_DIR
from grafana_dashboards.compare import BASELINE, RUN
from grafana_dashboards.queries import Renderer, TimeRange, Value, extract, unresolved
from policies.compare import RELATIVE_MEASUREMENT, relative_lines
from policies.compare_profile import EndpointProfile, read_endpoints
from tests.grafana.conftest import RecordedRuns, Run

BOARD = JSON_DIR / "loadbearing-compare.json"
MARGIN_MS = 2_000  # recorded_runs.time_range reaches 2 s either side of the runs


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(BOARD.read_text())
    return data


def default_range(board: dict[str, Any]) -> TimeRange:
    def ms(text: str) -> int:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)

    return TimeRange(ms(board["time"]["from"]), ms(board["time"]["to"]))


def series(client: InfluxClient, rendered: str) -> list[dict[str, Any]]:
    results = client.query(rendered)
    return list(results[0].get("series", [])) if results else []


def points(found: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(int(row[0]), float(row[1])) for s in found for row in s.get("values", []) if row[1] is not None]


@pytest.fixture(scope="module")
def relative(recorded_runs: RecordedRuns) -> dict[str, list[EndpointProfile]]:
    """Both runs' endpoints as `compare` reads them, their relative series written to the stores."""
    runs, tr = recorded_runs, recorded_runs.time_range
    started_ms = tr.start_ms + MARGIN_MS  # when k6 started both runs
    read: dict[str, list[EndpointProfile]] = {}
    for run, clients in ((runs.a, [runs.mixed, runs.solo]), (runs.b, [runs.mixed])):
        endpoints, _ = read_endpoints(runs.mixed, run.testid, started_ms, tr.end_ms - MARGIN_MS, {})
        read[run.testid] = endpoints
        for client in clients:
            client.write(relative_lines(run.testid, endpoints))
    return read


def renderer(board: dict[str, Any], baseline: Run, run: Run, **extra: Value) -> Renderer:
    return Renderer(board, default_range(board), {BASELINE: baseline.testid, RUN: run.testid, **extra})


def options(client: InfluxClient, rendered: str) -> list[str]:
    return sorted({str(row[s["columns"].index("value")]) for s in series(client, rendered)
                   for row in s.get("values", [])})


def test_run_selectors_list_the_compared_runs_and_endpoints(recorded_runs: RecordedRuns,
                                                           relative: dict[str, list[EndpointProfile]]) -> None:
    runs, board = recorded_runs, load()
    r = renderer(board, runs.a, runs.b)
    found = {q.title: options(runs.mixed, r.render(q)) for q in extract(board) if q.kind == "variable"}
    assert set(found) == {BASELINE, RUN, "endpoint"}
    assert found[BASELINE] == found[RUN] == sorted([runs.a.testid, runs.b.testid])
    assert found["endpoint"] == ["home", "item"]
    # The endpoint list is the union of the two runs' endpoints, and only theirs.
    only_a = renderer(board, runs.a, runs.a)
    (endpoint_q,) = [q for q in extract(board) if q.kind == "variable" and q.title == "endpoint"]
    assert options(runs.solo, only_a.render(endpoint_q)) == ["home", "item"]


def test_every_panel_query_returns_both_runs_from_their_start(recorded_runs: RecordedRuns,
                                                             relative: dict[str, list[EndpointProfile]]) -> None:
    runs, board = recorded_runs, load()
    r = renderer(board, runs.a, runs.b)
    panels = [q for q in extract(board) if q.kind == "panel"]
    assert {q.panel_id for q in panels} == {p["id"] for p in board["panels"]}
    for q in panels:
        scopes: list[dict[str, Value] | None] = [{"endpoint": e} for e in ("home", "item")] if q.repeat else [None]
        for scope in scopes:
            rendered = r.render(q, scope)
            assert not unresolved(rendered), rendered
            found = points(series(runs.mixed, rendered))
            assert found, f"{q.label} {scope}: no data: {rendered}"
            # Time-aligned: every point lies within the run's length after 1970-01-01T00:00:00Z.
            length_ms = runs.time_range.span_ms
            assert all(0 <= t <= length_ms for t, _ in found), (q.label, found[:3])
            assert min(t for t, _ in found) <= 1_500  # the first 1 s bucket, at its middle


def test_the_plotted_p95_is_influxdbs_per_bucket_p95(recorded_runs: RecordedRuns,
                                                      relative: dict[str, list[EndpointProfile]]) -> None:
    runs, board = recorded_runs, load()
    (p95_a, p95_b) = [q for q in extract(board) if q.kind == "panel" and q.title == "p95 by endpoint"]
    shown = {}
    for q, run in ((p95_a, runs.a), (p95_b, runs.b)):
        found = series(runs.mixed, renderer(board, runs.a, runs.b, endpoint="item").render(q))
        (one,) = found
        assert one["tags"]["name"] == "item" and one["tags"]["module"] == run.module
        shown[run.testid] = [v for _, v in points(found)]
    for run in (runs.a, runs.b):
        (item,) = [e for e in relative[run.testid] if e.name == "item"]
        assert shown[run.testid] == [p95 for _, p95, _ in item.series]
        # ... and those are InfluxDB's percentiles of the raw samples per bucket
        raw = runs.mixed.rows(f'SELECT percentile("value", 95) AS "p" FROM "http_req_duration" WHERE '
                              f"\"testid\" = '{run.testid}' AND \"name\" = 'item' AND time >= "
                              f"{runs.time_range.start_ms - 60_000}ms GROUP BY time(1s) fill(none)")
        assert shown[run.testid] == [round(row["p"], 3) for row in raw]


def test_requests_per_second_integrate_to_the_requests(recorded_runs: RecordedRuns,
                                                       relative: dict[str, list[EndpointProfile]]) -> None:
    runs, board = recorded_runs, load()
    (rps_a, _) = [q for q in extract(board) if q.kind == "panel" and q.title == "Requests/s by endpoint"]
    found = series(runs.mixed, renderer(board, runs.a, runs.b).render(rps_a))
    total = sum(v for _, v in points(found))  # 1 s buckets: requests/s x 1 s
    assert total == pytest.approx(runs.requests[runs.a.testid])


def test_two_runs_in_one_database_never_mix(recorded_runs: RecordedRuns,
                                            relative: dict[str, list[EndpointProfile]]) -> None:
    """With run A as both baseline and run, the shared database reads as A's own."""
    runs, board = recorded_runs, load()
    r = renderer(board, runs.a, runs.a)
    for q in extract(board):
        if q.kind != "panel":
            continue
        scopes: list[dict[str, Value] | None] = [{"endpoint": e} for e in ("home", "item")] if q.repeat else [None]
        for scope in scopes:
            rendered = r.render(q, scope)
            assert series(runs.mixed, rendered) == series(runs.solo, rendered), q.label


def test_writing_the_same_run_again_changes_nothing(recorded_runs: RecordedRuns,
                                                    relative: dict[str, list[EndpointProfile]]) -> None:
    runs = recorded_runs
    count = f'SELECT count("p95_ms") FROM "{RELATIVE_MEASUREMENT}" WHERE "testid" = \'{runs.a.testid}\''
    before = runs.solo.rows(count)
    runs.solo.write(relative_lines(runs.a.testid, relative[runs.a.testid]))
    assert runs.solo.rows(count) == before


def test_the_dashboard_opens_on_the_relative_axis_and_links_do_not_carry_time() -> None:
    board = load()
    assert default_range(board) == TimeRange(0, 600_000)      # the first ten minutes after each run's start
    assert board["timezone"] == "utc"                         # so the axis reads as elapsed time
    assert board["links"] and not any(link["keepTime"] for link in board["links"])
    for other in JSON_DIR.glob("loadbearing-*.json"):
        links = json.loads(other.read_text())["links"]
        to_compare = [link for link in links if link["url"] == "/d/loadbearing-compare"]
        assert all(not link["keepTime"] for link in to_compare), other.name
        assert all(link["keepTime"] for link in links if link not in to_compare
                   and other.stem != "loadbearing-compare"), other.name
