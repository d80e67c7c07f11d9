"""`loadbearing verify BEFORE AFTER`: did the applied recommendations deliver what they predicted?

Per applied recommendation: the after run's p95, error rate and throughput against the
prediction (within TOLERANCES), a cache's hit ratio against the service's own counters;
no module worse than before (by the plan's `[compare]` rule, the one `loadbearing compare`
gates on); and convergence (recommending again on the after run moves
no applied setting). Writes AFTER_DIR/verification.json.

Instances (an autoscaling recommendation whose count the after run's plan carries, or
changed): the capacity per instance measured after the change (a capacity run of the
after state given with `--capacity`, else what the after run itself shows) against the
one the recommendation was built on, within CAPACITY_TOLERANCE; the SLO met at the
applied count; the applied count carrying the plan's peak at the recommendation's target
utilisation (with the measured capacity when there is one); and pool x instances within
the database's connection budget.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from core.console import console
from core.knees import CapacityRecord
from core.plan import Compare, Slo
from core.rundir import RunDir, RunRecord, StoreConnector
from policies.cache import caches, rescale_hit_ratio
from policies.compare_stats import p95_allowance_ms
from policies.pool import reserve
from policies.recommend import load_recommendations, recommend_run, require_valid

P95_TOLERANCE = 0.5          # measured p95 may exceed the prediction by 50% ...
P95_SLACK_MS = 50.0          # ... or by 50 ms, whichever is larger
THROUGHPUT_TOLERANCE = 0.05  # measured throughput at least 95% of the predicted (offered) rate
HIT_RATIO_TOLERANCE = 0.10   # measured cache hit ratio within 10 points of the expected
CAPACITY_TOLERANCE = 0.25    # measured capacity per instance within 25 % of the one instances were sized from
MEASURED_KINDS = ("capacity_run", "plateau", "knee", "lower_bound")  # capacities an after run measures
TOLERANCES = (f"p95 <= max(predicted x {1 + P95_TOLERANCE:g}, predicted + {P95_SLACK_MS:g} ms) and <= SLO when "
              f"the prediction meets it; errors <= SLO's max_error_rate; throughput >= "
              f"{1 - THROUGHPUT_TOLERANCE:.0%} of predicted; cache hit ratio within "
              f"{HIT_RATIO_TOLERANCE:.0%} points; capacity per instance within "
              f"{CAPACITY_TOLERANCE:.0%} of the one instances were sized from")


def tolerances(rule: Compare) -> str:
    """Every tolerance verify applies, in words, with the regression rule of the after run's plan."""
    return (f"{TOLERANCES}; no module's p95 worse than before by more than {rule.p95_increase:.0%} "
            f"and {rule.min_effect_ms:g} ms (the plan's [compare] p95_increase and min_effect_ms)")


def p95_bound(predicted_p95_ms: float, slo_p95_ms: float, meets_slo: bool = True) -> float:
    """The highest p95 that still delivers a prediction: the prediction with P95_TOLERANCE or
    P95_SLACK_MS (whichever is larger), and no more than the SLO when the prediction met it."""
    bound = max(predicted_p95_ms * (1 + P95_TOLERANCE), predicted_p95_ms + P95_SLACK_MS)
    if meets_slo and predicted_p95_ms <= slo_p95_ms:
        bound = min(bound, slo_p95_ms)
    return bound


def prediction_problems(predicted: dict[str, Any], measured: dict[str, Any], slo: Slo) -> list[str]:
    """What the after run's measured p95, error rate and throughput say against a prediction
    (empty: delivered, within TOLERANCES)."""
    problems = []
    p_p95 = predicted.get("p95_ms")
    if p_p95 is not None and measured.get("p95_ms") is not None:
        bound = p95_bound(p_p95, slo.p95_ms, predicted.get("meets_slo", True))
        if measured["p95_ms"] > bound:
            problems.append(f"p95 {measured['p95_ms']:.0f} ms > {bound:.0f} ms allowed")
    if measured.get("error_rate") is not None and measured["error_rate"] > slo.max_error_rate:
        problems.append(f"error rate {measured['error_rate']:.2%} > {slo.max_error_rate:.2%}")
    p_rps = predicted.get("throughput_rps")
    if p_rps and measured.get("throughput_rps") is not None \
            and measured["throughput_rps"] < p_rps * (1 - THROUGHPUT_TOLERANCE):
        problems.append(f"throughput {measured['throughput_rps']:.1f}/s < {p_rps * (1 - THROUGHPUT_TOLERANCE):.1f}/s")
    return problems


