"""What the local stack is: `StackInfo`, kept in `<state dir>/stack.json` while a stack is up.

Written by `runners.stack` (and the docker provider, `runners.stack_docker`, which builds the
info of the containers it starts); read by both and by `loadbearing stack status`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.state import state_dir


@dataclass
class StackInfo:
    provider: str
    influx_url: str
    influx_db: str = "loadbearing"
    grafana_url: str | None = None
    pid: int | None = None
    containers: list[str] | None = None
    pid_name: str | None = None  # the process's name and create time when it started:
    pid_create_time: float | None = None  # a PID alone may belong to anything after a reboot


def state_file() -> Path:
    return state_dir() / "stack.json"


def read_state() -> StackInfo | None:
    try:
        data: dict[str, Any] = json.loads(state_file().read_text())
        return StackInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_state(info: StackInfo | None) -> None:
    if info is None:
        state_file().unlink(missing_ok=True)
    else:
        state_file().write_text(json.dumps(asdict(info), indent=2))
