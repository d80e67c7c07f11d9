"""`loadbearing recommend RUN_DIR`: read a run back and compute findings and recommendations.

`recommend_run(run_dir, influx=None, connect=None)` reads `run.json`, the plan snapshot and
k6's summaries, queries InfluxDB (aggregates only; `connect` reaches the store the run
recorded), returns the recommendations document (docs/architecture.md), writes it to
`RUN_DIR/recommendations.json` (`dumps_document`,
byte-identical to what `--json` prints) and writes each finding and recommendation
to InfluxDB as a `loadbearing_events` point (kind=finding|recommendation) for
Grafana annotations. Same data, same output: lists are sorted and numbers rounded.

An invalid run (`"valid": false`) gets no recommendations: `invalid_reasons` says
why, instead of guessing. Errors: BadInput (exit 2) for a bad run directory,
RunError (exit 4) when InfluxDB is unreachable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import measurements as names
from core.errors import BadInput
from core.influx import InfluxClient, line
from core.rundir import RunDir, StoreConnector
from policies import cache, pool, scaling
from policies.findings import (
    Finding,
    Plateau,
    error_findings,
    r,
    slo_breaches,
    throughput_limits,
    timeout_findings,
)
from policies.inputs import RunInputs, load_run, with_capacity_run
from policies.metrics import CountersBackwards, Measurements, MetricsReader
from policies.recommendations import Recommendation
from policies.validity import Validity, judge, short_modules
from runners.results import near_coincidences

FINDING_ORDER = ("metrics_incomplete", "metrics_inconsistent", "generator_saturated", "too_little_data",
                 "no_response", "throughput_limit", "timeout_errors", "slo_breach", "error_rate")
REC_ORDER = ("db_pool", "cache", "autoscaling")


@dataclass
class Analysis:
    """Everything a report needs: the inputs, the aggregates, the document and the queries behind it."""

    inputs: RunInputs
    measurements: Measurements
    validity: Validity
    plateaus: list[Plateau]
    document: dict[str, Any]
    queries: dict[str, str] = field(default_factory=dict)


def client_for(inputs: RunInputs, connect: StoreConnector | None = None) -> InfluxClient:
    """A client of the store the run recorded: through `connect` when given (the CLI's brings a
    local stack up again), else the URL in run.json."""
    if connect is not None:
        return connect(inputs.record.influx)
    if not inputs.influx_url:
        raise BadInput(f"{inputs.run_dir.record_path}: no influx.url; the run did not record its metrics store")
    return InfluxClient.from_url(inputs.influx_url, db=inputs.influx_db or None)


def make_reader(inputs: RunInputs, client: InfluxClient) -> MetricsReader:
    return MetricsReader(client, inputs.testid, inputs.started_ms, inputs.ended_ms)


def analyze(inputs: RunInputs, reader: MetricsReader) -> Analysis:
    """Findings and recommendations for a loaded run: one read of the store, then pure decisions."""
    try:
        m = read_snapshot(inputs, reader)
    finally:
        reader.close()
    return decide(inputs, m, dict(reader.queries))


def read_snapshot(inputs: RunInputs, reader: MetricsReader) -> Measurements:
    """Everything the policies use, read once from InfluxDB (aggregates only)."""
    m = reader.read({s: inputs.service_window(s) for s in inputs.services()})
    if short_modules(inputs, m):
        m.near_pairs = near_coincidences(reader.client, inputs.testid)
    return m


def decide(inputs: RunInputs, m: Measurements, queries: dict[str, str]) -> Analysis:
    """The policies, as pure functions of the run's facts and its measurement snapshot."""
    validity = judge(inputs, m)
    plateaus = throughput_limits(inputs, m)
    findings: list[Finding] = [*validity.findings, *(p.finding for p in plateaus), *timeout_findings(m),
                               *slo_breaches(inputs, m), *error_findings(inputs, m)]
    notes = [*inputs.notes, *scrape_notes(m)]
    recs: list[Recommendation] = []
    if validity.valid:
        silent = {f.service for f in findings if f.kind == "no_response"}
        by_service = {p.service: p for p in plateaus}
        decisions: dict[str, pool.PoolDecision] = {}
        at_peak: dict[str, int] = {}  # the instance count autoscaling sizes for the peak (caches per service)
        for service in inputs.services():
            if service in silent:
                continue
            plateau = by_service.get(service)
            decision = pool.decide(inputs, m, service, plateau, queries)
            scale, note = scaling.recommend(inputs, m, service, plateau, decision, queries)
            if scale is not None and decision.recommendation is not None:
                # Joint cap: the pool must fit max_instances x pool in the database's budget.
                decision = pool.decide(inputs, m, service, plateau, queries, max_instances=scale.max_instances)
            decisions[service] = decision
            if decision.recommendation is not None:
                recs.append(decision.recommendation)
            elif decision.note:
                notes.append(decision.note)
            if scale is not None:
                recs.append(scale)
                at_peak[service] = scale.instances
            elif note:
                notes.append(note)
        cache_recs, cache_notes = cache.recommend(inputs, m, queries, decisions, instances=at_peak)
        recs.extend(cache_recs)
        notes.extend(cache_notes)
    else:
        notes.append("run invalid: no recommendations (see invalid_reasons)")
    document = build_document(inputs, m, validity, findings, [rec.to_json() for rec in recs], notes)
    return Analysis(inputs, m, validity, plateaus, document, queries)


