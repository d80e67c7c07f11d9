"""Stack config: every key documented in Pulumi.example.yaml, and bad values refused by key."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pytest

from infra.config import KEYS, SECRET_KEYS, ConfigError, check_password, parse_config, parse_targets
from tests.infra.harness import EXAMPLE_CONFIG, ROOT, example_config

SECRET = pulumi.Output.secret("Abcdefgh-12345")
SECRETS = {k: SECRET for k in SECRET_KEYS}


BASE = {"grafanaAllowedCidrs": ["203.0.113.0/24"], "pullImagesFromDockerHub": True, "allowInsecureHttp": True}


def parse(**raw: Any) -> Any:
    return parse_config({**BASE, **raw}, SECRETS, "dev")


def test_example_documents_every_key_and_only_known_keys() -> None:
    text = EXAMPLE_CONFIG.read_text()
    undocumented = [k for k in KEYS if not re.search(rf"^\s*#?\s*loadbearing:{k}\b", text, re.MULTILINE)]
    assert undocumented == []
    used = {k.split(":", 1)[1] for k in example_config() if k.startswith("loadbearing:")}
    assert used - set(KEYS) == set()
    # secrets are documented with the command that sets them, never given in plain text
    for key in SECRET_KEYS:
        assert f"pulumi config set --secret {key}" in text
        assert f"loadbearing:{key}" not in example_config()


def test_ecs_service_defaults_to_the_service_name() -> None:
    target = parse_targets({"profile-api": {"db_pool_size": 3}})["profile-api"]
    assert target.ecs_service is None and target.ecs_service_name("profile-api") == "profile-api"


def test_example_targets_block_parses() -> None:
    targets = parse_targets(example_config()["loadbearing:targets"])
    assert set(targets) == {"profile-api", "core-api", "notifications-api"}
    profile = targets["profile-api"]
    assert profile.autoscaling is not None and profile.autoscaling.target_value == 1200
    assert profile.alb_resource_label and profile.db_pool_size == 9 and profile.cache_ttl_s == 30


def test_pulumi_project_file() -> None:
    from ruamel.yaml import YAML

    project = YAML(typ="safe", pure=True).load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "loadbearing"
    assert project["runtime"] == {"name": "python", "options": {"virtualenv": ".venv"}}
    assert project["main"] == "infra/"
    assert (ROOT / "infra" / "__main__.py").is_file()


def test_defaults() -> None:
    cfg = parse()
    assert (cfg.runner_count, cfg.runner_cpu, cfg.runner_memory) == (8, 1024, 2048)
    assert cfg.targets == {} and cfg.budget_monthly_usd is None and cfg.operator_cidrs == ()
    assert cfg.tags["loadbearing-stack"] == "dev" and cfg.name_prefix == "loadbearing-dev"


@pytest.mark.parametrize("stack, prefix", [
    ("Perf_Test.eu", "loadbearing-perf-test-eu"),
    ("x" * 80, "loadbearing-" + "x" * 30),
])
def test_name_prefix_fits_aws_names(stack: str, prefix: str) -> None:
    cfg = parse_config({**BASE, "grafanaAllowedCidrs": ["10.0.0.0/8"]}, SECRETS, stack)
    assert cfg.name_prefix == prefix
    assert cfg.tags["loadbearing-stack"] == stack


@pytest.mark.parametrize("raw, key", [
    ({"grafanaAllowedCidrs": ["0.0.0.0/0"]}, "loadbearing:grafanaAllowedCidrs[0]"),
    ({"grafanaAllowedCidrs": []}, "loadbearing:grafanaAllowedCidrs"),
    ({"operatorCidrs": ["10.0.0.0/8", "::/0"]}, "loadbearing:operatorCidrs[1]"),
    ({"operatorCidrs": ["10.0.0.1/8"]}, "loadbearing:operatorCidrs[0]"),
    ({"runnerCpu": 1000}, "loadbearing:runnerCpu"),
    ({"runnerMemory": 16384}, "loadbearing:runnerMemory"),
    ({"runnerCount": 0}, "loadbearing:runnerCount"),
    ({"runnerCapacityProvider": "EC2"}, "loadbearing:runnerCapacityProvider"),
    ({"logRetentionDays": 10}, "loadbearing:logRetentionDays"),
    ({"natGateways": 3}, "loadbearing:natGateways"),
    ({"vpcCidr": "10.0.0.0/24"}, "loadbearing:vpcCidr"),
    ({"targetSettingsPrefix": "loadbearing/"}, "loadbearing:targetSettingsPrefix"),
    ({"budgetMonthlyUsd": 100}, "loadbearing:budgetEmails"),
    ({"budgetMonthlyUsd": 100, "budgetEmails": ["nobody"]}, "loadbearing:budgetEmails[0]"),
    ({"existingNetwork": {"vpc_id": "vpc-1", "public_subnet_ids": ["subnet-1"],
                          "private_subnet_ids": ["subnet-2", "subnet-3"]}},
     "loadbearing:existingNetwork.public_subnet_ids"),
    ({"targets": {"api": {"ecs_service": "api"}}}, "loadbearing:targetClusterName"),
    ({"runnerCont": 3}, "loadbearing:runnerCont"),
    ({"pullImagesFromDockerHub": False}, "loadbearing:dockerHubCredentialArn"),
    ({"allowInsecureHttp": False}, "loadbearing:grafanaCertificateArn"),     # HTTPS by default
    ({"allowInsecureHttp": False, "grafanaCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/x"},
     "loadbearing:grafanaDomainName"),
    ({"grafanaDomainName": "grafana.example.com"}, "loadbearing:grafanaCertificateArn"),
    ({"grafanaDomainName": "not a name"}, "loadbearing:grafanaDomainName"),
    ({"dockerHubCredentialArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:dockerhub"},
     "loadbearing:dockerHubCredentialArn"),   # the cache takes only secrets named ecr-pullthroughcache/...
    # numbers that are not numbers: a message naming the key, never a traceback
    ({"runnerCount": "--5"}, "loadbearing:runnerCount"),
    ({"runnerCount": True}, "loadbearing:runnerCount"),
    ({"runnerMaxMinutes": 7.5}, "loadbearing:runnerMaxMinutes"),
    ({"budgetMonthlyUsd": float("nan"), "budgetEmails": ["a@example.com"]}, "loadbearing:budgetMonthlyUsd"),
    ({"budgetMonthlyUsd": "inf", "budgetEmails": ["a@example.com"]}, "loadbearing:budgetMonthlyUsd"),
    ({"budgetMonthlyUsd": float("-inf"), "budgetEmails": ["a@example.com"]}, "loadbearing:budgetMonthlyUsd"),
])
def test_bad_values_are_refused_naming_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(**raw)
    assert str(error.value).startswith(f"{key}:")


def test_number_errors_name_the_key_and_the_value() -> None:
    """`--5` once raised a bare ValueError from int() (a traceback); nan/inf passed as budgets."""
    with pytest.raises(ConfigError) as error:
        parse(runnerCount="--5")
    assert str(error.value) == ("loadbearing:runnerCount: Input should be a valid integer, unable to parse "
                                "string as an integer (got '--5')")
    with pytest.raises(ConfigError) as error:
        parse(budgetMonthlyUsd="nan", budgetEmails=["a@example.com"])
    assert str(error.value) == "loadbearing:budgetMonthlyUsd: Input should be a finite number (got 'nan')"


def test_a_config_value_given_as_text_is_read_as_the_engine_hands_it() -> None:
    """`pulumi config set runnerCount 12` stores the text "12"; a database named `123` stays text."""
    cfg = run_text_config({"loadbearing:runnerCount": "12", "loadbearing:influxdbDatabase": "db_123",
                           "loadbearing:grafanaAllowedCidrs": '["203.0.113.0/24"]',
                           "loadbearing:pullImagesFromDockerHub": "true",
                           "loadbearing:allowInsecureHttp": "true"})
    assert cfg.runner_count == 12 and cfg.influxdb_database == "db_123"
    assert cfg.grafana_allowed_cidrs == ("203.0.113.0/24",)
    with pytest.raises(ConfigError, match=r"^loadbearing:runnerCont: unknown key"):
        run_text_config({"loadbearing:runnerCont": "3", "loadbearing:grafanaAllowedCidrs": '["10.0.0.0/8"]'})


def run_text_config(values: dict[str, str]) -> Any:
    from infra.config import load_config

    pulumi.runtime.set_all_config({**values, **{f"loadbearing:{k}": "Abcdefgh-12345" for k in SECRET_KEYS}},
                                  secret_keys=[f"loadbearing:{k}" for k in SECRET_KEYS])
    try:
        return load_config("dev")
    finally:
        pulumi.runtime.set_all_config({})


def test_missing_secret_names_the_command() -> None:
    with pytest.raises(ConfigError, match=r"^loadbearing:grafanaAdminPassword: required; set it with "
                                          r"`pulumi config set --secret grafanaAdminPassword"):
        parse_config({"grafanaAllowedCidrs": ["10.0.0.0/8"]}, {"influxdbAdminPassword": SECRET}, "dev")


SCALING = {"min_instances": 1, "max_instances": 3, "metric": "ECSServiceAverageCPUUtilization",
           "target_value": 50, "scale_out_cooldown_s": 60, "scale_in_cooldown_s": 300}


@pytest.mark.parametrize("entry, key", [
    ({"ecs_service": 5}, "loadbearing:targets.api.ecs_service"),
    ({"ecs_service": ""}, "loadbearing:targets.api.ecs_service"),
    ({"ecs_service": "api", "db_pool": 3}, "loadbearing:targets.api.db_pool"),
    ({"ecs_service": "api", "db_pool_size": 0}, "loadbearing:targets.api.db_pool_size"),
    ({"ecs_service": "api", "cache_ttl_s": -1}, "loadbearing:targets.api.cache_ttl_s"),
    ({"ecs_service": "api", "autoscaling": {**SCALING, "min_instances": 4}},
     "loadbearing:targets.api.autoscaling.min_instances"),
    ({"ecs_service": "api", "autoscaling": {**SCALING, "metric": "RPS"}}, "loadbearing:targets.api.autoscaling.metric"),
    ({"ecs_service": "api", "autoscaling": {**SCALING, "target_value": 150}},
     "loadbearing:targets.api.autoscaling.target_value"),
    ({"ecs_service": "api", "autoscaling": {k: v for k, v in SCALING.items() if k != "scale_in_cooldown_s"}},
     "loadbearing:targets.api.autoscaling.scale_in_cooldown_s"),
    ({"ecs_service": "api", "autoscaling": {**SCALING, "metric": "ALBRequestCountPerTarget"}},
     "loadbearing:targets.api.alb_resource_label"),
    ({"ecs_service": "api", "alb_resource_label": "my-alb"}, "loadbearing:targets.api.alb_resource_label"),
    ({"ecs_service": "api", "db_pool_size": "--5"}, "loadbearing:targets.api.db_pool_size"),
    ({"ecs_service": "api", "autoscaling": {**SCALING, "target_value": float("nan")}},
     "loadbearing:targets.api.autoscaling.target_value"),
    ({"ecs_service": "api", "autoscaling": {**SCALING, "target_value": "inf"}},
     "loadbearing:targets.api.autoscaling.target_value"),
])
def test_bad_targets_are_refused_naming_the_key(entry: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_targets({"api": entry})
    assert str(error.value).startswith(f"{key}:")


@pytest.mark.parametrize("password, ok", [
    ("Abcdefgh-12345", True), ("short-1", False), ("has space in it", False), ("quote'in-it-123", False),
    ("dollar$in-it-123", False), ("back\\slash-12345", False),
])
def test_password_rules(password: str, ok: bool) -> None:
    if ok:
        assert check_password("influxdbAdminPassword", password) == password
    else:
        with pytest.raises(ConfigError) as error:
            check_password("influxdbAdminPassword", password)
        assert password not in str(error.value)
