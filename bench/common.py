"""What every benchmark shares: the fast target (a private nginx), a private influxd,
the demo's services and plans, the machine's description, plans and k6 scripts,
a `session` (temp dir, servers, database, CLI environment), and two ways to run k6 load:

- `run_loadbearing(...)` runs the real CLI (`python -m loadbearing.cli run ...`) as a
  subprocess and watches it (controller RSS and open fds, its k6 children's CPU)
  with psutil; returns the exit code, the run directory and run.json.
- `run_bare_k6(...)` runs k6 directly, with the exact config, tags and env the
  controller would give it (from `runners.k6`), with or without `--out influxdb`;
  returns k6's own request count and the CPU seconds it used (from wait4's rusage).

Rates are requests / the scenario's planned duration: exact for constant-vus and
constant-arrival-rate, whose iterations stop starting at the end of the duration,
and the same measure for every variant being compared.

Output contract of a benchmark: exactly one JSON line on stdout (`emit`); progress
on stderr (`log`). Every process a benchmark starts is stopped by it, and dies with
it if it is killed (PR_SET_PDEATHSIG; the demo services watch their parent).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from core.influx import InfluxClient, quote_literal
from core.plan import load_plan
from core.rundir import K6Summary, RunDir, RunRecord
from core.state import free_port
from runners import k6 as k6mod
from runners.allowlist import k6_block_options
from runners.children import die_with_parent, wait_answering
from runners.influxd import Influxd, influxd_binary, start_influxd

if TYPE_CHECKING:
    from demo.launcher import ServiceHandle

REPO_ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
NGINX_BODY = '{"ok":true}'
_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress on stderr, prefixed with the benchmark's elapsed time."""
    sys.stderr.write(f"[{time.monotonic() - _T0:6.1f}s] {msg}\n")
    sys.stderr.flush()


