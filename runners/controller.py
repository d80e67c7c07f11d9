"""One run of a strategy: check, prepare, then for each phase initialise, start,
watch and finish the runners; finally compute the numbers from the stored samples.

Lifecycle per phase (as k6-operator splits it): initialize (runners paused, VUs
ready) -> start (resumed together) -> watch (progress, crash detection, timeout)
-> finish (record windows, events). `stop` runs on every exit path.

A capacity run (`strategy` "capacity", runners.capacity) goes the same way with one
phase per service (or one for all), each module on its stepped ramp; while it runs, a
`KneeWatcher` judges every step from the store and the controller stops a service's
runners at its knee.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.markup import escape

from core import measurements
from core import measurements as names
from core.console import console
from core.errors import Aborted, BadInput, ExitCode, RunError
from core.influx import InfluxClient
from core.knees import ServiceKnee
from core.plan import CAPACITY, Module, Plan, capacity_modules, load_plan
from core.rundir import (
    RUN_ID_PATTERN,
    MetricsRecord,
    ModuleRecord,
    PhaseRecord,
    RunDir,
    RunRecord,
    StoreRecord,
    iso,
    new_run_id,
    runner_name,
)
from core.state import pid_dir
from runners import capacity, k6
from runners.allowlist import check_plan_hosts, k6_block_options
from runners.backends import Backend, BackendOptions, Fleet, ProcessOptions, Runner, RunnerSpec
from runners.backends.registry import get_backend
from runners.events import EventLog
from runners.fleet import MAX_RUNNERS
from runners.generator import GeneratorMonitor
from runners.k6_binary import K6
from runners.k6_entry import write_entry
from runners.progress import Progress, final_table
from runners.results import compute_results
from runners.scrape import Scraper
from runners.strategies import Phase, phases

CRASH_EXIT_CODES_OK = (0, 99)  # 99: k6 thresholds failed (still a finished run)
WATCH_MARGIN_S = 60.0


@dataclass(frozen=True)
class RunOptions:
    plan_path: Path
    strategy: str
    backend: BackendOptions = field(default_factory=ProcessOptions)
    runners: int | None = 1    # k6 runners per module; None: the backend sizes the fleet (`--runners auto`)
    out_dir: Path = Path("runs")
    run_id: str | None = None  # chosen by the caller (e.g. the demo tags its services with it)
    capacity: capacity.CapacityOptions | None = None  # strategy "capacity": which services, how


@dataclass(frozen=True)
class PreparedRun:
    """Everything a run needs that takes no load and no store, checked and computed once by
    `prepare`: the validated plan, its phases for the strategy, k6's block list and each
    module's k6 config, the k6 binary, the backend, and the fleet it planned."""

    opts: RunOptions
    plan: Plan
    phases: list[Phase]
    block: dict[str, list[str]]
    k6_configs: dict[str, dict[str, Any]]
    k6: K6
    backend: Backend[Any]
    fleet: Fleet
    ramps: dict[str, list[Module]] | None = None  # a capacity run: the modules it ramps, by service

    @property
    def strategy(self) -> str:
        return self.opts.strategy

    @property
    def modules(self) -> list[Module]:
        """The modules the phases run, in plan order (a capacity run ramps some of them)."""
        names = {n for phase in self.phases for n in phase.modules}
        return [m for m in self.plan.modules if m.name in names]


def prepare(opts: RunOptions) -> PreparedRun:
    """Every check that needs no load and no store, once: exit 2 or 3 before anything starts.

    The plan is read and validated, its hosts checked against allow_hosts, the strategy's
    phases computed (which validates the strategy), each module's script preflighted with
    `k6 inspect`, the backend built and asked to plan its fleet (`--runners auto`, a cost
    estimate, `--max-cost`).
    """
    if opts.run_id is not None and not re.fullmatch(RUN_ID_PATTERN, opts.run_id):
        raise BadInput(f"--run-id {opts.run_id!r}: use letters, digits, '.', '_' and '-' (at most 81)")
    if opts.runners is not None and not 1 <= opts.runners <= MAX_RUNNERS:
        raise BadInput(f"--runners {opts.runners}: must be between 1 and {MAX_RUNNERS}")
    plan = load_plan(opts.plan_path)
    ramps = None
    if opts.strategy == CAPACITY:
        cap = opts.capacity or capacity.CapacityOptions()
        ramps = capacity_modules(plan, cap.services)
        plan_phases = capacity.phases(ramps, cap.parallel)
    else:
        plan_phases = phases(plan, opts.strategy)
    check_plan_hosts(plan)
    block = k6_block_options(plan.target.allow_hosts)
    modules = [m for m in plan.modules if any(m.name in p.modules for p in plan_phases)]
    configs = {module.name: k6.config(module, block, capacity.scenario(plan, module) if ramps else None)
               for module in modules}
    with tempfile.TemporaryDirectory(prefix="loadbearing-preflight-") as tmp:
        for module in modules:
            k6.preflight(plan.script_path(module), module, configs[module.name], Path(tmp))
    used = k6.resolve()
    backend = get_backend(opts.backend)
    fleet = backend.plan_fleet(plan, plan_phases, opts.runners)
    return PreparedRun(opts=opts, plan=plan, phases=plan_phases, block=block, k6_configs=configs, k6=used,
                       backend=backend, fleet=fleet, ramps=ramps)


