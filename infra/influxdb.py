"""InfluxDB 1.8 on ECS Fargate: encrypted EFS data, a private DNS name, narrow ingress.

Reachable at `influxdb_url(namespace)` (`http://influxdb.<prefix>.internal:8086`) from
inside the VPC only: port 8086 admits the runner and Grafana security groups and the
optional `operatorCidrs` (VPN, peering, a bastion), nothing else. HTTP auth is on;
the admin user and database are created on first start from the Secrets Manager
credential. One task at a time (min healthy 0 %): two InfluxDB processes must never
share the EFS data directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import fargate, iam_documents, images
from infra.log_groups import log_group
from infra.security_groups import security_group, tcp_egress, tcp_ingress
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

        sg = security_group(f"{name}-sg", args.vpc_id, "InfluxDB: 8086 from runners, Grafana, operator CIDRs",
                            tags, self)
        efs_sg = security_group(f"{name}-efs-sg", args.vpc_id, "InfluxDB data (EFS): NFS from InfluxDB only",
                                tags, self)
        for client, group_id in args.client_security_group_ids.items():
            tcp_ingress(f"{name}-from-{client}", sg.id, PORT, f"InfluxDB from {client}", self,
                        group_id=group_id)
        for i, cidr in enumerate(args.operator_cidrs):
            tcp_ingress(f"{name}-from-operator-{i}", sg.id, PORT, "InfluxDB from operators", self, cidr=cidr)
        tcp_egress(f"{name}-egress-https", sg.id, 443, "image pulls, Secrets Manager, logs", self,
                   cidr="0.0.0.0/0")
        tcp_egress(f"{name}-egress-nfs", sg.id, 2049, "EFS data volume", self, group_id=efs_sg.id)
        tcp_ingress(f"{name}-efs-from-influxdb", efs_sg.id, 2049, "NFS from InfluxDB", self, group_id=sg.id)

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

        logs = log_group(name, args.name_prefix, "influxdb", args.log_retention_days, tags, self)

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

        containers = fargate.container_definitions(
            influxdb_containers, log_group=logs.name, region=args.region,
            password_value_from=args.admin_password_value_from, database=args.database,
            admin_username=args.admin_username)
        task_definition = fargate.task_definition(
            name, family=f"{args.name_prefix}-influxdb", cpu=args.cpu, memory=args.memory,
            execution_role=exec_role, task_role=role, containers=containers, tags=tags, parent=self,
            volumes=[{
                "name": "data",
                "efs_volume_configuration": {
                    "file_system_id": file_system.id,
                    "transit_encryption": "ENABLED",
                    "authorization_config": {"access_point_id": access_point.id, "iam": "ENABLED"},
                },
            }])

        discovery = aws.servicediscovery.Service(
            f"{name}-discovery",
            name=SERVICE_NAME,
            dns_config={"namespace_id": args.namespace_id, "routing_policy": "MULTIVALUE",
                        "dns_records": [{"type": "A", "ttl": 10}]},
            force_destroy=True,
            tags=tags,
            opts=child,
        )
        service = fargate.service(
            name, service_name=f"{args.name_prefix}-influxdb", cluster_arn=args.cluster_arn,
            task_definition=task_definition, subnet_ids=args.subnet_ids, security_group_id=sg.id,
            tags=tags, parent=self, depends_on=mount_targets,
            # Never two InfluxDB processes on one data directory: stop the old task first.
            deployment_minimum_healthy_percent=0,
            deployment_maximum_percent=100,
            service_registries={"registry_arn": discovery.arn},
        )

        self.security_group_id = sg.id
        self.file_system_id = file_system.id
        self.service_name = service.name
        self.log_group_name = logs.name
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
