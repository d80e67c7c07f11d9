"""The `ecs` backend: k6 runners as AWS Fargate tasks on the cluster the Pulumi program made.

The controller drives the tasks with boto3 (`AWS_ENDPOINT_URL` points it at moto or
LocalStack). Per phase:

1. **Stack outputs.** `--stack-outputs FILE` (or `LOADBEARING_STACK_OUTPUTS`) is the JSON of
   `pulumi stack output --json`: `cluster_arn`, `task_definition_arn`, `container_name`,
   `subnet_ids`, `security_group_ids`, `scripts_bucket`, `influxdb_url`, `grafana_url`;
   optional `region`, `capacity_provider` (`FARGATE` | `FARGATE_SPOT`), `assign_public_ip`,
   `log_group_name` and the rest of `core.stack_outputs.StackOutputs`. A missing key is
   BadInput (exit 2) naming the key and the fix. The `metrics_store` hook gives the run the
   stack's InfluxDB through the controller's way in (`ecs_store`: `influxdb_controller_url`,
   the controller's user from Secrets Manager; an `--influx-url` that is not the runners'
   store is refused), and `plan_fleet` sizes and prices the fleet within the stack's limits
   (`ecs_planning`).
2. **Task definition contract** (checked before launch, BadInput otherwise): the container
   `container_name` has `entryPoint` `["sh", "-c"]` (the command override is one shell
   script) and an `awslogs` log configuration with `awslogs-group` and
   `awslogs-stream-prefix` (k6's summary is read back from the task's log stream). Task
   `cpu`/`memory` give the runner size and the cost estimate.
3. **Archive.** Each module's script is packed with the real `k6 archive --config` (the
   plan's scenarios and the allow_hosts block list travel inside the archive) and put at
   `s3://<scripts_bucket>/runs/<run_id>/<module>.tar` (a copy stays at
   `RUN_DIR/k6/<module>.archive.tar`). The grafana/k6 image has no AWS CLI and the task role
   needs no S3 permission: the task fetches the archive from a presigned S3 GET URL
   (`LB_ARCHIVE_URL`) with busybox `wget`.
4. **Launch.** One `run_task` per runner (overrides differ per runner): capacity provider
   strategy FARGATE or FARGATE_SPOT, awsvpc network configuration, `startedBy`
   `loadbearing/<run_id>` (ECS allows no `:` there), tags `loadbearing:run_id`,
   `loadbearing:runner`, `loadbearing:module`, `loadbearing:controller` (`host:pid`) plus the
   task definition's own (`propagateTags`), and a container override: the wrapper script
   below as `command`, and as `environment` the k6 runner env (`BASE_URL`, `K6_INFLUXDB_*`),
   `LB_ARCHIVE_URL` and `LB_START_AT`. k6 writes to `--out influxdb=<influxdb_url from the
   stack outputs>/<db>`, with `--include-system-env-vars=false` (the script gets `BASE_URL`
   through `-e`, never the task's credentials).
5. **Start barrier.** `LB_START_AT` is one wall-clock epoch second for the whole phase,
   `start delay` seconds after launch (default 150 s: Fargate provisioning and image pull).
   The wrapper downloads the archive, starts `k6 run --paused` (VUs are initialised before
   the start, as with the process backend), waits for k6's REST API (loopback inside the
   task) to report "paused, initialised", sleeps until `LB_START_AT`, and resumes k6 with
   `k6 resume`. It prints `LBSTART ready <epoch>` and `LBSTART go <epoch.ns>`; the skew
   (go - LB_START_AT per task, and the spread) lands in `RUN_DIR/ecs-tasks.json` and on
   stderr. `initialize` returns once every task is RUNNING (a task not RUNNING 2 s before
   the start time fails the phase); `start` waits for `LB_START_AT` and returns it, failing
   at once if a task dies while waiting. The controller's clock sets `LB_START_AT`; keep
   it NTP-synced (Fargate tasks use Amazon Time Sync).
6. **Summary.** After k6 ends the wrapper prints the `--summary-export` file to stdout, one
   line per event as `LBSUMMARY <n> <line>`, then `LBSUMMARY-END <k6 exit code> <lines>`.
   `poll` reads the task's CloudWatch Logs stream (`<prefix>/<container>/<task id>`) once
   the task (or its container) is STOPPED, and writes `RUN_DIR/k6/<runner>.summary.json`.
7. **Exit codes.** `poll` gives the container's exit code (ECS's, else the wrapper's end
   line). A task that stopped without a complete summary is a failure
   (`Runner.failure` names the ECS stop reason, stop code, exit code, a hint and the last
   output lines) with exit code NO_SUMMARY_EXIT (254) when k6's own code was 0/99/unknown.
   A task ECS stopped from outside mid-run (a Spot reclaim, a termination notice, a manual
   or cost-guard stop) is a failure even with a clean summary (CUT_SHORT_EXIT, 253), named
   by its stop code and reason: its share of the load is missing.
   `poll` calls `describe_tasks` at most every `poll interval` (default 5 s).
8. **Stop.** `stop` calls `stop_task` (reason `loadbearing: <cause>`, the cause inferred:
   a failed sibling, the duration + grace timeout, an abort, or an error) for every
   started task that has not ended, waits up to the grace period for STOPPED, and reads
   what summaries there are. ECS sends SIGTERM, the wrapper forwards it to k6, k6 stops
   gracefully and writes its summary.
9. **Errors.** AWS errors become RunError (exit 4) or BadInput (exit 2) naming the quota
   (`Fargate On-Demand vCPU resource count`, L-3032A538; `Fargate Spot vCPU resource
   count`, L-36FBB829) or the missing IAM permission (the action) and what to do.
10. **Stale tasks.** `cleanup_stale` stops RUNNING tasks started by loadbearing on this host
    whose controller pid is gone (tag `loadbearing:controller`). Tasks end on their own
    after their duration anyway: a runner never outlives its k6 scenario.

Runner planning (`--runners auto`, the cost estimate, `--max-cost`) is in
`runners.backends.ecs_planning`; the stack outputs are read by `ecs_outputs`, the task
definition, wrapper script and task log by `ecs_task`, and AWS errors explained by
`ecs_errors`.

Timing knobs (env): `LOADBEARING_ECS_START_DELAY_S` (150), `LOADBEARING_ECS_POLL_S` (5),
`LOADBEARING_ECS_SUMMARY_WAIT_S` (30: how long a STOPPED task's summary may lag in
CloudWatch Logs), `LOADBEARING_ECS_SPOT` (1/0, else the stack's capacity provider).

Secrets: when the task definition sets `K6_INFLUXDB_USERNAME`/`K6_INFLUXDB_PASSWORD` itself
(environment or `secrets` from Secrets Manager, as infra/runner_fleet.py does), the override
carries no credentials. Otherwise the controller's InfluxDB credentials reach k6 through
the override's environment (visible to whoever may `ecs:DescribeTasks`), except the stack's
controller user, which is never handed to runners (a task definition without runner
credentials is refused). They never go into run.json, ecs-tasks.json or messages;
presigned URLs are not recorded either.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.markup import escape

from core.console import console
from core.durations import parse_duration
from core.errors import Aborted, BadInput, LoadbearingError, RunError

try:  # the AWS SDK is the `ecs` extra: `--backend ecs` without it says how to add it
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ModuleNotFoundError as missing:
    raise BadInput(f"--backend ecs needs the AWS SDK ({missing.name} is not installed): "
                   "pip install 'loadbearing[ecs]' (from a checkout: pip install -e '.[ecs]')") from None
from core.influx import InfluxClient
from core.plan import Plan
from runners import k6
from runners.backends import Fleet, Runner, RunnerSpec
from runners.backends.ecs_errors import QUOTAS, aws_error, describe_run_failures, external_stop, stop_hint
from runners.backends.ecs_outputs import OUTPUTS_FIX, load_stack_outputs
from runners.backends.ecs_planning import RATE_PER_VCPU, VUS_PER_VCPU, FleetTerms, size_fleet
from runners.backends.ecs_store import controller_store
from runners.backends.ecs_task import (
    TaskLog,
    TaskShape,
    parse_task_log,
    task_k6_args,
    task_shape,
    wrapper_script,
)
from runners.influxd import pid_alive
from runners.strategies import Phase

NO_SUMMARY_EXIT = 254            # poll()'s code for a task that stopped without a k6 summary
CUT_SHORT_EXIT = 253             # poll()'s code for a task ECS stopped mid-run (Spot reclaim, ...), summary or not
OK_EXIT_CODES = (0, 99)          # k6 finished (99: thresholds failed), as the controller reads them
OVERRIDES_LIMIT = 8192           # ECS: characters allowed for a task's overrides (JSON)
STOP_REASON_LIMIT = 255          # ECS: characters allowed for stop_task's reason
DEFAULT_START_DELAY_S = 150.0
DEFAULT_POLL_S = 5.0
DEFAULT_SUMMARY_WAIT_S = 30.0
READY_MARGIN_S = 2.0             # every task must be RUNNING this long before LB_START_AT
CREDENTIAL_ENV = frozenset({"K6_INFLUXDB_USERNAME", "K6_INFLUXDB_PASSWORD"})

TaskRunner = Runner[str]  # a Fargate task, by its task ARN


def new_session(region: str | None) -> boto3.session.Session:
    """The boto3 session the backend uses (tests wrap this to add a botocore event hook)."""
    return boto3.session.Session(region_name=region)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"{name}={raw!r}: give a number") from None
    if value < 0:
        raise BadInput(f"{name}={raw!r}: must not be negative")
    return value


def _task_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _scenario_seconds(config: dict[str, Any]) -> float:
    """How long the k6 scenarios of a runner config run (for the timeout cause and the estimate)."""
    longest = 0.0
    for sc in (config.get("scenarios") or {}).values():
        if sc.get("duration"):
            longest = max(longest, parse_duration(sc["duration"]))
        elif sc.get("stages"):
            longest = max(longest, sum(parse_duration(s["duration"]) for s in sc["stages"]))
    return longest


def _stopped(task: dict[str, Any], container: dict[str, Any] | None) -> bool:
    if task.get("lastStatus") == "STOPPED":
        return True
    return bool(container and container.get("lastStatus") == "STOPPED" and container.get("exitCode") is not None)


class EcsBackend:
    """Runners as Fargate tasks (see the module docstring for the whole contract)."""

    name = "ecs"

    def __init__(self, stack_outputs: str | Path | None = None, max_cost: float | None = None, *,
                 endpoint_url: str | None = None, region: str | None = None,
                 vus_per_task: int | None = None, rate_per_task: float | None = None, spot: bool | None = None,
                 start_delay_s: float | None = None, poll_interval_s: float | None = None,
                 summary_wait_s: float | None = None, session: boto3.session.Session | None = None) -> None:
        self.outputs = load_stack_outputs(stack_outputs or os.environ.get("LOADBEARING_STACK_OUTPUTS"))
        self.max_cost = max_cost
        self.estimate_usd: float | None = None  # set by plan_fleet
        self.region = region or self.outputs.cluster_region or os.environ.get("AWS_REGION") \
            or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        env_spot = os.environ.get("LOADBEARING_ECS_SPOT")
        if spot is None and env_spot not in (None, ""):
            spot = env_spot.strip().lower() in ("1", "true", "yes")
        self.spot = spot if spot is not None else self.outputs.capacity_provider == "FARGATE_SPOT"
        self.start_delay_s = start_delay_s if start_delay_s is not None else \
            _env_float("LOADBEARING_ECS_START_DELAY_S", DEFAULT_START_DELAY_S)
        self.poll_interval_s = poll_interval_s if poll_interval_s is not None else \
            _env_float("LOADBEARING_ECS_POLL_S", DEFAULT_POLL_S)
        self.summary_wait_s = summary_wait_s if summary_wait_s is not None else \
            _env_float("LOADBEARING_ECS_SUMMARY_WAIT_S", DEFAULT_SUMMARY_WAIT_S)
        self._session = session or new_session(self.region)
        retry = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=30,
                       user_agent_extra="loadbearing")
        kw: dict[str, Any] = {"region_name": self.region, "config": retry}
        if endpoint_url:
            kw["endpoint_url"] = endpoint_url
        self.ecs = self._session.client("ecs", **kw)
        self.logs = self._session.client("logs", **kw)
        self.s3 = self._session.client("s3", **{**kw, "config": retry.merge(Config(signature_version="s3v4"))})
        self.shape = self._task_shape()
        controller_user = self.outputs.influxdb_controller_username
        if controller_user and not CREDENTIAL_ENV & self.shape.env_names:
            raise BadInput(f"task definition {self.outputs.task_definition_arn} brings no InfluxDB credentials "
                           "(K6_INFLUXDB_USERNAME/_PASSWORD) for the runners, and the controller's own user "
                           f"({controller_user}: read and write) is never handed to them; use the stack's runner "
                           f"task definition (the write-only user). {OUTPUTS_FIX}")
        self.vus_per_task = max(1, int(vus_per_task or _env_float("LOADBEARING_ECS_VUS_PER_TASK", 0)
                                       or round(VUS_PER_VCPU * self.shape.vcpu)))
        self.rate_per_task = float(rate_per_task or _env_float("LOADBEARING_ECS_RATE_PER_TASK", 0)
                                   or RATE_PER_VCPU * self.shape.vcpu)
        self._archives: dict[tuple[str, str], str] = {}   # (run_id, module) -> s3 key
        self._logs: dict[str, TaskLog] = {}                # task arn -> parsed output
        self._next_poll = 0.0
        self._reported: set[int] = set()

    # -- before anything starts: the backend hooks ----------------------------------------
    def plan_fleet(self, plan: Plan, phases: list[Phase], runners: int | None) -> Fleet:
        """`--runners auto`, the stack's cost-guard limits, the cost estimate and `--max-cost`
        (runners.backends.ecs_planning.size_fleet)."""
        fleet = size_fleet(FleetTerms(
            vus_per_task=self.vus_per_task, rate_per_task=self.rate_per_task, vcpu=self.shape.vcpu,
            memory_gb=self.shape.memory_gb, region=self.region, spot=self.spot, start_delay_s=self.start_delay_s,
            max_cost=self.max_cost, runner_count=self.outputs.runner_count,
            runner_max_minutes=self.outputs.runner_max_minutes, public_ip=self.outputs.assign_public_ip,
            influxdb_cpu=self.outputs.influxdb_cpu, influxdb_memory=self.outputs.influxdb_memory),
            plan, phases, runners)
        self.estimate_usd = fleet.estimate_usd
        return fleet

    def metrics_store(self, influx_url: str | None) -> InfluxClient:
        """The stack's store, through the controller's way in (runners.backends.ecs_store): from the
        stack outputs by default, refusing an --influx-url that is not the runners' store."""
        return controller_store(self.outputs, influx_url, self._session)

    # -- set-up --------------------------------------------------------------------
    def _task_shape(self) -> TaskShape:
        try:
            td = self.ecs.describe_task_definition(taskDefinition=self.outputs.task_definition_arn)["taskDefinition"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ClientException", "InvalidParameterException"):
                raise BadInput(f"stack output task_definition_arn {self.outputs.task_definition_arn!r} does not "
                               f"exist in {self.region} ({exc.response['Error'].get('Message')}); "
                               f"{OUTPUTS_FIX}") from None
            raise aws_error(exc, "ecs:DescribeTaskDefinition", region=self.region) from None
        except BotoCoreError as exc:
            raise aws_error(exc, "ecs:DescribeTaskDefinition", region=self.region) from None
        return task_shape(td, self.outputs)

    # -- initialize -------------------------------------------------------------------
    def initialize(self, specs: list[RunnerSpec]) -> list[TaskRunner]:
        """Upload archives, start one task per spec, wait until every task is RUNNING."""
        if self.max_cost is not None and self.estimate_usd is None:
            raise RunError("--max-cost was given but no cost estimate was made before launch (the controller "
                           "must call the backend's plan_fleet first); refusing to start tasks")
        runners: list[TaskRunner] = []
        try:
            urls = {module: self._archive_url(spec) for module, spec in
                    {s.module: s for s in specs}.items()}
            start_at = math.ceil(time.time() + self.start_delay_s)  # the delay covers launch and provisioning
            for spec in specs:
                runners.append(self._run_task(spec, urls[spec.module], start_at, len(specs)))
            self._wait_running(runners, start_at)
        except BaseException as exc:
            cause = ("the run was aborted (SIGINT/SIGTERM) while tasks were starting"
                     if isinstance(exc, Aborted | KeyboardInterrupt)
                     else f"the launch failed: {getattr(exc, 'message', exc)}")
            self._stop(runners, cause, grace_s=10.0)
            if isinstance(exc, LoadbearingError) and not isinstance(exc, RunError):
                raise RunError(exc.message) from None  # the run has begun: a run error (exit 4), recorded
            raise
        return runners

    def _archive_url(self, spec: RunnerSpec) -> str:
        key = f"runs/{spec.run_id}/{spec.module}.tar"
        if (spec.run_id, spec.module) not in self._archives:
            local = spec.run_dir.archive(spec.module)
            self._build_archive(spec, local)
            try:
                self.s3.put_object(Bucket=self.outputs.scripts_bucket, Key=key, Body=local.read_bytes(),
                                   ContentType="application/x-tar", Metadata={"loadbearing-run": spec.run_id})
            except (ClientError, BotoCoreError) as exc:
                raise aws_error(exc, "s3:PutObject", region=self.region,
                                what=f"s3://{self.outputs.scripts_bucket}/{key}") from None
            self._archives[(spec.run_id, spec.module)] = key
        try:
            url: str = self.s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.outputs.scripts_bucket, "Key": key},
                ExpiresIn=int(self.start_delay_s + 3600))
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, "s3:GetObject", region=self.region, what="presigning the archive URL") from None
        return url

    def _build_archive(self, spec: RunnerSpec, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        cfg = spec.run_dir.archive_config(spec.module)
        cfg.write_text(json.dumps(spec.config, indent=2, sort_keys=True))
        env = {k: v for k, v in os.environ.items() if not k.startswith("K6_")}
        env.update({"K6_NO_USAGE_REPORT": "true", "BASE_URL": spec.env.get("BASE_URL", "")})
        try:
            res = subprocess.run([k6.k6_binary(), "archive", "--config", str(cfg), "-O", str(out), str(spec.k6_script)],
                                 capture_output=True, text=True, timeout=120, env=env, cwd=spec.script.parent)
        except subprocess.TimeoutExpired:
            raise RunError(f"k6 archive of module {spec.module} did not finish in 120 s") from None
        if res.returncode != 0:
            raise RunError(f"k6 archive of module {spec.module} failed:\n{res.stderr.strip()[-1500:]}")

    def _task_influx(self, spec: RunnerSpec) -> tuple[str | None, dict[str, str]]:
        """The runners' `--out influxdb=`: the stack output influxdb_url and the run's database (the
        controller's client carries it as `runner_url`, see `metrics_store`). Credentials
        travel in env, never in the URL."""
        return spec.influx_out, {}

    def _run_task(self, spec: RunnerSpec, archive_url: str, start_at: int, phase_tasks: int) -> TaskRunner:
        influx_out, influx_env = self._task_influx(spec)
        script = wrapper_script(task_k6_args(spec, influx_out))
        env = {**spec.env, **influx_env, "LB_ARCHIVE_URL": archive_url, "LB_START_AT": str(start_at)}
        if CREDENTIAL_ENV & self.shape.env_names:  # the task definition brings the store's credentials
            env = {k: v for k, v in env.items() if k not in CREDENTIAL_ENV}
        overrides = {"containerOverrides": [{
            "name": self.outputs.container_name,
            "command": [*self.shape.command_prefix, script],
            "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        }]}
        size = len(json.dumps(overrides, separators=(",", ":")))
        if size > OVERRIDES_LIMIT:
            raise RunError(f"runner {spec.name}: the task's container override is {size} characters; ECS allows "
                           f"{OVERRIDES_LIMIT}. Shorten the tags or environment (long presigned URLs come from "
                           "temporary credentials: a shorter session token helps)")
        provider = "FARGATE_SPOT" if self.spot else "FARGATE"
        token = f"{spec.run_id}/{spec.name}"
        if len(token) > 64:
            token = hashlib.sha256(token.encode()).hexdigest()[:64]
        controller = f"{socket.gethostname()}:{os.getpid()}"
        try:
            resp = self.ecs.run_task(
                cluster=self.outputs.cluster_arn, taskDefinition=self.outputs.task_definition_arn, count=1,
                startedBy=f"loadbearing/{spec.run_id}"[:128], clientToken=token,
                # the task definition's tags (the stack's, and the one the cost guard may stop) on the task
                propagateTags="TASK_DEFINITION",
                capacityProviderStrategy=[{"capacityProvider": provider, "weight": 1}],
                networkConfiguration={"awsvpcConfiguration": {
                    "subnets": self.outputs.subnet_ids, "securityGroups": self.outputs.security_group_ids,
                    "assignPublicIp": "ENABLED" if self.outputs.assign_public_ip else "DISABLED"}},
                overrides=overrides,
                tags=[{"key": "loadbearing:run_id", "value": spec.run_id},
                      {"key": "loadbearing:runner", "value": spec.name},
                      {"key": "loadbearing:module", "value": spec.module},
                      {"key": "loadbearing:controller", "value": controller[:256]}])
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, "ecs:RunTask", region=self.region, what=f"runner {spec.name}",
                            quota=(self.spot, phase_tasks, self.shape.vcpu)) from None
        tasks = resp.get("tasks") or []
        if resp.get("failures") or not tasks:
            raise RunError(describe_run_failures(resp.get("failures") or [], runner=spec.name, spot=self.spot,
                                                 region=self.region, tasks=phase_tasks, vcpu=self.shape.vcpu))
        arn = tasks[0]["taskArn"]
        return Runner(spec=spec, handle=arn, info={
            "task_arn": arn, "capacity_provider": provider, "start_at": start_at,
            "expected_end": start_at + _scenario_seconds(spec.config) + k6.parse_graceful_stop_s(),
            "log_stream": f"{self.shape.log_prefix}/{self.outputs.container_name}/{_task_id(arn)}"})

    def _describe(self, arns: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(arns), 100):
            try:
                resp = self.ecs.describe_tasks(cluster=self.outputs.cluster_arn, tasks=arns[i:i + 100])
            except (ClientError, BotoCoreError) as exc:
                raise aws_error(exc, "ecs:DescribeTasks", region=self.region) from None
            for t in resp.get("tasks", []):
                out[t["taskArn"]] = t
        return out

    def _container(self, task: dict[str, Any]) -> dict[str, Any]:
        for c in task.get("containers", []):
            if c.get("name") == self.outputs.container_name:
                return dict(c)
        return {}

    def _wait_running(self, runners: list[TaskRunner], start_at: int) -> None:
        while True:
            tasks = self._describe([r.handle for r in runners])
            pending: list[str] = []
            early: list[str] = []
            for r in runners:
                t = tasks.get(r.handle)
                if t is None:
                    r.exit_code = NO_SUMMARY_EXIT
                    r.failure = f"task {_task_id(r.handle)} is unknown to ECS (describe_tasks: MISSING)"
                    early.append(f"runner {r.spec.name}: {r.failure}")
                elif _stopped(t, self._container(t)):
                    self._finalize(r, t, self._read_log(r))
                    early.append(f"runner {r.spec.name}: {r.failure}")
                elif t.get("lastStatus") != "RUNNING":
                    pending.append(f"runner {r.spec.name} of module {r.spec.module} ({t.get('lastStatus', '?')})")
                else:
                    r.info.setdefault("running_at", time.time())
            if early:
                raise RunError(f"{len(early)} Fargate task(s) stopped before the start: " + " | ".join(early))
            if not pending:
                return
            if time.time() >= start_at - READY_MARGIN_S:
                name, code = QUOTAS[self.spot]
                raise RunError(f"{len(pending)} of {len(runners)} Fargate tasks were not RUNNING "
                               f"{READY_MARGIN_S:.0f} s before the common start time ({self.start_delay_s:.0f} s "
                               f"after launch): {', '.join(pending)}. Fargate had no capacity for them yet "
                               f"({'Spot capacity is reclaimable and often short' if self.spot else 'on-demand'} "
                               f"capacity in the subnets' zones), or the account's quota \"{name}\" ({code}) in "
                               f"{self.region} held them back, or the image pull was slow; the run stopped every "
                               "task and is marked incomplete. Retry, add subnets in more zones, request more quota, "
                               "or raise LOADBEARING_ECS_START_DELAY_S")
            time.sleep(max(0.05, min(self.poll_interval_s, start_at - READY_MARGIN_S - time.time())))

    # -- start ----------------------------------------------------------------------
    def start(self, runners: list[TaskRunner]) -> float:
        """Wait for the phase's common start time (the tasks release themselves) and return it."""
        if not runners:
            return time.time()
        start_at = float(runners[0].info["start_at"])
        while (left := start_at - time.time()) > 0:
            time.sleep(min(left, max(self.poll_interval_s, 0.05)))
            if time.time() >= start_at:
                break
            self._next_poll = 0.0
            if any(c is not None for c in self.poll(runners)):  # a task died waiting: fail now
                gone = [r for r in runners if r.exit_code is not None]
                for r in gone:
                    r.failure = r.failure or f"task {_task_id(r.handle)} ended before the start"
                raise RunError(f"{len(gone)} Fargate task(s) stopped before the start: "
                               + " | ".join(f"runner {r.spec.name}: {r.failure}" for r in gone))
        for r in runners:
            r.started_at = start_at
        return start_at

    # -- poll -------------------------------------------------------------------------
    def poll(self, runners: list[TaskRunner]) -> list[int | None]:
        """Exit codes; asks ECS at most every poll interval (the controller polls often)."""
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + self.poll_interval_s
            self._refresh(runners)
        return [r.exit_code for r in runners]

    def _refresh(self, runners: list[TaskRunner]) -> None:
        live = [r for r in runners if r.handle is not None and r.exit_code is None]
        if not live:
            return
        try:
            tasks = self._describe([r.handle for r in live])
        except RunError as exc:
            if "throttled" in exc.message:
                return  # ask again at the next interval
            raise
        for r in live:
            t = tasks.get(r.handle)
            if t is None:
                r.exit_code = NO_SUMMARY_EXIT
                r.ended_at = time.time()
                r.failure = f"task {_task_id(r.handle)} is gone from ECS (describe_tasks: MISSING)"
                continue
            if not _stopped(t, self._container(t)):
                continue
            seen = r.info.setdefault("stopped_seen", time.monotonic())
            log = self._read_log(r)
            if log.ended or time.monotonic() - seen >= self.summary_wait_s:
                self._finalize(r, t, log)

    def _read_log(self, r: TaskRunner) -> TaskLog:
        """The task's output from CloudWatch Logs (empty when its stream does not exist)."""
        lines: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": self.shape.log_group, "logStreamName": r.info["log_stream"],
                                  "startFromHead": True}
        try:
            while True:
                resp = self.logs.get_log_events(**kwargs)
                lines += [e.get("message", "") for e in resp.get("events", [])]
                token = resp.get("nextForwardToken")
                if not resp.get("events") or not token or token == kwargs.get("nextToken"):
                    break
                kwargs["nextToken"] = token
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise aws_error(exc, "logs:GetLogEvents", region=self.region,
                                what=f"log group {self.shape.log_group}") from None
        except BotoCoreError as exc:
            raise aws_error(exc, "logs:GetLogEvents", region=self.region) from None
        log = parse_task_log(lines)
        self._logs[r.handle] = log
        return log

    def _finalize(self, r: TaskRunner, task: dict[str, Any], log: TaskLog) -> None:
        """Record a STOPPED task's outcome on its TaskRunner; write its summary when there is one."""
        container = self._container(task)
        ecs_code = container.get("exitCode") if container.get("lastStatus") == "STOPPED" else None
        code = ecs_code if ecs_code is not None else log.exit_code
        stopped_at = task.get("stoppedAt")
        r.ended_at = r.ended_at or (stopped_at.timestamp() if isinstance(stopped_at, datetime) else time.time())
        start_at = r.info.get("start_at")
        r.info.update({
            "last_status": task.get("lastStatus"), "stopped_reason": task.get("stoppedReason") or None,
            "stop_code": task.get("stopCode"), "container_reason": container.get("reason"), "exit_code": code,
            "ready_at": log.ready_at, "go_at": log.go_at, "summary": log.summary is not None,
            "skew_s": None if log.go_at is None or start_at is None else round(log.go_at - start_at, 3),
        })
        tid = _task_id(r.handle)
        cut = external_stop(task)
        if log.summary is not None:
            r.spec.run_dir.write_summary(r.spec.name, log.summary)
            if code in OK_EXIT_CODES and not cut:
                r.exit_code = code
                return
            # a task cut short is a failure even when k6 stopped cleanly: its share of the load is missing
            r.exit_code = CUT_SHORT_EXIT if cut or code is None or code in OK_EXIT_CODES else code
            r.failure = r.failure or ((f"{cut}; " if cut else "") + f"k6 exited with code {code} in task {tid}"
                                      + (f"; last output: {' / '.join(log.tail())}" if log.tail() else ""))
            return
        r.exit_code = code if code is not None and code not in OK_EXIT_CODES else NO_SUMMARY_EXIT
        if r.failure:
            return
        parts: list[str] = [cut] if cut else []
        if r.info.get("stop_cause"):
            parts.append(f"stopped by loadbearing ({r.info['stop_cause']})")
        reason = task.get("stoppedReason") or ""
        if reason and not reason.startswith("loadbearing:"):  # not our own stop reason again
            parts.append(f"ECS: {reason}" + (f" (stop code {task['stopCode']})" if task.get("stopCode") else ""))
        if container.get("reason"):
            parts.append(f"container: {container['reason']}")
        parts.append(f"exit code {code}" if code is not None else "no exit code")
        hint = stop_hint([reason, str(task.get("stopCode") or ""), str(container.get("reason") or "")], code, log)
        if hint and not r.info.get("stop_cause"):
            parts.append(hint)
        text = f"task {tid} stopped without a k6 summary: {'; '.join(parts)}"
        if log.tail():
            text += f"; last output: {' / '.join(log.tail())}"
        r.failure = text

    # -- stop -----------------------------------------------------------------------
    def stop(self, runners: list[TaskRunner], grace_s: float = 10.0) -> None:
        """stop_task every started task that has not ended (the reason names the cause),
        wait up to `grace_s` for STOPPED, read their output; record every task."""
        self._stop(runners, self._infer_cause(runners), grace_s)

    def _infer_cause(self, runners: list[TaskRunner]) -> str:
        failed = [r for r in runners if r.failure and r.exit_code is not None]
        if failed:
            return f"runner {failed[0].spec.name} failed; stopping its siblings"
        exc = sys.exc_info()[1]
        if isinstance(exc, Aborted | KeyboardInterrupt):
            return "the run was aborted (SIGINT/SIGTERM)"
        if isinstance(exc, LoadbearingError):
            return f"the run ended with an error: {exc.message}"
        ends = [float(r.info["expected_end"]) for r in runners if r.info.get("expected_end")]
        if ends and time.time() > max(ends):
            return "timeout: the phase outlived its duration + graceful stop"
        return "the run was aborted or ended early by the controller"

    def _stop(self, runners: list[TaskRunner], cause: str, grace_s: float) -> None:
        live = [r for r in runners if r.handle is not None and r.exit_code is None]
        problems: list[str] = []
        for r in live:
            if r.info.get("stop_sent"):
                continue
            try:
                self.ecs.stop_task(cluster=self.outputs.cluster_arn, task=r.handle,
                                   reason=f"loadbearing: {cause}"[:STOP_REASON_LIMIT])
                r.info["stop_sent"] = True
                r.info["stop_cause"] = cause
            except (ClientError, BotoCoreError) as exc:
                msg = aws_error(exc, "ecs:StopTask", region=self.region, what=f"task {_task_id(r.handle)}").message
                problems.append(msg)
                r.failure = r.failure or f"could not stop task {_task_id(r.handle)}: {msg}"
        deadline = time.monotonic() + grace_s
        waiting = [r for r in live if r.info.get("stop_sent") and not r.info.get("stop_waited")]
        while waiting:
            try:
                tasks = self._describe([r.handle for r in waiting])
            except RunError as exc:
                problems.append(exc.message)
                break
            for r in list(waiting):
                t = tasks.get(r.handle)
                if t is None or _stopped(t, self._container(t)):
                    if t is not None:
                        try:
                            log = self._read_log(r)
                        except LoadbearingError:
                            log = TaskLog()
                        self._finalize(r, t, log)
                    waiting.remove(r)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(min(max(self.poll_interval_s, 0.05), 1.0))
        for r in live:
            r.info["stop_waited"] = True  # a second stop() (the controller's finally) does not wait again
            if r.exit_code is None:
                r.failure = r.failure or (f"stopped by loadbearing ({cause}); ECS had not reported task "
                                          f"{_task_id(r.handle)} STOPPED within {grace_s:.0f} s")
            r.ended_at = r.ended_at or time.time()
        for msg in problems:
            console.print(f"[red]ecs:[/] {escape(msg)}")
        self._write_record(runners)

    # -- records ------------------------------------------------------------------------
    def _write_record(self, runners: list[TaskRunner]) -> None:
        """RUN_DIR/ecs-tasks.json: every task of the run, its outcome and its start skew."""
        started = [r for r in runners if r.handle is not None]
        if not started:
            return
        run_dir = started[0].spec.run_dir
        doc = run_dir.read_ecs_tasks() or {"run_id": started[0].spec.run_id,
                                           "cluster_arn": self.outputs.cluster_arn, "region": self.region, "tasks": []}
        by_arn = {t["task_arn"]: t for t in doc.get("tasks", [])}
        keys = ("capacity_provider", "start_at", "running_at", "ready_at", "go_at", "skew_s", "last_status",
                "stopped_reason", "stop_code", "container_reason", "exit_code", "summary", "stop_cause")
        for r in started:
            entry = {"runner": r.spec.name, "module": r.spec.module, "task_arn": r.handle,
                     **{k: r.info.get(k) for k in keys}, "failure": r.failure}
            by_arn[r.handle] = entry
        doc["tasks"] = list(by_arn.values())
        skews = [t["skew_s"] for t in doc["tasks"] if t.get("skew_s") is not None]
        doc["start_skew"] = None if not skews else {
            "tasks": len(skews), "min_s": min(skews), "max_s": max(skews), "spread_s": round(max(skews) - min(skews), 3)}
        run_dir.write_ecs_tasks(doc)
        start_at = started[0].info.get("start_at")
        phase_skews = [r.info["skew_s"] for r in started if r.info.get("skew_s") is not None]
        if isinstance(start_at, int) and phase_skews and start_at not in self._reported \
                and all(r.exit_code is not None for r in started):
            self._reported.add(start_at)
            console.print(f"ecs: start barrier: {len(phase_skews)} task(s) resumed k6 between "
                          f"{min(phase_skews):+.3f} s and {max(phase_skews):+.3f} s of the start time "
                          f"(spread {max(phase_skews) - min(phase_skews):.3f} s)")

    # -- stale tasks ----------------------------------------------------------------------
    def cleanup_stale(self) -> list[str]:
        """Stop RUNNING tasks loadbearing started from this host whose controller pid is gone."""
        found: list[str] = []
        arns: list[str] = []
        try:
            for page in self.ecs.get_paginator("list_tasks").paginate(cluster=self.outputs.cluster_arn,
                                                                       desiredStatus="RUNNING"):
                arns += page.get("taskArns", [])
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, "ecs:ListTasks", region=self.region) from None
        host = socket.gethostname()
        for i in range(0, len(arns), 100):
            try:
                resp = self.ecs.describe_tasks(cluster=self.outputs.cluster_arn, tasks=arns[i:i + 100],
                                               include=["TAGS"])
            except (ClientError, BotoCoreError) as exc:
                raise aws_error(exc, "ecs:DescribeTasks", region=self.region) from None
            for t in resp.get("tasks", []):
                started_by = t.get("startedBy") or ""
                if not started_by.startswith("loadbearing/"):
                    continue
                tags = {x.get("key"): x.get("value") for x in t.get("tags") or []}
                owner_host, _, pid_text = str(tags.get("loadbearing:controller") or "").rpartition(":")
                if owner_host != host or not pid_text.isdigit() or pid_alive(int(pid_text)):
                    continue  # another machine's run, or a live controller
                run_id = started_by.split("/", 1)[1]
                try:
                    self.ecs.stop_task(cluster=self.outputs.cluster_arn, task=t["taskArn"],
                                       reason=f"loadbearing: stale runner of run {run_id} (controller pid "
                                              f"{pid_text} on {host} is gone)"[:STOP_REASON_LIMIT])
                except (ClientError, BotoCoreError) as exc:
                    raise aws_error(exc, "ecs:StopTask", region=self.region) from None
                found.append(f"stopped stale Fargate task {_task_id(t['taskArn'])} "
                             f"({tags.get('loadbearing:runner', '?')}) of run {run_id}: its controller "
                             f"(pid {pid_text}) is gone")
        return found
