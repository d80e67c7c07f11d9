"""Synthetic k6-shaped runs in line protocol, for edge cases a real run cannot stage cheaply.

`write_run` writes, for each module, the samples k6's InfluxDB output would write
(http_reqs, http_req_duration, http_req_waiting, http_req_failed, iterations,
vus, dropped_iterations; same tags), optionally thinned (only part stored) and
with a service's scraped pool metrics (`loadbearing_scrape` points in OpenTelemetry's
`db.client.connection.*` names, as a metrics_url scrape stores them), plus RUN_DIR/run.json, the plan and k6 summaries that
state the full counts. Deterministic: fixed epoch, seeded random.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import measurements as names
from core.influx import InfluxClient, line
from core.plan import load_plan
from core.rundir import ModuleRecord, PhaseRecord, RunDir, RunRecord, StoreRecord, iso, runner_name

EPOCH_S = 1_700_000_000


@dataclass
class Endpoint:
    name: str
    method: str = "GET"
    share: float = 1.0
    latency_ms: Callable[[float, random.Random], float] = lambda t, rnd: 10 + rnd.random() * 5
    fails: Callable[[float, random.Random], bool] = lambda t, rnd: False
    keys: int | None = None          # distinct `key` values (None: name-tagged, url = name)


@dataclass
class Module:
    name: str
    service: str
    rate: float                      # requests/s (one request per iteration)
    seconds: int
    endpoints: list[Endpoint]
    dropped_per_s: float = 0.0
    vus: int = 10
    offset_s: int = 0
    # (merged, near): the first `merged` requests get a twin of the same series stamped in the same
    # nanosecond (k6 counts both, InfluxDB keeps one); the next `near` get a twin 5 ns later (both kept).
    twins: tuple[int, int] = (0, 0)


@dataclass
class Service:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    # Pool metrics scraped once a second, from per-second figures: size, checked_out, waiting (gauges),
    # checkouts, timeouts (per second), hold_ms_mean, checkout_wait_ms_mean (means per checkout).
    pool_metrics: dict[str, float] | None = None


def pool_metric_lines(service: str, testid: str, pool: dict[str, float], seconds: range) -> list[str]:
    """The `loadbearing_scrape` points a metrics_url scrape of such a pool would store (counters cumulative)."""
    out = []
    tags = {"service": service, "instance": "127.0.0.1:9100", "testid": testid,
            "db_client_connection_pool_name": "main"}
    for i, s in enumerate(seconds, start=1):
        n = pool.get("checkouts", 0.0) * i
        out.append(line(names.SCRAPE, tags, {
            "db_client_connection_max": pool.get("size", 0.0),
            "db_client_connection_pending_requests": pool.get("waiting", 0.0),
            "db_client_connection_timeouts_total": pool.get("timeouts", 0.0) * i,
            "db_client_connection_use_time_seconds_sum": pool.get("hold_ms_mean", 0.0) / 1000 * n,
            "db_client_connection_use_time_seconds_count": n,
            "db_client_connection_wait_time_seconds_sum": pool.get("checkout_wait_ms_mean", 0.0) / 1000 * n,
            "db_client_connection_wait_time_seconds_count": n}, s * 1_000_000_000))
        for state, value in (("used", pool.get("checked_out", 0.0)),
                             ("idle", max(0.0, pool.get("size", 0.0) - pool.get("checked_out", 0.0)))):
            out.append(line(names.SCRAPE, {**tags, "db_client_connection_state": state},
                            {"db_client_connection_count": value}, s * 1_000_000_000))
    return out


def write_run(run_dir: Path, influx: InfluxClient, testid: str, modules: list[Module], services: list[Service],
              *, slo_p95_ms: float = 500, max_error_rate: float = 0.01, keep: float = 1.0,
              seed: int = 7, missing_summaries: tuple[str, ...] = (), status: str = "passed") -> Path:
    rnd = random.Random(seed)
    rd = RunDir(run_dir)
    rd.k6_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    records = []
    for mod in modules:
        start = EPOCH_S + mod.offset_s
        n = int(mod.rate * mod.seconds)
        total_ms = 0.0
        runner = runner_name(mod.name, 0)
        base = {"testid": testid, "strategy": "parallel", "module": mod.name, "service": mod.service,
                "runner": runner}
        weights = [e.share for e in mod.endpoints]
        for i in range(n):
            t = i / mod.rate
            ts = int((start + t) * 1e9)
            ep = rnd.choices(mod.endpoints, weights)[0]
            ms = ep.latency_ms(t / mod.seconds, rnd)
            failed = ep.fails(t / mod.seconds, rnd)
            total_ms += ms
            tags = {**base, "name": ep.name, "method": ep.method, "status": "500" if failed else "200",
                    "expected_response": "false" if failed else "true", "scenario": "load"}
            fields: dict[str, Any] = {"url": ep.name}
            if ep.keys:
                fields["key"] = f"{ep.name}:{rnd.randrange(ep.keys)}"
            merged, near = mod.twins
            stamps = [ts] + ([ts] if i < merged else [ts + 5] if i < merged + near else [])
            if (i % 1000) < keep * 1000:
                for stamp in stamps:
                    for meas, value in (("http_reqs", 1.0), ("http_req_duration", ms),
                                        ("http_req_waiting", ms * 0.95), ("http_req_failed", 1.0 if failed else 0.0)):
                        lines.append(line(meas, tags, {**fields, "value": value}, stamp))
            lines.append(line("iterations", {**base, "scenario": "load"}, {"value": 1.0}, ts + 1))
        dropped = 0
        for s in range(mod.seconds):
            ts = int((start + s) * 1e9)
            lines.append(line("vus", base, {"value": float(mod.vus)}, ts))
            for j in range(int(mod.dropped_per_s)):
                lines.append(line("dropped_iterations", {**base, "scenario": "load"}, {"value": 1.0}, ts + j))
                dropped += 1
        n += sum(mod.twins)
        if runner not in missing_summaries:
            rd.write_summary(runner, {"metrics": {
                "http_reqs": {"count": n, "rate": mod.rate},
                "iterations": {"count": n, "rate": mod.rate},
                "dropped_iterations": {"count": dropped},
                "iteration_duration": {"avg": total_ms / n if n else 0},
                "http_req_duration": {"avg": total_ms / n if n else 0},
                "vus_max": {"value": mod.vus, "max": mod.vus}}})
        records.append(ModuleRecord(name=mod.name, service=mod.service, runners=1, started_at=iso(start),
                                    ended_at=iso(start + mod.seconds), exit_codes=[0], requests=n))
    for svc in services:
        if svc.pool_metrics is None:
            continue
        mods = [m for m in modules if m.service == svc.name]
        lo = min(EPOCH_S + m.offset_s for m in mods)
        hi = max(EPOCH_S + m.offset_s + m.seconds for m in mods)
        lines += pool_metric_lines(svc.name, testid, svc.pool_metrics, range(lo, hi + 1))
    for i in range(0, len(lines), 20_000):
        influx.write(lines[i:i + 20_000])
    end = max(EPOCH_S + m.offset_s + m.seconds for m in modules)
    plan = load_plan(write_plan(run_dir / "plan", modules, services, slo_p95_ms, max_error_rate))
    record = RunRecord(run_id=testid, testid=testid, strategy="parallel", status=status, started_at=iso(EPOCH_S),
                       ended_at=iso(end), plan=str(plan.path), slo=plan.slo,
                       influx=StoreRecord(url=influx.public_url, db=influx.db),
                       phases=[PhaseRecord(name="parallel", modules=[m.name for m in modules],
                                           started_at=iso(EPOCH_S), ended_at=iso(end))], modules=records)
    rd.write_plan(plan)
    rd.write_record(record, complete=True)
    return run_dir


def write_plan(plan_dir: Path, modules: list[Module], services: list[Service], slo_p95_ms: float,
               max_error_rate: float) -> Path:
    plan_dir.mkdir(parents=True, exist_ok=True)
    out = ['name = "synthetic"', "[target]", 'base_url = "http://127.0.0.1:9"', 'allow_hosts = ["127.0.0.1"]',
           "[slo]", f"p95_ms = {slo_p95_ms}", f"max_error_rate = {max_error_rate}"]
    for svc in services:
        out.append(f"[services.{svc.name}]")
        out += [f"{k} = {v}" for k, v in svc.settings.items()]
    for mod in modules:
        (plan_dir / f"{mod.name}.js").write_text("export default function () {}\n")
        out += ["[[modules]]", f'name = "{mod.name}"', f'script = "{mod.name}.js"', f'service = "{mod.service}"',
                f"rate = {mod.rate}", f'duration = "{mod.seconds}s"']
    path = plan_dir / "plan.toml"
    path.write_text("\n".join(out) + "\n")
    return path.resolve()
