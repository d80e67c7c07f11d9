"""The `ecs` backend: k6 runners as AWS Fargate tasks on the cluster the Pulumi program made.

The controller drives the tasks with boto3 (`AWS_ENDPOINT_URL` points it at moto or
LocalStack). Per phase:

1. **Stack outputs.** `--stack-outputs FILE` (or `LOADBEARING_STACK_OUTPUTS`) is the JSON of
   `pulumi stack output --json`: `cluster_arn`, `task_definition_arn`, `container_name`,
   `subnet_ids`, `security_group_ids`, `scripts_bucket`, `influxdb_url`, `grafana_url`;
   optional `region`, `capacity_provider` (`FARGATE` | `FARGATE_SPOT`), `assign_public_ip`,
   `log_group_name`, `vus_per_task`, `rate_per_task`. A missing key is BadInput (exit 2)
   naming the key and the fix.
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
   `loadbearing:runner`, `loadbearing:module`, `loadbearing:controller` (`host:pid`), and a
   container override: the wrapper script below as `command`, and as `environment` the k6
   runner env (`BASE_URL`, `K6_INFLUXDB_*`), `LB_ARCHIVE_URL` and `LB_START_AT`.
   k6 writes to `--out influxdb=<influxdb_url from the stack outputs>/<db>`.
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

Runner planning: a task of 1 vCPU carries VUS_PER_VCPU (300) VUs or RATE_PER_VCPU (200)
iterations/s, scaled by the task's vCPU; `vus_per_task` / `rate_per_task` (stack outputs,
`LOADBEARING_ECS_VUS_PER_TASK` / `_RATE_PER_TASK`) override. `--runners auto` is the
largest `module_tasks` over the plan's modules (`plan_runners`). `plan_fleet` (called by
the controller before anything starts) resolves it, prints the cost estimate
(`runners.cost`) and refuses above `--max-cost` (exit 2).

Timing knobs (env): `LOADBEARING_ECS_START_DELAY_S` (150), `LOADBEARING_ECS_POLL_S` (5),
`LOADBEARING_ECS_SUMMARY_WAIT_S` (30: how long a STOPPED task's summary may lag in
CloudWatch Logs), `LOADBEARING_ECS_SPOT` (1/0, else the stack's capacity provider).

Secrets: when the task definition sets `K6_INFLUXDB_USERNAME`/`K6_INFLUXDB_PASSWORD` itself
(environment or `secrets` from Secrets Manager, as infra/runner_fleet.py does), the override
carries no credentials. Otherwise the controller's InfluxDB credentials reach k6 through
the override's environment (visible to whoever may `ecs:DescribeTasks`). They never go
into run.json, ecs-tasks.json or messages; presigned URLs are not recorded either.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError
from rich.markup import escape

from runners import cost, k6
from runners.backends import Runner, RunnerSpec
from runners.durations import parse_duration
from runners.errors import BadInput, LoadbearingError, RunError
from runners.fleet import segment, segment_sequence
from runners.influxd import pid_alive
from runners.progress import console

if TYPE_CHECKING:
    from runners.controller import RunOptions
    from runners.plan import Module, Plan

REQUIRED_OUTPUTS = ("cluster_arn", "task_definition_arn", "container_name", "subnet_ids",
                    "security_group_ids", "scripts_bucket", "influxdb_url", "grafana_url")
OUTPUTS_FIX = ("run `pulumi up` for the stack, then `pulumi stack output --json --show-secrets > FILE` "
               "in the project directory and pass it with --stack-outputs FILE")
CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
QUOTAS = {False: ("Fargate On-Demand vCPU resource count", "L-3032A538"),
          True: ("Fargate Spot vCPU resource count", "L-36FBB829")}

NO_SUMMARY_EXIT = 254            # poll()'s code for a task that stopped without a k6 summary
OK_EXIT_CODES = (0, 99)          # k6 finished (99: thresholds failed), as the controller reads them
OVERRIDES_LIMIT = 8192           # ECS: characters allowed for a task's overrides (JSON)
STOP_REASON_LIMIT = 255          # ECS: characters allowed for stop_task's reason
DEFAULT_START_DELAY_S = 150.0
DEFAULT_POLL_S = 5.0
DEFAULT_SUMMARY_WAIT_S = 30.0
READY_MARGIN_S = 2.0             # every task must be RUNNING this long before LB_START_AT
TEARDOWN_S = 20.0                # task stop and log flush, for the cost estimate
VUS_PER_VCPU = 300
RATE_PER_VCPU = 200.0
K6_API = "127.0.0.1:6565"        # k6's REST API inside the task (loopback of the task's netns)
SUMMARY_MARK = "LBSUMMARY"
END_MARK = "LBSUMMARY-END"
START_MARK = "LBSTART"
TASKS_RECORD = "ecs-tasks.json"
CREDENTIAL_ENV = frozenset({"K6_INFLUXDB_USERNAME", "K6_INFLUXDB_PASSWORD"})

# The container command (entryPoint ["sh", "-c"]). POSIX sh; busybox (grafana/k6 is alpine)
# and dash/GNU both run it. {k6_args} is the shell-quoted `k6 run` arguments.
WRAPPER = """\
set -u
api="${{LB_K6_API:-{api}}}"
dir="${{LB_WORK_DIR:-/tmp/loadbearing}}"
mkdir -p "$dir" && cd "$dir" || {{ echo "loadbearing: cannot write to $dir"; exit 90; }}
echo "{start} launched $(date +%s)"
if ! wget -q -O archive.tar "$LB_ARCHIVE_URL"; then
  echo "loadbearing: could not download the k6 archive from S3 (presigned URL)"
  exit 91
