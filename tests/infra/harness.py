"""Run the Pulumi program under mocks and record everything it registers.

`run_program(config)` sets fresh mocks and config, runs `infra.program.build` inside
`pulumi.runtime.test` (which awaits the returned Output and then every outstanding
registration), and returns plain data: every resource with its inputs and mocked
state, and every stack output resolved, with which of them are secret. Tests then
assert on that data in the test body, so no assertion can hide in an unawaited apply.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings as pulumi_settings
from ruamel.yaml import YAML

from infra.config import load_config
from infra.policy_pack.validators import ResourceView
from infra.program import Program, build

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "Pulumi.example.yaml"
ACCOUNT = "123456789012"
REGION = "us-east-1"
SECRETS = {
    "loadbearing:influxdbAdminPassword": "Influx-Admin-7b3e9c1f",
    "loadbearing:grafanaAdminPassword": "Grafana-Admin-52d1a8e4",
}


def generated(name: str) -> str:
    """What the mocks give a RandomPassword called `name` (letters and digits, 32 long)."""
    return (name.replace("-", "") + "Gen3r4tedPassw0rd" * 3)[:32]


def example_config() -> dict[str, Any]:
    """The `config:` map of Pulumi.example.yaml, as typed YAML values."""
    return dict(YAML(typ="safe", pure=True).load(EXAMPLE_CONFIG.read_text())["config"])


def as_pulumi_config(values: Mapping[str, Any]) -> dict[str, str]:
    """Stack config the way the engine hands it to a program: strings, objects as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


@dataclass(frozen=True)
class Recorded:
    """One registered resource: type token, logical name, inputs, and the mocked state."""

    type: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    custom: bool


class RecordingMocks(pulumi.runtime.Mocks):
    """Mocks that give resources plausible ids/ARNs and remember every registration."""

    def __init__(self) -> None:
        self.resources: list[Recorded] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        state = dict(inputs)
        service = args.typ.split(":")[1].split("/")[0] if args.typ.startswith("aws:") else "mock"
        resource_id = f"{args.name}-id"
        if args.typ == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or f"{args.name}-0a1b2c3d"
            resource_id = bucket
            state.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}")
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            state.update(dnsName=f"{args.name}-1234567890.{REGION}.elb.amazonaws.com",
                         arnSuffix=f"app/{args.name}/50dc6c495c0c9188")
        elif args.typ == "aws:ecs/taskDefinition:TaskDefinition":
            state["arn"] = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{inputs['family']}:1"
        elif args.typ == "aws:secretsmanager/secret:Secret":
            state["arn"] = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{args.name}-AbCdEf"
        elif args.typ == "aws:ecs/cluster:Cluster":
            state["arn"] = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{inputs['name']}"
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{inputs['name']}"
        elif args.typ == "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{args.name}"
        elif args.typ == "aws:iam/policy:Policy":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:policy/{inputs['name']}"
        elif args.typ == "aws:ecr/pullThroughCacheRule:PullThroughCacheRule":
            state["registryId"] = ACCOUNT
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = generated(args.name)
        elif args.typ == "aws:efs/fileSystem:FileSystem":
            resource_id = state["id"] = f"fs-{abs(hash(args.name)) % 16**8:08x}"
        state.setdefault("name", inputs.get("name") or f"{args.name}-0a1b2c3d")
        state.setdefault("arn", f"arn:aws:{service}:{REGION}:{ACCOUNT}:{args.name}")
        state.setdefault("id", resource_id)
        self.resources.append(Recorded(args.typ, args.name, inputs, state, bool(args.custom)))
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"id": REGION, "names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
                    "zoneIds": ["use1-az1", "use1-az2", "use1-az4"]}, []
        if args.token == "aws:index/getRegion:getRegion":
            return {"id": REGION, "name": REGION, "region": REGION,
                    "endpoint": f"ec2.{REGION}.amazonaws.com", "description": "US East (N. Virginia)"}, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"id": ACCOUNT, "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/test",
                    "userId": "AIDATEST"}, []
        if args.token == "aws:index/getPartition:getPartition":
            return {"id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com",
                    "reverseDnsPrefix": "com.amazonaws"}, []
        raise NotImplementedError(f"no mock for invoke {args.token}")


@dataclass
class ProgramRun:
    """What one mocked run of the program registered and exported."""

    resources: list[Recorded]
    exports: dict[str, Any]
    secret_exports: frozenset[str]
    program: Program = field(repr=False)

    def custom(self) -> list[Recorded]:
        """Cloud resources only (not our ComponentResources)."""
        return [r for r in self.resources if r.custom]

    def of_type(self, type_token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> Recorded:
        (match,) = [r for r in self.resources if r.name == name]
        return match

    def views(self) -> list[ResourceView]:
        """Every cloud resource as the policy-pack validators see it (state = inputs + outputs)."""
        return [ResourceView(type=r.type, name=r.name, props=r.state, urn=f"urn:{r.type}::{r.name}")
                for r in self.custom()]


def ensure_event_loop() -> None:
    """Pulumi's runtime calls asyncio.get_event_loop(). Once another test in the session has
    used asyncio.run(), the main thread has no loop and Python 3.11 raises instead of making
    one: make one."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
        if not loop.is_closed():
            return
    except RuntimeError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(config: Mapping[str, Any], secrets: Mapping[str, str] | None = None, stack: str = "test",
                dashboards_root: Path | None = None) -> ProgramRun:
    """Run `build(load_config())` under fresh mocks with `config` (+ `secrets`, marked secret)."""
    secrets = SECRETS if secrets is None else secrets
    ensure_event_loop()
    mocks = RecordingMocks()
    pulumi_settings.ROOT.set(None)  # a fresh root stack resource per run
    pulumi.runtime.set_mocks(mocks, project="loadbearing", stack=stack, preview=False)
    pulumi.runtime.set_all_config({**as_pulumi_config(config), **secrets}, secret_keys=list(secrets))
    holder: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> pulumi.Output[bool]:
        kwargs = {} if dashboards_root is None else {"dashboards_root": dashboards_root}
        program = build(load_config(), **kwargs)
        holder["program"] = program

        async def resolve() -> bool:
            values: dict[str, Any] = {}
            secret: set[str] = set()
            for key, value in program.exports.items():
                out = pulumi.Output.from_input(value)
                values[key] = await out.future()
                if await out.is_secret():
                    secret.add(key)
            holder["exports"], holder["secret"] = values, frozenset(secret)
            return True

        return pulumi.Output.from_input(resolve())

    run()
    if "exports" not in holder:
        raise AssertionError("the program's outputs never resolved")
    return ProgramRun(resources=list(mocks.resources), exports=holder["exports"],
                      secret_exports=holder["secret"], program=holder["program"])


def strings_in(value: Any) -> Iterable[str]:
    """Every string inside a nested value, JSON strings included as they are."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings_in(v)


def container_definitions(resource: Recorded) -> list[dict[str, Any]]:
    """The parsed containerDefinitions of a recorded task definition."""
    return list(json.loads(resource.inputs["containerDefinitions"]))
