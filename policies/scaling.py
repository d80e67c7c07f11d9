"""autoscaling: capacity per instance, a target with headroom, min/max instances.

Per service:

- Capacity per instance C from `policies.capacity.capacity_per_instance` (a
  recommended pool's model, a capacity run's knee, the goodput plateau of a saturated
  service, the knee, or a lower bound when every bucket met the SLO).
- Instances: `policies.instances.size_instances`: needed at the plan's peak =
  ceil(peak / (C x HEADROOM)) (`instances`, what `apply --env-file` writes as
  INSTANCES); min_instances = ceil(needed / 2), max_instances = needed + ceil(needed / 2),
  capped jointly with the pool so that max_instances x pool <= the database's
  connection budget (said so when it binds below what the peak needs). A lower bound
  gets no headroom on top: it never adds instances beyond what it covers, and the
  reason says which capacity run would find the knee.
- Metric `ALBRequestCountPerTarget` (requests per target per minute), target
  value = C x HEADROOM x 60 (C for a lower bound).
- A concurrency limit that is not a pool (workers, threads, one event loop) also
  gets the alternative of raising it: the Erlang-C size of that limit for the peak.
- Cooldowns: scale out 60 s, scale in 300 s.
- No capacity at all (nothing met the SLO and nothing saturated): the note says what
  the run shows instead (a service slow even unloaded, failing at any load, or never
  answering) and which measurement would decide.
"""

from __future__ import annotations

from typing import Any

from policies.capacity import capacity_per_instance
from policies.findings import Plateau, r
from policies.inputs import RunInputs
from policies.instances import UTILISATION, size_instances
from policies.metrics import Measurements
from policies.pool import PoolDecision
from policies.queueing import smallest_pool
from policies.recommendations import Autoscaling
from policies.workload import service_buckets, service_offered, service_unloaded_ms

HEADROOM = UTILISATION
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
    per_instance_pool = None
    if pool is not None:
        per_instance_pool = pool.recommended or pool.current
    elif settings is not None:
        per_instance_pool = settings.db_pool_size
    max_conn = settings.db_max_connections if settings else None
    lower = cap.kind == "lower_bound"
    # The pool model's rate already keeps the queueing wait at its target (10 % of the SLO): no headroom on top.
    utilisation = 1.0 if cap.kind == "pool_model" else HEADROOM
    sizing = size_instances(offered.rps, capacity, lower_bound=lower, utilisation=utilisation,
                            pool_per_instance=per_instance_pool, db_max_connections=max_conn)
    needed, min_i, max_i, target_rps = sizing.needed, sizing.min_instances, sizing.max_instances, sizing.target_rps
    capped = sizing.capped
    cap_note = f" {sizing.note}." if sizing.note else ""
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
    if lower:
        reason = (f"{service}: a lower bound only: one instance sustains at least {capacity:.1f} req/s "
                  f"({cap.source}); its knee is higher by an unknown amount, so nothing is added on top: at {capacity:.1f} req/s each "
                  f"({round(target_rps * 60)} requests per target per minute) the plan's peak of {offered.rps:.1f} "
                  f"req/s needs {needed} instance(s); min {min_i}, max {max_i}.{cap_note} "
                  f"{_find_the_knee(inputs, service)}")
    else:
        why = " (the pool model's rate already meets the wait target)" if cap.kind == "pool_model" else ""
        reason = (f"{service}: one instance sustains {capacity:.1f} req/s ({cap.source}). Targeting "
                  f"{utilisation:.0%} of that{why} ({target_rps:.1f} req/s = {round(target_rps * 60)} requests per "
                  f"target per minute), the plan's peak of {offered.rps:.1f} req/s needs {needed} instance(s); "
                  f"min {min_i} keeps half of it warm, max {max_i} leaves room above the peak.{cap_note}")
    if n is not None and cap.kind == "plateau":
        reason += f" Its limit: a concurrency of {n.describe()}."
    evidence = {
        "capacity_rps_per_instance": r(capacity, 3), "capacity_source": cap.source, "capacity_kind": cap.kind,
        "knee_reached": cap.knee_reached, "knee_p95_ms": r(cap.p95_ms), "headroom": HEADROOM,
        "utilisation": sizing.utilisation, "db_instance_limit": sizing.db_limit,
        "capacity_run": _ramped_by(inputs, service),
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
        service=service, instances=needed, min_instances=min_i, max_instances=max_i,
        target_value=round(target_rps * 60),
        scale_out_cooldown_s=SCALE_OUT_COOLDOWN_S, scale_in_cooldown_s=SCALE_IN_COOLDOWN_S,
        reason=reason, basis=cap.basis, evidence=evidence, alternatives=alternatives,
        predicted={"instances_at_peak": needed, "throughput_rps": r(offered.rps),
                   "per_instance_rps_at_peak": r(offered.rps / needed, 2), "p95_ms": r(p95)})
    return rec, None


def _ramped_by(inputs: RunInputs, service: str) -> str | None:
    """The capacity run that ramped `service` (its run id), if any."""
    ramped = inputs.ramps is not None and inputs.ramps.service(service) is not None
    return inputs.ramps_run.path.name if ramped and inputs.ramps_run is not None else None


def _find_the_knee(inputs: RunInputs, service: str) -> str:
    """Which capacity run would find the knee a lower bound stands in for."""
    plan = inputs.plan
    if plan is None:
        return f"Run `loadbearing run capacity --plan PLAN --service {service}` to find the knee."
    path = inputs.record.plan or str(plan.path)
    ramp = inputs.ramps.service(service) if inputs.ramps is not None else None
    mods = [m for m in plan.modules if m.service == service]
    reach = [f"{m.name} up to {plan.capacity.step_rates(base)[-1]:g} iterations/s" for m in mods
             if (base := plan.capacity_base_rate(m)) is not None]
    if ramp is not None and ramp.steps:
        top = ramp.steps[-1].offered_rps
        return (f"A capacity run reached {top:.1f} req/s without breaking: raise capacity.max (now "
                f"{plan.capacity.max:g}) and run `loadbearing run capacity --plan {path} --service {service}` "
                "to find the knee.")
    if not reach:
        return (f"Give its modules an arrival rate (capacity.rates) and run `loadbearing run capacity --plan {path} "
                f"--service {service}` to find the knee.")
    return (f"Run `loadbearing run capacity --plan {path} --service {service}` to find the knee (it ramps "
            f"{', '.join(reach)} in steps of {plan.capacity.step}).")
