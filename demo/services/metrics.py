"""Server-side metrics of a demo service: per-endpoint timings, and the `app_*` writer.

`EndpointMetrics.observe(name, ms, status)` records one request. `snapshot()` is the
`endpoints` part of GET /metrics (cumulative). `InfluxReporter` writes, once a
second, to InfluxDB 1.x (`/write`, line protocol):

- `app_pool`     size, max_overflow, checked_out, overflow, waiting (gauges at the
                 write), waiting_max, checkouts, timeouts, checkout_wait_ms_mean,
                 checkout_wait_ms_p95, checkout_wait_ms_max, hold_ms_mean (interval;
                 the timing fields only in seconds that had checkouts)
- `app_cache`    hits, misses, coalesced (counts in the interval), entries, ttl_s
- `app_endpoint` per endpoint (tag `name`, the k6 request name): count, errors,
                 server_ms_mean, server_ms_p95, server_ms_max (interval; only
                 endpoints that served requests)

Tags on every point: `service`, `instance` (the port), and `testid` when
LOADBEARING_TESTID is set. A store that is down never slows requests: write errors
are counted (`write_errors` in GET /metrics) and the next second tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from core import measurements as names
from core.influx import InfluxClient, line, quote_ident
from core.percentile import nearest_rank
from demo.services.cache import TTLCache
from demo.services.db import Database

RECENT = 2048  # requests kept per endpoint for the /metrics p95


@dataclass
class _Endpoint:
    count: int = 0
    errors: int = 0
    total_ms: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    interval: list[float] = field(default_factory=list)
    interval_errors: int = 0


@dataclass
class EndpointMetrics:
    endpoints: dict[str, _Endpoint] = field(default_factory=dict)

    def observe(self, name: str, ms: float, status: int) -> None:
        ep = self.endpoints.setdefault(name, _Endpoint())
        ep.count += 1
        ep.total_ms += ms
        ep.interval.append(ms)
        ep.recent.append(ms)
        if status >= 500:
            ep.errors += 1
            ep.interval_errors += 1

    def take_interval(self) -> dict[str, tuple[list[float], int]]:
        out: dict[str, tuple[list[float], int]] = {}
        for name, ep in self.endpoints.items():
            if ep.interval:
                out[name] = (ep.interval, ep.interval_errors)
            ep.interval, ep.interval_errors = [], 0
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {
                "count": ep.count,
                "errors": ep.errors,
                "mean_ms": ep.total_ms / ep.count if ep.count else 0.0,
                "p95_ms": nearest_rank(ep.recent, 95) or 0.0,
            }
            for name, ep in sorted(self.endpoints.items())
        }


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def interval_lines(service_tags: dict[str, str], db: Database, cache: TTLCache,
                   endpoints: EndpointMetrics, ts_ms: int) -> list[str]:
    """The app_* points for the interval that ends now (resets the interval counters)."""
    ts = ts_ms * 1_000_000
    waits, holds, timeouts, waiting_max = db.stats.take_interval()
    pool = db.pool_state()
    pool_fields: dict[str, int | float] = {
        "size": pool["size"],
        "max_overflow": pool["max_overflow"],
        "checked_out": pool["checked_out"],
        "overflow": pool["overflow"],
        "waiting": pool["waiting"],
        "waiting_max": waiting_max,
        "checkouts": len(waits),
        "timeouts": timeouts,
    }
    if waits:  # timings only for seconds that had checkouts: no zeros to drag a mean down
        pool_fields.update({
            "checkout_wait_ms_mean": _mean(waits),
            "checkout_wait_ms_p95": nearest_rank(waits, 95) or 0.0,
            "checkout_wait_ms_max": float(max(waits)),
        })
    if holds:
        pool_fields["hold_ms_mean"] = _mean(holds)
    lines = [line(names.APP_POOL, service_tags, pool_fields, ts)]
    counts = cache.take_interval()
    lines.append(line(names.APP_CACHE, service_tags, {
        "hits": sum(c.hits for c in counts.values()),
        "misses": sum(c.misses for c in counts.values()),
        "coalesced": sum(c.coalesced for c in counts.values()),
        "entries": cache.entries,
        "ttl_s": float(cache.ttl_s),
    }, ts))
    for name, (samples, errors) in sorted(endpoints.take_interval().items()):
        lines.append(line(names.APP_ENDPOINT, {**service_tags, names.NAME: name}, {
            "count": len(samples),
            "errors": errors,
            "server_ms_mean": _mean(samples),
            "server_ms_p95": nearest_rank(samples, 95) or 0.0,
            "server_ms_max": float(max(samples)),
        }, ts))
    return lines


@dataclass
class InfluxReporter:
    """Writes `build_lines(ts_ms)` to InfluxDB every `interval_s` until `stop()`."""

    url: str
    db: str
    build_lines: Callable[[int], list[str]]
    interval_s: float = 1.0
    writes: int = 0
    write_errors: int = 0
    last_error: str | None = None
    _task: asyncio.Task[None] | None = None
    _db_ready: bool = False

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(**InfluxClient.from_url(self.url, db=self.db).http_options(), timeout=2.0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop and write the last partial interval."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._client() as client:
            await self._write(client)

    async def _run(self) -> None:
        async with self._client() as client:
            next_at = time.monotonic()
            while True:
                next_at += self.interval_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                await self._write(client)

    async def _write(self, client: httpx.AsyncClient) -> None:
        try:
            body = "\n".join(self.build_lines(int(time.time() * 1000)))
            if not self._db_ready:
                r = await client.post("/query", data={"q": f"CREATE DATABASE {quote_ident(self.db)}"})
                r.raise_for_status()
                self._db_ready = True
            r = await client.post("/write", params={"db": self.db, "precision": "n"}, content=body.encode())
            r.raise_for_status()
            self.writes += 1
        except Exception as exc:  # the store's trouble never reaches the requests
            self.write_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
