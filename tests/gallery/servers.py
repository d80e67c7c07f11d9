"""Small real servers, one per pathology: `python -m tests.gallery.servers KIND PORT PARAMS_JSON`.

Each listens on 127.0.0.1:PORT and knows nothing about loadbearing:

- `pool`    Starlette on an async SQLAlchemy engine (aiosqlite, a real `QueuePool` of
            `pool` connections, `max_overflow` 0, `timeout_s` checkout timeout): GET
            /orders/{id} checks a connection out, runs a real query and keeps the
            connection until `hold_ms` have passed since the checkout; a checkout that
            times out answers 503. PUT /orders/{id} (a write beside the read) reads its
            body and goes through the pool the same way. With `metrics` it serves GET /metrics in the
            OpenTelemetry semantic conventions for database client connection pools
            (`db.client.connection.*`, as the Prometheus exporter names them), or in
            HikariCP's Micrometer names with `metrics = "hikari"`.
- `workers` Starlette with synchronous handlers in a pool of `workers` threads (anyio's
            limiter), each request blocking `work_ms` (a slow downstream call).
- `cpu`     Starlette on one event loop, each request burning `cpu_ms` of CPU.
- `cache`   GET /items/{id} with a service time drawn from an exponential of mean
            `mean_ms` (a query whose cost varies), PUT /items/{id} writing (`write_ms`).
- `echo`    a fast neighbour: GET /ping answers at once.
- `silent`  accepts connections, reads the requests, and never answers.

GET /health answers 200 on every kind but `silent`.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

USE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


class PoolMetrics:
    """The pool's own instruments, in OpenTelemetry's or HikariCP's names."""

    def __init__(self, style: str, size: int) -> None:
        self.registry = CollectorRegistry()
        self.style = style
        self.used = 0
        self.pending = 0
        self.size = size
        reg = self.registry
        if style == "hikari":
            label = ["pool"]
            self.labels: tuple[str, ...] = ("gallery",)
            self.g_active = Gauge("hikaricp_connections_active", "active", label, registry=reg)
            self.g_idle = Gauge("hikaricp_connections_idle", "idle", label, registry=reg)
            self.g_pending = Gauge("hikaricp_connections_pending", "pending", label, registry=reg)
            self.g_max = Gauge("hikaricp_connections_max", "max", label, registry=reg)
            self.c_timeouts = Counter("hikaricp_connections_timeout", "timeouts", label, registry=reg)
            self.h_use = Histogram("hikaricp_connections_usage_seconds", "usage", label, registry=reg,
                                   buckets=USE_BUCKETS)
            self.h_wait = Histogram("hikaricp_connections_acquire_seconds", "acquire", label, registry=reg,
                                    buckets=USE_BUCKETS)
        else:
            name = ["db_client_connection_pool_name"]
            self.labels = ("gallery",)
            self.g_count = Gauge("db_client_connection_count", "connections by state",
                                 [*name, "db_client_connection_state"], registry=reg)
            self.g_max = Gauge("db_client_connection_max", "max open connections", name, registry=reg)
            self.g_pending = Gauge("db_client_connection_pending_requests", "pending", name, registry=reg)
            self.c_timeouts = Counter("db_client_connection_timeouts", "timeouts", name, registry=reg)
            self.h_use = Histogram("db_client_connection_use_time_seconds", "use time", name, registry=reg,
                                   buckets=USE_BUCKETS)
            self.h_wait = Histogram("db_client_connection_wait_time_seconds", "wait time", name, registry=reg,
                                    buckets=USE_BUCKETS)
        self.g_max.labels(*self.labels).set(size)
        self.c_timeouts.labels(*self.labels)  # exposed from the start, at 0
        self.update()

    def update(self) -> None:
        if self.style == "hikari":
            self.g_active.labels(*self.labels).set(self.used)
            self.g_idle.labels(*self.labels).set(self.size - self.used)
        else:
            self.g_count.labels(*self.labels, "used").set(self.used)
            self.g_count.labels(*self.labels, "idle").set(self.size - self.used)
        self.g_pending.labels(*self.labels).set(self.pending)


