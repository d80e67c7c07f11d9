"""Security groups and single-port TCP rules between them and their peers.

A rule's peer is either a CIDR block (`cidr`, IPv4 or IPv6, told apart here) or
another security group (`group_id`), never both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws


def security_group(name: str, vpc_id: pulumi.Input[str], description: str, tags: Mapping[str, str],
                   parent: pulumi.Resource) -> aws.ec2.SecurityGroup:
    """A security group without inline rules; add them with `tcp_ingress` / `tcp_egress`."""
    return aws.ec2.SecurityGroup(name, vpc_id=vpc_id, description=description, tags=dict(tags),
                                 opts=pulumi.ResourceOptions(parent=parent))


def _peer(cidr: str | None, group_id: pulumi.Input[str] | None) -> dict[str, Any]:
    if (cidr is None) == (group_id is None):
        raise ValueError("a rule needs exactly one peer: a CIDR block or a security group")
    if cidr is None:
        return {"referenced_security_group_id": group_id}
    v6 = ipaddress.ip_network(cidr).version == 6
    return {"cidr_ipv4": None if v6 else cidr, "cidr_ipv6": cidr if v6 else None}


def tcp_ingress(name: str, security_group_id: pulumi.Input[str], port: int, description: str,
                parent: pulumi.Resource, *, cidr: str | None = None,
                group_id: pulumi.Input[str] | None = None) -> aws.vpc.SecurityGroupIngressRule:
    """Admit TCP `port` into `security_group_id` from `cidr` or from members of `group_id`."""
    return aws.vpc.SecurityGroupIngressRule(
        name, security_group_id=security_group_id, ip_protocol="tcp", from_port=port, to_port=port,
        description=description, opts=pulumi.ResourceOptions(parent=parent), **_peer(cidr, group_id))


def tcp_egress(name: str, security_group_id: pulumi.Input[str], port: int, description: str,
               parent: pulumi.Resource, *, cidr: str | None = None,
               group_id: pulumi.Input[str] | None = None) -> aws.vpc.SecurityGroupEgressRule:
    """Allow TCP `port` out of `security_group_id` to `cidr` or to members of `group_id`."""
    return aws.vpc.SecurityGroupEgressRule(
        name, security_group_id=security_group_id, ip_protocol="tcp", from_port=port, to_port=port,
        description=description, opts=pulumi.ResourceOptions(parent=parent), **_peer(cidr, group_id))