def emit(result: dict[str, Any]) -> None:
    """The benchmark's single stdout line."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# -- the fast target: a private nginx ------------------------------------------------------

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {root}/tmp/body;
  proxy_temp_path {root}/tmp/proxy;
  fastcgi_temp_path {root}/tmp/fastcgi;
  uwsgi_temp_path {root}/tmp/uwsgi;
  scgi_temp_path {root}/tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      default_type application/json;
      return 200 '{body}';
    }}
  }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@dataclass
class Nginx:
    """A private nginx (1 worker, no access log) answering 200 on every path of 127.0.0.1:port."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The master and its worker(s)."""
        try:
            return [self.proc.pid, *(c.pid for c in psutil.Process(self.proc.pid).children())]
        except psutil.Error:
            return [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(root: Path, body: str = NGINX_BODY) -> Nginx:
    """Start nginx with its own prefix, config and temp dirs under `root`; wait until it answers."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (Debian package 'nginx-light' or 'nginx')")
    root.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    last = ""
    for _ in range(3):
        port = free_port()
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, port=port, body=body.replace("'", "\\'")))
        proc = subprocess.Popen([binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=die_with_parent)
        server = Nginx(root=root, port=port, proc=proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if httpx.get(server.url + "/", timeout=1.0).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        server.stop()
        last = (proc.stderr.read().decode(errors="replace") if proc.stderr else "")[-500:]
        last += (root / "error.log").read_text(errors="replace")[-500:] if (root / "error.log").exists() else ""
    raise RuntimeError(f"nginx did not start: {last}")


def start_influx(root: Path, wait_s: float = 30.0) -> Influxd:
    """A private influxd under `root` on a free loopback port, with the config of
    `runners.influxd` (max-body-size 0, loopback only), that dies with this process."""
    return start_influxd(root, wait_s=wait_s, tied=True)


@dataclass
class PromRwReceiver:
    """`bench.promrw` in a child process (its CPU counted apart from the benchmark's)."""

    url: str
    proc: subprocess.Popen[bytes]

    def summary(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/summary", timeout=10.0).json())

    def cpu_s(self) -> float:
        return cpu_seconds([self.proc.pid])


@contextlib.contextmanager
def promrw_receiver(wait_s: float = 15.0) -> Iterator[PromRwReceiver]:
    """A Prometheus remote-write receiver on a free loopback port, stopped on exit."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.promrw", "--port", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent)
    receiver = PromRwReceiver(f"http://127.0.0.1:{port}", proc)
    try:
        problem = wait_answering(proc, f"{receiver.url}/summary", 200, wait_s)
        if problem is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None and proc.stderr else ""
            raise RuntimeError(f"bench.promrw {problem}: {err[-800:]}")
        yield receiver
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def new_db(influx: Influxd, prefix: str) -> InfluxClient:
    client = InfluxClient.from_url(influx.url, db=f"{prefix}_{uuid.uuid4().hex[:8]}")
    client.ensure_db()
    return client


def stored_count(client: InfluxClient, testid: str, measurement: str = "http_reqs") -> int:
    """How many samples of `measurement` InfluxDB holds for `testid` (counted on the server)."""
    rows = client.rows(f'SELECT count("value") FROM "{measurement}" WHERE "testid" = {quote_literal(testid)}')
    return int(rows[0]["count"]) if rows else 0


# -- the machine ---------------------------------------------------------------------------

def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def cpu_model() -> str:
    try:
        for raw in Path("/proc/cpuinfo").read_text().splitlines():
            if raw.lower().startswith("model name"):
                return raw.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """The machine a figure was measured on: CPU, cores, memory, kernel and tool versions."""
    influxd = influxd_binary()
    nginx = nginx_binary()
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "k6": _first_line([k6mod.k6_binary(), "version"]),
        "influxdb": _first_line([influxd, "version"]) if influxd else "not installed",
        "nginx": _first_line([nginx, "-v"]) if nginx else "not installed",
    }


def load_now(interval_s: float = 0.3) -> dict[str, Any]:
    """The load on the machine right now (others' processes make figures noisy).

    `cpu_pct_1s`: the share of all cores busy over `interval_s` (1 s by default in run_all).
    """
    one, five, _ = os.getloadavg()
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2),
            "cpu_pct_1s": psutil.cpu_percent(interval=interval_s)}


# -- plans and scripts -------------------------------------------------------------------

FAST_SCRIPT = """\
import http from 'k6/http';
export default function () {
  http.get(`${__ENV.BASE_URL}/`, { tags: { name: 'fast_get' } });
}
"""


def write_plan(dir: Path, base_url: str, modules: list[dict[str, Any]], name: str = "bench") -> Path:
    """A plan with one [[modules]] table per dict (script: the fast script unless given)."""
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "modules").mkdir(exist_ok=True)
    out = [f'name = "{name}"', "[target]", f'base_url = "{base_url}"', 'allow_hosts = ["127.0.0.1", "localhost"]',
           "[slo]", "p95_ms = 500", "max_error_rate = 0.01"]
    for m in modules:
        m = dict(m)
        if "script" not in m:
            script = dir / "modules" / f"{m['name']}.js"
            script.write_text(FAST_SCRIPT)
            m["script"] = f"modules/{m['name']}.js"
        out.append("[[modules]]")
        out += [f"{k} = {json.dumps(v)}" for k, v in m.items()]
    plan = dir / "plan.toml"
    plan.write_text("\n".join(out) + "\n")
    return plan


def bench_env(state: Path, **extra: str) -> dict[str, str]:
    """Environment for the CLI and k6: no inherited K6_* or store settings, a private state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADBEARING_", "K6_"))}
    env["LOADBEARING_STATE_DIR"] = str(state)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["COLUMNS"] = "120"
    env.update(extra)
    return env


# -- watching processes ------------------------------------------------------------------

@dataclass
class ChildCpu:
    name: str
    first_cpu: float
    last_cpu: float
    first_t: float
    last_t: float
    peak_pct: float = 0.0
    pcts: list[float] = field(default_factory=list)  # % of one core between consecutive samples

    @property
    def p90_pct(self) -> float:
        if not self.pcts:
            return 0.0
        s = sorted(self.pcts)
        return s[min(len(s) - 1, int(0.9 * len(s)))]

    @property
    def cpu_s(self) -> float:
        return self.last_cpu - self.first_cpu

    @property
    def mean_pct(self) -> float:
        span = self.last_t - self.first_t
        return 100.0 * self.cpu_s / span if span > 0 else 0.0


@dataclass
class Watch:
    """Samples a process (RSS, open fds, CPU) and its k6 runners (CPU) every `interval_s`.

    A k6 runner is a k6 descendant with a `--tag runner=...` argument; `samples[i]["k6"]`
    counts the runners alive at sample i.
    """

    pid: int
    interval_s: float = 0.5
    samples: list[dict[str, float]] = field(default_factory=list)
    k6: dict[int, ChildCpu] = field(default_factory=dict)
    machine_cpu: list[float] = field(default_factory=list)
    own_cpu_s: float = 0.0  # the watched process's own CPU seconds (last sample)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _procs: dict[int, psutil.Process] = field(default_factory=dict)

    def __enter__(self) -> Watch:
        psutil.cpu_percent(interval=None)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        t0 = time.monotonic()
        try:
            me = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                with me.oneshot():
                    rss = me.memory_info().rss
                    fds = me.num_fds()
                    own = me.cpu_times()
                children = me.children(recursive=True)
            except psutil.Error:
                return
            now = time.monotonic()
            self.own_cpu_s = own.user + own.system
            runners = 0
            self.machine_cpu.append(psutil.cpu_percent(interval=None))
            for c in children:
                if not self._is_k6(c):
                    continue
                try:
                    proc = self._procs.setdefault(c.pid, c)
                    times = proc.cpu_times()
                    pct = proc.cpu_percent(interval=None)
                    label = _runner_label(proc.cmdline())
                except psutil.Error:
                    continue
                if label is None:
                    continue  # not a runner (e.g. the preflight's `k6 inspect`)
                runners += 1
                cpu = times.user + times.system
                seen = self.k6.get(c.pid)
                if seen is None:
                    self.k6[c.pid] = ChildCpu(label, cpu, cpu, now, now)
                else:
                    seen.last_cpu, seen.last_t = cpu, now
                    seen.peak_pct = max(seen.peak_pct, pct)
                    seen.pcts.append(pct)
            self.samples.append({"t": now - t0, "wall": time.time(), "rss": float(rss), "fds": float(fds), "k6": float(runners)})
            self._stop.wait(self.interval_s)

    @staticmethod
    def _is_k6(p: psutil.Process) -> bool:
        try:
            return p.name() == "k6"
        except psutil.Error:
            return False

    @property
    def peak_rss_mb(self) -> float:
        return max((s["rss"] for s in self.samples), default=0.0) / 2**20

    def machine_cpu_mean(self, skip_first: int = 2) -> float:
        vals = self.machine_cpu[skip_first:] or self.machine_cpu
        return sum(vals) / len(vals) if vals else 0.0


def _runner_label(cmdline: list[str]) -> str | None:
    """A k6 runner's `runner` tag (e.g. 'jobs-0'); None for a k6 that is not a runner."""
    for arg in cmdline:
        if arg.startswith("runner="):
            return arg.removeprefix("runner=")
    return None


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (missing ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


# -- running loadbearing -------------------------------------------------------------------

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


# -- running bare k6 -------------------------------------------------------------------------

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
                other_out: str | None = None, timeout_s: float = 300.0) -> BareRun:
    """k6 alone, with the config, tags and env the controller would give runner 0 of 1.

    `influx=None`: no InfluxDB output. Otherwise `--out influxdb` to that store, exactly
    as loadbearing does. `other_out`: another `--out` value (e.g. 'csv=FILE'). CPU
    seconds come from the kernel (wait4's rusage).
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
    tags = {"testid": testid, "strategy": "parallel", "module": module.name,
            "service": module.service or "default", "runner": f"{module.name}-0"}
    args = k6mod.run_args(config_path=str(cfg_path), script=str(plan.script_path(module)),
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
    metrics = summary.get("metrics", {})
    return BareRun(requests=int(metrics.get("http_reqs", {}).get("count", 0)),
                   dropped=int(metrics.get("dropped_iterations", {}).get("count", 0)),
                   cpu_s=usage, wall_s=wall, code=code, testid=testid, summary=summary)


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


@contextlib.contextmanager
def services(root: Path, *, nginx: bool = True, influx: bool = True) -> Iterator[tuple[Nginx | None, Influxd | None]]:
    """Start the fast target and/or a private influxd for the duration of a block."""
    ng = start_nginx(root / "nginx") if nginx else None
    try:
        ix = start_influx(root / "influxd") if influx else None
        try:
            yield ng, ix
        finally:
            if ix is not None:
                ix.stop()
    finally:
        if ng is not None:
            ng.stop()


def median(values: list[float]) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def exit_on_term() -> None:
    """SIGTERM ends a benchmark through its `finally` blocks, so its servers are stopped."""

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


def base_parser(description: str) -> Any:
    """argparse with the flags every benchmark takes (`--quick`: one short round, for the smoke test)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny mode: one round of a few seconds (smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (run dirs, logs)")
    return parser


@contextlib.contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=f"loadbearing-bench-{prefix}-"))
    try:
        yield root
    finally:
        if keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


# -- a benchmark's session ----------------------------------------------------------------

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


# -- the demo: its services and plans -------------------------------------------------------

@contextlib.contextmanager
def demo_services(root: Path,
                  profile_env: dict[str, str] | None = None) -> Iterator[tuple[ServiceHandle, ServiceHandle]]:
    """The demo's core-api and profile-api on loopback (profile-api with `profile_env` added to
    its environment, logs under `root`); both stop when the block ends."""
    from demo.launcher import start_service

    with start_service("core-api", log_path=root / "core-api.log") as core, \
            start_service("profile-api", env=profile_env, log_path=root / "profile-api.log") as profile:
        yield core, profile


def demo_plan(path: Path, scale: str, core_url: str, profile_url: str, seconds: int, *,
              profile_pool: int | None = None, vus_per_module: int | None = None) -> Path:
    """demo/plan.py's plan at `scale` written to `path`, every one of its four modules lasting
    `seconds` (and, if given, running `vus_per_module` VUs instead of the scale's)."""
    from demo.plan import plan_text

    text = plan_text(scale, core_url, profile_url, path=path, profile_pool=profile_pool)
    text, n = re.subn(r'(?m)^duration = "[^"]*"$', f'duration = "{seconds}s"', text)
    if n != 4:
        raise RuntimeError(f"the demo {scale} plan changed shape: {n} durations, expected 4")
    if vus_per_module is not None:
        text = re.sub(r"(?m)^vus = \d+$", f"vus = {vus_per_module}", text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
