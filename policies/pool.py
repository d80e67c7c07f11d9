"""db_pool: the smallest connection pool whose queueing wait meets a target (Erlang C).

Per service with a known pool size:

1. Connection hold time S, best source first: the target's own `app_pool`
   (`hold_ms_mean` weighted by `checkouts`; else Little's law, mean `checked_out`
   / completed requests per second per instance); else the saturated throughput,
   S = pool / X_max (only when the service hit a throughput limit); else the
   unloaded latency (an upper bound of S).
2. Offered load per instance at the plan's peak: lambda = offered rps / instances;
   a = lambda x S Erlangs.
3. Recommend the smallest c whose Erlang-C p95 wait <= target (default 10 % of the
   SLO's p95), capped so that max_instances x c <= db_max_connections - reserve
   (reserve = max(3, 10 %)). When the cap binds, the recommendation says so and
   names the alternatives (a pooler such as PgBouncer, shorter transactions,
   fewer instances with larger pools).
4. Only for a service whose requests waited for a connection (app_pool waiting,
   or a throughput limit attributed to its own resources). A pool far larger than
   needed (current >= 2 x c and >= c + 2, with app_pool proving it never waited)
   may be recommended smaller; a service that never waited never gets a larger one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from policies.findings import Plateau, r
from policies.inputs import RunInputs
from policies.metrics import Measurements, PoolStats
from policies.queueing import erlang_c, smallest_pool, wait_quantile_s
from policies.workload import service_keys, service_offered, unloaded_ms

TARGET_FRACTION = 0.1
RESERVE_FRACTION = 0.1
MIN_RESERVE = 3


@dataclass
class PoolDecision:
    """What the pool policy decided for one service (also used by autoscaling)."""

    service: str
    current: int | None
    recommended: int | None
    hold_s: float | None
    rate_per_instance: float
    target_wait_ms: float
    recommendation: dict[str, Any] | None
    note: str | None = None


def reserve(max_connections: int) -> int:
    return max(MIN_RESERVE, math.ceil(RESERVE_FRACTION * max_connections))


def _hold(service: str, m: Measurements, pool: PoolStats | None, plateau: Plateau | None,
          current: int, instances: int, achieved_rps: float) -> tuple[float | None, str, dict[str, Any]]:
    if pool is not None and pool.hold_ms is not None and pool.hold_ms > 0:
        return pool.hold_ms / 1000.0, "app_pool.hold_ms_mean weighted by checkouts", {
            "hold_ms": r(pool.hold_ms, 3), "checkouts": r(pool.checkouts, 0)}
    if pool is not None and pool.checked_out_mean and achieved_rps > 0:
        per_instance = achieved_rps / instances
        return pool.checked_out_mean / per_instance, "Little's law: app_pool mean checked_out / requests per s", {
            "checked_out_mean": r(pool.checked_out_mean, 3), "requests_per_s_per_instance": r(per_instance, 3)}
    if plateau is not None and plateau.throughput > 0:
        x = plateau.throughput / instances
        return current / x, "saturated throughput: S = pool / X_max", {
            "pool": current, "x_max_rps_per_instance": r(x, 3)}
    keys = service_keys(m, service)
    n = sum(m.endpoints[k].requests for k in keys)
    if n:
        r0 = sum(unloaded_ms(m.endpoints[k]) * m.endpoints[k].requests for k in keys) / n
        return r0 / 1000.0, "unloaded latency (upper bound of the hold time)", {"unloaded_ms": r(r0, 3)}
    return None, "no data", {}


def _at(c: int, lam: float, s: float, base_ms: float, slo_ms: float) -> dict[str, Any]:
    w = wait_quantile_s(c, lam, s) * 1000.0
    stable = math.isfinite(w)
    p95 = base_ms + w if stable else None
    return {"pool": c, "utilization": r(lam * s / c, 3), "p_wait": r(erlang_c(c, lam * s), 4),
            "p95_wait_ms": r(w) if stable else None, "stable": stable,
            "p95_ms": r(p95), "meets_slo": bool(stable and p95 is not None and p95 <= slo_ms)}


def decide(inputs: RunInputs, m: Measurements, service: str, plateau: Plateau | None,
           queries: dict[str, str], max_instances: int | None = None,
           target_fraction: float = TARGET_FRACTION) -> PoolDecision:
    settings = inputs.service_settings(service)
    pool = m.pools.get(service)
    current = int(pool.size) if pool is not None and pool.size else (settings.db_pool_size if settings else None)
    target_ms = target_fraction * inputs.slo_p95_ms
    if current is None:
        return PoolDecision(service, None, None, None, 0.0, target_ms, None,
                            note=f"{service}: pool size unknown (no app_pool, no db_pool_size in the plan)")
    instances = (settings.instances if settings and settings.instances else 1)
    keys = service_keys(m, service)
    achieved = sum(m.endpoints[k].requests for k in keys)
    seconds = max((mod.seconds for mod in inputs.modules if mod.service == service), default=0.0)
    achieved_rps = achieved / seconds if seconds else 0.0
    offered = service_offered(inputs, m, service)
    lam = offered.rps / instances
    s, method, s_evidence = _hold(service, m, pool, plateau, current, instances, achieved_rps)
    if s is None or lam <= 0:
        return PoolDecision(service, current, None, s, lam, target_ms, None, note=f"{service}: no load measured")
    if pool is not None:
        waited = pool.waited
        wait_source = "app_pool"
    else:
        waited = plateau is not None and plateau.attribution in ("db_pool", "own_resource")
        wait_source = "throughput_limit finding" if plateau is not None else "none"
    # SQLAlchemy-style overflow connections serve requests too: servers = pool size + max_overflow.
    overflow = int(pool.max_overflow or 0) if pool is not None else 0
    needed_servers = smallest_pool(lam, s, target_ms / 1000.0)
    needed = None if needed_servers is None else max(1, needed_servers - overflow)
    base_ms = max((unloaded_ms(m.endpoints[k]) for k in keys), default=s * 1000.0)
    max_conn = settings.db_max_connections if settings else None
    fleet = max(instances, max_instances or 0)
    budget = max_conn - reserve(max_conn) if max_conn else None
    cap = budget // fleet - overflow if budget is not None else None
    if needed is None:
        return PoolDecision(service, current, None, s, lam, target_ms, None,
                            note=f"{service}: no pool size up to 100000 meets the wait target")
    direction: str | None = None
    if waited and needed > current:
        direction = "increase"
    elif pool is not None and not pool.waited and current >= 2 * needed and current >= needed + 2:
        direction = "decrease"
    if direction is None:
        note = (f"{service}: current pool {current} meets the wait target (needs {needed})" if waited
                else f"{service}: no request waited for a connection ({wait_source}); no pool change")
        return PoolDecision(service, current, None, s, lam, target_ms, None, note=note)
    recommended = needed
    cap_binds = cap is not None and needed > cap
    if cap_binds and cap is not None:
        recommended = max(1, cap)
    a = lam * s
    def at(c: int) -> dict[str, Any]:
        row = _at(c + overflow, lam, s, base_ms, inputs.slo_p95_ms)
        return {**row, "pool": c, "connections": c + overflow} if overflow else row

    table = [at(c) for c in sorted({max(1, recommended - 2), max(1, recommended - 1), recommended,
                                    recommended + 1, current})]
    at_rec = at(recommended)
    at_cur = at(current)
    two_fewer = at(max(1, recommended - 2))
    if direction == "increase":
        reason = (f"{service}: requests waited for one of {current} connections. With a hold time of "
                  f"{s * 1000:.1f} ms ({method}) and {lam:.1f} req/s per instance at the plan's peak "
                  f"(a = {a:.2f} Erlangs), Erlang C gives a p95 wait of "
                  f"{_ms(at_cur['p95_wait_ms'], at_cur['stable'])} at {current} and "
                  f"{_ms(at_rec['p95_wait_ms'], at_rec['stable'])} at {recommended} connections "
                  f"(target {target_ms:g} ms = {target_fraction:.0%} of the SLO p95); {recommended} is the "
                  "smallest pool that meets it.")
    else:
        reason = (f"{service}: no request waited for any of its {current} connections, and {needed} meet the "
                  f"wait target at the plan's peak ({lam:.1f} req/s per instance, hold {s * 1000:.1f} ms); a smaller "
                  "pool spares database connections and memory (fewer connections, less contention).")
    alternatives: list[str] = []
    if cap_binds:
        reason += (f" The database's connection budget caps it: {fleet} instance(s) x {needed} > "
                   f"{budget} ({max_conn} max_connections - {reserve(max_conn or 0)} reserved), so the pool is "
                   f"capped at {recommended}.")
        alternatives = ["put a connection pooler (PgBouncer, RDS Proxy) between the service and the database",
                        "shorten transactions (hold each connection for less time)",
                        "run fewer, larger instances so each can hold a bigger pool"]
    evidence: dict[str, Any] = {
        "hold_time_ms": r(s * 1000.0, 3), "hold_time_source": method, "hold_time_inputs": s_evidence,
        "offered_rps": r(offered.rps), "offered": offered.derivation, "instances": instances,
        "rate_per_instance": r(lam, 3), "offered_erlangs": r(a, 3), "target_p95_wait_ms": r(target_ms),
        "waited": waited, "wait_source": wait_source, "max_overflow": overflow, "erlang_c": table,
        "db_max_connections": max_conn, "connection_budget": budget, "max_instances": fleet,
        "queries": _queries(queries, service),
    }
    if pool is not None:
        evidence["app_pool"] = {"size": pool.size, "waiting_max": r(pool.waiting_max),
                                "checkout_wait_p95_max_ms": r(pool.wait_p95_max_ms),
                                "checked_out_mean": r(pool.checked_out_mean, 3), "timeouts": r(pool.timeouts, 0),
                                "matched_by": pool.matched_by}
    if plateau is not None:
        evidence["throughput_limit"] = {"throughput_rps": r(plateau.throughput), "attribution": plateau.attribution}
    rec: dict[str, Any] = {
        "kind": "db_pool", "service": service, "current": current, "recommended": recommended,
        "reason": reason, "evidence": evidence,
        "predicted": {"p95_ms": at_rec["p95_ms"], "p95_wait_ms": at_rec["p95_wait_ms"],
                      "throughput_rps": r(offered.rps), "utilization": at_rec["utilization"],
                      "meets_slo": at_rec["meets_slo"], "at_current": at_cur, "two_fewer": two_fewer},
    }
    if cap_binds:
        rec["cap_binds"] = True
        rec["alternatives"] = alternatives
    return PoolDecision(service, current, recommended, s, lam, target_ms, rec)


def _ms(value: float | None, stable: bool) -> str:
    return f"{value:.1f} ms" if stable and value is not None else "unbounded (unstable queue)"


def _queries(queries: dict[str, str], service: str) -> list[dict[str, str]]:
    wanted = ["endpoints", "endpoint_series", f"app_pool:{service}", f"app_pool_hold:{service}"]
    return [{"label": k, "query": queries[k]} for k in wanted if k in queries]
