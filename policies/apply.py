"""`loadbearing apply`: write a run's recommendations into infrastructure config.

- Pulumi: `Pulumi.<stack>.yaml`, key `loadbearing:targets` (core/targets.py), edited
  with ruamel.yaml's round-trip mode so every other key, every comment and every
  `secure:` value stays byte for byte.
- Env file: `DB_POOL_SIZE=...`, `CACHE_TTL_S=...`, `INSTANCES=...` (the count the plan's
  peak needs at the target utilisation) and the autoscaling settings, for targets
  configured by their environment, such as the demo services; `export`, quotes, comments
  and every other line are kept (policies.config_edit). A Pulumi stack gets the
  autoscaling settings only: there the autoscaler owns the count.

Both files keep their mode and owner (an env file holding secrets stays 0600).

Both print a unified diff on stderr and are idempotent (a second apply changes
nothing). An invalid run (`"valid": false`) is never applied.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from core.console import console
from core.errors import BadInput
from core.rundir import RunDir, StoreConnector
from core.targets import AUTOSCALING_KEYS, TARGETS_KEY, TargetsError, parse_targets
from policies.config_edit import replace_file, set_env_values
from policies.recommend import load_recommendations, require_valid

ENV_KEYS = {
    "db_pool_size": "DB_POOL_SIZE",
    "cache_ttl_s": "CACHE_TTL_S",
    "instances": "INSTANCES",
    "min_instances": "MIN_INSTANCES",
    "max_instances": "MAX_INSTANCES",
    "metric": "AUTOSCALING_METRIC",
    "target_value": "AUTOSCALING_TARGET_VALUE",
    "scale_out_cooldown_s": "SCALE_OUT_COOLDOWN_S",
    "scale_in_cooldown_s": "SCALE_IN_COOLDOWN_S",
}


def settings_by_service(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings each service should get: {service: {db_pool_size, cache_ttl_s, instances, autoscaling}}."""
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
            if rec.get("instances") is not None:
                target["instances"] = int(rec["instances"])
    return {k: v for k, v in out.items() if v}


def _diff(before: str, after: str, name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"{name} (before)", tofile=f"{name} (after)"))


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
    try:  # the block `pulumi up` reads: never write one it would refuse
        parse_targets(targets)
    except TargetsError as exc:
        raise BadInput(f"{stack_file}: after applying, {exc}; fix it in {stack_file.name} and apply again "
                       "(nothing was written)") from None
    buf = io.StringIO()
    yaml.dump(data, buf)
    after = buf.getvalue()
    diff = _diff(before, after, stack_file.name)
    if diff and not dry_run:
        replace_file(stack_file, after)
    return diff


def env_values(service_settings: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    flat = {k: v for k, v in service_settings.items() if k != "autoscaling"}
    flat.update(service_settings.get("autoscaling", {}))
    for key, value in flat.items():
        if key in ENV_KEYS:
            values[ENV_KEYS[key]] = str(value)
    return values


def apply_env(values: dict[str, str], env_file: Path, dry_run: bool = False) -> str:
    """Set KEY=value lines in an env file, keeping every other byte (see config_edit). Returns the diff."""
    with open(env_file, newline="") if env_file.exists() else contextlib.nullcontext(io.StringIO()) as f:
        before = f.read()
    after = set_env_values(before, values)
    diff = _diff(before, after, env_file.name)
    if diff and not dry_run:
        replace_file(env_file, after)
    return diff


def apply_run(run_dir: Path, *, stack: str | None = None, env_file: Path | None = None,
              service: str | None = None, dry_run: bool = False, project_dir: Path = Path("."),
              connect: StoreConnector | None = None) -> Path:
    """`loadbearing apply`: returns the file written (or that would be). `connect` reaches the run's store
    when its recommendations must be computed first."""
    if (stack is None) == (env_file is None):
        raise BadInput("apply needs exactly one of --stack NAME or --env-file FILE")
    doc = load_recommendations(run_dir, connect)
    require_valid(doc, run_dir)
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
        console.print(("would change " if dry_run else "changed ") + str(path), markup=False)
    else:
        console.print(f"{path}: already up to date", markup=False)
    return path


def _ecs_services(run_dir: Path) -> dict[str, str]:
    """Each service's ECS service name, from the run's plan (none when the plan is unknown)."""
    rd = RunDir(run_dir)
    try:
        record = rd.read_record()
    except BadInput:  # recommendations without their run: ECS service names default to the service's
        return {}
    plan, _ = rd.read_plan(record)
    if plan is None:
        return {}
    return {name: svc.ecs_service for name, svc in plan.services.items() if svc.ecs_service}
