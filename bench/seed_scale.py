"""The field report's headline load: the parallel strategy at 1,200 VUs across the demo's four modules.

The demo's `seed` plan (demo/plan.py: jobs, ecommerce, notifications on core-api,
profile on profile-api; 300 VUs each, closed model, the scripts' think time) with
every module shortened to `--seconds` (60), run by `loadbearing run parallel` against
the demo services started by `demo.launcher` on loopback, with a private influxd.

What it reports, honestly:
- `stored_ratio`: samples InfluxDB holds / requests k6 counted (goal 1.000);
- `generator_saturated`: true when a k6 runner's CPU p90 was >= 90 % of a core, or
  k6 dropped iterations; `saturation_evidence` has each runner's CPU and whether the
  whole machine was pegged (>= 95 % on average: then the target, InfluxDB and k6
  all queued for CPU and latencies include that);
- the run's own verdict from `policies.recommend` (valid / findings), beside it;
- `controller_peak_rss_mb`: the controller process's peak RSS (psutil, every 0.5 s).

Prints one JSON line:
`{"bench": "seed_scale", "vus": ..., "stored_ratio": ..., "generator_saturated": ..., "controller_peak_rss_mb": ...}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness import base_parser, emit, exit_on_term, log, rnd
from bench.plans import demo_plan
from bench.runs import LbRun, session
from bench.servers import demo_services
from core.influx import InfluxClient
from policies.recommend import recommend_run

K6_CPU_PEGGED_PCT = 90.0
MACHINE_PEGGED_PCT = 95.0


def judge_saturation(run: LbRun) -> tuple[bool, dict[str, Any]]:
    """Was the load generator (not the target) setting the pace?

    Saturated when a k6 runner's CPU p90 (psutil, per sampling interval) is >= 90 % of
    a core (the policies' own threshold) or k6 dropped iterations. A machine whose
    CPU is pegged by everything on it (target, InfluxDB, other users) is reported
    beside it as `machine_cpu_pegged`: then latencies include CPU queueing for all.
    """
    runners = list(run.watch.k6.values())
    dropped = run.k6_dropped
    machine = run.watch.machine_cpu_mean()
    reasons = []
    hot = [c.name for c in runners if c.p90_pct >= K6_CPU_PEGGED_PCT]
    if hot:
        reasons.append(f"k6 runner(s) {', '.join(hot)}: CPU p90 >= {K6_CPU_PEGGED_PCT:g}% of a core")
    if dropped > 0:
        reasons.append(f"k6 dropped {dropped} iterations")
    return bool(reasons), {
        "reasons": reasons,
        "k6_cpu_mean_pct": {c.name: rnd(c.mean_pct, 1) for c in runners},
        "k6_cpu_p90_pct": {c.name: rnd(c.p90_pct, 1) for c in runners},
        "k6_cpu_peak_pct": {c.name: rnd(c.peak_pct, 1) for c in runners},
        "dropped_iterations": dropped,
        "machine_cpu_mean_pct": rnd(machine, 1),
        "machine_cpu_pegged": machine >= MACHINE_PEGGED_PCT,
    }


def run_verdict(run_dir: Path, client: InfluxClient) -> dict[str, Any]:
    """The run's own validity verdict (policies.recommend), or why it is not available."""
    try:
        doc = recommend_run(run_dir, client)
    except Exception as exc:  # the policies are another part; report, do not fail the benchmark
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
    kinds = sorted({f.get("kind", "") for f in doc.get("findings", [])})
    return {"available": True, "valid": doc.get("valid"), "finding_kinds": kinds,
            "says_generator_saturated": "generator_saturated" in kinds,
            "invalid_reasons": [r[:200] for r in doc.get("invalid_reasons", [])]}


def measure(seconds: int, vus_per_module: int | None, keep: bool = False) -> dict[str, Any]:
    with session("seed_scale", "seed", keep, nginx=False) as sess:
        with demo_services(sess.root) as (core, profile):
            plan = demo_plan(sess.root / "plan" / "plan.toml", "seed", core.url, profile.url, seconds,
                             vus_per_module=vus_per_module)
            log(f"parallel strategy, demo seed plan, {seconds}s per module")
            run = sess.run(plan, timeout_s=seconds + 300)
        if run.run_dir is None or run.record is None:
            raise RuntimeError(f"loadbearing exited {run.code} without a run record:\n{run.stderr_tail}")
        saturated, evidence = judge_saturation(run)
        verdict = run_verdict(run.run_dir, sess.client)
        vus = sum(int(m.get("vus") or 0) for m in _plan_modules(plan))
        record = run.record
        modules = {m.name: {"requests": m.requests, "k6_requests": m.k6_requests, "p95_ms": m.p95_ms,
                            "error_rate": m.error_rate} for m in record.modules}
    k6_total = run.k6_requests
    completed = record.status in ("passed", "failed") and run.code in (0, 1)
    stored_ratio = run.stored / k6_total if k6_total else 0.0
    return {
        "bench": "seed_scale",
        "vus": vus,
        "stored_ratio": rnd(stored_ratio, 4),
        "generator_saturated": saturated,
        "controller_peak_rss_mb": rnd(run.watch.peak_rss_mb, 1),
        "goal": "completes, stored_ratio 1.000, saturation judged",
        "passed": completed and run.stored == k6_total and k6_total > 0,
        "completed": completed,
        "exit_code": run.code,
        "status": record.status,
        "seconds": seconds,
        "requests": {"k6": k6_total, "stored": run.stored},
        "rps": rnd(k6_total / seconds, 1),
        "modules": modules,
        "saturation_evidence": evidence,
        "run_verdict": verdict,
        "controller_cpu_s": rnd(run.watch.own_cpu_s, 2),
        "load_before": sess.load_before,
    }


def _plan_modules(plan: Path) -> list[dict[str, Any]]:
    import tomllib

    mods: list[dict[str, Any]] = tomllib.loads(plan.read_text()).get("modules", [])
    return mods


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--vus-per-module", type=int, default=None, help="default: the seed plan's 300")
    args = parser.parse_args(argv)
    exit_on_term()
    if args.quick:
        emit(measure(3, 30, args.keep))
    else:
        emit(measure(args.seconds, args.vus_per_module, args.keep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
