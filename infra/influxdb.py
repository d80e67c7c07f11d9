"""InfluxDB 1.8 on ECS Fargate: encrypted EFS data, a private DNS name, narrow ingress.

Reachable at `influxdb_url(namespace)` (`http://influxdb.<prefix>.internal:8086`) from
inside the VPC only: port 8086 admits the runner and Grafana security groups and the
optional `operatorCidrs` (VPN, peering, a bastion), nothing else. HTTP auth is on;
the admin user and database are created on first start from the Secrets Manager
credential. One task at a time (min healthy 0 %): two InfluxDB processes must never
share the EFS data directory.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import iam_documents, images
from infra.task_roles import awslogs, execution_role, task_role

PORT = 8086
SERVICE_NAME = "influxdb"
DATA_DIR = "/var/lib/influxdb"
# uid/gid the EFS access point writes as, whatever user the image runs as.
DATA_UID = 1000


def influxdb_url(namespace_name: str) -> str:
    """The in-VPC URL of InfluxDB's HTTP API for a service-discovery namespace."""
    return f"http://{SERVICE_NAME}.{namespace_name}:{PORT}"


@dataclass(frozen=True)
class InfluxDbArgs:
    """`client_security_group_ids`: name -> security group allowed to reach port 8086."""

    name_prefix: str
    tags: Mapping[str, str]
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    region: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    namespace_id: pulumi.Input[str]
    namespace_name: str
    cpu: int
    memory: int
    database: str
    admin_username: str
    admin_secret_arn: pulumi.Input[str]
    admin_password_value_from: pulumi.Input[str]
    log_retention_days: int
    client_security_group_ids: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    operator_cidrs: Sequence[str] = ()


