"""AWS errors of the `ecs` backend, explained: the quota, the IAM permission or the fix they call for.

`aws_error` turns a boto3 exception into BadInput (exit 2: credentials, a missing cluster or
bucket) or RunError (exit 4: a denied action, a Fargate vCPU quota, throttling);
`describe_run_failures` explains `run_task`'s placement failures; `stop_hint` says what a
stopped task's reasons or exit code mean.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

from core.errors import BadInput, LoadbearingError, RunError
from runners.backends.ecs_outputs import OUTPUTS_FIX
from runners.backends.ecs_task import TaskLog

QUOTAS = {False: ("Fargate On-Demand vCPU resource count", "L-3032A538"),
          True: ("Fargate Spot vCPU resource count", "L-36FBB829")}

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


# ECS stop codes that mean the task was ended from outside, not by its container exiting
# (EssentialContainerExited) nor by loadbearing (its reasons start with "loadbearing:").
_EXTERNAL_STOPS = {
    "SpotInterruption": "Fargate Spot reclaimed its capacity; rerun, or run on-demand "
                        "(runnerCapacityProvider FARGATE, or LOADBEARING_ECS_SPOT=0)",
    "TerminationNotice": "AWS retired the capacity it ran on; rerun",
    "TaskFailedToStart": "it failed to start",
    "ServiceSchedulerInitiated": "an ECS service stopped it",
    "UserInitiated": "someone (or the stack's cost guard) stopped it",
}


def external_stop(task: dict[str, Any]) -> str | None:
    """Why ECS stopped `task` from outside while k6 ran (a Spot reclaim, a manual stop, the cost
    guard), or None when its container simply exited or loadbearing stopped it."""
    code = str(task.get("stopCode") or "")
    reason = str(task.get("stoppedReason") or "")
    if code not in _EXTERNAL_STOPS or reason.startswith("loadbearing:"):
        return None
    return f"ECS stopped the task mid-run: {_EXTERNAL_STOPS[code]} (stop code {code}" + \
        (f": {reason})" if reason else ")")


def stop_hint(texts: list[str], code: int | None, log: TaskLog) -> str | None:
    """What a stopped task's reasons (stop reason, stop code, container reason) or exit code
    call for; None when they say nothing known."""
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
