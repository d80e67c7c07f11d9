"""Controller overhead: the same k6 load, bare versus through `loadbearing run parallel`.

One module, one runner, constant-vus at full rate (50 VUs, no think time) against a
private nginx. Three variants per round, in an order that rotates every round:

- `k6_no_output`   bare `k6 run`, no output at all;
- `k6_same_output` bare `k6 run` with the exact config, tags, env and `--out influxdb`
  loadbearing gives its runner (loadbearing always stores samples, so this is the
  fair baseline for the controller's own cost);
- `loadbearing`    `loadbearing run parallel --runners 1` (paused start, resume
  through the REST API, live progress polling, results read back), running the same
  script as the bare variants (`key_requests = false`): the generated entry script that
  keys requests by default is k6 JavaScript per request, measured on its own by
  `bench/entry.py`; a default run costs both.

`--components` adds, in the same rotation, the runner mechanics without the controller
(process backend: paused start, REST API, resume; with and without reading the
runner's live metrics once a second as the live progress table does), to tell which part of
loadbearing costs k6 what.

Prints one JSON line:
`{"bench": "overhead", "ratio": <loadbearing rps / k6_same_output rps>,
  "ratio_vs_no_output": <loadbearing rps / k6_no_output rps>, ...}`. Goal: ratio >= 0.98.
A ratio is the median over rounds of the ratio within a round (variants run back to
back), so one round disturbed by other load does not decide it; `ratio_of_totals`
(all requests of one variant / all of the other) is reported beside it, and `rps`
per variant is total requests / total planned seconds.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import base_parser, emit, exit_on_term, log, median, rnd, workdir
from bench.machine import load_now
from bench.plans import write_plan
from bench.runs import bench_env, run_bare_k6, run_loadbearing
from bench.servers import new_db, services, stored_count
from core import measurements as names
from core.influx import InfluxClient
from core.plan import load_plan
from core.rundir import RunDir, runner_name
from runners import k6 as k6mod
from runners.allowlist import k6_block_options
from runners.backends import RunnerSpec
from runners.backends.process import ProcessBackend
from runners.progress import LIVE_METRICS, TREND_EVERY

VARIANTS = ("k6_no_output", "k6_same_output", "loadbearing")
# --components: the runner mechanics alone, in this process, through the process backend
COMPONENTS = ("paused_resumed", "paused_resumed_polled")
GOAL = 0.98


def backend_run(plan_path: Path, client: InfluxClient, run_dir: Path, poll_s: float | None) -> tuple[int, float]:
    """One runner as the controller starts it (paused, REST API, resumed), without the controller.

    `poll_s`: read the runner's live metrics that often, the way the progress table does
    (LIVE_METRICS each time, http_req_duration every TREND_EVERY-th time; None: never).
    Returns (k6's request count, CPU seconds of the k6 process from this process's reaped children).
    """
    plan = load_plan(plan_path)
    module = plan.module("fast")
    testid = f"component-{time.time_ns()}"
    spec = RunnerSpec(
        run_id=testid, module="fast", service="default", index=0, count=1, script=plan.script_path(module),
        config=k6mod.config(module, k6_block_options(plan.target.allow_hosts)),
        tags=names.run_tags(testid, "parallel", "fast", "default", runner_name("fast", 0)),
        env=k6mod.runner_env(plan.base_url(module), client.k6_env()), influx_out=client.k6_output_url(),
        run_dir=RunDir(run_dir / testid))
    backend = ProcessBackend()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    live = backend.initialize([spec])
    try:
        backend.start(live)
        next_poll, polls = 0.0, 0
        with httpx.Client(timeout=2.0) as http:
            while not all(c is not None for c in backend.poll(live)):
                if poll_s is not None and time.monotonic() >= next_poll:
                    polls += 1
                    trend = (names.HTTP_REQ_DURATION,) if polls % TREND_EVERY == 1 else ()
                    for metric in (*LIVE_METRICS, *trend):
                        with contextlib.suppress(httpx.HTTPError):
                            http.get(f"{live[0].api}/v1/metrics/{metric}")
                    next_poll = time.monotonic() + poll_s
                time.sleep(0.05)
    finally:
        backend.stop(live)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = spec.run_dir.summary(spec.name)
    if summary is None:
        raise RuntimeError(f"runner {spec.name} wrote no k6 summary ({spec.files.log})")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return summary.requests, cpu


def measure(rounds: int, seconds: int, vus: int, keep: bool = False, components: bool = False) -> dict[str, Any]:
    variants = VARIANTS + (COMPONENTS if components else ())
    requests = dict.fromkeys(variants, 0)
    cpu = dict.fromkeys(variants, 0.0)
    stored = {"k6_same_output": 0, "loadbearing": 0}
    controller_cpu_s = 0.0
    incomplete = 0
    per_round: list[dict[str, Any]] = []
    load_before = load_now()
    with workdir("overhead", keep) as root, services(root) as (nginx, influxd):
        assert nginx is not None and influxd is not None
        plan = write_plan(root / "plan", nginx.url, [{"name": "fast", "vus": vus, "duration": f"{seconds}s",
                                                      "key_requests": False}])
        client = new_db(influxd, "overhead")
        env = bench_env(root / "state")
        os.environ["LOADBEARING_STATE_DIR"] = str(root / "state")  # the in-process backend's pid files
        for i in range(rounds):
            k = i % len(variants)
            order = variants[k:] + variants[:k]
            row: dict[str, Any] = {"order": list(order)}
            for variant in order:
                if variant == "loadbearing":
                    run = run_loadbearing(plan, "parallel", 1, client, root / "runs", env)
                    run.require_numbers()
                    n = run.k6_requests
                    stored["loadbearing"] += run.stored
                    incomplete += 0 if run.complete else 1
                    cpu[variant] += run.cpu_s  # controller + k6, from the kernel
                    controller_cpu_s += run.watch.own_cpu_s
                elif variant in COMPONENTS:
                    n, used = backend_run(plan, client, root / "components",
                                          1.0 if variant == "paused_resumed_polled" else None)
                    cpu[variant] += used
                else:
                    bare = run_bare_k6(plan, "fast", root / "bare",
                                       influx=client if variant == "k6_same_output" else None)
                    if bare.code != 0:
                        raise RuntimeError(f"bare k6 exited {bare.code}")
                    n = bare.requests
                    cpu[variant] += bare.cpu_s
                    if variant == "k6_same_output":
                        stored["k6_same_output"] += stored_count(client, bare.testid)
                requests[variant] += n
                row[variant] = round(n / seconds, 1)
                log(f"round {i + 1}/{rounds} {variant}: {n / seconds:,.0f} req/s")
            per_round.append(row)
    total_s = rounds * seconds
    rps = {v: round(requests[v] / total_s, 1) for v in variants}
    per_1k = {v: rnd(1000 * cpu[v] / requests[v], 4) if requests[v] else None for v in variants}
    # Each round measures the variants back to back: the median of the per-round ratios is the
    # estimate least moved by a burst of other load in one round; the totals' ratio is kept beside it.
    ratio = median([row["loadbearing"] / row["k6_same_output"] for row in per_round if row["k6_same_output"]])
    ratio_plain = median([row["loadbearing"] / row["k6_no_output"] for row in per_round if row["k6_no_output"]])
    ratio_totals = requests["loadbearing"] / requests["k6_same_output"] if requests["k6_same_output"] else 0.0
    return {
        "bench": "overhead",
        "ratio": rnd(ratio),
        "ratio_vs_no_output": rnd(ratio_plain),
        "ratio_of_totals": rnd(ratio_totals),
        "round_ratios": [rnd(row["loadbearing"] / row["k6_same_output"]) if row["k6_same_output"] else None
                         for row in per_round],
        "goal": f"ratio >= {GOAL}",
        "passed": ratio >= GOAL,
        "rps": rps,
        # CPU seconds per 1000 requests (loadbearing: controller + k6): a cost measure that
        # other processes on the machine disturb far less than requests/s.
        "cpu_s_per_1k_requests": per_1k,
        "cpu_ratio": rnd(per_1k["loadbearing"] / per_1k["k6_same_output"], 3)
        if per_1k["loadbearing"] and per_1k["k6_same_output"] else None,
        "controller_cpu_s_per_run": rnd(controller_cpu_s / rounds, 2),
        "stored_ratio": {v: rnd(stored[v] / requests[v], 6) if requests[v] else None for v in stored},
        "lost_samples": {v: requests[v] - stored[v] for v in stored},
        "runs_marked_incomplete": incomplete,
        "components": {v: {"ratio": rnd(median([row[v] / row["k6_same_output"] for row in per_round])),
                           "cpu_s_per_1k_requests": per_1k[v]} for v in COMPONENTS} if components else None,
        "rounds": per_round,
        "vus": vus,
        "seconds_per_round": seconds,
        "load_before": load_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--vus", type=int, default=50)
    parser.add_argument("--components", action="store_true",
                        help="also run the runner mechanics alone (paused + resumed, with and without the "
                             "progress table's once-a-second live-metric reads) through the process backend, "
                             "without the controller")
    args = parser.parse_args(argv)
    exit_on_term()
    rounds, seconds = (1, 1) if args.quick else (args.rounds, args.seconds)
    emit(measure(rounds, seconds, args.vus, args.keep, args.components))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

