"""Where loadbearing keeps local state: the local stack, pid files of live runners.

`LOADBEARING_STATE_DIR`, else `.loadbearing/` in the current directory (like
`.pulumi/` or `.terraform/`; git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    root = Path(os.environ.get("LOADBEARING_STATE_DIR") or Path.cwd() / ".loadbearing")
    root.mkdir(parents=True, exist_ok=True)
    return root


def pid_dir(run_id: str) -> Path:
    """Where a run's controller and local runners leave their pid files (`stack status` reaps them)."""
    return state_dir() / "runners" / run_id


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_api_port(host: str = "127.0.0.1", low: int = 20000, high: int = 32000) -> int:
    """A free port below Linux's ephemeral range (32768-60999) for a k6 REST API.

    `free_port` hands out an ephemeral port that the kernel may give to an outgoing
    connection before k6 binds it ("address already in use"); ports below the range
    are never handed out that way.
    """
    import random
    import socket

    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    return free_port(host)
