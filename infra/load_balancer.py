"""What the stack's one load balancer serves, built the same way for each service behind it:
a target group of Fargate tasks (by IP) with a health check, and a listener forwarding to
it, over HTTPS with the stack's ACM certificate when there is one (Grafana on 443, or on 80
for a trial without one; InfluxDB's controller door on 8086)."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def ip_target_group(name: str, port: int, vpc_id: pulumi.Input[str], health_path: str, healthy_status: str,
                    tags: Mapping[str, str], parent: pulumi.Resource) -> aws.lb.TargetGroup:
    """Tasks registered by IP on `port`; healthy when `health_path` answers `healthy_status`."""
    return aws.lb.TargetGroup(
        name,
        port=port,
        protocol="HTTP",
        target_type="ip",
        vpc_id=vpc_id,
        deregistration_delay=10,
        health_check={"path": health_path, "matcher": healthy_status, "interval": 15, "healthy_threshold": 2},
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def forward_listener(name: str, load_balancer_arn: pulumi.Input[str], port: int,
                     target_group_arn: pulumi.Input[str], certificate_arn: pulumi.Input[str] | None,
                     parent: pulumi.Resource) -> aws.lb.Listener:
    """`port` forwarding to the target group: HTTPS (TLS 1.2+) with `certificate_arn`, else plain HTTP."""
    https = certificate_arn is not None
    return aws.lb.Listener(
        name, load_balancer_arn=load_balancer_arn, port=port, protocol="HTTPS" if https else "HTTP",
        certificate_arn=certificate_arn, ssl_policy=TLS_POLICY if https else None,
        default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group_arn)],
        opts=pulumi.ResourceOptions(parent=parent))
