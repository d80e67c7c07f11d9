"""`loadbearing run capacity` on the demo: each service's knee within a stated tolerance of the capacity
its parameters give, found in bounded time, each module stopped at its knee.

True capacities: profile-api serves db_pool_size / PROFILE_DB_MS = 2 / 0.05 s = 40 req/s;
shipping-api serves MAX_INFLIGHT / CARRIER_MS = 5 / 0.2 s = 25 req/s per instance.
Tolerance: a ramp of growth g finds the knee within one step below the true capacity C
(the step above it broke) and at most C / min_goodput above it (a step whose goodput is
that close to its offered rate still counts as followed); 10 % more below for a shared
2-core machine: knee in [0.9 x C / g, C / min_goodput].
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from core.influx import InfluxClient, quote_literal
from core.knees import CapacityRecord
from core.rundir import RunRecord
from demo import plan as demo_plan
from demo.launcher import ServiceHandle, start_service
from runners.capacity import DATA_LAG_S, LATE_LIMIT_S, CapacityOptions
from runners.controller import RunOptions, prepare
from runners.controller import run as run_strategy

pytestmark = pytest.mark.slow
TRUE_CAPACITY = {"profile-api": demo_plan.capacity_rps(2), "shipping-api": demo_plan.shipping_capacity_rps(1)}


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def demo_services() -> Iterator[dict[str, ServiceHandle]]:
    handles = {name: start_service(name) for name in ("core-api", "profile-api", "shipping-api")}
    yield handles
    for h in handles.values():
        h.stop()


def _run(tmp_path: Path, influx: InfluxClient, services: dict[str, ServiceHandle], *,
         parallel: bool) -> tuple[RunRecord, CapacityRecord, float]:
    plan = demo_plan.write_plan(tmp_path / "plan.toml", "test", services["core-api"].url,
                                services["profile-api"].url, shipping_url=services["shipping-api"].url)
    started = time.monotonic()
    run_dir, code = run_strategy(prepare(RunOptions(plan_path=plan, strategy="capacity", out_dir=tmp_path / "runs",
                                                    capacity=CapacityOptions(parallel=parallel))), influx)
    took = time.monotonic() - started
    record = run_dir.read_record()
    assert int(code) == 1, record.errors  # the knees are below the plan's peaks: exit 1
    cap = record.capacity
    assert cap is not None
    return record, cap, took


def test_each_knee_is_found_within_tolerance_and_each_module_stops_there(
        tmp_path: Path, influx: InfluxClient, demo_services: dict[str, ServiceHandle]) -> None:
    record, cap, took = _run(tmp_path, influx, demo_services, parallel=False)
    assert cap.mode == "sequential" and [p.name for p in record.phases] == [
        "capacity-1-profile-api", "capacity-2-shipping-api"]
    events = influx.rows('SELECT "title", "text" FROM "loadbearing_events" WHERE "testid" = '
                         f'{quote_literal(record.testid)} AND "kind" = \'knee\'')
    for svc in cap.services:
        true_c = TRUE_CAPACITY[svc.service]
        knee, failed = svc.knee_step, svc.failed_step
        assert knee is not None and failed is not None, svc.note
        assert 0.9 * true_c / cap.growth <= knee.goodput_rps <= true_c / cap.min_goodput, svc.note
        assert knee.ok and not failed.ok and svc.first_failed == svc.knee + 1  # type: ignore[operator]
        assert svc.stopped_early and len(svc.steps) < 12  # the ramp had more steps: stopped at the knee
        # nothing was sent to the service much after its failed step was judged
        module = svc.modules[0]
        last = influx.series(f'SELECT last("value") FROM "http_reqs" WHERE "testid" = '
                             f'{quote_literal(record.testid)} AND "module" = {quote_literal(module)}')
        last_s = last[0]["values"][0][0] / 1000.0
        assert failed.ended_at is not None
        assert last_s <= _t(failed.ended_at) + LATE_LIMIT_S + 3.0
        assert record.module(module).exit_codes == [105]  # k6 interrupted at the knee, its summary kept
        assert any(e["text"] == svc.note for e in events)  # the knee as a Grafana annotation
    # bounded: each service took its steps up to the first failed one, plus judging and start-up
    budget = sum((len(s.steps) * cap.step_s + DATA_LAG_S + LATE_LIMIT_S + 8.0) for s in cap.services)
    assert took <= budget, (took, budget)


def test_parallel_ramps_every_service_at_once(tmp_path: Path, influx: InfluxClient,
                                              demo_services: dict[str, ServiceHandle]) -> None:
    record, cap, _ = _run(tmp_path, influx, demo_services, parallel=True)
    assert cap.mode == "parallel" and [p.name for p in record.phases] == ["capacity"]
    for svc in cap.services:  # each judged on its own, within the same tolerance
        true_c = TRUE_CAPACITY[svc.service]
        assert svc.knee_reached and svc.capacity_rps is not None, svc.note
        assert 0.9 * true_c / cap.growth <= svc.capacity_rps <= true_c / cap.min_goodput, svc.note
    windows = {s.service: (_t(s.steps[0].started_at or ""), _t(s.steps[-1].ended_at or "")) for s in cap.services}
    (a0, a1), (b0, b1) = windows.values()
    assert a0 < b1 and b0 < a1  # the two ramps overlapped
