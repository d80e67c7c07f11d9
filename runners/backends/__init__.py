"""Backends run k6 runners somewhere: `process` (local k6), `docker`, `ecs`.

One protocol (`Backend`), split by lifecycle phase the way k6-operator splits its runners,
plus two hooks the controller and the CLI call before anything starts, so that neither
needs to know which backend it drives:

- `plan_fleet(plan, phases, runners)`  the runners per module (`runners` None: `--runners
  auto`, sized by the backend) and the backend's cost estimate; raises BadInput (exit 2)
  when the plan cannot run as asked (too many runners, a cost above `--max-cost`, a phase
  it cannot size such as a capacity ramp, `Phase.ramp`, ...).
  Called once, by `runners.controller.prepare`.
- `metrics_store(influx_url)`  the InfluxDB client the run must use when the backend's
  runners can only write to a store of its own (the ecs stack's), else None: the caller
  resolves `--influx-url`, LOADBEARING_INFLUX_URL or the local stack.
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

A `Runner` carries `pid`, the local process id of its k6 when the backend has one (the
process backend's child, a docker container's main process; None for a Fargate task):
`runners.generator` samples its CPU.

A backend never sends load itself and never decides about allow_hosts: the
controller checks the plan before calling `initialize`. Each backend's options are a
typed dataclass below (`BackendOptions`); `runners.backends.registry.get_backend` builds
the backend they name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from core.errors import BadInput
from core.influx import InfluxClient
from core.plan import Plan
from core.rundir import RunDir, RunnerFiles, runner_name
from runners.fleet import MAX_RUNNERS
from runners.strategies import Phase

H = TypeVar("H")  # a backend's runner handle


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
class Runner(Generic[H]):
    """A started runner. `handle` is the backend's own, typed per backend: the process backend's
    `subprocess.Popen`, the docker backend's container, the ecs backend's task ARN."""

    spec: RunnerSpec
    handle: H
    api: str | None = None            # k6 REST API base URL, when the backend exposes it
    exit_code: int | None = None
    failure: str | None = None        # why it failed, in words, when it did
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None            # the local process id of its k6, when the backend has one
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fleet:
    """What `plan_fleet` decided: runners per module, and the backend's cost estimate (USD; None
    when running costs nothing it can price)."""

    runners: int
    estimate_usd: float | None = None


def fixed_fleet(backend: str, runners: int | None) -> Fleet:
    """`plan_fleet` for a backend that runs the number of runners it is given."""
    if runners is None:
        raise BadInput(f"--runners auto: the {backend} backend runs as many runners as you give it; give a number "
                       f"(1 to {MAX_RUNNERS})")
    return Fleet(runners)


@dataclass(frozen=True)
class ProcessOptions:
    name: ClassVar[str] = "process"
    k6_path: str | None = None     # default: runners.k6.k6_binary()


@dataclass(frozen=True)
class DockerOptions:
    name: ClassVar[str] = "docker"
    base_url: str | None = None    # the engine; default DOCKER_HOST, else the default socket
    image: str | None = None       # default: runners.images.ensure_k6_image
    pull: str | None = None        # default: LOADBEARING_DOCKER_PULL


@dataclass(frozen=True)
class EcsOptions:
    name: ClassVar[str] = "ecs"
    stack_outputs: Path | None = None   # `pulumi stack output --json`; default LOADBEARING_STACK_OUTPUTS
    max_cost: float | None = None       # refuse (exit 2) a run estimated above this, USD


BackendOptions = ProcessOptions | DockerOptions | EcsOptions


@runtime_checkable
class Backend(Protocol[H]):
    name: str

    def plan_fleet(self, plan: Plan, phases: list[Phase], runners: int | None) -> Fleet: ...

    def metrics_store(self, influx_url: str | None) -> InfluxClient | None: ...

    def initialize(self, specs: list[RunnerSpec]) -> list[Runner[H]]: ...

    def start(self, runners: list[Runner[H]]) -> float: ...

    def poll(self, runners: list[Runner[H]]) -> list[int | None]: ...

    def stop(self, runners: list[Runner[H]], grace_s: float = 10.0) -> None: ...

    def cleanup_stale(self) -> list[str]: ...


__all__ = ["Backend", "BackendOptions", "DockerOptions", "EcsOptions", "Fleet", "ProcessOptions", "Runner",
           "RunnerSpec", "fixed_fleet"]