fi
k6 {k6_args} --address "$api" archive.tar &
k6pid=$!
trap 'kill -TERM "$k6pid" 2>/dev/null' TERM INT
until wget -q -O - "http://$api/v1/status" 2>/dev/null | grep -q '"status":4'; do
  kill -0 "$k6pid" 2>/dev/null || break
  sleep 0.1
done
echo "{start} ready $(date +%s)"
left=$((LB_START_AT - $(date +%s) - 1))
if [ "$left" -gt 0 ]; then sleep "$left" & wait $!; fi
while [ "$(date +%s)" -lt "$LB_START_AT" ] && kill -0 "$k6pid" 2>/dev/null; do sleep 0.01; done
if kill -0 "$k6pid" 2>/dev/null; then
  k6 resume --address "$api" >/dev/null 2>&1
  echo "{start} go $(date +%s.%N)"
fi
code=0
wait "$k6pid" || code=$?
while kill -0 "$k6pid" 2>/dev/null; do if wait "$k6pid"; then code=0; else code=$?; fi; done
if [ -s summary.json ]; then awk '{{print "{summary} " NR " " $0}}' summary.json; fi
echo "{end} $code $(awk 'END {{print NR}}' summary.json 2>/dev/null || echo 0)"
exit "$code"
"""


# -- stack outputs ----------------------------------------------------------------------

@dataclass(frozen=True)
class StackOutputs:
    """The Pulumi stack outputs the backend needs (ARCHITECTURE.md), validated."""

    path: Path
    cluster_arn: str
    task_definition_arn: str
    container_name: str
    subnet_ids: list[str]
    security_group_ids: list[str]
    scripts_bucket: str
    influxdb_url: str
    grafana_url: str
    region: str | None = None
    capacity_provider: str = "FARGATE"
    assign_public_ip: bool = False
    log_group_name: str | None = None
    vus_per_task: int | None = None
    rate_per_task: float | None = None


def _arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


def _string_list(path: Path, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadInput(f"{path}: stack output {key!r} must be a non-empty list of IDs (got {value!r}); "
                       f"{OUTPUTS_FIX}")
    return list(value)


def load_stack_outputs(path: str | Path | None) -> StackOutputs:
    """Read `pulumi stack output --json`; BadInput (exit 2) naming the file, the key and the fix."""
    if path is None:
        raise BadInput("--backend ecs needs --stack-outputs FILE (or LOADBEARING_STACK_OUTPUTS): "
                       f"the JSON of `pulumi stack output --json`; {OUTPUTS_FIX}")
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"--stack-outputs {p}: file not found; {OUTPUTS_FIX}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--stack-outputs {p}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"--stack-outputs {p}: not JSON ({exc}); {OUTPUTS_FIX}") from None
    if not isinstance(data, dict):
        raise BadInput(f"--stack-outputs {p}: expected a JSON object of outputs; {OUTPUTS_FIX}")
    missing = [k for k in REQUIRED_OUTPUTS if data.get(k) in (None, "", [])]
    if missing:
        raise BadInput(f"--stack-outputs {p}: missing stack output{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(repr(k) for k in missing)} (the Pulumi program in infra/ exports "
                       f"{', '.join(REQUIRED_OUTPUTS)}); {OUTPUTS_FIX}")
    used = (*REQUIRED_OUTPUTS, "region", "capacity_provider", "assign_public_ip", "log_group_name",
            "vus_per_task", "rate_per_task")
    secret = [k for k in used if data.get(k) == "[secret]"]
    if secret:
        raise BadInput(f"--stack-outputs {p}: {', '.join(map(repr, secret))} is '[secret]'; export the "
                       "outputs with `pulumi stack output --json --show-secrets`")
    for key in ("cluster_arn", "task_definition_arn", "container_name", "scripts_bucket", "influxdb_url",
                "grafana_url"):
        if not isinstance(data[key], str):
            raise BadInput(f"--stack-outputs {p}: stack output {key!r} must be a string (got {data[key]!r})")
    provider = str(data.get("capacity_provider") or "FARGATE").upper()
    if provider not in CAPACITY_PROVIDERS:
        raise BadInput(f"--stack-outputs {p}: capacity_provider {data.get('capacity_provider')!r} is not "
                       "FARGATE or FARGATE_SPOT")
    public = data.get("assign_public_ip", False)
    if isinstance(public, str):
        public = public.strip().upper() in ("ENABLED", "TRUE", "1", "YES")

    def number(key: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise BadInput(f"--stack-outputs {p}: {key} must be a number (got {value!r})") from None
        if out <= 0:
            raise BadInput(f"--stack-outputs {p}: {key} must be above zero (got {value!r})")
        return out

    vus = number("vus_per_task")
    return StackOutputs(
        path=p, cluster_arn=data["cluster_arn"], task_definition_arn=data["task_definition_arn"],
        container_name=data["container_name"], subnet_ids=_string_list(p, "subnet_ids", data["subnet_ids"]),
        security_group_ids=_string_list(p, "security_group_ids", data["security_group_ids"]),
        scripts_bucket=data["scripts_bucket"], influxdb_url=data["influxdb_url"].rstrip("/"),
        grafana_url=data["grafana_url"], region=data.get("region") or _arn_region(data["cluster_arn"]),
        capacity_provider=provider, assign_public_ip=bool(public),
        log_group_name=data.get("log_group_name") or None,
        vus_per_task=None if vus is None else int(vus), rate_per_task=number("rate_per_task"),
    )


# -- task definition ----------------------------------------------------------------------

@dataclass(frozen=True)
class TaskShape:
    """What the backend reads from the task definition: size, entry point, log stream naming."""

    vcpu: float
    memory_gb: float
    log_group: str
    log_prefix: str
    command_prefix: tuple[str, ...]   # before the script in the command override ("-c" for entryPoint ["sh"])
    env_names: frozenset[str] = frozenset()  # environment and secrets the task definition sets itself


def _units(value: Any, per_unit: float, unit_words: tuple[str, ...]) -> float | None:
    """'1024' -> 1024/per_unit; '1 vCPU' / '2 GB' -> 1 / 2."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    for word in unit_words:
        if text.lower().endswith(word.lower()):
            return float(text[: -len(word)].strip())
    return float(text) / per_unit