def hit_ratio_problem(service: str, measured: float | None, expected: float | None) -> str | None:
    """A cache's measured hit ratio against the expected one (HIT_RATIO_TOLERANCE points)."""
    if measured is None:
        return (f"no cache counters from {service} (cache_gets_total scraped from its metrics_url) in the after "
                "run: the hit ratio cannot be verified")
    if expected is not None and round(abs(measured - expected), 9) > HIT_RATIO_TOLERANCE:  # 10 points is within
        return f"{service} cache hit ratio {measured:.2f} vs expected {expected:.2f}"
    return None


def regression_bound(before_p95_ms: float, rule: Compare) -> float:
    """The highest p95 a module may have after the change. The rule is `loadbearing compare`'s: a
    p95 regressed only when it is worse by more than `p95_increase` of the before p95 *and* by
    more than `min_effect_ms` (the floor that keeps a shared machine's noise from failing a run).
    Unlike `compare` it asks no significance test: a change beyond the allowance fails verify."""
    return before_p95_ms + p95_allowance_ms(before_p95_ms, rule)


def instance_problems(*, applied: int, peak_rps: float, predicted_rps: float, measured_rps: float | None,
                      measured_is_lower_bound: bool, utilisation: float, slo_ok: bool | None,
                      pool_per_instance: int | None, db_max_connections: int | None) -> list[str]:
    """What is wrong with an applied instance count (empty: it delivers). Pure; see the module doc."""
    problems = []
    measured = measured_rps if measured_rps is not None and not measured_is_lower_bound else None
    if measured is not None and abs(measured - predicted_rps) > CAPACITY_TOLERANCE * predicted_rps:
        problems.append(f"capacity per instance measured {measured:.1f} req/s, predicted {predicted_rps:.1f} "
                        f"(more than {CAPACITY_TOLERANCE:.0%} apart)")
    # The count is judged on the capacity it was sized from; the measurement checks that capacity (above), to
    # its own resolution (a capacity run's step), so it does not re-decide the count.
    carried = applied * predicted_rps * utilisation
    if carried < peak_rps * (1 - 1e-9):
        needed = math.ceil(peak_rps / (predicted_rps * utilisation) - 1e-9)
        seen = ("nothing" if measured_rps is None
                else f"at least {measured_rps:.1f}" if measured_is_lower_bound else f"{measured_rps:.1f}")
        problems.append(f"{applied} instance(s) x {predicted_rps:.1f} req/s per instance (predicted; measured {seen}) "
                        f"at {utilisation:.0%} target utilisation carry {carried:.1f} req/s < the plan's peak of "
                        f"{peak_rps:.1f} req/s: {needed} are needed")
    if slo_ok is False:
        problems.append(f"the SLO is not met at {applied} instance(s)")
    if pool_per_instance and db_max_connections:
        budget = db_max_connections - reserve(db_max_connections)
        if applied * pool_per_instance > budget:
            problems.append(f"{applied} x {pool_per_instance} connections exceed the database's budget of {budget} "
                            f"({db_max_connections} - {reserve(db_max_connections)} reserved)")
    return problems


def _service_measure(record: RunRecord, doc: dict[str, Any], service: str) -> dict[str, Any]:
    mods = [m for m in record.modules if m.service == service]
    eps = [e for e in doc.get("endpoints", []) if e.get("service") == service]
    reqs = sum(int(e.get("requests") or 0) for e in eps)
    p95s = [m.p95_ms for m in mods if m.p95_ms is not None]
    return {
        "p95_ms": max(p95s) if p95s else None,
        "error_rate": (sum(float(e.get("error_rate") or 0) * int(e.get("requests") or 0) for e in eps) / reqs)
        if reqs else None,
        "throughput_rps": round(sum(float(e.get("rps") or 0) for e in eps), 2) if eps else None,
    }


