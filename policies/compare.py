"""`loadbearing compare BASELINE RUN`: did anything get slower or fail more often than the baseline?

`compare(baseline, run, ...)` takes two `RunProfile`s (InfluxDB aggregates; the
baseline may come from a pinned file) and, per endpoint present in both, puts
requests/s, p50/p95/p99 and the error rate side by side with the change and its
significance (`policies.compare_stats`: the exact control quantile test for latency,
Fisher's exact test for errors). Only p95 and the error rate can fail a build, and only
beyond the run's plan tolerances (`[compare]`, see `core.plan.Compare`) and the
effect-size floor. The result is the comparison document (`dumps`, what `--json`
prints and `RUN_DIR/comparison.json` holds):

    {"baseline": {run_id, testid, strategy, started_at, ...}, "run": {...},
     "verdict": "regressed" | "improved" | "no significant change",
     "regressed": [labels], "improved": [labels],
     "tolerances": {p95_increase, error_rate_increase, min_effect_ms, alpha, tests, per_test_alpha},
     "method": {"latency": ..., "errors": ...},
     "differences": {"refused": [...], "informational": [...]}, "forced": bool,
     "endpoints": [{module, service, name, method, verdict,
                    "baseline": {requests, rps, p50_ms, p95_ms, p99_ms, error_rate},
                    "run": {...}, "p95": {change_ms, change, verdict, why, p_slower, p_faster,
                    share_above, expected_share_above}, "p50": {...}, "p99": {...},
                    "error_rate": {change, verdict, why, p_higher, p_lower}, "rps": {change}}],
     "only_in_baseline": [...], "only_in_run": [...],
     "series": {"bucket_s": {...}, "<module> <method> <name>": {"baseline": [[t_s, p95_ms, rps]], "run": [...]}}}

Endpoints are listed regressions first, then improvements, then the rest. Runs of
different plans (the load: modules, their scripts and shapes, the strategy) are
refused unless forced (`PlanMismatch`, exit 2, naming every difference); differences
in what a run is *against* (target URLs, service settings, SLO, tolerances) are
listed but do not stop a comparison: they are what a before/after comparison is for.

`write_relative_series(client, profile)` stores a run's per-bucket p95 and requests/s
on a run-relative time axis for the Grafana compare dashboard (see
`grafana_dashboards.compare`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core import measurements
from core.errors import BadInput
from core.influx import InfluxClient, line
from core.plan import Compare
from core.rundir import RunDir, StoreConnector
from policies import compare_render
from policies.baseline import baseline_for
from policies.compare_profile import PERCENTILES, EndpointProfile, RunProfile, count_at_or_below, read_profile
from policies.compare_stats import (
    IMPROVED,
    REGRESSED,
    UNCHANGED,
    Verdict,
    at_or_below_bound,
    judge_errors,
    judge_latency,
    latency_test,
    overall,
    per_test_alpha,
    rate_test,
)
from policies.inputs import load_run
from policies.metrics import EndpointKey
from policies.recommend import client_for

# Grafana's compare dashboard reads this measurement: one point per run, endpoint and time
# bucket at RELATIVE_ORIGIN + seconds since the run started (tags testid, module, service,
# name, method; fields p95_ms, rps).
RELATIVE_MEASUREMENT = measurements.RELATIVE
RELATIVE_ORIGIN_NS = 0  # 1970-01-01T00:00:00Z: the dashboard's fixed time axis starts there
# Plan keys that describe the load: a difference here makes two runs incomparable.
LOAD_KEYS = ("name", "modules", "strategies")
METHOD = {
    "latency": "control quantile test (exact, distribution-free): slower when too few of the run's requests took "
               "at most the baseline's p50/p95/p99 (counted by InfluxDB), faster when too few of the baseline's "
               "took at most the run's (bounded from the baseline's percentile ladder)",
    "errors": "Fisher's exact test on failed/succeeded requests",
    "gate": "an endpoint regressed when its p95 or error rate changed significantly (Bonferroni over all "
            "endpoints and metrics, two-sided) and by more than the tolerance and the floor",
}
ORDER = {REGRESSED: 0, IMPROVED: 1, UNCHANGED: 2}


class PlanMismatch(BadInput):
    """The two runs ran different loads; `differences` lists each (key, baseline, run)."""

    def __init__(self, message: str, differences: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.differences = differences


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Plan JSON as {key path: value}; modules keyed by name (modules[jobs].vus)."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(node, list) and node and all(isinstance(x, dict) and "name" in x for x in node):
        for x in node:
            out.update(_flatten({k: v for k, v in x.items() if k != "name"}, f"{prefix}[{x['name']}]"))
            out[f"{prefix}[{x['name']}]"] = "present"
    else:
        out[prefix] = node
    return out


def plan_differences(baseline: RunProfile, run: RunProfile) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(differences that make the runs incomparable, differences that are only context)."""
    refused: list[dict[str, Any]] = []
    context: list[dict[str, Any]] = []
    if baseline.strategy != run.strategy:
        refused.append({"key": "strategy", "baseline": baseline.strategy, "run": run.strategy})
    if baseline.plan is None or run.plan is None:
        missing = [p.run_id for p in (baseline, run) if p.plan is None]
        refused.append({"key": "plan", "baseline": "unknown" if baseline.plan is None else "known",
                        "run": "unknown" if run.plan is None else "known",
                        "detail": f"the plan of {', '.join(missing)} was not found, so the loads cannot be compared"})
        return refused, context
    a, b = _flatten(baseline.plan), _flatten(run.plan)
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        entry = {"key": key, "baseline": a.get(key), "run": b.get(key)}
        top = key.split(".", 1)[0].split("[", 1)[0]
        load = top in LOAD_KEYS
        if top == "strategies":  # only the run's own strategy settings shape its load
            load = key.startswith(f"strategies.{run.strategy}")
        (refused if load else context).append(entry)
    return refused, context


