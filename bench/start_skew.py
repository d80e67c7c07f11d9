"""Start skew: how close together do 16 k6 runners start sending load?

Parallel strategy, 4 modules x 4 runners (16 k6 processes, all initialised paused),
against a private nginx. For each run, the first stored `http_reqs` sample of every
runner (InfluxDB `first()` grouped by the `runner` tag, microsecond timestamps);
the skew is the spread max - min of those 16 timestamps. Median of 5 runs of each:

- `together`   `loadbearing run parallel --runners 4` (the controller's
  `resume_together`: connections opened first, one barrier releases all PATCHes);
- `sequential` the same runners started by the process backend, resumed one after
  another (one PATCH at a time over already-open connections: the fastest
  one-by-one resume there is, so the difference is only the sequence);
- `shell_background` for reference, what the field report's `run_all_parallel.sh` does: 16
  `k6 run ... &` started one after another, not paused (each initialises its VUs
  after it starts).

Each runner has 1 VU that sleeps 200 ms between requests, so the CPU is not the
thing being measured. Prints one JSON line:
`{"bench": "start_skew", "median_ms": ..., "sequential_median_ms": ...}`. Goal: <= 50 ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import base_parser, emit, exit_on_term, log, median, rnd, workdir
from bench.machine import load_now
from bench.plans import write_plan
from bench.runs import bench_env, run_loadbearing
from bench.servers import new_db, services
from core import measurements as names
from core.errors import RunError
from core.influx import InfluxClient, quote_literal
from core.plan import load_plan
from core.rundir import RunDir, runner_name
from runners import k6 as k6mod
from runners.allowlist import k6_block_options
from runners.backends import Runner, RunnerSpec
from runners.backends.process import ProcessBackend
from runners.children import die_with_parent
from runners.fleet import segment, segment_sequence

GOAL_MS = 50.0
MAX_ATTEMPTS = 3
SLOW_SCRIPT = """\
import http from 'k6/http';
import { sleep } from 'k6';
export default function () {
  http.get(`${__ENV.BASE_URL}/`, { tags: { name: 'skew_get' } });
  sleep(0.2);
}
"""


def first_samples(client: InfluxClient, testid: str) -> dict[str, float]:
    """Per runner: the timestamp (epoch seconds) of its first stored http_reqs sample."""
    q = (f'SELECT first("value") FROM "{names.HTTP_REQS}" WHERE "{names.TESTID}" = {quote_literal(testid)} '
         f'GROUP BY "{names.RUNNER}"')
    results = client.query(q, epoch="u")
    out: dict[str, float] = {}
    for s in results[0].get("series", []) if results else []:
        out[s["tags"][names.RUNNER]] = s["values"][0][0] / 1e6
    return out


def spread_ms(firsts: dict[str, float]) -> float:
    return (max(firsts.values()) - min(firsts.values())) * 1000 if firsts else float("nan")


def _specs(plan_path: Path, client: InfluxClient, runners: int, run_dir: Path, testid: str) -> list[RunnerSpec]:
    """The runner specs the controller would build for the plan's modules x `runners`."""
    plan = load_plan(plan_path)
    block = k6_block_options(plan.target.allow_hosts)
    specs = []
    for module in plan.modules:
        env = k6mod.runner_env(plan.base_url(module), client.k6_env())
        for i in range(runners):
            specs.append(RunnerSpec(
                run_id=testid, module=module.name, service=module.service or "default", index=i, count=runners,
                script=plan.script_path(module), config=k6mod.config(module, block),
                tags=names.run_tags(testid, "parallel", module.name, module.service or "default",
                                    runner_name(module.name, i)),
                env=env, influx_out=client.k6_output_url(), run_dir=RunDir(run_dir)))
    return specs


def sequential_run(plan_path: Path, client: InfluxClient, runners: int, run_dir: Path) -> tuple[str, dict[str, float]]:
    """The plan's modules x `runners`, started paused by the process backend, resumed one by one."""
    testid = f"seqskew-{time.time_ns()}"
    specs = _specs(plan_path, client, runners, run_dir, testid)
    backend = ProcessBackend()
    live: list[Runner[Any]] = []
    try:
        live = backend.initialize(specs)
        _resume_one_by_one(live)
        deadline = time.monotonic() + 120
        while not all(c is not None for c in backend.poll(live)):
            if time.monotonic() > deadline:
                raise RuntimeError("sequential-resume runners did not finish within 120 s")
            time.sleep(0.05)
    finally:
        backend.stop(live)
    bad = [r.spec.name for r in live if r.exit_code not in (0, 99)]
    if bad:
        raise RuntimeError(f"sequential-resume runners failed: {bad}")
    return testid, first_samples(client, testid)


