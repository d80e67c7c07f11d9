"""The part of Fargate that moto does not have: running a task's container.

`LocalFargate` watches the test cluster in moto. For every task that appears RUNNING it
acts as Fargate's container runtime would:

- `run` mode: runs the task definition's entryPoint + the command override (the real
  loadbearing wrapper and the real k6) on this machine with the override's environment,
  plus `LB_K6_API` (a free loopback port) and `LB_WORK_DIR` (a private directory), so that
  several "tasks" can share one host. The wrapper downloads the archive from moto's S3
  with the presigned URL (loopback), waits for the start time and runs k6, which writes to
  the test's InfluxDB. When the task is stopped in moto (`stop_task`), the wrapper gets
  SIGTERM, as ECS sends it.
- `crash` mode: runs nothing; it writes the given output lines itself (what a task whose
  k6 died would print) once the start time has passed (or at once, `crash_before_start`).

Either way it then writes the output into the task's CloudWatch Logs stream
(`<prefix>/<container>/<task id>`, as the awslogs driver names it) and marks the task
STOPPED in moto with ECS's reason "Essential container in task exited".
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.state import free_port
from tests.ecs.stack import EcsStack

EXITED = "Essential container in task exited"


class LocalFargate:
    def __init__(self, stack: EcsStack, work_dir: Path, crash_output: list[str] | None = None,
                 crash_before_start: bool = False) -> None:
        self.stack = stack
        self.work_dir = work_dir
        self.crash_output = crash_output
        self.crash_before_start = crash_before_start
        self.exit_codes: dict[str, int] = {}
        self.outputs: dict[str, list[str]] = {}
        self.errors: list[str] = []
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._procs: list[subprocess.Popen[str]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> LocalFargate:
        t = threading.Thread(target=self._watch, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for p in self._procs:  # the wrapper and its k6, as a task's containers all end with it
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
        for t in self._threads:
            t.join(timeout=30)

    # -- the cluster watcher ------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                arns = self.stack.ecs.list_tasks(cluster=self.stack.cluster, desiredStatus="RUNNING")["taskArns"]
            except Exception as exc:  # moto hiccup: try again
                self.errors.append(repr(exc))
                arns = []
            for arn in arns:
                if arn not in self._seen:
                    self._seen.add(arn)
                    t = threading.Thread(target=self._task, args=(arn,), daemon=True)
                    t.start()
                    self._threads.append(t)
            self._stop.wait(0.1)

    def _describe(self, arn: str) -> dict[str, Any]:
        return dict(self.stack.ecs.describe_tasks(cluster=self.stack.cluster, tasks=[arn])["tasks"][0])

    def _task(self, arn: str) -> None:
        try:
            self._run(arn)
        except Exception as exc:
            self.errors.append(f"{arn}: {exc!r}")

    def _run(self, arn: str) -> None:
        task = self._describe(arn)
        override = task["overrides"]["containerOverrides"][0]
        env = {e["name"]: e["value"] for e in override.get("environment", [])}
        if self.crash_output is not None:
            crash_at = time.time() + 0.3 if self.crash_before_start else float(env["LB_START_AT"]) + 0.3
            while time.time() < crash_at and not self._stop.is_set():
                time.sleep(0.05)
            now_ms = int(time.time() * 1000)
            self._finish(arn, [(now_ms, line) for line in self.crash_output], None)
            return
        td = self.stack.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        container = next(c for c in td["containerDefinitions"] if c["name"] == override["name"])
        argv = [*container.get("entryPoint", []), *override.get("command", [])]
        work = self.work_dir / arn.rsplit("/", 1)[-1]
        work.mkdir(parents=True, exist_ok=True)
        proc_env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(work),
                    **env, "LB_K6_API": f"127.0.0.1:{free_port()}", "LB_WORK_DIR": str(work)}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=proc_env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        with self._lock:
            self._procs.append(proc)
        stopper = threading.Thread(target=self._forward_stop, args=(arn, proc), daemon=True)
        stopper.start()
        lines: list[tuple[int, str]] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((int(time.time() * 1000), line.rstrip("\n")))
        proc.wait()
        self._finish(arn, lines, proc.returncode)

    def _forward_stop(self, arn: str, proc: subprocess.Popen[str]) -> None:
        """ECS stop_task: SIGTERM to the container's PID 1 (here: the wrapper shell)."""
        while proc.poll() is None and not self._stop.is_set():
            try:
                if self._describe(arn).get("desiredStatus") == "STOPPED":
                    proc.send_signal(signal.SIGTERM)
                    return
            except Exception:
                pass
            time.sleep(0.2)

    def _finish(self, arn: str, lines: list[tuple[int, str]], code: int | None) -> None:
        stream = self.stack.log_stream(arn)
        logs = self.stack.logs
        logs.create_log_stream(logGroupName=self.stack.log_group, logStreamName=stream)
        if lines:
            logs.put_log_events(logGroupName=self.stack.log_group, logStreamName=stream,
                                logEvents=[{"timestamp": ts, "message": msg or " "} for ts, msg in lines])
        self.outputs[arn] = [msg for _, msg in lines]
        if code is not None:
            self.exit_codes[arn] = code
        if self._describe(arn).get("desiredStatus") != "STOPPED":
            self.stack.ecs.stop_task(cluster=self.stack.cluster, task=arn, reason=EXITED)
