"""A pinned baseline: a file beside the runs, not a service.

`loadbearing baseline set RUN` reads the run's aggregates from InfluxDB
(`policies.compare_profile.read_profile`) and stores them in `baseline.json` beside the
run directories (RUN's parent), or in the file given. One file holds one baseline per
plan and strategy (key `"<plan name>/<strategy>"`), so nightly parallel and sequential
runs of several plans can share a runs directory. Because the file holds the baseline's
numbers, not a pointer to them, `compare --baseline` needs InfluxDB only for the new
run: the file can be committed or kept as a CI artifact while the metrics store is
recreated.

    {"version": 1,
     "baselines": {"demo-test/parallel": {"set_at": "...Z", "run_id": "...", "run_dir": "...",
                                          "profile": {RunProfile as JSON}}}}

Errors are BadInput (exit 2) naming the file and the fix.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import BadInput
from core.influx import InfluxClient
from core.rundir import StoreConnector
from policies.compare_profile import RunProfile, read_profile
from policies.inputs import load_run

FILE_NAME = "baseline.json"
VERSION = 1


def default_file(run_dir: Path) -> Path:
    """`baseline.json` beside the run directory (in the directory that holds the runs)."""
    return Path(run_dir).resolve().parent / FILE_NAME


def key_of(plan_name: str | None, strategy: str) -> str:
    return f"{plan_name or '?'}/{strategy}"


def read_file(path: Path) -> dict[str, Any]:
    """The baselines file, or an empty one when it does not exist yet."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": VERSION, "baselines": {}}
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a readable baselines file ({exc}); fix or delete it and run "
                       "'loadbearing baseline set RUN' again") from None
    if not isinstance(data, dict) or not isinstance(data.get("baselines"), dict):
        raise BadInput(f"{path}: not a baselines file (no 'baselines' object); fix or delete it")
    if data.get("version") != VERSION:
        raise BadInput(f"{path}: baselines file version {data.get('version')!r}; this loadbearing reads "
                       f"version {VERSION}: pin the baseline again")
    return data


def _write_file(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def set_baseline(run_dir: Path, file: Path | None = None, influx: InfluxClient | None = None,
                 connect: StoreConnector | None = None) -> tuple[Path, str, dict[str, Any]]:
    """Pin `run_dir` as the baseline of its plan and strategy; returns (file, key, entry)."""
    inputs = load_run(Path(run_dir))
    if inputs.plan is None:
        raise BadInput(f"{run_dir}: the run's plan was not found, so its baseline cannot be keyed by plan; "
                       "pin a run whose plan is readable")
    profile = read_profile(Path(run_dir), influx, connect)
    path = Path(file) if file is not None else default_file(run_dir)
    data = read_file(path)
    key = key_of(inputs.plan.name, profile.strategy)
    entry = {"set_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
             "run_id": profile.run_id, "run_dir": profile.run_dir, "profile": profile.to_json()}
    data["baselines"][key] = entry
    _write_file(path, data)
    return path, key, entry


def baseline_for(run: RunProfile, file: Path | None = None) -> RunProfile:
    """The pinned baseline for `run`'s plan and strategy (BadInput when none is pinned)."""
    path = Path(file) if file is not None else default_file(Path(run.run_dir))
    key = key_of((run.plan or {}).get("name"), run.strategy)
    data = read_file(path)
    entry = data["baselines"].get(key)
    if entry is None:
        pinned = ", ".join(sorted(data["baselines"])) or "none"
        raise BadInput(f"{path}: no baseline pinned for {key} (pinned: {pinned}); pin one with "
                       "'loadbearing baseline set RUN_DIR', or name the baseline run: "
                       "'loadbearing compare BASELINE_RUN RUN'")
    try:
        return RunProfile.from_json(entry["profile"])
    except (KeyError, TypeError) as exc:
        raise BadInput(f"{path}: the baseline {key} is malformed ({exc}); pin it again") from None


def show(file: Path) -> list[dict[str, Any]]:
    """One line of facts per pinned baseline."""
    data = read_file(file)
    out = []
    for key, entry in sorted(data["baselines"].items()):
        profile = entry.get("profile") or {}
        out.append({"key": key, "run_id": entry.get("run_id"), "set_at": entry.get("set_at"),
                    "run_dir": entry.get("run_dir"), "started_at": profile.get("started_at"),
                    "endpoints": len(profile.get("endpoints") or [])})
    return out