def scrape_notes(m: Measurements) -> list[str]:
    """What failed scrapes of a metrics_url, or counters that went backwards, mean for the evidence."""
    out = [backwards_note(service, fell) for service, fell in sorted(m.backwards.items())]
    for service, health in sorted(m.scrapes.items()):
        if not health.failed:
            continue
        if health.failed >= health.attempts:
            out.append(f"metrics_url of {service}: all {health.attempts} scrapes failed (last: {health.last_error}); "
                       "no white-box evidence for it, the policies used k6's samples alone")
        else:
            out.append(f"metrics_url of {service}: {health.failed} of {health.attempts} scrapes failed (last: "
                       f"{health.last_error}); its white-box numbers cover the other scrapes")
    return out


def backwards_note(service: str, fell: CountersBackwards) -> str:
    return (f"metrics_url of {service}: {fell.metric} went backwards {fell.times} time(s) between scrapes of "
            f"{fell.instance}. A counter only grows within one process, so the scrapes reached different processes "
            "(instances or worker processes behind one address, each with its own counts) or the service restarted "
            "during the run; rates over them would mix processes, so its pool and cache metrics were not used "
            "(the policies used k6's samples: black box). To fix: give one metrics_url per instance "
            f"(services.{service}.metrics_url = [\"http://HOST1:PORT/metrics\", \"http://HOST2:PORT/metrics\"]), "
            "or expose metrics aggregated across the worker processes (e.g. prometheus-client's multiprocess mode)")


def _finding_sort(f: dict[str, Any]) -> tuple[Any, ...]:
    kind = f["kind"]
    order = FINDING_ORDER.index(kind) if kind in FINDING_ORDER else len(FINDING_ORDER)
    return (order, kind, f.get("service") or "", f.get("endpoint") or "", f.get("module") or "", f["detail"])


def _rec_sort(rec: dict[str, Any]) -> tuple[Any, ...]:
    kind = rec["kind"]
    return (REC_ORDER.index(kind) if kind in REC_ORDER else len(REC_ORDER), rec["service"],
            rec.get("endpoint") or "")


