"""The services' TTL cache: counting, expiry, coalescing, invalidation."""

from __future__ import annotations

import asyncio

import pytest

from demo.services.cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_hits_until_the_ttl_expires_then_misses() -> None:
    clock = Clock()
    cache = TTLCache(ttl_s=10, clock=clock)
    loads: list[int] = []

    async def load() -> dict[str, int]:
        loads.append(1)
        return {"n": len(loads)}

    async def scenario() -> list[dict[str, int]]:
        out = [await cache.get_or_load("profile_get", "profile:1", load)]
        clock.now += 9.9
        out.append(await cache.get_or_load("profile_get", "profile:1", load))
        clock.now += 0.2
        out.append(await cache.get_or_load("profile_get", "profile:1", load))
        return out

    assert asyncio.run(scenario()) == [{"n": 1}, {"n": 1}, {"n": 2}]
    snap = cache.snapshot()
    assert (snap["hits"], snap["misses"], snap["hit_ratio"]) == (1, 2, pytest.approx(1 / 3))
    assert snap["endpoints"] == {"profile_get": {"hits": 1, "misses": 2, "coalesced": 0}}


def test_ttl_zero_is_off_and_counts_nothing() -> None:
    cache = TTLCache(ttl_s=0)

    async def load() -> int:
        return 1

    async def scenario() -> None:
        for _ in range(3):
            await cache.get_or_load("profile_get", "profile:1", load)

    asyncio.run(scenario())
    assert (cache.snapshot()["hits"], cache.snapshot()["misses"], cache.snapshot()["enabled"]) == (0, 0, False)


def test_concurrent_misses_share_one_load_and_count_as_hits() -> None:
    cache = TTLCache(ttl_s=10)
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return "value"

    async def scenario() -> list[str]:
        return await asyncio.gather(*(cache.get_or_load("profile_feed", "feed:7", load) for _ in range(5)))

    assert asyncio.run(scenario()) == ["value"] * 5
    assert loads == 1
    snap = cache.snapshot()
    assert (snap["hits"], snap["misses"], snap["coalesced"]) == (4, 1, 4)


def test_invalidation_drops_the_entry_and_a_load_in_flight_is_not_stored() -> None:
    cache = TTLCache(ttl_s=60)
    db = {"headline": "old"}

    async def load() -> str:
        seen = db["headline"]
        await asyncio.sleep(0.05)  # the write lands while this read is in flight
        return seen

    async def write() -> None:
        await asyncio.sleep(0.01)
        db["headline"] = "new"
        cache.invalidate("profile:1")

    async def scenario() -> tuple[str, str]:
        stale, _ = await asyncio.gather(cache.get_or_load("profile_get", "profile:1", load), write())
        fresh = await cache.get_or_load("profile_get", "profile:1", load)
        return stale, fresh

    assert asyncio.run(scenario()) == ("old", "new")
    assert cache.snapshot()["misses"] == 2


def test_prefix_invalidation_and_errors_are_not_cached() -> None:
    cache = TTLCache(ttl_s=60)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        return calls

    async def failing() -> int:
        raise LookupError("missing")

    async def scenario() -> None:
        await cache.get_or_load("jobs_list", "jobs_list:1::0", load)
        await cache.get_or_load("jobs_list", "jobs_list:2::0", load)
        await cache.get_or_load("jobs_detail", "jobs_detail:1", load)
        cache.invalidate_prefix("jobs_list:")
        await cache.get_or_load("jobs_list", "jobs_list:1::0", load)
        await cache.get_or_load("jobs_detail", "jobs_detail:1", load)
        for _ in range(2):
            with pytest.raises(LookupError):
                await cache.get_or_load("jobs_detail", "jobs_detail:999", failing)

    asyncio.run(scenario())
    assert calls == 4  # two lists, one detail, the invalidated list again; the detail was a hit
    assert cache.snapshot()["endpoints"]["jobs_detail"] == {"hits": 1, "misses": 3, "coalesced": 0}


def test_every_lookup_is_told_as_it_happens_and_totals_add_up() -> None:
    told: list[tuple[str, bool]] = []
    cache = TTLCache(ttl_s=60, on_lookup=lambda endpoint, hit: told.append((endpoint, hit)))
    release = asyncio.Event()

    async def slow_load() -> int:
        await release.wait()
        return 1

    async def scenario() -> None:
        first = asyncio.ensure_future(cache.get_or_load("profile_get", "profile:1", slow_load))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(cache.get_or_load("profile_get", "profile:1", slow_load))  # coalesced
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, second)
        await cache.get_or_load("profile_get", "profile:1", slow_load)  # a hit

    asyncio.run(scenario())
    assert told == [("profile_get", False), ("profile_get", True), ("profile_get", True)]
    assert (cache.snapshot()["hits"], cache.snapshot()["misses"], cache.snapshot()["coalesced"]) == (2, 1, 1)
