"""The controller reaches the stack's InfluxDB through another door than the runners, and only that store.

The runners (LocalFargate running the real task wrapper and k6) write to the stack
output `influxdb_url`, here the test influxd itself; the controller reads and writes
through `influxdb_controller_url`, here a real nginx that proxies the same influxd under
a path, as the load balancer does on AWS. Its credentials come from Secrets Manager
(moto). A URL that is not the runners' store is refused before any task starts.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from core.influx import InfluxClient
from core.store_identity import marker_line
from loadbearing.cli import main
from tests.ecs.local_fargate import LocalFargate
from tests.ecs.stack import EcsStack, register_task_definition
from tests.fixtures.nginx import PROXY_USERS, Proxy
from tests.fixtures.runs import write_plan
from tests.fixtures.target import Target

CONTROLLER_PASSWORD = PROXY_USERS["loadbearing_controller"]


def _run(plan: Path, outputs: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "parallel", "--plan", str(plan), "--backend", "ecs", "--stack-outputs", str(outputs),
            "--out-dir", str(tmp_path / "runs"), "--runners", "1", *extra]


def outputs_secret(outputs: Path) -> str:
    return str(json.loads(outputs.read_text())["influxdb_controller_secret_arn"])


def _controller_secret(stack: EcsStack) -> str:
    sm = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=stack.endpoint)
    secret = sm.create_secret(Name=f"lb-influxdb-controller-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(
        {"username": "loadbearing_controller", "password": CONTROLLER_PASSWORD}))
    return str(secret["ARN"])


def test_runners_write_through_one_url_and_the_controller_reads_through_another(
        ecs_stack: EcsStack, influx: InfluxClient, influx_proxy_with_auth: Proxy, target: Target, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The door asks for the controller's user, as the stack's InfluxDB does: the run gets it from
    Secrets Manager, and so does `recommend` reading the run back later (run.json names the
    secret, never the password)."""
    influx_proxy = influx_proxy_with_auth
    # the runners' task definition brings the write-only user, as the program's does
    writer_td = register_task_definition(
        ecs_stack.ecs, f"lb-k6-writer-{uuid.uuid4().hex[:6]}", ecs_stack.log_group,
        environment=[{"name": "K6_INFLUXDB_USERNAME", "value": "k6_writer"}],
        secrets=[{"name": "K6_INFLUXDB_PASSWORD",
                  "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:lb-influxdb-writer"}])
    outputs = ecs_stack.write_outputs(influxdb_controller_url=influx_proxy.url, task_definition_arn=writer_td,
                                      influxdb_controller_username="loadbearing_controller",
                                      influxdb_controller_secret_arn=_controller_secret(ecs_stack))
    plan = write_plan(tmp_path, target.url, [{"name": "api", "rate": 10, "max_vus": 2, "duration": "2s"}])
    with LocalFargate(ecs_stack, tmp_path / "fargate") as fargate:
        code = main(_run(plan, outputs, tmp_path))  # no --influx-url: the stack's door is the default
    out = capsys.readouterr()
    assert not fargate.errors, fargate.errors
    assert code == 0, out.err
    record = json.loads((Path(out.out.strip().splitlines()[-1]) / "run.json").read_text())
    assert record["status"] == "passed" and record["metrics"]["complete"] is True
    assert record["modules"][0]["requests"] > 0
    assert (record["influx"]["url"], record["influx"]["db"]) == (influx_proxy.url, influx.db)

    # The runner wrote to influxdb_url directly ...
    (task,) = ecs_stack.tasks()
    script = task["overrides"]["containerOverrides"][0]["command"][0]
    assert f"--out influxdb={influx.url}/{influx.db}" in script
    # ... and the controller went through the proxy, as the stack's controller user from Secrets Manager.
    seen = influx_proxy.requests()
    assert any(r.startswith("GET /influx/query") for r in seen), seen
    assert any(r.startswith("POST /influx/write") for r in seen), seen   # phase/module events
    assert all("consistency=" not in r for r in seen)                      # never k6's writes
    log = influx_proxy.access_log.read_text()
    assert " loadbearing_controller [" in log   # nginx logs the basic-auth user
    for text in (out.out, out.err, json.dumps(record), json.dumps(task, default=str)):
        assert CONTROLLER_PASSWORD not in text   # not in records, messages, nor the task's overrides
    assert "K6_INFLUXDB_USERNAME" not in json.dumps(task["overrides"])

    # Reading the run back (deploy.md: recommend, then verify) goes through the same door as the same user.
    assert record["influx"]["credential_secret"] == outputs_secret(outputs)
    before = len(influx_proxy.requests())
    run_dir = Path(out.out.strip().splitlines()[-1])
    assert main(["recommend", str(run_dir), "--json"]) == 0, capsys.readouterr().err
    (endpoint,) = json.loads(capsys.readouterr().out)["endpoints"]   # the store's numbers, through the door
    assert endpoint["requests"] == record["modules"][0]["requests"]
    assert any(r.startswith("GET /influx/query") for r in influx_proxy.requests()[before:])


