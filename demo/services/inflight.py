"""A per-instance limit on requests in flight: the worker slots of one instance.

`InflightLimit(limit, timeout_s)` lets at most `limit` requests of this process hold a
slot at once, first come first served; the others wait in its queue. A request that
waits longer than `timeout_s` raises `SlotTimeout` (the API answers 503). With each
request holding its slot for a fixed time S, one instance serves at most limit / S
requests per second, whatever the CPU or the database could do: only more instances
(processes, each with its own slots) serve more.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


class SlotTimeout(Exception):
    """No slot became free within the timeout."""


@dataclass
class InflightLimit:
    limit: int
    timeout_s: float
    busy: int = 0
    waiting: int = 0
    served: int = 0
    timeouts: int = 0
    _slots: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.limit)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout_s)
        except TimeoutError:
            self.timeouts += 1
            raise SlotTimeout(f"no request slot free within {self.timeout_s:g}s "
                              f"({self.limit} requests in flight per instance)") from None
        finally:
            self.waiting -= 1
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self.served += 1
            self._slots.release()

    def snapshot(self) -> dict[str, Any]:
        return {"limit": self.limit, "busy": self.busy, "waiting": self.waiting, "served": self.served,
                "timeouts": self.timeouts, "timeout_s": self.timeout_s}
