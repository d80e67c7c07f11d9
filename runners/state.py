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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
