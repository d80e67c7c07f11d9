"""ECS roles shared by the components: the execution role (pull, logs, secrets).

Task roles (what the containers themselves may do) are made by each component,
since each needs different, narrowly scoped permissions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from infra import iam_documents
from infra.images import DOCKER_HUB_DIRECT, ImageSource

EXECUTION_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


def execution_role(name: str, secret_arns: Sequence[pulumi.Input[str]], tags: Mapping[str, str],
                   parent: pulumi.Resource, images: ImageSource = DOCKER_HUB_DIRECT) -> aws.iam.Role:
    """An ECS task execution role: pull images, write logs, read only `secret_arns`; with an ECR
    pull-through cache, also create its repositories and import into them (a first pull)."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-execution",
        assume_role_policy=iam_documents.assume_role("ecs-tasks.amazonaws.com"),
        description="ECS task execution: image pulls, logs, the task's secrets",
        tags=dict(tags),
        opts=child,
    )
    aws.iam.RolePolicyAttachment(f"{name}-execution-managed", role=role.name,
                                 policy_arn=EXECUTION_POLICY_ARN, opts=child)
    if secret_arns:
        aws.iam.RolePolicy(
            f"{name}-execution-secrets",
            role=role.id,
            policy=pulumi.Output.all(*secret_arns).apply(
                lambda arns: iam_documents.document(iam_documents.read_secrets(list(arns)))),
            opts=child,
        )
    if images.repositories_arn is not None:
        aws.iam.RolePolicy(
            f"{name}-execution-image-cache",
            role=role.id,
            policy=pulumi.Output.from_input(images.repositories_arn).apply(lambda arn: iam_documents.document({
                "Sid": "PullThroughCache", "Effect": "Allow",
                "Action": ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"], "Resource": arn})),
            opts=child,
        )
    return role


def task_role(name: str, description: str, tags: Mapping[str, str], parent: pulumi.Resource) -> aws.iam.Role:
    """An empty ECS task role; the caller attaches exactly the permissions the task needs."""
    return aws.iam.Role(
        f"{name}-task-role",
        assume_role_policy=iam_documents.assume_role("ecs-tasks.amazonaws.com"),
        description=description,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def awslogs(group: str, region: str, prefix: str) -> dict[str, object]:
    """`logConfiguration` for a container writing to a CloudWatch log group."""
    return {
        "logDriver": "awslogs",
        "options": {"awslogs-group": group, "awslogs-region": region, "awslogs-stream-prefix": prefix},
    }
