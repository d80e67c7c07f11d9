"""Soak: the parallel strategy at the demo's ci scale for N minutes.

The demo's `ci` plan (jobs 30 VUs, ecommerce 30 VUs, notifications 20 VUs with the
scripts' think time, profile at 60 req/s) with every module lasting `--minutes`, run by
`loadbearing run parallel` against the demo services on loopback, with a private
influxd. profile-api gets `--profile-pool` connections (default: the demo's
sufficient pool for 60 req/s, so the target is in a steady state and what grows, if
anything, is the controller; `--profile-pool 2` soaks the overloaded demo instead).

Every `--interval` seconds: the controller process's RSS and open file descriptors
(psutil on the CLI subprocess's pid). The load window is from one interval after
the runners were released (the phase's start in run.json; the controller's one-off
allocations at the start are behind it) to the last sample before any runner
ended; within it:

- memory flat: max RSS <= 1.10 x the window's first RSS;
- fds flat: the window's last fd count <= its first;
- no sample lost: stored requests == k6's own count (run.json), less the points InfluxDB
  merged (two requests of one series that k6 stamped in the same nanosecond are one point
  in its data model; run.json counts them as `collapsed_points`, within the run's own
  completeness tolerance); `k6_write_errors` counts the batches k6 could not write
  ("Couldn't write stats" in its logs), which would be a loss.

Prints one JSON line:
`{"bench": "soak", "minutes": ..., "rss_mb": {first, last, max}, "fds": {first, last, max},
  "stored": ..., "k6": ..., "memory_flat": ..., "fds_flat": ..., "passed": ...}`.
`python -m bench.soak --minutes 0.5` is the short form CI runs (tests/bench).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness import base_parser, emit, exit_on_term, log, rnd
from bench.plans import demo_plan
from bench.runs import session
from bench.servers import demo_services
from demo.plan import sufficient_pool

RSS_TOLERANCE = 0.10


def load_window(samples: list[dict[str, float]], runners: int, started_at: float | None,
                interval_s: float) -> list[dict[str, float]]:
    """Samples from one interval after the runners were released (the phase's start in run.json)
    until the last sample at which every runner still ran."""
    full = [i for i, s in enumerate(samples) if s["k6"] >= runners]
    if not full:
        return []
    start = full[0]
    if started_at is not None:
        start = next((i for i in full if samples[i]["wall"] >= started_at + interval_s), full[-1])
    return samples[start:full[-1] + 1]


def k6_write_errors(run_dir: Path | None) -> int:
    """Batches k6's InfluxDB output could not write (it logs "Couldn't write stats" and drops them)."""
    if run_dir is None:
        return 0
    return sum(log.read_text(errors="replace").count("Couldn't write stats") for log in (run_dir / "k6").glob("*.log"))


def measure(minutes: float, interval_s: float, profile_pool: int | None, keep: bool = False) -> dict[str, Any]:
    seconds = max(5, round(minutes * 60))
    pool = profile_pool if profile_pool is not None else sufficient_pool(60)
    with session("soak", "soak", keep, nginx=False) as sess, \
            demo_services(sess.root, profile_env={"DB_POOL_SIZE": str(pool)}) as (core, profile):
        plan = demo_plan(sess.root / "plan" / "plan.toml", "ci", core.url, profile.url, seconds, profile_pool=pool)
        log(f"soak: parallel strategy, demo ci plan, {seconds}s per module, profile pool {pool}")
        run = sess.run(plan, timeout_s=seconds + 300, watch_interval_s=interval_s)
    record = run.require_record()
    runners = len(record.modules) or 4
    started_ms = record.phases[0].started_ms if record.phases else None
    started_at = started_ms / 1000 if started_ms is not None else None
    window = load_window(run.watch.samples, runners, started_at, interval_s)
    if len(window) < 2:
        raise RuntimeError(f"too few samples in the load window ({len(window)}); exit {run.code}:\n{run.stderr_tail}")
    before = [s for s in run.watch.samples
              if started_at is not None and s["wall"] < started_at and s["k6"] >= runners]  # initialised, paused
    rss = [s["rss"] / 2**20 for s in window]
    fds = [int(s["fds"]) for s in window]
    memory_flat = max(rss) <= rss[0] * (1 + RSS_TOLERANCE)
    fds_flat = fds[-1] <= fds[0]
    stored, k6 = run.stored, run.k6_requests
    metrics = record.metrics
    complete = bool(metrics is not None and metrics.complete)
    collapsed = (metrics.collapsed_points or 0) if metrics is not None else 0
    lost = k6 - stored - collapsed
    write_errors = k6_write_errors(run.run_dir)
    return {
        "bench": "soak",
        "minutes": minutes,
        "rss_mb": {"first": rnd(rss[0], 1), "last": rnd(rss[-1], 1), "max": rnd(max(rss), 1)},
        "rss_growth": rnd(rss[-1] / rss[0] - 1, 4),
        "rss_mb_before_release": rnd(before[-1]["rss"] / 2**20, 1) if before else None,
        "fds": {"first": fds[0], "last": fds[-1], "max": max(fds)},
        "stored": stored,
        "k6": k6,
        "stored_ratio": rnd(stored / k6, 4) if k6 else None,
        "complete": complete,
        "collapsed_points": collapsed,
        "near_coincident_pairs": metrics.near_coincident_pairs if metrics is not None else None,
        "lost": lost,
        "k6_write_errors": write_errors,
        "memory_flat": memory_flat,
        "fds_flat": fds_flat,
        "goal": f"RSS within {RSS_TOLERANCE:.0%}, no fd growth, stored + collapsed points == k6",
        "passed": (memory_flat and fds_flat and complete and lost == 0 and not write_errors and k6 > 0
                   and run.code in (0, 1)),
        "exit_code": run.code,
        "status": record.status,
        "profile_pool": pool,
        "samples": len(window),
        "rss_mb_series": [rnd(v, 1) for v in rss[::max(1, len(rss) // 20)]],
        "fds_series": fds[::max(1, len(fds) // 20)],
        "interval_s": interval_s,
        "peak_rss_mb_whole_run": rnd(run.watch.peak_rss_mb, 1),
        "controller_cpu_s": rnd(run.watch.own_cpu_s, 2),
        "load_before": sess.load_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=None, help="seconds between samples (default: 5, "
                        "or 1 for runs under 2 minutes)")
    parser.add_argument("--profile-pool", type=int, default=None)
    args = parser.parse_args(argv)
    exit_on_term()
    minutes = 0.5 if args.quick else args.minutes
    interval = args.interval or (1.0 if minutes < 2 else 5.0)
    emit(measure(minutes, interval, args.profile_pool, args.keep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
