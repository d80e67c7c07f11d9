"""A small loopback HTTP target that saturates like a DB pool, for the policy tests.

`PoolTarget` serves, on 127.0.0.1 only:
- GET /profiles/{id}, PUT /profiles/{id}: hold one of `pool_size` "connections"
  for `hold_ms` (a semaphore + sleep, like a DB pool), queueing when none is free;
- GET /jobs: fast, no pool.
With `influx` set it writes `app_pool` and `app_endpoint` points once a second,
shaped like the demo services' (tags service, instance, testid).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.influx import InfluxClient, line
from core.percentile import nearest_rank


class Pool:
    def __init__(self, size: int) -> None:
        self.size = size
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
            while self.checked_out >= self.size:
                self.cond.wait()
            self.waiting -= 1
            self.checked_out += 1
        t1 = time.monotonic()
        try:
            yield
        finally:
            t2 = time.monotonic()
            with self.cond:
                self.checked_out -= 1
                self.waits.append((t1 - t0) * 1000)
                self.holds.append((t2 - t1) * 1000)
                self.cond.notify()

    def take(self) -> tuple[list[float], list[float], int]:
        with self.cond:
            waits, holds, wmax = self.waits, self.holds, self.waiting_max
            self.waits, self.holds, self.waiting_max = [], [], self.waiting
        return waits, holds, wmax


class PoolTarget:
    def __init__(self, service: str, pool_size: int = 1, hold_ms: float = 20.0,
                 influx: InfluxClient | None = None, testid: str | None = None) -> None:
        self.service = service
        self.pool = Pool(pool_size)
        self.hold_s = hold_ms / 1000.0
        self.influx = influx
        self.testid = testid
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
        if influx is not None:
            self._threads.append(threading.Thread(target=self._report, daemon=True))

    def start(self) -> PoolTarget:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for t in self._threads[1:]:
            t.join(timeout=5)

    def _lines(self) -> list[str]:
        ts = time.time_ns()
        tags = {"service": self.service, "instance": str(self.port)}
        if self.testid:
            tags["testid"] = self.testid
        waits, holds, wmax = self.pool.take()
        with self.lock:
            timings, self.timings = self.timings, {}
        out = [line("app_pool", tags, {
            "size": self.pool.size, "max_overflow": 0, "checked_out": self.pool.checked_out,
            "overflow": 0, "waiting": self.pool.waiting, "waiting_max": wmax, "checkouts": len(waits),
            "timeouts": 0, "checkout_wait_ms_mean": sum(waits) / len(waits) if waits else 0.0,
            "checkout_wait_ms_p95": nearest_rank(waits, 95) or 0.0, "checkout_wait_ms_max": max(waits, default=0.0),
            "hold_ms_mean": sum(holds) / len(holds) if holds else 0.0}, ts)]
        for name, samples in sorted(timings.items()):
            out.append(line("app_endpoint", {**tags, "name": name}, {
                "count": len(samples), "errors": 0, "server_ms_mean": sum(samples) / len(samples),
                "server_ms_p95": nearest_rank(samples, 95) or 0.0, "server_ms_max": max(samples)}, ts))
        return out

    def _report(self) -> None:
        assert self.influx is not None
        while not self._stop.wait(1.0):
            self.influx.write(self._lines())
        self.influx.write(self._lines())