def _knee_watcher(prepared: PreparedRun, influx: InfluxClient, run_id: str,
                  events: EventLog) -> capacity.KneeWatcher | None:
    if prepared.ramps is None:
        return None

    def on_knee(svc: ServiceKnee, ts: float) -> None:
        event = "knee" if svc.knee_reached and svc.knee is not None else ("lower_bound" if svc.knee is not None
                                                                           else "no_knee")
        events.emit(names.KNEE, event, svc.service, svc.note, ts)
        console.print(f"[bold]{escape(svc.note)}[/]")

    parallel = prepared.opts.capacity is not None and prepared.opts.capacity.parallel
    return capacity.KneeWatcher(influx, run_id, prepared.plan, prepared.ramps,
                                "parallel" if parallel else "sequential", on_knee)


def run(prepared: PreparedRun, influx: InfluxClient, *, local_stack: str | None = None) -> tuple[RunDir, ExitCode]:
    """Run a prepared strategy. Returns (run_dir, exit code). Raises LoadbearingError before any load.

    `local_stack` names the local stack's provider when `influx` is the local stack: the run
    record says so, and whoever reads the run later brings that stack up again.
    """
    opts, plan, backend = prepared.opts, prepared.plan, prepared.backend
    used = prepared.k6
    console.print(f"k6 v{used.version} ({used.source}: {used.path})", style="dim", markup=False)
    influx.ping()
    influx.ensure_db()
    for msg in backend.cleanup_stale():
        console.print(f"[yellow]cleanup:[/] {escape(msg)}")

    started = time.time()
    run_id = opts.run_id or new_run_id(opts.strategy, started)
    run_dir = RunDir.create(opts.out_dir, run_id)
    run_dir.write_plan(plan)  # what recommend, verify and report read: later edits of the file change nothing
    record = RunRecord(
        run_id=run_id, testid=run_id, strategy=opts.strategy, plan=str(plan.path),
        slo=plan.slo, influx=StoreRecord(url=influx.public_url, db=influx.db, stack=local_stack,
                                         credential_secret=influx.credential_secret),
        backend=backend.name, started_at=iso(started), k6=used.to_json(),
        modules=[ModuleRecord(name=m.name, service=m.service or "default", runners=prepared.fleet.runners)
                 for m in prepared.modules],
    )
    run_dir.write_record(record)
    owner = _claim(run_id)
    events = EventLog(influx, run_id, opts.strategy)
    knees = _knee_watcher(prepared, influx, run_id, events)
    monitor = GeneratorMonitor(influx, run_id)
    scraper = Scraper({name: svc.metrics_urls for name, svc in plan.services.items() if svc.metrics_urls},
                      influx, run_id)
    code = ExitCode.RUN_ERROR
    live: list[Runner[Any]] = []
    previous = _install_signal_handlers()
    try:
        scraper.start()
        events.emit("run", "start", run_id, f"{opts.strategy} run of plan {plan.name}", started)
        with Progress([m.name for m in prepared.modules], f"loadbearing {opts.strategy} · {run_id}") as progress:
            for phase in prepared.phases:
                if phase.recovery_before_s > 0:
                    progress.set_state(phase.modules, f"recovery {phase.recovery_before_s:.0f}s")
                    time.sleep(phase.recovery_before_s)
                specs = _specs(prepared, phase, run_id, run_dir, influx)
                progress.set_state(phase.modules, "initialising")
                live = backend.initialize(specs)
                t0 = backend.start(live)
                phase_rec = PhaseRecord(name=phase.name, modules=list(phase.modules), started_at=iso(t0))
                record.phases.append(phase_rec)
                events.emit("phase", "start", phase.name, f"modules: {', '.join(phase.modules)}", t0)
                for name in phase.modules:
                    record.module(name).started_at = iso(t0)
                    events.emit("module", "start", name, f"phase {phase.name}", t0)
                run_dir.write_record(record)
                progress.set_state(phase.modules, "running")
                if knees is not None:
                    knees.begin(sorted({plan.module(n).service or "default" for n in phase.modules}), t0)
                _watch(backend, live, plan, phase, progress, record, monitor, knees)
                _finish_phase(backend, live, phase, phase_rec, record, events)
                live = []
                if knees is not None:
                    knees.finish(time.time())
                    record.capacity = knees.record
                run_dir.write_record(record)
        _stop_scraper(scraper)
        record.status = "running"
        compute_results(record, plan, influx, run_dir)
        failed_slo = any(m.thresholds_ok is False for m in record.modules)
        if knees is not None:  # a ramp breaks the SLO by design: the verdict is whether each knee carries the peak
            carried, short = capacity.verdict(knees.record)
            failed_slo = not carried
            for line in short:
                console.print(f"[yellow]capacity:[/] {escape(line)}")
        metrics = record.metrics
        if metrics is None or not metrics.complete:
            # The store lost samples (or is gone): the numbers cannot be trusted for a verdict.
            record.status = "error"
            record.errors.append(f"metrics_incomplete: {metrics.incomplete_reason if metrics else None}; "
                                 "numbers in run.json come from "
                                 f"{metrics.source if metrics else None} and the run cannot be used for "
                                 "recommendations")
            code = ExitCode.RUN_ERROR
        else:
            record.status = "failed" if failed_slo else "passed"
            code = ExitCode.SLO_FAILED if failed_slo else ExitCode.PASSED
    except Aborted:
        backend.stop(live)
        _record_runner_ends(live, record)
        record.status = "aborted"
        record.errors.append("aborted by signal; every runner was stopped")
        _safe_results(record, plan, influx, run_dir)
        code = ExitCode.RUN_ERROR
    except RunError as exc:
        backend.stop(live)
        _record_runner_ends(live, record)
        record.status = "error"
        record.errors.append(exc.message)
        _safe_results(record, plan, influx, run_dir)
        code = ExitCode.RUN_ERROR
    finally:
        backend.stop(live)
        _stop_scraper(scraper)
        _restore_signal_handlers(previous)
        record.ended_at = iso(time.time())
        events.emit("run", "end", run_id, f"status {record.status}")
        if influx.retries:  # the store dropped or refused a request and a retry got through (or not)
            record.metrics = record.metrics or MetricsRecord()
            record.metrics.store_retries = [r.to_json() for r in influx.retries]
        run_dir.write_record(record, complete=True)
        owner.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            owner.parent.rmdir()
        influx.close()
    console.print(final_table(record.to_json()))
    for err in record.errors:
        console.print(f"[red]error:[/] {escape(err)}")
    return run_dir, code


