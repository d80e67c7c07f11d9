"""The Pulumi stack outputs: what `infra/program.py` exports and the `ecs` backend reads.

Declared once, here. The program builds its exports with `exports(...)`, which refuses a
key this model does not declare or a declared key it leaves out; the backend reads the
JSON of `pulumi stack output --json` into `StackOutputs` (runners/backends/ecs_outputs.py
adds the file handling and the messages). No output is secret: the backend reads none,
so `--show-secrets` is never needed.

The first block is the contract the `ecs` backend needs (required); the rest are
optional for hand-written outputs files, and the program always exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from core.config_types import WholeNumber

CapacityProvider = Literal["FARGATE", "FARGATE_SPOT"]
CAPACITY_PROVIDERS: tuple[str, ...] = get_args(CapacityProvider)

Ids = list[str]


class StackOutputs(BaseModel):
    """Every stack output of the loadbearing program, by name and type.

    Reading ignores outputs it does not declare (a stack made by an older program).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    # -- required: the ecs backend's contract -----------------------------------------
    cluster_arn: str = Field(min_length=1)
    task_definition_arn: str = Field(min_length=1)
    container_name: str = Field(min_length=1)
    subnet_ids: Ids = Field(min_length=1)
    security_group_ids: Ids = Field(min_length=1)
    scripts_bucket: str = Field(min_length=1)
    influxdb_url: str = Field(min_length=1, description="where the runners write (inside the VPC)")
    grafana_url: str = Field(min_length=1)

    # -- runner placement and the limits the cost guard enforces ------------------------
    region: str | None = None
    cluster_name: str | None = None
    task_family: str | None = None
    capacity_providers: list[CapacityProvider] | None = None
    capacity_provider: CapacityProvider = "FARGATE"
    assign_public_ip: bool = False
    runner_count: WholeNumber | None = Field(default=None, ge=1)
    runner_max_minutes: WholeNumber | None = Field(default=None, ge=1)
    log_group_name: str | None = None
    runner_task_role_arn: str | None = None
    runner_execution_role_arn: str | None = None
    scripts_prefix: str | None = None
    results_prefix: str | None = None
    k6_image: str | None = None
    vpc_id: str | None = None

    # -- the metrics store: the runners write to `influxdb_url` (inside the VPC); the
    #    controller reads and writes through `influxdb_controller_url` (the load balancer,
    #    None without operatorCidrs) as `influxdb_controller_username`, whose password is
    #    in the Secrets Manager secret `influxdb_controller_secret_arn`; `influxdb_store_id`
    #    is the store's marker (core.store_identity) -------------------------------------
    influxdb_database: str | None = None
    influxdb_controller_url: str | None = None
    influxdb_controller_username: str | None = None
    influxdb_controller_secret_arn: str | None = None
    influxdb_store_id: str | None = None
    influxdb_cpu: WholeNumber | None = Field(default=None, ge=256)     # the store's Fargate size: the
    influxdb_memory: WholeNumber | None = Field(default=None, ge=512)  # planner checks the plan's peak against it

    # -- Grafana, feedback, cost guard -------------------------------------------------
    grafana_admin_user: str | None = None
    grafana_influxdb_proxy_url: str | None = None
    load_balancer_dns_name: str | None = None   # where grafanaDomainName must point (CNAME or alias)
    target_settings_prefix: str | None = None
    feedback_parameters: dict[str, str] | None = None
    feedback_scalable_targets: dict[str, str] | None = None
    cost_guard_function: str | None = None
    # the IAM policy with exactly what the ecs backend calls: attach it to whoever runs loadbearing
    controller_policy_arn: str | None = None

    @property
    def cluster_region(self) -> str | None:
        """`region`, else the region in `cluster_arn` (arn:aws:ecs:<region>:...)."""
        parts = self.cluster_arn.split(":")
        return self.region or (parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None)


OUTPUT_KEYS: tuple[str, ...] = tuple(StackOutputs.model_fields)
REQUIRED_OUTPUTS: tuple[str, ...] = tuple(k for k, f in StackOutputs.model_fields.items() if f.is_required())


def exports(values: Mapping[str, Any]) -> dict[str, Any]:
    """The program's exports (values may be Pulumi Outputs): exactly the declared keys.

    Raises ValueError naming the keys exported but not declared here, or declared but
    not exported, so the two sides cannot drift.
    """
    extra = sorted(set(values) - set(OUTPUT_KEYS))
    missing = [k for k in OUTPUT_KEYS if k not in values]
    if extra or missing:
        raise ValueError("stack outputs differ from core.stack_outputs.StackOutputs: "
                         + "; ".join(part for part in (
                             f"not declared: {', '.join(extra)}" if extra else "",
                             f"not exported: {', '.join(missing)}" if missing else "") if part))
    return {k: values[k] for k in OUTPUT_KEYS}
