"""db_pool: the smallest connection pool whose queueing wait meets a target (Erlang C).

Per service whose pool size is known (`.max` of its scraped pool metrics, else the
plan's `db_pool_size`):

1. Connection hold time S, best evidence first:
   - white box: the pool's own use time (`db.client.connection.use_time`, HikariCP's
     `usage`), sum over count in the run's window; else Little's law on its in-use
     gauge: mean connections used / successful requests per second per instance;
   - black box: the goodput plateau, S = pool / X_max, only when the concurrency the
     service sustained (Little's law on k6's samples, `policies.inference`) matches the
     plan's `db_pool_size` within its range: then the pool is the limit;
   - else (for the notes only) the unloaded latency, an upper bound of S.
2. Offered load per instance at the plan's peak: lambda = offered rps / instances;
   a = lambda x S Erlangs.
3. Recommend the smallest c whose Erlang-C p95 wait <= target (default 10 % of the
   SLO's p95), capped so that max_instances x c <= db_max_connections - reserve
   (reserve = max(3, 10 %)). When the cap binds, the recommendation says so and
   names the alternatives (a pooler such as PgBouncer, shorter transactions,
   fewer instances with larger pools).
4. Only for a service whose requests waited for a connection (its pool metrics show
   pending requests, timeouts or waits, or the black-box match above). A concurrency
   limit that the declared pool does not explain is never a pool: the note says so and
   the autoscaling policy sizes instances from it. A pool far larger than needed
   (current >= 2 x c and >= c + 2, with pool metrics showing it never waited, c never
   below twice the most connections seen in use at one scrape) is recommended smaller only
   when the fleet's pools hold at least a quarter of the database's connection budget
   (`smaller_pool`): otherwise it frees nothing scarce, and is kept; a service that never
   waited never gets a larger one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from policies.findings import Plateau, r
from policies.inputs import RunInputs
from policies.metrics import Measurements, PoolStats
from policies.queueing import erlang_c, smallest_pool, wait_quantile_s
from policies.recommendations import Basis, Confidence, DbPool
from policies.workload import service_keys, service_offered, unloaded_ms

TARGET_FRACTION = 0.1
RESERVE_FRACTION = 0.1
MIN_RESERVE = 3
SCARCE_SHARE = 0.25  # a smaller pool only for pools that hold at least a quarter of the database's budget


@dataclass
class PoolDecision:
    """What the pool policy decided for one service (also used by autoscaling and cache)."""

    service: str
    current: int | None
    recommended: int | None
    hold_s: float | None
    rate_per_instance: float
    target_wait_ms: float
    recommendation: DbPool | None
    note: str | None = None


def reserve(max_connections: int) -> int:
    return max(MIN_RESERVE, math.ceil(RESERVE_FRACTION * max_connections))


def smaller_pool(current: int, needed: int, used_peak: float | None, fleet: int,
                 budget: int | None) -> tuple[int | None, str | None]:
    """A smaller pool for a pool that never waited: (the size to recommend, None), or (None, why it is
    kept) when it is far larger than needed but frees nothing scarce, or (None, None) when it is not far larger.

    Never below twice the most connections seen in use at one scrape (a gauge sampled once a second
    misses the peaks between samples). Far larger: current >= 2 x that and >= that + 2. Scarce: the
    fleet's pools (`fleet` instances x `current`) hold at least SCARCE_SHARE of the database's
    `budget` (max_connections less the reserve); below that the connections a smaller pool frees are
    not worth its risk, and the estimate of what is needed (a sampled peak, a hold time that moves
    with the machine's load) varies from run to run more than the pool does, so the pool in place
    is kept and the same load gets the same advice. Without a budget nothing can be weighed: kept.
    """
    floor = max(needed, math.ceil(2 * (used_peak or 0.0)))
    if current < 2 * floor or current < floor + 2:
        return None, None
    larger = f"the pool of {current} is far larger than the {floor} needed"
    if budget is None:
        return None, (f"{larger}, but without the plan's db_max_connections the connections a smaller pool "
                      "frees cannot be weighed; kept")
    held = fleet * current
    if held < SCARCE_SHARE * budget:
        return None, (f"{larger}, but {fleet} instance(s) x {current} hold {held} of the database's {budget} "
                      f"connections (under {SCARCE_SHARE:.0%}): a smaller pool frees nothing scarce; kept")
    return floor, None


def _hold(service: str, m: Measurements, pool: PoolStats | None, plateau: Plateau | None, current: int,
          instances: int, goodput_rps: float) -> tuple[float | None, Basis | None, dict[str, Any]]:
    if pool is not None and pool.hold_ms is not None and pool.hold_ms > 0:
        return pool.hold_ms / 1000.0, Basis(
            "white_box", f"{pool.metrics.get('hold')} ({pool.convention}): mean use time per connection",
            "high" if pool.uses >= 100 else "medium"), {"hold_ms": r(pool.hold_ms, 3), "uses": r(pool.uses, 0)}
    if pool is not None and pool.used_mean and goodput_rps > 0:
        per_instance = goodput_rps / instances
        return pool.used_mean / per_instance, Basis(
            "white_box", f"Little's law on {pool.metrics.get('used')} ({pool.convention}): mean connections in use "
            "/ successful requests per second", "medium"), {
            "used_mean": r(pool.used_mean, 3), "goodput_rps_per_instance": r(per_instance, 3)}
    if plateau is not None and plateau.throughput > 0 and (plateau.declared_pool_matches or
                                                           plateau.attribution == "db_pool"):
        x = plateau.throughput / instances
        n = plateau.concurrency
        confidence: Confidence = "medium" if n is not None and n.high - n.low <= max(1.0, 0.3 * n.point) else "low"
        return current / x, Basis(
            "black_box", "Little's law on the goodput plateau: the concurrency sustained matches the pool, "
            "so S = pool / X_max", confidence), {
            "pool": current, "goodput_rps_per_instance": r(x, 3),
            "concurrency": n.to_json() if n is not None else None}
    keys = service_keys(m, service)
    n_req = sum(m.endpoints[k].requests for k in keys)
    if n_req:
        r0 = sum(unloaded_ms(m.endpoints[k]) * m.endpoints[k].requests for k in keys) / n_req
        return r0 / 1000.0, None, {"unloaded_ms": r(r0, 3)}
    return None, None, {}


def _at(c: int, lam: float, s: float, base_ms: float, slo_ms: float) -> dict[str, Any]:
    w = wait_quantile_s(c, lam, s) * 1000.0
    stable = math.isfinite(w)
    p95 = base_ms + w if stable else None
    return {"pool": c, "utilization": r(lam * s / c, 3), "p_wait": r(erlang_c(c, lam * s), 4),
            "p95_wait_ms": r(w) if stable else None, "stable": stable,
            "p95_ms": r(p95), "meets_slo": bool(stable and p95 is not None and p95 <= slo_ms)}


def _unknown_pool_note(service: str, plateau: Plateau | None) -> str:
    if plateau is not None and plateau.concurrency is not None:
        return (f"{service}: a concurrency limit of {plateau.concurrency.describe()} (workers, threads, pool?); "
                "without database facts no pool is recommended (instances or workers are). To decide whether "
                "a pool is the limit, give the plan's db_pool_size, or a metrics_url exposing the pool's "
                "db.client.connection.* (OpenTelemetry) or hikaricp_connections_* metrics")
    return (f"{service}: pool size unknown (no db_pool_size in the plan, no pool metrics from a metrics_url); "
            "no pool recommendation")


def decide(inputs: RunInputs, m: Measurements, service: str, plateau: Plateau | None,
           queries: dict[str, str], max_instances: int | None = None,
           target_fraction: float = TARGET_FRACTION) -> PoolDecision:
    settings = inputs.service_settings(service)
    pool = m.pools.get(service)
    declared = settings.db_pool_size if settings else None
    current = int(pool.size) if pool is not None and pool.size else declared
    target_ms = target_fraction * inputs.slo_p95_ms
    if current is None:
        return PoolDecision(service, None, None, None, 0.0, target_ms, None, note=_unknown_pool_note(service, plateau))
    instances = (settings.instances if settings and settings.instances else 1)
    keys = service_keys(m, service)
    good = sum(m.endpoints[k].requests - m.endpoints[k].failed for k in keys)
    seconds = max((mod.seconds for mod in inputs.modules if mod.service == service), default=0.0)
    goodput_rps = good / seconds if seconds else 0.0
    offered = service_offered(inputs, m, service)
    lam = offered.rps / instances
    s, basis, s_evidence = _hold(service, m, pool, plateau, current, instances, goodput_rps)
    if s is None or lam <= 0:
        return PoolDecision(service, current, None, s, lam, target_ms, None, note=f"{service}: no load measured")
    if pool is not None:
        waited = pool.waited
        wait_source = f"{pool.convention} (scraped)"
    else:
        waited = plateau is not None and plateau.declared_pool_matches
        wait_source = "Little's law on the goodput plateau" if plateau is not None else "none"
    # Overflow connections (above the configured size) serve requests too: servers = size + overflow.
    overflow = max(0, int(pool.size) - declared) if pool is not None and pool.size and declared else 0
    if overflow:
        current = declared or current
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
    kept: str | None = None
    if waited and needed > current and basis is not None:
        direction = "increase"
    elif pool is not None and not pool.waited and basis is not None:
        smaller, kept = smaller_pool(current, needed, pool.used_peak, fleet, budget)
        if smaller is not None:
            needed, direction = smaller, "decrease"
    if direction is None:
        if kept is not None:
            note = f"{service}: no request waited for a connection ({wait_source}); {kept}"
        elif waited:
            note = f"{service}: current pool {current} meets the wait target (needs {needed})"
        elif plateau is not None and plateau.concurrency is not None and pool is None:
            note = (f"{service}: the limit is a concurrency of {plateau.concurrency.describe()}, which the "
                    f"plan's db_pool_size {current} does not explain (workers, threads, CPU?); no pool change. "
                    "A metrics_url exposing the pool's metrics would show whether requests wait for it")
        else:
            note = f"{service}: no request waited for a connection ({wait_source}); no pool change"
        return PoolDecision(service, current, None, s, lam, target_ms, None, note=note)
    assert basis is not None
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
                  f"{s * 1000:.1f} ms ({basis.source}) and {lam:.1f} req/s per instance at the plan's peak "
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
        "hold_time_ms": r(s * 1000.0, 3), "hold_time_source": basis.source, "hold_time_inputs": s_evidence,
        "pool_size_source": (f"{pool.metrics.get('size')} ({pool.convention})" if pool is not None and pool.size
                             else "plan: db_pool_size"),
        "offered_rps": r(offered.rps), "offered": offered.derivation, "instances": instances,
        "rate_per_instance": r(lam, 3), "offered_erlangs": r(a, 3), "target_p95_wait_ms": r(target_ms),
        "waited": waited, "wait_source": wait_source, "max_overflow": overflow, "erlang_c": table,
        "db_max_connections": max_conn, "connection_budget": budget, "max_instances": fleet,
        "queries": _queries(queries, service),
    }
    if pool is not None:
        evidence["pool_metrics"] = {"convention": pool.convention, "metrics": pool.metrics, "size": pool.size,
                                    "used_mean": r(pool.used_mean, 3), "pending_max": r(pool.pending_max),
                                    "timeouts": r(pool.timeouts, 0), "wait_mean_ms": r(pool.wait_mean_ms, 3),
                                    "instances": pool.instances}
    if plateau is not None:
        evidence["throughput_limit"] = {"goodput_rps": r(plateau.throughput), "attribution": plateau.attribution,
                                        "concurrency": plateau.concurrency.to_json() if plateau.concurrency else None}
    p95_ms, meets_slo = at_rec["p95_ms"], at_rec["meets_slo"]
    if direction == "decrease":
        # A smaller pool promises no better latency than the run had: the service's p95 today (it
        # holds the machine's and the service's own delays, which the unloaded latency leaves out)
        # plus whatever more the smaller pool makes requests wait.
        today = max((m.endpoints[k].p95_ms for k in keys), default=0.0)
        extra = max(0.0, (at_rec["p95_wait_ms"] or 0.0) - (at_cur["p95_wait_ms"] or 0.0))
        p95_ms = r(today + extra)
        meets_slo = bool(at_rec["stable"] and p95_ms is not None and p95_ms <= inputs.slo_p95_ms)
    rec = DbPool(
        service=service, current=current, recommended=recommended, reason=reason, basis=basis, evidence=evidence,
        # A larger pool should carry the plan's peak; a smaller one keeps what the run achieved.
        predicted={"p95_ms": p95_ms, "p95_wait_ms": at_rec["p95_wait_ms"],
                   "throughput_rps": r(offered.rps if direction == "increase" else goodput_rps),
                   "utilization": at_rec["utilization"],
                   "meets_slo": meets_slo, "at_current": at_cur, "two_fewer": two_fewer},
        cap_binds=cap_binds, alternatives=alternatives)
    return PoolDecision(service, current, recommended, s, lam, target_ms, rec)


def _ms(value: float | None, stable: bool) -> str:
    return f"{value:.1f} ms" if stable and value is not None else "unbounded (unstable queue)"


def _queries(queries: dict[str, str], service: str) -> list[dict[str, str]]:
    wanted = ["endpoints", "endpoint_series", *sorted(k for k in queries if k.startswith("pool_")
                                                        and k.endswith(f":{service}"))]
    return [{"label": k, "query": queries[k]} for k in wanted if k in queries]
