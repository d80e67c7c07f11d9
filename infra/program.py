"""`build(cfg)`: create the whole loadbearing environment and return its stack outputs.

Order (each step only needs earlier ones): network -> admin credentials -> runner
fleet (cluster, bucket, k6 task) -> Grafana (reads InfluxDB by its DNS name) ->
InfluxDB (admits the runner and Grafana security groups) -> feedback -> cost guard.

`Program.exports` are the stack outputs the `ecs` backend and the controller read with
`pulumi stack output --json`: exactly the keys `core.stack_outputs.StackOutputs`
declares (`stack_outputs.exports` refuses any other set). None is secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from core import stack_outputs
from core.stack_outputs import CAPACITY_PROVIDERS
from infra import grafana_provisioning, iam_documents, images
from infra.config import StackConfig
from infra.cost_guard import BudgetArgs, CostGuard, CostGuardArgs
from infra.credentials import Credential, CredentialArgs, generated_password
from infra.feedback import Feedback, FeedbackArgs
from infra.grafana import Grafana, GrafanaArgs
from infra.influxdb import ControllerAccess, InfluxDb, InfluxDbArgs, User, Users, influxdb_url
from infra.network import Network, NetworkArgs
from infra.runner_fleet import (
    RESULTS_PREFIX,
    SCRIPTS_PREFIX,
    RunnerFleet,
    RunnerFleetArgs,
)


@dataclass
class Program:
    """The components `build` created and the outputs to export."""

    network: Network
    influxdb_users: Users
    grafana_admin: Credential
    fleet: RunnerFleet
    grafana: Grafana
    influxdb: InfluxDb
    feedback: Feedback
    cost_guard: CostGuard
    exports: dict[str, Any]


def build(cfg: StackConfig, dashboards_root: Path = grafana_provisioning.DASHBOARDS_ROOT) -> Program:
    """Create every resource for `cfg`; nothing is created inside an `apply`."""
    tags = cfg.tags
    prefix = cfg.name_prefix
    region = aws.get_region_output().region
    identity = aws.get_caller_identity_output()
    partition = aws.get_partition_output().partition

    network = Network("network", NetworkArgs(
        name_prefix=prefix, tags=tags, vpc_cidr=cfg.vpc_cidr, nat_gateways=cfg.nat_gateways,
        existing=cfg.existing_network, region=region, endpoints=cfg.vpc_endpoints))
    image_source = _image_source(cfg, region, identity.account_id, partition)
    influx_url = influxdb_url(network.namespace_name)

    influxdb_admin = Credential("influxdb-admin", CredentialArgs(
        username=cfg.influxdb_admin_user, password=cfg.influxdb_admin_password,
        description=f"InfluxDB admin for loadbearing stack {cfg.stack}", tags=tags))
    grafana_admin = Credential("grafana-admin", CredentialArgs(
        username=cfg.grafana_admin_user, password=cfg.grafana_admin_password,
        description=f"Grafana admin for loadbearing stack {cfg.stack}", tags=tags))
    influx_users = _influxdb_users(cfg, influxdb_admin, tags)

    fleet = RunnerFleet("runners", RunnerFleetArgs(
        name_prefix=prefix, tags=tags, vpc_id=network.vpc_id, region=region, cpu=cfg.runner_cpu, memory=cfg.runner_memory,
        capacity_provider=cfg.runner_capacity_provider, log_retention_days=cfg.log_retention_days,
        results_expiration_days=cfg.results_expiration_days, influxdb_url=influx_url,
        influxdb_database=cfg.influxdb_database, influxdb_username=influx_users.writer.username,
        influxdb_secret_arn=influx_users.writer.secret_arn,
        influxdb_password_value_from=influx_users.writer.password_value_from, images=image_source))

    grafana = Grafana("grafana", GrafanaArgs(
        name_prefix=prefix, tags=tags, vpc_id=network.vpc_id, public_subnet_ids=network.public_subnet_ids,
        private_subnet_ids=network.private_subnet_ids, region=region, cluster_arn=fleet.cluster_arn,
        cpu=cfg.grafana_cpu, memory=cfg.grafana_memory, admin_username=cfg.grafana_admin_user,
        admin_secret_arn=grafana_admin.secret_arn, admin_password_value_from=grafana_admin.password_value_from,
        influxdb_url=influx_url, influxdb_username=influx_users.reader.username,
        influxdb_secret_arn=influx_users.reader.secret_arn,
        influxdb_password_value_from=influx_users.reader.password_value_from,
        bucket_name=fleet.bucket_name, bucket_arn=fleet.bucket_arn, allowed_cidrs=cfg.grafana_allowed_cidrs,
        log_retention_days=cfg.log_retention_days, certificate_arn=cfg.grafana_certificate_arn,
        domain_name=cfg.grafana_domain_name, provisioning=grafana_provisioning.collect(dashboards_root, cfg.influxdb_database), images=image_source))

    influxdb = InfluxDb("influxdb", InfluxDbArgs(
        name_prefix=prefix, tags=tags, vpc_id=network.vpc_id, subnet_ids=network.private_subnet_ids,
        region=region, cluster_arn=fleet.cluster_arn, namespace_id=network.namespace_id,
        namespace_name=network.namespace_name, cpu=cfg.influxdb_cpu, memory=cfg.influxdb_memory,
        database=cfg.influxdb_database, users=influx_users, log_retention_days=cfg.log_retention_days,
        client_security_group_ids={"runners": fleet.security_group_id, "grafana": grafana.security_group_id},
        operator_cidrs=cfg.operator_cidrs,
        controller=None if not cfg.operator_cidrs else ControllerAccess(
            load_balancer_arn=grafana.load_balancer_arn,
            load_balancer_security_group_id=grafana.alb_security_group_id, host=grafana.host,
            certificate_arn=cfg.grafana_certificate_arn, allowed_cidrs=cfg.operator_cidrs),
        images=image_source))

    feedback = Feedback("feedback", FeedbackArgs(
        targets=cfg.targets, cluster_name=cfg.target_cluster_name, settings_prefix=cfg.target_settings_prefix,
        tags=tags))

    budget = None
    if cfg.budget_monthly_usd is not None:
        budget = BudgetArgs(monthly_usd=cfg.budget_monthly_usd, emails=cfg.budget_emails,
                            scope=cfg.budget_scope, stack=cfg.stack)
    cost_guard = CostGuard("cost-guard", CostGuardArgs(
        name_prefix=prefix, tags=tags, cluster_arn=fleet.cluster_arn, cluster_name=fleet.cluster_name,
        task_family=fleet.task_family, max_minutes=cfg.runner_max_minutes,
        interval_minutes=cfg.reaper_interval_minutes, max_runners=cfg.runner_count,
        log_retention_days=cfg.log_retention_days, region=region, account_id=identity.account_id,
        partition=partition, budget=budget))

    controller_policy = aws.iam.Policy(
        "controller-policy",
        name=f"{prefix}-controller",
        description="loadbearing controller: exactly what `loadbearing run --backend ecs` calls on this stack",
        policy=pulumi.Output.all(
            cluster_arn=fleet.cluster_arn, task_definition_arn=fleet.task_definition_arn,
            task_role_arn=fleet.task_role_arn, execution_role_arn=fleet.execution_role_arn,
            bucket_arn=fleet.bucket_arn, log_group_arn=fleet.log_group_arn,
            secret_arn=influx_users.controller.secret_arn,
        ).apply(lambda v: iam_documents.controller_policy(scripts_prefix=SCRIPTS_PREFIX, **v)),
        tags=tags,
    )

    # runnerSubnets public: each runner gets a public IP and skips the NAT gateway (no per-GB NAT
    # charge; one source address per runner), as AWS's own load-testing solution runs them
    public_runners = cfg.runner_subnets == "public"
    exports = stack_outputs.exports({
        # the contract read by the ecs backend
        "cluster_arn": fleet.cluster_arn,
        "task_definition_arn": fleet.task_definition_arn,
        "container_name": fleet.container_name,
        "subnet_ids": network.public_subnet_ids if public_runners else network.private_subnet_ids,
        "security_group_ids": [fleet.security_group_id],
        "scripts_bucket": fleet.bucket_name,
        "influxdb_url": influx_url,
        "grafana_url": grafana.url,
        # more for the ecs backend and the controller
        "region": region,
        "cluster_name": fleet.cluster_name,
        "task_family": fleet.task_family,
        "capacity_providers": list(CAPACITY_PROVIDERS),
        "capacity_provider": cfg.runner_capacity_provider,
        "assign_public_ip": public_runners,
        "runner_count": cfg.runner_count,
        "runner_max_minutes": cfg.runner_max_minutes,
        "log_group_name": fleet.log_group_name,
        "runner_task_role_arn": fleet.task_role_arn,
        "runner_execution_role_arn": fleet.execution_role_arn,
        "scripts_prefix": SCRIPTS_PREFIX,
        "results_prefix": RESULTS_PREFIX,
        "k6_image": pulumi.Output.from_input(image_source.registry).apply(images.K6.via),
        "influxdb_database": cfg.influxdb_database,
        "influxdb_controller_url": influxdb.controller_url,
        "influxdb_controller_username": influx_users.controller.username,
        "influxdb_controller_secret_arn": influx_users.controller.secret_arn,
        "influxdb_store_id": influxdb.file_system_id,
        "influxdb_cpu": cfg.influxdb_cpu,
        "influxdb_memory": cfg.influxdb_memory,
        "grafana_admin_user": cfg.grafana_admin_user,
        "grafana_influxdb_proxy_url": grafana.datasource_proxy_url,
        "load_balancer_dns_name": grafana.dns_name,
        "vpc_id": network.vpc_id,
        "target_settings_prefix": cfg.target_settings_prefix,
        "feedback_parameters": feedback.parameters,
        "feedback_scalable_targets": feedback.scalable_targets,
        "cost_guard_function": cost_guard.reaper_function_name,
        "controller_policy_arn": controller_policy.arn,
    })
    return Program(network=network, influxdb_users=influx_users, grafana_admin=grafana_admin, fleet=fleet,
                   grafana=grafana, influxdb=influxdb, feedback=feedback, cost_guard=cost_guard,
                   exports=exports)


def _image_source(cfg: StackConfig, region: pulumi.Output[str], account: pulumi.Output[str],
                  partition: pulumi.Output[str]) -> images.ImageSource:
    """Docker Hub directly (pullImagesFromDockerHub), or the stack's ECR pull-through cache."""
    if cfg.docker_hub_credential_arn is None:
        return images.DOCKER_HUB_DIRECT
    rule = aws.ecr.PullThroughCacheRule(
        "images-cache", ecr_repository_prefix=images.CACHE_PREFIX, upstream_registry_url=images.DOCKER_HUB,
        credential_arn=cfg.docker_hub_credential_arn)
    # from the rule's own output, so every task definition waits for the rule
    registry = pulumi.Output.all(rule.registry_id, region).apply(lambda v: f"{v[0]}.dkr.ecr.{v[1]}.amazonaws.com")
    repositories = pulumi.Output.all(partition, region, account).apply(
        lambda v: f"arn:{v[0]}:ecr:{v[1]}:{v[2]}:repository/{images.CACHE_PREFIX}/*")
    return images.ImageSource(registry=registry, repositories_arn=repositories)


INFLUXDB_USERS = {"writer": "k6_writer", "reader": "grafana_reader", "controller": "loadbearing_controller"}


def _influxdb_users(cfg: StackConfig, admin: Credential, tags: dict[str, str]) -> Users:
    """The admin from config; the runners', Grafana's and the controller's users with generated
    passwords, each in its own secret (an execution role reads only the one its task needs)."""
    def user(credential: Credential) -> User:
        return User(credential.username, credential.secret_arn, credential.password_value_from)

    others = {
        role: Credential(f"influxdb-{role}", CredentialArgs(
            username=username, password=generated_password(f"influxdb-{role}-password"),
            description=f"InfluxDB {role} for loadbearing stack {cfg.stack}", tags=tags))
        for role, username in INFLUXDB_USERS.items()}
    return Users(admin=user(admin), writer=user(others["writer"]), reader=user(others["reader"]),
                 controller=user(others["controller"]))


def export_all(program: Program) -> None:
    """`pulumi.export` every output of `program`."""
    for key, value in program.exports.items():
        pulumi.export(key, value)
