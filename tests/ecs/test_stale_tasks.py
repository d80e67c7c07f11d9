"""`cleanup_stale`: Fargate tasks left by a controller that died are stopped; others are not."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any

from runners.backends.ecs import EcsBackend
from tests.ecs.stack import EcsStack


def _start(stack: EcsStack, started_by: str, controller: str | None) -> str:
    tags = [{"key": "loadbearing:run_id", "value": started_by.rsplit("/", 1)[-1]},
            {"key": "loadbearing:runner", "value": "api-0"}]
    if controller:
        tags.append({"key": "loadbearing:controller", "value": controller})
    out: Any = stack.ecs.run_task(
        cluster=stack.cluster, taskDefinition=stack.outputs["task_definition_arn"], count=1, startedBy=started_by,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}], tags=tags,
        networkConfiguration={"awsvpcConfiguration": {"subnets": stack.outputs["subnet_ids"],
                                                      "securityGroups": stack.outputs["security_group_ids"]}})
    return str(out["tasks"][0]["taskArn"])


def test_cleanup_stops_only_tasks_whose_controller_is_gone(ecs_stack: EcsStack) -> None:
    host = socket.gethostname()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that was a process of this host and is no more
    dead = _start(ecs_stack, "loadbearing/run-dead", f"{host}:{gone.pid}")
    live = _start(ecs_stack, "loadbearing/run-live", f"{host}:{os.getpid()}")
    elsewhere = _start(ecs_stack, "loadbearing/run-elsewhere", "another-host.example:1")
    foreign = _start(ecs_stack, "someone-else", None)

    found = EcsBackend(stack_outputs=ecs_stack.outputs_path).cleanup_stale()

    assert len(found) == 1 and "run-dead" in found[0] and str(gone.pid) in found[0]
    status = {t["taskArn"]: t for t in ecs_stack.tasks()}
    assert status[dead]["lastStatus"] == "STOPPED"
    assert status[dead]["stoppedReason"].startswith("loadbearing: stale runner of run run-dead")
    for arn in (live, elsewhere, foreign):
        assert status[arn]["lastStatus"] == "RUNNING"
