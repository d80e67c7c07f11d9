"""Offered versus achieved load, per module and service, from the plan and the measurements.

- Offered load (requests/s) of an open-model module (`rate`): rate x requests per
  iteration. Of a closed-model module (`vus`): N x k / (Z + k x R0), where k is
  requests per iteration, Z the think time per iteration (iteration time not spent
  in requests, from k6's summaries) and R0 the unloaded request latency (the
  fastest successful request of each endpoint, request-weighted). That is the rate
  the users would generate if the service answered at its unloaded speed.
- Per service and time bucket: completed requests/s (X), in-flight requests by
  Little's law (L = sum of count x mean duration / bucket length), the worst p95
  and the unloaded latency of that bucket's request mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from policies.inputs import ModuleRun, RunInputs
from policies.metrics import EndpointKey, EndpointStats, Measurements

MIN_UNLOADED_MS = 0.1
R0_HIGH_CAP = 1.5


def unloaded_ms(stats: EndpointStats) -> float:
    """R0 of an endpoint: its fastest successful request (a lower bound of its service time)."""
    base = stats.min_ok_ms if stats.min_ok_ms is not None else stats.p50_ms
    return max(MIN_UNLOADED_MS, base)


@dataclass
class ServiceBucket:
    t_ms: int
    requests: int
    throughput: float        # completed requests/s
    inflight: float          # Little's law
    mean_ms: float
    unloaded_ms: float       # R0 of this bucket's request mix
    p95_max_ms: float        # worst endpoint p95 in the bucket
    failed: int
    dropped: float = 0.0     # dropped iterations of the service's modules

    @property
    def queueing_ratio(self) -> float:
        """Mean latency over unloaded latency (1 = no queueing)."""
        return self.mean_ms / self.unloaded_ms if self.unloaded_ms > 0 else 1.0

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    @property
    def goodput(self) -> float:
        """Successful responses per second (failures are completions, not throughput)."""
        return (self.requests - self.failed) / self.requests * self.throughput if self.requests else 0.0


@dataclass
class Offered:
    rps: float
    derivation: list[dict[str, Any]] = field(default_factory=list)


def module_offered(mod: ModuleRun, m: Measurements) -> dict[str, Any]:
    """Offered requests/s of one module at the plan's peak, with how it was derived."""
    k = mod.requests_per_iteration()
    eps = [s for key, s in m.endpoints.items() if key.module == mod.name]
    reqs = sum(s.requests for s in eps)
    achieved = reqs / mod.seconds if mod.seconds > 0 else 0.0
    r0 = (sum(unloaded_ms(s) * s.requests for s in eps) / reqs) if reqs else None
    if mod.peak_rate is not None:
        return {"module": mod.name, "model": "open", "rate_iter_s": mod.peak_rate,
                "requests_per_iteration": round(k, 4), "offered_rps": round(mod.peak_rate * k, 3),
                "achieved_rps": round(achieved, 3)}
    vus = mod.peak_vus
    if vus is not None and r0 is not None and mod.summaries:
        z = mod.think_ms()
        offered = vus * k / ((z + k * r0) / 1000.0) if (z + k * r0) > 0 else achieved
        return {"module": mod.name, "model": "closed", "vus": vus, "requests_per_iteration": round(k, 4),
                "think_ms": round(z, 3), "unloaded_ms": round(r0, 3), "offered_rps": round(offered, 3),
                "achieved_rps": round(achieved, 3)}
    return {"module": mod.name, "model": "measured", "offered_rps": round(achieved, 3),
            "achieved_rps": round(achieved, 3),
            "note": "plan load shape or k6 summaries unavailable; offered = achieved"}


def service_offered(inputs: RunInputs, m: Measurements, service: str) -> Offered:
    """The plan's peak offered load on a service: all its modules at once (the parallel strategy)."""
    rows = [module_offered(mod, m) for mod in inputs.modules if mod.service == service]
    return Offered(rps=sum(r["offered_rps"] for r in rows), derivation=rows)


