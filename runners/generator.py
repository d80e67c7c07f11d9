"""Load-generator health: each local runner's CPU, sampled while it runs.

Written to InfluxDB as `loadbearing_runner` (tags testid, module, runner; field
cpu_percent, of one core) so the policies can tell a saturated generator from a
slow target. The pid is the runner's own (`Runner.pid`: the process backend's k6, a docker
container's k6 as this machine sees it); runners without one (Fargate tasks) are skipped.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from core import measurements as names
from core.influx import InfluxClient, line
from runners.backends import Runner


class GeneratorMonitor:
    def __init__(self, influx: InfluxClient, testid: str) -> None:
        self.influx = influx
        self.testid = testid
        self._procs: dict[int, psutil.Process] = {}
        self.peak: dict[str, float] = {}

    def _proc(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # first call primes the counter
            except psutil.Error:
                return None
            self._procs[pid] = proc
            return None
        return proc

    def sample(self, runners: list[Runner[Any]]) -> None:
        now = time.time_ns()
        points = []
        for r in runners:
            if r.pid is None or r.exit_code is not None:
                continue
            proc = self._proc(r.pid)
            if proc is None:
                continue
            try:
                cpu = float(proc.cpu_percent(None))
            except psutil.Error:
                continue
            self.peak[r.spec.name] = max(self.peak.get(r.spec.name, 0.0), cpu)
            points.append(line(names.RUNNER_CPU, {names.TESTID: self.testid, names.MODULE: r.spec.module, names.RUNNER: r.spec.name},
                               {names.CPU_PERCENT: round(cpu, 1)}, now))
        if points:
            try:
                self.influx.write(points, retry_s=0.0)  # once a second: the next one writes anew
            except Exception:  # generator health is advisory: never fail a run on it
                pass
