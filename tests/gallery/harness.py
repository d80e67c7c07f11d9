"""Run one gallery case: its servers, a plan for them, the real controller, the recommendations.

`run_case(case, influx, root)` starts every server of the case as its own process on a
free loopback port, writes the plan (the services' declared facts, `metrics_url` where
the case exposes metrics) and the plain k6 scripts, runs the parallel strategy through
`runners.controller.run` (so the entry script, the scraping and the stored samples are
the ones a user gets), computes the recommendations, and stops the servers whatever
happens. Returns (document, run directory).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.influx import InfluxClient
from core.state import free_port
from policies import recommend_run
from runners.children import die_with_parent, wait_answering
from runners.controller import RunOptions, prepare
from runners.controller import run as run_strategy
from tests.gallery.cases import Case

REPO = Path(__file__).resolve().parents[2]


def start_server(kind: str, params: dict[str, Any], service: str, port: int,
                 workdir: Path) -> subprocess.Popen[bytes]:
    """Start one gallery server (`tests.gallery.servers KIND`) on 127.0.0.1:`port` as its own
    process (it dies with this one), its log in `workdir`; returns once it answers (`silent`:
    once it accepts connections)."""
    params = dict(params)
    if kind == "pool":
        params.setdefault("db", str(workdir / f"{service}.sqlite3"))
    log = open(workdir / f"{service}.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen([sys.executable, "-m", "tests.gallery.servers", kind, str(port),
                             json.dumps(params)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=REPO, preexec_fn=die_with_parent)
    log.close()
    url = f"http://127.0.0.1:{port}"
    if kind == "silent":
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return proc
            except OSError:
                time.sleep(0.1)
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{service} did not listen on {port}")
    problem = wait_answering(proc, f"{url}/health", 200, 30.0)
    if problem:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{service} did not start: {problem}")
    return proc


def stop_servers(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every server, then SIGKILL whichever is still there after 10 s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _plan(case: Case, ports: dict[str, int], plan_dir: Path) -> Path:
    (plan_dir / "modules").mkdir(parents=True, exist_ok=True)
    first = case.servers[0].service
    lines = [f'name = "gallery-{case.name}"', "[target]", f'base_url = "http://127.0.0.1:{ports[first]}"',
             'allow_hosts = ["127.0.0.1"]', "[slo]", f"p95_ms = {case.slo_p95_ms}", "max_error_rate = 0.01"]
    for s in case.servers:
        lines += [f"[services.{s.service}]", f'base_url = "http://127.0.0.1:{ports[s.service]}"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in s.settings.items()]
        if s.metrics:
            lines.append(f'metrics_url = "http://127.0.0.1:{ports[s.service]}/metrics"')
    for load in case.loads:
        (plan_dir / "modules" / f"{load.module}.js").write_text(load.script)
        lines += ["[[modules]]", f'name = "{load.module}"', f'script = "modules/{load.module}.js"',
                  f'service = "{load.service}"', f"rate = {load.rate}", f"max_vus = {load.max_vus}",
                  f'duration = "{load.seconds}s"']
    path = plan_dir / "plan.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_case(case: Case, influx: InfluxClient, root: Path) -> tuple[dict[str, Any], Path]:
    workdir = root / case.name
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {s.service: free_port() for s in case.servers}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for s in case.servers:
            procs.append(start_server(s.kind, s.params, s.service, ports[s.service], workdir))
        plan = _plan(case, ports, workdir / "plan")
        rd, _code = run_strategy(prepare(RunOptions(plan_path=plan, strategy="parallel", out_dir=workdir / "runs")),
                                 influx)
        run_dir = rd.path
    finally:
        stop_servers(procs)
    return recommend_run(run_dir, influx), run_dir

