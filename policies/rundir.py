"""What a run directory says about a run: run.json, its plan, and k6's own summaries.

`load_run(run_dir)` returns `RunInputs` or raises `BadInput` (exit 2) naming the
file and the problem. The plan is read from `run.json`'s `plan` path, else from
`RUN_DIR/plan.toml`; a plan that cannot be found leaves `plan` None and a note
(the report still works, settings-based recommendations are skipped).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import BadInput, LoadbearingError
from core.plan import Module, Plan, Service, load_plan


def parse_time_ms(value: Any) -> int | None:
    """Epoch milliseconds of an ISO 8601 timestamp (naive means UTC); None when absent."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return int(value * 1000)
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True)
class Summary:
    """k6's own numbers for one runner (`--summary-export`)."""

    runner: str
    requests: int
    iterations: int
    dropped: int
    iteration_ms: float | None
    duration_ms: float | None
    vus_max: int | None

    @classmethod
    def from_export(cls, runner: str, data: dict[str, Any]) -> Summary:
        m = data.get("metrics", {}) or {}

        def num(metric: str, key: str) -> float | None:
            value = (m.get(metric) or {}).get(key)
            return float(value) if isinstance(value, int | float) else None

        return cls(
            runner=runner,
            requests=int(num("http_reqs", "count") or 0),
            iterations=int(num("iterations", "count") or 0),
            dropped=int(num("dropped_iterations", "count") or 0),
            iteration_ms=num("iteration_duration", "avg"),
            duration_ms=num("http_req_duration", "avg"),
            vus_max=int(v) if (v := num("vus_max", "max") or num("vus_max", "value")) is not None else None,
        )


@dataclass
class ModuleRun:
    """One module of the run: run.json's entry, its plan module and its runners' summaries."""

    name: str
    service: str
    runners: int
    started_ms: int | None
    ended_ms: int | None
    exit_codes: list[Any]
    plan: Module | None
    summaries: list[Summary]
    missing_summaries: list[str]

    @property
    def seconds(self) -> float:
        if self.started_ms is None or self.ended_ms is None or self.ended_ms <= self.started_ms:
            return 0.0
        return (self.ended_ms - self.started_ms) / 1000.0

    @property
    def k6_requests(self) -> int | None:
        return sum(s.requests for s in self.summaries) if self.summaries else None

    @property
    def k6_iterations(self) -> int:
        return sum(s.iterations for s in self.summaries)

    @property
    def k6_dropped(self) -> int:
        return sum(s.dropped for s in self.summaries)

    def requests_per_iteration(self) -> float:
        iters = self.k6_iterations
        reqs = self.k6_requests or 0
        return reqs / iters if iters and reqs else 1.0

    def think_ms(self) -> float:
        """Mean time per iteration not spent in requests (sleeps, script), from the summaries."""
        iters = [(s.iterations, s.iteration_ms) for s in self.summaries if s.iteration_ms is not None]
        durs = [(s.requests, s.duration_ms) for s in self.summaries if s.duration_ms is not None]
        n_it = sum(n for n, _ in iters)
        n_rq = sum(n for n, _ in durs)
        if not n_it or not n_rq:
            return 0.0
        it_ms = sum(n * (v or 0.0) for n, v in iters) / n_it
        rq_ms = sum(n * (v or 0.0) for n, v in durs) / n_rq
        return max(0.0, it_ms - self.requests_per_iteration() * rq_ms)

    @property
    def peak_rate(self) -> float | None:
        """The plan's peak arrival rate (iterations/s) for an open-model module."""
        if self.plan is None or self.plan.rate is None:
            return None
        if self.plan.stages:
            return max([self.plan.rate, *(s.target for s in self.plan.stages)])
        return float(self.plan.rate)

    @property
    def peak_vus(self) -> int | None:
        """The plan's peak VUs for a closed-model module."""
        if self.plan is None or self.plan.vus is None:
            return None
        if self.plan.stages:
            return max([self.plan.vus, *(math.ceil(s.target) for s in self.plan.stages)])
        return self.plan.vus


