"""An in-process TTL cache for cacheable GETs, with hit/miss counters.

Contract:
- `ttl_s == 0` turns the cache off: every call loads, and no hit or miss is counted.
- An entry lives `ttl_s` from when it was filled; hits do not extend it.
- Concurrent misses on one key are coalesced: the first loads, the others wait for
  its result and count as hits (they cost the database nothing).
- `invalidate(key)` / `invalidate_prefix(prefix)` drop entries, and a load that was in
  flight when its key was invalidated is returned to its callers but not stored,
  so a write is never hidden by a stale read that finished after it.
- Counters are kept per endpoint name (cumulative), and each lookup is told to
  `on_lookup(endpoint, hit)` as it happens (the service's metrics).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_ENTRIES = 100_000


@dataclass
class CacheCounts:
    hits: int = 0
    misses: int = 0
    coalesced: int = 0

    def add(self, other: CacheCounts) -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.coalesced += other.coalesced


@dataclass
class _Entry:
    expires: float
    value: Any


@dataclass
class TTLCache:
    ttl_s: float
    max_entries: int = MAX_ENTRIES
    clock: Callable[[], float] = time.monotonic
    totals: dict[str, CacheCounts] = field(default_factory=dict)
    on_lookup: Callable[[str, bool], None] | None = None
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _inflight: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    _generation: dict[str, int] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    @property
    def entries(self) -> int:
        """Entries stored now (expired ones included until they are looked up or evicted)."""
        return len(self._entries)

    def _count(self, endpoint: str, kind: str) -> None:
        counts = self.totals.setdefault(endpoint, CacheCounts())
        setattr(counts, kind, getattr(counts, kind) + 1)
        if kind == "coalesced":
            counts.hits += 1
        if self.on_lookup is not None:
            self.on_lookup(endpoint, kind != "misses")

    async def get_or_load(self, endpoint: str, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value of `key`, or `await load()` (stored for ttl_s). Exceptions are not cached."""
        if not self.enabled:
            return await load()
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None:
            if entry.expires > now:
                self._count(endpoint, "hits")
                return entry.value
            del self._entries[key]
        pending = self._inflight.get(key)
        if pending is not None:
            self._count(endpoint, "coalesced")
            return await asyncio.shield(pending)
        self._count(endpoint, "misses")
        generation = self._generation.get(key, 0)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            self._inflight.pop(key, None)
        if self._generation.get(key, 0) == generation:
            self._store(key, value)
        future.set_result(value)
        return value

    def _store(self, key: str, value: Any) -> None:
        if len(self._entries) >= self.max_entries:
            now = self.clock()
            for k in [k for k, e in self._entries.items() if e.expires <= now]:
                del self._entries[k]
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = _Entry(self.clock() + self.ttl_s, value)

    def invalidate(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)
            if key in self._inflight:
                self._generation[key] = self._generation.get(key, 0) + 1

    def invalidate_prefix(self, prefix: str) -> None:
        self.invalidate(*[k for k in self._entries if k.startswith(prefix)],
                        *[k for k in self._inflight if k.startswith(prefix)])

    def total(self) -> CacheCounts:
        out = CacheCounts()
        for counts in self.totals.values():
            out.add(counts)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Cumulative counters for GET /status."""
        total = self.total()
        looked = total.hits + total.misses
        return {
            "enabled": self.enabled,
            "ttl_s": self.ttl_s,
            "entries": self.entries,
            "hits": total.hits,
            "misses": total.misses,
            "coalesced": total.coalesced,
            "hit_ratio": (total.hits / looked) if looked else None,
            "endpoints": {
                name: {"hits": c.hits, "misses": c.misses, "coalesced": c.coalesced}
                for name, c in sorted(self.totals.items())
            },
        }
