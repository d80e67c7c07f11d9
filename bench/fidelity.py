"""Metrics fidelity at full rate: does the pipeline keep every sample, and what does it cost?

The same constant-vus load (50 VUs, no think time) against a private nginx, in
rounds that alternate between:

- `k6_no_output`  bare `k6 run` without any output (k6's own ceiling on this box);
- `loadbearing`   `loadbearing run parallel` (k6's InfluxDB output into a private
  influxd with max-body-size 0, run.json computed from the stored samples).

`stored_ratio` = samples InfluxDB holds / requests k6 itself counted (http_reqs,
and http_req_duration checked too; 6 decimals, `lost_samples` exact); `rps_ratio` =
loadbearing rps / bare rps. Goal: stored_ratio 1.000 (3 decimals) and rps_ratio >= 0.80.
At full rate a few samples in 10^5 can be missing: InfluxDB merges two k6 samples
with the same tags and the same nanosecond timestamp into one point; unless
`--no-tuning`, `collision_check` measures that cause directly (see its docstring).

Where the requests/s go: CPU seconds of k6 (+ controller), influxd and nginx per 1000
requests, from the kernel (wait4) and psutil. Then, unless `--no-tuning`, one round of
bare k6 with output-tuning variants (push interval, the `url` field, k6's CSV output
as an anchor, k6's aggregating Prometheus remote-write output into InfluxDB's
/api/v1/prom/write, and the same output with Trends as native histograms into
`bench.promrw`, whose merged p95 bucket is set beside k6's exact p95), between two
no-output reference runs, so a recommended change
to `runners/k6.py` comes with its measured effect. CPU seconds per 1000 requests is
the figure to compare variants by: other load on the machine moves it far less
than requests/s.

Prints one JSON line: `{"bench": "fidelity", "stored_ratio": ..., "rps_ratio": ..., ...}`.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path
from typing import Any

from bench import promrw
from bench.harness import base_parser, emit, exit_on_term, log, rnd, workdir
from bench.machine import load_now
from bench.plans import write_plan
from bench.runs import bench_env, run_bare_k6, run_loadbearing
from bench.servers import new_db, promrw_receiver, services, stored_count
from bench.watch import cpu_seconds
from core import measurements as names
from core.influx import InfluxClient, quote_literal
from runners import k6 as k6mod
from runners.influxd import Influxd

GOAL_RPS = 0.80
# Tuning variants: (name, env overrides, config overrides, other --out, InfluxDB output on?)
NO_URL_TAGS = [t for t in k6mod.SYSTEM_TAGS if t != "url"]
TUNING: list[tuple[str, dict[str, str], dict[str, Any], str | None, bool]] = [
    ("influx_as_loadbearing", {}, {}, None, True),
    ("influx_push_5s", {"K6_INFLUXDB_PUSH_INTERVAL": "5s"}, {}, None, True),
    ("influx_without_url_field", {}, {"systemTags": NO_URL_TAGS}, None, True),
    ("csv_output_no_influx", {}, {}, "csv", False),
    # k6's Prometheus remote-write output aggregates per push (counters, trend stats) and
    # InfluxDB 1.x accepts it on /api/v1/prom/write: a cheaper path, with another data model.
    ("prometheus_rw_aggregated", {"K6_PROMETHEUS_RW_TREND_STATS": "p(95),p(99),count,avg,min,max",
                                  "K6_PROMETHEUS_RW_PUSH_INTERVAL": "1s"}, {}, "prometheus-rw", False),
    # The same output with Trends as native histograms (mergeable by bucket), into bench.promrw.
    ("prometheus_rw_native_histogram", {"K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM": "true",
                                        "K6_PROMETHEUS_RW_PUSH_INTERVAL": "1s"}, {}, "prometheus-rw-native", False),
]


def measure(rounds: int, seconds: int, vus: int, tuning: bool, keep: bool = False,
            tuning_seconds: int | None = None) -> dict[str, Any]:
    bare_req = lb_req = 0
    stored_reqs = stored_dur = k6_count = 0
    cpu = {"k6_no_output": 0.0, "loadbearing": 0.0, "influxd": 0.0, "nginx_bare": 0.0, "nginx_lb": 0.0}
    lb_wall = 0.0
    per_round: list[dict[str, Any]] = []
    tuning_rows: dict[str, Any] = {}
    collisions: dict[str, Any] = {}
    store: dict[str, int] = {}
    load_before = load_now()
    with workdir("fidelity", keep) as root, services(root) as (nginx, influxd):
        assert nginx is not None and influxd is not None
        plan = write_plan(root / "plan", nginx.url, [{"name": "fast", "vus": vus, "duration": f"{seconds}s"}])
        client = new_db(influxd, "fidelity")
        env = bench_env(root / "state")
        for i in range(rounds):
            order = ("k6_no_output", "loadbearing") if i % 2 == 0 else ("loadbearing", "k6_no_output")
            row: dict[str, Any] = {"order": list(order)}
            for variant in order:
                ng0 = cpu_seconds(nginx.pids())
                if variant == "k6_no_output":
                    bare = run_bare_k6(plan, "fast", root / "bare", influx=None)
                    if bare.code != 0:
                        raise RuntimeError(f"bare k6 exited {bare.code}")
                    bare_req += bare.requests
                    cpu["k6_no_output"] += bare.cpu_s
                    cpu["nginx_bare"] += cpu_seconds(nginx.pids()) - ng0
                    row[variant] = round(bare.requests / seconds, 1)
                else:
                    ix0 = cpu_seconds([influxd.pid])
                    st0 = influx_stats(client)
                    run = run_loadbearing(plan, "parallel", 1, client, root / "runs", env)
                    run.require_numbers()
                    cpu["influxd"] += cpu_seconds([influxd.pid]) - ix0
                    for k, v in influx_stats(client).items():
                        store[k] = store.get(k, 0) + v - st0.get(k, 0)
                    cpu["nginx_lb"] += cpu_seconds(nginx.pids()) - ng0
                    cpu["loadbearing"] += run.cpu_s
                    lb_wall += run.wall_s
                    lb_req += run.k6_requests
                    k6_count += run.k6_requests
                    stored_reqs += run.stored
                    stored_dur += stored_count(client, run.testid, names.HTTP_REQ_DURATION)
                    row[variant] = round(run.k6_requests / seconds, 1)
                    row["stored"] = run.stored
                    row["k6_count"] = run.k6_requests
                log(f"round {i + 1}/{rounds} {variant}: {row[variant]:,.0f} req/s")
            per_round.append(row)
        if tuning:
            tuning_rows = _tuning(plan, root, client, influxd, tuning_seconds or seconds)
            short = write_plan(root / "plan-short", nginx.url, [{"name": "fast", "vus": vus, "duration": "3s"}])
            collisions = collision_check(short, root, client, 3, 3)
    stored_ratio = min(stored_reqs, stored_dur) / k6_count if k6_count else 0.0
    rps_ratio = lb_req / bare_req if bare_req else 0.0
    return {
        "bench": "fidelity",
        "stored_ratio": rnd(stored_ratio, 6),
        "lost_samples": k6_count - min(stored_reqs, stored_dur),
        "rps_ratio": rnd(rps_ratio),
        "goal": f"stored_ratio 1.000 and rps_ratio >= {GOAL_RPS}",
        "passed": round(stored_ratio, 3) == 1.0 and rps_ratio >= GOAL_RPS,
        "rps": {"k6_no_output": round(bare_req / (rounds * seconds), 1),
                "loadbearing": round(lb_req / (rounds * seconds), 1)},
        "samples": {"k6_requests": k6_count, "stored_http_reqs": stored_reqs, "stored_http_req_duration": stored_dur},
        "cpu_s_per_1k_requests": {
            "k6_no_output": rnd(1000 * cpu["k6_no_output"] / bare_req, 4) if bare_req else None,
            "loadbearing_k6_and_controller": rnd(1000 * cpu["loadbearing"] / lb_req, 4) if lb_req else None,
            "influxd": rnd(1000 * cpu["influxd"] / lb_req, 4) if lb_req else None,
            "nginx_with_bare": rnd(1000 * cpu["nginx_bare"] / bare_req, 4) if bare_req else None,
            "nginx_with_loadbearing": rnd(1000 * cpu["nginx_lb"] / lb_req, 4) if lb_req else None,
        },
        "cpu_pct_of_one_core_during_loadbearing": {
            "k6_and_controller": rnd(100 * cpu["loadbearing"] / lb_wall, 1) if lb_wall else None,
            "influxd": rnd(100 * cpu["influxd"] / lb_wall, 1) if lb_wall else None,
            "nginx": rnd(100 * cpu["nginx_lb"] / lb_wall, 1) if lb_wall else None,
        },
        "influxd_stats": store,
        "tuning": tuning_rows,
        "tuning_seconds": (tuning_seconds or seconds) if tuning else None,
        "collision_check": collisions,
        "rounds": per_round,
        "vus": vus,
        "seconds_per_round": seconds,
        "load_before": load_before,
    }


def _tuning(plan: Path, root: Path, client: InfluxClient, influxd: Influxd, seconds: int) -> dict[str, Any]:
    """Bare k6 with each output variant; rps relative to no-output references run before and after."""
    refs = [run_bare_k6(plan, "fast", root / "tuning", influx=None).requests]
    rows: dict[str, dict[str, Any]] = {}
    for name, env, cfg, other, use_influx in TUNING:
        ix0 = cpu_seconds([influxd.pid])
        other_out = None
        extra: dict[str, Any] = {}
        if other == "csv":
            other_out = f"csv={root / 'tuning' / (name + '.csv')}"
        elif other == "prometheus-rw":
            other_out = "experimental-prometheus-rw"
            env = {**env, "K6_PROMETHEUS_RW_SERVER_URL": f"{influxd.url}/api/v1/prom/write?db={client.db}"}
        if other == "prometheus-rw-native":
            with promrw_receiver() as receiver:
                env = {**env, "K6_PROMETHEUS_RW_SERVER_URL": f"{receiver.url}/api/v1/write"}
                rx0 = receiver.cpu_s()
                run = run_bare_k6(plan, "fast", root / "tuning", influx=None, env_overrides=env,
                                  config_overrides=cfg, other_out="experimental-prometheus-rw")
                ix = receiver.cpu_s() - rx0
                summary = receiver.summary()
            stored: int | None = summary["http_reqs"]
            extra = _native_p95(summary, run.summary)
        else:
            run = run_bare_k6(plan, "fast", root / "tuning", influx=client if use_influx else None,
                              env_overrides=env, config_overrides=cfg, other_out=other_out)
            ix = cpu_seconds([influxd.pid]) - ix0
            if use_influx:
                stored = stored_count(client, run.testid)
            elif other == "prometheus-rw":
                stored = _prometheus_count(client, run.testid)
            else:
                stored = None
        rows[name] = {
            "rps": round(run.requests / seconds, 1),
            "stored_ratio": rnd(stored / run.requests, 6) if stored is not None and run.requests else None,
            "k6_cpu_s_per_1k": rnd(1000 * run.cpu_s / run.requests, 4) if run.requests else None,
            "influxd_cpu_s_per_1k": rnd(1000 * ix / run.requests, 4) if run.requests else None,
            **extra,
            "_requests": run.requests,
        }
        log(f"tuning {name}: {run.requests / seconds:,.0f} req/s, k6 {rows[name]['k6_cpu_s_per_1k']} "
            f"CPU-s/1k requests, stored {rows[name]['stored_ratio']}")
    refs.append(run_bare_k6(plan, "fast", root / "tuning", influx=None).requests)
    ref = sum(refs) / len(refs)
    out: dict[str, Any] = {"reference_rps": round(ref / seconds, 1)}
    for name, row in rows.items():
        n = row.pop("_requests")
        out[name] = {**row, "rps_ratio": rnd(n / ref) if ref else None}
    return out


def collision_check(plan: Path, root: Path, client: InfluxClient, runs: int, seconds: int) -> dict[str, Any]:
    """Are lost samples k6 samples that share a nanosecond timestamp (same tags)?

    InfluxDB identifies a point by measurement, tag set and timestamp; k6 writes vu and
    iter as fields (metadata), so two requests with the same tags that k6 stamps in the
    same nanosecond are stored as one point. Bare k6 writes to InfluxDB and to a CSV file
    (ns timestamps) at once; duplicates in the CSV are counted beside the InfluxDB deficit.
    """
    dups = lost = requests = 0
    for i in range(runs):
        out = root / "collisions" / f"run{i}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        run = run_bare_k6(plan, "fast", root / "collisions", influx=client, other_out=f"csv={out}",
                          env_overrides={"K6_CSV_TIME_FORMAT": "unix_nano"})
        seen: Counter[str] = Counter()
        with open(out, newline="") as f:
            reader = csv.reader(f)
            head = next(reader)
            metric, ts = head.index("metric_name"), head.index("timestamp")
            for row in reader:
                if row[metric] == names.HTTP_REQS:
                    seen[row[ts]] += 1
        out.unlink()
        dups += sum(n - 1 for n in seen.values() if n > 1)
        lost += run.requests - stored_count(client, run.testid)
        requests += run.requests
    log(f"collision check: {requests} requests, {dups} shared a ns timestamp, {lost} missing in InfluxDB")
    return {"runs": runs, "seconds": seconds, "requests": requests, "same_ns_timestamp": dups,
            "missing_in_influxdb": lost}


INFLUX_STATS = {("httpd", "writeReq"): "write_requests", ("httpd", "pointsWrittenOK"): "points_written_ok",
                ("httpd", "pointsWrittenFail"): "points_written_fail",
                ("httpd", "pointsWrittenDropped"): "points_written_dropped",
                ("httpd", "clientError"): "client_errors", ("httpd", "serverError"): "server_errors",
                ("write", "writeError"): "write_errors", ("write", "writeDrop"): "write_drops",
                ("write", "writeTimeout"): "write_timeouts"}


def influx_stats(client: InfluxClient) -> dict[str, int]:
    """InfluxDB's own counters (`SHOW STATS`) of what it accepted and refused, since it started."""
    out: dict[str, int] = {}
    for module in sorted({m for m, _ in INFLUX_STATS}):
        for row in client.rows(f"SHOW STATS FOR {quote_literal(module)}"):
            for (m, field), name in INFLUX_STATS.items():
                if m == module and row.get(field) is not None:
                    out[name] = out.get(name, 0) + int(row[field])
    return out


