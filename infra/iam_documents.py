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
