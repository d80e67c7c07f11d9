"""cache: a TTL for read endpoints whose keys repeat, with the hit ratio it buys.

GET endpoints only; never writes. Per endpoint, from InfluxDB:

- `n` requests and `K` distinct keys, counted in InfluxDB (`count(distinct)`): the
  `key` field (loadbearing's entry script tags every GET with its path and query; a
  script's own `key` tag wins), else `url` (when k6 replaced `url` with the request's
  `name` and no `key` was stored, the key space is unknown and no cache is recommended). `K / n` bounds the hit ratio: every key's first
  request misses.
- Per-key Poisson model (uniform keys, a lower bound for skewed popularity): a
  key read at lambda_k = rps / K with TTL T hits lambda_k T / (1 + lambda_k T);
  writes on the same service invalidate at w per key, shortening the entry's
  life to (1 - e^(-wT)) / w.
- Instances: a service run as N instances with an in-process cache (the plan's
  `cache_scope = "instance"`, the default) keeps N caches, and a balancer spreads
  each key's reads over them: each cache sees it at lambda_k / N, so the hit ratio
  falls (N = the count an autoscaling recommendation sizes for the peak, else the
  plan's `instances`). A shared cache (`cache_scope = "shared"`: Redis, memcached)
  is one cache whatever N.
- Replay: the run's own key stream cut into windows of T seconds, one miss per
  distinct key per window (count(distinct) GROUP BY time(T) in InfluxDB). This
  keeps the real popularity skew; it is one cache's, scaled by the model's factor
  for write invalidation and for N caches.

The expected hit ratio is the replay's (the model's when no replay is possible).
Candidates stop at the first TTL as long as the module ran (longer ones replay the
same on this run, so it cannot tell them apart). A TTL is recommended (the smallest
candidate reaching 0.8, else the best up to `max_ttl_s` reaching 0.5; the TTL already
in place when it is within 5 points of that) only when the expected p95 after is materially lower
(>= 10 ms and >= 20 %). Expected p95 after, with hit ratio h:

- when the service's pool is known (hold time S, pool c, offered rate per
  instance from the pool policy): misses and writes still reach the pool at
  lambda' = lambda - h x lambda_GET; a miss takes R0 + its Erlang-C wait, and the
  mixture's p95 is R0 + ln((1 - h) C / 0.05) / (c/S - lambda') (R0 alone when
  (1 - h) C <= 0.05);
- when today's pool cannot keep up even with the cache, but the pool policy
  recommends a bigger one: the same model at the recommended pool, and the gain is
  measured against that pool alone (the cache never takes credit for the pool fix);
- otherwise misses keep today's latency distribution: p95 after = today's
  percentile 100 (1 - 0.05 / (1 - h)) of the endpoint (conservative).

Hits are assumed as slow as the endpoint's fastest request today (conservative).
Per-request-unique keys (K / n >= 0.9) never get a cache.
"""

from __future__ import annotations

import math
from typing import Any

from policies.findings import r
from policies.inputs import RunInputs
from policies.metrics import TTL_CANDIDATES, EndpointKey, KeySpace, Measurements
from policies.pool import PoolDecision
from policies.queueing import erlang_c
from policies.recommendations import Basis, Cache
from policies.workload import unloaded_ms

MIN_HIT_RATIO = 0.5
GOOD_HIT_RATIO = 0.8
MAX_TTL_S = 60
UNIQUE_RATIO = 0.9
MIN_REQUESTS = 50
MIN_GAIN_MS = 10.0
MIN_GAIN_SHARE = 0.2
KEEP_MARGIN = 0.05   # keep the TTL in place unless another is expected to hit 5 points more
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def miss_percentile(h: float) -> float:
    """Today's percentile whose latency the misses keep when a share `h` (< 0.95) of reads hit:
    the after-p95 is the (1 - 0.05 / (1 - h)) quantile of today's latencies (at most p95)."""
    return 100.0 * (1.0 - 0.05 / (1.0 - h))


def ttl_hit_ratio(rate_per_key: float, ttl_s: float, write_rate_per_key: float = 0.0) -> float:
    """Poisson per-key hit ratio of a TTL cache: lambda L / (1 + lambda L), L the entry's life."""
    if rate_per_key <= 0 or ttl_s <= 0:
        return 0.0
    life = ttl_s if write_rate_per_key <= 0 else (1 - math.exp(-write_rate_per_key * ttl_s)) / write_rate_per_key
    x = rate_per_key * life
    return x / (1 + x)


