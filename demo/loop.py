"""`loadbearing demo`: the whole loop on the demo target, end to end.

local stack up -> demo services -> sequential, hybrid, parallel -> a capacity run
(each ramped service's knee) -> recommend (autoscaling from the knees) -> apply to the
services' env files (pool, cache, INSTANCES) -> restart the services -> parallel again
-> a capacity run of the services whose instance count changed (the capacity per
instance the new count delivers) -> verify -> report. Prints a before/after table on
stderr (per module p95, error rate, requests/s, the service's settings; every setting
changed, old -> new) and where the reports are. Exit 0 only when verify passes. Every
run is a run directory under `out_dir`; the services are always stopped, whatever
happens.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from core.console import console
from core.errors import BadInput, ExitCode, LoadbearingError
from core.influx import InfluxClient
from core.plan import Plan, load_plan
from core.rundir import RunDir, new_run_id
from core.state import free_port
from demo.launcher import ServiceHandle, start_service
from demo.plan import SCALES, write_plan
from policies import recommend_run, render_summary, write_report
from policies.apply import apply_run
from policies.verify import verify_runs
from runners import stack
from runners.capacity import CapacityOptions
from runners.controller import RunOptions, prepare
from runners.controller import run as run_strategy

SERVICES = ("core-api", "profile-api", "shipping-api")
ENV_KNOBS = ("DB_POOL_SIZE", "CACHE_TTL_S", "INSTANCES")
PLAN_KEYS = {"DB_POOL_SIZE": "db_pool_size", "CACHE_TTL_S": "cache_ttl_s", "INSTANCES": "instances"}
SETTING_NAMES = {"DB_POOL_SIZE": "pool", "CACHE_TTL_S": "cache s", "INSTANCES": "instances"}


@dataclass
class Demo:
    out: Path
    influx: InfluxClient
    local_stack: str | None  # the local stack's provider when it is the store (run records say so)
    ports: dict[str, int]
    env_files: dict[str, Path]
    services: dict[str, ServiceHandle]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def service_env(self, name: str) -> dict[str, str]:
        env = _read_env(self.env_files[name])
        # one database per service for the whole demo: seeded once, kept across restarts
        env["DEMO_SQLITE_PATH"] = str(self.out / "services" / f"{name}.sqlite3")
        return env

    def restart(self) -> None:
        """(Re)start every service with its env file (all at once); a run reads them by scraping /metrics."""
        self.stop()
        with ThreadPoolExecutor(len(self.ports)) as pool:
            started = {name: pool.submit(start_service, name, self.ports[name], self.service_env(name),
                                         log_path=self.out / "services" / f"{name}.log") for name in self.ports}
            failures = []
            for name, future in started.items():
                try:
                    self.services[name] = future.result()
                except LoadbearingError as exc:
                    failures.append(exc)
        if failures:
            self.stop()
            raise failures[0]

    def stop(self) -> None:
        with ThreadPoolExecutor(max(1, len(self.services))) as pool:
            list(pool.map(lambda h: h.stop(), self.services.values()))
        self.services.clear()


def _read_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    if path.exists():
        for raw in path.read_text().splitlines():
            text = raw.strip()
            if text and not text.startswith("#") and "=" in text:
                key, value = text.removeprefix("export ").split("=", 1)
                env[key.strip()] = value.strip()
    return env


def _plan_with_env(base: Plan, target: Path, env_files: dict[str, Path], capacity_start: float | None = None) -> Path:
    """The plan file for a run: the demo plan with each service's current settings from its env file
    (and, if given, the capacity ramp's start: a verification ramp starts at the plan's peak)."""
    text = base.path.read_text()
    if capacity_start is not None:
        text = re.sub(r"(?m)^(\[capacity\][^\[]*?^start = )[^\n]*$", lambda m: m.group(1) + f"{capacity_start:g}",
                      text, count=1, flags=re.S)
    for name, env_path in env_files.items():
        env = _read_env(env_path)
        for knob, key in PLAN_KEYS.items():
            if knob not in env:
                continue
            section = re.compile(rf"(\[services\.{re.escape(name)}\][^\[]*?^{key} = )([^\n]*)$", re.M | re.S)
            if section.search(text):
                value = env[knob]
                text = section.sub(lambda m: m.group(1) + value, text, count=1)  # noqa: B023 - used at once
            else:
                text = text.replace(f"[services.{name}]\n", f"[services.{name}]\n{key} = {env[knob]}\n", 1)
    for module_script in re.findall(r'script = "(modules/[^"]+)"', text):
        text = text.replace(f'"{module_script}"', f'"{base.path.parent / module_script}"')
    target.write_text(text)
    return target


def _run(demo: Demo, plan_path: Path, strategy: str, label: str, ramp: CapacityOptions | None = None,
         restart: bool = True) -> Path:
    """One run; the services are restarted first unless `restart` is False
    (a capacity run right after a run of the same settings: its load has drained)."""
    run_id = new_run_id(strategy, time.time())
    if restart or not demo.services:
        demo.restart()
    console.rule(f"[bold]{label}[/]: {strategy}")
    prepared = prepare(RunOptions(plan_path=plan_path, strategy=strategy, out_dir=demo.out, run_id=run_id,
                                  capacity=ramp))
    run_dir, code = run_strategy(prepared, demo.influx, local_stack=demo.local_stack)
    if code not in (ExitCode.PASSED, ExitCode.SLO_FAILED):
        raise LoadbearingError(f"the {strategy} run ended with exit {int(code)}; see {run_dir.record_path}")
    return run_dir.path


def _module_rows(run_dir: Path) -> dict[str, dict[str, Any]]:
    run = RunDir.open(run_dir)
    plan, _ = run.read_plan()
    rows = {}
    for m in run.read_record().modules:
        secs = m.seconds
        svc = plan.services.get(m.service) if plan is not None else None
        settings = {"DB_POOL_SIZE": svc.db_pool_size, "CACHE_TTL_S": svc.cache_ttl_s,
                    "INSTANCES": svc.instances} if svc is not None else {}
        rows[m.name] = {"p95_ms": m.p95_ms, "error_rate": m.error_rate, "settings": settings,
                        "rps": (m.requests or 0) / secs if secs else None, "ok": m.thresholds_ok}
    return rows


def _settings_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The service's settings that changed, old -> new ("-" when none did)."""
    out = []
    for knob, name in SETTING_NAMES.items():
        old, new = before.get(knob), after.get(knob)
        if old != new and new is not None:
            out.append(f"{name} {'-' if old is None else f'{old:g}'} -> {new:g}")
    return ", ".join(out) or "-"


