"""ECS Fargate parts shared by the components: container JSON, task definition, service.

Every task is Linux/x86_64 in `awsvpc` mode; every service runs one task in private
subnets without a public IP and propagates its tags to the task.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

RUNTIME_PLATFORM: aws.ecs.TaskDefinitionRuntimePlatformArgsDict = {
    "operating_system_family": "LINUX", "cpu_architecture": "X86_64"}


def container_definitions(build: Callable[..., list[dict[str, Any]]],
                          **inputs: pulumi.Input[Any]) -> pulumi.Output[str]:
    """`containerDefinitions` JSON: `build(**inputs)` once every input is known.

    `inputs` may mix Outputs (log group name, region, secret ARNs) and plain values;
    `build` receives them all resolved, as keyword arguments.
    """
    return pulumi.Output.all(**inputs).apply(lambda resolved: json.dumps(build(**resolved)))


def task_definition(name: str, *, family: str, cpu: int, memory: int, execution_role: aws.iam.Role,
                    task_role: aws.iam.Role, containers: pulumi.Input[str], tags: Mapping[str, str],
                    parent: pulumi.Resource,
                    volumes: Sequence[aws.ecs.TaskDefinitionVolumeArgsDict] | None = None,
                    depends_on: Sequence[pulumi.Resource] = ()) -> aws.ecs.TaskDefinition:
    """A Fargate task definition `<name>-task` of `family`, sized `cpu`/`memory` (task level)."""
    return aws.ecs.TaskDefinition(
        f"{name}-task",
        family=family,
        cpu=str(cpu),
        memory=str(memory),
        network_mode="awsvpc",
        requires_compatibilities=["FARGATE"],
        runtime_platform=RUNTIME_PLATFORM,
        execution_role_arn=execution_role.arn,
        task_role_arn=task_role.arn,
        container_definitions=containers,
        volumes=None if volumes is None else list(volumes),
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def service(name: str, *, service_name: str, cluster_arn: pulumi.Input[str],
            task_definition: aws.ecs.TaskDefinition, subnet_ids: Sequence[pulumi.Input[str]],
            security_group_id: pulumi.Input[str], tags: Mapping[str, str], parent: pulumi.Resource,
            depends_on: Sequence[pulumi.Resource] = (), **settings: Any) -> aws.ecs.Service:
    """A Fargate service `<name>-service` keeping one task of `task_definition` running.

    `settings` are further `aws.ecs.Service` arguments (load balancers, service
    registries, deployment limits, ...).
    """
    return aws.ecs.Service(
        f"{name}-service",
        name=service_name,
        cluster=cluster_arn,
        task_definition=task_definition.arn,
        desired_count=1,
        launch_type="FARGATE",
        network_configuration={"subnets": list(subnet_ids), "security_groups": [security_group_id],
                               "assign_public_ip": False},
        propagate_tags="SERVICE",
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
        **settings,
    )
