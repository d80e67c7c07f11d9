"""Scraping `metrics_url` during a run: real Prometheus text, real influxd, failures counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from core.influx import InfluxClient, quote_literal
from core.measurements import SCRAPE as SCRAPE_MEASUREMENT
from core.measurements import SCRAPE_HEALTH as SCRAPE_HEALTH_MEASUREMENT
from core.state import free_port
from runners.scrape import Scraper, instances_of
from tests.fixtures.runs import run_cli, write_plan


def _registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    labels = ["db_client_connection_pool_name", "db_client_connection_state"]
    count = Gauge("db_client_connection_count", "connections", labels, registry=reg)
    count.labels("main", "used").set(3)
    count.labels("main", "idle").set(1)
    Gauge("db_client_connection_max", "max", ["db_client_connection_pool_name"], registry=reg).labels("main").set(4)
    Counter("db_client_connection_timeouts", "timeouts", ["db_client_connection_pool_name"],
            registry=reg).labels("main").inc(2)
    use = Histogram("db_client_connection_use_time_seconds", "use", ["db_client_connection_pool_name"],
                    registry=reg, buckets=(0.01, 0.1, 1.0))
    for _ in range(5):
        use.labels("main").observe(0.05)
    Gauge("odd", "a label named like a reserved tag", ["instance"], registry=reg).labels("x").set(1)
    return reg


@pytest.fixture
def exporter() -> Iterator[tuple[str, dict[str, float]]]:
    reg = _registry()
    behaviour: dict[str, float] = {"sleep": 0.0, "status": 200}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(behaviour["sleep"])
            body = generate_latest(reg) if behaviour["status"] == 200 else b"no"
            self.send_response(int(behaviour["status"]))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except BrokenPipeError:  # the scraper gave up waiting (the slow case)
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics", behaviour
    server.shutdown()
    server.server_close()


def test_scraper_stores_samples_tagged_and_counts_failures(exporter: tuple[str, dict[str, float]],
                                                          influx: InfluxClient) -> None:
    url, behaviour = exporter
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    scraper = Scraper({"svc": url, "gone": dead}, influx, "t1", interval_s=0.5, timeout_s=0.3).start()
    time.sleep(1.6)
    behaviour["sleep"] = 0.6          # slower than the timeout: counted, and the next tick is not late
    time.sleep(1.1)
    behaviour["sleep"] = 0.0
    behaviour["status"] = 500
    time.sleep(0.6)
    t0 = time.monotonic()
    stats = scraper.stop()
    assert time.monotonic() - t0 < 2.0
    svc, gone = stats["svc"], stats["gone"]
    assert gone.ok == 0 and gone.failed == gone.attempts >= 5 and gone.last_error == "ConnectError"
    assert svc.ok >= 3 and svc.failed >= 2 and svc.last_error == "HTTP 500"
    assert svc.ok + svc.failed == svc.attempts and svc.write_errors == 0
    where = f'"testid" = {quote_literal("t1")}'
    rows = influx.rows(f'SELECT last("db_client_connection_count") AS "n" FROM "{SCRAPE_MEASUREMENT}" WHERE {where} '
                       'GROUP BY "service", "instance", "db_client_connection_state"')
    port = url.split(":")[2].split("/")[0]
    assert {(r["service"], r["instance"], r["db_client_connection_state"], r["n"]) for r in rows} == {
        ("svc", f"127.0.0.1:{port}", "used", 3.0), ("svc", f"127.0.0.1:{port}", "idle", 1.0)}
    (hist,) = influx.rows(f'SELECT last("db_client_connection_use_time_seconds_sum") AS "s", '
                          'last("db_client_connection_use_time_seconds_count") AS "c", '
                          f'last("db_client_connection_timeouts_total") AS "t" FROM "{SCRAPE_MEASUREMENT}" '
                          f"WHERE {where} AND \"le\" = ''")
    assert (round(hist["s"], 6), hist["c"], hist["t"]) == (0.25, 5.0, 2.0)
    (odd,) = influx.rows(f'SELECT last("odd") AS "v", "exported_instance" FROM "{SCRAPE_MEASUREMENT}" WHERE {where}')
    assert odd["exported_instance"] == "x"
    failed = influx.rows(f'SELECT count("ms") AS "n" FROM "{SCRAPE_HEALTH_MEASUREMENT}" WHERE {where} '
                         'AND "ok" = false GROUP BY "service"')
    assert {r["service"]: r["n"] for r in failed} == {"svc": svc.failed, "gone": gone.failed}


def test_a_run_scrapes_metrics_url_and_a_dead_one_never_stops_it(tmp_path: Path, target: object,
                                                                 exporter: tuple[str, dict[str, float]],
                                                                 influxd: object, lb_env: dict[str, str]) -> None:
    url, _ = exporter
    base = target.url  # type: ignore[attr-defined]
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    plan = write_plan(tmp_path, base, [{"name": "a", "service": "api", "rate": 20, "duration": "3s"},
                                       {"name": "b", "service": "other", "rate": 5, "duration": "3s"}],
                      extra=f'[services.api]\nmetrics_url = "{url}"\n[services.other]\nmetrics_url = "{dead}"\n')
    influx_url = f"{influxd.url}/scrape_run"  # type: ignore[attr-defined]
    res = run_cli(["run", "parallel", "--plan", str(plan), "--out-dir", str(tmp_path / "runs"),
                   "--influx-url", influx_url], lb_env)
    assert res.code == 0, res.stderr
    assert "metrics_url other: 0 of" in res.stderr and "failed (last: ConnectError)" in res.stderr
    testid = res.record()["testid"]
    client = InfluxClient.from_url(influx_url)
    (row,) = client.rows(f'SELECT count("db_client_connection_max") AS "n" FROM "{SCRAPE_MEASUREMENT}" '
                         f'WHERE "testid" = {quote_literal(testid)} AND "service" = \'api\'')
    assert row["n"] >= 3                               # once a second over a 3 s module
    entry = (res.run_dir / "k6" / "a.entry.js").read_text()
    assert str(plan.parent / "modules" / "a.js") in entry   # kept in the run directory


def test_metrics_url_outside_allow_hosts_is_refused(tmp_path: Path, target: object, lb_env: dict[str, str]) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "service": "api", "rate": 5, "duration": "2s"}],  # type: ignore[attr-defined]
                      extra='[services.api]\nmetrics_url = "http://10.1.2.3:9100/metrics"\n')
    res = run_cli(["run", "parallel", "--plan", str(plan), "--out-dir", str(tmp_path / "runs")], lb_env)
    assert res.code == 3
    assert "services.api.metrics_url" in res.stderr and target.seen() == 0  # type: ignore[attr-defined]


def test_one_url_per_instance_is_scraped_each_second_as_its_own_instance(
        exporter: tuple[str, dict[str, float]], influx: InfluxClient) -> None:
    url, _ = exporter
    urls = [url, url.replace("/metrics", "/instance-2/metrics")]  # one proxy, two instances under two paths
    scraper = Scraper({"svc": urls}, influx, "t-list", interval_s=0.5, timeout_s=0.3).start()
    time.sleep(1.2)
    (stats,) = scraper.stop().values()
    assert stats.failed == 0 and stats.ok == stats.attempts >= 2 * len(urls) and stats.attempts % len(urls) == 0
    assert "2 instances' URLs" in stats.summary("svc")
    rows = influx.rows(f'SELECT count("db_client_connection_max") AS "n" FROM "{SCRAPE_MEASUREMENT}" '
                       f'WHERE "testid" = {quote_literal("t-list")} GROUP BY "instance"')
    host = url.split("/")[2]
    assert {r["instance"]: r["n"] for r in rows} == {f"{host}/metrics": stats.attempts // 2,
                                                     f"{host}/instance-2/metrics": stats.attempts // 2}


@pytest.mark.parametrize(("urls", "instances"), [
    (["http://10.0.0.1:8000/metrics", "http://10.0.0.2:8000/metrics"], ["10.0.0.1:8000", "10.0.0.2:8000"]),
    (["http://lb/a/metrics", "https://lb/b/metrics"], ["lb:80", "lb:443"]),
    (["http://lb:9/a/metrics", "http://lb:9/b/metrics"], ["lb:9/a/metrics", "lb:9/b/metrics"]),
])
def test_instance_tags_tell_each_url_apart(urls: list[str], instances: list[str]) -> None:
    assert list(instances_of(urls).values()) == instances


def test_a_metrics_url_list_item_outside_allow_hosts_is_refused(tmp_path: Path, target: object,
                                                                lb_env: dict[str, str]) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "service": "api", "rate": 5, "duration": "2s"}],  # type: ignore[attr-defined]
                      extra='[services.api]\nmetrics_url = ["http://127.0.0.1:9/metrics", '
                            '"http://10.1.2.3:9100/metrics"]\n')
    res = run_cli(["run", "parallel", "--plan", str(plan), "--out-dir", str(tmp_path / "runs")], lb_env)
    assert res.code == 3
    assert "services.api.metrics_url[1]" in res.stderr and target.seen() == 0  # type: ignore[attr-defined]
