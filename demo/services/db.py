"""The database of a demo service: an async SQLAlchemy engine on a real QueuePool.

`Database(settings)` builds the engine from the settings: PostgreSQL (psycopg 3,
async) when `DATABASE_URL` is set, else an SQLite file (aiosqlite). The pool is
SQLAlchemy's `AsyncAdaptedQueuePool` (a `QueuePool`) with `pool_size`,
`max_overflow` and `pool_timeout` from `DB_POOL_SIZE`, `DB_MAX_OVERFLOW`,
`DB_POOL_TIMEOUT`; waiters are served first come, first served.

`Database.connection(hold_s)` checks a connection out, records how long the
checkout waited, and on exit ends any open transaction, then keeps the connection
checked out until `hold_s` has passed since the checkout: a request that uses it
occupies one pool slot for max(hold_s, its real queries), so a saturated pool
serves exactly pool_size / hold_s requests per second. A checkout that waits
longer than the pool timeout raises `PoolTimeout` (the API answers 503).

Each checkout, return and timeout is told to the `PoolObserver` given (the service's
metrics, `demo.services.exposition`) as it happens; `stats` keeps the cumulative
counters this process's GET /status shows.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import event, func, select, text
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool

from demo.services import schema, seed_data
from demo.services.settings import Settings

SEED = 20250106
LATENESS_ALPHA = 0.05
MAX_LATENESS_S = 0.005


class PoolTimeout(Exception):
    """No pooled connection became free within DB_POOL_TIMEOUT."""


def async_url(url: str) -> str:
    """DATABASE_URL with an async driver: postgresql(+psycopg) or sqlite+aiosqlite."""
    for prefix in ("postgresql+psycopg://", "postgresql+asyncpg://", "sqlite+aiosqlite://"):
        if url.startswith(prefix):
            return url
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://"):]
    raise ValueError(
        f"DATABASE_URL scheme of {url.split('://')[0]!r} is not supported; "
        "use postgresql://user@host:port/db or sqlite:///path/to/file.db"
    )


@dataclass
class PoolStats:
    """Cumulative checkout counters of this process's pool."""

    waiting: int = 0
    checkouts: int = 0
    timeouts: int = 0
    wait_ms_total: float = 0.0
    hold_ms_total: float = 0.0
    holds: int = 0


class PoolObserver(Protocol):
    """What the pool tells as it happens: connections in use and requests waiting after each
    change, each checkout's wait, each connection's use time, each checkout that timed out."""

    def pool_state(self, used: int, pending: int) -> None: ...

    def pool_wait(self, seconds: float) -> None: ...

    def pool_use(self, seconds: float) -> None: ...

    def pool_timeout(self) -> None: ...


class _Unobserved:
    def pool_state(self, used: int, pending: int) -> None:
        pass

    def pool_wait(self, seconds: float) -> None:
        pass

    def pool_use(self, seconds: float) -> None:
        pass

    def pool_timeout(self) -> None:
        pass