def _stop_scraper(scraper: Scraper) -> None:
    """Stop scraping (idempotent) and say how the scrapes went, failures included."""
    if not scraper.targets or scraper.stopped:
        return
    for service, stats in scraper.stop().items():
        colour = "yellow" if stats.failed or stats.write_errors else "dim"
        console.print(f"[{colour}]metrics_url {stats.summary(service)}[/]", highlight=False)


def _specs(prepared: PreparedRun, phase: Phase, run_id: str, run_dir: RunDir,
           influx: InfluxClient) -> list[RunnerSpec]:
    plan, count = prepared.plan, prepared.fleet.runners
    specs = []
    for name in phase.modules:
        module = plan.module(name)
        env = k6.runner_env(plan.base_url(module), influx.k6_env())
        entry = write_entry(run_dir, name, plan.script_path(module)) if module.key_requests else None
        service = module.service or "default"
        for i in range(count):
            runner = runner_name(name, i)
            specs.append(RunnerSpec(
                run_id=run_id, module=name, service=service, index=i, count=count,
                script=plan.script_path(module), config=prepared.k6_configs[name],
                tags=measurements.run_tags(run_id, prepared.strategy, name, service, runner),
                env=env, influx_out=influx.k6_output_url(), run_dir=run_dir,
                scripts_root=plan.path.parent, entry=entry))
    return specs


