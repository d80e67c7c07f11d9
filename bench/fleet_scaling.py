"""Fleet scaling: do N runners of one module deliver N times what one runner does?

One module, `loadbearing run parallel --runners N` for N = 1, 2, 4, each runner
asked for the same arrival rate (constant-arrival-rate, `--rate` iterations/s per
runner, so N runners share a module rate of N x rate through k6 execution
segments), against a private nginx that is not the bottleneck. On 2 cores the k6
processes compete for CPU, so the per-runner rate is one each can sustain; what is
measured is how exactly the fleet delivers the requested total.

efficiency_N = (delivered_N / requested_N) / (delivered_1 / requested_1)
             = rps_N / (N x rps_1), delivered = requests k6 counted (and InfluxDB stored).
Rounds alternate the order of N. Prints one JSON line:
`{"bench": "fleet_scaling", "efficiency_2": ..., "efficiency_4": ...}`. Goal: efficiency_4 >= 0.8.
"""

from __future__ import annotations

from typing import Any

from bench.harness import base_parser, emit, exit_on_term, log, rnd
from bench.plans import write_plan
from bench.runs import session

GOAL = 0.8
FLEETS = (1, 2, 4)
VUS_PER_RUNNER = 50


def measure(rounds: int, seconds: int, rate: int, keep: bool = False) -> dict[str, Any]:
    delivered = dict.fromkeys(FLEETS, 0)
    stored = dict.fromkeys(FLEETS, 0)
    dropped = dict.fromkeys(FLEETS, 0)
    requested = dict.fromkeys(FLEETS, 0)
    cpu_pct: dict[int, list[float]] = {n: [] for n in FLEETS}
    with session("fleet_scaling", "fleet", keep) as sess:
        for i in range(rounds):
            order = FLEETS if i % 2 == 0 else tuple(reversed(FLEETS))
            for n in order:
                plan = write_plan(sess.root / f"plan-{n}", sess.target_url, [
                    {"name": "fleet", "rate": rate * n, "max_vus": VUS_PER_RUNNER * n, "duration": f"{seconds}s"}])
                run = sess.run(plan, n)
                run.require_numbers()
                delivered[n] += run.k6_requests
                stored[n] += run.stored
                dropped[n] += run.k6_dropped
                requested[n] += rate * n * seconds
                cpu_pct[n] += [c.mean_pct for c in run.watch.k6.values()]
                log(f"round {i + 1}/{rounds} runners={n}: {run.k6_requests / seconds:,.0f} of "
                    f"{rate * n:,} req/s requested (dropped {run.k6_dropped})")
    share = {n: delivered[n] / requested[n] for n in FLEETS}
    eff = {n: share[n] / share[1] if share[1] else 0.0 for n in FLEETS}
    return {
        "bench": "fleet_scaling",
        "efficiency_2": rnd(eff[2]),
        "efficiency_4": rnd(eff[4]),
        "goal": f"efficiency_4 >= {GOAL}",
        "passed": eff[4] >= GOAL,
        "rate_per_runner": rate,
        "delivered_share": {str(n): rnd(share[n], 4) for n in FLEETS},
        "rps": {str(n): round(delivered[n] / (rounds * seconds), 1) for n in FLEETS},
        "requested_rps": {str(n): rate * n for n in FLEETS},
        "dropped_iterations": {str(n): dropped[n] for n in FLEETS},
        "stored_ratio": {str(n): rnd(stored[n] / delivered[n], 4) if delivered[n] else None for n in FLEETS},
        "k6_cpu_pct_per_runner": {str(n): rnd(sum(v) / len(v), 1) if v else None for n, v in cpu_pct.items()},
        "rounds": rounds,
        "seconds_per_run": seconds,
        "load_before": sess.load_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=500, help="iterations/s asked of each runner")
    args = parser.parse_args(argv)
    exit_on_term()
    if args.quick:
        emit(measure(1, 1, 100, args.keep))
    else:
        emit(measure(args.rounds, args.seconds, args.rate, args.keep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
