"""A private `influxd` (InfluxDB 1.x) on loopback: config, start, wait, stop.

Used by `loadbearing stack up --provider process` and by the test fixtures. The
config binds only 127.0.0.1, disables reporting, and lifts `max-body-size` so that
k6's batches are never refused ("Request Entity Too Large" loses samples).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.errors import RunError
from core.state import free_port
from runners.children import die_with_parent, stop_process, wait_answering

CONFIG_TEMPLATE = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  max-series-per-database = 0
  max-values-per-tag = 0
  cache-max-memory-size = 1073741824

[coordinator]
  max-select-point = 0
  max-select-series = 0
  query-timeout = "60s"
  log-queries-after = "0s"

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  write-tracing = false
  max-body-size = 0
  max-concurrent-write-limit = 0
  max-enqueued-write-limit = 0

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"""


def influxd_binary() -> str | None:
    return shutil.which("influxd") or (
        "/usr/bin/influxd" if Path("/usr/bin/influxd").exists() else None
    )


@dataclass
class Influxd:
    root: Path
    http_port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self, timeout: float = 10.0) -> None:
        stop_pid(self.pid, timeout)


def write_config(root: Path, http_port: int, rpc_port: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "influxdb.conf"
    cfg.write_text(CONFIG_TEMPLATE.format(root=root, http_port=http_port, rpc_port=rpc_port))
    return cfg


def start_influxd(root: Path, http_port: int | None = None, *, detach: bool = False,
                  wait_s: float = 30.0, tied: bool = False) -> Influxd:
    """Start influxd with its own config and data under `root`; wait until /ping answers.

    `detach`: its own session (the local stack outlives the command); `tied`: it dies with
    this process (benchmarks).
    """
    binary = influxd_binary()
    if binary is None:
        raise RunError(
            "influxd is not installed; install Debian's 'influxdb' package "
            "(apt-get install influxdb) or pass --influx-url to an InfluxDB you run"
        )
    port = http_port or free_port()
    cfg = write_config(root, port, free_port())
    log = open(root / "influxd.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [binary, "-config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=detach,
        env={**os.environ, "INFLUXDB_REPORTING_DISABLED": "true"},
        preexec_fn=die_with_parent if tied else None,
    )
    log.close()
    server = Influxd(root=root, http_port=port, pid=proc.pid)
    problem = wait_answering(proc, f"{server.url}/ping", 204, wait_s)
    if problem is None:
        return server
    if proc.poll() is not None:
        tail = (root / "influxd.log").read_text(errors="replace")[-800:]
        raise RunError(f"influxd exited with code {proc.returncode} at start:\n{tail}")
    server.stop()
    raise RunError(f"influxd did not answer /ping on {server.url} within {wait_s:.0f}s (log: {root}/influxd.log)")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
        return state != "Z"
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL a process this one started (and has not reaped, so the
    PID is still its own); reaps it."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    stop_process(proc, timeout)