def describe(diffs: list[dict[str, Any]]) -> list[str]:
    out = []
    for d in diffs:
        if "detail" in d:
            out.append(f"{d['key']}: {d['detail']}")
        else:
            out.append(f"{d['key']}: {_show(d['baseline'])} -> {_show(d['run'])}")
    return out


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value)


def tolerances(run: RunProfile) -> Compare:
    """The run's plan `[compare]` table (the plan under test sets its own tolerances), else the defaults."""
    raw = (run.plan or {}).get("compare")
    try:
        return Compare.model_validate(raw) if raw else Compare()
    except ValidationError as exc:
        raise BadInput(f"{run.run_dir}: the plan's [compare] table is invalid ({exc.errors()[0]['msg']}); "
                       "fix the plan and run again") from None


def _side(e: EndpointProfile) -> dict[str, Any]:
    return {"requests": e.requests, "rps": e.rps, "p50_ms": _r(e.p50_ms), "p95_ms": _r(e.p95_ms),
            "p99_ms": _r(e.p99_ms), "error_rate": _r(e.error_rate, 5)}


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _p(value: float) -> float:
    """p-values keep three significant digits, however small."""
    return float(f"{value:.3g}")


@dataclass(frozen=True)
class Pair:
    key: EndpointKey
    baseline: EndpointProfile
    run: EndpointProfile

    @property
    def label(self) -> str:
        return f"{self.key.module} {self.run.label}"


def pairs(baseline: RunProfile, run: RunProfile) -> tuple[list[Pair], list[EndpointProfile], list[EndpointProfile]]:
    """Endpoints with requests in both runs, and those only in one of them."""
    both = []
    for e in baseline.endpoints:
        other = run.endpoint(e.key)
        if other is not None and e.requests and other.requests:
            both.append(Pair(e.key, e, other))
    shared = {p.key for p in both}
    only_base = [e for e in baseline.endpoints if e.key not in shared]
    only_run = [e for e in run.endpoints if e.key not in shared]
    return both, only_base, only_run


def thresholds(baseline: RunProfile, run: RunProfile) -> dict[EndpointKey, list[float]]:
    """What to count in the run: for each shared endpoint, the baseline's p50/p95/p99."""
    both, _, _ = pairs(baseline, run)
    return {p.key: [p.baseline.percentile_ms(pct) for pct in PERCENTILES] for p in both}


def compare(baseline: RunProfile, run: RunProfile, counts: dict[EndpointKey, dict[float, int]],
            *, force: bool = False) -> dict[str, Any]:
    """The comparison document. `counts` are `count_at_or_below(run, thresholds(baseline, run))`.

    Raises PlanMismatch (exit 2) when the runs ran different loads and `force` is False.
    """
    refused, context = plan_differences(baseline, run)
    if refused and not force:
        raise PlanMismatch(
            f"runs {baseline.run_id} and {run.run_id} ran different loads; compare runs of the same plan and "
            "strategy, or pass --force to compare anyway. What differs:\n  "
            + "\n  ".join(describe(refused)), refused)
    tol = tolerances(run)
    both, only_base, only_run = pairs(baseline, run)
    tests = 2 * len(both)  # p95 and error rate per endpoint
    alpha_1 = per_test_alpha(tol.alpha, tests)
    endpoints = [_endpoint(p, counts[p.key], tol, alpha_1) for p in both]
    endpoints.sort(key=lambda e: (ORDER[e["verdict"]], -abs(e["p95"]["change_ms"]), e["module"], e["name"],
                                  e["method"]))
    regressed = [f"{e['module']} {e['method']} {e['name']}" for e in endpoints if e["verdict"] == REGRESSED]
    improved = [f"{e['module']} {e['method']} {e['name']}" for e in endpoints if e["verdict"] == IMPROVED]
    verdict: Verdict = overall([e["verdict"] for e in endpoints])
    notes = []
    if not both:
        notes.append("the runs share no endpoint with requests: nothing to compare")
    return {
        "baseline": baseline.summary(),
        "run": run.summary(),
        "verdict": verdict,
        "regressed": regressed,
        "improved": improved,
        "tolerances": {**tol.model_dump(), "tests": tests, "per_test_alpha": _p(alpha_1)},
        "method": dict(METHOD),
        "forced": bool(refused) and force,
        "differences": {"refused": refused, "informational": context},
        "endpoints": endpoints,
        "only_in_baseline": [_brief(e) for e in only_base],
        "only_in_run": [_brief(e) for e in only_run],
        "series": _series(baseline, run, both),
        "notes": notes,
    }