def task_shape(td: dict[str, Any], outputs: StackOutputs) -> TaskShape:
    """Check the task definition against the backend's contract; BadInput naming the fix."""
    where = f"task definition {outputs.task_definition_arn}"
    containers = {c.get("name"): c for c in td.get("containerDefinitions", [])}
    container = containers.get(outputs.container_name)
    if container is None:
        raise BadInput(f"stack output container_name {outputs.container_name!r} is not a container of the "
                       f"{where} (containers: {', '.join(sorted(map(str, containers))) or 'none'}); "
                       f"fix the output or the task definition, then {OUTPUTS_FIX}")
    entry = [str(x) for x in container.get("entryPoint") or []]
    if not entry or Path(entry[0]).name not in ("sh", "ash", "bash", "dash"):
        raise BadInput(f"{where}: container {outputs.container_name!r} must have entryPoint [\"sh\", \"-c\"] "
                       f"(loadbearing runs a shell wrapper around k6; got {entry or 'the image default'}); "
                       "set entryPoint in the Pulumi program's container definition")
    prefix: tuple[str, ...] = () if entry[-1] == "-c" else ("-c",)
    options = (container.get("logConfiguration") or {}).get("options") or {}
    driver = (container.get("logConfiguration") or {}).get("logDriver")
    group = options.get("awslogs-group") or outputs.log_group_name
    stream_prefix = options.get("awslogs-stream-prefix")
    if driver != "awslogs" or not group or not stream_prefix:
        raise BadInput(f"{where}: container {outputs.container_name!r} needs logConfiguration logDriver "
                       "'awslogs' with options awslogs-group and awslogs-stream-prefix (loadbearing reads "
                       "each runner's k6 summary from its CloudWatch Logs stream); set it in the Pulumi program")
    try:
        vcpu = _units(td.get("cpu") or container.get("cpu"), 1024.0, ("vcpu",))
        mem = _units(td.get("memory") or container.get("memory"), 1024.0, ("gb",))
    except ValueError:
        vcpu = mem = None
    if not vcpu or not mem:
        raise BadInput(f"{where}: task-level cpu and memory are required for Fargate (got cpu={td.get('cpu')!r}, "
                       f"memory={td.get('memory')!r})")
    names = frozenset(str(e.get("name")) for e in [*(container.get("environment") or []),
                                                   *(container.get("secrets") or [])])
    return TaskShape(vcpu=vcpu, memory_gb=mem, log_group=str(group), log_prefix=str(stream_prefix),
                     command_prefix=prefix, env_names=names)


