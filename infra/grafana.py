"""Grafana (pinned image) on ECS Fargate behind an internet-facing ALB.

The ALB admits only `grafanaAllowedCidrs`: HTTPS on 443 with the ACM certificate
`grafanaCertificateArn` for `grafanaDomainName` (the root URL and every link Grafana makes
use that name; point it at the ALB's `load_balancer_dns_name`) and an 80 -> 443 redirect.
Plain HTTP on 80 only with `allowInsecureHttp` (a trial: the admin password crosses the
network in clear). Grafana's admin password and the
InfluxDB password come from Secrets Manager. Its datasource and dashboards come
from `grafana_dashboards/` (see `infra.grafana_provisioning`): the files are stored in
the stack bucket under `grafana/`, and an init container (`provisioning`, aws-cli)
copies them onto the task's volumes before Grafana starts. Grafana keeps its own
database on task storage: provisioned dashboards survive a restart, UI-made changes
do not (dashboards are code here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import fargate, iam_documents, images
from infra.grafana_provisioning import (
    ENV_PASSWORD,
    ENV_URL,
    ENV_USERNAME,
    PROVISIONING_PATH,
    Provisioning,
)
from infra.load_balancer import forward_listener, ip_target_group
from infra.log_groups import log_group
from infra.runner_fleet import GRAFANA_PREFIX
from infra.security_groups import security_group, tcp_egress, tcp_ingress
from infra.task_roles import awslogs, execution_role, task_role

PORT = 3000
CONTAINER_NAME = "grafana"


def init_script(bucket: str) -> str:
    """Shell for the init container: copy provisioning and dashboards onto the volumes."""
    return (
        "set -e; "
        f"aws s3 sync --only-show-errors --delete s3://{bucket}/{GRAFANA_PREFIX}provisioning/ /lb/provisioning/; "
        f"aws s3 sync --only-show-errors --delete s3://{bucket}/{GRAFANA_PREFIX}dashboards/ /lb/dashboards/; "
        "mkdir -p /lb/provisioning/plugins /lb/provisioning/alerting /lb/provisioning/notifiers "
        "/lb/provisioning/access-control; "
        "chmod -R a+rX /lb"
    )


@dataclass(frozen=True)
class GrafanaArgs:
    """Grafana's sizing, exposure and the InfluxDB it reads (URL, user, secret)."""

    name_prefix: str
    tags: Mapping[str, str]
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    region: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    cpu: int
    memory: int
    admin_username: str
    admin_secret_arn: pulumi.Input[str]
    admin_password_value_from: pulumi.Input[str]
    influxdb_url: str
    influxdb_username: str
    influxdb_secret_arn: pulumi.Input[str]
    influxdb_password_value_from: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    allowed_cidrs: Sequence[str]
    log_retention_days: int
    provisioning: Provisioning
    certificate_arn: str | None = None
    domain_name: str | None = None     # the name users reach it by (the certificate's); None: the ALB's
    images: images.ImageSource = images.DOCKER_HUB_DIRECT