def _before_after(before: Path, after: Path, slo_p95: float) -> Table:
    b, a = _module_rows(before), _module_rows(after)
    table = Table(title=f"parallel strategy, before -> after (SLO p95 <= {slo_p95:g} ms)", title_justify="left")
    for col in ("module", "p95 before", "p95 after", "errors before", "errors after", "req/s before", "req/s after",
                "service settings changed"):
        table.add_column(col, justify="left" if col in ("module", "service settings changed") else "right")

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f} ms"

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.2%}"

    def rps(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for name in b:
        x, y = b[name], a.get(name, {})
        table.add_row(escape(name), ms(x["p95_ms"]), ms(y.get("p95_ms")), pct(x["error_rate"]), pct(y.get("error_rate")),
                      rps(x["rps"]), rps(y.get("rps")), escape(_settings_change(x["settings"], y.get("settings", {}))))
    return table


def _knees_table(runs: list[tuple[str, Path]]) -> Table:
    """Each capacity run's knee per service: what instances were sized from, and what they delivered."""
    table = Table(title="capacity runs: each service's knee", title_justify="left")
    for col in ("run", "service", "instances", "knee req/s", "per instance", "first step that broke"):
        table.add_column(col, justify="left" if col in ("run", "service", "first step that broke") else "right")
    for label, run_dir in runs:
        ramps = RunDir.open(run_dir).read_record().capacity
        for svc in ramps.services if ramps is not None else []:
            failed = svc.failed_step
            cap, per = svc.capacity_rps, svc.capacity_per_instance_rps
            table.add_row(escape(label), escape(svc.service), str(svc.instances),
                          "-" if cap is None else (f"{cap:.1f}" if svc.knee_reached else f">= {cap:.1f}"),
                          "-" if per is None else f"{per:.1f}",
                          "-" if failed is None else escape(f"{failed.offered_rps:.1f} req/s: {'; '.join(failed.reasons)}"))
    return table


def _changes_table(changes: list[tuple[str, str, str, str]]) -> Table:
    table = Table(title="settings applied (loadbearing apply --env-file)", title_justify="left")
    for col in ("service", "setting", "old", "new"):
        table.add_column(col)
    for service, knob, old, new in changes:
        table.add_row(*map(escape, (service, knob, old, new)))
    return table


def run_demo(scale: str = "ci", out_dir: Path = Path("runs/demo"), influx_url: str | None = None) -> int:
    """The whole loop. Returns the exit code (0 only when verify passes)."""
    if scale not in SCALES:
        raise BadInput(f"--scale {scale!r}: use one of {', '.join(SCALES)}")
    started = time.monotonic()
    out = out_dir.absolute() / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    was_up = bool(influx_url or os.environ.get("LOADBEARING_INFLUX_URL")) or stack.status()[1]
    influx, local_stack = stack.resolve_store(influx_url)
    try:
        return _loop(scale, out, influx, local_stack, started)
    finally:
        if not was_up:  # the demo leaves nothing running: stop the stack it started (data kept)
            stack.down()
            console.print("stopped the local stack the demo started (its data is kept: "
                          "'loadbearing stack up' brings it back)")


def _loop(scale: str, out: Path, influx: InfluxClient, local_stack: str | None, started: float) -> int:
    influx.ping()
    ports = {name: free_port() for name in SERVICES}
    plan_path = write_plan(out / "plan.toml", scale, f"http://127.0.0.1:{ports['core-api']}",
                           f"http://127.0.0.1:{ports['profile-api']}",
                           shipping_url=f"http://127.0.0.1:{ports['shipping-api']}")
    plan = load_plan(plan_path)
    services = [name for name in SERVICES if name in plan.services]
    ports = {name: ports[name] for name in services}
    env_files = {name: out / f"{name}.env" for name in services}
    for name in services:
        settings = plan.services[name]
        lines = [f"# {name}: the demo service's settings (loadbearing apply writes here)"]
        if settings.db_pool_size is not None:
            lines.append(f"DB_POOL_SIZE={settings.db_pool_size}")
        lines.append(f"CACHE_TTL_S={settings.cache_ttl_s or 0:g}")
        lines.append(f"INSTANCES={settings.instances or 1}")
        env_files[name].write_text("\n".join(lines) + "\n")
    demo = Demo(out=out, influx=influx, local_stack=local_stack, ports=ports, env_files=env_files, services={})
    ramped = [s for s in plan.capacity.services or [] if s in services]
    try:
        console.print(f"[bold]loadbearing demo[/] ({scale} scale): runs in {escape(str(out))}, "
                      f"InfluxDB {escape(influx.public_url)}")
        for strategy in ("sequential", "hybrid"):
            _run(demo, plan_path, strategy, "before")
        before = _run(demo, plan_path, "parallel", "before")
        knees = []
        if ramped:  # services ramped together: they share nothing (another pool, other slots) and time is short
            knees.append(("before", _run(demo, plan_path, "capacity", "before",
                                         CapacityOptions(parallel=True, services=ramped), restart=False)))
        doc = recommend_run(before, capacity=knees[0][1] if knees else None)
        console.print(render_summary(doc), markup=False, highlight=False)
        write_report(before)
        if not doc.get("valid"):
            console.print(f"[red]the parallel run is not valid: {escape(str(doc.get('invalid_reasons')))}[/]")
            return int(ExitCode.RUN_ERROR)
        old = {name: _read_env(p) for name, p in env_files.items()}
        touched = sorted({r["service"] for r in doc.get("recommendations", []) if r.get("service") in services})
        for name in touched:
            apply_run(before, env_file=env_files[name], service=name)
        changes = []
        for name in services:
            new = _read_env(env_files[name])
            for knob in ENV_KNOBS + tuple(k for k in new if k not in ENV_KNOBS):
                if old[name].get(knob) != new.get(knob) and new.get(knob) is not None:
                    changes.append((name, knob, old[name].get(knob, "-"), new[knob]))
        after_plan = _plan_with_env(plan, out / "plan-after.toml", env_files)
        after = _run(demo, after_plan, "parallel", "after")
        rescaled = [s for s in services if old[s].get("INSTANCES") != _read_env(env_files[s]).get("INSTANCES")]
        if rescaled:  # what the new instance count delivers: a ramp from the plan's peak
            ramp_plan = _plan_with_env(plan, out / "plan-after-capacity.toml", env_files, capacity_start=1.0)
            knees.append(("after", _run(demo, ramp_plan, "capacity", "after", CapacityOptions(services=rescaled),
                                        restart=False)))
        demo.stop()
        console.rule("[bold]verify[/]")
        ok = verify_runs(before, after, capacity=knees[-1][1] if len(knees) > 1 else None)
        md, html = write_report(after)
        console.print(_before_after(before, after, plan.slo.p95_ms))
        console.print(_changes_table(changes))
        if knees:
            console.print(_knees_table(knees))
        console.print(f"report: {html} (and {md}); before: {before / 'report.html'}", markup=False)
        console.print(f"demo took {time.monotonic() - started:.0f} s; verify "
                      + ("[green]passed[/]" if ok else "[red]FAILED[/]"))
        return int(ExitCode.PASSED if ok else ExitCode.SLO_FAILED)
    finally:
        demo.stop()