def caches(instances: int | None, scope: str) -> int:
    """How many caches a service's reads are spread over: one per instance for an in-process
    cache (`cache_scope = "instance"`, the default), one for a shared cache (`"shared"`)."""
    return 1 if scope == "shared" else max(1, instances or 1)


def rescale_hit_ratio(h: float, rate_per_key: float, ttl_s: float, write_rate_per_key: float,
                      caches_from: int, caches_to: int) -> float:
    """A hit ratio `h` measured or predicted over `caches_from` caches, moved to `caches_to` caches
    by the per-key model: behind a balancer each key reaches each of N caches at rate / N (writes
    invalidate every cache at their full rate), so h scales with
    ttl_hit_ratio(rate / caches_to) / ttl_hit_ratio(rate / caches_from)."""
    if caches_from == caches_to:
        return h
    before = ttl_hit_ratio(rate_per_key / caches_from, ttl_s, write_rate_per_key)
    after = ttl_hit_ratio(rate_per_key / caches_to, ttl_s, write_rate_per_key)
    return min(1.0, h * after / before) if before > 0 else 0.0


def ttl_candidates(seconds: float, max_ttl_s: int = MAX_TTL_S) -> list[int]:
    """TTL_CANDIDATES up to `max_ttl_s`, ending at the first as long as the run (`seconds`):
    past the run's length every TTL replays the same key stream, so the run cannot tell them apart."""
    out: list[int] = []
    for ttl in TTL_CANDIDATES:
        if ttl > max_ttl_s or (out and out[-1] >= seconds):
            break
        out.append(ttl)
    return out


def choose_ttl(table: list[dict[str, Any]], current: float | None) -> dict[str, Any]:
    """The row of `table` (ttl_s, expected_hit_ratio) to recommend: the shortest TTL reaching
    GOOD_HIT_RATIO, else the best (shorter on ties); the TTL already in place (`current`) instead
    when it is expected to hit within KEEP_MARGIN of that, so noise between runs causes no churn."""
    def h(row: dict[str, Any]) -> float:
        return float(row["expected_hit_ratio"] or 0.0)

    good = [row for row in table if h(row) >= GOOD_HIT_RATIO]
    choice = good[0] if good else max(table, key=lambda row: (h(row), -row["ttl_s"]))
    kept = next((row for row in table if current and row["ttl_s"] == current), None)
    return kept if kept is not None and h(kept) >= h(choice) - KEEP_MARGIN else choice


def _seconds(inputs: RunInputs, module: str) -> float:
    mod = inputs.module(module)
    return mod.seconds if mod is not None and mod.seconds > 0 else inputs.seconds


def _write_rate_per_key(inputs: RunInputs, m: Measurements, service: str) -> tuple[float, list[str]]:
    """Writes per second per key on a service (writes assumed spread over the GET key space)."""
    writes = [(k, s) for k, s in m.endpoints.items() if k.service == service and k.method in WRITE_METHODS]
    rate = sum(s.requests / _seconds(inputs, k.module) for k, s in writes if _seconds(inputs, k.module) > 0)
    return rate, sorted(k.label for k, _ in writes)


def recommend(inputs: RunInputs, m: Measurements, queries: dict[str, str],
              pools: dict[str, PoolDecision] | None = None,
              max_ttl_s: int = MAX_TTL_S,
              instances: dict[str, int] | None = None) -> tuple[list[Cache], list[str]]:
    """Cache recommendations and notes (why an endpoint got none). `pools`: the pool policy's view per service;
    `instances`: the count each service will run at the plan's peak (an autoscaling recommendation's), when it
    differs from the plan's `instances`."""
    recs: list[Cache] = []
    notes: list[str] = []
    for key in sorted(k for k in m.endpoints if k.method == "GET"):
        ks = m.keyspaces.get(key, KeySpace(None, 0, 0))
        if ks.source is None:
            notes.append(f"cache {key.service}/{key.name}: key space unknown (the stored requests carry no key and "
                         "their url is the request's name); runs made by loadbearing store each GET's path and "
                         "query as `key`, so run it through `loadbearing run` with the module's key_requests left on, or "
                         "tag requests with `key`")
            continue
        if ks.requests < MIN_REQUESTS or ks.distinct == 0:
            notes.append(f"cache {key.service}/{key.name}: {ks.requests} requests are too few to judge")
            continue
        unique = ks.distinct / ks.requests
        if unique >= UNIQUE_RATIO:
            notes.append(f"cache {key.service}/{key.name}: {unique:.0%} of requests had a unique key; "
                         "a cache would not hit")
            continue
        settings = inputs.service_settings(key.service)
        count = (instances or {}).get(key.service) or (settings.instances if settings else None)
        n_caches = caches(count, settings.cache_scope if settings else "instance")
        rec = _endpoint(inputs, m, queries, key, ks, max_ttl_s, (pools or {}).get(key.service), n_caches)
        if isinstance(rec, str):
            notes.append(rec)
        else:
            recs.append(rec)
    return recs, notes