class Grafana(pulumi.ComponentResource):
    """Outputs: `url`, `host` (the name users reach the load balancer by), `load_balancer_arn`,
    `security_group_id`, `alb_security_group_id`, `datasource_proxy_url`.

    `datasource_proxy_url` is Grafana's datasource proxy for the InfluxDB datasource
    (`<url>/api/datasources/proxy/uid/<uid>`): InfluxQL `/query` through Grafana with
    the Grafana admin credentials, for readers outside the VPC.
    """

    url: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    alb_security_group_id: pulumi.Output[str]
    load_balancer_arn: pulumi.Output[str]
    dns_name: pulumi.Output[str]
    host: pulumi.Output[str]
    datasource_proxy_url: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: GrafanaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("loadbearing:infra:Grafana", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        https = args.certificate_arn is not None
        listener_ports = [80, 443] if https else [80]

        alb_sg = security_group(f"{name}-alb-sg", args.vpc_id, "Grafana ALB: only the configured CIDRs",
                                tags, self)
        sg = security_group(f"{name}-sg", args.vpc_id, "Grafana tasks: 3000 from the ALB only", tags, self)
        for i, cidr in enumerate(args.allowed_cidrs):
            for port in listener_ports:
                tcp_ingress(f"{name}-alb-{port}-from-{i}", alb_sg.id, port, "Grafana users", self, cidr=cidr)
        tcp_egress(f"{name}-alb-to-grafana", alb_sg.id, PORT, "to Grafana tasks", self, group_id=sg.id)
        tcp_ingress(f"{name}-from-alb", sg.id, PORT, "from the ALB", self, group_id=alb_sg.id)
        tcp_egress(f"{name}-egress-https", sg.id, 443, "image pulls, S3, Secrets Manager, logs", self,
                   cidr="0.0.0.0/0")
        tcp_egress(f"{name}-egress-influxdb", sg.id, 8086,
                   "InfluxDB (its own security group admits only known clients)", self, cidr="0.0.0.0/0")

        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            subnets=list(args.public_subnet_ids),
            security_groups=[alb_sg.id],
            drop_invalid_header_fields=True,
            tags=tags,
            opts=child,
        )
        target_group = ip_target_group(f"{name}-tg", PORT, args.vpc_id, "/api/health", "200", tags, self)
        listeners: list[aws.lb.Listener] = []
        if https:
            listeners.append(forward_listener(f"{name}-https", alb.arn, 443, target_group.arn, args.certificate_arn,
                                              self))
            listeners.append(aws.lb.Listener(
                f"{name}-http-redirect", load_balancer_arn=alb.arn, port=80, protocol="HTTP",
                default_actions=[aws.lb.ListenerDefaultActionArgs(
                    type="redirect", redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                        port="443", protocol="HTTPS", status_code="HTTP_301"))],
                opts=child))
        else:
            listeners.append(forward_listener(f"{name}-http", alb.arn, 80, target_group.arn, None, self))
        self.load_balancer_arn = alb.arn
        self.dns_name = alb.dns_name
        self.host = pulumi.Output.from_input(args.domain_name) if args.domain_name else alb.dns_name
        self.url = self.host.apply(lambda host: f"{'https' if https else 'http'}://{host}")

        objects = [
            aws.s3.BucketObjectv2(
                f"{name}-file-{f.key.replace('/', '-')}",
                bucket=args.bucket_name,
                key=f"{GRAFANA_PREFIX}{f.key}",
                content=f.content,
                content_type=f.content_type,
                tags=tags,
                opts=child,
            )
            for f in args.provisioning.files
        ]

        logs = log_group(name, args.name_prefix, "grafana", args.log_retention_days, tags, self)

        exec_role = execution_role(name, [args.admin_secret_arn, args.influxdb_secret_arn], tags, self,
                                   images=args.images)
        role = task_role(name, "Grafana: read its provisioning files (grafana/ of the bucket)", tags, self)
        aws.iam.RolePolicy(
            f"{name}-task-s3",
            role=role.id,
            policy=pulumi.Output.from_input(args.bucket_arn).apply(
                lambda arn: iam_documents.document(*iam_documents.s3_read_prefix(arn, GRAFANA_PREFIX))),
            opts=child,
        )

        containers = fargate.container_definitions(
            grafana_containers, log_group=logs.name, region=args.region, bucket=args.bucket_name,
            root_url=self.url, admin_username=args.admin_username,
            admin_password_value_from=args.admin_password_value_from, influxdb_url=args.influxdb_url,
            influxdb_username=args.influxdb_username,
            influxdb_password_value_from=args.influxdb_password_value_from, provisioning=args.provisioning,
            https=https, registry=args.images.registry)
        task_definition = fargate.task_definition(
            name, family=f"{args.name_prefix}-grafana", cpu=args.cpu, memory=args.memory,
            execution_role=exec_role, task_role=role, containers=containers, tags=tags, parent=self,
            volumes=[{"name": "provisioning"}, {"name": "dashboards"}], depends_on=objects)
        fargate.service(
            name, service_name=f"{args.name_prefix}-grafana", cluster_arn=args.cluster_arn,
            task_definition=task_definition, subnet_ids=args.private_subnet_ids, security_group_id=sg.id,
            tags=tags, parent=self, depends_on=listeners,
            load_balancers=[{"target_group_arn": target_group.arn, "container_name": CONTAINER_NAME,
                             "container_port": PORT}],
            health_check_grace_period_seconds=120,
        )

        self.security_group_id = sg.id
        self.alb_security_group_id = alb_sg.id
        self.log_group_name = logs.name
        uid = args.provisioning.datasource_uid
        self.datasource_proxy_url = self.url.apply(lambda u: f"{u}/api/datasources/proxy/uid/{uid}")
        self.register_outputs({"url": self.url, "security_group_id": self.security_group_id,
                               "datasource_proxy_url": self.datasource_proxy_url})


