"""The servers a benchmark starts and stops: the fast target (a private nginx, bench.nginx), a private
influxd (`start_influx`, `new_db`, `stored_count`), a Prometheus remote-write receiver
(`promrw_receiver`), the demo's services (`demo_services`), and `services` for a block.
Every one of them dies with the benchmark if it is killed (PR_SET_PDEATHSIG; the demo
services watch their parent).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import nginx as nginx_server
from bench.nginx import Nginx
from bench.watch import cpu_seconds
from core import measurements as names
from core.influx import InfluxClient, quote_literal
from core.state import free_port
from demo.launcher import ServiceHandle, start_service
from runners.children import die_with_parent, wait_answering
from runners.influxd import Influxd, start_influxd

NGINX_BODY = '{"ok":true}'

# The fast target: 200 and a small JSON body on every path, no access log, long keep-alive.
FAST_TARGET = """\
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}"""


def start_nginx(root: Path, body: str = NGINX_BODY) -> Nginx:
    """The fast target: a private nginx (a master and one worker) answering 200 on every path."""
    return nginx_server.start(root, lambda port: FAST_TARGET.format(port=port, body=body.replace("'", "\\'")),
                       master=True, connections=4096, wait_s=10)


def start_influx(root: Path, wait_s: float = 30.0) -> Influxd:
    """A private influxd under `root` on a free loopback port, with the config of
    `runners.influxd` (max-body-size 0, loopback only), that dies with this process."""
    return start_influxd(root, wait_s=wait_s, tied=True)


@dataclass
class PromRwReceiver:
    """`bench.promrw` in a child process (its CPU counted apart from the benchmark's)."""

    url: str
    proc: subprocess.Popen[bytes]

    def summary(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/summary", timeout=10.0).json())

    def cpu_s(self) -> float:
        return cpu_seconds([self.proc.pid])


@contextlib.contextmanager
def promrw_receiver(wait_s: float = 15.0) -> Iterator[PromRwReceiver]:
    """A Prometheus remote-write receiver on a free loopback port, stopped on exit."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.promrw", "--port", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent)
    receiver = PromRwReceiver(f"http://127.0.0.1:{port}", proc)
    try:
        problem = wait_answering(proc, f"{receiver.url}/summary", 200, wait_s)
        if problem is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None and proc.stderr else ""
            raise RuntimeError(f"bench.promrw {problem}: {err[-800:]}")
        yield receiver
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def new_db(influx: Influxd, prefix: str) -> InfluxClient:
    client = InfluxClient.from_url(influx.url, db=f"{prefix}_{uuid.uuid4().hex[:8]}")
    client.ensure_db()
    return client


def stored_count(client: InfluxClient, testid: str, measurement: str = names.HTTP_REQS) -> int:
    """How many samples of `measurement` InfluxDB holds for `testid` (counted on the server)."""
    rows = client.rows(f'SELECT count("value") FROM "{measurement}" WHERE "{names.TESTID}" = {quote_literal(testid)}')
    return int(rows[0]["count"]) if rows else 0


@contextlib.contextmanager
def services(root: Path, *, nginx: bool = True, influx: bool = True) -> Iterator[tuple[Nginx | None, Influxd | None]]:
    """Start the fast target and/or a private influxd for the duration of a block."""
    ng = start_nginx(root / "nginx") if nginx else None
    try:
        ix = start_influx(root / "influxd") if influx else None
        try:
            yield ng, ix
        finally:
            if ix is not None:
                ix.stop()
    finally:
        if ng is not None:
            ng.stop()


@contextlib.contextmanager
def demo_services(root: Path,
                  profile_env: dict[str, str] | None = None) -> Iterator[tuple[ServiceHandle, ServiceHandle]]:
    """The demo's core-api and profile-api on loopback (profile-api with `profile_env` added to
    its environment, logs under `root`); both stop when the block ends."""
    with start_service("core-api", log_path=root / "core-api.log") as core, \
            start_service("profile-api", env=profile_env, log_path=root / "profile-api.log") as profile:
        yield core, profile