def _applied(rec: dict[str, Any], settings: Any) -> bool | None:
    """Whether the after run's plan carries the recommended setting (None: cannot tell here)."""
    if settings is None:
        return None
    if rec["kind"] == "db_pool":
        return bool(settings.db_pool_size == rec.get("recommended"))
    if rec["kind"] == "cache":
        return settings.cache_ttl_s is not None and float(settings.cache_ttl_s) == float(rec.get("ttl_s") or -1)
    if rec["kind"] == "autoscaling":
        n = settings.instances
        if n is None or rec.get("instances") is None:  # the autoscaler owns the count (a Pulumi stack)
            return None
        before = (rec.get("evidence") or {}).get("current_instances")
        return bool(n == rec["instances"] or n != before)  # a changed count is judged, right or not
    return None


def verify_runs(before_dir: Path, after_dir: Path, connect: StoreConnector | None = None,
                capacity: Path | None = None) -> bool:
    """`loadbearing verify`: predicted vs measured per applied recommendation, regressions, convergence.

    Writes AFTER_DIR/verification.json, prints a table on stderr and the file's path on stdout.
    `connect` reaches each run's store (default: the URL its run.json records). `capacity`: a
    capacity run of the after state, for the capacity per instance the applied count delivers.
    """
    before_doc = load_recommendations(before_dir, connect)
    require_valid(before_doc, before_dir)
    before_run, after_run = RunDir.open(before_dir), RunDir.open(after_dir)
    before_rec = before_run.read_record()
    after_rec = after_run.read_record()
    after_doc = recommend_run(after_dir, connect=connect, capacity=capacity)
    ramps = RunDir.open(capacity).read_record().capacity if capacity is not None else None
    after_plan, _ = after_run.read_plan(after_rec)
    slo = after_rec.slo
    checks: list[dict[str, Any]] = []
    if not after_doc.get("valid"):
        checks.append({"check": "after run valid", "ok": False,
                       "detail": "; ".join(after_doc.get("invalid_reasons", []))})
    for rec in before_doc.get("recommendations", []):
        svc = rec.get("service")
        settings = after_plan.services.get(svc) if after_plan and svc else None
        applied = _applied(rec, settings)
        label = f"{rec['kind']} {svc}" + (f"/{rec['endpoint']}" if rec.get("endpoint") else "")
        if not applied:
            checks.append({"check": label, "ok": None, "applied": applied,
                           "detail": "not applied in the after run (nothing to verify)" if applied is False
                           else "cannot be applied or observed by this target; verify it where it is deployed"})
            continue
        predicted = rec.get("predicted") or {}
        measured = _service_measure(after_rec, after_doc, svc)
        problems = prediction_problems(predicted, measured, slo)
        if rec["kind"] == "autoscaling":
            checks.append(_instance_check(label, rec, settings, measured, after_doc, ramps, slo))
            continue
        if rec["kind"] == "cache":
            hit = _measured_hit_ratio(after_doc, svc)
            n_caches = caches(settings.instances, settings.cache_scope) if settings is not None else 1
            exp = expected_hit_ratio(before_doc, svc, n_caches)
            measured["hit_ratio"] = hit
            predicted = {**predicted, "service_hit_ratio": exp}
            if (problem := hit_ratio_problem(svc, hit, exp)) is not None:
                problems.append(problem)
        checks.append({"check": label, "ok": not problems, "applied": True, "predicted": predicted,
                       "measured": measured, "detail": "; ".join(problems) or "delivered"})
    rule = after_plan.compare if after_plan else Compare()
    before_mods = {m.name: m for m in before_rec.modules}
    for m in after_rec.modules:
        b = before_mods.get(m.name)
        if not b or b.p95_ms is None or m.p95_ms is None:
            continue
        bound = regression_bound(b.p95_ms, rule)
        checks.append({"check": f"no regression {m.name}", "ok": m.p95_ms <= bound,
                       "measured": {"before_p95_ms": b.p95_ms, "after_p95_ms": m.p95_ms},
                       "detail": f"p95 {b.p95_ms:.0f} -> {m.p95_ms:.0f} ms (allowed <= {bound:.0f})"})
    changed = {(r["kind"], r.get("service")) for r in before_doc.get("recommendations", [])}
    material, new_ideas = _material_changes(after_doc, after_plan, changed)
    checks.append({"check": "converged", "ok": not material,
                   "detail": "recommending again changes no applied setting materially" if not material
                   else "; ".join(material)})
    if new_ideas:
        checks.append({"check": "new recommendations", "ok": None,
                       "detail": "with the fix in place the after run suggests more: " + "; ".join(new_ideas)
                       + " (apply and run again)"})
    ok_all = all(c["ok"] is not False for c in checks)
    result = {"before": before_rec.run_id, "after": after_rec.run_id, "delivered": ok_all,
              "tolerances": tolerances(rule), "checks": checks}
    out = after_run.write_verification(result)
    table = Table(title=f"verify {escape(before_rec.run_id)} -> {escape(after_rec.run_id)}: "
                        f"{'delivered' if ok_all else 'NOT delivered'}", title_justify="left")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in checks:
        mark = "[green]ok[/]" if c["ok"] else ("[red]FAILED[/]" if c["ok"] is False else "[dim]n/a[/]")
        table.add_row(escape(c["check"]), mark, escape(c["detail"]))
    console.print(table)
    console.print(f"[dim]tolerances: {escape(tolerances(rule))}[/]")
    sys.stdout.write(str(out) + "\n")
    return ok_all


