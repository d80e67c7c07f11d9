"""Child processes loadbearing starts (k6, influxd, demo services): tied to the parent's
life, waited on until they answer over HTTP, known by more than their PID, and stopped."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import time
from dataclasses import dataclass

import httpx
import psutil

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` (runs in the child between fork and exec): the kernel SIGKILLs the child
    when its parent dies, so a killed controller, benchmark or test leaves nothing running."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def wait_answering(proc: subprocess.Popen[bytes], url: str, ok_status: int, timeout_s: float) -> str | None:
    """None once GET `url` answers `ok_status`; else why not: the child exited, or no
    answer within `timeout_s` (the caller adds the log's tail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with code {proc.returncode}"
        try:
            if httpx.get(url, timeout=1.0).status_code == ok_status:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return f"no answer on {url} within {timeout_s:.0f}s"


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it was when loadbearing started it. A PID alone is not enough to signal
    it later: after a crash or a reboot the same PID may belong to anything (and the command
    that signals it may run as root), so the name and the create time are kept beside it."""

    pid: int
    name: str
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        proc = psutil.Process(pid)
        return cls(pid, proc.name(), proc.create_time())

    def process(self) -> psutil.Process | None:
        """The live process if it is still this one (same PID, name and create time), else None."""
        try:
            proc = psutil.Process(self.pid)
            same = proc.name() == self.name and abs(proc.create_time() - self.create_time) < 0.01
            return proc if same and proc.status() != psutil.STATUS_ZOMBIE else None
        except psutil.Error:
            return None


def stop_process(proc: psutil.Process, timeout: float = 10.0) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL; reaps it when it is our child."""
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.terminate()
    _, alive = psutil.wait_procs([proc], timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5.0)
