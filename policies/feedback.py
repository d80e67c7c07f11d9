"""Close the loop: write a run's recommendations into infrastructure config.

- Pulumi: `Pulumi.<stack>.yaml`, key `loadbearing:targets` (ARCHITECTURE.md), edited
  with ruamel.yaml's round-trip mode so every other key, every comment and every
  `secure:` value stays byte for byte.
- Env file: `DB_POOL_SIZE=...`, `CACHE_TTL_S=...` for targets configured by their
  environment, such as the demo services; other lines and comments are kept.

Both print a unified diff on stderr and are idempotent (a second apply changes
nothing). An invalid run (`"valid": false`) is never applied.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from core.console import console
from core.errors import BadInput

TARGETS_KEY = "loadbearing:targets"
ENV_KEYS = {
    "db_pool_size": "DB_POOL_SIZE",
    "cache_ttl_s": "CACHE_TTL_S",
    "min_instances": "MIN_INSTANCES",
    "max_instances": "MAX_INSTANCES",
    "metric": "AUTOSCALING_METRIC",
    "target_value": "AUTOSCALING_TARGET_VALUE",
    "scale_out_cooldown_s": "SCALE_OUT_COOLDOWN_S",
    "scale_in_cooldown_s": "SCALE_IN_COOLDOWN_S",
}
AUTOSCALING_KEYS = ("min_instances", "max_instances", "metric", "target_value",
                    "scale_out_cooldown_s", "scale_in_cooldown_s")


def load_recommendations(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "recommendations.json"
    if not path.exists():
        from policies.recommend import recommend_run

        return recommend_run(run_dir)
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except ValueError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc}); run 'loadbearing recommend {run_dir}' again") from None
    return doc


def settings_by_service(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings each service should get: {service: {db_pool_size, cache_ttl_s, autoscaling}}."""
    out: dict[str, dict[str, Any]] = {}
    for rec in doc.get("recommendations", []):
        svc = rec.get("service")
        if not svc:
            continue
        target = out.setdefault(svc, {})
        kind = rec.get("kind")
        if kind == "db_pool" and rec.get("recommended") is not None:
            target["db_pool_size"] = int(rec["recommended"])
        elif kind == "cache" and rec.get("ttl_s") is not None:
            # One TTL per service: the shortest recommended keeps every endpoint's staleness bound.
            ttl = rec["ttl_s"]
            ttl = int(ttl) if float(ttl).is_integer() else float(ttl)
            target["cache_ttl_s"] = min(target.get("cache_ttl_s", ttl), ttl)
        elif kind == "autoscaling":
            target["autoscaling"] = {k: rec[k] for k in AUTOSCALING_KEYS if rec.get(k) is not None}
    return {k: v for k, v in out.items() if v}


def _check_valid(doc: dict[str, Any], run_dir: Path) -> None:
    if not doc.get("valid", False):
        reasons = "; ".join(doc.get("invalid_reasons", [])) or "unknown"
        raise BadInput(f"{run_dir}: the run is not valid ({reasons}); its numbers cannot be applied. "
                       "Fix the cause and run again.")


