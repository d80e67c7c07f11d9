"""Child processes loadbearing starts (k6, influxd, demo services): tied to the parent's
life, and waited on until they answer over HTTP."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import time

import httpx

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
