"""The planner keeps within what the stack's cost guard allows, and runner tasks carry the stack's tags.

The cost guard (infra/cost_guard.py) stops the newest runner tasks beyond `runnerCount` and
any older than `runnerMaxMinutes`; the ecs backend reads both from the stack outputs and
refuses, before any task starts, a plan it would cut short. RunTask asks ECS to copy the
runner task definition's tags onto each task (moto accepts the parameter but does not copy
tags, so the test reads the request the backend sent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.influx import InfluxClient
from loadbearing.cli import main
from tests.ecs.aws_calls import record_calls
from tests.ecs.local_fargate import LocalFargate
from tests.ecs.stack import EcsStack
from tests.fixtures.runs import write_plan
from tests.fixtures.target import Target


def _run(plan: Path, outputs: Path, influx: InfluxClient, tmp_path: Path, runners: str) -> list[str]:
    return ["run", "parallel", "--plan", str(plan), "--backend", "ecs", "--stack-outputs", str(outputs),
            "--influx-url", f"{influx.url}/{influx.db}", "--out-dir", str(tmp_path / "runs"), "--runners", runners]


def test_more_tasks_at_once_than_runner_count_is_refused(ecs_stack: EcsStack, influx: InfluxClient,
                                                         target: Target, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 600, "duration": "30s"},
                                             {"name": "web", "vus": 10, "duration": "30s"}])
    outputs = ecs_stack.write_outputs(runner_count=3)
    code = main(_run(plan, outputs, influx, tmp_path, "auto"))   # auto: 2 tasks per module -> 4 at once
    err = capsys.readouterr().err
    assert code == 2, err
    assert "2 module(s) x 2 runner(s) = 4 Fargate tasks at once; the stack allows 3" in err
    assert "loadbearing:runnerCount" in err and "pulumi config set runnerCount 4" in err
    code = main(_run(plan, outputs, influx, tmp_path, "2"))
    assert code == 2 and "= 4 Fargate tasks at once" in capsys.readouterr().err
    assert not ecs_stack.tasks()


def test_a_run_longer_than_runner_max_minutes_is_refused(ecs_stack: EcsStack, influx: InfluxClient,
                                                         target: Target, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "6m"}])
    code = main(_run(plan, ecs_stack.write_outputs(runner_max_minutes=5), influx, tmp_path, "1"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "module api's runner tasks would live" in err and "after 5 min (loadbearing:runnerMaxMinutes" in err
    assert not ecs_stack.tasks()


def test_runner_tasks_get_the_task_definitions_tags(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_calls(monkeypatch)
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "30s"}])
    outputs = ecs_stack.write_outputs(runner_count=8, runner_max_minutes=60)
    with LocalFargate(ecs_stack, tmp_path / "fargate", crash_output=["gone"], crash_before_start=True):
        main(_run(plan, outputs, influx, tmp_path, "2"))
    runs = calls.of("RunTask")
    assert len(runs) == 2
    for call in runs:
        assert call.params["propagateTags"] == "TASK_DEFINITION"
        assert {t["key"] for t in call.params["tags"]} >= {"loadbearing:run_id", "loadbearing:runner"}


def test_a_plan_the_stores_cpu_cannot_ingest_is_refused(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "api", "rate": 5000, "max_vus": 100, "duration": "30s"}])
    outputs = ecs_stack.write_outputs(influxdb_cpu=256, influxdb_memory=1024)
    code = main(_run(plan, outputs, influx, tmp_path, "auto"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "peaks at 5,000 requests/s = 65,000 InfluxDB points/s" in err
    assert "loadbearing:influxdbCpu / influxdbMemory" in err and "pulumi config set influxdbCpu 1024" in err
    assert "pulumi config set influxdbMemory 2048" in err
    assert not ecs_stack.tasks()


def test_max_cost_counts_the_nat_data(ecs_stack: EcsStack, influx: InfluxClient, target: Target, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Fargate time alone is within --max-cost; the 1 MB responses through the NAT gateway are not."""
    plan = write_plan(tmp_path, target.url, [{"name": "api", "rate": 50, "max_vus": 50, "duration": "60s",
                                              "response_bytes": 1_000_000}])
    code = main([*_run(plan, ecs_stack.outputs_path, influx, tmp_path, "1"), "--max-cost", "0.05"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "NAT gateway data: 3.000 GB x $0.045/GB = $0.1350" in err and "above --max-cost $0.0500" in err
    assert not ecs_stack.tasks()
    # the same plan with runners in public subnets: no NAT data, within the limit
    public = ecs_stack.write_outputs(assign_public_ip=True)
    with LocalFargate(ecs_stack, tmp_path / "fargate", crash_output=["gone"], crash_before_start=True):
        code = main([*_run(plan, public, influx, tmp_path, "1"), "--max-cost", "0.05"])
    err = capsys.readouterr().err
    assert "no NAT gateway data charge" in err and "above --max-cost" not in err
    (task,) = ecs_stack.tasks()
    assert task["lastStatus"] == "STOPPED"   # it started: the estimate let it through (LocalFargate ends it)