@dataclass
class RunInputs:
    run_dir: Path
    run: dict[str, Any]
    run_id: str
    testid: str
    strategy: str
    status: str
    started_ms: int
    ended_ms: int
    slo_p95_ms: float
    slo_error_rate: float
    influx_url: str | None
    influx_db: str | None
    plan: Plan | None
    modules: list[ModuleRun]
    phases: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(0.0, (self.ended_ms - self.started_ms) / 1000.0)

    def services(self) -> list[str]:
        return sorted({m.service for m in self.modules if m.service})

    def service_settings(self, service: str) -> Service | None:
        if self.plan is None:
            return None
        return self.plan.services.get(service)

    def module(self, name: str) -> ModuleRun | None:
        return next((m for m in self.modules if m.name == name), None)

    def service_window(self, service: str) -> tuple[int, int]:
        """The span (epoch ms) during which any module of `service` ran."""
        spans = [(m.started_ms, m.ended_ms) for m in self.modules
                 if m.service == service and m.started_ms is not None and m.ended_ms is not None]
        if not spans:
            return self.started_ms, self.ended_ms
        return min(s for s, _ in spans), max(e for _, e in spans)  # type: ignore[type-var]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path.parent}: no run.json here; pass a run directory printed by "
                       "'loadbearing run'") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: unreadable run record: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: the run record is not a JSON object")
    return data


def _load_plan(run_dir: Path, run: dict[str, Any], notes: list[str]) -> Plan | None:
    candidates = []
    if run.get("plan"):
        candidates.append(Path(str(run["plan"])))
    candidates.append(run_dir / "plan.toml")
    for path in candidates:
        if path.is_file():
            try:
                return load_plan(path)
            except LoadbearingError as exc:
                notes.append(f"plan {path} could not be read ({exc.message.splitlines()[0]}); "
                             "settings-based recommendations are skipped")
                return None
    notes.append(f"plan {run.get('plan')!r} not found; pool, cache and autoscaling settings are unknown, "
                 "so those recommendations are skipped")
    return None


def load_run(run_dir: Path) -> RunInputs:
    """Read a run directory. Raises BadInput (exit 2) when run.json is missing or malformed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: not a directory; pass a run directory printed by 'loadbearing run'")
    path = run_dir / "run.json"
    run = _read_json(path)
    missing = [k for k in ("run_id", "started_at", "ended_at", "slo", "modules") if k not in run]
    if missing:
        raise BadInput(f"{path}: missing key(s) {', '.join(missing)}; the run record is incomplete")
    started = parse_time_ms(run.get("started_at"))
    ended = parse_time_ms(run.get("ended_at"))
    if started is None or ended is None:
        raise BadInput(f"{path}: started_at/ended_at must be ISO 8601 timestamps; the run did not finish")
    slo = run.get("slo") or {}
    try:
        p95 = float(slo["p95_ms"])
        err = float(slo["max_error_rate"])
    except (KeyError, TypeError, ValueError):
        raise BadInput(f"{path}: slo must have numbers p95_ms and max_error_rate") from None
    notes: list[str] = []
    plan = _load_plan(run_dir, run, notes)
    modules: list[ModuleRun] = []
    for entry in run.get("modules") or []:
        name = str(entry.get("name"))
        runners_field = entry.get("runners")
        runners = len(runners_field) if isinstance(runners_field, list) else int(runners_field or 1)
        summaries: list[Summary] = []
        absent: list[str] = []
        for i in range(runners):
            runner = f"{name}-{i}"
            spath = run_dir / "k6" / f"{runner}.summary.json"
            try:
                summaries.append(Summary.from_export(runner, json.loads(spath.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                absent.append(runner)
        plan_module = None
        if plan is not None:
            plan_module = next((m for m in plan.modules if m.name == name), None)
        service = str(entry.get("service") or (plan_module.service if plan_module else "") or "")
        modules.append(ModuleRun(
            name=name,
            service=service,
            runners=runners,
            started_ms=parse_time_ms(entry.get("started_at")),
            ended_ms=parse_time_ms(entry.get("ended_at")),
            exit_codes=list(entry.get("exit_codes") or []),
            plan=plan_module,
            summaries=summaries,
            missing_summaries=absent,
        ))
    influx = run.get("influx") or {}
    return RunInputs(
        run_dir=run_dir,
        run=run,
        run_id=str(run["run_id"]),
        testid=str(run.get("testid") or run["run_id"]),
        strategy=str(run.get("strategy") or ""),
        status=str(run.get("status") or ""),
        started_ms=started,
        ended_ms=ended,
        slo_p95_ms=p95,
        slo_error_rate=err,
        influx_url=influx.get("url"),
        influx_db=influx.get("db"),
        plan=plan,
        modules=sorted(modules, key=lambda m: m.name),
        phases=list(run.get("phases") or []),
        notes=notes,
    )
