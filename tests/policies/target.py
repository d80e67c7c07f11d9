"""The policy tests' targets: the gallery's own servers (`tests.gallery.servers`), each its own process.

`PoolTarget("profile-api", pool_size=1, hold_ms=20, metrics=True)` is the gallery's `pool`
server: Starlette on one event loop over a real SQLAlchemy `QueuePool` of `pool_size`
connections (aiosqlite), each request to GET or PUT /orders/{id} holding its connection
for `hold_ms`. Nothing but the pool queues a request, so its pathology is clean: the
latency outside the pool is the event loop's, a fraction of a millisecond (a
thread-per-connection server adds its own scheduling delay outside the pool, which
inflates the concurrency Little's law infers from the goodput plateau). With `metrics`
it serves GET /metrics, its pool in OpenTelemetry's `db.client.connection.*` names.

`EchoTarget("core-api")` is the gallery's `echo` server: GET /ping answers at once.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from core.state import free_port
from tests.gallery.harness import start_server, stop_servers


class Target:
    """One gallery server on a free loopback port; `start()` returns once it answers."""

    def __init__(self, service: str, kind: str, params: dict[str, Any]) -> None:
        self.service = service
        self.kind = kind
        self.params = params
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = Path(tempfile.mkdtemp(prefix=f"loadbearing-{service}-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str | None:
        return f"{self.url}/metrics" if self.params.get("metrics") else None

    def start(self) -> Target:
        self._proc = start_server(self.kind, self.params, self.service, self.port, self._workdir)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            stop_servers([self._proc])
            self._proc = None
        shutil.rmtree(self._workdir, ignore_errors=True)


class PoolTarget(Target):
    def __init__(self, service: str, pool_size: int = 1, hold_ms: float = 20.0, metrics: bool = False) -> None:
        params: dict[str, Any] = {"pool": pool_size, "hold_ms": hold_ms}
        if metrics:
            params["metrics"] = "otel"
        super().__init__(service, "pool", params)


class EchoTarget(Target):
    def __init__(self, service: str) -> None:
        super().__init__(service, "echo", {})
