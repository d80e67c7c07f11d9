"""What every demo service shares: lifespan, /health, /metrics (Prometheus text in the standard
names, `demo.services.exposition`), /status (its settings and counters as JSON), endpoint
timing, errors.

`create_app(settings, build_routes)` returns the Starlette app. At start it creates
and seeds the database and (when DEMO_PARENT_PID is set) starts a watchdog that shuts
the service down once that process is gone, so a killed controller never leaves a
service behind. At shutdown it closes the pool and removes its temp files. The service
writes nothing anywhere: a run reads it by scraping GET /metrics, as it would any service.

Handlers are wrapped by `timed(ctx, name, handler)`: the request's server time is
recorded under `name` (the same name the k6 scripts tag it with, for /status) and in
`http_server_request_duration_seconds` under its route (for /metrics), `ApiError`
becomes a JSON error with its status, `PoolTimeout` and `SlotTimeout` become 503.

One app runs per process. With INSTANCES > 1 the launcher runs that many worker
processes on one listening socket (demo.launcher); each has its own pool, cache and
slots, its /status shows its own `instance` (port-pid), and /metrics shows all of them
(`demo.services.exposition`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from demo.services.cache import TTLCache
from demo.services.db import Database, PoolTimeout
from demo.services.exposition import CONTENT_TYPE, Instruments
from demo.services.inflight import InflightLimit, SlotTimeout
from demo.services.metrics import EndpointMetrics
from demo.services.settings import Settings

log = logging.getLogger("demo")
Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error answered as JSON `{"error": message}` with HTTP `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ServiceContext:
    settings: Settings
    db: Database
    cache: TTLCache
    instruments: Instruments
    endpoints: EndpointMetrics = field(default_factory=EndpointMetrics)
    port: int = 0
    started_at: float = field(default_factory=time.monotonic)
    inflight: InflightLimit = field(default_factory=lambda: InflightLimit(1, 1.0))

    @property
    def instance(self) -> str:
        """This process among the service's instances: the port, and the pid when there are several."""
        return str(self.port) if self.settings.instances == 1 else f"{self.port}-{os.getpid()}"


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with 'Z' (SQLite returns naive datetimes: they are UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


async def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body validated as `model`; ApiError 422 naming the field otherwise."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, f"{where}: {first['msg']}") from None


def query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"query parameter {name}={value} must be between {lo} and {hi}")
    return value


def timed(ctx: ServiceContext, name: str, handler: Handler) -> Handler:
    delay_s = ctx.settings.slow_ms.get(name, 0.0) / 1000.0  # DEMO_SLOW_ENDPOINTS: a deliberate regression

    async def wrapped(request: Request) -> Response:
        started = time.perf_counter()
        response: Response
        try:
            if delay_s:
                await asyncio.sleep(delay_s)
            response = await handler(request)
        except ApiError as exc:
            response = JSONResponse({"error": exc.message}, status_code=exc.status)
        except (PoolTimeout, SlotTimeout) as exc:
            response = JSONResponse({"error": str(exc)}, status_code=503)
        except Exception:  # a bug: answer 500 and keep serving
            log.exception("%s failed", name)
            response = JSONResponse({"error": "internal error"}, status_code=500)
        seconds = time.perf_counter() - started
        ctx.endpoints.observe(name, seconds * 1000.0, response.status_code)
        route = request.scope.get("route")
        ctx.instruments.request(request.method, getattr(route, "path", request.url.path), response.status_code,
                                seconds)
        return response

    wrapped.__name__ = name
    return wrapped


def metrics_document(ctx: ServiceContext) -> dict[str, Any]:
    """GET /status: settings, pool gauges and counters, cache and endpoint counters."""
    s = ctx.settings
    stats = ctx.db.stats
    pool: dict[str, Any] = dict(ctx.db.pool_state())
    pool.update({
        "timeout_s": s.pool_timeout_s,
        "checkouts": stats.checkouts,
        "timeouts": stats.timeouts,
        "checkout_wait_ms_mean": stats.wait_ms_total / stats.checkouts if stats.checkouts else 0.0,
        "hold_ms_mean": stats.hold_ms_total / stats.holds if stats.holds else 0.0,
    })
    return {
        "service": s.service,
        "instance": ctx.instance,
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - ctx.started_at, 3),
        "settings": {
            "db": ctx.db.kind,
            "sqlite_path": ctx.db.sqlite_path,
            "db_pool_size": s.pool_size,
            "db_max_overflow": s.max_overflow,
            "db_pool_timeout_s": s.pool_timeout_s,
            "profile_db_ms": s.profile_db_ms if s.service == "profile-api" else None,
            "cache_ttl_s": s.cache_ttl_s,
            "instances": s.instances,
            "max_inflight": s.max_inflight if s.service == "shipping-api" else None,
            "carrier_ms": s.carrier_ms if s.service == "shipping-api" else None,
        },
        "pool": pool,
        "inflight": ctx.inflight.snapshot() if s.service == "shipping-api" else None,
        "cache": ctx.cache.snapshot(),
        "endpoints": ctx.endpoints.snapshot(),
    }


async def _watch_parent(pid: int) -> None:
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != pid:
            log.warning("parent process %d is gone; shutting down", pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def create_app(settings: Settings, build_routes: Callable[[ServiceContext], list[BaseRoute]],
               port: int = 0) -> Starlette:
    """The service's ASGI app; `build_routes(ctx)` gives its API routes."""
    instruments = Instruments(settings.service, settings.pool_size + settings.max_overflow)
    ctx = ServiceContext(settings=settings, db=Database(settings, instruments),
                         cache=TTLCache(settings.cache_ttl_s, on_lookup=instruments.cache_lookup),
                         instruments=instruments, port=port,
                         inflight=InflightLimit(settings.max_inflight, settings.inflight_timeout_s))

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": settings.service, "db": ctx.db.kind, "pid": os.getpid(),
                             "instances": settings.instances})

    async def status(_: Request) -> Response:
        return JSONResponse(metrics_document(ctx))

    async def metrics(_: Request) -> Response:
        return Response(instruments.exposition(), media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            await ctx.db.setup()
            await ctx.db.warm()
        except Exception as exc:
            where = ctx.db.engine.url.render_as_string(hide_password=True)
            raise RuntimeError(f"{settings.service}: cannot set up the database {where}: "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        watchdog = None
        if settings.parent_pid:
            watchdog = asyncio.get_running_loop().create_task(_watch_parent(settings.parent_pid))
        ctx.started_at = time.monotonic()
        try:
            yield
        finally:
            if watchdog is not None:
                watchdog.cancel()
            instruments.close()
            await ctx.db.dispose()
            if settings.temp_dir:
                shutil.rmtree(settings.temp_dir, ignore_errors=True)

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        *build_routes(ctx),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.ctx = ctx
    return app
