"""IAM policy documents as JSON strings (pure functions, no resources).

S3 statements always name one bucket ARN and a key prefix under it; nothing here
produces `"Resource": "*"` for S3 (the `iam-s3-names-buckets` guard checks that).
"""

from __future__ import annotations

import json
from typing import Any


def document(*statements: dict[str, Any]) -> str:
    """A policy document with the given statements."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def assume_role(service: str) -> str:
    """Trust policy letting one AWS service (e.g. `ecs-tasks.amazonaws.com`) assume the role."""
    return document({
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    })


def s3_read_prefix(bucket_arn: str, prefix: str) -> list[dict[str, Any]]:
    """List and read objects under `prefix` (e.g. `runs/`) of one bucket."""
    return [
        {
            "Sid": "List" + _sid(prefix),
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
        },
        {
            "Sid": "Read" + _sid(prefix),
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"{bucket_arn}/{prefix}*",
        },
    ]


def s3_write_prefix(bucket_arn: str, prefix: str) -> dict[str, Any]:
    """Write (not read, not delete) objects under `prefix` of one bucket."""
    return {
        "Sid": "Write" + _sid(prefix),
        "Effect": "Allow",
        "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
        "Resource": f"{bucket_arn}/{prefix}*",
    }


def read_secrets(secret_arns: list[str]) -> dict[str, Any]:
    """Read the given Secrets Manager secrets (what ECS needs for `secrets` entries)."""
    return {
        "Sid": "ReadSecrets",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": secret_arns,
    }


def _sid(prefix: str) -> str:
    return "".join(part.capitalize() for part in prefix.strip("/").replace("-", "/").split("/"))


def controller_policy(*, cluster_arn: str, task_definition_arn: str, task_role_arn: str, execution_role_arn: str,
                      bucket_arn: str, scripts_prefix: str, log_group_arn: str, secret_arn: str) -> str:
    """What the `ecs` backend calls, and nothing else (the stack output `controller_policy_arn`).

    Run the one runner task definition on the stack's cluster and tag the task it starts;
    watch, list and stop tasks of that cluster; read the task definition (an action AWS does
    not scope to a resource); pass the runner's two roles to ECS only; put the k6 archives
    under `scripts_prefix` and read them back (the presigned URL the task fetches is signed
    with the controller's rights); read the runner log group's streams; read the
    controller's InfluxDB credential.
    """
    arn = cluster_arn.split(":")
    partition, region, account, cluster_name = arn[1], arn[3], arn[4], arn[5].split("/", 1)[1]
    tasks = f"arn:{partition}:ecs:{region}:{account}:task/{cluster_name}/*"
    on_cluster = {"ArnEquals": {"ecs:cluster": cluster_arn}}
    return document(
        {"Sid": "RunRunnerTasks", "Effect": "Allow", "Action": "ecs:RunTask", "Resource": task_definition_arn,
         "Condition": on_cluster},
        {"Sid": "TagTheTasksItStarts", "Effect": "Allow", "Action": "ecs:TagResource", "Resource": tasks,
         "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}}},
        {"Sid": "WatchAndStopTasks", "Effect": "Allow", "Action": ["ecs:DescribeTasks", "ecs:StopTask"],
         "Resource": tasks, "Condition": on_cluster},
        {"Sid": "ListTasks", "Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*", "Condition": on_cluster},
        {"Sid": "ReadTaskDefinition", "Effect": "Allow", "Action": "ecs:DescribeTaskDefinition", "Resource": "*"},
        {"Sid": "PassRunnerRoles", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": [task_role_arn, execution_role_arn],
         "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
        {"Sid": "PutAndPresignArchives", "Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": f"{bucket_arn}/{scripts_prefix}*"},
        {"Sid": "ReadRunnerLogs", "Effect": "Allow", "Action": "logs:GetLogEvents",
         "Resource": f"{log_group_arn}:log-stream:*"},
        {"Sid": "ReadInfluxCredential", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": secret_arn},
    )
