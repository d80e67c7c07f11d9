"""Feedback resources match `loadbearing:targets` exactly: count, min/max, target value, SSM values.

The expectation is computed from the raw config block (not through infra.config), so
a parser that drops or rewrites a setting fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import variant_config
from tests.infra.harness import ProgramRun, example_config, run_program

TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"
PARAMETER = "aws:ssm/parameter:Parameter"


def expected_feedback(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(scalable targets, policies, SSM parameters) keyed by ECS resource id / parameter name."""
    cluster = config["loadbearing:targetClusterName"]
    prefix = config["loadbearing:targetSettingsPrefix"]
    targets, policies, params = {}, {}, {}
    for service, entry in config["loadbearing:targets"].items():
        resource_id = f"service/{cluster}/{entry.get('ecs_service', service)}"
        scaling = entry.get("autoscaling")
        if scaling:
            targets[resource_id] = (scaling["min_instances"], scaling["max_instances"])
            metric = {"predefinedMetricType": scaling["metric"]}
            if scaling["metric"] == "ALBRequestCountPerTarget":
                metric["resourceLabel"] = entry["alb_resource_label"]
            policies[resource_id] = {
                "predefinedMetricSpecification": metric,
                "targetValue": scaling["target_value"],
                "scaleOutCooldown": scaling["scale_out_cooldown_s"],
                "scaleInCooldown": scaling["scale_in_cooldown_s"],
            }
        for setting in ("db_pool_size", "cache_ttl_s"):
            if setting in entry:
                params[f"{prefix}/{service}/{setting}"] = str(entry[setting])
    return targets, policies, params


def actual_feedback(run: ProgramRun) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    targets = {}
    for t in run.of_type(TARGET):
        assert t.inputs["serviceNamespace"] == "ecs"
        assert t.inputs["scalableDimension"] == "ecs:service:DesiredCount"
        assert t.inputs["resourceId"] not in targets
        targets[t.inputs["resourceId"]] = (t.inputs["minCapacity"], t.inputs["maxCapacity"])
    policies = {}
    for p in run.of_type(POLICY):
        assert p.inputs["policyType"] == "TargetTrackingScaling"
        assert p.inputs["resourceId"] not in policies
        policies[p.inputs["resourceId"]] = p.inputs["targetTrackingScalingPolicyConfiguration"]
    params = {}
    for p in run.of_type(PARAMETER):
        assert p.inputs["type"] == "String"
        params[p.inputs["name"]] = p.inputs["insecureValue"]
    return targets, policies, params


@pytest.mark.parametrize("run_name", ["example_run", "variant_run"])
def test_feedback_resources_match_targets_exactly(run_name: str, request: pytest.FixtureRequest) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    config = example_config() if run_name == "example_run" else variant_config()
    expected = expected_feedback(config)
    assert actual_feedback(run) == expected
    # and the example is not trivially empty
    assert all(expected)


def test_example_feedback_in_numbers(example_run: ProgramRun) -> None:
    targets, policies, params = actual_feedback(example_run)
    assert targets == {"service/shop-prod/profile-api": (2, 6), "service/shop-prod/core-api": (2, 4)}
    assert policies["service/shop-prod/profile-api"]["targetValue"] == 1200
    assert policies["service/shop-prod/core-api"]["predefinedMetricSpecification"] == {
        "predefinedMetricType": "ECSServiceAverageCPUUtilization"}
    assert params == {
        "/loadbearing/targets/profile-api/db_pool_size": "9",
        "/loadbearing/targets/profile-api/cache_ttl_s": "30",
        "/loadbearing/targets/core-api/db_pool_size": "20",
        "/loadbearing/targets/notifications-api/cache_ttl_s": "0",
    }
    assert example_run.exports["feedback_parameters"] == params


def test_no_targets_means_no_feedback_resources() -> None:
    config = example_config()
    config["loadbearing:targets"] = {}
    del config["loadbearing:targetClusterName"]
    run = run_program(config)
    assert run.of_type(TARGET) == run.of_type(POLICY) == run.of_type(PARAMETER) == []
    assert run.exports["feedback_parameters"] == {}