# -- the task's command -----------------------------------------------------------------

def task_k6_args(spec: RunnerSpec, influx_out: str | None) -> list[str]:
    """`k6 run` arguments inside the task (the load shape is in the archive; the wrapper adds
    `--address` and the archive path)."""
    args = ["run", "--quiet", "--no-usage-report", "--paused", "--summary-export", "summary.json",
            "--execution-segment", segment(spec.index, spec.count),
            "--execution-segment-sequence", segment_sequence(spec.count)]
    for key, value in sorted(spec.tags.items()):
        args += ["--tag", f"{key}={value}"]
    if influx_out:
        args += ["--out", f"influxdb={influx_out}"]
    return args


def wrapper_script(k6_args: list[str]) -> str:
    """The shell script the task runs (see the module docstring, step 5 and 6)."""
    return WRAPPER.format(k6_args=" ".join(shlex.quote(a) for a in k6_args), api=K6_API,
                          start=START_MARK, summary=SUMMARY_MARK, end=END_MARK)


@dataclass
class TaskLog:
    """What one task printed, parsed: the k6 summary (when complete), markers, the last lines."""

    lines: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    exit_code: int | None = None          # from the wrapper's end line
    ended: bool = False                   # the wrapper printed its end line
    ready_at: float | None = None
    go_at: float | None = None

    def tail(self, n: int = 4) -> list[str]:
        plain = [ln for ln in self.lines if not ln.startswith((SUMMARY_MARK, START_MARK))]
        return [ln.strip()[:240] for ln in plain if ln.strip()][-n:]


_SUMMARY_LINE = re.compile(rf"^{SUMMARY_MARK} (\d+) ?(.*)$")
_END_LINE = re.compile(rf"^{END_MARK} (-?\d+) (\d+)")
_EPOCH = re.compile(r"^(\d+)(\.\d+)?")


def _epoch(text: str) -> float | None:
    m = _EPOCH.match(text.strip())
    if not m:
        return None
    return float(m.group(1) + (m.group(2) or ""))


def parse_task_log(lines: list[str]) -> TaskLog:
    """Parse a task's output; the summary counts only when every numbered line arrived."""
    log = TaskLog(lines=list(lines))
    numbered: dict[int, str] = {}
    expected: int | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        end = _END_LINE.match(line)
        if end:
            log.ended = True
            log.exit_code = int(end.group(1))
            expected = int(end.group(2))
            continue
        m = _SUMMARY_LINE.match(line)
        if m:
            numbered[int(m.group(1))] = m.group(2)
            continue
        if line.startswith(f"{START_MARK} ready "):
            log.ready_at = _epoch(line.split(" ", 2)[2])
        elif line.startswith(f"{START_MARK} go "):
            log.go_at = _epoch(line.split(" ", 2)[2])
    if expected and sorted(numbered) == list(range(1, expected + 1)):
        try:
            data = json.loads("\n".join(numbered[i] for i in range(1, expected + 1)))
            if isinstance(data, dict):
                log.summary = data
        except json.JSONDecodeError:
            pass
    return log


# -- runner planning ---------------------------------------------------------------------

def module_tasks(module: Module, vus_per_task: int, rate_per_task: float) -> int:
    """Fargate tasks one module needs so no task carries more than its capacity."""
    if module.rate is not None:
        peak = max([module.rate, *(s.target for s in module.stages or [])])
        vus = module.max_vus or k6.default_max_vus(module.rate)
        return max(1, math.ceil(peak / rate_per_task), math.ceil(vus / vus_per_task))
    assert module.vus is not None
    peak_vus = max([module.vus, *(int(s.target) for s in module.stages or [])])
    return max(1, math.ceil(peak_vus / vus_per_task))


def plan_runners(plan: Plan, vus_per_task: int, rate_per_task: float = RATE_PER_VCPU) -> int:
    """`--runners auto`: tasks per module so that the most loaded module fits (every module
    gets the same count, as the controller runs them)."""
    return max(module_tasks(m, vus_per_task, rate_per_task) for m in plan.modules)


@dataclass(frozen=True)
class FleetEstimate:
    total_usd: float
    text: str


