"""Table tests for the black-box inference (pure functions, no store)."""

from __future__ import annotations

import pytest

from policies.inference import clamps, concurrency
from policies.metrics import EndpointKey, EndpointStats, FailureGroup, Measurements
from policies.workload import service_unloaded_ms

KEY = EndpointKey("orders", "orders-api", "orders_get", "GET")


@pytest.mark.parametrize(("goodputs", "r0", "instances", "point", "declared", "matches"), [
    ([50, 49, 51, 50], (40.0, 41.0), 1, 2.0, 2, True),      # a pool of 2 held 40 ms
    ([50, 49, 51, 50], (40.0, 41.0), 1, 2.0, 4, False),     # ... is not a pool of 4
    ([100, 98, 101], (40.0, 42.0), 1, 4.0, 4, True),        # 4 workers of 40 ms
    ([97, 99, 100], (10.2, 10.6), 1, 1.0, 8, False),        # one event loop, CPU-bound: not the pool of 8
    ([120, 120, 120], (50.0, 50.0), 2, 3.0, 3, True),       # per instance: 2 instances of 3
])
def test_littles_law(goodputs: list[float], r0: tuple[float, float], instances: int, point: float,
                     declared: int, matches: bool) -> None:
    n = concurrency(goodputs, r0, instances)
    assert n is not None
    assert n.point == pytest.approx(point, rel=0.03)
    assert n.low <= 0.8 * n.point + 1e-9 and n.high >= 1.2 * n.point - 1e-9   # at least +-20 %
    assert n.matches(declared) is matches


def test_no_goodput_no_inference() -> None:
    assert concurrency([0, 0], (10.0, 12.0)) is None


@pytest.mark.parametrize(("group", "clamped"), [
    (FailureGroup("503", 300, 301.0, 303.0, 320.0), True),     # a pool's checkout timeout
    (FailureGroup("0", 40, 60_000.0, 60_001.0, 60_003.0, "1050"), True),   # k6's request timeout
    (FailureGroup("500", 300, 5.0, 80.0, 400.0), False),       # errors at any latency: not a timeout
    (FailureGroup("503", 5, 300.0, 300.0, 300.0), False),      # too few to call
])
def test_clamped_errors(group: FailureGroup, clamped: bool) -> None:
    m = Measurements(interval_s=1, endpoints={KEY: EndpointStats(KEY, 1000, 1, 1, 1, 1)}, failures={KEY: [group]})
    found = clamps(m)
    assert bool(found) is clamped
    if clamped:
        assert found[0].to_json()["clamp_ms"] == group.p50_ms and found[0].to_json()["status"] == group.status


@pytest.mark.parametrize(("pct", "expected"), [(50, 10.0), (40, 10.0), (60, 20.0), (62.5, 22.5), (99, 90.0),
                                                (99.5, 90.0)])
def test_percentile_grid_interpolates(pct: float, expected: float) -> None:
    m = Measurements(interval_s=1, percentiles={KEY: {50.0: 10.0, 60.0: 20.0, 65.0: 25.0, 99.0: 90.0}})
    assert m.percentile(KEY, pct) == pytest.approx(expected)


GET = EndpointKey("profile", "profile-api", "profile_get", "GET")
PUT = EndpointKey("profile", "profile-api", "profile_put", "PUT")


@pytest.mark.parametrize(("get", "put", "lo"), [
    # (min_ok, p50) per endpoint, each 250 GETs and 50 PUTs; lo = the mix's R0 (request-weighted)
    ((22.0, 900.0), (22.5, 901.0), (250 * 22.0 + 50 * 22.5) / 300),    # both answered once unqueued
    ((22.0, 900.0), (126.0, 902.0), (250 * 22.0 + 50 * 24.0) / 300),  # every PUT queued: its median, not its min
    ((22.0, 900.0), (126.0, 1010.0), (250 * 22.0 + 50 * 126.0) / 300),  # a slower PUT: its own fastest holds
    ((5.0, 5.5), (40.0, 41.0), (250 * 5.0 + 50 * 40.0) / 300),          # no queue: each its own fastest
])
def test_mix_r0_of_a_queue_saturated_from_its_first_request(get: tuple[float, float], put: tuple[float, float],
                                                          lo: float) -> None:
    m = Measurements(interval_s=1, endpoints={
        GET: EndpointStats(GET, 250, get[1], get[1], get[1], get[1], min_ok_ms=get[0], p1_ok_ms=get[0]),
        PUT: EndpointStats(PUT, 50, put[1], put[1], put[1], put[1], min_ok_ms=put[0], p1_ok_ms=put[0])})
    r0 = service_unloaded_ms(m, "profile-api")
    assert r0 is not None
    assert r0[0] == pytest.approx(lo)
    assert r0[1] >= r0[0]