def _watch(backend: Backend[Any], live: list[Runner[Any]], plan: Plan, phase: Phase, progress: Progress,
           record: RunRecord, monitor: GeneratorMonitor, knees: capacity.KneeWatcher | None = None) -> None:
    """Wait for the phase's runners; a crashed runner stops its siblings and raises RunError.

    With `knees` (a capacity run), each service's runners are stopped once its ramp broke."""
    longest = capacity.ramp_seconds(plan) if knees is not None else \
        max(plan.module(n).duration_s for n in phase.modules)
    deadline = time.monotonic() + longest + k6.parse_graceful_stop_s() + WATCH_MARGIN_S
    next_sample = 0.0
    while True:
        codes = backend.poll(live)
        for r, c in zip(live, codes, strict=True):
            if c is not None and c not in CRASH_EXIT_CODES_OK and not r.info.get("stopped_at_knee"):
                r.failure = r.failure or _describe_exit(c)
                record.module(r.spec.module).failures.append(f"runner {r.spec.name}: {r.failure}")
                backend.stop(live)
                raise RunError(f"runner {r.spec.name} of module {r.spec.module} failed ({r.failure}); "
                               "stopped its siblings and ended the run")
            if c is not None:
                progress.rows[r.spec.module].state = "finishing"
        if all(c is not None for c in codes):
            return
        if time.monotonic() > deadline:
            backend.stop(live)
            raise RunError(f"phase {phase.name} did not end within its duration + {WATCH_MARGIN_S:.0f}s; "
                           "stopped every runner")
        now = time.monotonic()
        if now >= next_sample:
            progress.sample(live)
            monitor.sample(live)
            next_sample = now + 1.0
            if knees is not None:
                for service in knees.tick(time.time()):
                    mine = [r for r in live if r.spec.service == service]
                    for r in mine:
                        r.info["stopped_at_knee"] = True
                    backend.stop(mine)
                    progress.set_state(tuple({r.spec.module for r in mine}), "stopped at its knee")
        time.sleep(0.05)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"k6 exited with code {code}"


def _record_runner_ends(live: list[Runner[Any]], record: RunRecord) -> None:
    for name in {r.spec.module for r in live}:
        mine = [r for r in live if r.spec.module == name]
        rec = record.module(name)
        rec.exit_codes = [r.exit_code for r in mine]
        rec.ended_at = iso(max((r.ended_at or time.time()) for r in mine))
        for r in mine:  # every failed runner, not only the first one _watch saw
            line = f"runner {r.spec.name}: {r.failure}"
            if r.failure and line not in rec.failures:
                rec.failures.append(line)


def _finish_phase(backend: Backend[Any], live: list[Runner[Any]], phase: Phase, phase_rec: PhaseRecord,
                  record: RunRecord, events: EventLog) -> None:
    backend.stop(live)  # reaps and removes pid files; runners have ended
    _record_runner_ends(live, record)
    end = max((r.ended_at or time.time()) for r in live)
    for name in phase.modules:
        events.emit("module", "end", name, f"phase {phase.name}",
                    max((r.ended_at or end) for r in live if r.spec.module == name))
    phase_rec.ended_at = iso(end)
    events.emit("phase", "end", phase.name, f"modules: {', '.join(phase.modules)}", end)


def _safe_results(record: RunRecord, plan: Plan, influx: InfluxClient, run_dir: RunDir) -> None:
    try:
        compute_results(record, plan, influx, run_dir)
    except RunError as exc:
        record.errors.append(f"could not read results back: {exc.message}")


def _claim(run_id: str) -> Path:
    d = pid_dir(run_id)
    d.mkdir(parents=True, exist_ok=True)
    owner = d / "controller.pid"
    owner.write_text(str(os.getpid()))
    return owner


_signal_seen = [False]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _signal_seen[0]:
        return  # already stopping
    _signal_seen[0] = True
    console.print(f"[yellow]{signal.Signals(signum).name}: stopping every runner (summaries are kept)...[/]")
    raise Aborted()


def _install_signal_handlers() -> dict[int, object]:
    _signal_seen[0] = False
    prev: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        prev[sig] = signal.signal(sig, _on_signal)
    return prev


def _restore_signal_handlers(prev: dict[int, object]) -> None:
    for sig, handler in prev.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