def _brief(e: EndpointProfile) -> dict[str, Any]:
    return {"module": e.module, "service": e.service, "name": e.name, "method": e.method, "requests": e.requests}


def _endpoint(p: Pair, counts: dict[float, int], tol: Compare, alpha_1: float) -> dict[str, Any]:
    b, n = p.baseline, p.run
    out: dict[str, Any] = {"module": p.key.module, "service": p.key.service, "name": p.key.name,
                           "method": p.key.method, "baseline": _side(b), "run": _side(n)}
    for pct in PERCENTILES:
        base_ms, run_ms = b.percentile_ms(pct), n.percentile_ms(pct)
        below = min(n.requests, counts[base_ms])
        test = latency_test(b.requests, n.requests, below, at_or_below_bound(b.ladder, b.requests, run_ms), pct)
        entry: dict[str, Any] = {
            "change_ms": _r(run_ms - base_ms), "change": _r((run_ms - base_ms) / base_ms, 4) if base_ms else None,
            "p_slower": _p(test.p_slower), "p_faster": _p(test.p_faster),
            "share_above": _r(test.share_above, 4), "expected_share_above": _r(test.expected_share_above, 4)}
        if pct == 95.0:
            judged = judge_latency(base_ms, run_ms, test, tol, alpha_1)
            entry.update(verdict=judged.verdict, why=judged.why)
        out[f"p{pct:g}"] = entry
    rates = rate_test(b.failed, b.requests, n.failed, n.requests)
    judged = judge_errors(rates, tol, alpha_1)
    out["error_rate"] = {"change": _r(rates.rate2 - rates.rate1, 5), "p_higher": _p(rates.p_higher),
                         "p_lower": _p(rates.p_lower), "verdict": judged.verdict, "why": judged.why}
    out["rps"] = {"change": _r((n.rps - b.rps) / b.rps, 4) if b.rps else None}
    out["verdict"] = overall([out["p95"]["verdict"], out["error_rate"]["verdict"]])
    return out


def _series(baseline: RunProfile, run: RunProfile, both: list[Pair]) -> dict[str, Any]:
    out: dict[str, Any] = {"bucket_s": {"baseline": baseline.bucket_s, "run": run.bucket_s}}
    for p in both:
        out[p.label] = {"service": p.key.service, "baseline": [list(x) for x in p.baseline.series],
                        "run": [list(x) for x in p.run.series]}
    return out


def dumps(document: dict[str, Any]) -> str:
    """The document as `--json` prints it and comparison.json holds it."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def relative_lines(testid: str, endpoints: Iterable[EndpointProfile]) -> list[str]:
    """A run's per-bucket p95 and requests/s at RELATIVE_ORIGIN + seconds since its start."""
    out = []
    for e in endpoints:
        tags = {measurements.TESTID: testid, measurements.MODULE: e.module, measurements.SERVICE: e.service,
                measurements.NAME: e.name, measurements.METHOD: e.method}
        for t_s, p95, rps in e.series:
            out.append(line(RELATIVE_MEASUREMENT, tags, {"p95_ms": float(p95), "rps": float(rps)},
                            RELATIVE_ORIGIN_NS + round(t_s * 1e9)))
    return out


def write_relative_series(client: InfluxClient, *profiles: RunProfile) -> None:
    """Store each run's relative series (idempotent: the same run writes the same points)."""
    client.write([x for p in profiles for x in relative_lines(p.testid, p.endpoints)])


@dataclass(frozen=True)
class Outcome:
    document: dict[str, Any]
    json_path: Path
    markdown_path: Path

    @property
    def regressed(self) -> bool:
        return bool(self.document["verdict"] == REGRESSED)


def compare_runs(run_dir: Path, baseline_dir: Path | None = None, *, baseline_file: Path | None = None,
                 force: bool = False, influx: InfluxClient | None = None,
                 connect: StoreConnector | None = None) -> Outcome:
    """Compare `run_dir` with `baseline_dir`, or with the pinned baseline when it is None.

    Writes RUN_DIR/comparison.json and RUN_DIR/comparison.md, and both runs' relative
    series to the run's InfluxDB (for the Grafana compare dashboard). `connect` reaches the
    store each run recorded (default: the URL in its run.json).
    """
    run_dir = Path(run_dir)
    client = influx or client_for(load_run(run_dir), connect)
    run = read_profile(run_dir, client)
    base = baseline_for(run, baseline_file) if baseline_dir is None else read_profile(Path(baseline_dir),
                                                                                      connect=connect)
    counts = count_at_or_below(run, thresholds(base, run), client)
    document = compare(base, run, counts, force=force)
    write_relative_series(client, base, run)
    json_path, md_path = RunDir(run_dir).write_comparison(dumps(document), compare_render.markdown(document))
    return Outcome(document, json_path, md_path)
