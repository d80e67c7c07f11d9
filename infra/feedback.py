"""Target feedback: what `loadbearing apply --stack` writes, made real on `pulumi up`.

For each entry of `loadbearing:targets` (service name -> settings):

- with `autoscaling`: an Application Auto Scaling target on the service's desired
  count (`service/<targetClusterName>/<ecs_service>`, min/max instances) and one
  target-tracking policy (predefined metric, target value, cooldowns). For
  `ALBRequestCountPerTarget` the policy's resource label is the target's
  `alb_resource_label`.
- with `db_pool_size` / `cache_ttl_s`: SSM String parameters
  `<targetSettingsPrefix>/<service>/db_pool_size` and `.../cache_ttl_s`, which the
  service reads at start (e.g. `aws ssm get-parameters-by-path --path <prefix>/<service>`
  in its entrypoint, or ECS `secrets` with the parameter ARN). A new value takes effect
  when the service's tasks restart (`aws ecs update-service --force-new-deployment`).

Nothing else: the target services themselves belong to their own stacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from core.targets import TargetSettings

SCALABLE_DIMENSION = "ecs:service:DesiredCount"
APP_SETTINGS = ("db_pool_size", "cache_ttl_s")


def parameter_name(prefix: str, service: str, setting: str) -> str:
    """The SSM parameter holding one app setting of one target service."""
    return f"{prefix}/{service}/{setting}"


@dataclass(frozen=True)
class FeedbackArgs:
    """`targets` as parsed from config; `cluster_name` is `loadbearing:targetClusterName`."""

    targets: Mapping[str, TargetSettings]
    cluster_name: str | None
    settings_prefix: str
    tags: Mapping[str, str]


class Feedback(pulumi.ComponentResource):
    """Outputs: `scalable_targets` (service -> resource id), `parameters` (SSM name -> value)."""

    scalable_targets: dict[str, str]
    parameters: dict[str, str]

    def __init__(self, name: str, args: FeedbackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("loadbearing:infra:Feedback", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.scalable_targets = {}
        self.parameters = {}
        for service, target in args.targets.items():
            if target.autoscaling is not None:
                if not args.cluster_name:
                    raise ValueError("loadbearing:targetClusterName is required for autoscaling targets")
                self._autoscaling(f"{name}-{service}", args.cluster_name, service, target, child)
            for setting in APP_SETTINGS:
                value = getattr(target, setting)
                if value is None:
                    continue
                param = parameter_name(args.settings_prefix, service, setting)
                aws.ssm.Parameter(
                    f"{name}-{service}-{setting.replace('_', '-')}",
                    name=param,
                    type="String",
                    # not sensitive: shown in `pulumi preview` diffs (db_pool_size 2 -> 9)
                    insecure_value=str(value),
                    description=f"{setting} for {service}, set by loadbearing apply",
                    tags=dict(args.tags),
                    opts=child,
                )
                self.parameters[param] = str(value)
        self.register_outputs({"scalable_targets": self.scalable_targets, "parameters": self.parameters})

    def _autoscaling(self, name: str, cluster: str, service: str, target: TargetSettings,
                     child: pulumi.ResourceOptions) -> None:
        scaling = target.autoscaling
        assert scaling is not None
        resource_id = f"service/{cluster}/{target.ecs_service_name(service)}"
        scalable = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension=SCALABLE_DIMENSION,
            resource_id=resource_id,
            min_capacity=scaling.min_instances,
            max_capacity=scaling.max_instances,
            opts=child,
        )
        label = target.alb_resource_label if scaling.metric == "ALBRequestCountPerTarget" else None
        metric = aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
            predefined_metric_type=scaling.metric, resource_label=label)
        aws.appautoscaling.Policy(
            f"{name}-tracking",
            name=f"loadbearing-{service}-{scaling.metric}",
            policy_type="TargetTrackingScaling",
            service_namespace=scalable.service_namespace,
            scalable_dimension=scalable.scalable_dimension,
            resource_id=scalable.resource_id,
            target_tracking_scaling_policy_configuration=(
                aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    predefined_metric_specification=metric,
                    target_value=scaling.target_value,
                    scale_out_cooldown=scaling.scale_out_cooldown_s,
                    scale_in_cooldown=scaling.scale_in_cooldown_s,
                )),
            opts=child,
        )
        self.scalable_targets[service] = resource_id
