"""What the policies read of a run: its record, its plan snapshot and k6's own summaries.

`load_run(run_dir)` reads them through `core.rundir.RunDir` and returns `RunInputs`, or
raises `BadInput` (exit 2) naming the file and the problem. The plan is the snapshot
taken when the run started; a plan that cannot be found leaves `plan` None and a note
(the report still works, settings-based recommendations are skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import BadInput
from core.knees import CapacityRecord
from core.plan import Module, Plan, Service
from core.rundir import K6Summary, PhaseRecord, RunDir, RunRecord, runner_name


@dataclass
class ModuleRun:
    """One module of the run: run.json's entry, its plan module and its runners' summaries."""

    name: str
    service: str
    runners: int
    started_ms: int | None
    ended_ms: int | None
    exit_codes: list[int | None]
    plan: Module | None
    summaries: list[K6Summary]
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
    run_dir: RunDir
    record: RunRecord
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
    phases: list[PhaseRecord]
    notes: list[str] = field(default_factory=list)
    # A capacity run's knees (this run's own, or `with_capacity_run`'s) and the run they come from.
    ramps: CapacityRecord | None = None
    ramps_run: RunDir | None = None

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


def load_run(run_dir: Path | RunDir) -> RunInputs:
    """Read a finished run directory. Raises BadInput (exit 2) when it is not one."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir.open(run_dir)
    record = rd.read_record()
    started, ended = record.started_ms, record.ended_ms
    if started is None or ended is None:
        raise BadInput(f"{rd.record_path}: started_at/ended_at must be ISO 8601 timestamps; the run did not finish")
    notes: list[str] = []
    plan, note = rd.read_plan(record)
    if note:
        notes.append(note)
    modules: list[ModuleRun] = []
    for entry in record.modules:
        summaries: list[K6Summary] = []
        absent: list[str] = []
        for i in range(entry.runners):
            runner = runner_name(entry.name, i)
            summary = rd.summary(runner)
            if summary is None:
                absent.append(runner)
            else:
                summaries.append(summary)
        plan_module = None
        if plan is not None:
            plan_module = next((m for m in plan.modules if m.name == entry.name), None)
        modules.append(ModuleRun(
            name=entry.name,
            service=entry.service or (plan_module.service if plan_module else "") or "",
            runners=entry.runners,
            started_ms=entry.started_ms,
            ended_ms=entry.ended_ms,
            exit_codes=list(entry.exit_codes),
            plan=plan_module,
            summaries=summaries,
            missing_summaries=absent,
        ))
    return RunInputs(
        run_dir=rd,
        record=record,
        run_id=record.run_id,
        testid=record.testid or record.run_id,
        strategy=record.strategy,
        status=record.status,
        started_ms=started,
        ended_ms=ended,
        slo_p95_ms=record.slo.p95_ms,
        slo_error_rate=record.slo.max_error_rate,
        influx_url=record.influx.url,
        influx_db=record.influx.db,
        plan=plan,
        modules=sorted(modules, key=lambda m: m.name),
        phases=list(record.phases),
        notes=notes,
        ramps=record.capacity,
        ramps_run=rd if record.capacity is not None else None,
    )


def with_capacity_run(inputs: RunInputs, capacity_dir: Path | RunDir) -> RunInputs:
    """`inputs` with the knees of a capacity run (`loadbearing run capacity`): autoscaling sizes
    instances from them. BadInput (exit 2) when the directory holds no capacity run."""
    rd = capacity_dir if isinstance(capacity_dir, RunDir) else RunDir.open(capacity_dir)
    ramps = rd.read_record().capacity
    if ramps is None:
        raise BadInput(f"--capacity {rd}: not a capacity run (its run.json has no 'capacity'); pass the directory "
                       "printed by 'loadbearing run capacity'")
    inputs.ramps, inputs.ramps_run = ramps, rd
    return inputs
