"""Each guard catches its violation: built by hand, and planted into the mocked program.

Planting starts from the example program (on which every guard passes, see
test_program.py), changes one property of one resource, and expects exactly that
guard to report exactly that resource.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from infra.policy_pack import validators as v
from infra.policy_pack.validators import ResourceView, Violation
from tests.infra.harness import ProgramRun


def plant(run: ProgramRun, name: str, change: Callable[[dict[str, Any]], None]) -> list[ResourceView]:
    """The program's resources with `change` applied to the props of resource `name`."""
    views = []
    for view in run.views():
        if view.name == name:
            props = json.loads(json.dumps(dict(view.props), default=str))
            change(props)
            view = replace(view, props=props)
        views.append(view)
    assert any(view.name == name for view in views), name
    return views


def caught(views: list[ResourceView]) -> set[tuple[str, str]]:
    return {(x.guard, x.resource) for x in v.check_stack(views)}


# --------------------------------------------------------------------------- public ingress


@pytest.mark.parametrize("props", [
    {"ipProtocol": "tcp", "fromPort": 8086, "toPort": 8086, "cidrIpv4": "0.0.0.0/0"},
    {"ipProtocol": "tcp", "fromPort": 3000, "toPort": 3000, "cidrIpv6": "::/0"},
    {"ipProtocol": "tcp", "fromPort": 0, "toPort": 65535, "cidrIpv4": "0.0.0.0/0"},
    {"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"},
    {"ipProtocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrIpv4": "0.0.0.0/0"},
])
def test_world_ingress_rule_to_a_protected_port_is_caught(props: dict[str, Any]) -> None:
    messages = v.public_ingress(v.INGRESS_RULE, props)
    assert len(messages) == 1 and messages[0].startswith(("ingress from 0.0.0.0/0 ", "ingress from ::/0 "))


def test_world_ingress_inline_and_legacy_rules_are_caught() -> None:
    inline = {"ingress": [{"protocol": "tcp", "fromPort": 80, "toPort": 80, "cidrBlocks": ["0.0.0.0/0"]}]}
    assert v.public_ingress(v.SECURITY_GROUP, inline)
    legacy = {"type": "ingress", "protocol": "tcp", "fromPort": 8000, "toPort": 9000,
              "ipv6CidrBlocks": ["::/0"]}
    assert v.public_ingress(v.SECURITY_GROUP_RULE, legacy)


