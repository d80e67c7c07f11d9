"""Fixtures for the Pulumi program tests: mocked runs shared by the whole session.

`example_run`: Pulumi.example.yaml as it is. `variant_run`: the other branches of the
program in one run: an existing VPC, runners in public subnets, images straight from
Docker Hub, plain HTTP (allowInsecureHttp),
other targets, no budget,
and a `grafana_dashboards/` without any files (defaults take their place).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.harness import ProgramRun, ensure_event_loop, example_config, run_program


@pytest.fixture(scope="session", autouse=True)
def _session_event_loop() -> Iterator[None]:
    ensure_event_loop()
    yield


@pytest.fixture(autouse=True)
def _event_loop() -> Iterator[None]:
    ensure_event_loop()
    yield


ensure_event_loop()  # before the test modules are collected: some build Outputs at import


VARIANT_TARGETS: dict[str, Any] = {
    "search-api": {
        "ecs_service": "search",
        "db_pool_size": 4,
        "autoscaling": {"min_instances": 1, "max_instances": 10, "metric": "ECSServiceAverageCPUUtilization",
                        "target_value": 45.5, "scale_out_cooldown_s": 30, "scale_in_cooldown_s": 600},
    },
    "jobs-api": {"ecs_service": "jobs", "cache_ttl_s": 120},
    "cart-api": {  # ecs_service defaults to the service name
        "autoscaling": {"min_instances": 0, "max_instances": 2, "metric": "ECSServiceAverageCPUUtilization",
                        "target_value": 70, "scale_out_cooldown_s": 0, "scale_in_cooldown_s": 0},
    },
}


def variant_config() -> dict[str, Any]:
    """Example config with the other side of every branch."""
    config = example_config()
    for key in ("loadbearing:budgetMonthlyUsd", "loadbearing:budgetEmails", "loadbearing:budgetScope",
                "loadbearing:dockerHubCredentialArn", "loadbearing:grafanaCertificateArn",
                "loadbearing:grafanaDomainName"):
        config.pop(key)
    config.update({
        "loadbearing:existingNetwork": {
            "vpc_id": "vpc-0123456789abcdef0",
            "public_subnet_ids": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"],
            "private_subnet_ids": ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2",
                                   "subnet-0bbbbbbbbbbbbbbb3"],
        },
        "loadbearing:allowInsecureHttp": True,   # a trial: plain HTTP, no certificate, the ALB's own name
        "loadbearing:grafanaAllowedCidrs": ["203.0.113.0/24", "2001:db8::/32"],
        "loadbearing:operatorCidrs": [],
        "loadbearing:influxdbDatabase": "perf",
        "loadbearing:runnerSubnets": "public",
        "loadbearing:pullImagesFromDockerHub": True,
        "loadbearing:targetClusterName": "search-prod",
        "loadbearing:targetSettingsPrefix": "/perf/settings",
        "loadbearing:targets": VARIANT_TARGETS,
    })
    return config


@pytest.fixture(scope="session")
def example_run() -> ProgramRun:
    """The program run under mocks with Pulumi.example.yaml's config (and the two secrets)."""
    return run_program(example_config())


@pytest.fixture(scope="session")
def variant_run(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    """The program run with `variant_config()` and an empty grafana_dashboards/."""
    empty: Path = tmp_path_factory.mktemp("no-dashboards")
    return run_program(variant_config(), dashboards_root=empty)
