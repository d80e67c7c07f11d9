"""The `loadbearing:targets` stack setting: what the feedback loop manages per service under test.

One declaration for both sides of the seam: `loadbearing apply --stack` writes this block
into `Pulumi.<stack>.yaml` (policies) and the Pulumi program reads it (infra/config.py,
infra/feedback.py). The block maps a service name (as in the plan) to:

    ecs_service          the ECS service in `loadbearing:targetClusterName` (default: the name)
    db_pool_size         -> SSM <targetSettingsPrefix>/<service>/db_pool_size
    cache_ttl_s          -> SSM <targetSettingsPrefix>/<service>/cache_ttl_s (0: caching off)
    alb_resource_label   app/<alb>/<id>/targetgroup/<tg>/<id>; required with ALBRequestCountPerTarget
    autoscaling          min_instances, max_instances, metric, target_value,
                         scale_out_cooldown_s, scale_in_cooldown_s (all required)

`parse_targets(raw)` validates a raw block and raises `TargetsError` whose message starts
with the full key (`loadbearing:targets.profile-api.autoscaling.metric: ...`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    field_validator,
    model_validator,
)

from core.config_types import WholeNumber, describe

TARGETS_KEY = "loadbearing:targets"
AutoscalingMetric = Literal["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ALB_LABEL = re.compile(r"^app/[^/]+/[^/]+/targetgroup/[^/]+/[^/]+$")


class TargetsError(ValueError):
    """`loadbearing:targets` is invalid; the message names the key and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


class Autoscaling(_Strict):
    """Application Auto Scaling for one target ECS service (target tracking)."""

    min_instances: WholeNumber = Field(ge=0)
    max_instances: WholeNumber = Field(ge=1)
    metric: AutoscalingMetric
    target_value: float = Field(gt=0)
    scale_out_cooldown_s: WholeNumber = Field(ge=0)
    scale_in_cooldown_s: WholeNumber = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Autoscaling:
        if self.min_instances > self.max_instances:
            raise ValueError(f"min_instances: {self.min_instances} is more than max_instances {self.max_instances}")
        if self.metric == "ECSServiceAverageCPUUtilization" and self.target_value > 100:
            raise ValueError(f"target_value: CPU utilisation is a percentage (0-100], got {self.target_value:g}")
        return self


AUTOSCALING_KEYS: tuple[str, ...] = tuple(Autoscaling.model_fields)


class TargetSettings(_Strict):
    """What the feedback loop manages for one service under test."""

    ecs_service: str | None = Field(default=None, min_length=1)
    db_pool_size: WholeNumber | None = Field(default=None, ge=1)
    cache_ttl_s: WholeNumber | None = Field(default=None, ge=0)
    alb_resource_label: str | None = None
    autoscaling: Autoscaling | None = None

    @field_validator("alb_resource_label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not ALB_LABEL.match(value):
            raise ValueError("must look like app/<alb-name>/<alb-id>/targetgroup/<tg-name>/<tg-id>")
        return value

    @model_validator(mode="after")
    def _label_for_request_count(self) -> TargetSettings:
        if self.autoscaling and self.autoscaling.metric == "ALBRequestCountPerTarget" and not self.alb_resource_label:
            raise ValueError("alb_resource_label: required when autoscaling.metric is ALBRequestCountPerTarget "
                             "(the ALB and target group that count the requests: "
                             "app/<alb-name>/<alb-id>/targetgroup/<tg-name>/<tg-id>)")
        return self

    def ecs_service_name(self, service: str) -> str:
        """The ECS service this entry manages: `ecs_service`, else the service name itself."""
        return self.ecs_service or service


TARGET_KEYS: tuple[str, ...] = tuple(TargetSettings.model_fields)


def _service_names(value: dict[str, TargetSettings]) -> dict[str, TargetSettings]:
    for name in value:
        if not SERVICE_NAME.match(name):
            raise ValueError(f"service name {name!r}: use 1-63 letters, digits, '-', '_' or '.'")
    return value


TargetsBlock = Annotated[dict[str, TargetSettings], AfterValidator(_service_names)]
"""The whole block, service name -> settings, as a field type (infra/config.py uses it)."""


class Targets(RootModel[TargetsBlock]):
    """The whole block as a model of its own."""


def parse_targets(raw: Any) -> dict[str, TargetSettings]:
    """Validate a raw `loadbearing:targets` block (None: empty). Raises TargetsError naming the key."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TargetsError(f"{TARGETS_KEY}: must be a map from service name to settings "
                           f"({', '.join(TARGET_KEYS)})")
    try:
        return dict(Targets.model_validate(dict(raw)).root)
    except ValidationError as exc:
        raise TargetsError("\n".join(describe(exc, TARGETS_KEY))) from None


def dump_targets(targets: Mapping[str, TargetSettings]) -> dict[str, Any]:
    """The block as plain data, without unset keys (what a stack file holds)."""
    return {name: t.model_dump(exclude_none=True) for name, t in targets.items()}
