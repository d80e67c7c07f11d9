"""InfluxDB 1.8 on ECS Fargate: encrypted EFS data, a private DNS name, narrow ingress.

Reachable at `influxdb_url(namespace)` (`http://influxdb.<prefix>.internal:8086`) from
inside the VPC: port 8086 admits the runner and Grafana security groups and the
optional `operatorCidrs` (VPN, peering, a bastion), nothing else. With `controller`
set, the stack's load balancer also forwards port 8086 (HTTPS with the stack's
certificate; HTTP only with `allowInsecureHttp`) to InfluxDB, for the controller
outside the VPC; its listener admits only `operatorCidrs`.

HTTP auth is on, with one user per role (USERS): `admin` for the stack itself, a
write-only user for the runners, a read-only user for Grafana, and a read-write user
(not admin) for the controller, each with its password in Secrets Manager. The
container's command (`start_script`) applies them at every start, through a private
influxd without auth on loopback, before the real one starts: a rotated password
reaches the server (whose users live on EFS), not only its clients. It also writes the
store marker (core.store_identity) holding the EFS file system id, the stack output
`influxdb_store_id`. One task at a time (min healthy 0 %): two InfluxDB processes must
never share the EFS data directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from core.store_identity import marker_line
from infra import fargate, iam_documents, images
from infra.load_balancer import forward_listener, ip_target_group
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
class User:
    """One InfluxDB user: its name, where ECS reads its password, and what it may do."""

    username: str
    secret_arn: pulumi.Input[str]
    password_value_from: pulumi.Input[str]


@dataclass(frozen=True)
class Users:
    """The four roles. Only `admin` may manage users and databases."""

    admin: User
    writer: User       # the k6 runners: WRITE on the database
    reader: User       # Grafana: READ on the database
    controller: User   # loadbearing's controller: READ and WRITE (events, runner CPU) on the database

    def secret_arns(self) -> list[pulumi.Input[str]]:
        return [u.secret_arn for u in (self.admin, self.writer, self.reader, self.controller)]


# Env var names the start script reads: (user, password) per role.
USER_ENV = {"admin": ("INFLUXDB_ADMIN_USER", "INFLUXDB_ADMIN_PASSWORD"),
            "writer": ("LB_WRITER_USER", "LB_WRITER_PASSWORD"),
            "reader": ("LB_READER_USER", "LB_READER_PASSWORD"),
            "controller": ("LB_CONTROLLER_USER", "LB_CONTROLLER_PASSWORD")}
GRANTS = {"admin": 'GRANT ALL PRIVILEGES TO "${u}"',
          "writer": 'GRANT WRITE ON "${INFLUXDB_DB}" TO "${u}"',
          "reader": 'GRANT READ ON "${INFLUXDB_DB}" TO "${u}"',
          "controller": 'GRANT ALL ON "${INFLUXDB_DB}" TO "${u}"'}

START_SCRIPT = """\
set -eu
config="${{LB_INFLUXD_CONFIG:-/etc/influxdb/influxdb.conf}}"
setup="${{LB_SETUP_HTTP:-127.0.0.1:8087}}"
INFLUXDB_HTTP_AUTH_ENABLED=false INFLUXDB_HTTP_BIND_ADDRESS="$setup" \\
  INFLUXDB_BIND_ADDRESS="${{LB_SETUP_RPC:-127.0.0.1:8089}}" influxd -config "$config" &
pid=$!
n=0
until curl -sf "http://$setup/ping" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || {{ echo "loadbearing: influxd exited while applying users"; exit 1; }}
  n=$((n + 1)); [ "$n" -lt 600 ] || {{ echo "loadbearing: influxd did not answer in 60 s"; kill "$pid"; exit 1; }}
  sleep 0.1
