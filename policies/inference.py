"""Black-box inference: what k6's own samples say about a service's limits.

- **Concurrency (Little's law).** A service whose goodput plateaus at X_max while its
  requests take R0 unloaded sustains N = X_max x R0 requests in service at once: the
  size of whatever bounds it (a connection pool, worker threads, one event loop on one
  core). X_max is the median goodput of the saturated buckets, with the middle half of
  those buckets as its range; R0 is the fastest successful request (a lower bound of the
  service time) up to the 1st percentile of successes (an upper bound). N's range is the
  product of both ranges, per instance, widened to +-20 % of N: under load a request holds
  its slot longer than the fastest unloaded request took (measured on the gallery's
  pool-bound services: 40 ms holds took 42-46 ms at saturation).
- **Clamped errors.** Many failures with nearly the same duration (p10 and p90 within
  20 % + 10 ms of their median) are requests that gave up at a timeout: a pool's checkout
  timeout, a proxy's upstream timeout, k6's own request timeout. They are a saturation
  signal, and name the timeout and the status.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from policies.metrics import EndpointKey, FailureGroup, Measurements

MATCH_SHARE = 0.2        # N's range is at least +-20 % of N ...
MATCH_SLACK = 0.5        # ... and a declared size within it +-0.5 (sizes are whole numbers) matches it
CLAMP_MIN_FAILURES = 20
CLAMP_SPREAD = 0.2
CLAMP_SLACK_MS = 10.0


def r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass(frozen=True)
class Concurrency:
    """N = X_max x R0 per instance, with its range."""

    point: float
    low: float
    high: float
    goodput_rps: float
    goodput_low: float
    goodput_high: float
    r0_ms: float
    r0_high_ms: float
    instances: int

    def matches(self, size: int) -> bool:
        """Whether a declared size (a pool, a worker count) explains the limit."""
        return self.low - MATCH_SLACK <= size <= self.high + MATCH_SLACK

    def describe(self) -> str:
        return (f"about {self.point:.1f} ({self.low:.1f}-{self.high:.1f}) per instance: goodput "
                f"{self.goodput_rps:.1f}/s x unloaded latency {self.r0_ms:.1f} ms (Little's law)")

    def to_json(self) -> dict[str, Any]:
        return {"point": r(self.point), "low": r(self.low), "high": r(self.high),
                "goodput_rps": r(self.goodput_rps), "goodput_low": r(self.goodput_low),
                "goodput_high": r(self.goodput_high), "r0_ms": r(self.r0_ms, 3), "r0_high_ms": r(self.r0_high_ms, 3),
                "instances": self.instances, "method": "Little's law: N = goodput at the plateau x unloaded latency"}


def concurrency(goodputs: list[float], r0: tuple[float, float], instances: int = 1) -> Concurrency | None:
    """Little's law on a plateau's goodput samples (per bucket) and R0 (lo, hi) in ms."""
    xs = sorted(x for x in goodputs if x > 0)
    if not xs:
        return None
    x = statistics.median(xs)
    q = len(xs) // 4
    x_lo, x_hi = xs[q], xs[len(xs) - 1 - q]
    r_lo, r_hi = r0
    per = max(1, instances)
    point = x * r_lo / 1000.0 / per
    return Concurrency(point=point, low=min(x_lo * r_lo / 1000.0 / per, (1 - MATCH_SHARE) * point),
                       high=max(x_hi * r_hi / 1000.0 / per, (1 + MATCH_SHARE) * point), goodput_rps=x, goodput_low=x_lo, goodput_high=x_hi,
                       r0_ms=r_lo, r0_high_ms=r_hi, instances=per)


@dataclass(frozen=True)
class Clamp:
    """Failures of one endpoint and status that ended at nearly the same time: a timeout."""

    key: EndpointKey
    group: FailureGroup
    requests: int

    @property
    def status_text(self) -> str:
        if self.group.status in ("", "0"):
            return f"no response (k6 error {self.group.error_code or 'unknown'})"
        return f"HTTP {self.group.status}"

    def describe(self) -> str:
        g = self.group
        return (f"{self.key.label}: {g.count} of {self.requests} requests failed with {self.status_text} after "
                f"{g.p10_ms:.0f}-{g.p90_ms:.0f} ms (median {g.p50_ms:.0f} ms): errors clamped at a timeout of "
                f"about {g.p50_ms:.0f} ms, requests that gave up waiting")

    def to_json(self) -> dict[str, Any]:
        g = self.group
        return {"status": g.status, "error_code": g.error_code, "failures": g.count, "requests": self.requests,
                "clamp_ms": r(g.p50_ms), "p10_ms": r(g.p10_ms), "p90_ms": r(g.p90_ms)}


def clamps(m: Measurements, service: str | None = None) -> list[Clamp]:
    """Every endpoint's clamped failures (the largest clamped group per endpoint)."""
    out = []
    for key, groups in sorted(m.failures.items()):
        if service is not None and key.service != service:
            continue
        st = m.endpoints.get(key)
        for g in groups:
            if g.count < CLAMP_MIN_FAILURES or g.p50_ms <= 0:
                continue
            if g.p90_ms - g.p10_ms <= CLAMP_SPREAD * g.p50_ms + CLAMP_SLACK_MS:
                out.append(Clamp(key, g, st.requests if st else g.count))
                break
    return out