@pytest.mark.parametrize("resource_type, props", [
    (v.INGRESS_RULE, {"ipProtocol": "tcp", "fromPort": 8086, "toPort": 8086, "cidrIpv4": "10.0.0.0/8"}),
    (v.INGRESS_RULE, {"ipProtocol": "tcp", "fromPort": 8086, "toPort": 8086, "referencedSecurityGroupId": "sg-1"}),
    (v.INGRESS_RULE, {"ipProtocol": "udp", "fromPort": 8086, "toPort": 8086, "cidrIpv4": "0.0.0.0/0"}),
    (v.SECURITY_GROUP_RULE, {"type": "egress", "protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]}),
])
def test_narrow_or_unrelated_rules_pass(resource_type: str, props: dict[str, Any]) -> None:
    assert v.public_ingress(resource_type, props) == []


def test_planted_world_ingress_into_influxdb_is_caught(example_run: ProgramRun) -> None:
    def open_up(props: dict[str, Any]) -> None:
        props.pop("referencedSecurityGroupId")
        props["cidrIpv4"] = "0.0.0.0/0"

    assert caught(plant(example_run, "influxdb-from-runners", open_up)) == {
        ("no-public-influxdb-or-grafana", "influxdb-from-runners")}


def test_planted_world_ingress_into_grafana_alb_is_caught(example_run: ProgramRun) -> None:
    views = plant(example_run, "grafana-alb-80-from-0", lambda p: p.update(cidrIpv4="0.0.0.0/0"))
    assert caught(views) == {("no-public-influxdb-or-grafana", "grafana-alb-80-from-0")}


# --------------------------------------------------------------------------- buckets


@pytest.mark.parametrize("flag", ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                  "restrictPublicBuckets"])
def test_public_access_block_with_a_flag_off_is_caught(example_run: ProgramRun, flag: str) -> None:
    views = plant(example_run, "runners-bucket-public-access", lambda p: p.update({flag: False}))
    found = [x for x in v.check_stack(views)]
    assert [(x.guard, x.resource) for x in found] == [("buckets-private-encrypted-expiring", "runners-bucket")]
    assert flag in found[0].message


def _without(run: ProgramRun, name: str) -> list[ResourceView]:
    views = [x for x in run.views() if x.name != name]
    assert len(views) == len(run.views()) - 1
    return views


@pytest.mark.parametrize("removed, words", [
    ("runners-bucket-public-access", "no public access block"),
    ("runners-bucket-encryption", "no server-side encryption"),
    ("runners-bucket-lifecycle", "no enabled lifecycle rule"),
])
def test_bucket_missing_a_protection_is_caught(example_run: ProgramRun, removed: str, words: str) -> None:
    found = v.bucket_protection(_without(example_run, removed))
    assert [(x.resource, words in x.message) for x in found] == [("runners-bucket", True)]


def test_protection_of_another_bucket_does_not_count(example_run: ProgramRun) -> None:
    views = plant(example_run, "runners-bucket-encryption", lambda p: p.update(bucket="someone-elses-bucket"))
    assert caught(views) == {("buckets-private-encrypted-expiring", "runners-bucket")}


def test_protection_matched_by_dependency_when_the_name_is_unknown() -> None:
    bucket = ResourceView(v.BUCKET, "b", {}, urn="urn:b")
    block = ResourceView(v.PUBLIC_ACCESS_BLOCK, "pab", {f: True for f in (
        "blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")},
        depends_on=frozenset({"urn:b"}))
    sse = ResourceView(v.ENCRYPTION[0], "sse", {"rules": [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]}, depends_on=frozenset({"urn:b"}))
    life = ResourceView(v.LIFECYCLE[0], "lc", {"rules": [{"status": "Enabled", "expiration": {"days": 3}}]},
                        depends_on=frozenset({"urn:b"}))
    assert v.bucket_protection([bucket, block, sse, life]) == []
    disabled = replace(life, props={"rules": [{"status": "Disabled", "expiration": {"days": 3}}]})
    assert len(v.bucket_protection([bucket, block, sse, disabled])) == 1


# --------------------------------------------------------------------------- IAM and S3


@pytest.mark.parametrize("statement, words", [
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, "name the bucket"),
    ({"Effect": "Allow", "Action": ["s3:*"], "Resource": "arn:aws:s3:::ours/*"}, "every S3 operation"),
    ({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::ours"}, "every S3 operation"),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::our*/x"}, "wildcard"),
    ({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::theirs/results/*"}, "not a bucket"),
    ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::ours"}, "NotAction"),
    ({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::ours/*"}, "NotResource"),
])
def test_broad_s3_grants_are_caught(statement: dict[str, Any], words: str) -> None:
    document = {"Version": "2012-10-17", "Statement": [statement]}
    messages = v.policy_s3_scope(json.dumps(document), allowed_buckets={"ours"})
    assert messages and words in messages[0]


def test_narrow_and_non_s3_grants_pass() -> None:
    document = {"Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::ours/runs/*"},
        {"Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
    ]}
    assert v.policy_s3_scope(document, allowed_buckets={"ours"}) == []


def test_planted_star_resource_in_the_runner_policy_is_caught(example_run: ProgramRun) -> None:
    def widen(props: dict[str, Any]) -> None:
        doc = json.loads(props["policy"])
        doc["Statement"][1]["Resource"] = "*"
        props["policy"] = json.dumps(doc)

    assert caught(plant(example_run, "runners-task-s3", widen)) == {
        ("iam-s3-names-buckets", "runners-task-s3"), ("iam-s3-only-own-buckets", "runners-task-s3")}


def test_planted_foreign_bucket_in_the_grafana_policy_is_caught(example_run: ProgramRun) -> None:
    def elsewhere(props: dict[str, Any]) -> None:
        props["policy"] = props["policy"].replace("runners-bucket-0a1b2c3d", "company-secrets")

    assert caught(plant(example_run, "grafana-task-s3", elsewhere)) == {
        ("iam-s3-only-own-buckets", "grafana-task-s3")}


def test_role_inline_policies_are_checked_too() -> None:
    props = {"inlinePolicies": [{"name": "x", "policy": json.dumps(
        {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})}]}
    assert v.iam_s3_scope(v.ROLE, props)


# --------------------------------------------------------------------------- logs


@pytest.mark.parametrize("retention", [None, 0])
def test_log_group_without_retention_is_caught(example_run: ProgramRun, retention: Any) -> None:
    views = plant(example_run, "influxdb-logs", lambda p: p.update(retentionInDays=retention))
    assert caught(views) == {("log-groups-have-retention", "influxdb-logs")}


def test_lambda_logging_to_an_unmanaged_group_is_caught(example_run: ProgramRun) -> None:
    views = plant(example_run, "cost-guard-reaper", lambda p: p.pop("loggingConfig"))
    assert caught(views) == {("lambdas-log-to-managed-groups", "cost-guard-reaper")}


# --------------------------------------------------------------------------- images and secrets


@pytest.mark.parametrize("image", ["grafana/k6", "grafana/k6:latest", "influxdb:1.8", "grafana/grafana:11",
                                   "registry.example.com:5000/k6", "grafana/grafana:main",
                                   # a version tag can be moved to other content: not a pin any more
                                   "grafana/k6:1.1.0", "influxdb:1.8.10", "registry.example.com:5000/k6:v1.2.3",
                                   "k6@sha256:" + "a" * 63])
def test_unpinned_images_are_caught(image: str) -> None:
    assert v.image_pinned(image) is not None


@pytest.mark.parametrize("image", ["k6@sha256:" + "a" * 64, "grafana/grafana:12.4.12@sha256:" + "0" * 64,
                                   "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/grafana/k6@sha256:"
                                   + "f" * 64])
def test_pinned_images_pass(image: str) -> None:
    assert v.image_pinned(image) is None


def _edit_containers(edit: Callable[[list[dict[str, Any]]], None]) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        containers = json.loads(props["containerDefinitions"])
        edit(containers)
        props["containerDefinitions"] = json.dumps(containers)
    return change


def test_planted_latest_k6_image_is_caught(example_run: ProgramRun) -> None:
    def latest(containers: list[dict[str, Any]]) -> None:
        containers[0]["image"] = "grafana/k6:latest"

    found = v.check_stack(plant(example_run, "runners-task", _edit_containers(latest)))
    assert [(x.guard, x.resource) for x in found] == [("images-pinned", "runners-task")]
    assert "'k6'" in found[0].message


def test_planted_plaintext_password_is_caught(example_run: ProgramRun) -> None:
    def leak(containers: list[dict[str, Any]]) -> None:
        containers[0]["environment"].append({"name": "INFLUXDB_ADMIN_PASSWORD", "value": "hunter2hunter2"})

    assert caught(plant(example_run, "influxdb-task", _edit_containers(leak))) == {
        ("no-plaintext-secrets-in-tasks", "influxdb-task")}


def test_every_guard_has_a_violation_test() -> None:
    """Names of all guards; each appears in an assertion above (keeps new guards honest)."""
    source = Path(__file__).read_text()
    names = [g.name for g in v.RESOURCE_GUARDS] + list(v.STACK_GUARDS)
    assert [n for n in names if f'"{n}"' not in source.split("def test_every_guard_has_a_violation_test")[0]] == []


def test_violation_carries_guard_resource_and_urn() -> None:
    view = ResourceView(v.LOG_GROUP, "lg", {"retentionInDays": None}, urn="urn:lg")
    assert v.check_stack([view]) == [Violation("log-groups-have-retention", "lg",
                                               "log group has no retention (retentionInDays=None); set one",
                                               "urn:lg")]
