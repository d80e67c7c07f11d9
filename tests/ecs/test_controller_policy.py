"""The controller's IAM policy (stack output `controller_policy_arn`) covers exactly what the backend calls.

The backend runs for real against moto_server, through the controller's door (a real
nginx in front of the test influxd) with its credential from Secrets Manager, and cleans
up a stale task left by a dead controller; botocore's own hooks record every call it makes
(tests/ecs/aws_calls.py). Each call becomes the IAM request AWS would authorise: the action,
the resource ARN, and the condition keys the policy uses (plus what RunTask implies:
iam:PassRole on the task definition's two roles, ecs:TagResource on the task it tags).
The policy document the program attaches (`infra.iam_documents.controller_policy`, given
this moto stack's ARNs) must allow every one of them, and name no action and no resource
that none of them needs.
"""

from __future__ import annotations

import fnmatch
import json
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from core.influx import InfluxClient
from infra.iam_documents import controller_policy
from loadbearing.cli import main
from tests.ecs.aws_calls import Call, record_calls
from tests.ecs.local_fargate import LocalFargate
from tests.ecs.stack import EcsStack, register_task_definition
from tests.fixtures.nginx import Proxy
from tests.fixtures.runs import write_plan
from tests.fixtures.target import Target

ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass(frozen=True)
class Request:
    """What IAM authorises for one call: action, resource ARN, condition context."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


def requests_for(calls: list[Call], roles: list[str], task_arns: list[str]) -> set[Request]:
    """The IAM requests behind the recorded calls (see the module docstring)."""
    out: set[Request] = set()
    for call in calls:
        p = call.params
        cluster = (("ecs:cluster", p["cluster"]),) if "cluster" in p else ()
        if call.action == "ecs:RunTask":
            out.add(Request(call.action, p["taskDefinition"], cluster))
            out.update(Request("iam:PassRole", role, (("iam:PassedToService", "ecs-tasks.amazonaws.com"),))
                       for role in roles)
            if p.get("tags"):
                out.update(Request("ecs:TagResource", arn, (("ecs:CreateAction", "RunTask"),)) for arn in task_arns)
        elif call.action == "ecs:DescribeTasks":
            out.update(Request(call.action, arn, cluster) for arn in p["tasks"])
        elif call.action == "ecs:StopTask":
            out.add(Request(call.action, p["task"], cluster))
        elif call.action in ("ecs:ListTasks", "ecs:DescribeTaskDefinition"):
            out.add(Request(call.action, "*", cluster))
        elif call.service == "s3":
            out.add(Request(call.action, f"arn:aws:s3:::{p['Bucket']}/{p['Key']}"))
        elif call.action == "logs:GetLogEvents":
            out.add(Request(call.action, f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{p['logGroupName']}"
                                         f":log-stream:{p['logStreamName']}"))
        elif call.action == "secretsmanager:GetSecretValue":
            out.add(Request(call.action, p["SecretId"]))
        else:
            raise AssertionError(f"the backend made a call this test does not know: {call.action}")
    return out


def _as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def _conditions_hold(statement: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, pairs in (statement.get("Condition") or {}).items():
        assert operator in ("ArnEquals", "StringEquals"), operator
        for key, value in pairs.items():
            if context.get(key) != value:
                return False
    return True


def allowing(policy: dict[str, Any], request: Request) -> list[str]:
    """The Sids of the Allow statements that grant `request`."""
    context = dict(request.context)
    return [s["Sid"] for s in policy["Statement"]
            if s["Effect"] == "Allow" and request.action in _as_list(s["Action"])
            and any(fnmatch.fnmatchcase(request.resource, r) for r in _as_list(s["Resource"]))
            and _conditions_hold(s, context)]


def _stale_task(stack: EcsStack, td: str) -> str:
    """A runner task whose controller (a pid that has ended) died, as cleanup_stale finds them."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    resp = stack.ecs.run_task(
        cluster=stack.cluster, taskDefinition=td, count=1, startedBy="loadbearing/old-run",
        capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
        networkConfiguration={"awsvpcConfiguration": {"subnets": stack.outputs["subnet_ids"],
                                                      "securityGroups": stack.outputs["security_group_ids"]}},
        tags=[{"key": "loadbearing:controller", "value": f"{socket.gethostname()}:{gone.pid}"},
              {"key": "loadbearing:runner", "value": "api-0"}])
    return str(resp["tasks"][0]["taskArn"])