def build_document(inputs: RunInputs, m: Measurements, validity: Validity, findings: list[Finding],
                   recs: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    endpoints = []
    for key, st in sorted(m.endpoints.items()):
        mod = inputs.module(key.module)
        seconds = mod.seconds if mod is not None and mod.seconds > 0 else inputs.seconds
        endpoints.append({
            "module": key.module, "service": key.service, "name": key.name, "method": key.method,
            "requests": st.requests, "rps": r(st.requests / seconds if seconds else 0.0),
            "p50_ms": r(st.p50_ms), "p95_ms": r(st.p95_ms), "p99_ms": r(st.p99_ms),
            "error_rate": r(st.error_rate, 4),
        })
    return {
        "run_id": inputs.run_id,
        "valid": validity.valid,
        "invalid_reasons": list(validity.reasons),
        "findings": sorted((f.to_json() for f in findings), key=_finding_sort),
        "endpoints": endpoints,
        "recommendations": sorted(recs, key=_rec_sort),
        "slo": {"p95_ms": inputs.slo_p95_ms, "max_error_rate": inputs.slo_error_rate},
        "testid": inputs.testid,
        "strategy": inputs.strategy,
        "bucket_s": m.interval_s,
        "app": app_section(m),
        "notes": sorted(set(notes)),
        **({"capacity_run": {"run_id": inputs.ramps_run.path.name, "dir": str(inputs.ramps_run.path.absolute())}}
           if inputs.ramps_run is not None else {}),
    }


def app_section(m: Measurements) -> dict[str, Any]:
    """The services' own metrics over the run (scraped from metrics_url), per service: what
    `verify` measures a cache's hit ratio by."""
    caches = [{"service": svc, "metric": c.metric, "hits": r(c.hits, 0), "misses": r(c.misses, 0),
               "hit_ratio": r(c.hit_ratio, 4)} for svc, c in sorted(m.caches.items())]
    pools = [{"service": svc, "convention": p.convention, "size": p.size, "used_mean": r(p.used_mean),
              "pending_max": p.pending_max, "timeouts": p.timeouts, "hold_ms": r(p.hold_ms, 3),
              "wait_mean_ms": r(p.wait_mean_ms, 3)} for svc, p in sorted(m.pools.items())]
    scrapes = [{"service": svc, "attempts": h.attempts, "failed": h.failed, "last_error": h.last_error}
               for svc, h in sorted(m.scrapes.items())]
    backwards = [{"service": svc, "metric": b.metric, "instance": b.instance, "times": b.times}
                 for svc, b in sorted(m.backwards.items())]
    return {"caches": caches, "pools": pools, "scrapes": scrapes, "counters_backwards": backwards}


def dumps_document(document: dict[str, Any]) -> str:
    """The document as written to recommendations.json and printed by `recommend --json`."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def analyze_run(run_dir: Path, influx: InfluxClient | None = None,
                connect: StoreConnector | None = None, capacity: Path | None = None) -> Analysis:
    """Analyse a run. `capacity`: a capacity run whose knees size autoscaling (default: the one
    the run's recommendations were built on, if any, so report and verify see the same numbers)."""
    inputs = load_run(Path(run_dir))
    if capacity is None and inputs.ramps is None:
        capacity = capacity_run_of(inputs.run_dir.read_recommendations())
    if capacity is not None:
        inputs = with_capacity_run(inputs, capacity)
    client = influx or client_for(inputs, connect)
    return analyze(inputs, make_reader(inputs, client))


def capacity_run_of(document: dict[str, Any] | None) -> Path | None:
    """The capacity run a recommendations document was built on, when it still exists."""
    ref = (document or {}).get("capacity_run") or {}
    path = Path(ref["dir"]) if ref.get("dir") else None
    return path if path is not None and path.is_dir() else None


def event_lines(document: dict[str, Any], testid: str, strategy: str, ended_ms: int) -> list[str]:
    """One `loadbearing_events` point per finding and recommendation, 1 ms apart at the run's end."""
    out = []
    items = [("finding", f) for f in document["findings"]] + [("recommendation", x) for x in
                                                              document["recommendations"]]
    for i, (kind, item) in enumerate(items):
        name = "/".join(p for p in (item.get("service"), item.get("endpoint")) if p) or document["run_id"]
        if kind == "finding":
            title = f"{item['kind']}: {name}"
            text = item["detail"]
        else:
            title = f"{item['kind']} {name}: {headline(item)}"
            text = item.get("reason", "")
        out.append(line(names.EVENTS, {names.TESTID: testid, names.STRATEGY: strategy, names.KIND: kind, names.EVENT: item["kind"],
                                   names.NAME: name}, {"title": title, "text": text}, (ended_ms + i) * 1_000_000))
    return out


def headline(rec: dict[str, Any]) -> str:
    """A one-line summary of a recommendation (events, reports, the CLI)."""
    if rec["kind"] == "db_pool":
        return f"pool {rec['current']} -> {rec['recommended']}"
    if rec["kind"] == "cache":
        return f"TTL {rec['ttl_s']} s, hit ratio {rec['expected_hit_ratio']:.2f}"
    if rec["kind"] == "autoscaling":
        return (f"{rec['instances']} at the peak ({rec['min_instances']}-{rec['max_instances']} instances), "
                f"{rec['metric']} {rec['target_value']}")
    return rec["kind"]


def recommend_run(run_dir: Path, influx: InfluxClient | None = None,
                  connect: StoreConnector | None = None, capacity: Path | None = None) -> dict[str, Any]:
    """The recommendations document for a run; also written to RUN_DIR/recommendations.json and to InfluxDB.

    `capacity`: a capacity run (`loadbearing run capacity`) whose knees size autoscaling."""
    analysis = analyze_run(Path(run_dir), influx, connect, capacity)
    doc = analysis.document
    inputs = analysis.inputs
    inputs.run_dir.write_recommendations(dumps_document(doc))
    client = influx or client_for(inputs, connect)
    client.write(event_lines(doc, inputs.testid, inputs.strategy, inputs.ended_ms))
    return doc


def render_summary(document: dict[str, Any]) -> str:
    """Plain-text summary for humans (the CLI prints it when --json is not given)."""
    lines = [f"run {document['run_id']}: " + ("valid" if document["valid"] else "INVALID")]
    lines += [f"  invalid: {reason}" for reason in document["invalid_reasons"]]
    for f in document["findings"]:
        lines.append(f"  finding {f['kind']}: {f['detail']}")
    for rec in document["recommendations"]:
        where = "/".join(p for p in (rec.get("service"), rec.get("endpoint")) if p)
        lines.append(f"  recommend {rec['kind']} {where}: {headline(rec)}")
    if not document["recommendations"]:
        lines.append("  no recommendations")
    return "\n".join(lines) + "\n"


def load_recommendations(run_dir: Path, connect: StoreConnector | None = None) -> dict[str, Any]:
    """RUN_DIR/recommendations.json, computed (and written) first when the run has none."""
    doc = RunDir(run_dir).read_recommendations()
    return recommend_run(run_dir, connect=connect) if doc is None else doc


def require_valid(doc: dict[str, Any], run_dir: Path) -> None:
    """BadInput (exit 2) for an invalid run's document: its numbers are never applied or verified."""
    if not doc.get("valid", False):
        reasons = "; ".join(doc.get("invalid_reasons", [])) or "unknown"
        raise BadInput(f"{run_dir}: the run is not valid ({reasons}); its numbers cannot be applied. "
                       "Fix the cause and run again.")
