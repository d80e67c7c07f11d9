"""Lambda handler that stops runner tasks which outlived their welcome (the cost guard).

Runs every few minutes (EventBridge Scheduler). It lists the tasks (pending or running)
of the runner task family in the runner cluster and stops:

1. every task older than MAX_AGE_MINUTES (a controller that died leaves tasks behind);
2. then, if more than MAX_RUNNERS remain, the newest ones beyond that count (the
   tasks that broke the cap; a run keeps the runners it started first).

Environment: CLUSTER (name or ARN), TASK_FAMILY, MAX_AGE_MINUTES, MAX_RUNNERS.
Standard library + boto3 only (both in the Lambda Python runtime). Deployed as a
single file; `tasks_to_stop` is the pure decision, unit-tested directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any


def tasks_to_stop(tasks: Iterable[Mapping[str, Any]], now: datetime, max_age: timedelta,
                  max_running: int) -> list[tuple[str, str]]:
    """(task ARN, reason) for each task to stop: overdue ones oldest first, then the excess.

    A task's age counts from `startedAt`, or `createdAt` while it has not started; a
    task with neither (ECS has only just accepted it) counts as started `now`: never
    overdue, and among the newest when the count is over the cap.
    """
    dated = []
    for task in tasks:
        started = task.get("startedAt") or task.get("createdAt")
        dated.append((started if isinstance(started, datetime) else now, str(task["taskArn"])))
    dated.sort()
    stop: list[tuple[str, str]] = []
    keep: list[tuple[datetime, str]] = []
    for started, arn in dated:
        if now - started > max_age:
            minutes = int(max_age.total_seconds() // 60)
            stop.append((arn, f"loadbearing cost guard: runner older than {minutes} min"))
        else:
            keep.append((started, arn))
    excess = max(len(keep) - max_running, 0)
    for _started, arn in reversed(keep[len(keep) - excess:]):
        stop.append((arn, f"loadbearing cost guard: more than {max_running} runners"))
    return stop


def _runner_tasks(ecs: Any, cluster: str, family: str) -> list[dict[str, Any]]:
    # desiredStatus RUNNING covers tasks still provisioning or pending as well.
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, family=family,
                                                         desiredStatus="RUNNING"):
        arns.extend(page.get("taskArns", []))
    tasks: list[dict[str, Any]] = []
    unique = sorted(set(arns))
    for i in range(0, len(unique), 100):
        tasks.extend(ecs.describe_tasks(cluster=cluster, tasks=unique[i:i + 100]).get("tasks", []))
    return tasks


def handler(event: Mapping[str, Any] | None = None, context: Any = None, ecs: Any = None) -> dict[str, Any]:
    """Stop overdue and excess runner tasks; return what was stopped (also logged)."""
    if ecs is None:
        import boto3  # available in the Lambda runtime

        ecs = boto3.client("ecs")
    cluster = os.environ["CLUSTER"]
    family = os.environ["TASK_FAMILY"]
    max_age = timedelta(minutes=int(os.environ["MAX_AGE_MINUTES"]))
    max_running = int(os.environ["MAX_RUNNERS"])
    tasks = _runner_tasks(ecs, cluster, family)
    stopped = []
    for arn, reason in tasks_to_stop(tasks, datetime.now(UTC), max_age, max_running):
        ecs.stop_task(cluster=cluster, task=arn, reason=reason)
        print(f"stopped {arn}: {reason}")
        stopped.append({"task": arn, "reason": reason})
    return {"checked": len(tasks), "stopped": stopped}
