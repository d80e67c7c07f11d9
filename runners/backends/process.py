"""The `process` backend: each runner is a local k6 process on loopback.

Runners start `--paused` with their own REST API port (127.0.0.1), and are resumed
together: every runner's HTTP connection is opened first, then one barrier releases
all the PATCH requests at once. Each k6 gets PR_SET_PDEATHSIG, so it dies with the
controller even on SIGKILL, and a pid file, so `cleanup_stale` can find any that
did not.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from core.errors import RunError
from core.influx import InfluxClient
from core.plan import Plan
from core.rundir import RunDir
from core.state import free_api_port, pid_dir, state_dir
from runners import k6
from runners.backends import Fleet, Runner, RunnerSpec, fixed_fleet
from runners.children import ProcessIdentity, die_with_parent
from runners.fleet import segment, segment_sequence
from runners.influxd import pid_alive
from runners.strategies import Phase

ProcessRunner = Runner[subprocess.Popen[bytes]]  # a local k6 process

READY_TIMEOUT_S = 120.0
PAUSED_BEFORE_RUN = 4  # k6's execution status once VUs are initialised and it waits (--paused)
class ProcessBackend:
    name = "process"

    def __init__(self, k6_path: str | None = None) -> None:
        self.k6_path = k6_path or k6.k6_binary()

    # -- before anything starts ---------------------------------------------------------
    def plan_fleet(self, plan: Plan, phases: list[Phase], runners: int | None) -> Fleet:
        return fixed_fleet(self.name, runners)

    def metrics_store(self, influx_url: str | None) -> InfluxClient | None:
        return None  # runners write where the controller's client points: flag, env or the local stack

    # -- initialize ------------------------------------------------------------------
    def initialize(self, specs: list[RunnerSpec]) -> list[ProcessRunner]:
        runners: list[ProcessRunner] = []
        try:
            for spec in specs:
                runners.append(self._spawn(spec))
            self._wait_ready(runners)
        except BaseException:
            self.stop(runners, grace_s=2.0)
            raise
        return runners

    def _spawn(self, spec: RunnerSpec) -> ProcessRunner:
        files = spec.files
        files.config.parent.mkdir(parents=True, exist_ok=True)
        files.config.write_text(json.dumps(spec.config, indent=2, sort_keys=True))
        port = free_api_port()
        args = k6.run_args(
            config_path=str(files.config), script=str(spec.k6_script), summary_path=str(files.summary),
            segment=segment(spec.index, spec.count), sequence=segment_sequence(spec.count),
            tags=spec.tags, influx_out=spec.influx_out, address=f"127.0.0.1:{port}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("K6_")}
        env.update(spec.env)
        log = open(files.log, "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([self.k6_path, *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=spec.script.parent,
                                start_new_session=True, preexec_fn=die_with_parent)
        log.close()
        pids = pid_dir(spec.run_id)
        pids.mkdir(parents=True, exist_ok=True)
        me = ProcessIdentity.of(proc.pid)
        (pids / f"{proc.pid}.json").write_text(json.dumps(
            {"pid": proc.pid, "runner": spec.name, "run_dir": str(spec.run_dir.path), "testid": spec.tags.get("testid"),
             "name": me.name, "create_time": me.create_time}))
        return Runner(spec=spec, handle=proc, api=f"http://127.0.0.1:{port}", pid=proc.pid)

    def _wait_ready(self, runners: list[ProcessRunner]) -> None:
        wait_until_paused(runners, lambda r: r.handle.poll())

    # -- start ---------------------------------------------------------------------
    def start(self, runners: list[ProcessRunner]) -> float:
        return resume_together(runners)

    # -- poll / stop ---------------------------------------------------------
    def poll(self, runners: list[ProcessRunner]) -> list[int | None]:
        codes: list[int | None] = []
        for r in runners:
            code = r.handle.poll()
            if code is not None and r.exit_code is None:
                r.exit_code = code
                r.ended_at = time.time()
            codes.append(code)
        return codes

    def stop(self, runners: list[ProcessRunner], grace_s: float = 10.0) -> None:
        live = [r for r in runners if r.handle is not None and r.handle.poll() is None]
        for r in live:
            try:
                os.kill(r.handle.pid, signal.SIGINT)  # k6 stops gracefully and writes its summary
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        for r in live:
            try:
                r.handle.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                r.handle.kill()
                r.handle.wait()
                r.failure = r.failure or f"killed after not stopping within {grace_s:.0f}s"
        for r in runners:
            if r.handle is not None:
                code = r.handle.poll()
                if r.exit_code is None:
                    r.exit_code = code
                if r.ended_at is None:
                    r.ended_at = time.time()
                (pid_dir(r.spec.run_id) / f"{r.handle.pid}.json").unlink(missing_ok=True)
        if runners:
            with contextlib.suppress(OSError):
                pid_dir(runners[0].spec.run_id).rmdir()

    def cleanup_stale(self) -> list[str]:
        return cleanup_stale_processes()


def cleanup_stale_processes() -> list[str]:
    """Kill k6 runners recorded by pid files whose controller is gone; mark their runs."""
    found: list[str] = []
    root = state_dir() / "runners"
    if not root.is_dir():
        return found
    for run in sorted(root.iterdir()):
        if not run.is_dir():
            continue
        owner = run / "controller.pid"
        if owner.exists():
            try:
                if pid_alive(int(owner.read_text().strip())):
                    continue  # a live controller still owns these runners
            except ValueError:
                pass
        run_dir = None
        for pidfile in sorted(run.glob("*.json")):
            try:
                info = json.loads(pidfile.read_text())
                pid = int(info["pid"])
            except (OSError, ValueError, KeyError):
                pidfile.unlink(missing_ok=True)
                continue
            run_dir = info.get("run_dir")
            if "create_time" in info:  # the same process, not one that got its PID since
                ours = ProcessIdentity(pid, str(info.get("name")), float(info["create_time"])).process() is not None
            else:
                ours = pid_alive(pid) and _is_k6(pid)
            if ours:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                found.append(f"killed stale k6 runner {info.get('runner')} (pid {pid}) of run {run.name}")
            pidfile.unlink(missing_ok=True)
        owner.unlink(missing_ok=True)
        if run_dir and RunDir(run_dir).mark_abandoned():
            found.append(f"marked run {run.name} as error (its controller died): {run_dir}")
        with contextlib.suppress(OSError):
            run.rmdir()
    return found


def _is_k6(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmd) and Path(cmd[0].decode(errors="replace")).name == "k6"


def wait_until_paused(runners: Sequence[Runner[Any]], exit_code: Callable[[Runner[Any]], int | None],
                      on_exit: Callable[[Runner[Any]], None] | None = None) -> None:
    """Wait until every runner's k6 has initialised its VUs and waits paused (REST API status).

    A runner that exits first (`exit_code` not None) raises RunError with its log's tail
    (after `on_exit`, e.g. to flush a log follower); so does the READY_TIMEOUT_S deadline.
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = list(runners)
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for r in list(pending):
                code = exit_code(r)
                if code is not None:
                    r.exit_code = code
                    r.failure = f"k6 exited with code {code} before the start"
                    if on_exit is not None:
                        on_exit(r)
                    raise RunError(f"runner {r.spec.name} exited with code {code} before the start:\n"
                                   f"{_tail(r.spec.files.log)}")
                try:
                    status = client.get(f"{r.api}/v1/status").json()["data"]["attributes"]
                except (httpx.HTTPError, ValueError, KeyError):
                    continue
                if status.get("status") == PAUSED_BEFORE_RUN and status.get("paused"):
                    pending.remove(r)
            if pending and time.monotonic() > deadline:
                names = ", ".join(r.spec.name for r in pending)
                raise RunError(f"runners {names} did not initialise within {READY_TIMEOUT_S:.0f}s")
            if pending:
                time.sleep(0.05)


