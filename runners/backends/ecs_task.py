"""The Fargate task of one runner: the task definition contract, the command it runs, its log.

- `task_shape` checks the task definition (entryPoint `["sh", "-c"]`, `awslogs` logging,
  task cpu/memory) and returns what the backend needs of it.
- `wrapper_script` is the container command: fetch the k6 archive, `k6 run --paused`, hold
  until `LB_START_AT`, `k6 resume`, then print the summary between markers (steps 5 and 6
  of the `runners.backends.ecs` docstring).
- `parse_task_log` reads that output back from the task's CloudWatch Logs stream.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import BadInput
from core.stack_outputs import StackOutputs
from runners import k6
from runners.backends import RunnerSpec
from runners.backends.ecs_outputs import OUTPUTS_FIX
from runners.fleet import segment, segment_sequence

K6_API = "127.0.0.1:6565"        # k6's REST API inside the task (loopback of the task's netns)
SUMMARY_MARK = "LBSUMMARY"
END_MARK = "LBSUMMARY-END"
START_MARK = "LBSTART"

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

# What a module's script may read from `__ENV` inside a task: the plan's contract, nothing else.
SCRIPT_ENV = ("BASE_URL",)


def task_k6_args(spec: RunnerSpec, influx_out: str | None) -> list[str]:
    """`k6 run` arguments inside the task (the load shape is in the archive; the wrapper adds
    `--address` and the archive path).

    The task's environment holds the store's credentials (K6_INFLUXDB_*, which k6's output
    reads from the process, not from `__ENV`): `--include-system-env-vars=false` keeps every
    one of them from the script, which gets SCRIPT_ENV through `-e` instead."""
    args = k6.run_args(config_path=None, script=None, summary_path="summary.json",
                       segment=segment(spec.index, spec.count), sequence=segment_sequence(spec.count),
                       tags=spec.tags, influx_out=influx_out, address=None)
    args.append("--include-system-env-vars=false")
    for name in SCRIPT_ENV:
        if name in spec.env:
            args += ["-e", f"{name}={spec.env[name]}"]
    return args


def wrapper_script(k6_args: list[str]) -> str:
    """The shell script the task runs (see the module docstring, step 5 and 6)."""
    return WRAPPER.format(k6_args=" ".join(shlex.quote(a) for a in k6_args), api=K6_API,
                          start=START_MARK, summary=SUMMARY_MARK, end=END_MARK)


# -- the task's log ----------------------------------------------------------------------

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