def pooled_p95_ms(h: float, r0_ms: float, pool: PoolDecision, get_share: float,
                  size: int | None = None) -> float | None:
    """p95 of the endpoint with hit ratio h when its misses queue for a pool of `size` connections
    (default: the service's current pool). None: the queue is unstable."""
    c = pool.current if size is None else size
    if pool.hold_s is None or c is None or pool.rate_per_instance <= 0:
        return None
    lam = pool.rate_per_instance * (1.0 - h * get_share)
    s = pool.hold_s
    if lam * s >= c:
        return None
    tail = (1.0 - h) * erlang_c(c, lam * s)
    if tail <= 0.05:
        return r0_ms
    return r0_ms + 1000.0 * math.log(tail / 0.05) / (c / s - lam)


def _endpoint(inputs: RunInputs, m: Measurements, queries: dict[str, str], key: EndpointKey, ks: KeySpace,
              max_ttl_s: int, pool: PoolDecision | None, n_caches: int = 1) -> Cache | str:
    st = m.endpoints[key]
    seconds = _seconds(inputs, key.module)
    rps = ks.requests / seconds if seconds > 0 else 0.0
    per_key = rps / ks.distinct
    write_rps, writers = _write_rate_per_key(inputs, m, key.service)
    write_per_key = write_rps / ks.distinct
    bound = 1.0 - ks.distinct / ks.requests
    table: list[dict[str, Any]] = []
    for ttl in ttl_candidates(seconds, max_ttl_s):
        # each of the n caches sees every key at per_key / n; writes invalidate every cache
        model = ttl_hit_ratio(per_key, ttl)
        model_w = ttl_hit_ratio(per_key / n_caches, ttl, write_per_key)
        factor = model_w / model if model > 0 else 0.0
        replay = None
        if ttl in ks.window_distinct:
            # the replay is one cache's; the factor moves it to n caches and allows for writes
            replay = max(0.0, 1.0 - ks.window_distinct[ttl] / ks.requests)
        expected = replay * factor if replay is not None else min(model_w, bound)
        table.append({"ttl_s": ttl, "model_hit_ratio": r(model_w, 4), "replay_hit_ratio": r(replay, 4),
                      "expected_hit_ratio": r(expected, 4)})
    if not table:
        return f"cache {key.service}/{key.name}: no TTL candidate up to {max_ttl_s} s"
    settings = inputs.service_settings(key.service)
    choice = choose_ttl(table, settings.cache_ttl_s if settings else None)
    h = float(choice["expected_hit_ratio"] or 0.0)
    if h < MIN_HIT_RATIO:
        return (f"cache {key.service}/{key.name}: best expected hit ratio {h:.2f} (TTL {choice['ttl_s']} s) "
                f"< {MIN_HIT_RATIO}; not worth a cache")
    hit_ms = st.min_ok_ms if st.min_ok_ms is not None else st.p50_ms
    service_requests = sum(s.requests for k, s in m.endpoints.items() if k.service == key.service)
    get_share = st.requests / service_requests if service_requests else 0.0
    pct: float | None = None
    baseline = st.p95_ms
    modelled = pooled_p95_ms(h, unloaded_ms(st), pool, get_share) if pool is not None else None
    with_fix = None
    if modelled is None and pool is not None and pool.recommended is not None and pool.recommended != pool.current:
        # Today's pool cannot keep up even with the cache: judge the cache on top of the
        # pool the pool policy recommends (both are applied together), against that pool alone,
        # so the cache never takes the credit for the pool's fix.
        with_fix = pooled_p95_ms(h, unloaded_ms(st), pool, get_share, pool.recommended)
        alone = pooled_p95_ms(0.0, unloaded_ms(st), pool, get_share, pool.recommended)
        if with_fix is not None and alone is not None:
            baseline = max(hit_ms, alone)
    if modelled is not None:
        after = max(hit_ms, modelled)
        method = "pool model (misses queue for the service's current pool)"
    elif with_fix is not None and baseline != st.p95_ms:
        after = max(hit_ms, with_fix)
        method = (f"pool model on top of the recommended pool of {pool.recommended if pool else '?'} "
                  f"(compared with that pool alone: p95 {baseline:.0f} ms)")
    elif h >= 0.95:
        after = hit_ms
        method = "hits only (h >= 0.95)"
    else:
        pct = miss_percentile(h)
        miss = m.percentile(key, pct)
        after = max(hit_ms, miss if miss is not None else st.p95_ms)
        method = f"today's p{pct:.1f} (misses keep today's latency)"
    gain = baseline - after
    if gain < max(MIN_GAIN_MS, MIN_GAIN_SHARE * baseline):
        versus = "today" if baseline == st.p95_ms else "with the recommended pool alone"
        return (f"cache {key.service}/{key.name}: expected p95 {after:.1f} ms vs {baseline:.1f} ms {versus}; "
                "the latency gain is not material")
    ttl = int(choice["ttl_s"])
    reason = (f"{key.label} on {key.service}: {ks.requests} reads of {ks.distinct} distinct keys "
              f"({ks.source}) at {rps:.1f}/s. With a {ttl} s TTL the run's own key stream would have hit "
              f"{h:.0%} of reads (per-key model {choice['model_hit_ratio']:.0%}, bound 1 - K/n = {bound:.0%}); "
              f"p95 drops from {baseline:.0f} ms to about {after:.0f} ms ({method}).")
    if n_caches > 1:
        reason += (f" Each of the {n_caches} instances keeps its own cache (cache_scope = \"instance\"), so each "
                   f"sees a key at 1/{n_caches} of its rate; a shared cache (Redis, memcached; cache_scope = "
                   f"\"shared\") would hit {rescale_hit_ratio(h, per_key, ttl, write_per_key, n_caches, 1):.0%}.")
    if writers:
        reason += f" Invalidate entries on writes ({', '.join(writers)}); the hit ratio already allows for them."
    basis = Basis("black_box", f"replay of the run's own key stream ({ks.source} field, counted in InfluxDB)",
                  "high" if ks.requests >= 1000 else "medium")
    return Cache(
        service=key.service, endpoint=key.name, module=key.module, ttl_s=ttl, expected_hit_ratio=round(h, 2),
        current_ttl_s=settings.cache_ttl_s if settings else None, reason=reason, basis=basis,
        evidence={
            "requests": ks.requests, "distinct_keys": ks.distinct, "key_source": ks.source,
            "distinct_ratio": r(ks.distinct / ks.requests, 4), "rps": r(rps, 3), "rate_per_key": r(per_key, 4),
            "write_rps": r(write_rps, 3), "write_rate_per_key": r(write_per_key, 5), "caches": n_caches,
            "cache_scope": settings.cache_scope if settings else "instance", "ttl_table": table,
            "p95_ms_now": r(st.p95_ms), "hit_latency_ms": r(hit_ms), "p95_after_method": method,
            "miss_percentile": r(pct, 2), "get_share_of_service": r(get_share, 4),
            "cache_metrics": _cache_metrics(m, key.service),
            "queries": [{"label": k, "query": q} for k, q in sorted(queries.items())
                        if k.startswith("cache_keys") or (pct is not None and k == "percentiles")],
        },
        predicted={"p95_ms": r(after), "hit_ratio": round(h, 2), "reads_from_database_rps": r(rps * (1 - h), 2)})


def _cache_metrics(m: Measurements, service: str) -> dict[str, Any] | None:
    c = m.caches.get(service)
    if c is None:
        return None
    return {"metric": c.metric, "hits": r(c.hits, 0), "misses": r(c.misses, 0), "hit_ratio": r(c.hit_ratio, 4)}