def grafana_containers(*, log_group: str, region: str, bucket: str, root_url: str, admin_username: str,
                       admin_password_value_from: str, influxdb_url: str, influxdb_username: str,
                       influxdb_password_value_from: str, provisioning: Provisioning,
                       https: bool, registry: str | None = None) -> list[dict[str, Any]]:
    """The init container and Grafana; passwords only through `secrets`."""
    return [
        {
            "name": "provisioning",
            "image": images.AWS_CLI.via(registry),
            "essential": False,
            "entryPoint": ["sh", "-c"],
            "command": [init_script(bucket)],
            "mountPoints": [{"sourceVolume": "provisioning", "containerPath": "/lb/provisioning"},
                            {"sourceVolume": "dashboards", "containerPath": "/lb/dashboards"}],
            "logConfiguration": awslogs(log_group, region, "provisioning"),
        },
        {
            "name": CONTAINER_NAME,
            "image": images.GRAFANA.via(registry),
            "essential": True,
            "dependsOn": [{"containerName": "provisioning", "condition": "SUCCESS"}],
            "portMappings": [{"containerPort": PORT, "protocol": "tcp"}],
            "environment": [
                {"name": "GF_SECURITY_ADMIN_USER", "value": admin_username},
                {"name": "GF_SERVER_ROOT_URL", "value": root_url},
                {"name": "GF_USERS_ALLOW_SIGN_UP", "value": "false"},
                {"name": "GF_AUTH_ANONYMOUS_ENABLED", "value": "false"},
                {"name": "GF_ANALYTICS_REPORTING_ENABLED", "value": "false"},
                {"name": "GF_ANALYTICS_CHECK_FOR_UPDATES", "value": "false"},
                {"name": "GF_SECURITY_COOKIE_SECURE", "value": "true" if https else "false"},
                {"name": ENV_URL, "value": influxdb_url},
                {"name": ENV_USERNAME, "value": influxdb_username},
                # Changes whenever a provisioning file does, so the service rolls a new task.
                {"name": "LOADBEARING_PROVISIONING_SHA256", "value": provisioning.digest()},
            ],
            "secrets": [
                {"name": "GF_SECURITY_ADMIN_PASSWORD", "valueFrom": admin_password_value_from},
                {"name": ENV_PASSWORD, "valueFrom": influxdb_password_value_from},
            ],
            "mountPoints": [
                {"sourceVolume": "provisioning", "containerPath": PROVISIONING_PATH, "readOnly": True},
                {"sourceVolume": "dashboards", "containerPath": provisioning.dashboards_path, "readOnly": True},
            ],
            "healthCheck": {
                "command": ["CMD-SHELL", f"wget -q -O /dev/null http://127.0.0.1:{PORT}/api/health || exit 1"],
                "interval": 15, "timeout": 5, "retries": 3, "startPeriod": 60,
            },
            "logConfiguration": awslogs(log_group, region, CONTAINER_NAME),
        },
    ]