def test_the_controllers_user_is_never_handed_to_runners(ecs_stack: EcsStack, influx_proxy: Proxy,
                                                         target: Target, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A task definition without runner credentials would need the controller's (read-write) user
    in every RunTask override: refused before any task starts."""
    outputs = ecs_stack.write_outputs(influxdb_controller_url=influx_proxy.url,
                                      influxdb_controller_username="loadbearing_controller",
                                      influxdb_controller_secret_arn=_controller_secret(ecs_stack))
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "2s"}])
    code = main(_run(plan, outputs, tmp_path))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "is never handed to them" in err and CONTROLLER_PASSWORD not in err
    assert not ecs_stack.tasks()


def test_an_influx_url_that_is_not_the_runners_store_is_refused(ecs_stack: EcsStack, influx: InfluxClient,
                                                                influx_proxy: Proxy, target: Target,
                                                                tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "2s"}])
    outputs = ecs_stack.write_outputs(influxdb_controller_url=influx_proxy.url)

    # the stack's database, but another store: its marker names another file system
    other = InfluxClient.from_url(influx.url, db=f"other_{uuid.uuid4().hex[:8]}")
    other.ensure_db()
    other.write([marker_line("fs-someone-else")])
    mismatched = {
        f"{influx_proxy.url}/{other.db}": "(database ",                      # another database
        f"http://127.0.0.1:{influx.url.rsplit(':', 1)[1]}/{influx.db}x": "(database ",
    }
    outputs_other = ecs_stack.write_outputs(influxdb_controller_url=influx_proxy.url, influxdb_database=other.db)
    code = main(_run(plan, outputs_other, tmp_path))   # the door leads to a store with another marker
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"is not the store the runners write to ({influx.url}/{other.db})" in err
    assert "'fs-someone-else'" in err and f"'{ecs_stack.outputs['influxdb_store_id']}'" in err

    for url in mismatched:
        code = main(_run(plan, outputs, tmp_path, "--influx-url", url))
        err = capsys.readouterr().err
        assert code == 2, err
        assert "is not the store the runners write to" in err
        assert url.rsplit("/", 1)[0] in err and f"{influx.url}/{influx.db}" in err   # both URLs named

    # a database of the right name on a store without the stack's marker
    bare = InfluxClient.from_url(influx.url, db=influx.db)
    bare.query('DROP MEASUREMENT "loadbearing_store"')
    code = main(_run(plan, outputs, tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "it has no store marker (loadbearing_store)" in err, err
    assert not ecs_stack.tasks()   # refused before any task


def test_a_stack_without_a_controller_door_says_how_to_open_one(ecs_stack: EcsStack, target: Target,
                                                                tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "2s"}])
    code = main(_run(plan, ecs_stack.outputs_path, tmp_path))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "resolves only inside the VPC" in err and "loadbearing:operatorCidrs" in err
    assert not ecs_stack.tasks()
