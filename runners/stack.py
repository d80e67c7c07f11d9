"""The local stack: InfluxDB (and Grafana with docker) that runs store their samples in.

Providers: `process` (a private influxd under the state dir, loopback only) and
`docker` (containers; see runners/stack_docker.py). The state file
`<state dir>/stack.json` records what is up (for the process provider: influxd's PID with
its name and create time, checked before any signal); `resolve_store` is how `run` finds
its store: --influx-url, then LOADBEARING_INFLUX_URL, then the local stack (started
on demand with the process provider). `recorded_store` is how a finished run finds it
again: a run whose store was the local stack brings that stack up again, wherever it listens.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import psutil
from rich.markup import escape

from core.console import console
from core.errors import BadInput, RunError
from core.influx import InfluxClient
from core.rundir import StoreRecord
from core.state import state_dir
from runners.children import ProcessIdentity, stop_process
from runners.influxd import start_influxd
from runners.stack_docker import docker_down, docker_up, engine_available
from runners.stack_state import StackInfo, read_state, write_state


def _stack_root() -> Path:
    return state_dir() / "stack" / "influxd"


def stack_influxd(info: StackInfo) -> psutil.Process | None:
    """The stack's influxd if it still runs: same PID, name and create time as recorded (a
    state file from before these were recorded: an influxd started with the stack's config)."""
    if info.provider != "process" or info.pid is None:
        return None
    if info.pid_name is not None and info.pid_create_time is not None:
        return ProcessIdentity(info.pid, info.pid_name, info.pid_create_time).process()
    try:
        proc = psutil.Process(info.pid)
        ours = proc.name() == "influxd" and str(_stack_root() / "influxdb.conf") in proc.cmdline()
        return proc if ours and proc.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


def _alive(info: StackInfo) -> bool:
    if info.provider == "process" and stack_influxd(info) is None:
        return False
    try:
        InfluxClient.from_url(info.influx_url, db=info.influx_db).ping()
    except RunError:
        return False
    return True


def default_provider() -> str:
    """docker when an engine answers, else process."""
    return "docker" if engine_available() else "process"


def up(provider: str | None = None, grafana: bool | None = None) -> StackInfo:
    provider = provider or default_provider()
    current = read_state()
    if current is not None and _alive(current):
        if current.provider != provider:
            raise BadInput(f"a {current.provider} stack is already up; 'loadbearing stack down' first")
        return current
    if provider == "process":
        server = start_influxd(_stack_root(), detach=True)
        me = ProcessIdentity.of(server.pid)
        info = StackInfo(provider="process", influx_url=server.url, pid=server.pid, pid_name=me.name,
                         pid_create_time=me.create_time)
    elif provider == "docker":
        info = docker_up(grafana=grafana)
    else:
        raise BadInput(f"--provider {provider!r}: use process or docker")
    InfluxClient.from_url(info.influx_url, db=info.influx_db).ensure_db()
    write_state(info)
    return info


def down(purge: bool = False) -> StackInfo | None:
    info = read_state()
    if info is None:
        if purge:  # leftovers of a stack whose state file is gone
            shutil.rmtree(state_dir() / "stack", ignore_errors=True)
            if engine_available():
                docker_down(purge=True)
        return None
    if info.provider == "process":
        proc = stack_influxd(info)
        if proc is not None:
            stop_process(proc)
        elif info.pid is not None and psutil.pid_exists(info.pid):
            console.print(f"[yellow]pid {info.pid} is no longer the stack's influxd (it is "
                          f"{escape(_describe(info.pid))}): not signalled[/]")
        if purge:
            shutil.rmtree(state_dir() / "stack", ignore_errors=True)
    elif info.provider == "docker":
        docker_down(purge=purge)
    write_state(None)
    return info


def _describe(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        started = datetime.fromtimestamp(proc.create_time(), UTC).isoformat(timespec="seconds")
        return f"{proc.name()!r}, started {started}"
    except psutil.Error:
        return "gone"


def status() -> tuple[StackInfo | None, bool]:
    info = read_state()
    return info, (info is not None and _alive(info))


def resolve_store(flag: str | None) -> tuple[InfluxClient, str | None]:
    """The run's metrics store: flag, env, else the local stack (started if needed), and the
    local stack's provider when it is the store (None otherwise)."""
    url = flag or os.environ.get("LOADBEARING_INFLUX_URL")
    if url:
        return InfluxClient.from_url(url), None
    info = read_state()
    if info is None or not _alive(info):
        console.print("[dim]no --influx-url or LOADBEARING_INFLUX_URL: starting the local stack "
                      "('loadbearing stack down' stops it)[/]")
        info = up("process")
    return InfluxClient.from_url(info.influx_url, db=info.influx_db), info.provider


def recorded_store(store: StoreRecord) -> InfluxClient:
    """The store a finished run recorded (run.json's `influx`), reachable now.

    A run whose store was the local stack finds that stack wherever it listens now, and
    brings it up again when it is down (its data is kept across `stack down`); any other
    store is the recorded URL, with credentials from the environment, else from the Secrets
    Manager secret the run's controller read them from (`credential_secret`: the ecs
    backend's stack); never from run.json.
    """
    if store.stack is None:
        if not store.url:
            raise BadInput("the run record names no metrics store (influx.url); it cannot be read back")
        client = InfluxClient.from_url(store.url, db=store.db or None)
        if store.credential_secret:
            _login_from_secret(client, store.credential_secret)
        return client
    info = read_state()
    if info is None or not _alive(info):
        console.print(f"[dim]the run's samples are in the local stack: starting it ({escape(store.stack)} "
                      "provider; 'loadbearing stack down' stops it)[/]")
        info = up(store.stack)
    elif info.provider != store.stack:
        raise BadInput(f"the run's samples are in the local {store.stack} stack, but a {info.provider} stack is "
                       "up; 'loadbearing stack down', then try again")
    return InfluxClient.from_url(info.influx_url, db=store.db or info.influx_db)


def _login_from_secret(client: InfluxClient, arn: str) -> None:
    """Give `client` the InfluxDB user a run on AWS read from Secrets Manager (the AWS SDK is the
    `ecs` extra, imported only here: every command that reads a run imports this module)."""
    try:
        from runners.backends.ecs_store import login_from_secret
    except ImportError:
        raise BadInput(f"the run's InfluxDB user is in the AWS Secrets Manager secret {arn}: install the AWS SDK "
                       "(pip install 'loadbearing[ecs]'), or give the user in LOADBEARING_INFLUX_USERNAME and "
                       "LOADBEARING_INFLUX_PASSWORD") from None
    login_from_secret(client, arn)
