"""CloudWatch log groups of the components: one per component, `/loadbearing/<prefix>/<component>`."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws


def log_group(name: str, name_prefix: str, component: str, retention_days: int, tags: Mapping[str, str],
              parent: pulumi.Resource) -> aws.cloudwatch.LogGroup:
    """The log group `/loadbearing/<name_prefix>/<component>` (logical name `<name>-logs`),
    keeping events `retention_days` days."""
    return aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=f"/loadbearing/{name_prefix}/{component}",
        retention_in_days=retention_days,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
