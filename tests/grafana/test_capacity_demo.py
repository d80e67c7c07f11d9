"""The capacity dashboard against a real demo service, read the way a run reads any service.

profile-api runs with a 2-connection pool, 50 ms DB hold and a TTL cache; k6 runs the
demo's profile module against it at 45 requests/s, above the pool's 40/s capacity, while
the controller's `Scraper` scrapes its GET /metrics (standard names) into InfluxDB tagged
with the run's testid. Findings and recommendations are written as `recommend` writes them.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.influx import InfluxClient
from demo.launcher import start_service
from grafana_dashboards import JSON_DIR
from grafana_dashboards.queries import Renderer, TimeRange, extract
from runners.influxd import Influxd
from runners.scrape import Scraper
from tests.grafana.conftest import Run, event_lines, start_k6

PROFILE_SCRIPT = Path(__file__).resolve().parents[2] / "demo" / "modules" / "profile.js"
POOL_SIZE = 2


@dataclass(frozen=True)
class DemoRun:
    client: InfluxClient
    run: Run
    time_range: TimeRange


@pytest.fixture(scope="module")
def demo_run(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    work = tmp_path_factory.mktemp("grafana-demo")
    run = Run(f"20260103T000000Z-{uuid.uuid4().hex[:6]}", "parallel", "profile", "profile-api",
              rate=45, duration_s=5)
    client = InfluxClient.from_url(influxd.url, db=f"grafana_demo_{uuid.uuid4().hex[:6]}")
    client.ensure_db()
    service = start_service("profile-api", env={"DB_POOL_SIZE": str(POOL_SIZE), "PROFILE_DB_MS": "50",
                                                "CACHE_TTL_S": "30"})
    try:
        start_s = time.time()
        scraper = Scraper({run.service: f"{service.url}/metrics"}, client, run.testid).start()
        proc = start_k6(run, service.url, [client], work, script=PROFILE_SCRIPT, max_vus=40)
        out = proc.communicate(timeout=90)[0]
        stats = scraper.stop()
        assert proc.returncode == 0, out[-2000:]
        assert stats[run.service].ok >= 3 and not stats[run.service].failed, stats
    finally:
        service.stop()
    end_s = time.time()
    client.write(event_lines(run, start_s, end_s, with_conclusions=True))
    return DemoRun(client, run, TimeRange.around(start_s, end_s, margin_s=2.0))


def _values(client: InfluxClient, q: str) -> list[Any]:
    results = client.query(q)
    found = results[0].get("series", []) if results else []
    return [v for s in found for row in s["values"] for c, v in zip(s["columns"], row, strict=True)
            if c != "time" and v is not None]


def test_every_capacity_panel_shows_the_demo_services_metrics(demo_run: DemoRun) -> None:
    board = json.loads((JSON_DIR / "loadbearing-capacity.json").read_text())
    renderer = Renderer(board, demo_run.time_range, {"testid": demo_run.run.testid})
    queries = extract(board)
    for q in (q for q in queries if q.kind == "variable" and q.title == "service"):
        assert "profile-api" in json.dumps(demo_run.client.query(renderer.render(q)))
    empty: list[str] = []
    panels: dict[str, list[Any]] = {}
    for q in (q for q in queries if q.kind == "panel"):
        vals = _values(demo_run.client, renderer.render(q))
        if not vals:
            empty.append(q.label)
        panels.setdefault(q.title, []).extend(vals)
    assert not empty, f"no data from the demo service for: {empty}"
    assert all(any(v != 0 for v in vals) for vals in panels.values()), panels.keys()
    for q in queries:
        if q.kind == "annotation":
            assert _values(demo_run.client, renderer.render(q)), q.label


def test_pool_panels_read_the_services_real_pool(demo_run: DemoRun) -> None:
    board = json.loads((JSON_DIR / "loadbearing-capacity.json").read_text())
    renderer = Renderer(board, demo_run.time_range, {"testid": demo_run.run.testid})
    pool = [q for q in extract(board) if q.title == "DB pool: connections in use vs pool size"]
    in_use, size, _load = (_values(demo_run.client, renderer.render(q)) for q in pool)
    assert set(size) == {POOL_SIZE}
    assert max(in_use) == POOL_SIZE and min(in_use) >= 0    # 45 req/s against a pool good for 40/s
    (waits,) = [q for q in extract(board) if q.title.startswith("DB pool: mean checkout wait") and q.ref_id == "A"]
    assert max(_values(demo_run.client, renderer.render(waits))) > 0   # ms: some requests waited for the pool
    (route,) = [q for q in extract(board) if q.title == "Server time by route" and q.ref_id == "A"]
    found = demo_run.client.query(renderer.render(route))[0]["series"]
    routes = {s["tags"]["http_route"] for s in found}
    assert "/profiles/{profile_id:int}" in routes, routes
    (ratio,) = [q for q in extract(board) if q.title == "Cache: hit ratio" and q.ref_id == "A"]
    assert all(0 <= r <= 1 for r in _values(demo_run.client, renderer.render(ratio)))
