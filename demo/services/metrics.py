"""Server-side timings of a demo service, per endpoint, for its GET /status.

`EndpointMetrics.observe(name, ms, status)` records one request under the name its k6
scripts tag it with; `snapshot()` is the `endpoints` part of GET /status (cumulative:
count, errors, mean, and the p95 of the last RECENT requests). What a run reads is the
service's GET /metrics (`demo.services.exposition`), scraped by the controller.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from core.percentile import nearest_rank

RECENT = 2048  # requests kept per endpoint for the /status p95


@dataclass
class _Endpoint:
    count: int = 0
    errors: int = 0
    total_ms: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))


@dataclass
class EndpointMetrics:
    endpoints: dict[str, _Endpoint] = field(default_factory=dict)

    def observe(self, name: str, ms: float, status: int) -> None:
        ep = self.endpoints.setdefault(name, _Endpoint())
        ep.count += 1
        ep.total_ms += ms
        ep.recent.append(ms)
        if status >= 500:
            ep.errors += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {
                "count": ep.count,
                "errors": ep.errors,
                "mean_ms": ep.total_ms / ep.count if ep.count else 0.0,
                "p95_ms": nearest_rank(ep.recent, 95) or 0.0,
            }
            for name, ep in sorted(self.endpoints.items())
        }
