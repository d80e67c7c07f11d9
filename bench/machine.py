"""The machine a figure was measured on (`machine`: CPU, cores, memory, kernel, tool versions)
and the load on it right now (`load_now`: others' processes make figures noisy).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil

from bench import nginx as nginx_server
from runners import k6 as k6mod
from runners.influxd import influxd_binary


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def cpu_model() -> str:
    try:
        for raw in Path("/proc/cpuinfo").read_text().splitlines():
            if raw.lower().startswith("model name"):
                return raw.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """The machine a figure was measured on: CPU, cores, memory, kernel and tool versions."""
    influxd = influxd_binary()
    nginx = nginx_server.binary()
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "k6": _first_line([k6mod.k6_binary(), "version"]),
        "influxdb": _first_line([influxd, "version"]) if influxd else "not installed",
        "nginx": _first_line([nginx, "-v"]) if nginx else "not installed",
    }


def load_now(interval_s: float = 0.3) -> dict[str, Any]:
    """The load on the machine right now (others' processes make figures noisy).

    `cpu_pct_1s`: the share of all cores busy over `interval_s` (1 s by default in run_all).
    """
    one, five, _ = os.getloadavg()
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2),
            "cpu_pct_1s": psutil.cpu_percent(interval=interval_s)}
