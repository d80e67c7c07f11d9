"""The test ECS "stack" in moto: its outputs, clients, and helpers to read what moto recorded."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTAINER = "k6"
LOG_PREFIX = "k6"


@dataclass
class EcsStack:
    endpoint: str
    outputs_path: Path
    outputs: dict[str, Any]
    log_group: str
    ecs: Any
    logs: Any
    s3: Any

    @property
    def cluster(self) -> str:
        return str(self.outputs["cluster_arn"])

    @property
    def bucket(self) -> str:
        return str(self.outputs["scripts_bucket"])

    def tasks(self, desired: str | None = None) -> list[dict[str, Any]]:
        """Every task moto recorded in this cluster (with tags), optionally by desired status."""
        kw: dict[str, Any] = {"cluster": self.cluster}
        if desired:
            kw["desiredStatus"] = desired
        arns = self.ecs.list_tasks(**kw)["taskArns"]
        if not arns:
            return []
        return list(self.ecs.describe_tasks(cluster=self.cluster, tasks=arns, include=["TAGS"])["tasks"])

    def log_stream(self, task_arn: str) -> str:
        return f"{LOG_PREFIX}/{CONTAINER}/{task_arn.rsplit('/', 1)[-1]}"

    def write_outputs(self, **changes: Any) -> Path:
        data = {**self.outputs, **changes}
        for key in [k for k, v in changes.items() if v is None]:
            data.pop(key)
        path = self.outputs_path.with_name(f"outputs-{uuid.uuid4().hex[:6]}.json")
        path.write_text(json.dumps(data, indent=2))
        return path


def register_task_definition(ecs: Any, family: str, log_group: str, task_role_arn: str | None = None,
                             execution_role_arn: str | None = None, **container: Any) -> str:
    definition = {"name": CONTAINER, "image": "grafana/k6:1.1.0", "essential": True, "cpu": 1024,
                  "memory": 2048, "entryPoint": ["sh", "-c"],
                  "logConfiguration": {"logDriver": "awslogs", "options": {
                      "awslogs-group": log_group, "awslogs-region": "us-east-1",
                      "awslogs-stream-prefix": LOG_PREFIX}}}
    definition.update(container)
    definition = {k: v for k, v in definition.items() if v is not None}
    roles = {k: v for k, v in (("taskRoleArn", task_role_arn), ("executionRoleArn", execution_role_arn)) if v}
    td = ecs.register_task_definition(family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                      cpu="1024", memory="2048", containerDefinitions=[definition], **roles)
    return str(td["taskDefinition"]["taskDefinitionArn"])