def _instance_check(label: str, rec: dict[str, Any], settings: Any, measured: dict[str, Any],
                    after_doc: dict[str, Any], ramps: CapacityRecord | None, slo: Slo) -> dict[str, Any]:
    """The check of an applied instance count (see the module doc)."""
    svc = rec["service"]
    ev = rec.get("evidence") or {}
    applied = int(settings.instances)
    predicted_rps = float(ev.get("capacity_rps_per_instance") or 0.0)
    ramp = ramps.service(svc) if ramps is not None else None
    if ramp is not None and ramp.capacity_per_instance_rps is not None:
        measured_rps: float | None = ramp.capacity_per_instance_rps
        lower, source = not ramp.knee_reached, f"capacity run: {ramp.note}"
    else:
        again = next((r for r in after_doc.get("recommendations", [])
                      if r["kind"] == "autoscaling" and r.get("service") == svc), None)
        aev = (again or {}).get("evidence") or {}
        kind = aev.get("capacity_kind")
        # measured: a knee or a plateau (a pool model is a prediction, not a measurement of the after state)
        measured_rps = aev.get("capacity_rps_per_instance") if kind in MEASURED_KINDS else None
        lower = kind == "lower_bound"
        source = f"the after run: {aev.get('capacity_source')}" if measured_rps is not None \
            else "the after run measured none (a model, or no autoscaling recommendation)"
    slo_ok = None
    if measured.get("p95_ms") is not None:
        slo_ok = measured["p95_ms"] <= slo.p95_ms and (measured.get("error_rate") or 0.0) <= slo.max_error_rate
    peak = float((rec.get("predicted") or {}).get("throughput_rps") or ev.get("peak_offered_rps") or 0.0)
    utilisation = float(ev.get("utilisation") or 1.0)
    problems = instance_problems(
        applied=applied, peak_rps=peak, predicted_rps=predicted_rps, measured_rps=measured_rps,
        measured_is_lower_bound=lower, utilisation=utilisation, slo_ok=slo_ok,
        pool_per_instance=settings.db_pool_size, db_max_connections=settings.db_max_connections)
    return {"check": label, "ok": not problems, "applied": True,
            "predicted": {"instances": rec.get("instances"), "capacity_rps_per_instance": predicted_rps,
                          "utilisation": utilisation, "peak_rps": peak},
            "measured": {**measured, "instances": applied, "capacity_rps_per_instance": measured_rps,
                         "capacity_is_lower_bound": lower, "capacity_source": source},
            "detail": "; ".join(problems) or (
                f"{applied} instance(s) carry the peak of {peak:.1f} req/s: measured "
                + (f"at least {measured_rps:.1f}" if lower and measured_rps is not None
                   else f"{measured_rps:.1f}" if measured_rps is not None else "no")
                + f" req/s per instance, predicted {predicted_rps:.1f}")}


