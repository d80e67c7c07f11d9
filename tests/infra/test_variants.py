"""The other branches of the program: existing VPC, HTTPS, no budget, dashboards absent or present."""

from __future__ import annotations

import json
import re

from infra import grafana_provisioning
from infra.policy_pack import validators
from tests.infra.harness import ROOT, ProgramRun, container_definitions

OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"


def test_existing_network_creates_no_vpc_and_uses_the_given_subnets(variant_run: ProgramRun) -> None:
    for created in ("aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway",
                    "aws:ec2/internetGateway:InternetGateway", "aws:ec2/eip:Eip"):
        assert variant_run.of_type(created) == [], created
    private = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2", "subnet-0bbbbbbbbbbbbbbb3"]
    # the runners are in the public subnets here (runnerSubnets: public); InfluxDB stays private
    assert variant_run.exports["subnet_ids"] == ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    assert variant_run.exports["vpc_id"] == "vpc-0123456789abcdef0"
    assert {m.inputs["subnetId"] for m in variant_run.of_type("aws:efs/mountTarget:MountTarget")} == set(private)
    (alb,) = variant_run.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["subnets"] == ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    for sg in variant_run.of_type(validators.SECURITY_GROUP):
        assert sg.inputs["vpcId"] == "vpc-0123456789abcdef0"


def test_new_network_spans_two_azs_with_private_and_public_subnets(example_run: ProgramRun) -> None:
    subnets = example_run.of_type("aws:ec2/subnet:Subnet")
    assert sorted((s.inputs["cidrBlock"], s.inputs["availabilityZone"]) for s in subnets) == [
        ("10.42.0.0/18", "us-east-1a"), ("10.42.128.0/18", "us-east-1a"),
        ("10.42.192.0/18", "us-east-1b"), ("10.42.64.0/18", "us-east-1b")]
    assert len(example_run.of_type("aws:ec2/natGateway:NatGateway")) == 1
    private_ids = {example_run.named(f"network-private-subnet-{i}").state["id"] for i in range(2)}
    assert set(example_run.exports["subnet_ids"]) == private_ids
    for service in example_run.of_type("aws:ecs/service:Service"):
        assert set(service.inputs["networkConfiguration"]["subnets"]) == private_ids
        assert service.inputs["networkConfiguration"]["assignPublicIp"] is False