done
q() {{
  out=$(curl -sS -XPOST "http://$setup/query" --data-urlencode "q=$1") || return 1
  case "$out" in *'"error"'*) echo "loadbearing: InfluxDB refused a statement: $out" | sed 's/PASSWORD.*//'; return 1;; esac
}}
user() {{
  u="$1"; p="$2"
  curl -sS -XPOST "http://$setup/query" --data-urlencode "q=CREATE USER \"$u\" WITH PASSWORD '$p'" >/dev/null
  q "SET PASSWORD FOR \"$u\" = '$p'"
}}
q "CREATE DATABASE \"$INFLUXDB_DB\""
{users}
curl -sSf -XPOST "http://$setup/write?db=$INFLUXDB_DB&precision=ns" --data-binary "$(printf '{marker}' "$LB_STORE_ID")"
kill "$pid"; wait "$pid" || true
echo "loadbearing: users, passwords and the store marker applied"
exec influxd -config "$config"
"""


def start_script() -> str:
    """The InfluxDB container's command (entryPoint `sh -c`): apply users, passwords, grants and
    the store marker through a private influxd without auth on loopback, stop it, then run
    influxd as configured (auth on). Reads USER_ENV, INFLUXDB_DB and LB_STORE_ID."""
    users = "\n".join(f'u="${{{name}}}"; user "$u" "${{{password}}}"; q "{GRANTS[role]}"'
                      for role, (name, password) in USER_ENV.items())
    return START_SCRIPT.format(users=users, marker=marker_line("%s"))


@dataclass(frozen=True)
class ControllerAccess:
    """The load balancer listener that lets a controller outside the VPC reach InfluxDB."""

    load_balancer_arn: pulumi.Input[str]
    load_balancer_security_group_id: pulumi.Input[str]
    host: pulumi.Input[str]                 # the name the URL uses (the stack's domain, else the ALB's)
    certificate_arn: str | None             # None: HTTP (allowInsecureHttp)
    allowed_cidrs: Sequence[str]


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
    users: Users
    log_retention_days: int
    client_security_group_ids: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    operator_cidrs: Sequence[str] = ()
    controller: ControllerAccess | None = None
    images: images.ImageSource = images.DOCKER_HUB_DIRECT


class InfluxDb(pulumi.ComponentResource):
    """Outputs: `url`, `controller_url` (None without `controller`), `security_group_id`,
    `file_system_id` (also the store id), `service_name`, `log_group_name`."""

    url: str
    controller_url: pulumi.Output[str] | None
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

        exec_role = execution_role(name, args.users.secret_arns(), tags, self, images=args.images)
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

        users = args.users
        containers = fargate.container_definitions(
            influxdb_containers, log_group=logs.name, region=args.region, database=args.database,
            store_id=file_system.id,
            usernames={role: getattr(users, role).username for role in USER_ENV},
            password_value_from={role: getattr(users, role).password_value_from for role in USER_ENV},
            registry=args.images.registry)
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
        balancing: dict[str, Any] = {}
        depends: list[pulumi.Resource] = list(mount_targets)
        self.controller_url = None
        if args.controller is not None:
            target_group, listener = self._controller_listener(name, args, args.controller, sg.id, tags, child)
            balancing = {"load_balancers": [{"target_group_arn": target_group.arn, "container_name": SERVICE_NAME,
                                             "container_port": PORT}],
                         "health_check_grace_period_seconds": 120}
            depends.append(listener)
            scheme = "https" if args.controller.certificate_arn else "http"
            self.controller_url = pulumi.Output.from_input(args.controller.host).apply(
                lambda host: f"{scheme}://{host}:{PORT}")
        service = fargate.service(
            name, service_name=f"{args.name_prefix}-influxdb", cluster_arn=args.cluster_arn,
            task_definition=task_definition, subnet_ids=args.subnet_ids, security_group_id=sg.id,
            tags=tags, parent=self, depends_on=depends,
            # Never two InfluxDB processes on one data directory: stop the old task first.
            deployment_minimum_healthy_percent=0,
            deployment_maximum_percent=100,
            service_registries={"registry_arn": discovery.arn},
            **balancing,
        )

        self.security_group_id = sg.id
        self.file_system_id = file_system.id
        self.service_name = service.name
        self.log_group_name = logs.name
        self.register_outputs({"url": self.url, "controller_url": self.controller_url,
                               "security_group_id": self.security_group_id, "file_system_id": self.file_system_id})

    def _controller_listener(self, name: str, args: InfluxDbArgs, access: ControllerAccess,
                             influx_sg: pulumi.Input[str], tags: dict[str, str],
                             child: pulumi.ResourceOptions) -> tuple[aws.lb.TargetGroup, aws.lb.Listener]:
        """Port 8086 on the load balancer, admitting only `allowed_cidrs`, forwarding to InfluxDB."""
        for i, cidr in enumerate(access.allowed_cidrs):
            tcp_ingress(f"{name}-lb-from-operator-{i}", access.load_balancer_security_group_id, PORT,
                        "InfluxDB for the controller (operatorCidrs)", self, cidr=cidr)
        tcp_egress(f"{name}-lb-to-influxdb", access.load_balancer_security_group_id, PORT, "to InfluxDB tasks",
                   self, group_id=influx_sg)
        tcp_ingress(f"{name}-from-lb", influx_sg, PORT, "InfluxDB from the load balancer", self,
                    group_id=access.load_balancer_security_group_id)
        target_group = ip_target_group(f"{name}-tg", PORT, args.vpc_id, "/ping", "204", tags, self)
        listener = forward_listener(f"{name}-controller-listener", access.load_balancer_arn, PORT, target_group.arn,
                                    access.certificate_arn, self)
        return target_group, listener


def influxdb_containers(*, log_group: str, region: str, database: str, store_id: str,
                        usernames: Mapping[str, str], password_value_from: Mapping[str, str],
                        registry: str | None = None) -> list[dict[str, Any]]:
    """The InfluxDB container: auth on; users, passwords and the store marker applied at every
    start by `start_script`; passwords only through `secrets`."""
    environment = [
        {"name": "INFLUXDB_DB", "value": database},
        {"name": "INFLUXDB_HTTP_AUTH_ENABLED", "value": "true"},
        # k6 writes a request per sample batch; per-request HTTP logs would cost more than the data.
        {"name": "INFLUXDB_HTTP_LOG_ENABLED", "value": "false"},
        # a big k6 batch must never be refused ("Request Entity Too Large" loses samples)
        {"name": "INFLUXDB_HTTP_MAX_BODY_SIZE", "value": "0"},
        {"name": "INFLUXDB_REPORTING_DISABLED", "value": "true"},
        {"name": "LB_STORE_ID", "value": store_id},
    ]
    environment += [{"name": USER_ENV[role][0], "value": usernames[role]} for role in USER_ENV]
    return [{
        "name": SERVICE_NAME,
        "image": images.INFLUXDB.via(registry),
        "essential": True,
        "entryPoint": ["sh", "-c"],
        "command": [start_script()],
        "portMappings": [{"containerPort": PORT, "protocol": "tcp"}],
        "environment": environment,
        "secrets": [{"name": USER_ENV[role][1], "valueFrom": password_value_from[role]} for role in USER_ENV],
        "mountPoints": [{"sourceVolume": "data", "containerPath": DATA_DIR}],
        "healthCheck": {
            "command": ["CMD-SHELL", f"curl -sf http://127.0.0.1:{PORT}/ping || exit 1"],
            "interval": 15, "timeout": 5, "retries": 3, "startPeriod": 60,
        },
        "logConfiguration": awslogs(log_group, region, SERVICE_NAME),
    }]
