"""Start a demo service: `python -m demo.launcher NAME [--port P] [--host H]`, or `start_service`.

`start_service(name, port=None, env=None)` runs the service as its own process
(uvicorn, one event loop per process) on 127.0.0.1, waits until GET /health
answers, and returns a `ServiceHandle` with `.url`, `.pid` and `.stop()`. The
service's knobs (DATABASE_URL, DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT,
PROFILE_DB_MS, CACHE_TTL_S, DEMO_SLOW_ENDPOINTS, DEMO_SQLITE_PATH, INSTANCES,
MAX_INFLIGHT, CARRIER_MS, INFLIGHT_TIMEOUT) come only from `env`: the caller's own values of
those variables (and of PROMETHEUS_MULTIPROC_DIR) are not inherited. Without DATABASE_URL or
DEMO_SQLITE_PATH the service creates a fresh SQLite file in a temp dir and removes it when it
exits. The child watches its parent
and exits when the parent is gone.

Instances: with `INSTANCES=N` (N > 1) the launched process is a supervisor: it creates
and seeds the database once and starts N worker processes, each a uvicorn server
listening on the same port with SO_REUSEPORT, so the kernel spreads new connections
evenly over them (on one shared listening socket, Linux wakes the process that waited
last, so idle workers are not picked evenly: measured, three instances then carried
16-22 req/s each instead of 24). Each worker is a whole instance of the service: its
own event loop, connection pool (so N x DB_POOL_SIZE connections count against the
database's max_connections), cache and request slots. Their metrics are exposed the
standard way for several processes behind one address: the supervisor points
PROMETHEUS_MULTIPROC_DIR at a directory of its own, and GET /metrics, whichever worker
answers it, shows every worker's (prometheus-client's multiprocess mode: totals summed,
each pool's gauges per worker). Workers exit when the supervisor is gone; the supervisor
stops them all when one dies; `start_service` returns once all N answer.

`stop()` sends SIGTERM (uvicorn finishes in-flight requests for up to 2 s, the
service writes its last metrics and closes its pool; the supervisor stops its workers
the same way), waits, then SIGKILLs: no process is left behind. Failing to start
raises `RunError` with the log's tail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from core.errors import RunError
from core.state import free_port
from demo.services.exposition import MULTIPROC_ENV
from demo.services.settings import SERVICES, Settings, SettingsError, from_env
from runners.children import wait_answering

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute

    from demo.services.app import ServiceContext

REPO_ROOT = Path(__file__).resolve().parent.parent
KNOBS = ("DATABASE_URL", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT", "PROFILE_DB_MS", "CACHE_TTL_S",
         "DEMO_SQLITE_PATH", "DEMO_PARENT_PID", "DEMO_TEMP_DIR", "DEMO_SLOW_ENDPOINTS", "INSTANCES", "MAX_INFLIGHT",
         "CARRIER_MS", "INFLIGHT_TIMEOUT", "DEMO_SERVICE", "DEMO_PORT", MULTIPROC_ENV)
DEFAULT_PORTS = {"core-api": 8000, "profile-api": 8001, "shipping-api": 8002}


@dataclass
class ServiceHandle:
    """A running demo service process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"
    instances: int = 1
    _cleanup: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def worker_pids(self) -> list[int]:
        """The pids serving requests: the process itself, or its N worker processes (INSTANCES > 1)."""
        if self.instances == 1:
            return [self.pid] if self.running() else []
        import psutil

        try:
            return sorted(c.pid for c in psutil.Process(self.pid).children() if c.status() != psutil.STATUS_ZOMBIE
                          and "--worker" in c.cmdline())
        except psutil.Error:
            return []

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """Stop the service (SIGTERM, then SIGKILL after `timeout_s`); returns its exit code.

        After a graceful shutdown uvicorn re-raises SIGTERM, so a clean stop returns -15
        (-9 means it had to be killed).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup.clear()
        return self.process.returncode

    def __enter__(self) -> ServiceHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _child_env(env: dict[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in KNOBS}
    base.update(env or {})
    base["DEMO_PARENT_PID"] = str(os.getpid())
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), base.get("PYTHONPATH", "")) if p)
    base.setdefault("PYTHONUNBUFFERED", "1")
    return base


def start_service(name: str, port: int | None = None, env: dict[str, str] | None = None, *,
                  log_path: Path | None = None, ready_timeout_s: float = 60.0) -> ServiceHandle:
    """Start service `name` (one of SERVICES) on 127.0.0.1 and wait until all its instances are ready."""
    if name not in SERVICES:
        raise RunError(f"unknown demo service {name!r}; use one of: {', '.join(SERVICES)}")
    child_env = _child_env(env)
    try:
        settings = from_env(name, child_env)
    except SettingsError as exc:
        raise RunError(f"{name}: {exc}") from None
    cleanup: list[Path] = []
    if log_path is None:
        log_dir = Path(tempfile.mkdtemp(prefix=f"loadbearing-{name}-log-"))
        cleanup.append(log_dir)
        log_path = log_dir / f"{name}.log"
        child_env["DEMO_TEMP_DIR"] = str(log_dir)  # the service removes it at exit, even if we die first
    attempts = 1 if port is not None else 3
    last = ""
    for _ in range(attempts):
        handle = _spawn(name, port if port is not None else free_port(), child_env, log_path)
        handle.instances = settings.instances
        problem = _wait_ready(handle, ready_timeout_s)
        if problem is None:
            handle._cleanup = cleanup
            return handle
        last = problem
        handle.stop()
        if "address already in use" not in problem.lower():
            break
    for path in cleanup:
        shutil.rmtree(path, ignore_errors=True)
    raise RunError(f"{name} did not start: {last}")


def _spawn(name: str, port: int, env: dict[str, str], log_path: Path) -> ServiceHandle:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "demo.launcher", name, "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT),
        )
    return ServiceHandle(name=name, port=port, process=proc, log_path=log_path)


def _wait_ready(handle: ServiceHandle, timeout_s: float) -> str | None:
    """None when /health answered 200 (from every instance), else why not (with the log's tail)."""
    deadline = time.monotonic() + timeout_s
    problem = wait_answering(handle.process, f"{handle.url}/health", 200, timeout_s)
    if problem is None and handle.instances > 1:
        problem = _wait_instances(handle, deadline)
    return None if problem is None else f"{problem}:\n{_tail(handle.log_path)}"


def _wait_instances(handle: ServiceHandle, deadline: float) -> str | None:
    """None once `handle.instances` distinct worker pids answered GET /health (a new connection
    each time: the kernel gives each connection to one worker), else how many did."""
    seen: set[int] = set()
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            return f"exited with code {handle.process.returncode}"
        try:
            seen.add(int(httpx.get(f"{handle.url}/health", timeout=1.0).json()["pid"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
        if len(seen) >= handle.instances:
            return None
    return f"only {len(seen)} of {handle.instances} instances answered within the timeout"


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _routes(name: str) -> Callable[[ServiceContext], list[BaseRoute]]:
    if name == "core-api":
        from demo.services.core_api import build_routes
    elif name == "profile-api":
        from demo.services.profile_api import build_routes
    else:
        from demo.services.shipping_api import build_routes
    return build_routes


def _uvicorn_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                          timeout_graceful_shutdown=2, timeout_keep_alive=30, backlog=4096)


def serve(name: str, port: int, host: str = "127.0.0.1", *, worker: bool = False) -> int:
    """Run service `name` until SIGTERM/SIGINT: in this process, or (INSTANCES > 1) as a supervisor of
    INSTANCES worker processes. A `worker` binds its socket with SO_REUSEPORT beside its siblings.
    Returns the exit code."""
    import uvicorn

    from demo.services.app import create_app

    try:
        settings = from_env(name)
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    if settings.instances > 1 and not worker:
        return _serve_instances(name, settings, port, host)
    server = uvicorn.Server(_uvicorn_config(create_app(settings, _routes(name), port=port), host, port))
    if worker:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            print(f"{name}: cannot bind {host}:{port}: {exc}", file=sys.stderr)
            return 1
        server.run(sockets=[sock])
    else:
        server.run()
    return 0 if server.started else 1


def _serve_instances(name: str, settings: Settings, port: int, host: str) -> int:
    """The supervisor of INSTANCES workers: one database (created and seeded here, once), then N
    processes each listening on the port with SO_REUSEPORT, so the kernel spreads new connections
    over them evenly (on one shared socket it wakes the process that waited last: one busy, others idle).
    It stops them all on SIGTERM/SIGINT, when its starter is gone, or when one of them dies (the
    service would no longer be the N instances it claims)."""
    from demo.services.db import Database

    cleanup = [settings.temp_dir] if settings.temp_dir else []  # the supervisor's to remove, not a worker's
    env = {k: v for k, v in os.environ.items() if k != "DEMO_TEMP_DIR"}
    if not settings.database_url and not settings.sqlite_path:  # one database for every instance
        data_dir = tempfile.mkdtemp(prefix=f"loadbearing-{name}-")
        cleanup.append(data_dir)
        env["DEMO_SQLITE_PATH"] = str(Path(data_dir) / f"{name}.sqlite3")
    metrics_dir = tempfile.mkdtemp(prefix=f"loadbearing-{name}-metrics-")  # every worker's metrics, shared
    cleanup.append(metrics_dir)
    env[MULTIPROC_ENV] = metrics_dir
    env["DEMO_PARENT_PID"] = str(os.getpid())  # each worker exits once this supervisor is gone
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workers: list[subprocess.Popen[bytes]] = []
    code = 0
    try:
        async def seed() -> None:  # once, here: workers then find it seeded instead of racing to seed
            db = Database(from_env(name, env))
            try:
                await db.setup()
            finally:
                await db.dispose()

        asyncio.run(seed())
        workers = [subprocess.Popen([sys.executable, "-m", "demo.launcher", name, "--port", str(port), "--host", host,
                                     "--worker"], stdin=subprocess.DEVNULL, env=env, cwd=str(REPO_ROOT))
                   for _ in range(settings.instances)]
        while not stop.wait(0.5):
            if settings.parent_pid and os.getppid() != settings.parent_pid:
                break  # the starter is gone
            dead = [w for w in workers if w.poll() is not None]
            if dead:
                print(f"{name}: instance {dead[0].pid} exited with code {dead[0].returncode}; stopping the others",
                      file=sys.stderr)
                code = 1
                break
        return code
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for w in workers:
            try:
                w.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.launcher",
                                     description="Run one demo service (configured by environment variables).")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--port", type=int, default=None,
                        help="default: 8000 (core-api), 8001 (profile-api), 8002 (shipping-api)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--worker", action="store_true",
                        help="one of INSTANCES workers (started by the supervisor; binds with SO_REUSEPORT)")
    args = parser.parse_args(argv)
    return serve(args.service, args.port or DEFAULT_PORTS[args.service], args.host, worker=args.worker)


if __name__ == "__main__":
    sys.exit(main())