def test_grafana_is_https_at_its_name_by_default_and_plain_http_only_when_asked(example_run: ProgramRun,
                                                                             variant_run: ProgramRun) -> None:
    listeners = {int(x.inputs["port"]): x.inputs for x in example_run.of_type("aws:lb/listener:Listener")}
    assert set(listeners) == {80, 443, 8086}
    assert listeners[443]["protocol"] == "HTTPS" and listeners[443]["certificateArn"].startswith("arn:aws:acm:")
    assert listeners[80]["defaultActions"][0]["type"] == "redirect"
    grafana = {c["name"]: c for c in container_definitions(example_run.named("grafana-task"))}["grafana"]
    env = {e["name"]: e["value"] for e in grafana["environment"]}
    assert env["GF_SERVER_ROOT_URL"] == "https://loadtest.example.com"   # links Grafana makes use the name
    assert env["GF_SECURITY_COOKIE_SECURE"] == "true"
    assert grafana["image"].split("@")[0].endswith("grafana/grafana")
    # allowInsecureHttp (a trial): port 80 forwards, the ALB's own name, insecure cookies
    plain = {int(x.inputs["port"]): x.inputs for x in variant_run.of_type("aws:lb/listener:Listener")}
    assert set(plain) == {80} and plain[80]["defaultActions"][0]["type"] == "forward"
    assert variant_run.exports["grafana_url"] == f"http://{variant_run.exports['load_balancer_dns_name']}"
    alb_sg = variant_run.named("grafana-alb-sg").state["id"]
    rules = {(r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6"), int(r.inputs["fromPort"]))
             for r in variant_run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
             if r.inputs["securityGroupId"] == alb_sg}
    assert rules == {(c, 80) for c in ("203.0.113.0/24", "2001:db8::/32")}


def test_budget_follows_config(example_run: ProgramRun, variant_run: ProgramRun) -> None:
    (budget,) = example_run.of_type("aws:budgets/budget:Budget")
    assert budget.inputs["limitAmount"] == "200.00" and budget.inputs["limitUnit"] == "USD"
    assert budget.inputs["costFilters"] == [{"name": "TagKeyValue", "values": ["user:loadbearing-stack$test"]}]
    emails = {e for n in budget.inputs["notifications"] for e in n["subscriberEmailAddresses"]}
    assert emails == {"platform-team@example.com"}
    assert variant_run.of_type("aws:budgets/budget:Budget") == []


def test_cost_guard_stops_runners_after_the_configured_maximum(example_run: ProgramRun) -> None:
    reaper = example_run.named("cost-guard-reaper")
    env = reaper.inputs["environment"]["variables"]
    assert env == {"CLUSTER": example_run.exports["cluster_arn"], "TASK_FAMILY": "loadbearing-test-k6",
                   "MAX_AGE_MINUTES": "60", "MAX_RUNNERS": "8"}
    assert reaper.inputs["handler"] == "runner_reaper.handler"
    (schedule,) = example_run.of_type("aws:scheduler/schedule:Schedule")
    assert schedule.inputs["scheduleExpression"] == "rate(5 minutes)"
    assert schedule.inputs["target"]["arn"] == reaper.state["arn"]


def _objects(run: ProgramRun) -> dict[str, str]:
    return {o.inputs["key"]: o.inputs["content"] for o in run.of_type(OBJECT)}


def test_grafana_gets_the_repository_dashboards_and_provisioning(example_run: ProgramRun) -> None:
    objects = _objects(example_run)
    root = ROOT / "grafana_dashboards"
    shipped = {k for k in objects if k.startswith("grafana/dashboards/")}
    assert shipped == {f"grafana/dashboards/{p.name}" for p in (root / "json").glob("*.json")}
    for path in (root / "provisioning").rglob("*.yaml"):
        key = f"grafana/provisioning/{path.relative_to(root / 'provisioning').as_posix()}"
        assert objects[key] == path.read_text()  # shipped unchanged (database is the default)
    (task,) = [t for t in example_run.of_type(validators.TASK_DEFINITION) if t.name == "grafana-task"]
    grafana = {c["name"]: c for c in container_definitions(task)}["grafana"]
    env = {e["name"]: e["value"] for e in grafana["environment"]}
    assert env[grafana_provisioning.ENV_URL] == example_run.exports["influxdb_url"]
    assert env[grafana_provisioning.ENV_USERNAME] == "grafana_reader"
    assert {s["name"] for s in grafana["secrets"]} == {grafana_provisioning.ENV_PASSWORD,
                                                       "GF_SECURITY_ADMIN_PASSWORD"}
    mounts = {m["containerPath"] for m in grafana["mountPoints"]}
    assert mounts == {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards/loadbearing"}
    # every variable the provisioning files expand is set in Grafana's environment or secrets
    provided = set(env) | {s["name"] for s in grafana["secrets"]}
    wanted = {m for key, text in objects.items() if key.startswith("grafana/provisioning/")
              for line in text.splitlines() if not line.lstrip().startswith("#")
              for m in re.findall(r"\$\{?([A-Z][A-Z0-9_]*)\}?", line)}
    assert wanted and wanted <= provided


def test_without_dashboard_files_grafana_still_gets_a_datasource(variant_run: ProgramRun) -> None:
    objects = _objects(variant_run)
    assert set(objects) == {"grafana/provisioning/datasources/loadbearing.yaml",
                            "grafana/provisioning/dashboards/loadbearing.yaml"}
    datasource = json.loads(objects["grafana/provisioning/datasources/loadbearing.yaml"])["datasources"][0]
    assert datasource["type"] == "influxdb" and datasource["jsonData"]["dbName"] == "perf"
    assert datasource["secureJsonData"]["password"] == "${LOADBEARING_INFLUX_PASSWORD}"