def _diff(before: str, after: str, name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"{name} (before)", tofile=f"{name} (after)"))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".loadbearing.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def apply_stack(settings: dict[str, dict[str, Any]], stack_file: Path, ecs_services: dict[str, str],
                dry_run: bool = False) -> str:
    """Merge settings into `loadbearing:targets` of a Pulumi stack file. Returns the diff."""
    yaml = YAML()  # round-trip: comments, order, quoting and tags (secure:) kept
    yaml.preserve_quotes = True
    yaml.width = 4096
    before = stack_file.read_text() if stack_file.exists() else ""
    try:
        data = yaml.load(before) if before.strip() else None
    except Exception as exc:  # ruamel raises many YAMLError subclasses
        raise BadInput(f"{stack_file}: not valid YAML ({exc}); fix it before applying") from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise BadInput(f"{stack_file}: expected a mapping with a 'config:' key")
    config = data.setdefault("config", CommentedMap())
    if not isinstance(config, dict):
        raise BadInput(f"{stack_file}: 'config' must be a mapping")
    targets = config.setdefault(TARGETS_KEY, CommentedMap())
    if not isinstance(targets, dict):
        raise BadInput(f"{stack_file}: config.{TARGETS_KEY} must be a mapping of service name to settings")
    for service in sorted(settings):
        new = settings[service]
        entry = targets.setdefault(service, CommentedMap())
        if "ecs_service" not in entry:
            entry["ecs_service"] = ecs_services.get(service, service)
        for key in ("db_pool_size", "cache_ttl_s"):
            if key in new and entry.get(key) != new[key]:
                entry[key] = new[key]
        if "autoscaling" in new:
            auto = entry.setdefault("autoscaling", CommentedMap())
            for key, value in new["autoscaling"].items():
                if auto.get(key) != value:
                    auto[key] = value
    buf = io.StringIO()
    yaml.dump(data, buf)
    after = buf.getvalue()
    diff = _diff(before, after, stack_file.name)
    if diff and not dry_run:
        _write_atomic(stack_file, after)
    return diff


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def env_values(service_settings: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    flat = {k: v for k, v in service_settings.items() if k != "autoscaling"}
    flat.update(service_settings.get("autoscaling", {}))
    for key, value in flat.items():
        if key in ENV_KEYS:
            values[ENV_KEYS[key]] = str(value)
    return values


def apply_env(values: dict[str, str], env_file: Path, dry_run: bool = False) -> str:
    """Set KEY=value lines in an env file, keeping every other line. Returns the diff."""
    before = env_file.read_text() if env_file.exists() else ""
    lines = before.splitlines()
    seen: set[str] = set()
    for i, text in enumerate(lines):
        m = _ENV_LINE.match(text)
        if m and m.group(1) in values:
            lines[i] = f"{m.group(1)}={values[m.group(1)]}"
            seen.add(m.group(1))
    for key in sorted(values):
        if key not in seen:
            lines.append(f"{key}={values[key]}")
    after = "\n".join(lines) + ("\n" if lines else "")
    diff = _diff(before, after, env_file.name)
    if diff and not dry_run:
        env_file.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(env_file, after)
    return diff


def apply_run(run_dir: Path, *, stack: str | None = None, env_file: Path | None = None,
              service: str | None = None, dry_run: bool = False, project_dir: Path = Path(".")) -> Path:
    """`loadbearing apply`: returns the file written (or that would be)."""
    if (stack is None) == (env_file is None):
        raise BadInput("apply needs exactly one of --stack NAME or --env-file FILE")
    doc = load_recommendations(run_dir)
    _check_valid(doc, run_dir)
    settings = settings_by_service(doc)
    if service is not None:
        if service not in settings:
            known = ", ".join(sorted(settings)) or "none"
            raise BadInput(f"--service {service!r}: no recommendation for it in {run_dir} (services with "
                           f"recommendations: {known})")
        settings = {service: settings[service]}
    if not settings:
        console.print("no setting to change: the run's recommendations change nothing")
    if stack is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-/]+", stack):
            raise BadInput(f"--stack {stack!r}: not a stack name")
        path = project_dir / f"Pulumi.{stack.split('/')[-1]}.yaml"
        diff = apply_stack(settings, path, _ecs_services(run_dir), dry_run=dry_run)
    else:
        assert env_file is not None
        if len(settings) > 1:
            raise BadInput(f"several services have recommendations ({', '.join(sorted(settings))}); an env "
                           "file configures one: pass --service NAME")
        path = env_file
        values = env_values(next(iter(settings.values()))) if settings else {}
        diff = apply_env(values, env_file, dry_run=dry_run)
    if diff:
        console.print(diff.rstrip("\n"), markup=False, highlight=False)
        console.print(("would change " if dry_run else "changed ") + str(path))
    else:
        console.print(f"{path}: already up to date")
    return path


def _ecs_services(run_dir: Path) -> dict[str, str]:
    try:
        from core.plan import load_plan
        from runners.records import load_record

        plan = load_plan(load_record(run_dir)["plan"])
    except Exception:
        return {}
    return {name: svc.ecs_service for name, svc in plan.services.items() if svc.ecs_service}


# -- verify ------------------------------------------------------------------------------