def service_keys(m: Measurements, service: str) -> list[EndpointKey]:
    return sorted(k for k in m.endpoints if k.service == service)


def service_unloaded_ms(m: Measurements, service: str) -> tuple[float, float] | None:
    """R0 of a service's request mix: (fastest successes, their 1st percentile), request-weighted.

    The fastest successful request is a lower bound of the service time only if it did not
    queue; the 1st percentile of successes an upper one, capped at R0_HIGH_CAP x the fastest
    (in a run saturated from its first second almost every request queued, so that
    percentile holds queueing too). With several endpoints, one of them may never have been
    answered without queueing (a pool saturated from its first request serves the first
    arrival at once and queues every other): its fastest request then holds a wait, which
    would inflate R0. Endpoints that queue for the same resource share its wait, so their
    medians differ by their service times; the lower value takes, per endpoint, the smaller
    of its own fastest request and `shared_queue_ms` (the service's fastest request plus
    the endpoint's median over that endpoint's median). None: no success at all."""
    keys = [k for k in service_keys(m, service) if m.endpoints[k].min_ok_ms is not None]
    n = sum(m.endpoints[k].requests for k in keys)
    if not n:
        return None
    ref = min(keys, key=lambda k: (unloaded_ms(m.endpoints[k]), k))
    lo = sum(min(unloaded_ms(m.endpoints[k]), shared_queue_ms(m.endpoints[k], m.endpoints[ref]))
             * m.endpoints[k].requests for k in keys) / n
    hi = sum(min(R0_HIGH_CAP * unloaded_ms(m.endpoints[k]),
                 max(unloaded_ms(m.endpoints[k]), m.endpoints[k].p1_ok_ms or 0.0)) * m.endpoints[k].requests
             for k in keys) / n
    return lo, max(lo, hi)


def shared_queue_ms(stats: EndpointStats, ref: EndpointStats) -> float:
    """An endpoint's service time if it queued for the same resource as `ref` (whose fastest
    request is the service's fastest): `ref`'s fastest plus the endpoint's median over `ref`'s
    (both medians hold the same waits, so they differ by the service times)."""
    return max(MIN_UNLOADED_MS, unloaded_ms(ref) + max(0.0, stats.p50_ms - ref.p50_ms))


def service_buckets(inputs: RunInputs, m: Measurements, service: str) -> list[ServiceBucket]:
    """Buckets that lie inside the service's active window (partial edge buckets dropped if others remain)."""
    keys = service_keys(m, service)
    r0 = {k: unloaded_ms(m.endpoints[k]) for k in keys}
    step_ms = m.interval_s * 1000
    acc: dict[int, dict[str, float]] = {}
    for k in keys:
        for b in m.series.get(k, []):
            a = acc.setdefault(b.t_ms, {"n": 0, "busy": 0.0, "r0": 0.0, "p95": 0.0, "failed": 0})
            a["n"] += b.requests
            a["busy"] += b.requests * b.mean_ms
            a["r0"] += b.requests * r0[k]
            a["p95"] = max(a["p95"], b.p95_ms)
            a["failed"] += b.failed
    dropped: dict[int, float] = {}
    for mod in inputs.modules:
        if mod.service == service:
            for mb in m.modules.get(mod.name, []):
                dropped[mb.t_ms] = dropped.get(mb.t_ms, 0.0) + mb.dropped
    out = [ServiceBucket(
        t_ms=t, requests=int(a["n"]), throughput=a["n"] / m.interval_s,
        inflight=a["busy"] / 1000.0 / m.interval_s, mean_ms=a["busy"] / a["n"] if a["n"] else 0.0,
        unloaded_ms=a["r0"] / a["n"] if a["n"] else 0.0, p95_max_ms=a["p95"], failed=int(a["failed"]),
        dropped=dropped.get(t, 0.0)) for t, a in sorted(acc.items()) if a["n"] > 0]
    lo, hi = inputs.service_window(service)
    inside = [b for b in out if b.t_ms >= lo and b.t_ms + step_ms <= hi]
    return inside if len(inside) >= 3 else out
