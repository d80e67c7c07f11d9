"""Faults only AWS produces, on moto: a Spot reclaim mid-run, and tasks stuck before the start.

Moto runs no containers and models neither stop codes nor a task that stays PROVISIONING,
so each test injects exactly that at the API edge (a botocore after-call hook on the
backend's DescribeTasks answers, tests/ecs/aws_calls.py); everything else is real:
LocalFargate runs the task wrapper and k6, the reclaimed task is stopped in moto (ECS
sends SIGTERM, k6 stops gracefully and prints its summary), the controller reacts.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from core.influx import InfluxClient
from loadbearing.cli import main
from tests.ecs.aws_calls import rewrite_tasks
from tests.ecs.local_fargate import LocalFargate
from tests.ecs.stack import EcsStack
from tests.fixtures.runs import write_plan
from tests.fixtures.target import Target

SPOT_REASON = "Your Spot Task was interrupted."


def _run(ecs_stack: EcsStack, influx: InfluxClient, plan: Path, tmp_path: Path) -> list[str]:
    return ["run", "parallel", "--plan", str(plan), "--backend", "ecs", "--runners", "2",
            "--stack-outputs", str(ecs_stack.outputs_path), "--influx-url", f"{influx.url}/{influx.db}",
            "--out-dir", str(tmp_path / "runs")]


def _iso(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_a_spot_reclaim_mid_run_ends_the_run_incomplete(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    reclaimed: dict[str, float] = {}

    def spot(task: dict[str, Any]) -> None:
        if task["taskArn"] in reclaimed and task.get("lastStatus") == "STOPPED":
            task["stopCode"] = "SpotInterruption"

    rewrite_tasks(monkeypatch, spot)
    plan = write_plan(tmp_path, target.url, [{"name": "api", "rate": 10, "max_vus": 2, "duration": "60s"}])

    def reclaim() -> None:   # Fargate Spot takes runner api-0's capacity 3 s into the load
        while not target.seen() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)
        (task,) = [t for t in ecs_stack.tasks(desired="RUNNING")
                   if {"key": "loadbearing:runner", "value": "api-0"} in t["tags"]]
        reclaimed[task["taskArn"]] = time.time()
        ecs_stack.ecs.stop_task(cluster=ecs_stack.cluster, task=task["taskArn"], reason=SPOT_REASON)

    deadline = time.monotonic() + 60
    spotter = threading.Thread(target=reclaim, daemon=True)
    with LocalFargate(ecs_stack, tmp_path / "fargate"):
        spotter.start()
        code = main(_run(ecs_stack, influx, plan, tmp_path))
        spotter.join(timeout=10)
    out = capsys.readouterr()
    assert code == 4, out.err
    run_dir = Path(out.out.strip().splitlines()[-1])
    record = json.loads((run_dir / "run.json").read_text())
    (at,) = reclaimed.values()
    assert _iso(record["ended_at"]) - at < 20          # bounded: not the 57 s the load had left
    message = " ".join(record["errors"])
    assert "runner api-0 of module api failed" in message
    assert "Fargate Spot reclaimed its capacity" in message and "SpotInterruption" in message
    assert SPOT_REASON in message
    assert record["status"] == "error"                  # incomplete, never analysed as a whole run
    assert not (run_dir / "INCOMPLETE").exists() and record["ended_at"]
    tasks = {t["taskArn"]: t for t in ecs_stack.tasks()}
    assert not ecs_stack.tasks(desired="RUNNING")      # nothing left running
    (sibling,) = [t for arn, t in tasks.items() if arn not in reclaimed]
    assert sibling["stoppedReason"].startswith("loadbearing: runner api-0 failed; stopping its siblings")
    doc = json.loads((run_dir / "ecs-tasks.json").read_text())
    assert [t["stop_code"] for t in doc["tasks"] if t["runner"] == "api-0"] == ["SpotInterruption"]

    assert main(["recommend", str(run_dir), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["valid"] is False
    assert any(f["kind"] == "metrics_incomplete" for f in verdict["findings"])


def test_a_task_still_provisioning_at_the_start_ends_the_run_naming_capacity(
        ecs_stack: EcsStack, influx: InfluxClient, target: Target, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Fargate has no capacity for runner api-1 yet: it stays PROVISIONING past the start barrier."""
    stuck: set[str] = set()

    def provisioning(task: dict[str, Any]) -> None:
        if "--tag runner=api-1 " in json.dumps(task.get("overrides")) or task["taskArn"] in stuck:
            stuck.add(task["taskArn"])
            if task.get("desiredStatus") == "RUNNING":
                task["lastStatus"] = "PROVISIONING"

    rewrite_tasks(monkeypatch, provisioning)
    monkeypatch.setenv("LOADBEARING_ECS_START_DELAY_S", "5")
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "30s"}])
    started = time.time()
    with LocalFargate(ecs_stack, tmp_path / "fargate"):
        code = main(_run(ecs_stack, influx, plan, tmp_path))
    out = capsys.readouterr()
    assert code == 4, out.err
    assert time.time() - started < 25
    record = json.loads((Path(out.out.strip().splitlines()[-1]) / "run.json").read_text())
    message = " ".join(record["errors"])
    assert "runner api-1 of module api (PROVISIONING)" in message
    assert "no capacity" in message and "Fargate On-Demand vCPU resource count" in message
    assert "L-3032A538" in message and "marked incomplete" in message
    assert record["status"] == "error" and not record["phases"]   # the load never started
    assert target.seen() == 0
    assert not ecs_stack.tasks(desired="RUNNING")                 # both stopped, the stuck one included
