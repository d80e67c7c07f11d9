"""The cost guard's decision: which runner tasks the reaper Lambda stops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from infra.runner_reaper import tasks_to_stop

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(minutes=60)


def task(arn: str, minutes_ago: float | None, started: bool = True) -> dict[str, Any]:
    if minutes_ago is None:
        return {"taskArn": arn}
    when = NOW - timedelta(minutes=minutes_ago)
    return {"taskArn": arn, "startedAt" if started else "createdAt": when}


def test_tasks_older_than_the_maximum_are_stopped() -> None:
    tasks = [task("a", 61), task("b", 59), task("c", 240), task("d", 5, started=False)]
    assert tasks_to_stop(tasks, NOW, HOUR, max_running=10) == [
        ("c", "loadbearing cost guard: runner older than 60 min"),
        ("a", "loadbearing cost guard: runner older than 60 min"),
    ]


def test_tasks_beyond_the_fleet_size_are_stopped_newest_first() -> None:
    tasks = [task(f"t{i}", minutes_ago=i) for i in range(6)]  # t0 is the newest
    stopped = tasks_to_stop(tasks, NOW, HOUR, max_running=4)
    assert stopped == [("t0", "loadbearing cost guard: more than 4 runners"),
                       ("t1", "loadbearing cost guard: more than 4 runners")]


def test_overdue_tasks_count_before_the_fleet_size() -> None:
    tasks = [task("old", 90), task("x", 3), task("y", 2), task("unplaced", None)]
    assert [arn for arn, _ in tasks_to_stop(tasks, NOW, HOUR, max_running=3)] == ["old"]
    # a task ECS has not dated yet counts as the newest
    assert [arn for arn, _ in tasks_to_stop(tasks, NOW, HOUR, max_running=1)] == ["old", "unplaced", "y"]


def test_nothing_to_stop() -> None:
    assert tasks_to_stop([task("a", 1), task("b", 59.9)], NOW, HOUR, max_running=2) == []
