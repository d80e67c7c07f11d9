"""The numbers of a finished run, computed from the stored samples in InfluxDB.

Per module: requests (count of http_reqs), p95 of http_req_duration, error rate
(mean of http_req_failed), requests per runner, and k6's own request count from
the summaries. When stored < k6's count the record says the metrics are
incomplete; when the store is gone, the k6 summaries give the numbers and the
record says where they came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core import measurements as names
from core.errors import RunError
from core.influx import InfluxClient, quote_literal
from core.plan import Plan, Slo
from core.rundir import K6Summary, MetricsRecord, RunDir, RunRecord, runner_module

COLLISION_TOLERANCE = 1e-3  # same-timestamp points InfluxDB merges; see allowed_missing
NEAR_NS = 25                # "near-coincident": two samples of one series at most this far apart


def allowed_missing(k6_count: int, near_pairs: int = 0) -> int:
    """How many of k6's samples may be missing from InfluxDB before the run is incomplete.

    InfluxDB keeps one point per series and nanosecond: two requests of one series that
    k6 stamps in the same nanosecond (it writes vu/iter as fields, not tags) merge into one.
    Random coincidences are about 1 in 10^5 at ~10k requests/s per runner (bench/fidelity);
    a target that answers in lockstep (a saturated pool of 2 releasing queued requests
    together, the demo's profile-api) makes k6 stamp responses a few ns apart, and a few
    per thousand land on the same ns. So: 0.1 % of k6's count (at least 1), or, when more
    are missing, as many as the store shows pairs of same-series samples within NEAR_NS ns
    of each other (the evidence that merges happen at that rate). A lost write loses a
    whole push (every sample of a second), far more than either.
    """
    if k6_count <= 0:
        return 0
    return max(math.ceil(k6_count * COLLISION_TOLERANCE), near_pairs)


def near_coincidences(influx: InfluxClient, testid: str) -> dict[str, int]:
    """Per module: consecutive `http_reqs` samples of one series at most NEAR_NS ns apart
    (InfluxQL `elapsed` per series, counted in InfluxDB)."""
    q = (f'SELECT count("elapsed") FROM (SELECT elapsed("value", 1ns) FROM "{names.HTTP_REQS}" '
         f'WHERE "{names.TESTID}" = {quote_literal(testid)} GROUP BY *) WHERE "elapsed" <= {NEAR_NS} GROUP BY "{names.MODULE}"')
    return {s.get("tags", {}).get(names.MODULE, ""): int(s["values"][0][1])
            for s in influx.series(q) if s.get("values")}


def _by_tag(influx: InfluxClient, select: str, measurement: str, testid: str, tag: str) -> dict[str, float]:
    q = (f'SELECT {select} FROM "{measurement}" WHERE "{names.TESTID}" = {quote_literal(testid)} '
         f'GROUP BY "{tag}"')
    out: dict[str, float] = {}
    for s in influx.series(q):
        value = s["values"][0][1] if s.get("values") else None
        if value is not None:
            out[s.get("tags", {}).get(tag, "")] = float(value)
    return out


@dataclass(frozen=True)
class Stored:
    """A run's numbers as InfluxDB computes them from the stored samples, per module (and runner)."""

    requests: dict[str, float]
    p95_ms: dict[str, float]
    error_rate: dict[str, float]
    runner_requests: dict[str, float]


SOURCE_STORE = "influxdb"
SOURCE_SUMMARIES = "k6 summaries (InfluxDB unavailable)"


def read_stored(influx: InfluxClient, testid: str) -> Stored:
    """Raises RunError when the store does not answer."""
    return Stored(
        requests=_by_tag(influx, 'count("value")', names.HTTP_REQS, testid, names.MODULE),
        p95_ms=_by_tag(influx, 'percentile("value", 95)', names.HTTP_REQ_DURATION, testid, names.MODULE),
        error_rate=_by_tag(influx, 'mean("value")', names.HTTP_REQ_FAILED, testid, names.MODULE),
        runner_requests=_by_tag(influx, 'count("value")', names.HTTP_REQS, testid, names.RUNNER))


def module_numbers(record: RunRecord, slo: Slo, stored: Stored | None,
                   summaries: dict[str, K6Summary]) -> tuple[int, int]:
    """Fill each module's requests, p95, error rate, per-runner requests, k6's own count and SLO
    verdict: from `stored`, else (the store gone) from k6's summaries. Returns the run's
    (stored requests, k6's requests)."""
    stored_total = 0
    k6_total = 0
    for mod in record.modules:
        mine = {k: v for k, v in summaries.items() if runner_module(k) == mod.name}
        mod.k6_requests = sum(v.requests for v in mine.values()) if mine else None
        if stored is not None:
            mod.requests = int(stored.requests.get(mod.name, 0))
            mod.p95_ms = _round(stored.p95_ms.get(mod.name))
            mod.error_rate = _round(stored.error_rate.get(mod.name), 6)
            mod.runner_requests = {k: int(v) for k, v in sorted(stored.runner_requests.items())
                                   if runner_module(k) == mod.name}
        elif mine:
            mod.requests = mod.k6_requests
            mod.p95_ms = _round(max((v.p95_ms or 0.0) for v in mine.values()))
            reqs = sum(v.requests for v in mine.values())
            mod.error_rate = _round(sum((v.error_rate or 0.0) * v.requests for v in mine.values())
                                    / reqs, 6) if reqs else None
        if mod.requests is not None and mod.p95_ms is not None and mod.error_rate is not None and mod.requests > 0:
            mod.thresholds_ok = mod.p95_ms <= slo.p95_ms and mod.error_rate <= slo.max_error_rate
        elif mod.started_at is not None:
            mod.thresholds_ok = False
            if not mod.requests:
                mod.failures.append("no requests were recorded")
        stored_total += mod.requests or 0
        k6_total += mod.k6_requests or 0
    return stored_total, k6_total


def completeness(from_store: bool, stored_total: int, k6_total: int, near: int | None) -> MetricsRecord:
    """Whether the stored samples hold every request k6 counted, allowing for same-nanosecond
    merges (`allowed_missing`; `near`: the same-series pairs within NEAR_NS the store shows)."""
    if not from_store:
        return MetricsRecord(source=SOURCE_SUMMARIES, stored_requests=None, k6_requests=k6_total, complete=False,
                             near_coincident_pairs=near, incomplete_reason=SOURCE_SUMMARIES)
    complete = stored_total >= k6_total - allowed_missing(k6_total, near or 0)
    metrics = MetricsRecord(source=SOURCE_STORE, stored_requests=stored_total, k6_requests=k6_total,
                            complete=complete, near_coincident_pairs=near)
    if complete and stored_total < k6_total:
        metrics.collapsed_points = k6_total - stored_total
    if not complete:
        metrics.incomplete_reason = (
            f"stored {stored_total} of k6's {k6_total} requests"
            + (f" (more than the {near} same-series pairs within {NEAR_NS} ns that same-nanosecond merges "
               "could explain)" if near is not None else ""))
    return metrics


def compute_results(record: RunRecord, plan: Plan, influx: InfluxClient, run_dir: RunDir) -> None:
    """Fill each module's numbers and `record.metrics` from the stored samples (else k6's summaries)."""
    stored: Stored | None
    try:
        stored = read_stored(influx, record.testid)
    except RunError as exc:
        stored = None
        record.errors.append(f"metrics store unavailable at the end of the run: {exc.message}")
    stored_total, k6_total = module_numbers(record, plan.slo, stored, run_dir.summaries())
    near: int | None = None
    if stored is not None and k6_total - stored_total > allowed_missing(k6_total):
        try:
            near = sum(near_coincidences(influx, record.testid).values())
        except RunError:
            near = None
    record.metrics = completeness(stored is not None, stored_total, k6_total, near)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
