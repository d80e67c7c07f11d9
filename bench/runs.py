"""Two ways to run k6 load, and a benchmark's session:

- `run_loadbearing(...)` runs the real CLI (`python -m loadbearing.cli run ...`) as a
  subprocess and watches it (controller RSS and open fds, its k6 children's CPU)
  with psutil; returns the exit code, the run directory and its run record (`LbRun`).
- `run_bare_k6(...)` runs k6 directly, with the exact config, tags and env the
  controller would give it (from `runners.k6`), with or without `--out influxdb`;
  returns k6's own request count and the CPU seconds it used (from wait4's rusage).
- `session(...)`: a temp dir, the servers, a fresh database and the CLI's environment
  for the length of a block.

Rates are requests / the scenario's planned duration: exact for constant-vus and
constant-arrival-rate, whose iterations stop starting at the end of the duration,
and the same measure for every variant being compared.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import PY, REPO_ROOT, log, workdir
from bench.machine import load_now
from bench.nginx import Nginx
from bench.servers import new_db, services
from bench.watch import Watch
from core.influx import InfluxClient
from core.measurements import run_tags
from core.plan import load_plan
from core.rundir import K6Summary, RunDir, RunRecord, runner_name
from runners import k6 as k6mod
from runners.allowlist import k6_block_options
from runners.children import die_with_parent
from runners.influxd import Influxd


def bench_env(state: Path, **extra: str) -> dict[str, str]:
    """Environment for the CLI and k6: no inherited K6_* or store settings, a private state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADBEARING_", "K6_"))}
    env["LOADBEARING_STATE_DIR"] = str(state)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["COLUMNS"] = "120"
    env.update(extra)
    return env


@dataclass
class LbRun:
    code: int
    run_dir: Path | None
    record: RunRecord | None
    stderr_tail: str
    watch: Watch
    wall_s: float
    cpu_s: float  # controller + its k6 runners, user + system

    def summaries(self) -> dict[str, K6Summary]:
        """Per runner: k6's own numbers from its summary export."""
        return RunDir(self.run_dir).summaries() if self.run_dir is not None else {}

    @property
    def k6_dropped(self) -> int:
        """Iterations k6 itself dropped (every runner's summary)."""
        return sum(s.dropped for s in self.summaries().values())

    def require_record(self) -> RunRecord:
        if self.record is None:
            raise RuntimeError(f"loadbearing exited {self.code} without a run record:\n{self.stderr_tail}")
        return self.record

    def require_numbers(self, ok_codes: tuple[int, ...] = (0, 1)) -> None:
        """Raise unless the run finished with stored and k6 counts: an exit code in `ok_codes`, or
        exit 4 whose only cause is metrics_incomplete (samples lost: a figure to report, not a crash)."""
        record = self.require_record()
        lost_only = bool(record.errors) and all(e.startswith("metrics_incomplete") for e in record.errors)
        if record.metrics is None or (self.code not in ok_codes and not (self.code == 4 and lost_only)):
            raise RuntimeError(f"loadbearing exited {self.code}:\n{self.stderr_tail}")

    @property
    def testid(self) -> str:
        return self.require_record().testid

    @property
    def complete(self) -> bool:
        """The stored samples hold every request k6 counted (within the merge tolerance)."""
        metrics = self.record.metrics if self.record is not None else None
        return bool(metrics and metrics.complete)

    @property
    def lost(self) -> int:
        """Requests k6 counted that InfluxDB does not hold."""
        return max(0, self.k6_requests - self.stored)

    @property
    def stored(self) -> int:
        metrics = self.record.metrics if self.record is not None else None
        return int(metrics.stored_requests or 0) if metrics else 0

    @property
    def k6_requests(self) -> int:
        metrics = self.record.metrics if self.record is not None else None
        return int(metrics.k6_requests) if metrics else 0