P95_TOLERANCE = 0.5          # measured p95 may exceed the prediction by 50% ...
P95_SLACK_MS = 50.0          # ... or by 50 ms, whichever is larger
THROUGHPUT_TOLERANCE = 0.05  # measured throughput at least 95% of the predicted (offered) rate
HIT_RATIO_TOLERANCE = 0.10   # measured cache hit ratio within 10 points of the expected
REGRESSION_RATIO = 0.10      # no module's p95 worse than before by more than 10% ...
REGRESSION_SLACK_MS = 20.0   # ... or 20 ms
TOLERANCES = (f"p95 <= max(predicted x {1 + P95_TOLERANCE:g}, predicted + {P95_SLACK_MS:g} ms) and <= SLO when "
              f"the prediction meets it; errors <= SLO's max_error_rate; throughput >= "
              f"{1 - THROUGHPUT_TOLERANCE:.0%} of predicted; cache hit ratio within "
              f"{HIT_RATIO_TOLERANCE:.0%} points; no module's p95 worse than before by more than "
              f"{REGRESSION_RATIO:.0%} or {REGRESSION_SLACK_MS:g} ms")


def _service_measure(record: dict[str, Any], doc: dict[str, Any], service: str) -> dict[str, Any]:
    mods = [m for m in record.get("modules", []) if m.get("service") == service]
    eps = [e for e in doc.get("endpoints", []) if e.get("service") == service]
    reqs = sum(int(e.get("requests") or 0) for e in eps)
    p95s = [m["p95_ms"] for m in mods if m.get("p95_ms") is not None]
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
        return None if n is None or n == 1 else bool(rec["min_instances"] <= n <= rec["max_instances"])
    return None


def verify_runs(before_dir: Path, after_dir: Path) -> bool:
    """`loadbearing verify`: predicted vs measured per applied recommendation, regressions, convergence.

    Writes AFTER_DIR/verification.json, prints a table on stderr and the file's path on stdout.
    """
    from rich.table import Table

    from core.plan import load_plan
    from policies.recommend import recommend_run
    from runners.records import load_record

    before_doc = load_recommendations(before_dir)
    _check_valid(before_doc, before_dir)
    before_rec = load_record(before_dir)
    after_rec = load_record(after_dir)
    after_doc = recommend_run(after_dir)
    try:
        after_plan = load_plan(after_rec["plan"])
    except BadInput:
        after_plan = None
    slo = after_rec.get("slo") or before_rec.get("slo") or {}
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
        problems = []
        p_p95 = predicted.get("p95_ms")
        if p_p95 is not None and measured["p95_ms"] is not None:
            bound = max(p_p95 * (1 + P95_TOLERANCE), p_p95 + P95_SLACK_MS)
            if predicted.get("meets_slo", True) and slo.get("p95_ms"):
                bound = min(bound, float(slo["p95_ms"])) if p_p95 <= float(slo["p95_ms"]) else bound
            if measured["p95_ms"] > bound:
                problems.append(f"p95 {measured['p95_ms']:.0f} ms > {bound:.0f} ms allowed")
        if measured["error_rate"] is not None and slo.get("max_error_rate") is not None \
                and measured["error_rate"] > float(slo["max_error_rate"]):
            problems.append(f"error rate {measured['error_rate']:.2%} > {float(slo['max_error_rate']):.2%}")
        p_rps = predicted.get("throughput_rps")
        if p_rps and measured["throughput_rps"] is not None \
                and measured["throughput_rps"] < p_rps * (1 - THROUGHPUT_TOLERANCE):
            problems.append(f"throughput {measured['throughput_rps']:.1f}/s < {p_rps * (1 - THROUGHPUT_TOLERANCE):.1f}/s")
        if rec["kind"] == "cache":
            hit = _measured_hit_ratio(after_doc, svc)
            exp = _expected_hit_ratio(before_doc, svc)
            measured["hit_ratio"] = hit
            predicted = {**predicted, "service_hit_ratio": exp}
            if hit is None:
                problems.append(f"no cache counters from {svc} (app_cache) in the after run: the hit ratio "
                                "cannot be verified")
            elif exp is not None and abs(hit - exp) > HIT_RATIO_TOLERANCE:
                problems.append(f"{svc} cache hit ratio {hit:.2f} vs expected {exp:.2f}")
        checks.append({"check": label, "ok": not problems, "applied": True, "predicted": predicted,
                       "measured": measured, "detail": "; ".join(problems) or "delivered"})
    before_mods = {m["name"]: m for m in before_rec.get("modules", [])}
    for m in after_rec.get("modules", []):
        b = before_mods.get(m["name"])
        if not b or b.get("p95_ms") is None or m.get("p95_ms") is None:
            continue
        bound = max(b["p95_ms"] * (1 + REGRESSION_RATIO), b["p95_ms"] + REGRESSION_SLACK_MS)
        ok = m["p95_ms"] <= bound
        checks.append({"check": f"no regression {m['name']}", "ok": ok,
                       "measured": {"before_p95_ms": b["p95_ms"], "after_p95_ms": m["p95_ms"]},
                       "detail": f"p95 {b['p95_ms']:.0f} -> {m['p95_ms']:.0f} ms (allowed <= {bound:.0f})"})
    material, new_ideas = _material_changes(after_doc, after_plan)
    checks.append({"check": "converged", "ok": not material,
                   "detail": "recommending again changes no applied setting materially" if not material
                   else "; ".join(material)})
    if new_ideas:
        checks.append({"check": "new recommendations", "ok": None,
                       "detail": "with the fix in place the after run suggests more: " + "; ".join(new_ideas)
                       + " (apply and run again)"})
    ok_all = all(c["ok"] is not False for c in checks)
    result = {"before": before_rec.get("run_id"), "after": after_rec.get("run_id"), "delivered": ok_all,
              "tolerances": TOLERANCES, "checks": checks}
    out = after_dir / "verification.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    table = Table(title=f"verify {before_rec.get('run_id')} -> {after_rec.get('run_id')}: "
                        f"{'delivered' if ok_all else 'NOT delivered'}", title_justify="left")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in checks:
        mark = "[green]ok[/]" if c["ok"] else ("[red]FAILED[/]" if c["ok"] is False else "[dim]n/a[/]")
        table.add_row(c["check"], mark, c["detail"])
    console.print(table)
    console.print(f"[dim]tolerances: {TOLERANCES}[/]")
    import sys

    sys.stdout.write(str(out) + "\n")
    return ok_all


