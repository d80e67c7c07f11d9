"""Start a demo service: `python -m demo.launcher NAME [--port P] [--host H]`, or `start_service`.

`start_service(name, port=None, env=None)` runs the service as its own process
(uvicorn, one process, one event loop) on 127.0.0.1, waits until GET /health
answers, and returns a `ServiceHandle` with `.url`, `.pid` and `.stop()`. The
service's knobs (DATABASE_URL, DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT,
PROFILE_DB_MS, CACHE_TTL_S, DEMO_SLOW_ENDPOINTS, DEMO_SQLITE_PATH, LOADBEARING_INFLUX_URL,
LOADBEARING_INFLUX_DB, LOADBEARING_TESTID) come only from `env`: the caller's own
values of those variables are not inherited. Without DATABASE_URL or
DEMO_SQLITE_PATH the service creates a fresh SQLite file in a temp dir and removes
it when it exits. The child watches its parent and exits when the parent is gone.

`stop()` sends SIGTERM (uvicorn finishes in-flight requests for up to 2 s, the
service writes its last metrics and closes its pool), waits, then SIGKILLs: no
process is left behind. Failing to start raises `RunError` with the log's tail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from core.errors import RunError
from core.state import free_port
from demo.services.settings import SERVICES, SettingsError, from_env
from runners.children import wait_answering

REPO_ROOT = Path(__file__).resolve().parent.parent
KNOBS = ("DATABASE_URL", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT", "PROFILE_DB_MS", "CACHE_TTL_S",
         "DEMO_SQLITE_PATH", "LOADBEARING_INFLUX_URL", "LOADBEARING_INFLUX_DB", "LOADBEARING_TESTID",
         "DEMO_PARENT_PID", "DEMO_TEMP_DIR", "DEMO_SLOW_ENDPOINTS")
DEFAULT_PORTS = {"core-api": 8000, "profile-api": 8001}


@dataclass
class ServiceHandle:
    """A running demo service process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"
    _cleanup: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

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
    """Start service `name` ('core-api' | 'profile-api') on 127.0.0.1 and wait until it is ready."""
    if name not in SERVICES:
        raise RunError(f"unknown demo service {name!r}; use one of: {', '.join(SERVICES)}")
    child_env = _child_env(env)
    try:
        from_env(name, child_env)
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
    """None when /health answered 200, else why not (with the log's tail)."""
    problem = wait_answering(handle.process, f"{handle.url}/health", 200, timeout_s)
    return None if problem is None else f"{problem}:\n{_tail(handle.log_path)}"


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def serve(name: str, port: int, host: str = "127.0.0.1") -> int:
    """Run service `name` in this process until SIGTERM/SIGINT. Returns the exit code."""
    import uvicorn

    try:
        settings = from_env(name)
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    if name == "core-api":
        from demo.services.core_api import build_routes
    else:
        from demo.services.profile_api import build_routes
    from demo.services.app import create_app

    app = create_app(settings, build_routes, port=port)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
        timeout_graceful_shutdown=2, timeout_keep_alive=30, backlog=4096,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.launcher",
                                     description="Run one demo service (configured by environment variables).")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--port", type=int, default=None, help="default: 8000 (core-api), 8001 (profile-api)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    args = parser.parse_args(argv)
    return serve(args.service, args.port or DEFAULT_PORTS[args.service], args.host)


if __name__ == "__main__":
    sys.exit(main())
