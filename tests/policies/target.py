"""A small loopback HTTP target that saturates like a DB pool, for the policy tests.

`PoolTarget` serves, on 127.0.0.1 only:
- GET /profiles/{id}, PUT /profiles/{id}: hold one of `pool_size` "connections"
  for `hold_ms` (a semaphore + sleep, like a DB pool), queueing when none is free;
- GET /jobs: fast, no pool.
With `metrics` set it serves GET /metrics: its pool in OpenTelemetry's
`db.client.connection.*` names (Prometheus text, as the OpenTelemetry Prometheus
exporter names them), for a run to scrape.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class PoolInstruments:
    def __init__(self, size: int) -> None:
        self.registry = reg = CollectorRegistry()
        name = ["db_client_connection_pool_name"]
        self.count = Gauge("db_client_connection_count", "connections", [*name, "db_client_connection_state"],
                           registry=reg)
        Gauge("db_client_connection_max", "max", name, registry=reg).labels("main").set(size)
        self.pending = Gauge("db_client_connection_pending_requests", "pending", name, registry=reg).labels("main")
        Counter("db_client_connection_timeouts", "timeouts", name, registry=reg).labels("main")
        self.use = Histogram("db_client_connection_use_time_seconds", "use", name, registry=reg).labels("main")
        self.wait = Histogram("db_client_connection_wait_time_seconds", "wait", name, registry=reg).labels("main")

    def text(self) -> bytes:
        return generate_latest(self.registry)


class Pool:
    def __init__(self, size: int) -> None:
        self.size = size
        self.instruments = PoolInstruments(size)
        self.cond = threading.Condition()
        self.checked_out = 0
        self.waiting = 0
        self.waiting_max = 0
        self.waits: list[float] = []
        self.holds: list[float] = []

    @contextmanager
    def connection(self) -> Iterator[None]:
        t0 = time.monotonic()
        with self.cond:
            self.waiting += 1
            self.waiting_max = max(self.waiting_max, self.waiting)
            self._gauges()
            while self.checked_out >= self.size:
                self.cond.wait()
            self.waiting -= 1
            self.checked_out += 1
            self._gauges()
        t1 = time.monotonic()
        self.instruments.wait.observe(t1 - t0)
        try:
            yield
        finally:
            t2 = time.monotonic()
            self.instruments.use.observe(t2 - t1)
            with self.cond:
                self.checked_out -= 1
                self.waits.append((t1 - t0) * 1000)
                self.holds.append((t2 - t1) * 1000)
                self._gauges()
                self.cond.notify()

    def _gauges(self) -> None:
        self.instruments.count.labels("main", "used").set(self.checked_out)
        self.instruments.count.labels("main", "idle").set(self.size - self.checked_out)
        self.instruments.pending.set(self.waiting)

    def take(self) -> tuple[list[float], list[float], int]:
        with self.cond:
            waits, holds, wmax = self.waits, self.holds, self.waiting_max
            self.waits, self.holds, self.waiting_max = [], [], self.waiting
        return waits, holds, wmax


class PoolTarget:
    def __init__(self, service: str, pool_size: int = 1, hold_ms: float = 20.0, metrics: bool = False) -> None:
        self.service = service
        self.pool = Pool(pool_size)
        self.hold_s = hold_ms / 1000.0
        self.metrics = metrics
        self.timings: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                t0 = time.monotonic()
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?")[0]
                name, status = None, 200
                if path.startswith("/profiles/"):
                    name = "profile_get" if self.command == "GET" else "profile_put"
                    with target.pool.connection():
                        time.sleep(target.hold_s)
                elif path == "/jobs" and self.command == "GET":
                    name = "jobs_list"
                elif path == "/metrics" and target.metrics:
                    body = target.pool.instruments.text()
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                    return
                else:
                    status = 404
                body = b"ok" if status == 200 else b"not found"
                reason = "OK" if status == 200 else "Not Found"
                self.wfile.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
                                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                if name:
                    with target.lock:
                        target.timings.setdefault(name, []).append((time.monotonic() - t0) * 1000)

            do_GET = _serve
            do_PUT = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True)]

    @property
    def metrics_url(self) -> str | None:
        return f"{self.url}/metrics" if self.metrics else None

    def start(self) -> PoolTarget:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
