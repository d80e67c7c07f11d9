"""Findings: what the run showed, each with the numbers that show it.

- `throughput_limit` (per service): in a run of buckets the service was saturated
  (requests spent most of their time queueing: mean latency >= 3x the unloaded latency
  of the same request mix, and >= max(5 ms, 10 % of the SLO p95) more; or more than
  5 % of them failed) while its goodput (successful responses per second: failures
  are completions, not throughput) stayed flat (coefficient of variation <= 0.25, or
  <= 0.5 when it stayed below 75 % of the offered load) below 90 % of the load the plan offered (when the plan's load shape is unknown:
  while in-flight requests rose >= 1.5x), whatever its error rate. The finding gives
  the concurrency the service sustained (Little's law, `policies.inference`) and any
  errors clamped at a timeout. Attribution: the service's own pool when its scraped
  pool metrics show waiting, or when the plan's `db_pool_size` matches the inferred
  concurrency; else its own resources when another service stayed fast in the same
  buckets; shared resources when every concurrently loaded service queued.
- `timeout_errors` (per endpoint): many failures with nearly the same duration, a
  timeout (`policies.inference.clamps`): names the clamp and the status.
- `slo_breach` (per endpoint): p95 over the SLO's p95.
- `error_rate` (per endpoint): error rate over the budget, or a rate that climbs
  (second half >= 2x the first half and >= half the budget).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from policies.inference import Clamp, Concurrency, clamps, concurrency
from policies.inputs import RunInputs
from policies.metrics import Measurements
from policies.workload import ServiceBucket, service_buckets, service_offered, service_unloaded_ms

QUEUEING_RATIO = 3.0        # mean latency / unloaded latency that counts as queueing
MIN_QUEUEING_MS = 5.0       # ... and at least this much absolute queueing
MIN_QUEUEING_SLO_SHARE = 0.1  # ... and at least this share of the SLO p95
ERROR_SATURATION = 0.05   # a bucket where more than this share failed is saturated too
PLATEAU_CV = 0.25
FAR_SHORTFALL = 0.75        # goodput below this share of the offered load ...
FAR_PLATEAU_CV = 0.5        # ... is a plateau up to this coefficient of variation
INFLIGHT_RISE = 1.5
SHORTFALL = 0.9
MIN_SATURATED_BUCKETS = 2


@dataclass
class Finding:
    kind: str
    service: str | None
    endpoint: str | None
    detail: str
    module: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "service": self.service, "endpoint": self.endpoint,
                               "detail": self.detail}
        if self.module is not None:
            out["module"] = self.module
        out["evidence"] = self.evidence
        return out


def r(value: float | None, digits: int = 2) -> float | None:
    """Rounded for output (same data, same bytes)."""
    return None if value is None else round(float(value), digits)


def queued(b: ServiceBucket, slo_p95_ms: float) -> bool:
    """Requests in this bucket spent most of their time queueing, and materially so."""
    floor = max(MIN_QUEUEING_MS, MIN_QUEUEING_SLO_SHARE * slo_p95_ms)
    return b.queueing_ratio >= QUEUEING_RATIO and (b.mean_ms - b.unloaded_ms) >= floor


def saturated(b: ServiceBucket, slo_p95_ms: float, error_budget: float = 0.0) -> bool:
    """Queueing, or failing beyond the budget (a service that sheds load or times out)."""
    return queued(b, slo_p95_ms) or b.error_rate > max(ERROR_SATURATION, error_budget)


@dataclass
class Plateau:
    service: str
    buckets: list[ServiceBucket]
    saturated: list[ServiceBucket]
    throughput: float              # goodput at the plateau (successful responses/s), all instances
    offered: float
    attribution: str
    finding: Finding
    concurrency: Concurrency | None = None
    clamps: list[Clamp] = field(default_factory=list)
    declared_pool_matches: bool = False


def _attribution(inputs: RunInputs, m: Measurements, service: str, sat: list[ServiceBucket],
                 per_service: dict[str, list[ServiceBucket]], n: Concurrency | None) -> tuple[str, str]:
    pool = m.pools.get(service)
    if pool is not None and pool.waited:
        return "db_pool", (f"its connection pool had up to {pool.pending_max:g} requests waiting and "
                           f"{pool.timeouts:g} checkout timeouts ({pool.convention}, scraped from metrics_url)")
    settings = inputs.service_settings(service)
    if n is not None and settings is not None and settings.db_pool_size and n.matches(settings.db_pool_size):
        return "db_pool", (f"the concurrency it sustained, {n.describe()}, matches the plan's db_pool_size "
                           f"{settings.db_pool_size}")
    times = {b.t_ms for b in sat}
    fast: list[str] = []
    slow: list[str] = []
    for other, buckets in sorted(per_service.items()):
        if other == service:
            continue
        overlap = [b for b in buckets if b.t_ms in times]
        if len(overlap) < max(1, len(times) // 2):
            continue
        n_slow = sum(1 for b in overlap if queued(b, inputs.slo_p95_ms) or b.p95_max_ms > inputs.slo_p95_ms)
        (slow if n_slow > len(overlap) / 2 else fast).append(other)
    if fast and not slow:
        return "own_resource", (f"{', '.join(fast)} stayed fast in the same buckets, so the limit is "
                                f"{service}'s own resource (e.g. its DB pool), not shared CPU or network")
    if slow and not fast:
        return "shared", (f"{', '.join(slow)} queued in the same buckets too: a shared resource "
                          "(CPU, network, database) is the likely limit")
    if fast and slow:
        return "own_resource", (f"{', '.join(fast)} stayed fast while {', '.join(slow)} also queued; "
                                f"{service}'s own resources are the likely limit")
    return "undetermined", "no other service was loaded at the same time to compare against"


def throughput_limits(inputs: RunInputs, m: Measurements) -> list[Plateau]:
    per_service = {s: service_buckets(inputs, m, s) for s in inputs.services()}
    out: list[Plateau] = []
    for service, buckets in sorted(per_service.items()):
        sat = [b for b in buckets if saturated(b, inputs.slo_p95_ms, inputs.slo_error_rate)]
        if len(sat) < MIN_SATURATED_BUCKETS or len(sat) < 0.25 * len(buckets):
            continue
        xs = [b.goodput for b in sat]
        x_med = statistics.median(xs)
        cv = statistics.pstdev(xs) / x_med if x_med > 0 else 0.0
        offered = service_offered(inputs, m, service)
        # A limit that moves with a shared resource (CPU taken by neighbours) swings more; far below
        # the offered load it is a limit all the same.
        far_short = offered.rps > 0 and x_med < FAR_SHORTFALL * offered.rps
        if x_med <= 0 or cv > (FAR_PLATEAU_CV if far_short else PLATEAU_CV):
            continue
        l_lo = min(b.inflight for b in sat)
        l_hi = max(b.inflight for b in sat)
        rising = l_lo > 0 and l_hi / l_lo >= INFLIGHT_RISE
        short = offered.rps > 0 and x_med < SHORTFALL * offered.rps
        known = all(d["model"] in ("open", "closed") for d in offered.derivation)
        # With the offered load known, only a shortfall counts: under an arrival rate the
        # in-flight count also swings with latency jitter while throughput stays on target.
        if not (short if known else rising):
            continue
        settings = inputs.service_settings(service)
        instances = settings.instances if settings and settings.instances else 1
        r0 = service_unloaded_ms(m, service)
        n = concurrency(xs, r0, instances) if r0 is not None else None
        clamped = clamps(m, service)
        attribution, why = _attribution(inputs, m, service, sat, per_service, n)
        keys = [k for k in m.endpoints if k.service == service]
        worst = max(keys, key=lambda k: (m.endpoints[k].requests, k))     # the service's main endpoint
        mean_ms = statistics.mean(b.mean_ms for b in sat)
        r0_mean = statistics.mean(b.unloaded_ms for b in sat)
        failed = sum(b.failed for b in sat)
        completed = sum(b.requests for b in sat)
        detail = (f"{service}: successful responses plateaued at {x_med:.1f}/s (offered {offered.rps:.1f}/s"
                  + (f"; {failed} of {completed} completions in those buckets were errors" if failed else "")
                  + f") while in-flight requests were {l_lo:.1f}-{l_hi:.1f}; mean latency {mean_ms:.0f} ms vs "
                  f"{r0_mean:.0f} ms unloaded.")
        if n is not None:
            detail += f" It sustained a concurrency of {n.describe()}."
        for c in clamped:
            detail += f" {c.describe()}."
        detail += f" Attribution: {why}."
        if attribution != "db_pool" and n is not None:
            detail += (f" A concurrency limit of about {n.point:.0f} per instance (workers, threads, pool?)"
                       + (" that the plan's db_pool_size does not explain" if settings and settings.db_pool_size
                          else "") + ".")
        evidence = {
            "goodput_rps": r(x_med), "throughput_rps": r(x_med), "goodput_cv": r(cv, 3),
            "completed_rps": r(statistics.median(b.throughput for b in sat)), "offered_rps": r(offered.rps),
            "inflight_min": r(l_lo), "inflight_max": r(l_hi), "mean_ms": r(mean_ms), "unloaded_ms": r(r0_mean),
            "saturated_buckets": len(sat), "buckets": len(buckets), "bucket_s": m.interval_s,
            "attribution": attribution, "offered": offered.derivation,
            "concurrency": n.to_json() if n is not None else None,
            "clamped_errors": [c.to_json() for c in clamped],
        }
        finding = Finding("throughput_limit", service, worst.name, detail, evidence=evidence)
        matches = bool(n is not None and settings and settings.db_pool_size and n.matches(settings.db_pool_size))
        out.append(Plateau(service, buckets, sat, x_med, offered.rps, attribution, finding, n, clamped, matches))
    return out


def timeout_findings(m: Measurements) -> list[Finding]:
    """`timeout_errors`: endpoints whose failures ended at a clamped latency."""
    return [Finding("timeout_errors", c.key.service, c.key.name, c.describe() + "; a saturation signal",
                    module=c.key.module, evidence=c.to_json()) for c in clamps(m)]


def slo_breaches(inputs: RunInputs, m: Measurements) -> list[Finding]:
    out = []
    for key, st in sorted(m.endpoints.items()):
        if st.p95_ms > inputs.slo_p95_ms:
            worst = max((b.p95_ms for b in m.series.get(key, [])), default=st.p95_ms)
            out.append(Finding(
                "slo_breach", key.service, key.name,
                f"{key.label} p95 {st.p95_ms:.1f} ms > SLO {inputs.slo_p95_ms:g} ms "
                f"(p99 {st.p99_ms:.1f} ms, worst {m.interval_s}s bucket p95 {worst:.1f} ms, {st.requests} requests)",
                module=key.module,
                evidence={"p95_ms": r(st.p95_ms), "p99_ms": r(st.p99_ms), "slo_p95_ms": inputs.slo_p95_ms,
                          "worst_bucket_p95_ms": r(worst), "requests": st.requests}))
    return out


def error_findings(inputs: RunInputs, m: Measurements) -> list[Finding]:
    budget = inputs.slo_error_rate
    out = []
    for key, st in sorted(m.endpoints.items()):
        series = m.series.get(key, [])
        half = len(series) // 2
        early, late = series[:half], series[half:]
        n1, f1 = sum(b.requests for b in early), sum(b.failed for b in early)
        n2, f2 = sum(b.requests for b in late), sum(b.failed for b in late)
        e1 = f1 / n1 if n1 else 0.0
        e2 = f2 / n2 if n2 else 0.0
        climbing = half >= 2 and f2 >= 5 and e2 >= 2 * e1 and e2 >= budget / 2 and e2 > 0
        over = st.error_rate > budget and st.failed > 0
        if not (over or climbing):
            continue
        parts = []
        if over:
            parts.append(f"{key.label} failed {st.error_rate:.2%} of {st.requests} requests "
                         f"(budget {budget:.2%})")
        if climbing:
            parts.append(f"{key.label} error rate climbed from {e1:.2%} in the first half of the run to "
                         f"{e2:.2%} in the second")
        out.append(Finding("error_rate", key.service, key.name, "; ".join(parts), module=key.module,
                           evidence={"error_rate": r(st.error_rate, 4), "failed": st.failed,
                                     "requests": st.requests, "budget": budget,
                                     "first_half_error_rate": r(e1, 4), "second_half_error_rate": r(e2, 4),
                                     "climbing": climbing}))
    return out
