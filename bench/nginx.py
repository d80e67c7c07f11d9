"""A private nginx on a free loopback port: the benchmarks' fast target, and the tests'
reverse proxy and load balancer (tests/fixtures/nginx.py, tests/gallery).

`start(work, http)` writes one nginx.conf whose files (pid, logs, temp dirs) all live in
`work`, fills the inside of its `http {}` block with `http(port)`, starts nginx in the
foreground as a child that dies with this process (PR_SET_PDEATHSIG), and waits until a
GET of `probe` answers. A port taken between choosing and binding it gets another try.
`Nginx` stops it (also as a context manager).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from core.state import free_port
from runners.children import die_with_parent

PACKAGE = "nginx-light"  # Debian's smallest nginx (or 'nginx')

CONFIG = """\
daemon off;
master_process {master};
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections {connections}; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{http}
}}
"""


def binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def config(work: Path, http: str, *, master: bool = False, connections: int = 1024) -> str:
    """nginx.conf with every file in `work`; `http` is the inside of its `http {}` block.

    `master`: a master process with one worker (as nginx runs in production) instead of one
    process doing both; run as root, the worker stays root so it can use `work`."""
    user = "user root;" if os.geteuid() == 0 else ""
    return CONFIG.format(dir=work, master="on" if master else "off", user=user, connections=connections, http=http)


@dataclass
class Nginx:
    work: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """nginx's processes (with a master: it and its worker)."""
        try:
            return [self.proc.pid, *(c.pid for c in psutil.Process(self.proc.pid).children())]
        except psutil.Error:
            return [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(url: str) -> bool:
    """nginx answers, and whatever it proxies to does (a 401 of a door that wants a password is an answer)."""
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


def start(work: Path, http: Callable[[int], str], *, probe: str = "/", master: bool = False,
          connections: int = 1024, wait_s: float = 20.0, attempts: int = 3) -> Nginx:
    """nginx with its config and files under `work`, listening where `http(port)` says; returns
    once GET `probe` answers (below 500). RuntimeError with nginx's own words when it does not."""
    found = binary()
    if found is None:
        raise RuntimeError(f"nginx is not installed (Debian package '{PACKAGE}' or 'nginx')")
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    last = ""
    for _ in range(attempts):
        port = free_port()
        conf.write_text(config(work, http(port), master=master, connections=connections))
        proc = subprocess.Popen([found, "-p", str(work), "-c", str(conf), "-e", str(work / "error.log")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=die_with_parent)
        server = Nginx(work=work, port=port, proc=proc)
        deadline = time.monotonic() + wait_s
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers(server.url + probe):
                return server
            time.sleep(0.05)
        server.stop()
        last = (proc.stderr.read().decode(errors="replace") if proc.stderr else "")[-500:]
        log = work / "error.log"
        last += log.read_text(errors="replace")[-1500:] if log.exists() else ""
    raise RuntimeError(f"nginx did not start: {last}")