def _measured_hit_ratio(doc: dict[str, Any], service: str) -> float | None:
    """The service's own cache counters over the run (`app.caches`, from `app_cache`)."""
    for f in (doc.get("app") or {}).get("caches", []):
        if f.get("service") == service and f.get("hit_ratio") is not None:
            return float(f["hit_ratio"])
    return None


def _expected_hit_ratio(doc: dict[str, Any], service: str) -> float | None:
    """What the service's cache should hit: its cache recommendations' expected hit ratios,
    weighted by each endpoint's reads (one cache per service counts all its cached reads)."""
    recs = [rec for rec in doc.get("recommendations", []) if rec["kind"] == "cache" and rec.get("service") == service]
    weights = [float((rec.get("evidence") or {}).get("requests") or 1) for rec in recs]
    if not recs:
        return None
    return round(sum(w * float(rec["expected_hit_ratio"]) for w, rec in zip(weights, recs, strict=True)) / sum(weights), 4)


def _material_changes(doc: dict[str, Any], plan: Any) -> tuple[list[str], list[str]]:
    """(changes to settings the after run already had, proposals for settings it did not have).

    Only the first list breaks convergence: a loop that keeps moving an applied
    setting has not converged; a new kind of change (say a cache that only pays off
    once the pool is fixed) is the next step, reported but not a failure.
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
                moved.append(f"db_pool {svc}: {cur} -> {rec_n}")
        elif rec["kind"] == "cache":
            cur_ttl = settings.cache_ttl_s if settings else None
            if not cur_ttl:
                new.append(f"cache {svc}/{rec.get('endpoint')}: off -> {rec.get('ttl_s')} s")
            elif abs(float(rec.get("ttl_s") or 0) - float(cur_ttl)) > 0.5 * float(cur_ttl):
                moved.append(f"cache {svc}/{rec.get('endpoint')}: {cur_ttl} -> {rec.get('ttl_s')} s")
    return moved, new