def resume_together(runners: Sequence[Runner[Any]]) -> float:
    """Resume every runner's k6 through its REST API at the same instant.

    Connections are opened (and kept alive) first; a barrier then releases one
    PATCH per runner from its own thread. Returns the release time (epoch seconds).
    """
    if not runners:
        return time.time()
    body = {"data": {"type": "status", "id": "default", "attributes": {"paused": False}}}
    barrier = threading.Barrier(len(runners) + 1)
    errors: list[str] = []
    released = [0.0]

    def go(r: Runner[Any], client: httpx.Client) -> None:
        try:
            barrier.wait(timeout=30)
            resp = client.patch(f"{r.api}/v1/status", json=body)
            r.started_at = time.time()
            if resp.status_code >= 400:
                errors.append(f"{r.spec.name}: HTTP {resp.status_code}")
        except (httpx.HTTPError, threading.BrokenBarrierError) as exc:
            errors.append(f"{r.spec.name}: {type(exc).__name__}")

    # plain http on loopback: no TLS context (each default one costs ~1 MB and ~17 ms of CPU)
    clients = [httpx.Client(timeout=10.0, verify=False) for _ in runners]
    try:
        for r, c in zip(runners, clients, strict=True):
            c.get(f"{r.api}/v1/status")  # open the connection now, not at the start signal
        threads = [threading.Thread(target=go, args=(r, c), daemon=True) for r, c in zip(runners, clients, strict=True)]
        for t in threads:
            t.start()
        released[0] = time.time()
        barrier.wait(timeout=30)
        for t in threads:
            t.join(timeout=30)
    finally:
        for c in clients:
            c.close()
    if errors:
        raise RunError("could not start every runner: " + "; ".join(errors))
    return released[0]


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