def test_the_policy_allows_every_call_the_backend_makes_and_nothing_more(
        ecs_stack: EcsStack, influx: InfluxClient, influx_proxy: Proxy, target: Target, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    iam = boto3.client("iam", region_name=REGION, endpoint_url=ecs_stack.endpoint)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                                "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]})
    suffix = uuid.uuid4().hex[:6]
    roles = [iam.create_role(RoleName=f"lb-{kind}-{suffix}", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
             for kind in ("task", "execution")]
    td = register_task_definition(
        ecs_stack.ecs, f"lb-k6-policy-{suffix}", ecs_stack.log_group,
        environment=[{"name": "K6_INFLUXDB_USERNAME", "value": "k6_writer"}],
        secrets=[{"name": "K6_INFLUXDB_PASSWORD", "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:w"}],
        task_role_arn=roles[0], execution_role_arn=roles[1])
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=ecs_stack.endpoint)
    secret = sm.create_secret(Name=f"lb-controller-{suffix}", SecretString=json.dumps(
        {"username": "loadbearing_controller", "password": "Controller-pw-123456"}))["ARN"]
    outputs = ecs_stack.write_outputs(task_definition_arn=td, influxdb_controller_url=influx_proxy.url,
                                      influxdb_controller_username="loadbearing_controller",
                                      influxdb_controller_secret_arn=secret)
    stale = _stale_task(ecs_stack, td)

    calls = record_calls(monkeypatch)
    plan = write_plan(tmp_path, target.url, [{"name": "api", "rate": 5, "max_vus": 1, "duration": "2s"}])
    with LocalFargate(ecs_stack, tmp_path / "fargate") as fargate:
        code = main(["run", "parallel", "--plan", str(plan), "--backend", "ecs", "--runners", "1",
                     "--stack-outputs", str(outputs), "--out-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 0, err + json.dumps(fargate.outputs)[-1500:]
    assert f"stopped stale Fargate task {stale.rsplit('/', 1)[-1]}" in err

    # the backend is built once for the run: one look at the task definition
    assert len(calls.of("DescribeTaskDefinition")) == 1
    started = [t["taskArn"] for t in ecs_stack.tasks() if t["taskArn"] != stale]
    wanted = requests_for(calls.calls, roles, started)
    actions = {r.action for r in wanted}
    # the run exercised every kind of call the backend makes
    assert actions == {"ecs:RunTask", "ecs:TagResource", "iam:PassRole", "ecs:DescribeTasks", "ecs:StopTask",
                       "ecs:ListTasks", "ecs:DescribeTaskDefinition", "s3:PutObject", "s3:GetObject",
                       "logs:GetLogEvents", "secretsmanager:GetSecretValue"}

    bucket_arn = f"arn:aws:s3:::{ecs_stack.bucket}"
    log_group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{ecs_stack.log_group}"
    policy = json.loads(controller_policy(
        cluster_arn=ecs_stack.cluster, task_definition_arn=td, task_role_arn=roles[0], execution_role_arn=roles[1],
        bucket_arn=bucket_arn, scripts_prefix="runs/", log_group_arn=log_group_arn, secret_arn=secret))

    # covers: every request is allowed by some statement
    denied = [r for r in wanted if not allowing(policy, r)]
    assert denied == []
    # nothing wider: every action the policy names is needed, and every resource it names is used
    named = {a for s in policy["Statement"] for a in _as_list(s["Action"])}
    assert named == actions
    for statement in policy["Statement"]:
        mine = [r for r in wanted if r.action in _as_list(statement["Action"])]
        for pattern in _as_list(statement["Resource"]):
            assert any(fnmatch.fnmatchcase(r.resource, pattern) for r in mine), (statement["Sid"], pattern)
        if statement["Resource"] == "*":   # only where AWS has no resource to name, and then bound to the cluster
            assert statement["Action"] in ("ecs:ListTasks", "ecs:DescribeTaskDefinition"), statement
    # ... and it refuses what the backend must not do
    other_cluster = ecs_stack.cluster.replace("cluster/", "cluster/someone-else-")
    for request in (Request("ecs:RunTask", td, (("ecs:cluster", other_cluster),)),
                    Request("ecs:RunTask", td.replace(":1", ":2").replace("policy", "other")),
                    Request("iam:PassRole", roles[0], (("iam:PassedToService", "lambda.amazonaws.com"),)),
                    Request("s3:GetObject", f"{bucket_arn}/results/x.json"),
                    Request("s3:DeleteObject", f"{bucket_arn}/runs/x.tar"),
                    Request("ecs:StopTask", stale.replace(ecs_stack.cluster.rsplit("/", 1)[-1], "prod"),
                            (("ecs:cluster", other_cluster),))):
        assert allowing(policy, request) == [], request
