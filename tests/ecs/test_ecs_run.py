"""The ECS backend end to end through the CLI, against a real moto_server and InfluxDB.

Moto records tasks but runs no containers; `LocalFargate` (tests/ecs/local_fargate.py)
stands in for the container runtime and says in each test what it does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from core.influx import InfluxClient
from loadbearing.cli import main
from runners.backends import ecs as ecs_backend
from tests.ecs.local_fargate import EXITED, LocalFargate
from tests.ecs.stack import EcsStack
from tests.fixtures.runs import write_plan
from tests.fixtures.target import Target


def _run(ecs_stack: EcsStack, influx: InfluxClient, plan: Path, tmp_path: Path, *extra: str,
         outputs: Path | None = None) -> list[str]:
    return ["run", "parallel", "--plan", str(plan), "--backend", "ecs",
            "--stack-outputs", str(outputs or ecs_stack.outputs_path), "--influx-url", f"{influx.url}/{influx.db}",
            "--out-dir", str(tmp_path / "runs"), *extra]


def _env(task: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in task["overrides"]["containerOverrides"][0]["environment"]}


def _script(task: dict[str, Any]) -> str:
    command = task["overrides"]["containerOverrides"][0]["command"]
    assert len(command) == 1, command  # entryPoint ["sh", "-c"] takes the script as one argument
    return str(command[0])


def _iso(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_parallel_two_modules_two_runners(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """2 modules x 2 runners: 4 run_task calls with distinct segments and the right overrides
    (read back from moto), and a passing run whose numbers come from InfluxDB.

    LocalFargate runs each task's real container command (the wrapper script and k6) on
    this machine, writes its output into the task's log stream and stops the task in moto
    when the command exits, because moto cannot run containers."""
    monkeypatch.setenv("LOADBEARING_INFLUX_USERNAME", "lb-writer")
    monkeypatch.setenv("LOADBEARING_INFLUX_PASSWORD", "s3cret-influx-pw")  # influxd here has auth off
    plan = write_plan(tmp_path, target.url, [
        {"name": "api", "rate": 10, "max_vus": 2, "duration": "2s"},
        {"name": "web", "rate": 10, "max_vus": 2, "duration": "2s"},
    ])
    with LocalFargate(ecs_stack, tmp_path / "fargate") as fargate:
        code = main(_run(ecs_stack, influx, plan, tmp_path, "--runners", "2"))
    out = capsys.readouterr()
    assert not fargate.errors, fargate.errors
    assert code == 0, out.err + json.dumps(fargate.outputs, indent=1)[-3000:]
    run_dir = Path(out.out.strip().splitlines()[-1])
    record = json.loads((run_dir / "run.json").read_text())
    run_id = record["run_id"]

    # What moto recorded: 4 tasks, one per runner, with their overrides.
    tasks = ecs_stack.tasks()
    assert len(tasks) == 4
    by_runner = {next(t["value"] for t in task["tags"] if t["key"] == "loadbearing:runner"): task for task in tasks}
    assert sorted(by_runner) == ["api-0", "api-1", "web-0", "web-1"]
    start_ats = set()
    for name, task in by_runner.items():
        module, index = name.rsplit("-", 1)
        tags = {t["key"]: t["value"] for t in task["tags"]}
        assert tags["loadbearing:run_id"] == run_id and tags["loadbearing:module"] == module
        assert tags["loadbearing:controller"].endswith(f":{os.getpid()}")
        assert task["startedBy"] == f"loadbearing/{run_id}"
        assert task["capacityProviderName"] == "FARGATE"
        assert task["overrides"]["containerOverrides"][0]["name"] == "k6"
        assert len(json.dumps(task["overrides"], separators=(",", ":"))) < 6000  # ECS allows 8192 in all
        script = _script(task)
        seg = re.search(r"--execution-segment (\S+)", script)
        assert seg and seg.group(1) == ("0:1/2" if index == "0" else "1/2:1"), script
        assert "--execution-segment-sequence 0,1/2,1" in script
        assert f"--tag runner={name}" in script and f"--tag testid={run_id}" in script
        assert f"--tag module={module}" in script and "--tag strategy=parallel" in script
        assert f"--out influxdb={influx.url}/{influx.db}" in script
        env = _env(task)
        assert env["BASE_URL"] == target.url
        assert f"/{ecs_stack.bucket}/runs/{run_id}/{module}.tar" in env["LB_ARCHIVE_URL"]
        assert env["K6_INFLUXDB_PASSWORD"] == "s3cret-influx-pw"  # how k6 in the task gets it
        start_ats.add(env["LB_START_AT"])
        assert task["lastStatus"] == "STOPPED" and task["stoppedReason"] == EXITED
    assert len(start_ats) == 1  # one wall-clock start for the phase
    assert not ecs_stack.tasks(desired="RUNNING")

    # The archives in S3 are real k6 archives carrying the plan's load shape.
    for module in ("api", "web"):
        body = ecs_stack.s3.get_object(Bucket=ecs_stack.bucket, Key=f"runs/{run_id}/{module}.tar")["Body"].read()
        archive = tmp_path / f"{module}.tar"
        archive.write_bytes(body)
        with tarfile.open(archive) as tar:
            meta = json.load(tar.extractfile("metadata.json"))  # type: ignore[arg-type]
        assert meta["options"]["scenarios"]["load"]["executor"] == "constant-arrival-rate"
        assert meta["options"]["scenarios"]["load"]["rate"] == 10
        assert meta["options"]["blacklistIPs"]

    # The run: summaries collected from the log streams, numbers from InfluxDB, per runner.
    assert record["status"] == "passed"
    assert record["metrics"]["complete"] is True
    for mod in record["modules"]:
        assert mod["runners"] == 2 and mod["exit_codes"] == [0, 0]
        assert mod["requests"] > 0 and mod["requests"] == mod["k6_requests"]
        assert sorted(mod["runner_requests"]) == [f"{mod['name']}-0", f"{mod['name']}-1"]
        assert all(n > 0 for n in mod["runner_requests"].values())
        for i in (0, 1):
            summary = json.loads((run_dir / "k6" / f"{mod['name']}-{i}.summary.json").read_text())
            assert summary["metrics"]["http_reqs"]["count"] == mod["runner_requests"][f"{mod['name']}-{i}"]

    # The start barrier: every task resumed k6 at or after the common start time; skew recorded.
    tasks_doc = json.loads((run_dir / "ecs-tasks.json").read_text())
    assert len(tasks_doc["tasks"]) == 4
    start_at = int(next(iter(start_ats)))
    for t in tasks_doc["tasks"]:
        assert t["start_at"] == start_at and t["summary"] is True and t["failure"] is None
        assert t["go_at"] >= start_at and t["skew_s"] == pytest.approx(t["go_at"] - start_at, abs=0.002)
    assert tasks_doc["start_skew"]["tasks"] == 4
    assert abs(_iso(record["phases"][0]["started_at"]) - start_at) < 0.01
    assert "start barrier: 4 task(s)" in out.err
    assert "estimated cost $" in out.err

    # Credentials reach k6 but no record or message.
    for text in (out.out, out.err, (run_dir / "run.json").read_text(), (run_dir / "ecs-tasks.json").read_text()):
        assert "s3cret-influx-pw" not in text


def test_tasks_that_stop_without_a_summary_end_the_run(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every task stops after the start without printing a summary: exit 4, run.json names
    every task and why, no task is left running.

    LocalFargate writes, for each task, what a task whose k6 crashed prints (a k6 error
    line, no summary) into its log stream itself, then stops the task in moto with ECS's
    reason "Essential container in task exited" (moto runs no containers)."""
    plan = write_plan(tmp_path, target.url, [
        {"name": "api", "vus": 1, "duration": "60s"},
        {"name": "web", "vus": 1, "duration": "60s"},
    ])
    monkeypatch.setenv("LOADBEARING_ECS_START_DELAY_S", "3")
    crash = ['time="2026-01-01T00:00:00Z" level=error msg="GoError: runner blew up"']
    with LocalFargate(ecs_stack, tmp_path / "fargate", crash_output=crash):
        code = main(_run(ecs_stack, influx, plan, tmp_path, "--runners", "2"))
    out = capsys.readouterr()
    assert code == 4, out.err
    run_dir = Path(out.out.strip().splitlines()[-1])
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "error"
    task_ids = {t["taskArn"].rsplit("/", 1)[-1] for t in ecs_stack.tasks()}
    assert len(task_ids) == 4
    failures = [f for m in record["modules"] for f in m["failures"] if f.startswith("runner ")]
    named = {tid for tid in task_ids if any(tid in f for f in failures)}
    assert named == task_ids, failures  # every task, by id ...
    crashed = [f for f in failures if EXITED in f and "runner blew up" in f]
    assert crashed, failures  # ... and why: ECS's stop reason and the task's last output,
    for f in failures:        # or, for a sibling still running then, that loadbearing stopped it
        assert "stopped without a k6 summary" in f, f
        assert f in crashed or re.search(r"stopped by loadbearing \(runner \S+ failed", f), f
    assert not ecs_stack.tasks(desired="RUNNING")
    # The run ended on the failure, not after the 60 s the scenario would have lasted.
    assert _iso(record["ended_at"]) - _iso(record["phases"][0]["started_at"]) < 60
    tasks_doc = json.loads((run_dir / "ecs-tasks.json").read_text())
    assert {t["task_arn"].rsplit("/", 1)[-1] for t in tasks_doc["tasks"] if t["failure"]} == task_ids


