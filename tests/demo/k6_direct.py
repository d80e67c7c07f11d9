"""Run a demo k6 module directly with the real k6 binary and a scenario config.

The plan's load shape normally reaches k6 the same way: a `--config` JSON with
`scenarios`; the scripts set none of their own.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.plan import MODULES_DIR
from runners.k6 import k6_binary


@dataclass
class K6Result:
    returncode: int
    summary: dict[str, Any]
    stderr: str
    names: Counter[str]          # requests per `name` tag (only with json_out)
    unnamed: int                 # requests without a `name` tag

    def metric(self, name: str) -> dict[str, Any]:
        return dict(self.summary["metrics"].get(name, {}))


def arrival_rate(rate: int, duration: str, max_vus: int = 200, graceful_stop: str = "0s") -> dict[str, Any]:
    """A constant-arrival-rate scenario; with the default gracefulStop, requests in flight at the end are cut."""
    return {"executor": "constant-arrival-rate", "rate": rate, "timeUnit": "1s", "duration": duration,
            "preAllocatedVUs": max_vus, "maxVUs": max_vus, "gracefulStop": graceful_stop}


def run_k6(module: str, base_url: str, scenario: dict[str, Any], work_dir: Path, *,
           json_out: bool = False, timeout_s: float = 120.0) -> K6Result:
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / f"{module}.config.json"
    config.write_text(json.dumps({"scenarios": {"load": scenario}, "noUsageReport": True,
                                  "summaryTrendStats": ["avg", "med", "p(95)", "max", "count"]}))
    summary = work_dir / f"{module}.summary.json"
    points = work_dir / f"{module}.points.json"
    args = [k6_binary(), "run", "--quiet", "--no-usage-report", "--address", "", "--config", str(config),
            "--summary-export", str(summary), "-e", f"BASE_URL={base_url}"]
    if json_out:
        args += ["--out", f"json={points}"]
    args.append(str(MODULES_DIR / f"{module}.js"))
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    names: Counter[str] = Counter()
    unnamed = 0
    if json_out and points.exists():
        for raw in points.read_text().splitlines():
            point = json.loads(raw)
            if point.get("type") == "Point" and point.get("metric") == "http_reqs":
                tag = (point["data"].get("tags") or {}).get("name")
                if tag and not tag.startswith("http"):
                    names[tag] += 1
                else:
                    unnamed += 1
    data = json.loads(summary.read_text()) if summary.exists() else {"metrics": {}}
    return K6Result(proc.returncode, data, proc.stderr, names, unnamed)
