"""The reaper Lambda's handler against a real moto_server: which runner tasks it stops."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from infra.runner_reaper import handler


def _run(ecs: Any, cluster: str, family: str, subnet: str, group: str) -> str:
    task = ecs.run_task(cluster=cluster, taskDefinition=family, count=1,
                        capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
                        networkConfiguration={"awsvpcConfiguration": {
                            "subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}})
    return str(task["tasks"][0]["taskArn"])


def test_handler_stops_runner_tasks_beyond_the_cap_and_nothing_else(
        aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = uuid.uuid4().hex[:8]
    ecs = boto3.client("ecs", region_name="us-east-1", endpoint_url=aws_env)
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=aws_env)
    vpc = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # moto's ENIs need it
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.43.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"reaper-{suffix}", Description="runners", VpcId=vpc)["GroupId"]
    cluster = ecs.create_cluster(clusterName=f"reaper-{suffix}",
                                 capacityProviders=["FARGATE", "FARGATE_SPOT"])["cluster"]["clusterArn"]
    for family in (f"runners-{suffix}", f"other-{suffix}"):
        ecs.register_task_definition(
            family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            containerDefinitions=[{"name": "k6", "image": "grafana/k6:1.1.0", "essential": True,
                                   "cpu": 256, "memory": 512}])
    runners = [_run(ecs, cluster, f"runners-{suffix}", subnet, group) for _ in range(3)]
    other = _run(ecs, cluster, f"other-{suffix}", subnet, group)
    try:
        monkeypatch.setenv("CLUSTER", cluster)
        monkeypatch.setenv("TASK_FAMILY", f"runners-{suffix}")
        monkeypatch.setenv("MAX_AGE_MINUTES", "60")
        monkeypatch.setenv("MAX_RUNNERS", "1")
        result = handler({}, None, ecs=ecs)
        assert result["checked"] == 3
        stopped = {s["task"] for s in result["stopped"]}
        assert len(stopped) == 2 and stopped < set(runners)
        assert all("more than 1 runners" in s["reason"] for s in result["stopped"])
        running = set(ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"])
        assert running == (set(runners) - stopped) | {other}
    finally:
        for arn in ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]:
            ecs.stop_task(cluster=cluster, task=arn, reason="test teardown")