def run_loadbearing(plan: Path, strategy: str, runners: int, influx: InfluxClient, out_dir: Path,
                    env: dict[str, str], *, timeout_s: float = 600.0, watch_interval_s: float = 0.5) -> LbRun:
    """`loadbearing run STRATEGY --plan PLAN --runners N` as a subprocess, watched with psutil.

    `cpu_s` of the result is the kernel's count for the controller and every k6 it
    reaped (wait4's rusage covers waited-for descendants).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"cli-{uuid.uuid4().hex[:6]}"
    args = [PY, "-m", "loadbearing.cli", "run", strategy, "--plan", str(plan), "--runners", str(runners),
            "--influx-url", f"{influx.url}/{influx.db}", "--out-dir", str(out_dir)]
    t0 = time.monotonic()
    with open(f"{stem}.stdout", "wb") as out, open(f"{stem}.stderr", "wb") as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                cwd=str(REPO_ROOT), preexec_fn=die_with_parent)
        with Watch(proc.pid, watch_interval_s) as watch:
            code, cpu = _wait_rusage(proc, timeout_s)
    wall = time.monotonic() - t0
    lines = Path(f"{stem}.stdout").read_text(errors="replace").strip().splitlines()
    run_dir = Path(lines[-1]) if lines else None
    record: RunRecord | None = None
    if run_dir is not None and RunDir(run_dir).record_path.is_file():
        record = RunDir(run_dir).read_record()
    tail = Path(f"{stem}.stderr").read_text(errors="replace")[-2000:]
    return LbRun(code, run_dir, record, tail, watch, wall, cpu)


@dataclass
class BareRun:
    requests: int
    dropped: int
    cpu_s: float
    wall_s: float
    code: int
    testid: str
    summary: dict[str, Any]


def run_bare_k6(plan_path: Path, module_name: str, work_dir: Path, *, influx: InfluxClient | None,
                env_overrides: dict[str, str] | None = None, config_overrides: dict[str, Any] | None = None,
                other_out: str | None = None, timeout_s: float = 300.0, script: Path | None = None) -> BareRun:
    """k6 alone, with the config, tags and env the controller would give runner 0 of 1.

    `influx=None`: no InfluxDB output. Otherwise `--out influxdb` to that store, exactly
    as loadbearing does. `other_out`: another `--out` value (e.g. 'csv=FILE'). `script`:
    the file k6 runs instead of the module's script (e.g. its generated entry script).
    CPU seconds come from the kernel (wait4's rusage).
    """
    plan = load_plan(plan_path)
    module = plan.module(module_name)
    cfg = k6mod.config(module, k6_block_options(plan.target.allow_hosts))
    cfg.update(config_overrides or {})
    testid = f"bare-{uuid.uuid4().hex[:10]}"
    work_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = work_dir / f"{testid}.config.json"
    cfg_path.write_text(json.dumps(cfg))
    summary_path = work_dir / f"{testid}.summary.json"
    tags = run_tags(testid, "parallel", module.name, module.service or "default", runner_name(module.name, 0))
    args = k6mod.run_args(config_path=str(cfg_path), script=str(script or plan.script_path(module)),
                          summary_path=str(summary_path), segment="0:1", sequence="0,1", tags=tags,
                          influx_out=influx.k6_output_url() if influx else None, address=None, paused=False)
    if other_out:
        args[-1:-1] = ["--out", other_out]
    env = {k: v for k, v in os.environ.items() if not k.startswith("K6_")}
    env.update(k6mod.runner_env(plan.base_url(module), influx.k6_env() if influx else None))
    env.update(env_overrides or {})
    t0 = time.monotonic()
    with open(work_dir / f"{testid}.log", "wb") as logf:
        proc = subprocess.Popen([k6mod.k6_binary(), *args], stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=str(plan.script_path(module).parent),
                                preexec_fn=die_with_parent)
    code, usage = _wait_rusage(proc, timeout_s)
    wall = time.monotonic() - t0
    summary: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        summary = json.loads(summary_path.read_text())
    counted = K6Summary.from_export(tags["runner"], summary)
    return BareRun(requests=counted.requests, dropped=counted.dropped, cpu_s=usage, wall_s=wall, code=code,
                   testid=testid, summary=summary)


def _wait_rusage(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, float]:
    """Wait for a child; return (exit code, user+system CPU seconds of it and its reaped children).

    Past `timeout_s` the child gets SIGINT, then SIGKILL 30 s later.
    """
    deadline = time.monotonic() + timeout_s
    interrupted = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            if not interrupted:
                log(f"pid {proc.pid} ran past {timeout_s:.0f}s: SIGINT")
                proc.send_signal(signal.SIGINT)
                interrupted, deadline = True, time.monotonic() + 30
            else:
                proc.kill()
        time.sleep(0.05)


@dataclass
class Session:
    """A benchmark's private world for the length of a `session` block.

    `root`: its temp dir; `nginx`: the fast target (None unless asked for); `influxd`
    and `client`: a private influxd and a fresh database in it; `env`: the CLI's
    environment (`bench_env`, state under `root/state`); `load_before`: the machine's
    load measured before any of it started.
    """

    root: Path
    nginx: Nginx | None
    influxd: Influxd
    client: InfluxClient
    env: dict[str, str]
    load_before: dict[str, Any]

    @property
    def target_url(self) -> str:
        """The fast target's URL; raises when the session started none."""
        if self.nginx is None:
            raise RuntimeError("this session started no fast target (nginx=False)")
        return self.nginx.url

    def run(self, plan: Path, runners: int = 1, *, strategy: str = "parallel", timeout_s: float = 600.0,
            watch_interval_s: float = 0.5) -> LbRun:
        """`run_loadbearing` of `plan` against this session's database, run dirs under `root/runs`."""
        return run_loadbearing(plan, strategy, runners, self.client, self.root / "runs", self.env,
                               timeout_s=timeout_s, watch_interval_s=watch_interval_s)


@contextlib.contextmanager
def session(name: str, db_prefix: str, keep: bool = False, *, nginx: bool = True) -> Iterator[Session]:
    """The machine's load, then a `workdir(name, keep)` with `services` in it (the fast target
    only if `nginx`, always a private influxd) and a fresh database named `db_prefix_<hex>`;
    every server stops and the dir is removed (unless `keep`) when the block ends."""
    load_before = load_now()
    with workdir(name, keep) as root, services(root, nginx=nginx) as (ng, ix):
        assert ix is not None
        yield Session(root=root, nginx=ng, influxd=ix, client=new_db(ix, db_prefix),
                      env=bench_env(root / "state"), load_before=load_before)