def shell_background_run(plan_path: Path, client: InfluxClient, runners: int,
                         run_dir: Path) -> tuple[str, dict[str, float]]:
    """The same runners as `k6 run ... &`, one after another, without --paused."""
    testid = f"shellskew-{time.time_ns()}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for spec in _specs(plan_path, client, runners, run_dir, testid):
            files = spec.files
            files.config.parent.mkdir(parents=True, exist_ok=True)
            files.config.write_text(json.dumps(spec.config))
            args = k6mod.run_args(config_path=str(files.config), script=str(spec.script),
                                  summary_path=str(files.summary), segment=segment(spec.index, spec.count),
                                  sequence=segment_sequence(spec.count), tags=spec.tags,
                                  influx_out=spec.influx_out, address=None, paused=False)
            env = {k: v for k, v in os.environ.items() if not k.startswith("K6_")}
            env.update(spec.env)
            procs.append(subprocess.Popen([k6mod.k6_binary(), *args], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
                                          cwd=str(spec.script.parent), preexec_fn=die_with_parent))
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if any(c not in (0, 99) for c in codes):
        raise RuntimeError(f"shell-style runners failed: exit codes {codes}")
    return testid, first_samples(client, testid)


def _resume_one_by_one(runners: list[Runner[Any]]) -> None:
    body = {"data": {"type": "status", "id": "default", "attributes": {"paused": False}}}
    clients = [httpx.Client(timeout=10.0) for _ in runners]
    try:
        for r, c in zip(runners, clients, strict=True):
            c.get(f"{r.api}/v1/status")  # connections open before the first resume, as resume_together does
        for r, c in zip(runners, clients, strict=True):
            c.patch(f"{r.api}/v1/status", json=body).raise_for_status()
            r.started_at = time.time()
    finally:
        for c in clients:
            c.close()


def _one_run(variant: str, plan: Path, client: InfluxClient, runners: int, root: Path, env: dict[str, str],
             i: int) -> dict[str, float]:
    if variant == "together":
        run = run_loadbearing(plan, "parallel", runners, client, root / "runs", env)
        run.require_numbers()
        return first_samples(client, run.testid)
    if variant == "sequential":
        return sequential_run(plan, client, runners, root / "seq" / f"{i}-{time.time_ns()}")[1]
    return shell_background_run(plan, client, runners, root / "shell" / f"{i}-{time.time_ns()}")[1]


def measure(runs: int, modules: int, runners: int, seconds: int, keep: bool = False) -> dict[str, Any]:
    spreads: dict[str, list[float]] = {"together": [], "sequential": [], "shell_background": []}
    failures: list[dict[str, Any]] = []
    load_before = load_now()
    with workdir("start_skew", keep) as root, services(root) as (nginx, influxd):
        assert nginx is not None and influxd is not None
        os.environ["LOADBEARING_STATE_DIR"] = str(root / "state")  # the in-process backend's pid files
        mods = [{"name": f"m{i}", "vus": runners, "duration": f"{seconds}s", "script": "modules/skew.js"}
                for i in range(modules)]
        (root / "plan" / "modules").mkdir(parents=True)
        (root / "plan" / "modules" / "skew.js").write_text(SLOW_SCRIPT)
        plan = write_plan(root / "plan", nginx.url, mods)
        client = new_db(influxd, "skew")
        env = bench_env(root / "state")
        for i in range(runs):
            variants = list(spreads)
            for variant in variants[i % 3:] + variants[:i % 3]:
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    try:
                        firsts = _one_run(variant, plan, client, runners, root, env, i)
                        break
                    except (RuntimeError, RunError) as exc:
                        # A run that could not start is a finding, not a reason to lose the benchmark.
                        failures.append({"variant": variant, "attempt": attempt,
                                         "error": " ".join(str(exc).split())[-300:]})
                        log(f"run {i + 1}/{runs} {variant} attempt {attempt} failed: {failures[-1]['error']}")
                        if attempt == MAX_ATTEMPTS:
                            raise
                if len(firsts) != modules * runners:
                    raise RuntimeError(f"{variant}: first samples from {len(firsts)} of {modules * runners} runners")
                spreads[variant].append(spread_ms(firsts))
                log(f"run {i + 1}/{runs} {variant}: spread {spreads[variant][-1]:.1f} ms over {len(firsts)} runners")
    med = median(spreads["together"])
    return {
        "bench": "start_skew",
        "median_ms": rnd(med, 1),
        "sequential_median_ms": rnd(median(spreads["sequential"]), 1),
        "shell_background_median_ms": rnd(median(spreads["shell_background"]), 1),
        "goal": f"median_ms <= {GOAL_MS:g}",
        "passed": med <= GOAL_MS,
        "runs_ms": {k: [rnd(v, 1) for v in vals] for k, vals in spreads.items()},
        "start_failures": failures,
        "k6_processes": modules * runners,
        "load_before": load_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modules", type=int, default=4)
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=2)
    args = parser.parse_args(argv)
    exit_on_term()
    if args.quick:
        emit(measure(1, 2, 2, 1, args.keep))
    else:
        emit(measure(args.runs, args.modules, args.runners, args.seconds, args.keep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