def _measured_hit_ratio(doc: dict[str, Any], service: str) -> float | None:
    """The service's own cache counters over the run (`app.caches`: Micrometer's `cache_gets_total`
    scraped from its metrics_url)."""
    for f in (doc.get("app") or {}).get("caches", []):
        if f.get("service") == service and f.get("hit_ratio") is not None:
            return float(f["hit_ratio"])
    return None


def expected_hit_ratio(doc: dict[str, Any], service: str, n_caches: int) -> float | None:
    """What the service's cache should hit: its cache recommendations' expected hit ratios,
    weighted by each endpoint's reads (one cache per service counts all its cached reads), each
    moved to the `n_caches` caches the after run ran with (one per instance unless shared) when
    the prediction assumed another count (the counters scraped from every instance add up to
    the per-instance ratio)."""
    recs = [rec for rec in doc.get("recommendations", []) if rec["kind"] == "cache" and rec.get("service") == service]
    if not recs:
        return None
    total = weights = 0.0
    for rec in recs:
        ev = rec.get("evidence") or {}
        w = float(ev.get("requests") or 1)
        h = rescale_hit_ratio(float(rec["expected_hit_ratio"]), float(ev.get("rate_per_key") or 0.0),
                              float(rec.get("ttl_s") or 0.0), float(ev.get("write_rate_per_key") or 0.0),
                              int(ev.get("caches") or 1), n_caches)
        total, weights = total + w * h, weights + w
    return round(total / weights, 4)


def _material_changes(doc: dict[str, Any], plan: Any,
                      changed: set[tuple[str, Any]]) -> tuple[list[str], list[str]]:
    """(changes to settings the loop applied, proposals for settings it did not touch).

    Only the first list breaks convergence: a loop that keeps moving an applied
    setting has not converged; a new kind of change (say a cache that only pays off
    once the pool is fixed, or a smaller pool for a service the before run gave no
    pool advice) is the next step, reported but not a failure. `changed`: the
    (kind, service) pairs the before run recommended.
    """
    moved: list[str] = []
    new: list[str] = []
    for rec in doc.get("recommendations", []):
        svc = rec.get("service")
        settings = plan.services.get(svc) if plan is not None and svc else None
        if rec["kind"] == "db_pool":
            cur = settings.db_pool_size if settings else rec.get("current")
            rec_n = rec.get("recommended")
            if cur is not None and rec_n is not None and abs(rec_n - cur) > max(1, 0.2 * cur):
                (moved if ("db_pool", svc) in changed else new).append(f"db_pool {svc}: {cur} -> {rec_n}")
        elif rec["kind"] == "autoscaling":
            cur_n = settings.instances if settings else None
            if cur_n is not None and rec.get("instances") is not None and rec["instances"] != cur_n:
                (moved if ("autoscaling", svc) in changed else new).append(
                    f"instances {svc}: {cur_n} -> {rec['instances']}")
        elif rec["kind"] == "cache":
            cur_ttl = settings.cache_ttl_s if settings else None
            if not cur_ttl:
                new.append(f"cache {svc}/{rec.get('endpoint')}: off -> {rec.get('ttl_s')} s")
            elif abs(float(rec.get("ttl_s") or 0) - float(cur_ttl)) > 0.5 * float(cur_ttl):
                moved.append(f"cache {svc}/{rec.get('endpoint')}: {cur_ttl} -> {rec.get('ttl_s')} s")
    return moved, new