def plan_fleet(opts: RunOptions) -> RunOptions:
    """Before anything starts (exit 2 on problems): resolve `--runners auto` (runners == 0),
    print the cost estimate to stderr and refuse above `--max-cost`. Returns the options
    with the runner count and the estimate filled in. The controller calls this first."""
    from runners.plan import load_plan

    options = dict(opts.backend_options or {})
    options.pop("estimate_usd", None)
    backend = EcsBackend(**options)  # type: ignore[arg-type]
    plan = load_plan(opts.plan_path)
    needed = plan_runners(plan, backend.vus_per_task, backend.rate_per_task)
    runners = opts.runners or needed
    from runners.controller import MAX_RUNNERS

    if not opts.runners and runners > MAX_RUNNERS:
        raise BadInput(f"--runners auto: the plan needs {runners} tasks per module at {backend.vus_per_task} VUs / "
                       f"{backend.rate_per_task:g} it/s per task, above the limit of {MAX_RUNNERS}; use bigger "
                       "tasks (runnerCpu/runnerMemory) or LOADBEARING_ECS_VUS_PER_TASK")
    if not opts.runners:
        console.print(f"ecs: --runners auto -> {runners} task(s) per module (capacity per task: "
                      f"{backend.vus_per_task} VUs or {backend.rate_per_task:g} iterations/s)")
    elif runners < needed:
        console.print(f"[yellow]ecs: {runners} runner(s) per module is below the {needed} the plan needs at "
                      f"{backend.vus_per_task} VUs / {backend.rate_per_task:g} it/s per task; load generators "
                      "may saturate (use --runners auto)[/]")
    est = backend.estimate(plan, runners)
    console.print(est.text, markup=False)
    cost.check_max_cost(est.total_usd, backend.max_cost, est.text)
    options["estimate_usd"] = est.total_usd
    return replace(opts, runners=runners, backend_options=options)


# -- AWS errors ---------------------------------------------------------------------------

_ACCESS_CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError")
_CREDENTIAL_CODES = ("UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
                     "SignatureDoesNotMatch", "InvalidAccessKeyId")
_NOT_AUTHORIZED = re.compile(r"not authorized to perform:? ([\w-]+:[\w*]+)(?: on resource:? (\S+))?")
_THROTTLE_CODES = ("Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
                   "RequestThrottled", "SlowDown")


def quota_message(raw: str, *, spot: bool, region: str, tasks: int, vcpu: float, what: str = "") -> str:
    """The message for a Fargate capacity quota refusal, naming the quota and the fix."""
    name, code = QUOTAS[spot]
    total = tasks * vcpu
    where = f"{what}: " if what else ""
    return (f"AWS refused to start more Fargate tasks ({where}{raw.strip()}). This is the quota \"{name}\" "
            f"(service code fargate, quota code {code}) in {region}: this phase needs {tasks} task(s) x "
            f"{vcpu:g} vCPU = {total:g} vCPU at once, on top of what the account already runs there. Request "
            f"more with `aws service-quotas request-service-quota-increase --service-code fargate "
            f"--quota-code {code} --desired-value <vCPUs> --region {region}`, or run fewer or smaller runners "
            "(--runners, LOADBEARING_ECS_VUS_PER_TASK).")


def aws_error(exc: Exception, action: str, *, region: str, quota: tuple[bool, int, float] | None = None,
              what: str = "") -> LoadbearingError:
    """A user-facing error for an AWS failure of IAM action `action` (e.g. 'ecs:RunTask')."""
    subject = f" ({what})" if what else ""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return BadInput(f"no usable AWS credentials for {action}{subject}: configure them (AWS_PROFILE, "
                        "`aws sso login`, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and rerun")
    if not isinstance(exc, ClientError):
        return RunError(f"could not reach AWS for {action}{subject} in {region}: {exc}; check the network "
                        "(and AWS_ENDPOINT_URL if set)")
    err = exc.response.get("Error", {})
    code = str(err.get("Code", "")) or "Unknown"
    msg = str(err.get("Message", "")) or str(exc)
    if code in _CREDENTIAL_CODES:
        return BadInput(f"AWS rejected the credentials for {action}{subject} ({code}: {msg}); refresh them "
                        "(`aws sso login`, new access keys, or the right AWS_PROFILE) and rerun")
    if code in _ACCESS_CODES or "not authorized" in msg.lower():
        found = _NOT_AUTHORIZED.search(msg)
        perm = found.group(1) if found else action
        on = f" on {found.group(2).rstrip('.,')}" if found and found.group(2) else ""
        if perm == "iam:PassRole":
            on += " (ecs:RunTask passes the task definition's execution and task roles)"
        return RunError(f"AWS denied {action}{subject} ({code}: {msg}). The IAM identity running loadbearing "
                        f"needs the permission {perm}{on} in {region}; add it to that identity's policy and rerun.")
    if code == "LimitExceededException" and quota is not None:
        spot, tasks, vcpu = quota
        return RunError(quota_message(f"{code}: {msg}", spot=spot, region=region, tasks=tasks, vcpu=vcpu,
                                      what=what))
    if code in _THROTTLE_CODES or code == "LimitExceededException":
        return RunError(f"AWS throttled {action}{subject} ({code}: {msg}) even after retries. The limits are "
                        "the Amazon ECS API request rate (RunTask: 20 calls/s per account and region) and the "
                        "Fargate task launch rate quotas (\"Fargate On-Demand resource rate\" / \"Fargate Spot "
                        "resource rate\": bursts of 100, 20 tasks/s); wait a minute and rerun, or use fewer runners.")
    if code == "ClusterNotFoundException":
        return BadInput(f"the ECS cluster of stack output cluster_arn does not exist in {region} ({msg}); "
                        f"{OUTPUTS_FIX}")
    if code == "NoSuchBucket":
        return BadInput(f"stack output scripts_bucket names a bucket that does not exist ({msg}); {OUTPUTS_FIX}")
    return RunError(f"{action}{subject} failed in {region}: {code}: {msg}")


