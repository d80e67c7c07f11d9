"""Typed recommendations: what the policies return, and the JSON they serialise to.

Each recommendation (`DbPool`, `Cache`, `Autoscaling`) carries a `Basis`: the evidence
path it stands on and a confidence.

- `white_box`: the service's own metrics, scraped from `metrics_url` (the `source` names
  the metric, e.g. `db_client_connection_use_time_seconds`);
- `black_box`: an inference from what k6 recorded (the `source` names it, e.g. Little's
  law on the goodput plateau, or the run's own key stream);
- `declared`: facts the plan states (`db_pool_size`, `instances`), used as they are.

`to_json()` gives the recommendations document's entry (its keys are a contract read by
`apply`, `verify`, reports and dashboards): the kind's own keys, then `evidence_path`,
`evidence_source` and `confidence`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

EvidencePath = Literal["white_box", "black_box", "declared"]
Confidence = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class Basis:
    path: EvidencePath
    source: str
    confidence: Confidence

    def to_json(self) -> dict[str, Any]:
        return {"evidence_path": self.path, "evidence_source": self.source, "confidence": self.confidence}


@dataclass
class DbPool:
    service: str
    current: int
    recommended: int
    reason: str
    basis: Basis
    evidence: dict[str, Any] = field(default_factory=dict)
    predicted: dict[str, Any] = field(default_factory=dict)
    cap_binds: bool = False
    alternatives: list[str] = field(default_factory=list)

    kind = "db_pool"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "service": self.service, "current": self.current,
                               "recommended": self.recommended, "reason": self.reason, "evidence": self.evidence,
                               "predicted": self.predicted}
        if self.cap_binds:
            out["cap_binds"] = True
            out["alternatives"] = list(self.alternatives)
        return {**out, **self.basis.to_json()}


@dataclass
class Cache:
    service: str
    endpoint: str
    module: str
    ttl_s: int
    expected_hit_ratio: float
    current_ttl_s: float | None
    reason: str
    basis: Basis
    evidence: dict[str, Any] = field(default_factory=dict)
    predicted: dict[str, Any] = field(default_factory=dict)

    kind = "cache"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "service": self.service, "endpoint": self.endpoint, "module": self.module,
                "method": "GET", "current_ttl_s": self.current_ttl_s, "ttl_s": self.ttl_s,
                "expected_hit_ratio": self.expected_hit_ratio, "reason": self.reason, "evidence": self.evidence,
                "predicted": self.predicted, **self.basis.to_json()}


@dataclass
class Autoscaling:
    service: str
    instances: int              # the count the plan's peak needs at the target (INSTANCES without an autoscaler)
    min_instances: int
    max_instances: int
    target_value: int
    reason: str
    basis: Basis
    metric: str = "ALBRequestCountPerTarget"
    scale_out_cooldown_s: int = 60
    scale_in_cooldown_s: int = 300
    evidence: dict[str, Any] = field(default_factory=dict)
    predicted: dict[str, Any] = field(default_factory=dict)
    alternatives: list[str] = field(default_factory=list)

    kind = "autoscaling"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "service": self.service, "instances": self.instances,
            "min_instances": self.min_instances,
            "max_instances": self.max_instances, "metric": self.metric, "target_value": self.target_value,
            "scale_out_cooldown_s": self.scale_out_cooldown_s, "scale_in_cooldown_s": self.scale_in_cooldown_s,
            "reason": self.reason, "evidence": self.evidence, "predicted": self.predicted}
        if self.alternatives:
            out["alternatives"] = list(self.alternatives)
        return {**out, **self.basis.to_json()}


Recommendation = DbPool | Cache | Autoscaling
