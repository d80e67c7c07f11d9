"""InfluxDB's container command on a real influxd: one user per role, and passwords rotated at start.

The task definition's command (`infra.influxdb.start_script`) runs here with `sh`, the
environment names the task definition gives it, and Debian's influxd in place of the
image's, on loopback ports and a temp data directory standing in for EFS. Twice: the
second start has every password rotated, as after a new secret value, and the data
(users included) kept from the first.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from core.errors import RunError
from core.influx import InfluxClient
from core.state import free_port
from core.store_identity import store_id
from infra.influxdb import influxdb_containers, start_script
from runners.children import wait_answering
from runners.influxd import CONFIG_TEMPLATE
from tests.fixtures.require import need_binary

DB = "loadbearing"
STORE = "fs-0123456789abcdef0"
USERS = {"admin": "admin", "writer": "k6_writer", "reader": "grafana_reader", "controller": "loadbearing_controller"}


def task_environment() -> tuple[dict[str, str], dict[str, str]]:
    """The InfluxDB container's environment and the names of its secrets, from the task definition."""
    (container,) = influxdb_containers(
        log_group="g", region="us-east-1", database=DB, store_id=STORE, usernames=USERS,
        password_value_from={role: f"arn:{role}" for role in USERS})
    assert container["entryPoint"] == ["sh", "-c"] and container["command"] == [start_script()]
    env = {e["name"]: e["value"] for e in container["environment"]}
    secrets = {s["valueFrom"].removeprefix("arn:"): s["name"] for s in container["secrets"]}
    return env, secrets


@contextmanager
def influxdb_task(root: Path, passwords: dict[str, str]) -> Iterator[str]:
    """Run the container command against `root` (kept between runs); yield the server's URL."""
    need_binary("influxd", "influxdb")
    need_binary("curl", "curl")
    env, secrets = task_environment()
    port = free_port()
    config = root / "influxdb.conf"
    config.write_text(CONFIG_TEMPLATE.format(root=root, http_port=port, rpc_port=free_port()))
    env.update({secrets[role]: passwords[role] for role in passwords})
    env.update({"PATH": os.environ["PATH"], "LB_INFLUXD_CONFIG": str(config),
                "LB_SETUP_HTTP": f"127.0.0.1:{free_port()}", "LB_SETUP_RPC": f"127.0.0.1:{free_port()}"})
    log = root / "task.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(["sh", "-c", start_script()], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        problem = wait_answering(proc, f"http://127.0.0.1:{port}/ping", 204, 60.0)
        assert problem is None, f"{problem}: {log.read_text()[-2000:]}"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)  # the script exec'd influxd: ECS's stop reaches it
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "users, passwords and the store marker applied" in log.read_text()
    for password in passwords.values():
        assert password not in log.read_text()  # no password in the task's log


def as_user(url: str, role: str, password: str) -> InfluxClient:
    return InfluxClient(url=url, db=DB, username=USERS[role], password=password)


def test_each_role_gets_only_its_rights_and_a_rotated_password_reaches_the_server(tmp_path: Path) -> None:
    first = {role: f"{role}Pw1aaaaaaaaaaaa" for role in USERS}
    second = {role: f"{role}Pw2bbbbbbbbbbbb" for role in USERS}
    data = tmp_path / "efs"
    data.mkdir()

    with influxdb_task(data, first) as url:
        admin = as_user(url, "admin", first["admin"])
        users = {row["user"]: row["admin"] for row in admin.rows("SHOW USERS")}
        assert users == {"admin": True, "k6_writer": False, "grafana_reader": False, "loadbearing_controller": False}
        writer = as_user(url, "writer", first["writer"])
        writer.write(['http_reqs,testid=t1 value=1i 1700000000000000000'])
        with pytest.raises(RunError, match="not authorized"):
            writer.rows('SELECT count("value") FROM "http_reqs"')        # write-only
        reader = as_user(url, "reader", first["reader"])
        assert reader.rows('SELECT count("value") FROM "http_reqs"')[0]["count"] == 1
        with pytest.raises(RunError, match="HTTP 403"):
            reader.write(['http_reqs,testid=t1 value=1i 1700000000000000001'])  # read-only
        controller = as_user(url, "controller", first["controller"])
        controller.ensure_db()  # not an admin: the database exists, so this is a read, not a refusal
        controller.write(['loadbearing_events,kind=run value=1i 1700000000000000002'])
        assert controller.rows('SELECT count("value") FROM "loadbearing_events"')[0]["count"] == 1
        with pytest.raises(RunError, match="requires admin privilege"):
            controller.query('CREATE DATABASE "other"', method="POST", db=None)
        assert store_id(controller) == STORE
        assert httpx.get(f"{url}/query", params={"q": "SHOW DATABASES"}).status_code == 401  # auth is on

    with influxdb_task(data, second) as url:   # same data directory, every password rotated
        for role in USERS:
            with pytest.raises(RunError, match="HTTP 401"):
                as_user(url, role, first[role]).query("SHOW MEASUREMENTS")
        reader = as_user(url, "reader", second["reader"])
        assert reader.rows('SELECT count("value") FROM "http_reqs"')[0]["count"] == 1   # data kept
        as_user(url, "writer", second["writer"]).write(['http_reqs,testid=t2 value=1i 1700000000000000003'])
        assert reader.rows('SELECT count("value") FROM "http_reqs"')[0]["count"] == 2
        assert store_id(reader) == STORE
        marker_points = as_user(url, "admin", second["admin"]).rows('SELECT count("id") FROM "loadbearing_store"')
        assert marker_points[0]["count"] == 1  # written again at every start, still one point
