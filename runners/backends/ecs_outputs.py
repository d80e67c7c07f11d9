"""The Pulumi stack outputs the `ecs` backend runs on (`pulumi stack output --json`), validated.

Required: REQUIRED_OUTPUTS. Optional: `region` (else the cluster ARN's), `capacity_provider`
(`FARGATE` | `FARGATE_SPOT`), `assign_public_ip`, `log_group_name`, `vus_per_task`,
`rate_per_task`. A missing, malformed or `[secret]` value is BadInput (exit 2) naming the
file, the key and the fix (OUTPUTS_FIX).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BadInput

REQUIRED_OUTPUTS = ("cluster_arn", "task_definition_arn", "container_name", "subnet_ids",
                    "security_group_ids", "scripts_bucket", "influxdb_url", "grafana_url")
OUTPUTS_FIX = ("run `pulumi up` for the stack, then `pulumi stack output --json --show-secrets > FILE` "
               "in the project directory and pass it with --stack-outputs FILE")
CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


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
