"""Backends run k6 runners somewhere: `process` (local k6), `docker`, `ecs`.

One protocol, split by lifecycle phase the way k6-operator splits its runners:

- `initialize(specs)`  start every runner of a phase *paused* (k6 `--paused`), and
  return once each has initialised its VUs and waits for the go signal. Raises
  `RunError` (exit 4) if one fails to get ready; whatever was started is stopped.
- `start(runners)`     release all runners together (concurrently, not one after
  another); returns the wall-clock time (epoch seconds) the go signal was sent.
- `poll(runners)`      non-blocking: each runner's exit code, or None while running.
- `stop(runners)`      graceful stop (k6 gets SIGINT and writes its summary), then a
  hard kill after a grace period. Idempotent; safe to call on runners that ended.
- `cleanup_stale()`    find and remove runners left by a controller that died
  (pid files, container labels, tagged tasks); returns a description of each.

A backend never sends load itself and never decides about allow_hosts: the
controller checks the plan before calling `initialize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.rundir import RunDir, RunnerFiles, runner_name


@dataclass(frozen=True)
class RunnerSpec:
    """Everything needed to start runner `index` of `count` for one module."""

    run_id: str
    module: str
    service: str
    index: int
    count: int
    script: Path                 # the module's k6 script (absolute)
    config: dict[str, Any]       # k6 JSON config: scenarios, tags, safety options
    tags: dict[str, str]         # per-sample tags (testid, strategy, module, service, runner)
    env: dict[str, str] = field(repr=False, default_factory=dict)  # BASE_URL, output creds
    influx_out: str | None = None  # `--out influxdb=` value, without credentials
    run_dir: RunDir = field(default_factory=lambda: RunDir("."))  # where this runner's files go (config, summary, log)
    scripts_root: Path | None = None  # the plan's directory: scripts may import files from anywhere in it
    entry: Path | None = None      # the generated entry script that imports `script` (runners.k6_entry)

    @property
    def name(self) -> str:
        return runner_name(self.module, self.index)

    @property
    def files(self) -> RunnerFiles:
        return self.run_dir.runner_files(self.name)

    @property
    def k6_script(self) -> Path:
        """The file k6 runs: the entry script when there is one, else the module's script."""
        return self.entry if self.entry is not None else self.script


@dataclass
class Runner:
    """A started runner. `handle` is backend-specific (a Popen, a container, a task ARN)."""

    spec: RunnerSpec
    handle: Any = None
    api: str | None = None            # k6 REST API base URL, when the backend exposes it
    exit_code: int | None = None
    failure: str | None = None        # why it failed, in words, when it did
    started_at: float | None = None
    ended_at: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    name: str

    def initialize(self, specs: list[RunnerSpec]) -> list[Runner]: ...

    def start(self, runners: list[Runner]) -> float: ...

    def poll(self, runners: list[Runner]) -> list[int | None]: ...

    def stop(self, runners: list[Runner], grace_s: float = 10.0) -> None: ...

    def cleanup_stale(self) -> list[str]: ...


def get_backend(name: str, **options: Any) -> Backend:
    """The backend called `name`; raises BadInput for an unknown one."""
    from core.errors import BadInput

    if name == "process":
        from runners.backends.process import ProcessBackend

        return ProcessBackend(**options)
    if name == "docker":
        from runners.backends.docker import DockerBackend

        return DockerBackend(**options)
    if name == "ecs":
        from runners.backends.ecs import EcsBackend

        return EcsBackend(**options)
    raise BadInput(f"--backend {name!r} is not a backend; use process, docker or ecs")


__all__ = ["Backend", "Runner", "RunnerSpec", "get_backend"]
