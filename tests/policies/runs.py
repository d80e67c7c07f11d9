"""Real k6 runs against loopback targets, recorded as run directories like the controller's.

`run_modules` starts one real k6 process per module at once (the parallel
strategy), with `--out influxdb` and the loadbearing tags, scrapes every service's
`metrics_url` meanwhile (the controller's own `Scraper`), waits for them, and
writes RUN_DIR/run.json, RUN_DIR/k6/<module>-0.summary.json and the plan file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.influx import InfluxClient
from core.plan import load_plan
from core.rundir import ModuleRecord, PhaseRecord, RunDir, RunRecord, StoreRecord, iso, runner_name
from runners.scrape import Scraper

SCRIPTS = {
    "profile": """
import http from 'k6/http';
const BASE = __ENV.BASE_URL;
export default function () {
  const id = Math.floor(Math.random() * 20) + 1;
  if (Math.random() < 0.8) {
    http.get(`${BASE}/orders/${id}`, { tags: { name: 'profile_get', key: `profile:${id}` } });
  } else {
    http.put(`${BASE}/orders/${id}`, 'x', { tags: { name: 'profile_put', key: `profile:${id}` } });
  }
}
""",
    "jobs": """
import http from 'k6/http';
const BASE = __ENV.BASE_URL;
export default function () {
  http.get(`${BASE}/ping`, { tags: { name: 'jobs_list' } });
}
""",
}


def k6_binary() -> str:
    return str(Path(sys.executable).parent / "k6")


@dataclass
class ModuleSpec:
    name: str
    service: str
    base_url: str
    rate: float
    duration_s: int
    max_vus: int


@dataclass
class ServiceSpec:
    name: str
    base_url: str
    db_pool_size: int | None = None
    db_max_connections: int | None = 100
    instances: int = 1
    cache_ttl_s: float | None = None
    metrics_url: str | None = None


@dataclass
class RunResult:
    run_dir: Path
    testid: str
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)


def write_plan(plan_dir: Path, services: list[ServiceSpec], modules: list[ModuleSpec], slo_p95_ms: float,
               max_error_rate: float = 0.01) -> Path:
    plan_dir.mkdir(parents=True, exist_ok=True)
    lines = ['name = "policy-test"', "[target]", f'base_url = "{modules[0].base_url}"',
             'allow_hosts = ["127.0.0.1"]', "[slo]", f"p95_ms = {slo_p95_ms}", f"max_error_rate = {max_error_rate}"]
    for s in services:
        lines += [f"[services.{s.name}]", f'base_url = "{s.base_url}"', f"instances = {s.instances}"]
        if s.db_pool_size is not None:
            lines.append(f"db_pool_size = {s.db_pool_size}")
        if s.db_max_connections is not None:
            lines.append(f"db_max_connections = {s.db_max_connections}")
        if s.cache_ttl_s is not None:
            lines.append(f"cache_ttl_s = {s.cache_ttl_s}")
        if s.metrics_url is not None:
            lines.append(f'metrics_url = "{s.metrics_url}"')
    for m in modules:
        script = plan_dir / "modules" / f"{m.name}.js"
        script.parent.mkdir(exist_ok=True)
        script.write_text(SCRIPTS[m.name])
        lines += ["[[modules]]", f'name = "{m.name}"', f'script = "modules/{m.name}.js"', f'service = "{m.service}"',
                  f"rate = {m.rate}", f"max_vus = {m.max_vus}", f'duration = "{m.duration_s}s"']
    path = plan_dir / "plan.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_modules(run_dir: Path, influx: InfluxClient, testid: str, services: list[ServiceSpec],
                modules: list[ModuleSpec], slo_p95_ms: float, strategy: str = "parallel") -> RunResult:
    """Run every module at once with the real k6 binary; record the run like the controller does."""
    plan = write_plan(run_dir / "plan", services, modules, slo_p95_ms)
    rd = RunDir(run_dir)
    rd.k6_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    t_start = time.time()
    scraper = Scraper({s.name: s.metrics_url for s in services if s.metrics_url}, influx, testid).start()
    for m in modules:
        files = rd.runner_files(runner_name(m.name, 0))
        cfg = files.config
        cfg.write_text(json.dumps({"scenarios": {"load": {
            "executor": "constant-arrival-rate", "rate": m.rate, "timeUnit": "1s", "duration": f"{m.duration_s}s",
            "preAllocatedVUs": min(10, m.max_vus), "maxVUs": m.max_vus, "gracefulStop": "5s"}}}))
        cmd = [k6_binary(), "run", "-q", "--no-usage-report", "--config", str(cfg),
               "--out", f"influxdb={influx.k6_output_url()}", "--summary-export",
               str(files.summary)]
        for k, v in (("testid", testid), ("module", m.name), ("service", m.service), ("strategy", strategy),
                     ("runner", f"{m.name}-0")):
            cmd += ["--tag", f"{k}={v}"]
        cmd.append(str(plan.parent / "modules" / f"{m.name}.js"))
        env = {"PATH": "/usr/bin:/bin", "BASE_URL": m.base_url, "K6_NO_USAGE_REPORT": "true",
               "K6_INFLUXDB_TAGS_AS_FIELDS": "vu:int,iter:int,url,key", "HOME": str(run_dir)}
        started = time.time()
        with open(files.log, "wb") as log:
            procs.append((m, started, subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)))
    records: list[ModuleRecord] = []
    for m, started, proc in procs:
        code = proc.wait(timeout=m.duration_s + 60)
        ended = time.time()
        records.append(ModuleRecord(name=m.name, service=m.service, runners=1, started_at=iso(started),
                                    ended_at=iso(ended), exit_codes=[code]))
    scraper.stop()
    t_end = time.time()
    loaded = load_plan(plan)
    record = RunRecord(run_id=testid, testid=testid, strategy=strategy, status="passed",
                       started_at=iso(t_start), ended_at=iso(t_end), plan=str(loaded.path), slo=loaded.slo,
                       influx=StoreRecord(url=influx.public_url, db=influx.db), backend="process",
                       phases=[PhaseRecord(name=strategy, modules=[m.name for m in modules],
                                           started_at=iso(t_start), ended_at=iso(t_end))],
                       modules=records)
    rd = RunDir(run_dir)
    rd.write_plan(loaded)
    rd.write_record(record, complete=True)
    return RunResult(run_dir, testid, {r.name: r.model_dump(mode="json") for r in records})
