"""Analysis cost: `recommend` on 1e5 and 1e6 stored samples, versus a naive pull-everything reader.

Setup (timed separately, reported as `write_seconds_*`): a private influxd gets
synthetic k6-shaped samples, exactly the measurements and tags k6's InfluxDB
output writes (11 samples per request: http_reqs, http_req_duration,
http_req_waiting, http_req_failed, http_req_blocked, http_req_connecting,
http_req_sending, http_req_receiving, http_req_tls_handshaking, iterations,
iteration_duration; plus vus each second), over a 300 s run of three modules on
two services, with scraped pool metrics (OpenTelemetry names) for the pool-bound one. A "sample" is one
stored point, k6's own unit.

Measured side by side in the same process and store:

- `recommend`: `policies.recommend.analyze` with the real reader (InfluxQL
  aggregates computed by InfluxDB), plus writing recommendations.json, exactly
  what `loadbearing recommend` does;
- `naive`: the same policies fed by a reader that pulls every raw sample of the
  run (`SELECT *`) and aggregates in Python (nearest-rank percentiles like
  InfluxDB's), so both produce the same document (`same_result`).

Prints one JSON line:
`{"bench": "analysis", "seconds_1e5": .., "seconds_1e6": .., "naive_seconds_1e6": .., ...}`
(median of REPEATS runs each, after influxd settled from the write; `cpu_seconds_*` are
influxd's plus this process's CPU seconds, a figure that other load on the machine does
not inflate). Goal: seconds_1e6 <= 3 and growth 1e5 -> 1e6 under 10x.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil

from bench.harness import base_parser, emit, exit_on_term, log, workdir
from bench.machine import load_now, machine
from bench.servers import start_influx
from core import measurements as names
from core.influx import InfluxClient, line
from core.percentile import nearest_rank
from core.plan import load_plan
from core.rundir import ModuleRecord, PhaseRecord, RunDir, RunRecord, StoreRecord, iso, runner_name
from policies.inputs import load_run
from policies.metrics import (
    PERCENTILE_GRID,
    TTL_CANDIDATES,
    Bucket,
    EndpointKey,
    EndpointStats,
    KeySpace,
    MetricsReader,
    ModuleBucket,
)
from policies.recommend import analyze, dumps_document

EPOCH_S = 1_700_000_000
RUN_SECONDS = 300
SAMPLES_PER_REQUEST = 11
REPEATS = 3
GOAL_SECONDS = 3.0
# (module, service, endpoint name, method, share of the module's requests, key space or None)
EndpointSpec = tuple[str, str, float, int | None]
MODULES: dict[str, tuple[str, list[EndpointSpec]]] = {
    "profile": ("profile-api", [("profile_get", "GET", 0.7, 2000), ("profile_put", "PUT", 0.1, 2000),
                                ("profile_feed", "GET", 0.2, 2000)]),
    "jobs": ("core-api", [("jobs_list", "GET", 1.0, None)]),
    "ecommerce": ("core-api", [("cart_get", "GET", 1.0, 500)]),
}
MODULE_SHARE = {"profile": 0.4, "jobs": 0.3, "ecommerce": 0.3}


# -- the synthetic k6-shaped run -----------------------------------------------------------

def _zipf_key(rnd: random.Random, n: int) -> int:
    # Inverse-CDF sampling of a Zipf(1) over 1..n, approximately (ln-based).
    return min(n, max(1, int(math.exp(rnd.random() * math.log(n + 1)))))


def sample_lines(testid: str, points: int, seed: int = 1) -> Iterator[list[str]]:
    """Batches of line protocol: `points` k6-shaped samples plus vus gauges."""
    rnd = random.Random(seed)
    requests = points // SAMPLES_PER_REQUEST
    batch: list[str] = []
    per_module = {m: int(requests * s) for m, s in MODULE_SHARE.items()}
    for module, n in per_module.items():
        service, endpoints = MODULES[module]
        runner = f"{module}-0"
        base = names.run_tags(testid, "parallel", module, service, runner)
        weights = [e[2] for e in endpoints]
        for i in range(n):
            t = i * RUN_SECONDS / n
            ts = int((EPOCH_S + t) * 1e9)
            name, method, _, keys = rnd.choices(endpoints, weights)[0]
            slow = service == "profile-api" and t > RUN_SECONDS / 2
            ms = (40 + rnd.expovariate(1 / 30)) * (8 if slow else 1) if service == "profile-api" else \
                2 + rnd.expovariate(1 / 5)
            failed = rnd.random() < 0.002
            tags = {**base, names.NAME: name, names.METHOD: method, "status": "500" if failed else "200",
                    "expected_response": "false" if failed else "true", "scenario": "load"}
            fields: dict[str, Any] = {"url": name}
            if keys:
                fields["key"] = f"{name}:{_zipf_key(rnd, keys)}"
            for meas, value in ((names.HTTP_REQS, 1.0), (names.HTTP_REQ_DURATION, ms), (names.HTTP_REQ_WAITING, ms * 0.96),
                                (names.HTTP_REQ_FAILED, 1.0 if failed else 0.0), ("http_req_blocked", 0.004),
                                ("http_req_connecting", 0.0), ("http_req_sending", 0.02),
                                ("http_req_receiving", ms * 0.03), ("http_req_tls_handshaking", 0.0)):
                batch.append(line(meas, tags, {**fields, "value": value}, ts))
            batch.append(line(names.ITERATIONS, {**base, "scenario": "load"}, {"value": 1.0}, ts + 1))
            batch.append(line(names.ITERATION_DURATION, {**base, "scenario": "load"}, {"value": ms + 0.1}, ts + 1))
            if len(batch) >= 50_000:
                yield batch
                batch = []
        for s in range(RUN_SECONDS):
            batch.append(line(names.VUS, base, {"value": 20.0}, int((EPOCH_S + s) * 1e9)))
    # profile-api's pool as a scrape of its metrics_url stores it (OpenTelemetry names, counters cumulative).
    pool_tags = {names.SERVICE: "profile-api", names.INSTANCE: "127.0.0.1:8001", names.TESTID: testid,
                 "db_client_connection_pool_name": "main"}
    waited_s = 0.0
    for s in range(RUN_SECONDS):
        slow = s > RUN_SECONDS / 2
        waited_s += 50 * (0.2 if slow else 0.0)
        ts = int((EPOCH_S + s + 1) * 1e9)
        batch.append(line(names.SCRAPE, pool_tags, {
            "db_client_connection_max": 2.0, "db_client_connection_pending_requests": 12.0 if slow else 0.0,
            "db_client_connection_timeouts_total": 0.0,
            "db_client_connection_use_time_seconds_sum": 0.04 * 50 * (s + 1),
            "db_client_connection_use_time_seconds_count": 50.0 * (s + 1),
            "db_client_connection_wait_time_seconds_sum": waited_s,
            "db_client_connection_wait_time_seconds_count": 50.0 * (s + 1)}, ts))
        batch.append(line(names.SCRAPE, {**pool_tags, "db_client_connection_state": "used"},
                          {"db_client_connection_count": 2.0 if slow else 1.0}, ts))
    if batch:
        yield batch


def write_run_dir(run_dir: Path, client: InfluxClient, testid: str, points: int) -> int:
    """run.json, plan and k6 summaries for the synthetic run; returns its request count."""
    requests = points // SAMPLES_PER_REQUEST
    rd = RunDir(run_dir)
    rd.k6_dir.mkdir(parents=True, exist_ok=True)
    plan_dir = run_dir / "plan"
    plan_dir.mkdir(exist_ok=True)
    plan = ['name = "bench"', "[target]", 'base_url = "http://127.0.0.1:9"', 'allow_hosts = ["127.0.0.1"]',
            "[slo]", "p95_ms = 500", "max_error_rate = 0.01",
            "[services.profile-api]", "instances = 1", "db_pool_size = 2", "db_max_connections = 100",
            "[services.core-api]", "instances = 1", "db_pool_size = 10", "db_max_connections = 100"]
    modules = []
    stamp, end = iso(EPOCH_S), iso(EPOCH_S + RUN_SECONDS)
    for module, share in MODULE_SHARE.items():
        n = int(requests * share)
        (plan_dir / f"{module}.js").write_text("export default function () {}\n")
        plan += ["[[modules]]", f'name = "{module}"', f'script = "{module}.js"', f'service = "{MODULES[module][0]}"',
                 f"rate = {n / RUN_SECONDS:.3f}", f'duration = "{RUN_SECONDS}s"']
        rd.write_summary(runner_name(module, 0), {"metrics": {
            names.HTTP_REQS: {"count": n}, names.ITERATIONS: {"count": n}, names.DROPPED_ITERATIONS: {"count": 0}}})
        modules.append(ModuleRecord(name=module, service=MODULES[module][0], runners=1, started_at=stamp,
                                    ended_at=end, exit_codes=[0]))
    (plan_dir / "plan.toml").write_text("\n".join(plan) + "\n")
    loaded = load_plan(plan_dir / "plan.toml")
    rd.write_plan(loaded)
    rd.write_record(RunRecord(
        run_id=testid, testid=testid, strategy="parallel", status="passed", started_at=stamp, ended_at=end,
        plan=str(loaded.path), slo=loaded.slo, influx=StoreRecord(url=client.public_url, db=client.db),
        phases=[PhaseRecord(name="parallel", modules=list(MODULE_SHARE), started_at=stamp, ended_at=end)],
        modules=modules), complete=True)
    return sum(int(requests * s) for s in MODULE_SHARE.values())


# -- the naive reader: every raw sample into Python ------------------------------------------

class NaiveReader(MetricsReader):
    """Same interface as MetricsReader, but pulls raw samples (`SELECT *`) and aggregates in Python."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._raw: dict[str, list[dict[str, Any]]] = {}

    def _pull(self, measurement: str) -> list[dict[str, Any]]:
        if measurement not in self._raw:
            self._raw[measurement] = self.rows(f"raw:{measurement}", f'SELECT * FROM "{measurement}" WHERE {self.where}')
        return self._raw[measurement]

    @staticmethod
    def _k(row: dict[str, Any]) -> EndpointKey:
        return EndpointKey(*(str(row.get(t) or "") for t in (names.MODULE, names.SERVICE, names.NAME, names.METHOD)))

    def _by_key(self, measurement: str, where: Any = None) -> dict[EndpointKey, list[dict[str, Any]]]:
        out: dict[EndpointKey, list[dict[str, Any]]] = {}
        for row in self._pull(measurement):
            if where is None or where(row):
                out.setdefault(self._k(row), []).append(row)
        return out

    def endpoint_stats(self) -> dict[EndpointKey, EndpointStats]:
        out: dict[EndpointKey, EndpointStats] = {}
        for key, rows in self._by_key(names.HTTP_REQ_DURATION).items():
            v = [float(r["value"]) for r in rows]
            out[key] = EndpointStats(key, len(v), sum(v) / len(v), nearest_rank(v, 50) or 0.0,
                                     nearest_rank(v, 95) or 0.0, nearest_rank(v, 99) or 0.0)
            ok = [float(r["value"]) for r in rows if r.get("expected_response") == "true"]
            out[key].min_ok_ms = min(ok) if ok else None
        for key, rows in self._by_key(names.HTTP_REQ_WAITING).items():
            if key in out:
                v = [float(r["value"]) for r in rows]
                out[key].wait_p50_ms, out[key].wait_p95_ms = nearest_rank(v, 50), nearest_rank(v, 95)
        for key, rows in self._by_key(names.HTTP_REQ_FAILED).items():
            if key in out:
                out[key].failed = round(sum(float(r["value"]) for r in rows))
                out[key].error_rate = out[key].failed / len(rows) if rows else 0.0
        return out

    def _bucket(self, t_ms: int) -> int:
        step = self.interval_s * 1000
        return (int(t_ms) // step) * step

    def endpoint_series(self) -> dict[EndpointKey, list[Bucket]]:
        out: dict[EndpointKey, dict[int, Bucket]] = {}
        for key, rows in self._by_key(names.HTTP_REQ_DURATION).items():
            per: dict[int, list[float]] = {}
            for r in rows:
                per.setdefault(self._bucket(r["time"]), []).append(float(r["value"]))
            out[key] = {t: Bucket(t, len(v), sum(v) / len(v), nearest_rank(v, 95) or 0.0) for t, v in per.items()}
        for key, rows in self._by_key(names.HTTP_REQ_FAILED).items():
            for r in rows:
                b = out.get(key, {}).get(self._bucket(r["time"]))
                if b is not None:
                    b.failed += round(float(r["value"]))
        return {k: [v[t] for t in sorted(v)] for k, v in sorted(out.items())}

    def stored_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for meas in (names.HTTP_REQS, names.HTTP_REQ_DURATION, names.HTTP_REQ_FAILED):
            for r in self._pull(meas):
                d = out.setdefault(str(r.get(names.MODULE) or ""), {})
                d[meas] = d.get(meas, 0) + 1
        return out

    def module_series(self) -> dict[str, list[ModuleBucket]]:
        peak: dict[tuple[str, int, str], float] = {}
        for r in self._pull(names.VUS):
            k = (str(r.get(names.MODULE) or ""), self._bucket(r["time"]), str(r.get(names.RUNNER) or ""))
            peak[k] = max(peak.get(k, 0.0), float(r["value"]))
        out: dict[str, dict[int, ModuleBucket]] = {}
        for (module, t, _), v in peak.items():
            b = out.setdefault(module, {}).setdefault(t, ModuleBucket(t))
            b.vus += v
        for r in self._pull(names.DROPPED_ITERATIONS):
            t = self._bucket(r["time"])
            b = out.setdefault(str(r.get(names.MODULE) or ""), {}).setdefault(t, ModuleBucket(t))
            b.dropped += float(r["value"])
        return {m: [v[t] for t in sorted(v)] for m, v in sorted(out.items())}

    def keyspaces(self, keys: Iterable[EndpointKey] | None = None) -> dict[EndpointKey, KeySpace]:
        wanted = None if keys is None else set(keys)
        out: dict[EndpointKey, KeySpace] = {k: KeySpace(None, 0, 0) for k in wanted or ()}
        for key, rows in self._by_key(names.HTTP_REQS, lambda r: r.get(names.METHOD) == "GET").items():
            if wanted is not None and key not in wanted:
                continue
            source = "key" if any(r.get("key") for r in rows) else "url"
            values = [r.get(source) for r in rows if r.get(source) is not None]
            distinct = len(set(values))
            if source == "url" and distinct <= 1 and (values[:1] == [key.name]):
                out[key] = KeySpace(None, len(rows), 0)
                continue
            ks = KeySpace(source, len(rows), distinct)
            for ttl in TTL_CANDIDATES:
                windows: dict[int, set[Any]] = {}
                for r in rows:
                    if r.get(source) is not None:
                        windows.setdefault(int(r["time"]) // (ttl * 1000), set()).add(r[source])
                ks.window_distinct[ttl] = sum(len(s) for s in windows.values())
            out[key] = ks
        return dict(sorted(out.items()))

    def percentile_grid(self) -> dict[EndpointKey, dict[float, float]]:
        out: dict[EndpointKey, dict[float, float]] = {}
        for key, rows in self._by_key(names.HTTP_REQ_DURATION).items():
            if key.method != "GET":
                continue
            values = [float(r["value"]) for r in rows]
            grid = {p: v for p in PERCENTILE_GRID if (v := nearest_rank(values, p)) is not None}
            if grid:
                out[key] = grid
        return out


# -- measuring -----------------------------------------------------------------------------

def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def settle(influxd: psutil.Process, limit_s: float = 60.0) -> float:
    """Wait until influxd is idle (its WAL snapshot and compactions of the fresh write are done)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        before = cpu_s(influxd)
        time.sleep(1.0)
        if cpu_s(influxd) - before < 0.05:
            break
    return time.perf_counter() - t0


def recommend_once(run_dir: Path, client: InfluxClient, reader_cls: type[MetricsReader],
                   influxd: psutil.Process) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds, CPU seconds of influxd + this process, document) of one `recommend`
    (read, analyse, write recommendations.json) with this reader."""
    c0, p0, t0 = cpu_s(influxd), time.process_time(), time.perf_counter()
    inputs = load_run(run_dir)
    analysis = analyze(inputs, reader_cls(client, inputs.testid, inputs.started_ms, inputs.ended_ms))
    RunDir(run_dir).write_recommendations(dumps_document(analysis.document))
    wall = time.perf_counter() - t0
    return wall, (cpu_s(influxd) - c0) + (time.process_time() - p0), analysis.document


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without evidence queries (the two readers cite different queries)."""
    def strip(rec: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in rec.items() if k != "evidence"}
    return {"valid": doc["valid"], "endpoints": doc["endpoints"],
            "findings": [(f["kind"], f["service"], f["endpoint"]) for f in doc["findings"]],
            "recommendations": [strip(r) for r in doc["recommendations"]]}


def main() -> None:
    exit_on_term()
    parser = base_parser(__doc__ or "")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    sizes = {"1e5": 100_000, "1e6": 1_000_000} if not args.quick else {"1e5": 10_000, "1e6": 100_000}
    repeats = 1 if args.quick else args.repeats
    result: dict[str, Any] = {"bench": "analysis"}
    with workdir("analysis", args.keep) as root:
        server = start_influx(root / "influxd")
        influxd = psutil.Process(server.pid)
        try:
            docs: dict[str, dict[str, Any]] = {}
            for label, points in sizes.items():
                client = InfluxClient.from_url(server.url, db=f"analysis_{label}")
                client.ensure_db()
                testid = f"bench-{label}"
                run_dir = root / testid
                requests = write_run_dir(run_dir, client, testid, points)
                t0 = time.perf_counter()
                written = 0
                for batch in sample_lines(testid, points):
                    client.write(batch)
                    written += len(batch)
                result[f"write_seconds_{label}"] = round(time.perf_counter() - t0, 3)
                result[f"points_{label}"] = written
                result[f"requests_{label}"] = requests
                log(f"{label}: wrote {written} points ({requests} requests) in {result[f'write_seconds_{label}']} s")
                result[f"settle_seconds_{label}"] = round(settle(influxd), 1)
                recommend_once(run_dir, client, MetricsReader, influxd)  # warm-up (caches, connections)
                times, cpus = [], []
                for _ in range(repeats):
                    seconds, cpu, doc = recommend_once(run_dir, client, MetricsReader, influxd)
                    times.append(seconds)
                    cpus.append(cpu)
                docs[label] = doc
                result[f"seconds_{label}"] = round(statistics.median(times), 3)
                result[f"cpu_seconds_{label}"] = round(statistics.median(cpus), 3)
                log(f"{label}: recommend {[round(t, 3) for t in times]} s, cpu {[round(c, 3) for c in cpus]} s")
                if label == "1e6":
                    seconds, cpu, naive_doc = recommend_once(run_dir, client, NaiveReader, influxd)
                    result["naive_seconds_1e6"] = round(seconds, 3)
                    result["naive_cpu_seconds_1e6"] = round(cpu, 3)
                    result["same_result"] = comparable(naive_doc) == comparable(docs[label])
                    log(f"1e6: naive {seconds:.2f} s, same result: {result['same_result']}")
        finally:
            server.stop()
    result["growth_1e5_to_1e6"] = round(result["seconds_1e6"] / result["seconds_1e5"], 2)
    result["cpu_growth_1e5_to_1e6"] = round(result["cpu_seconds_1e6"] / result["cpu_seconds_1e5"], 2)
    result["naive_over_recommend_1e6"] = round(result["naive_seconds_1e6"] / result["seconds_1e6"], 1)
    result["goal_seconds_1e6"] = GOAL_SECONDS
    result["meets_goal"] = result["seconds_1e6"] <= GOAL_SECONDS and result["growth_1e5_to_1e6"] < 10
    result["recommendations_1e6"] = [r["kind"] + ":" + r["service"] for r in docs["1e6"]["recommendations"]]
    result["quick"] = bool(args.quick)
    result["machine"] = machine()
    result["load"] = load_now()
    emit(result)


if __name__ == "__main__":
    main()
