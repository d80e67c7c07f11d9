"""Watching processes with psutil: `Watch` samples a process tree (the controller's RSS and open
fds, its k6 children's CPU) while a run goes on; `cpu_seconds` reads what a set of pids used.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class ChildCpu:
    name: str
    first_cpu: float
    last_cpu: float
    first_t: float
    last_t: float
    peak_pct: float = 0.0
    pcts: list[float] = field(default_factory=list)  # % of one core between consecutive samples

    @property
    def p90_pct(self) -> float:
        if not self.pcts:
            return 0.0
        s = sorted(self.pcts)
        return s[min(len(s) - 1, int(0.9 * len(s)))]

    @property
    def cpu_s(self) -> float:
        return self.last_cpu - self.first_cpu

    @property
    def mean_pct(self) -> float:
        span = self.last_t - self.first_t
        return 100.0 * self.cpu_s / span if span > 0 else 0.0


@dataclass
class Watch:
    """Samples a process (RSS, open fds, CPU) and its k6 runners (CPU) every `interval_s`.

    A k6 runner is a k6 descendant with a `--tag runner=...` argument; `samples[i]["k6"]`
    counts the runners alive at sample i.
    """

    pid: int
    interval_s: float = 0.5
    samples: list[dict[str, float]] = field(default_factory=list)
    k6: dict[int, ChildCpu] = field(default_factory=dict)
    machine_cpu: list[float] = field(default_factory=list)
    own_cpu_s: float = 0.0  # the watched process's own CPU seconds (last sample)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _procs: dict[int, psutil.Process] = field(default_factory=dict)

    def __enter__(self) -> Watch:
        psutil.cpu_percent(interval=None)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        t0 = time.monotonic()
        try:
            me = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                with me.oneshot():
                    rss = me.memory_info().rss
                    fds = me.num_fds()
                    own = me.cpu_times()
                children = me.children(recursive=True)
            except psutil.Error:
                return
            now = time.monotonic()
            self.own_cpu_s = own.user + own.system
            runners = 0
            self.machine_cpu.append(psutil.cpu_percent(interval=None))
            for c in children:
                if not self._is_k6(c):
                    continue
                try:
                    proc = self._procs.setdefault(c.pid, c)
                    times = proc.cpu_times()
                    pct = proc.cpu_percent(interval=None)
                    label = _runner_label(proc.cmdline())
                except psutil.Error:
                    continue
                if label is None:
                    continue  # not a runner (e.g. the preflight's `k6 inspect`)
                runners += 1
                cpu = times.user + times.system
                seen = self.k6.get(c.pid)
                if seen is None:
                    self.k6[c.pid] = ChildCpu(label, cpu, cpu, now, now)
                else:
                    seen.last_cpu, seen.last_t = cpu, now
                    seen.peak_pct = max(seen.peak_pct, pct)
                    seen.pcts.append(pct)
            self.samples.append({"t": now - t0, "wall": time.time(), "rss": float(rss), "fds": float(fds), "k6": float(runners)})
            self._stop.wait(self.interval_s)

    @staticmethod
    def _is_k6(p: psutil.Process) -> bool:
        try:
            return p.name() == "k6"
        except psutil.Error:
            return False

    @property
    def peak_rss_mb(self) -> float:
        return max((s["rss"] for s in self.samples), default=0.0) / 2**20

    def machine_cpu_mean(self, skip_first: int = 2) -> float:
        vals = self.machine_cpu[skip_first:] or self.machine_cpu
        return sum(vals) / len(vals) if vals else 0.0


def _runner_label(cmdline: list[str]) -> str | None:
    """A k6 runner's `runner` tag (e.g. 'jobs-0'); None for a k6 that is not a runner."""
    for arg in cmdline:
        if arg.startswith("runner="):
            return arg.removeprefix("runner=")
    return None


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (missing ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total