def describe_run_failures(failures: list[dict[str, Any]], *, runner: str, spot: bool, region: str,
                          tasks: int, vcpu: float) -> str:
    """A message for `run_task`'s `failures` entries (placement refused without an exception)."""
    reasons = "; ".join(f"{f.get('reason', '?')}" + (f" ({f['detail']})" if f.get("detail") else "")
                        for f in failures) or "no task and no reason returned"
    if "capacity is unavailable" in reasons.lower():
        kind = "Fargate Spot" if spot else "Fargate"
        return (f"ECS could not place runner {runner}'s task: {reasons}. {kind} has no spare capacity in the "
                "subnets' availability zones right now; retry later, add subnets in more zones"
                + (", or run on-demand (capacity_provider FARGATE / LOADBEARING_ECS_SPOT=0)" if spot else "") + ".")
    if "limit" in reasons.lower() or reasons.startswith("RESOURCE:"):
        return quota_message(reasons, spot=spot, region=region, tasks=tasks, vcpu=vcpu, what=f"runner {runner}")
    return f"ECS could not start runner {runner}'s task: {reasons}"


_HINTS: tuple[tuple[str, str], ...] = (
    ("SpotInterruption", "Fargate Spot reclaimed the capacity: rerun, or run on-demand (LOADBEARING_ECS_SPOT=0)"),
    ("CannotPullContainerError", "the task could not pull the k6 image: give the subnets a route to the "
                                 "registry (NAT gateway, public IP or VPC endpoints) and check the execution role"),
    ("ResourceInitializationError", "the task could not initialise (registry auth, secrets or log group): check "
                                    "the execution role's permissions and the subnets' routes"),
    ("OutOfMemory", "the container ran out of memory: fewer VUs per task (LOADBEARING_ECS_VUS_PER_TASK) or a "
                    "bigger task"),
)


def _hint(texts: list[str], code: int | None, log: TaskLog) -> str | None:
    joined = " ".join(texts)
    for needle, hint in _HINTS:
        if needle.lower() in joined.lower():
            return hint
    if code == 91:
        return ("the task could not download the k6 archive from S3: it needs a route to S3 (NAT gateway, "
                "public IP or an S3 gateway endpoint)")
    if code == 137:
        return "the container was killed (SIGKILL: out of memory, or it did not stop in time)"
    if not log.lines:
        return ("the task wrote no log output: check the task definition's awslogs configuration and the "
                "execution role's logs:CreateLogStream / logs:PutLogEvents permissions")
    return None


