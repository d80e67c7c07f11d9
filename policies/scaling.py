"""autoscaling: capacity per instance from the knee, a target with headroom, min/max instances.

Per service:

- Capacity per instance C: the knee, the highest completed requests/s of a bucket
  whose worst p95 was within the SLO, whose errors were within budget and in which
  no iteration was dropped (achieved ~ offered), divided by the instances. When
  every bucket was within the SLO the knee was not reached and C is a lower bound
  (said so). When no bucket was, C comes from the pool model (the highest rate at
  which the recommended pool meets its wait target) or, failing that, from the
  plateau throughput.
- Metric `ALBRequestCountPerTarget` (requests per target per minute), target
  value = C x HEADROOM x 60.
- Instances needed at the plan's peak: ceil(peak / (C x HEADROOM));
  min_instances = ceil(needed / 2), max_instances = needed + ceil(needed / 2),
  capped jointly with the pool so that max_instances x pool <= the database's
  connection budget (said so when it binds below what the peak needs).
- Cooldowns: scale out 60 s, scale in 300 s.
"""

from __future__ import annotations

import math
from typing import Any

from policies.findings import Plateau, r
from policies.inputs import RunInputs
from policies.metrics import Measurements
from policies.pool import PoolDecision, reserve
from policies.queueing import max_rate
from policies.workload import service_buckets, service_offered

HEADROOM = 0.7
SCALE_OUT_COOLDOWN_S = 60
SCALE_IN_COOLDOWN_S = 300
MIN_BUCKETS = 3


def recommend(inputs: RunInputs, m: Measurements, service: str, plateau: Plateau | None,
              pool: PoolDecision | None, queries: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """An autoscaling recommendation for `service`, or None and a note saying why not."""
    buckets = service_buckets(inputs, m, service)
    if len(buckets) < MIN_BUCKETS:
        return None, f"autoscaling {service}: {len(buckets)} time buckets are too few to find a knee"
    settings = inputs.service_settings(service)
    instances = settings.instances if settings and settings.instances else 1
    offered = service_offered(inputs, m, service)
    if offered.rps <= 0:
        return None, f"autoscaling {service}: no offered load"
    good = [b for b in buckets if b.p95_max_ms <= inputs.slo_p95_ms and b.error_rate <= inputs.slo_error_rate
            and b.dropped == 0]
    knee_reached = len(good) < len(buckets)
    if good:
        best = max(good, key=lambda b: (b.throughput, b.t_ms))
        capacity = best.throughput / instances
        source = "knee" if knee_reached else "lower bound (the knee was not reached: every bucket met the SLO)"
        knee_p95: float | None = best.p95_max_ms
    elif pool is not None and pool.recommended is not None and pool.hold_s:
        capacity = max_rate(pool.recommended, pool.hold_s, pool.target_wait_ms / 1000.0)
        source = f"pool model: highest rate at which {pool.recommended} connections meet the wait target"
        knee_p95 = None
    elif plateau is not None:
        capacity = plateau.throughput / instances
        source = "plateau throughput (no bucket met the SLO)"
        knee_p95 = None
    else:
        return None, f"autoscaling {service}: no bucket met the SLO and no capacity model applies"
    if capacity <= 0:
        return None, f"autoscaling {service}: capacity could not be measured"
    target_rps = capacity * HEADROOM
    needed = max(1, math.ceil(offered.rps / target_rps - 1e-9))
    min_i = max(1, math.ceil(needed / 2))
    max_i = max(min_i, needed + math.ceil(needed / 2))
    per_instance_pool = None
    if pool is not None:
        per_instance_pool = pool.recommended or pool.current
    max_conn = settings.db_max_connections if settings else None
    cap_note = ""
    capped = False
    if max_conn and per_instance_pool:
        budget = max_conn - reserve(max_conn)
        cap = max(1, budget // per_instance_pool)
        if max_i > cap:
            capped = True
            max_i = cap
            min_i = min(min_i, max_i)
            cap_note = (f" max_instances is capped at {cap} so that {cap} x {per_instance_pool} connections stay "
                        f"within the database's budget of {budget} ({max_conn} - {reserve(max_conn)} reserved)")
            if cap < needed:
                cap_note += (f"; that is below the {needed} instances the peak needs: add a connection pooler "
                             "or shorten transactions")
            cap_note += "."
    reason = (f"{service}: one instance sustains {capacity:.1f} req/s within the SLO ({source}). Targeting "
              f"{HEADROOM:.0%} of that ({target_rps:.1f} req/s = {round(target_rps * 60)} requests per target per "
              f"minute), the plan's peak of {offered.rps:.1f} req/s needs {needed} instance(s); "
              f"min {min_i} keeps half of it warm, max {max_i} leaves room above the peak.{cap_note}")
    evidence = {
        "capacity_rps_per_instance": r(capacity, 3), "capacity_source": source, "knee_reached": knee_reached,
        "knee_p95_ms": r(knee_p95), "headroom": HEADROOM, "buckets": len(buckets), "buckets_within_slo": len(good),
        "bucket_s": m.interval_s, "peak_offered_rps": r(offered.rps), "offered": offered.derivation,
        "current_instances": instances, "pool_per_instance": per_instance_pool, "db_max_connections": max_conn,
        "capped_by_db": capped,
        "queries": [{"label": k, "query": queries[k]} for k in ("endpoint_series", "module_series") if k in queries],
    }
    rec = {
        "kind": "autoscaling", "service": service, "min_instances": min_i, "max_instances": max_i,
        "metric": "ALBRequestCountPerTarget", "target_value": round(target_rps * 60),
        "scale_out_cooldown_s": SCALE_OUT_COOLDOWN_S, "scale_in_cooldown_s": SCALE_IN_COOLDOWN_S,
        "reason": reason, "evidence": evidence,
        "predicted": {"instances_at_peak": needed, "throughput_rps": r(offered.rps),
                      "per_instance_rps_at_peak": r(offered.rps / needed, 2),
                      "p95_ms": r(knee_p95) if knee_p95 is not None else (
                          pool.recommendation["predicted"]["p95_ms"] if pool and pool.recommendation else None)},
    }
    return rec, None