class Database:
    """Engine, pool instrumentation, schema set-up and seeding for one service."""

    def __init__(self, settings: Settings, observer: PoolObserver | None = None) -> None:
        self.settings = settings
        self.observer: PoolObserver = observer or _Unobserved()
        self._tmpdir: str | None = None
        self.sqlite_path: str | None = None
        if settings.database_url:
            url = async_url(settings.database_url)
        else:
            path = settings.sqlite_path
            if path is None:
                self._tmpdir = tempfile.mkdtemp(prefix=f"loadbearing-{settings.service}-")
                path = str(Path(self._tmpdir) / f"{settings.service}.sqlite3")
            self.sqlite_path = path
            url = f"sqlite+aiosqlite:///{path}"
        self.kind = "postgresql" if url.startswith("postgresql") else "sqlite"
        connect_args: dict[str, Any] = {"timeout": 30} if self.kind == "sqlite" else {}
        self.engine: AsyncEngine = create_async_engine(
            url,
            poolclass=AsyncAdaptedQueuePool,
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout_s,
            connect_args=connect_args,
        )
        if self.kind == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.stats = PoolStats()
        self._lateness = 0.0  # seconds; learned, see connection()

    @property
    def pool(self) -> QueuePool:
        pool = self.engine.sync_engine.pool
        assert isinstance(pool, QueuePool)
        return pool

    @asynccontextmanager
    async def connection(self, hold_s: float = 0.0) -> AsyncIterator[AsyncConnection]:
        """A pooled connection held for at least `hold_s` (see the module docstring)."""
        stats = self.stats
        observer = self.observer
        loop = asyncio.get_running_loop()
        asked = loop.time()
        stats.waiting += 1
        observer.pool_state(self.pool.checkedout(), stats.waiting)
        try:
            conn = await self.engine.connect()
        except SATimeoutError:
            stats.timeouts += 1
            observer.pool_timeout()
            raise PoolTimeout(
                f"no database connection free within {self.settings.pool_timeout_s:g}s "
                f"(pool size {self.settings.pool_size}, max overflow {self.settings.max_overflow})"
            ) from None
        finally:
            stats.waiting -= 1
            observer.pool_state(self.pool.checkedout(), stats.waiting)
        got = loop.time()
        wait_ms = (got - asked) * 1000.0
        stats.checkouts += 1
        stats.wait_ms_total += wait_ms
        observer.pool_wait(wait_ms / 1000.0)
        try:
            yield conn
        finally:
            planned_end: float | None = None
            try:
                if conn.in_transaction():
                    await conn.rollback()
                if hold_s > 0 and got + hold_s - loop.time() > 0:
                    # Wake early by the measured lateness (timer rounding, loop lag, the
                    # connection's return) so that the slot is busy hold_s on average.
                    planned_end = got + hold_s - self._lateness
                    await asyncio.sleep(max(0.0, planned_end - loop.time()))
            finally:
                await conn.close()
                released = loop.time()
                if planned_end is not None:
                    late = min(MAX_LATENESS_S, max(0.0, released - planned_end))
                    self._lateness += LATENESS_ALPHA * (late - self._lateness)
                hold_ms = (released - got) * 1000.0
                stats.holds += 1
                stats.hold_ms_total += hold_ms
                observer.pool_use(hold_ms / 1000.0)
                observer.pool_state(self.pool.checkedout(), stats.waiting)

    def pool_state(self) -> dict[str, int]:
        """Instantaneous pool gauges: size, checked_out, overflow (in use above size), waiting."""
        pool = self.pool
        return {
            "size": pool.size(),
            "max_overflow": self.settings.max_overflow,
            "checked_out": pool.checkedout(),
            "overflow": max(0, pool.overflow()),
            "waiting": self.stats.waiting,
        }

    async def setup(self) -> None:
        """Create the service's tables and seed them when empty (idempotent, safe to race)."""
        service = self.settings.service
        metadata = schema.METADATA[service]
        async with self.engine.begin() as conn:
            if self.kind == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 7_100_003})
            await conn.run_sync(metadata.create_all)
            marker = schema.SEED_MARKER[service]
            count = (await conn.execute(select(func.count()).select_from(marker))).scalar_one()
            if count == 0:
                await _seed(conn, service)
                if self.kind == "postgresql":
                    for table in metadata.sorted_tables:
                        if "id" in table.c:
                            await conn.execute(text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                f"COALESCE((SELECT max(id) FROM {table.name}), 0) + 1, false)"))

    async def warm(self) -> None:
        """Open `pool_size` connections up front (as pools with a minimum idle size do)."""
        conns = [await self.engine.connect() for _ in range(self.settings.pool_size)]
        for conn in conns:
            await conn.close()

    async def dispose(self) -> None:
        """Close every pooled connection; remove the temporary SQLite file, if any."""
        await self.engine.dispose()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


async def _seed(conn: AsyncConnection, service: str) -> None:
    import random

    rng = random.Random(SEED)
    if service == "shipping-api":
        await conn.execute(schema.carrier_rates.insert(), list(seed_data.carrier_rate_rows(rng)))
    elif service == "profile-api":
        profile_list = list(seed_data.profile_rows(rng))
        follows = seed_data.follow_rows(rng)
        followers: dict[int, int] = {}
        for row in follows:
            followers[row["followee_id"]] = followers.get(row["followee_id"], 0) + 1
        for row in profile_list:
            row["followers"] = followers.get(row["id"], 0)
        await conn.execute(schema.profiles.insert(), profile_list)
        await conn.execute(schema.follows.insert(), follows)
        await conn.execute(schema.posts.insert(), list(seed_data.post_rows(rng)))
    else:
        await conn.execute(schema.jobs.insert(), list(seed_data.job_rows(rng)))
        await conn.execute(schema.products.insert(), list(seed_data.product_rows(rng)))
        await conn.execute(schema.notifications.insert(), list(seed_data.notification_rows(rng)))