class InfluxDb(pulumi.ComponentResource):
    """Outputs: `url`, `security_group_id`, `file_system_id`, `service_name`, `log_group_name`."""

    url: str
    security_group_id: pulumi.Output[str]
    file_system_id: pulumi.Output[str]
    service_name: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: InfluxDbArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("loadbearing:infra:InfluxDb", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        self.url = influxdb_url(args.namespace_name)

        sg = aws.ec2.SecurityGroup(f"{name}-sg", vpc_id=args.vpc_id,
                                   description="InfluxDB: 8086 from runners, Grafana, operator CIDRs",
                                   tags=tags, opts=child)
        efs_sg = aws.ec2.SecurityGroup(f"{name}-efs-sg", vpc_id=args.vpc_id,
                                       description="InfluxDB data (EFS): NFS from InfluxDB only",
                                       tags=tags, opts=child)
        for client, group_id in args.client_security_group_ids.items():
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-{client}", security_group_id=sg.id, referenced_security_group_id=group_id,
                ip_protocol="tcp", from_port=PORT, to_port=PORT, description=f"InfluxDB from {client}",
                opts=child)
        for i, cidr in enumerate(args.operator_cidrs):
            v6 = ipaddress.ip_network(cidr).version == 6
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-operator-{i}", security_group_id=sg.id,
                cidr_ipv4=None if v6 else cidr, cidr_ipv6=cidr if v6 else None,
                ip_protocol="tcp", from_port=PORT, to_port=PORT, description="InfluxDB from operators",
                opts=child)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress-https", security_group_id=sg.id, ip_protocol="tcp", from_port=443, to_port=443,
            cidr_ipv4="0.0.0.0/0", description="image pulls, Secrets Manager, logs", opts=child)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress-nfs", security_group_id=sg.id, ip_protocol="tcp", from_port=2049, to_port=2049,
            referenced_security_group_id=efs_sg.id, description="EFS data volume", opts=child)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-efs-from-influxdb", security_group_id=efs_sg.id, referenced_security_group_id=sg.id,
            ip_protocol="tcp", from_port=2049, to_port=2049, description="NFS from InfluxDB", opts=child)

        file_system = aws.efs.FileSystem(
            f"{name}-data",
            encrypted=True,
            performance_mode="generalPurpose",
            throughput_mode="elastic",
            tags={**tags, "Name": f"{args.name_prefix}-influxdb"},
            opts=child,
        )
        mount_targets = [
            aws.efs.MountTarget(f"{name}-data-{i}", file_system_id=file_system.id, subnet_id=subnet,
                                security_groups=[efs_sg.id], opts=child)
            for i, subnet in enumerate(args.subnet_ids)
        ]
        access_point = aws.efs.AccessPoint(
            f"{name}-data-ap",
            file_system_id=file_system.id,
            posix_user={"uid": DATA_UID, "gid": DATA_UID},
            root_directory={"path": "/influxdb",
                            "creation_info": {"owner_uid": DATA_UID, "owner_gid": DATA_UID,
                                              "permissions": "750"}},
            tags=tags,
            opts=child,
        )

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=f"/loadbearing/{args.name_prefix}/influxdb",
            retention_in_days=args.log_retention_days, tags=tags, opts=child)

        exec_role = execution_role(name, [args.admin_secret_arn], tags, self)
        role = task_role(name, "InfluxDB: mount its EFS access point", tags, self)
        aws.iam.RolePolicy(
            f"{name}-task-efs",
            role=role.id,
            policy=pulumi.Output.all(file_system.arn, access_point.arn).apply(
                lambda arns: iam_documents.document({
                    "Sid": "MountData",
                    "Effect": "Allow",
                    "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                    "Resource": arns[0],
                    "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": arns[1]}},
                })),
            opts=child,
        )

        containers = pulumi.Output.all(
            log_group=log_group.name, region=args.region, password=args.admin_password_value_from,
        ).apply(lambda v: json.dumps(influxdb_containers(
            log_group=v["log_group"], region=v["region"], password_value_from=v["password"],
            database=args.database, admin_username=args.admin_username)))
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{args.name_prefix}-influxdb",
            cpu=str(args.cpu),
            memory=str(args.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            execution_role_arn=exec_role.arn,
            task_role_arn=role.arn,
            container_definitions=containers,
            volumes=[{
                "name": "data",
                "efs_volume_configuration": {
                    "file_system_id": file_system.id,
                    "transit_encryption": "ENABLED",
                    "authorization_config": {"access_point_id": access_point.id, "iam": "ENABLED"},
                },
            }],
            tags=tags,
            opts=child,
        )

        discovery = aws.servicediscovery.Service(
            f"{name}-discovery",
            name=SERVICE_NAME,
            dns_config={"namespace_id": args.namespace_id, "routing_policy": "MULTIVALUE",
                        "dns_records": [{"type": "A", "ttl": 10}]},
            force_destroy=True,
            tags=tags,
            opts=child,
        )
        service = aws.ecs.Service(
            f"{name}-service",
            name=f"{args.name_prefix}-influxdb",
            cluster=args.cluster_arn,
            task_definition=task_definition.arn,
            desired_count=1,
            launch_type="FARGATE",
            # Never two InfluxDB processes on one data directory: stop the old task first.
            deployment_minimum_healthy_percent=0,
            deployment_maximum_percent=100,
            network_configuration={"subnets": list(args.subnet_ids), "security_groups": [sg.id],
                                   "assign_public_ip": False},
            service_registries={"registry_arn": discovery.arn},
            propagate_tags="SERVICE",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=mount_targets),
        )

        self.security_group_id = sg.id
        self.file_system_id = file_system.id
        self.service_name = service.name
        self.log_group_name = log_group.name
        self.register_outputs({"url": self.url, "security_group_id": self.security_group_id,
                               "file_system_id": self.file_system_id})


def influxdb_containers(*, log_group: str, region: str, password_value_from: str, database: str,
                        admin_username: str) -> list[dict[str, Any]]:
    """The InfluxDB container: auth on, database and admin created on first start."""
    return [{
        "name": SERVICE_NAME,
        "image": images.INFLUXDB,
        "essential": True,
        "portMappings": [{"containerPort": PORT, "protocol": "tcp"}],
        "environment": [
            {"name": "INFLUXDB_DB", "value": database},
            {"name": "INFLUXDB_HTTP_AUTH_ENABLED", "value": "true"},
            {"name": "INFLUXDB_ADMIN_USER", "value": admin_username},
            # k6 writes a request per sample batch; per-request HTTP logs would cost more than the data.
            {"name": "INFLUXDB_HTTP_LOG_ENABLED", "value": "false"},
            {"name": "INFLUXDB_REPORTING_DISABLED", "value": "true"},
        ],
        "secrets": [{"name": "INFLUXDB_ADMIN_PASSWORD", "valueFrom": password_value_from}],
        "mountPoints": [{"sourceVolume": "data", "containerPath": DATA_DIR}],
        "healthCheck": {
            "command": ["CMD-SHELL", f"curl -sf http://127.0.0.1:{PORT}/ping || exit 1"],
            "interval": 15, "timeout": 5, "retries": 3, "startPeriod": 30,
        },
        "logConfiguration": awslogs(log_group, region, SERVICE_NAME),
    }]