def _native_p95(summary: dict[str, Any], k6_summary: dict[str, Any]) -> dict[str, Any]:
    """The merged native histogram's p95 bucket beside k6's exact p95 (its end-of-test summary)."""
    exact = (k6_summary.get("metrics", {}).get(names.HTTP_REQ_DURATION) or {}).get("p(95)")
    bounds = promrw.p95_bounds_ms(summary)
    schemas = (summary.get("duration") or {}).get("schemas") or []
    out: dict[str, Any] = {"p95_exact_ms": rnd(exact, 4), "histogram_schema": schemas[0] if len(schemas) == 1 else None,
                           "p95_bucket_ms": [rnd(b, 4) for b in bounds] if bounds else None}
    if bounds and len(schemas) == 1:
        out["bucket_relative_width"] = rnd(promrw.relative_width(schemas[0]), 4)
        if exact:
            mid = math.sqrt(bounds[0] * bounds[1])
            out["p95_midpoint_error"] = rnd((mid - exact) / exact, 4)
    return out


def _prometheus_count(client: InfluxClient, testid: str) -> int:
    """k6's http_reqs counter as last written by the Prometheus remote-write output (all series)."""
    q = (f'SELECT last("value") FROM "k6_http_reqs_total" WHERE "testid" = {quote_literal(testid)} GROUP BY *')
    return int(sum(s["values"][0][1] for s in client.series(q) if s.get("values")))


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--vus", type=int, default=50)
    parser.add_argument("--no-tuning", action="store_true", help="skip the output-tuning variants")
    parser.add_argument("--tuning-seconds", type=int, default=8)
    args = parser.parse_args(argv)
    exit_on_term()
    rounds, seconds = (1, 1) if args.quick else (args.rounds, args.seconds)
    emit(measure(rounds, seconds, args.vus, tuning=not (args.quick or args.no_tuning), keep=args.keep,
                 tuning_seconds=args.tuning_seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