# -- the backend --------------------------------------------------------------------------

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
                 summary_wait_s: float | None = None, estimate_usd: float | None = None,
                 session: boto3.session.Session | None = None) -> None:
        self.outputs = load_stack_outputs(stack_outputs or os.environ.get("LOADBEARING_STACK_OUTPUTS"))
        self.max_cost = max_cost
        self.estimate_usd = estimate_usd
        self.region = region or self.outputs.region or os.environ.get("AWS_REGION") \
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
        self.vus_per_task = max(1, int(vus_per_task or _env_float("LOADBEARING_ECS_VUS_PER_TASK", 0)
                                       or self.outputs.vus_per_task or round(VUS_PER_VCPU * self.shape.vcpu)))
        self.rate_per_task = float(rate_per_task or _env_float("LOADBEARING_ECS_RATE_PER_TASK", 0)
                                   or self.outputs.rate_per_task or RATE_PER_VCPU * self.shape.vcpu)
        self._archives: dict[tuple[str, str], str] = {}   # (run_id, module) -> s3 key
        self._logs: dict[str, TaskLog] = {}                # task arn -> parsed output
        self._next_poll = 0.0
        self._reported: set[int] = set()

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

    def estimate(self, plan: Plan, runners: int) -> FleetEstimate:
        """The cost of running every module of `plan` with `runners` tasks, and how it was computed."""
        graceful = k6.parse_graceful_stop_s()
        overhead = self.start_delay_s + graceful + TEARDOWN_S
        per_module = [(m.name, cost.billed_seconds(m.duration_s + overhead)) for m in plan.modules]
        total = sum(cost.estimate(runners, self.shape.vcpu, self.shape.memory_gb, s, self.region, self.spot)
                    for _, s in per_module)
        p = cost.price(self.region, self.spot)
        billed = ", ".join(f"{name} {s:.0f} s" for name, s in per_module)
        text = (f"ecs: estimated cost ${total:.4f} (an estimate, not a bill) = {runners} task(s) per module x "
                f"({self.shape.vcpu:g} vCPU x ${p.vcpu_hour:.5f}/vCPU-h + {self.shape.memory_gb:g} GB x "
                f"${p.gb_hour:.6f}/GB-h) x billed time per task ({billed});\n"
                f"  billed time = start delay {self.start_delay_s:.0f} s + module duration + {graceful:.0f} s "
                f"graceful stop + {TEARDOWN_S:.0f} s teardown, at least {cost.MIN_BILLED_S:.0f} s;\n"
                f"  prices: {p.describe()};\n"
                "  not counted: data transfer, NAT gateway, public IPv4, CloudWatch Logs, S3, the InfluxDB host")
        return FleetEstimate(total_usd=total, text=text)

    # -- initialize -------------------------------------------------------------------
    def initialize(self, specs: list[RunnerSpec]) -> list[Runner]:
        """Upload archives, start one task per spec, wait until every task is RUNNING."""
        if self.max_cost is not None and self.estimate_usd is None:
            raise RunError("--max-cost was given but no cost estimate was made before launch (the controller "
                           "must call runners.backends.ecs.plan_fleet first); refusing to start tasks")
        runners: list[Runner] = []
        try:
            urls = {module: self._archive_url(spec) for module, spec in
                    {s.module: s for s in specs}.items()}
            start_at = math.ceil(time.time() + self.start_delay_s)  # the delay covers launch and provisioning
            for spec in specs:
                runners.append(self._run_task(spec, urls[spec.module], start_at, len(specs)))
            self._wait_running(runners, start_at)
        except BaseException as exc:
            cause = ("the run was aborted (SIGINT/SIGTERM) while tasks were starting"
                     if type(exc).__name__ in ("Aborted", "KeyboardInterrupt")
                     else f"the launch failed: {getattr(exc, 'message', exc)}")
            self._stop(runners, cause, grace_s=10.0)
            if isinstance(exc, LoadbearingError) and not isinstance(exc, RunError):
                raise RunError(exc.message) from None  # the run has begun: a run error (exit 4), recorded
            raise
        return runners

    def _archive_url(self, spec: RunnerSpec) -> str:
        key = f"runs/{spec.run_id}/{spec.module}.tar"
        if (spec.run_id, spec.module) not in self._archives:
            local = spec.run_dir / "k6" / f"{spec.module}.archive.tar"
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
        cfg = out.with_name(f"{spec.module}.archive-config.json")
        cfg.write_text(json.dumps(spec.config, indent=2, sort_keys=True))
        env = {k: v for k, v in os.environ.items() if not k.startswith("K6_")}
        env.update({"K6_NO_USAGE_REPORT": "true", "BASE_URL": spec.env.get("BASE_URL", "")})
        try:
            res = subprocess.run([k6.k6_binary(), "archive", "--config", str(cfg), "-O", str(out), str(spec.script)],
                                 capture_output=True, text=True, timeout=120, env=env, cwd=spec.script.parent)
        except subprocess.TimeoutExpired:
            raise RunError(f"k6 archive of module {spec.module} did not finish in 120 s") from None
        if res.returncode != 0:
            raise RunError(f"k6 archive of module {spec.module} failed:\n{res.stderr.strip()[-1500:]}")

    def _task_influx(self, spec: RunnerSpec) -> tuple[str | None, dict[str, str]]:
        """The runners' `--out influxdb=` (stack output influxdb_url + the run's db) and any
        credentials from that URL (as k6 env, never in the URL)."""
        if not spec.influx_out:
            return None, {}
        from runners.influx import InfluxClient

        db = spec.influx_out.rstrip("/").rsplit("/", 1)[-1]
        client = InfluxClient.from_url(self.outputs.influxdb_url, db=db)
        env: dict[str, str] = {}
        if client.username and "K6_INFLUXDB_USERNAME" not in spec.env:
            env["K6_INFLUXDB_USERNAME"] = client.username
            env["K6_INFLUXDB_PASSWORD"] = client.password or ""
        return client.k6_output_url(), env

    def _run_task(self, spec: RunnerSpec, archive_url: str, start_at: int, phase_tasks: int) -> Runner:
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

    def _wait_running(self, runners: list[Runner], start_at: int) -> None:
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
                    pending.append(f"{r.spec.name} ({t.get('lastStatus', '?')})")
                else:
                    r.info.setdefault("running_at", time.time())
            if early:
                raise RunError(f"{len(early)} Fargate task(s) stopped before the start: " + " | ".join(early))
            if not pending:
                return
            if time.time() >= start_at - READY_MARGIN_S:
                raise RunError(f"{len(pending)} of {len(runners)} Fargate tasks were not RUNNING "
                               f"{READY_MARGIN_S:.0f} s before the common start time ({self.start_delay_s:.0f} s "
                               f"after launch): {', '.join(pending)}. Fargate took longer to provision or pull "
                               "the image; raise LOADBEARING_ECS_START_DELAY_S")
            time.sleep(max(0.05, min(self.poll_interval_s, start_at - READY_MARGIN_S - time.time())))

    # -- start ----------------------------------------------------------------------
    def start(self, runners: list[Runner]) -> float:
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
    def poll(self, runners: list[Runner]) -> list[int | None]:
        """Exit codes; asks ECS at most every poll interval (the controller polls often)."""
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + self.poll_interval_s
            self._refresh(runners)
        return [r.exit_code for r in runners]

    def _refresh(self, runners: list[Runner]) -> None:
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

    def _read_log(self, r: Runner) -> TaskLog:
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

    def _finalize(self, r: Runner, task: dict[str, Any], log: TaskLog) -> None:
        """Record a STOPPED task's outcome on its Runner; write its summary when there is one."""
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
        if log.summary is not None:
            path = r.spec.run_dir / "k6" / f"{r.spec.name}.summary.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(log.summary, indent=2))
            if code in OK_EXIT_CODES:
                r.exit_code = code
                return
            r.exit_code = code if code is not None else NO_SUMMARY_EXIT
            r.failure = r.failure or (f"k6 exited with code {code} in task {tid}"
                                      + (f"; last output: {' / '.join(log.tail())}" if log.tail() else ""))
            return
        r.exit_code = code if code is not None and code not in OK_EXIT_CODES else NO_SUMMARY_EXIT
        if r.failure:
            return
        parts: list[str] = []
        if r.info.get("stop_cause"):
            parts.append(f"stopped by loadbearing ({r.info['stop_cause']})")
        reason = task.get("stoppedReason") or ""
        if reason and not reason.startswith("loadbearing:"):  # not our own stop reason again
            parts.append(f"ECS: {reason}" + (f" (stop code {task['stopCode']})" if task.get("stopCode") else ""))
        if container.get("reason"):
            parts.append(f"container: {container['reason']}")
        parts.append(f"exit code {code}" if code is not None else "no exit code")
        hint = _hint([reason, str(task.get("stopCode") or ""), str(container.get("reason") or "")], code, log)
        if hint and not r.info.get("stop_cause"):
            parts.append(hint)
        text = f"task {tid} stopped without a k6 summary: {'; '.join(parts)}"
        if log.tail():
            text += f"; last output: {' / '.join(log.tail())}"
        r.failure = text

    # -- stop -----------------------------------------------------------------------
    def stop(self, runners: list[Runner], grace_s: float = 10.0) -> None:
        """stop_task every started task that has not ended (the reason names the cause),
        wait up to `grace_s` for STOPPED, read their output; record every task."""
        self._stop(runners, self._infer_cause(runners), grace_s)

    def _infer_cause(self, runners: list[Runner]) -> str:
        failed = [r for r in runners if r.failure and r.exit_code is not None]
        if failed:
            return f"runner {failed[0].spec.name} failed; stopping its siblings"
        exc = sys.exc_info()[1]
        if exc is not None and type(exc).__name__ in ("Aborted", "KeyboardInterrupt"):
            return "the run was aborted (SIGINT/SIGTERM)"
        if isinstance(exc, LoadbearingError):
            return f"the run ended with an error: {exc.message}"
        ends = [float(r.info["expected_end"]) for r in runners if r.info.get("expected_end")]
        if ends and time.time() > max(ends):
            return "timeout: the phase outlived its duration + graceful stop"
        return "the run was aborted or ended early by the controller"

    def _stop(self, runners: list[Runner], cause: str, grace_s: float) -> None:
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

    # -- collect ----------------------------------------------------------------------
    def collect(self, runner: Runner) -> dict[str, Any] | None:
        """The runner's k6 summary (written by poll/stop), read from its log stream if needed."""
        path = runner.spec.run_dir / "k6" / f"{runner.spec.name}.summary.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (OSError, ValueError):
            pass
        if runner.handle is None:
            return None
        log = self._logs.get(runner.handle) or self._read_log(runner)
        if log.summary is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(log.summary, indent=2))
        return log.summary

    # -- records ------------------------------------------------------------------------
    def _write_record(self, runners: list[Runner]) -> None:
        """RUN_DIR/ecs-tasks.json: every task of the run, its outcome and its start skew."""
        started = [r for r in runners if r.handle is not None]
        if not started:
            return
        run_dir = started[0].spec.run_dir
        path = run_dir / TASKS_RECORD
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            doc = {"run_id": started[0].spec.run_id, "cluster_arn": self.outputs.cluster_arn,
                   "region": self.region, "tasks": []}
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
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
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
