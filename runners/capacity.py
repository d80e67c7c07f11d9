"""`loadbearing run capacity`: per service, a stepped arrival-rate ramp that stops at the knee.

The plan's `[capacity]` table (core.plan.CapacityRamp) gives the steps: step k offers each
module `base x start x growth^k` iterations/s for `step` seconds (k6's
`ramping-arrival-rate`, with a jump between steps), within `max` and `time_limit`. The
modules of one service ramp together; services run one after another (sequential, the
default: they do not disturb each other) or all at once (`parallel`), each judged and
stopped on its own.

How the controller watches: after each step's window has reached InfluxDB, `KneeWatcher`
asks the store for that window's aggregates (count, successful count and p95 of the
service's requests, iterations k6 dropped), the same server-side aggregates the policies
use (true percentiles over every runner's samples). k6 thresholds with `abortOnFail`
cannot do this: they are cumulative over the run (a p95 over the whole ramp lags the
step that broke, and goodput against a changing offered rate is not expressible), and
the runners' live REST metrics carry per-runner percentiles only, which cannot be merged
across runners.

A step breaks when its p95 is over the SLO, its error rate over the budget, or its
successful requests/s fall below `min_goodput` of the offered rate (the service stopped
following the load; k6 dropping iterations counts against it). The first step that
breaks ends the service's ramp: its runners are stopped, and the knee is the step
before it. k6 stamps a request's samples when it completes, so each window is shifted by
the service's unloaded latency (the median of its first step) to count the requests
that arrived in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core import measurements as names
from core.durations import format_duration
from core.errors import RunError
from core.influx import InfluxClient, quote_literal
from core.knees import CapacityRecord, ServiceKnee, StepRecord
from core.plan import Module, Plan, Slo
from core.rundir import iso
from runners import k6
from runners.strategies import Phase

DATA_LAG_S = 1.5          # k6 pushes to InfluxDB every second: a window is judged this long after it ends
LATE_LIMIT_S = 6.0        # ... or, when the store shows no sample after the window yet, at most this long
EARLY_LEAD_S = 1.0        # the store holds a sample this far past the window: the window's pushes are in


@dataclass(frozen=True)
class CapacityOptions:
    """What `run capacity` ramps: these services (default: the plan's), one at a time or together."""

    parallel: bool = False
    services: list[str] | None = None


def phases(by_service: dict[str, list[Module]], parallel: bool) -> list[Phase]:
    if parallel:
        return [Phase("capacity", tuple(m.name for mods in by_service.values() for m in mods), ramp=True)]
    return [Phase(f"capacity-{i + 1}-{service}", tuple(m.name for m in mods), ramp=True)
            for i, (service, mods) in enumerate(by_service.items())]


def scenario(plan: Plan, module: Module) -> dict[str, Any]:
    """The k6 scenario of a module's ramp: `ramping-arrival-rate`, one held stage per step."""
    base = plan.capacity_base_rate(module)
    assert base is not None, "capacity_modules() refuses modules without a base rate"
    rates = plan.capacity.step_rates(base)
    unit = k6.time_unit(rates)
    hold = format_duration(plan.capacity.step_s)
    stages: list[dict[str, Any]] = []
    for i, rate in enumerate(rates):
        if i:
            stages.append({"duration": "0s", "target": round(rate * unit)})
        stages.append({"duration": hold, "target": round(rate * unit)})
    max_vus = module.max_vus or k6.default_max_vus(max(rates))
    return {"executor": "ramping-arrival-rate", "startRate": round(rates[0] * unit), "timeUnit": f"{unit}s",
            "preAllocatedVUs": max_vus, "maxVUs": max_vus, "gracefulStop": k6.GRACEFUL_STOP, "stages": stages}


def ramp_seconds(plan: Plan) -> float:
    return plan.capacity.steps * plan.capacity.step_s


def judge(step: StepRecord, slo: Slo, min_goodput: float) -> list[str]:
    """Why a step broke (empty: it met the SLO and followed the offered rate)."""
    reasons: list[str] = []
    if step.requests == 0:
        return [f"no request completed in the step (offered {step.offered_rps:.1f}/s)"]
    if step.p95_ms is not None and step.p95_ms > slo.p95_ms:
        reasons.append(f"p95 {step.p95_ms:.0f} ms > SLO {slo.p95_ms:g} ms")
    if step.error_rate > slo.max_error_rate:
        reasons.append(f"errors {step.error_rate:.2%} > budget {slo.max_error_rate:.2%}")
    if step.goodput_rps < min_goodput * step.offered_rps:
        why = f"goodput {step.goodput_rps:.1f}/s < {min_goodput:.0%} of the offered {step.offered_rps:.1f}/s"
        if step.dropped:
            why += f" (k6 dropped {step.dropped} iterations: no VU free; raise the module's max_vus if the " \
                   "service was still fast)"
        reasons.append(why)
    return reasons


def settle(steps: list[StepRecord]) -> tuple[int | None, int | None]:
    """(knee, first_failed): the highest step before the first that broke, and that one."""
    for i, step in enumerate(steps):
        if not step.ok:
            return (i - 1 if i > 0 else None), i
    return (len(steps) - 1 if steps else None), None


def describe(svc: ServiceKnee, mode_hint: str) -> str:
    """The ramp's finding in words (run.json `note`, the knee event, the final table)."""
    knee, failed = svc.knee_step, svc.failed_step
    per = f" ({svc.capacity_per_instance_rps:.1f} per instance x {svc.instances})" if svc.instances > 1 \
        and svc.capacity_per_instance_rps is not None else ""
    if failed is not None and knee is None:
        return (f"{svc.service}: the first step ({failed.offered_rps:.1f} req/s) already broke: "
                f"{'; '.join(failed.reasons)}; lower capacity.start to find the knee")
    if failed is not None and knee is not None:
        return (f"{svc.service}: knee at {knee.goodput_rps:.1f} req/s{per} (step {svc.knee + 1 if svc.knee is not None else 0}, "
                f"offered {knee.offered_rps:.1f}/s, p95 {knee.p95_ms or 0:.0f} ms); the next step, "
                f"{failed.offered_rps:.1f} req/s, broke: {'; '.join(failed.reasons)}")
    if knee is not None:
        return (f"{svc.service}: no knee up to {knee.offered_rps:.1f} req/s (every step met the SLO): its capacity "
                f"is at least {knee.goodput_rps:.1f} req/s{per}; {mode_hint}")
    return f"{svc.service}: no step was judged"


@dataclass
class _Ramp:
    knee: ServiceKnee
    modules: list[Module]
    t0: float = 0.0
    shift_s: float | None = None
    next_step: int = 0
    done: bool = True


@dataclass
class KneeWatcher:
    """Judges each step of each service from the store as the ramp goes (see the module doc).

    `begin(services, t0)` when a phase starts; `tick(now)` every so often: it returns the
    services whose ramp just broke (the caller stops their runners); `finish(now)` when the
    phase has ended, to judge the steps left. `record` holds every step and knee so far.
    """

    influx: InfluxClient
    testid: str
    plan: Plan
    by_service: dict[str, list[Module]]
    mode: str
    on_knee: Callable[[ServiceKnee, float], None] = lambda svc, ts: None
    record: CapacityRecord = field(init=False)
    _ramps: dict[str, _Ramp] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        cap = self.plan.capacity
        self.record = CapacityRecord(mode=self.mode, step_s=cap.step_s, start=cap.start, growth=cap.growth,
                                     max=cap.max, min_goodput=cap.min_goodput)
        for service, mods in self.by_service.items():
            settings = self.plan.services.get(service)
            knee = ServiceKnee(service=service, modules=[m.name for m in mods],
                               instances=(settings.instances if settings and settings.instances else 1))
            self.record.services.append(knee)
            self._ramps[service] = _Ramp(knee=knee, modules=mods)

    def begin(self, services: list[str], t0: float) -> None:
        for service in services:
            ramp = self._ramps[service]
            ramp.t0, ramp.done, ramp.next_step, ramp.shift_s = t0, False, 0, None

    def active(self) -> list[str]:
        return [s for s, r in self._ramps.items() if not r.done]

    def tick(self, now: float) -> list[str]:
        broke: list[str] = []
        for service, ramp in self._ramps.items():
            while not ramp.done and self._judge_next(service, ramp, now, final=False):
                if ramp.done and ramp.knee.first_failed is not None:
                    broke.append(service)
        return broke

    def finish(self, now: float) -> None:
        """Judge the steps whose windows have passed (the runners have ended), then close every ramp."""
        for service, ramp in self._ramps.items():
            while not ramp.done and self._judge_next(service, ramp, now, final=True):
                pass
            if not ramp.done:
                ramp.done = True
                self._close(ramp, now)

    # -- one step ---------------------------------------------------------------------------

    def _judge_next(self, service: str, ramp: _Ramp, now: float, final: bool) -> bool:
        """Judge the next step if its window is due; True when it judged one."""
        cap = self.plan.capacity
        step_s = cap.step_s
        k = ramp.next_step
        if k >= cap.steps:
            ramp.done = True
            self._close(ramp, now)
            return False
        if ramp.shift_s is None:
            if now < ramp.t0 + step_s + DATA_LAG_S and not final:
                return False
            ramp.shift_s = self._unloaded_s(service, ramp.t0, ramp.t0 + step_s)
        start = ramp.t0 + k * step_s + ramp.shift_s
        end = start + step_s
        if not final:
            if now < end + DATA_LAG_S:
                return False
            if now < end + LATE_LIMIT_S and not self._has_data_after(service, end + EARLY_LEAD_S):
                return False
        elif now < end:
            return False  # the ramp ended before this step's window did: not judged
        step = self._measure(service, ramp, k, start, end)
        step.reasons = judge(step, self.plan.slo, cap.min_goodput)
        step.ok = not step.reasons
        ramp.knee.steps.append(step)
        ramp.next_step = k + 1
        if not step.ok or ramp.next_step >= cap.steps:
            ramp.done = True
            ramp.knee.stopped_early = not step.ok and ramp.next_step < cap.steps
            self._close(ramp, now)
        return True

    def _close(self, ramp: _Ramp, now: float) -> None:
        knee = ramp.knee
        knee.knee, knee.first_failed = settle(knee.steps)
        knee.peak_rps = self._peak_rps(ramp)
        hint = ("run it with a higher capacity.max or time_limit to find the knee" if knee.knee_reached is False
                else "")
        knee.note = describe(knee, hint)
        if knee.steps:
            failed = knee.failed_step
            at = self._ts(failed.started_at) if failed is not None else None
            self.on_knee(knee, at if at is not None else now)

    def _where(self, service: str, start: float, end: float) -> str:
        return (f'"{names.TESTID}" = {quote_literal(self.testid)} AND "{names.SERVICE}" = {quote_literal(service)} '
                f"AND time >= {int(start * 1e9)} AND time < {int(end * 1e9)}")

    def _value(self, q: str) -> float | None:
        series = self.influx.series(q)
        if not series or not series[0].get("values"):
            return None
        value = series[0]["values"][0][1]
        return None if value is None else float(value)

    def _unloaded_s(self, service: str, start: float, end: float) -> float:
        """The median request duration of the first step (s), at most half a step."""
        try:
            med = self._value(f'SELECT median("value") FROM "{names.HTTP_REQ_DURATION}" WHERE {self._where(service, start, end)}')
        except RunError:
            med = None
        return min((med or 0.0) / 1000.0, self.plan.capacity.step_s / 2)

    def _has_data_after(self, service: str, at: float) -> bool:
        try:
            n = self._value(f'SELECT count("value") FROM "{names.HTTP_REQS}" WHERE {self._where(service, at, at + 3600)}')
        except RunError:
            return False
        return bool(n)

    def _measure(self, service: str, ramp: _Ramp, k: int, start: float, end: float) -> StepRecord:
        where = self._where(service, start, end)
        step_s = end - start
        requests = self._value(f'SELECT count("value") FROM "{names.HTTP_REQ_DURATION}" WHERE {where}') or 0.0
        p95 = self._value(f'SELECT percentile("value", 95) FROM "{names.HTTP_REQ_DURATION}" WHERE {where}')
        failed = self._value(f'SELECT sum("value") FROM "{names.HTTP_REQ_FAILED}" WHERE {where}') or 0.0
        dropped = self._value(f'SELECT sum("value") FROM "{names.DROPPED_ITERATIONS}" WHERE {where}') or 0.0
        per_iteration = self._requests_per_iteration(service, ramp.t0, end)
        iterations = 0.0
        offered = 0.0
        for m in ramp.modules:
            base = self.plan.capacity_base_rate(m)
            assert base is not None
            rate = self.plan.capacity.step_rates(base)[k]
            iterations += rate
            offered += rate * per_iteration.get(m.name, 1.0)
        ok_requests = max(0.0, requests - failed)
        return StepRecord(
            step=k, offered_rps=round(offered, 3), offered_iterations=round(iterations, 3),
            started_at=iso(start), ended_at=iso(end), requests=int(requests),
            achieved_rps=round(requests / step_s, 3), goodput_rps=round(ok_requests / step_s, 3),
            p95_ms=None if p95 is None else round(p95, 3),
            error_rate=round(failed / requests, 6) if requests else 0.0, dropped=int(dropped))

    def _requests_per_iteration(self, service: str, start: float, end: float) -> dict[str, float]:
        """Per module: requests per completed iteration so far (1 when no iteration completed yet)."""
        where = self._where(service, start, end)
        out: dict[str, float] = {}
        reqs = self.influx.series(f'SELECT count("value") FROM "{names.HTTP_REQS}" WHERE {where} GROUP BY "{names.MODULE}"')
        its = self.influx.series(f'SELECT count("value") FROM "{names.ITERATIONS}" WHERE {where} GROUP BY "{names.MODULE}"')
        counts = {s.get("tags", {}).get(names.MODULE, ""): float(s["values"][0][1] or 0) for s in its if s.get("values")}
        for s in reqs:
            name = s.get("tags", {}).get(names.MODULE, "")
            n_it = counts.get(name, 0.0)
            if s.get("values") and n_it > 0:
                out[name] = float(s["values"][0][1] or 0) / n_it
        return out

    def _peak_rps(self, ramp: _Ramp) -> float | None:
        """The plan's offered requests/s for the service (modules planned with `rate`), or None."""
        if any(m.rate is None for m in ramp.modules) or not ramp.knee.steps:
            return None
        first = ramp.knee.steps[0]
        per_it = first.offered_rps / first.offered_iterations if first.offered_iterations else 1.0
        return round(sum(m.rate or 0.0 for m in ramp.modules) * per_it, 3)

    @staticmethod
    def _ts(iso_text: str | None) -> float | None:
        return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp() if iso_text else None


def verdict(record: CapacityRecord) -> tuple[bool, list[str]]:
    """(every service carries its planned peak, the services that do not, in words)."""
    short = []
    for svc in record.services:
        cap = svc.capacity_rps
        if not svc.steps:
            short.append(f"{svc.service}: no step was judged")
        elif cap is None:
            short.append(svc.note)
        elif svc.knee_reached and svc.peak_rps is not None and cap < svc.peak_rps:
            short.append(f"{svc.service}: its knee ({cap:.1f} req/s with {svc.instances} instance(s)) is below the "
                         f"plan's peak of {svc.peak_rps:.1f} req/s")
    return not short, short