def pool_app(p: dict[str, Any]) -> Starlette:
    size, hold_s, timeout_s = int(p["pool"]), float(p["hold_ms"]) / 1000.0, float(p.get("timeout_s", 30.0))
    engine = create_async_engine(f"sqlite+aiosqlite:///{p['db']}", poolclass=AsyncAdaptedQueuePool, pool_size=size,
                                 max_overflow=0, pool_timeout=timeout_s)
    metrics = PoolMetrics(str(p["metrics"]), size) if p.get("metrics") else None

    async def order(request: Request) -> Response:
        if request.method == "PUT":
            await request.body()
        asked = time.monotonic()
        if metrics:
            metrics.pending += 1
            metrics.update()
        try:
            conn = await engine.connect()
        except PoolTimeoutError:
            if metrics:
                metrics.c_timeouts.labels(*metrics.labels).inc()
            return JSONResponse({"error": "no database connection within the pool timeout"}, status_code=503)
        finally:
            if metrics:
                metrics.pending -= 1
                metrics.update()
        got = time.monotonic()
        if metrics:
            metrics.h_wait.labels(*metrics.labels).observe(got - asked)
            metrics.used += 1
            metrics.update()
        try:
            row = (await conn.execute(text("SELECT id, total FROM orders WHERE id = :id"),
                                      {"id": int(request.path_params["id"]) % 100 + 1})).first()
            await asyncio.sleep(max(0.0, got + hold_s - time.monotonic()))
        finally:
            await conn.close()
            if metrics:
                metrics.used -= 1
                metrics.update()
                metrics.h_use.labels(*metrics.labels).observe(time.monotonic() - got)
        return JSONResponse({"id": row[0] if row else None, "total": row[1] if row else None})

    async def exposition(_: Request) -> Response:
        assert metrics is not None
        return Response(generate_latest(metrics.registry), media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total REAL)"))
            await conn.execute(text("DELETE FROM orders"))
            await conn.execute(text("INSERT INTO orders (id, total) VALUES " +
                                    ", ".join(f"({i}, {i * 1.5})" for i in range(1, 101))))
        warm = [await engine.connect() for _ in range(size)]
        for conn in warm:
            await conn.close()
        yield
        await engine.dispose()

    routes = [Route("/health", health), Route("/orders/{id:int}", order, methods=["GET", "PUT"])]
    if metrics:
        routes.append(Route("/metrics", exposition))
    return Starlette(routes=routes, lifespan=lifespan)


def workers_app(p: dict[str, Any]) -> Starlette:
    workers, work_s = int(p["workers"]), float(p["work_ms"]) / 1000.0

    def report(_: Request) -> Response:  # sync: runs in one of `workers` threads
        time.sleep(work_s)
        return PlainTextResponse("done")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = workers
        yield

    return Starlette(routes=[Route("/health", health), Route("/reports/{id:int}", report)], lifespan=lifespan)


def cpu_app(p: dict[str, Any]) -> Starlette:
    cpu_s = float(p["cpu_ms"]) / 1000.0

    async def render(_: Request) -> Response:
        end = time.thread_time() + cpu_s
        x = 0
        while time.thread_time() < end:
            for i in range(200):
                x = (x * 31 + i) % 1_000_003
        return PlainTextResponse(str(x))

    return Starlette(routes=[Route("/health", health), Route("/render/{id:int}", render)])


def cache_app(p: dict[str, Any]) -> Starlette:
    mean_s, write_s = float(p["mean_ms"]) / 1000.0, float(p.get("write_ms", 5.0)) / 1000.0
    rng = random.Random(7)
    values: dict[int, int] = {}

    async def read(request: Request) -> Response:
        await asyncio.sleep(0.002 + rng.expovariate(1.0 / mean_s))
        key = int(request.path_params["id"])
        return JSONResponse({"id": key, "version": values.get(key, 0)})

    async def write(request: Request) -> Response:
        await request.body()
        await asyncio.sleep(write_s)
        key = int(request.path_params["id"])
        values[key] = values.get(key, 0) + 1
        return JSONResponse({"id": key, "version": values[key]})

    return Starlette(routes=[Route("/health", health), Route("/items/{id:int}", read, methods=["GET"]),
                             Route("/items/{id:int}", write, methods=["PUT"])])


def echo_app(_: dict[str, Any]) -> Starlette:
    async def ping(_: Request) -> Response:
        return PlainTextResponse("pong")

    return Starlette(routes=[Route("/health", health), Route("/ping", ping)])


def serve_silent(port: int) -> None:
    """Accept every connection, read what arrives, never answer (until killed)."""
    server = socket.create_server(("127.0.0.1", port), backlog=1024)
    held: list[socket.socket] = []
    while True:
        conn, _ = server.accept()
        conn.setblocking(False)
        held.append(conn)


APPS = {"pool": pool_app, "workers": workers_app, "cpu": cpu_app, "cache": cache_app, "echo": echo_app}


def main(argv: list[str]) -> None:
    kind, port, params = argv[0], int(argv[1]), json.loads(argv[2]) if len(argv) > 2 else {}
    if kind == "silent":
        serve_silent(port)
        return
    uvicorn.run(APPS[kind](params), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                backlog=4096, timeout_keep_alive=30)


if __name__ == "__main__":
    main(sys.argv[1:])
