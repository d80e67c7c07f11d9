"""Several instances of one service behind one address: white-box numbers per instance, never mixed.

Three real instances of the gallery's pool server (each its own process, a pool of 1
connection held 40 ms, OpenTelemetry pool metrics on its own /metrics) behind a real nginx
that balances requests by weight (1:2:3, as a balancer in front of instances of different
sizes does). A plan that gives the load balancer's /metrics scrapes whichever instance the
balancer picks each second, so every counter jumps between three processes' counts: the
reader sees it go backwards, uses none of it, and says why and how to fix it. A plan that gives one metrics_url per instance gets each instance's pool as its
own series: white-box hold time, three pools of 1.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import nginx
from core.influx import InfluxClient
from core.state import free_port
from policies import recommend_run
from runners.controller import RunOptions, prepare
from runners.controller import run as run_strategy
from runners.influxd import Influxd
from tests.fixtures.require import need_binary
from tests.gallery.cases import ORDERS_JS
from tests.gallery.harness import start_server, stop_servers

pytestmark = pytest.mark.slow

INSTANCES, POOL, HOLD_MS = 3, 1, 40.0
WEIGHTS = (1, 2, 3)
BALANCER = """\
    access_log off;
    upstream instances {{ {servers} }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://instances; }}
    }}"""


@dataclass
class Fleet:
    balancer: str          # the load balancer's base URL
    instances: list[str]   # each instance's own base URL


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    need_binary("nginx", nginx.PACKAGE)
    work = tmp_path_factory.mktemp("instances")
    ports = [free_port() for _ in range(INSTANCES)]
    procs: list[subprocess.Popen[bytes]] = []
    servers = " ".join(f"server 127.0.0.1:{p} weight={w};" for p, w in zip(ports, WEIGHTS, strict=True))
    try:
        for i, port in enumerate(ports):
            procs.append(start_server("pool", {"pool": POOL, "hold_ms": HOLD_MS, "metrics": "otel",
                                               "db": str(work / f"orders-{i}.sqlite3")},
                                      f"orders-{i}", port, work))
        with nginx.start(work / "nginx", lambda port: BALANCER.format(port=port, servers=servers),
                         probe="/health") as balancer:
            yield Fleet(balancer.url, [f"http://127.0.0.1:{p}" for p in ports])
    finally:
        stop_servers(procs)


def _run(fleet: Fleet, metrics_url: str, influxd: Influxd, work: Path) -> dict[str, Any]:
    plan_dir = work / "plan"
    (plan_dir / "modules").mkdir(parents=True)
    (plan_dir / "modules" / "orders.js").write_text(ORDERS_JS)
    (plan_dir / "plan.toml").write_text("\n".join([
        'name = "instances"', "[target]", f'base_url = "{fleet.balancer}"', 'allow_hosts = ["127.0.0.1"]',
        "[slo]", "p95_ms = 500", "max_error_rate = 0.01",
        "[services.orders-api]", f"instances = {INSTANCES}", f"db_pool_size = {POOL}", "db_max_connections = 100",
        f"metrics_url = {metrics_url}",
        "[[modules]]", 'name = "orders"', 'script = "modules/orders.js"', 'service = "orders-api"',
        "rate = 90", "max_vus = 300", 'duration = "8s"']) + "\n")
    influx = InfluxClient.from_url(influxd.url, db=f"instances_{uuid.uuid4().hex[:8]}")
    influx.ensure_db()
    rd, _ = run_strategy(prepare(RunOptions(plan_path=plan_dir / "plan.toml", strategy="parallel",
                                            out_dir=work / "runs")), influx)
    return recommend_run(rd.path, influx)


def _pools(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in doc["recommendations"] if r["kind"] == "db_pool"]


def test_one_url_in_front_of_several_instances_is_refused_as_white_box(fleet: Fleet, influxd: Influxd,
                                                                      tmp_path: Path) -> None:
    doc = _run(fleet, json.dumps(f"{fleet.balancer}/metrics"), influxd, tmp_path)
    fell = doc["app"]["counters_backwards"]
    assert [b["service"] for b in fell] == ["orders-api"] and fell[0]["times"] >= 1, doc["app"]
    assert doc["app"]["pools"] == [] and doc["app"]["caches"] == []
    (note,) = [n for n in doc["notes"] if "went backwards" in n]
    assert "instances or worker processes behind one address" in note
    assert 'services.orders-api.metrics_url = ["http://HOST1:PORT/metrics"' in note and "multiprocess" in note
    assert all(p["evidence_path"] != "white_box" for p in _pools(doc)), _pools(doc)


def test_one_metrics_url_per_instance_reads_each_instances_pool(fleet: Fleet, influxd: Influxd,
                                                               tmp_path: Path) -> None:
    doc = _run(fleet, json.dumps([f"{url}/metrics" for url in fleet.instances]), influxd, tmp_path)
    assert doc["app"]["counters_backwards"] == [] and not [n for n in doc["notes"] if "went backwards" in n]
    (pool,) = doc["app"]["pools"]
    assert pool["size"] == POOL and 0.9 * HOLD_MS <= pool["hold_ms"] <= 1.5 * HOLD_MS, pool
    (scrapes,) = doc["app"]["scrapes"]
    assert scrapes["failed"] == 0 and scrapes["attempts"] >= INSTANCES * 8    # every instance, each second
    (rec,) = _pools(doc)
    assert rec["evidence_path"] == "white_box" and rec["evidence"]["pool_metrics"]["instances"] == INSTANCES
    assert rec["recommended"] > POOL            # 90 req/s on 3 x 1 connection held 40 ms (at most 75/s) queues
