"""autoscaling: capacity per instance, a target with headroom, min/max instances.

Per service:

- Capacity per instance C from `policies.capacity.capacity_per_instance` (a
  recommended pool's model, the goodput plateau of a saturated service, the knee, or
  a lower bound when every bucket met the SLO).
- Metric `ALBRequestCountPerTarget` (requests per target per minute), target
  value = C x HEADROOM x 60.
- Instances needed at the plan's peak: ceil(peak / (C x HEADROOM));
  min_instances = ceil(needed / 2), max_instances = needed + ceil(needed / 2),
  capped jointly with the pool so that max_instances x pool <= the database's
  connection budget (said so when it binds below what the peak needs).
- A concurrency limit that is not a pool (workers, threads, one event loop) also
  gets the alternative of raising it: the Erlang-C size of that limit for the peak.
- Cooldowns: scale out 60 s, scale in 300 s.
- No capacity at all (nothing met the SLO and nothing saturated): the note says what
  the run shows instead (a service slow even unloaded, failing at any load, or never
  answering) and which measurement would decide.
"""

from __future__ import annotations

import math
from typing import Any

from policies.capacity import capacity_per_instance
from policies.findings import Plateau, r
from policies.inputs import RunInputs
from policies.metrics import Measurements
from policies.pool import PoolDecision, reserve
from policies.queueing import smallest_pool
from policies.recommendations import Autoscaling
from policies.workload import service_buckets, service_offered, service_unloaded_ms

HEADROOM = 0.7
SCALE_OUT_COOLDOWN_S = 60
SCALE_IN_COOLDOWN_S = 300
MIN_BUCKETS = 3


def _no_capacity_note(inputs: RunInputs, m: Measurements, service: str) -> str:
    r0 = service_unloaded_ms(m, service)
    keys = [k for k in m.endpoints if k.service == service]
    failed = sum(m.endpoints[k].failed for k in keys)
    total = sum(m.endpoints[k].requests for k in keys)
    if r0 is None:
        return (f"autoscaling {service}: no request succeeded, so no capacity can be measured; fix the errors "
                "(see error_rate / no_response) and run again")
    if r0[0] > inputs.slo_p95_ms:
        return (f"autoscaling {service}: even its fastest successful request took {r0[0]:.0f} ms, over the SLO's "
                f"{inputs.slo_p95_ms:g} ms: the latency is the service's own, not load; more instances or "
                "connections will not meet the SLO: make the endpoint faster")
    if total and failed / total > inputs.slo_error_rate:
        return (f"autoscaling {service}: {failed} of {total} requests failed at every load level and no "
                "throughput limit showed; the errors are not from load: fix them, then run again")
    return (f"autoscaling {service}: no bucket met the SLO and the service did not saturate measurably; run it "
            "with a rising arrival rate (plan stages) so the knee shows, or give a metrics_url")


def recommend(inputs: RunInputs, m: Measurements, service: str, plateau: Plateau | None,
              pool: PoolDecision | None, queries: dict[str, str]) -> tuple[Autoscaling | None, str | None]:
    """An autoscaling recommendation for `service`, or None and a note saying why not."""
    buckets = service_buckets(inputs, m, service)
    if len(buckets) < MIN_BUCKETS:
        return None, f"autoscaling {service}: {len(buckets)} time buckets are too few to find a knee"
    settings = inputs.service_settings(service)
    instances = settings.instances if settings and settings.instances else 1
    offered = service_offered(inputs, m, service)
    if offered.rps <= 0:
        return None, f"autoscaling {service}: no offered load"
    cap = capacity_per_instance(inputs, m, service, buckets, instances, plateau, pool)
    if cap is None:
        return None, _no_capacity_note(inputs, m, service)
    capacity = cap.rps
    if capacity <= 0:
        return None, f"autoscaling {service}: capacity could not be measured"
    good = [b for b in buckets if b.p95_max_ms <= inputs.slo_p95_ms and b.error_rate <= inputs.slo_error_rate
            and b.dropped == 0]
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
        limit = max(1, budget // per_instance_pool)
        if max_i > limit:
            capped = True
            max_i = limit
            min_i = min(min_i, max_i)
            cap_note = (f" max_instances is capped at {limit} so that {limit} x {per_instance_pool} connections stay "
                        f"within the database's budget of {budget} ({max_conn} - {reserve(max_conn)} reserved)")
            if limit < needed:
                cap_note += (f"; that is below the {needed} instances the peak needs: add a connection pooler "
                             "or shorten transactions")
            cap_note += "."
    alternatives: list[str] = []
    n = plateau.concurrency if plateau is not None else None
    if n is not None and cap.kind == "plateau" and n.r0_ms > 0:
        lam = offered.rps / instances
        workers = smallest_pool(lam, n.r0_ms / 1000.0, 0.1 * inputs.slo_p95_ms / 1000.0)
        if workers is not None and workers > n.point:
            alternatives.append(
                f"raise the per-instance concurrency limit (workers, threads) from about {n.point:.0f} to {workers} "
                f"(Erlang C for {lam:.1f} req/s at {n.r0_ms:.0f} ms each), if the limit is not the CPU: a limit "
                "near 1 per instance is often one event loop or one core, which only more instances lift")
    reason = (f"{service}: one instance sustains {capacity:.1f} req/s ({cap.source}). Targeting "
              f"{HEADROOM:.0%} of that ({target_rps:.1f} req/s = {round(target_rps * 60)} requests per target per "
              f"minute), the plan's peak of {offered.rps:.1f} req/s needs {needed} instance(s); "
              f"min {min_i} keeps half of it warm, max {max_i} leaves room above the peak.{cap_note}")
    if n is not None and cap.kind == "plateau":
        reason += f" Its limit: a concurrency of {n.describe()}."
    evidence = {
        "capacity_rps_per_instance": r(capacity, 3), "capacity_source": cap.source, "capacity_kind": cap.kind,
        "knee_reached": cap.knee_reached, "knee_p95_ms": r(cap.p95_ms), "headroom": HEADROOM,
        "buckets": len(buckets), "buckets_within_slo": len(good),
        "bucket_s": m.interval_s, "peak_offered_rps": r(offered.rps), "offered": offered.derivation,
        "current_instances": instances, "pool_per_instance": per_instance_pool, "db_max_connections": max_conn,
        "capped_by_db": capped,
        "queries": [{"label": k, "query": queries[k]} for k in ("endpoint_series", "module_series") if k in queries],
    }
    p95: Any = cap.p95_ms
    if p95 is None and pool is not None and pool.recommendation is not None:
        p95 = pool.recommendation.predicted.get("p95_ms")
    rec = Autoscaling(
        service=service, min_instances=min_i, max_instances=max_i, target_value=round(target_rps * 60),
        scale_out_cooldown_s=SCALE_OUT_COOLDOWN_S, scale_in_cooldown_s=SCALE_IN_COOLDOWN_S,
        reason=reason, basis=cap.basis, evidence=evidence, alternatives=alternatives,
        predicted={"instances_at_peak": needed, "throughput_rps": r(offered.rps),
                   "per_instance_rps_at_peak": r(offered.rps / needed, 2), "p95_ms": r(p95)})
    return rec, None
