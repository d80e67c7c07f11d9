"""An ECS "stack" in the session's moto_server, shaped like the Pulumi program's outputs.

`ecs_stack` creates, per test, a VPC with a subnet and a security group, a cluster, a
Fargate task definition (container "k6", entryPoint ["sh", "-c"], awslogs), a log group
and a scripts bucket, and writes the stack-outputs JSON (`pulumi stack output --json`
shape) with `influxdb_url` = the test's real InfluxDB. Timing knobs are set short.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from core.influx import InfluxClient
from core.store_identity import marker_line
from tests.ecs.stack import CONTAINER, EcsStack, register_task_definition


@pytest.fixture
def ecs_stack(aws_env: str, influx: InfluxClient, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[EcsStack]:
    suffix = uuid.uuid4().hex[:8]
    kw = {"region_name": "us-east-1", "endpoint_url": aws_env}
    ecs, ec2, logs, s3 = (boto3.client(name, **kw) for name in ("ecs", "ec2", "logs", "s3"))
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"lb-runners-{suffix}", Description="k6 runners", VpcId=vpc)["GroupId"]
    cluster = ecs.create_cluster(clusterName=f"lb-{suffix}", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    log_group = f"/loadbearing/{suffix}/runners"
    logs.create_log_group(logGroupName=log_group)
    bucket = f"lb-scripts-{suffix}"
    s3.create_bucket(Bucket=bucket)
    task_def = register_task_definition(ecs, f"lb-k6-{suffix}", log_group)
    outputs = {
        "cluster_arn": cluster["cluster"]["clusterArn"], "task_definition_arn": task_def,
        "container_name": CONTAINER, "subnet_ids": [subnet], "security_group_ids": [sg],
        "scripts_bucket": bucket, "influxdb_url": influx.url, "grafana_url": "http://127.0.0.1:3000",
        "log_group_name": log_group, "influxdb_database": influx.db, "influxdb_store_id": f"fs-{suffix}",
    }
    influx.write([marker_line(outputs["influxdb_store_id"])])
    path = tmp_path / "stack-outputs.json"
    path.write_text(json.dumps(outputs, indent=2))
    monkeypatch.setenv("LOADBEARING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LOADBEARING_ECS_START_DELAY_S", "6")
    monkeypatch.setenv("LOADBEARING_ECS_POLL_S", "0.2")
    monkeypatch.setenv("LOADBEARING_ECS_SUMMARY_WAIT_S", "1")
    for name in ("LOADBEARING_INFLUX_URL", "LOADBEARING_INFLUX_USERNAME", "LOADBEARING_INFLUX_PASSWORD",
                 "LOADBEARING_INFLUX_TOKEN", "LOADBEARING_STACK_OUTPUTS", "LOADBEARING_ECS_SPOT",
                 "LOADBEARING_ECS_VUS_PER_TASK", "LOADBEARING_ECS_RATE_PER_TASK"):
        monkeypatch.delenv(name, raising=False)
    stack = EcsStack(endpoint=aws_env, outputs_path=path, outputs=outputs, log_group=log_group,
                     ecs=ecs, logs=logs, s3=s3)
    yield stack
    for task in stack.tasks(desired="RUNNING"):  # never leave a task running in the shared server
        ecs.stop_task(cluster=stack.cluster, task=task["taskArn"], reason="test teardown")
