"""The capacity run's pure parts: the k6 ramp, each step's verdict, the knee, the run's verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.knees import CapacityRecord, ServiceKnee, StepRecord
from core.plan import Slo, capacity_modules, load_plan
from runners import capacity, k6
from tests.fixtures.runs import run_cli, write_plan

SLO = Slo(p95_ms=500, max_error_rate=0.01)


def _step(offered: float = 10.0, goodput: float = 10.0, p95: float | None = 100.0, error_rate: float = 0.0,
          requests: int = 40, dropped: int = 0) -> StepRecord:
    return StepRecord(step=0, offered_rps=offered, offered_iterations=offered, requests=requests,
                      achieved_rps=goodput, goodput_rps=goodput, p95_ms=p95, error_rate=error_rate, dropped=dropped)


# (step, expected reasons as substrings; [] = met the SLO and followed the offered rate)
VERDICTS = [
    (_step(), []),
    (_step(goodput=9.5), []),                                    # exactly 95 % of the offered rate
    (_step(goodput=9.4), ["goodput 9.4/s < 95% of the offered 10.0/s"]),
    (_step(p95=501), ["p95 501 ms > SLO 500 ms"]),
    (_step(error_rate=0.02), ["errors 2.00% > budget 1.00%"]),
    (_step(p95=900, goodput=5, error_rate=0.5), ["p95 900", "errors 50.00%", "goodput 5.0/s"]),
    (_step(goodput=8, dropped=12), ["k6 dropped 12 iterations"]),
    (_step(requests=0, goodput=0, p95=None), ["no request completed in the step"]),
]


@pytest.mark.parametrize(("step", "expected"), VERDICTS)
def test_a_step_breaks_on_p95_errors_or_goodput(step: StepRecord, expected: list[str]) -> None:
    reasons = capacity.judge(step, SLO, 0.95)
    assert bool(reasons) == bool(expected), reasons
    for want in expected:
        assert any(want in r for r in reasons), (want, reasons)


def _ok(ok: bool) -> StepRecord:
    s = _step()
    s.ok = ok
    return s


# (which steps met the SLO, (knee, first_failed))
KNEES = [
    ([True, True, False], (1, 2)),
    ([True, True, True], (2, None)),        # never broke: the last step is a lower bound
    ([False], (None, 0)),                   # broke at once: no knee
    ([True, False, True], (0, 1)),          # a later step does not count: the ramp stopped at the first break
    ([], (None, None)),
]


@pytest.mark.parametrize(("oks", "expected"), KNEES)
def test_the_knee_is_the_step_before_the_first_that_broke(oks: list[bool], expected: tuple[int | None, int | None]) -> None:
    assert capacity.settle([_ok(o) for o in oks]) == expected


def _service(oks: list[bool], goodputs: list[float], peak: float | None, instances: int = 1) -> ServiceKnee:
    steps = []
    for i, (ok, g) in enumerate(zip(oks, goodputs, strict=True)):
        s = _step(offered=g, goodput=g)
        s.step, s.ok = i, ok
        if not ok:
            s.reasons = ["goodput too low"]
        steps.append(s)
    svc = ServiceKnee(service="api", modules=["a"], instances=instances, peak_rps=peak, steps=steps)
    svc.knee, svc.first_failed = capacity.settle(steps)
    svc.note = capacity.describe(svc, "raise capacity.max")
    return svc


def test_knee_record_numbers_and_the_runs_verdict() -> None:
    svc = _service([True, True, False], [20, 24, 25], peak=45, instances=2)
    assert svc.knee_reached and svc.capacity_rps == 24 and svc.capacity_per_instance_rps == 12
    assert "knee at 24.0 req/s (12.0 per instance x 2)" in svc.note and "25.0 req/s, broke" in svc.note
    carried, short = capacity.verdict(CapacityRecord(mode="sequential", step_s=4, start=0.5, growth=1.2, max=4,
                                                     min_goodput=0.95, services=[svc]))
    assert not carried and "its knee (24.0 req/s with 2 instance(s)) is below the plan's peak of 45.0" in short[0]
    bound = _service([True, True], [20, 24], peak=10)
    assert not bound.knee_reached and bound.capacity_rps == 24
    assert "no knee up to 24.0 req/s" in bound.note and "at least 24.0 req/s" in bound.note
    assert capacity.verdict(CapacityRecord(mode="parallel", step_s=4, start=0.5, growth=1.2, max=4,
                                           min_goodput=0.95, services=[bound])) == (True, [])
    at_once = _service([False], [3], peak=10)
    assert at_once.capacity_rps is None and "the first step (3.0 req/s) already broke" in at_once.note
    assert "lower capacity.start" in at_once.note


def test_the_k6_ramp_holds_each_step_and_jumps_between_them(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, "http://127.0.0.1:9", [
        {"name": "a", "rate": 40, "duration": "5s", "service": "api", "max_vus": 90},
        {"name": "b", "vus": 2, "duration": "5s", "service": "api"},
        {"name": "c", "rate": 7, "duration": "5s", "service": "other"}],
        extra='[services.api]\n[services.other]\n[capacity]\nstep = "4s"\nstart = 0.5\ngrowth = 1.5\nmax = 1.2\n'
              "rates = { b = 3 }\n"))
    by_service = capacity_modules(plan)
    a = capacity.scenario(plan, plan.module("a"))
    assert a == {"executor": "ramping-arrival-rate", "startRate": 20, "timeUnit": "1s", "preAllocatedVUs": 90,
                 "maxVUs": 90, "gracefulStop": k6.GRACEFUL_STOP,
                 "stages": [{"duration": "4s", "target": 20}, {"duration": "0s", "target": 30},
                            {"duration": "4s", "target": 30}, {"duration": "0s", "target": 45},
                            {"duration": "4s", "target": 45}]}
    b = capacity.scenario(plan, plan.module("b"))  # a vus module ramps from capacity.rates
    assert (b["startRate"], b["timeUnit"], [s["target"] for s in b["stages"]]) == (150, "100s", [150, 225, 225, 338, 338])
    assert b["maxVUs"] == k6.default_max_vus(3.38)
    assert capacity.ramp_seconds(plan) == 12
    seq = capacity.phases(by_service, parallel=False)
    assert [(p.name, p.modules) for p in seq] == [("capacity-1-api", ("a", "b")), ("capacity-2-other", ("c",))]
    assert [(p.name, p.modules) for p in capacity.phases(by_service, parallel=True)] == [("capacity", ("a", "b", "c"))]


def test_capacity_options_are_checked_before_any_load(tmp_path: Path, lb_env: dict[str, str]) -> None:
    plan = write_plan(tmp_path, "http://127.0.0.1:9", [{"name": "a", "vus": 2, "duration": "2s", "service": "api"}],
                      extra="[services.api]\n")
    res = run_cli(["run", "capacity", "--plan", str(plan), "--influx-url", "http://127.0.0.1:9"], lb_env)
    assert res.code == 2 and "capacity.rates.a: module 'a' is planned with vus" in res.stderr, res.stderr
    res = run_cli(["run", "capacity", "--plan", str(plan), "--service", "ghost",
                   "--influx-url", "http://127.0.0.1:9"], lb_env)
    assert res.code == 2 and "capacity: no module loads 'ghost'" in res.stderr
    res = run_cli(["run", "parallel", "--plan", str(plan), "--parallel", "--influx-url", "http://127.0.0.1:9"], lb_env)
    assert res.code == 2 and "--service and --parallel are options of 'run capacity'" in res.stderr
    assert "Traceback" not in res.stderr