def test_sigint_stops_every_started_task(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                          tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) to the CLI process while its tasks wait for the start: every started
    task is stopped with a reason naming loadbearing and the abort; exit 4, status aborted."""
    plan = write_plan(tmp_path, target.url, [
        {"name": "api", "vus": 1, "duration": "30s"},
        {"name": "web", "vus": 1, "duration": "30s"},
    ])
    env = {k: v for k, v in os.environ.items() if not k.startswith("K6_")}
    env["LOADBEARING_ECS_START_DELAY_S"] = "60"
    proc = subprocess.Popen([sys.executable, "-m", "loadbearing.cli", *_run(ecs_stack, influx, plan, tmp_path,
                                                                       "--runners", "2")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while len(ecs_stack.tasks(desired="RUNNING")) < 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the CLI did not start 4 tasks"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, stderr
    tasks = ecs_stack.tasks()
    assert len(tasks) == 4
    for task in tasks:
        assert task["lastStatus"] == "STOPPED", task
        assert task["stoppedReason"].startswith("loadbearing:") and "aborted" in task["stoppedReason"]
    record = json.loads((Path(stdout.strip().splitlines()[-1]) / "run.json").read_text())
    assert record["status"] == "aborted"


def test_injected_limit_exceeded_names_the_quota(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS refuses the third task with LimitExceededException: a clear message naming the
    Fargate vCPU quota and its code, exit 4, and the two tasks already started are stopped.

    This is the one injected fault: moto never refuses run_task for a quota, so a botocore
    `before-call.ecs.RunTask` hook on the backend's real boto3 client answers the third
    RunTask call with AWS's error response; every other call reaches moto."""
    calls: list[int] = []

    def refuse_third(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        calls.append(1)
        if len(calls) != 3:
            return None
        body = {"Error": {"Code": "LimitExceededException",
                          "Message": "You've reached the limit on the number of vCPUs you can run concurrently"},
                "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse(ecs_stack.endpoint, 400, {}, None), body

    real_session = ecs_backend.new_session

    def session_with_fault(region: str | None) -> Any:
        session = real_session(region)
        session.events.register("before-call.ecs.RunTask", refuse_third)
        return session

    monkeypatch.setattr(ecs_backend, "new_session", session_with_fault)
    plan = write_plan(tmp_path, target.url, [
        {"name": "api", "vus": 1, "duration": "30s"},
        {"name": "web", "vus": 1, "duration": "30s"},
    ])
    code = main(_run(ecs_stack, influx, plan, tmp_path, "--runners", "2"))
    out = capsys.readouterr()
    assert code == 4, out.err
    assert len(calls) == 3
    record = json.loads((Path(out.out.strip().splitlines()[-1]) / "run.json").read_text())
    message = " ".join(record["errors"])
    for text in (message, out.err):
        assert "Fargate On-Demand vCPU resource count" in text and "L-3032A538" in text
    assert "request-service-quota-increase --service-code fargate --quota-code L-3032A538" in message
    assert "4 task(s) x 1 vCPU = 4 vCPU" in message
    tasks = ecs_stack.tasks()
    assert len(tasks) == 2
    for task in tasks:
        assert task["lastStatus"] == "STOPPED"
        assert task["stoppedReason"].startswith("loadbearing: the launch failed")


def test_max_cost_refusal_with_runners_auto(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--runners auto` sizes the fleet from the plan (seed-scale 1200 VUs -> 4 tasks of 300),
    the estimate is printed, and `--max-cost` below it refuses with exit 2 before any task."""
    plan = write_plan(tmp_path, target.url, [
        {"name": "profile", "vus": 1200, "duration": "10m"},
        {"name": "jobs", "vus": 100, "duration": "10m"},
    ])
    code = main(_run(ecs_stack, influx, plan, tmp_path, "--runners", "auto", "--max-cost", "0.05"))
    out = capsys.readouterr()
    assert code == 2, out.err
    assert "--runners auto -> 4 task(s) per module" in out.err
    # 2 modules x 4 tasks x (600 s + 6 s start delay + k6's graceful stop + 20 s teardown), us-east-1 on-demand
    from runners.k6 import parse_graceful_stop_s

    expected = 8 * (626 + parse_graceful_stop_s()) / 3600 * (1 * 0.04048 + 2 * 0.004445)
    assert f"${expected:.4f}" in out.err
    assert "above --max-cost $0.0500" in out.err and "$0.04048/vCPU-h" in out.err
    assert not ecs_stack.tasks()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_capacity_run_is_refused_before_any_task(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "api", "rate": 10, "duration": "2s", "service": "api"}],
                      extra="[services.api]\n")
    args = _run(ecs_stack, influx, plan, tmp_path, "--runners", "1")
    args[1] = "capacity"
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "run capacity: --backend ecs sizes and prices its fleet" in err and "--backend process or docker" in err
    assert not ecs_stack.tasks()


def test_missing_stack_output_is_bad_input(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A stack-outputs file without `scripts_bucket`: exit 2 naming the key and the fix."""
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "2s"}])
    broken = ecs_stack.write_outputs(scripts_bucket=None)
    code = main(_run(ecs_stack, influx, plan, tmp_path, "--runners", "1", outputs=broken))
    err = capsys.readouterr().err
    assert code == 2
    assert "'scripts_bucket'" in err and "pulumi stack output --json" in err
    assert not ecs_stack.tasks()


def test_task_definition_without_shell_entrypoint_is_bad_input(ecs_stack: EcsStack, influx: InfluxClient,
                                                               target: Target, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A task definition whose container keeps the image's `k6` entry point cannot run the
    wrapper: exit 2 naming entryPoint, before any task."""
    from tests.ecs.stack import register_task_definition

    arn = register_task_definition(ecs_stack.ecs, f"lb-k6-plain-{tmp_path.name[-6:]}", ecs_stack.log_group,
                                   entryPoint=None)
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "2s"}])
    code = main(_run(ecs_stack, influx, plan, tmp_path, "--runners", "1",
                     outputs=ecs_stack.write_outputs(task_definition_arn=arn)))
    err = capsys.readouterr().err
    assert code == 2
    assert 'entryPoint ["sh", "-c"]' in err
    assert not ecs_stack.tasks()


def test_tasks_that_die_before_the_start_fail_the_phase_at_once(ecs_stack: EcsStack, influx: InfluxClient,
                                                                 target: Target, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks that die while waiting for the common start time end the phase before it starts
    (exit 4), naming each task; the others are stopped.

    LocalFargate writes what a task that could not fetch its archive prints into each log
    stream itself and stops the task in moto right after it appears (moto runs no containers)."""
    monkeypatch.setenv("LOADBEARING_ECS_START_DELAY_S", "30")
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "30s"}])
    crash = ["loadbearing: could not download the k6 archive from S3 (presigned URL)", "LBSUMMARY-END 91 0"]
    with LocalFargate(ecs_stack, tmp_path / "fargate", crash_output=crash, crash_before_start=True):
        code = main(_run(ecs_stack, influx, plan, tmp_path, "--runners", "2"))
    out = capsys.readouterr()
    assert code == 4, out.err
    record = json.loads((Path(out.out.strip().splitlines()[-1]) / "run.json").read_text())
    assert "stopped before the start" in record["errors"][0]
    assert "route to S3" in record["errors"][0]  # the hint for the wrapper's exit code 91
    assert 91 in record["modules"][0]["exit_codes"]  # the wrapper's code, read from its end line
    failures = record["modules"][0]["failures"]
    for task in ecs_stack.tasks():  # every task named, with why it ended
        assert any(task["taskArn"].rsplit("/", 1)[-1] in f for f in failures), failures
    assert not ecs_stack.tasks(desired="RUNNING")
    assert _iso(record["ended_at"]) < _iso(record["started_at"]) + 30  # did not wait for the start time


def test_credentials_stay_in_the_task_definition_when_it_has_them(ecs_stack: EcsStack, influx: InfluxClient,
                                                                   target: Target, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A task definition that brings K6_INFLUXDB_USERNAME / _PASSWORD (a Secrets Manager
    secret, as the Pulumi program sets it) gets no credentials in the RunTask override, and
    secret-valued stack outputs the backend does not read do not stop it.

    LocalFargate stops each task right after it appears (moto runs no containers); the
    test only reads the overrides moto recorded."""
    from tests.ecs.stack import register_task_definition

    arn = register_task_definition(
        ecs_stack.ecs, f"lb-k6-secrets-{tmp_path.name[-6:]}", ecs_stack.log_group,
        environment=[{"name": "K6_INFLUXDB_USERNAME", "value": "runner"}],
        secrets=[{"name": "K6_INFLUXDB_PASSWORD",
                  "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:lb-influx"}])
    outputs = ecs_stack.write_outputs(task_definition_arn=arn, influxdb_admin_password="[secret]")
    monkeypatch.setenv("LOADBEARING_INFLUX_USERNAME", "controller")
    monkeypatch.setenv("LOADBEARING_INFLUX_PASSWORD", "s3cret-controller-pw")
    plan = write_plan(tmp_path, target.url, [{"name": "api", "vus": 1, "duration": "30s"}])
    with LocalFargate(ecs_stack, tmp_path / "fargate", crash_output=["gone"], crash_before_start=True):
        code = main(_run(ecs_stack, influx, plan, tmp_path, "--runners", "1", outputs=outputs))
    assert code == 4, capsys.readouterr().err
    (task,) = ecs_stack.tasks()
    env = _env(task)
    assert "K6_INFLUXDB_PASSWORD" not in env and "K6_INFLUXDB_USERNAME" not in env
    assert env["BASE_URL"] == target.url
