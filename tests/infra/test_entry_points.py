"""The two entry points Pulumi runs: the program's `__main__` and the policy pack's.

The program's `__main__.py` is executed once under mocks and must register what
`build` registers. The pack's `__main__.py` is executed against a stand-in for
`pulumi_policy` (the real PolicyPack starts a server that never returns), to check
that it turns every guard into a mandatory policy that reports what the guard finds.
"""

from __future__ import annotations

import runpy
import sys
import types
from collections import Counter
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings

from infra.policy_pack import validators
from tests.infra.harness import ROOT, SECRETS, ProgramRun, RecordingMocks, as_pulumi_config, example_config


# Executing __main__ makes pulumi_aws load more of its lazily imported modules, whose
# import-time deprecation notices (BucketV2, ...) are not about this program.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_program_main_registers_what_build_registers(example_run: ProgramRun) -> None:
    mocks = RecordingMocks()
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="loadbearing", stack="test", preview=False)
    pulumi.runtime.set_all_config({**as_pulumi_config(example_config()), **SECRETS}, secret_keys=list(SECRETS))
    saved_path = list(sys.path)

    @pulumi.runtime.test
    def run() -> None:
        runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__")

    try:
        run()
    finally:
        sys.path[:] = saved_path
    assert Counter((r.type, r.name) for r in mocks.resources) == Counter(
        (r.type, r.name) for r in example_run.resources)


class _Recorder:
    """Stand-in for pulumi_policy: records the pack and its policies instead of serving them."""

    class EnforcementLevel:
        MANDATORY = "mandatory"

    def __init__(self) -> None:
        self.packs: list[dict[str, Any]] = []

    def module(self) -> types.ModuleType:
        mod = types.ModuleType("pulumi_policy")
        recorder = self

        def policy(kind: str) -> Any:
            def make(**kwargs: Any) -> dict[str, Any]:
                return {"kind": kind, **kwargs}
            return make

        def pack(**kwargs: Any) -> None:
            recorder.packs.append(kwargs)

        mod.EnforcementLevel = self.EnforcementLevel  # type: ignore[attr-defined]
        mod.PolicyPack = pack  # type: ignore[attr-defined]
        mod.ResourceValidationPolicy = policy("resource")  # type: ignore[attr-defined]
        mod.StackValidationPolicy = policy("stack")  # type: ignore[attr-defined]
        for name in ("ReportViolation", "ResourceValidationArgs", "StackValidationArgs"):
            setattr(mod, name, object)
        return mod


@pytest.fixture()
def pack(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    recorder = _Recorder()
    monkeypatch.setitem(sys.modules, "pulumi_policy", recorder.module())
    monkeypatch.setitem(sys.modules, "validators", validators)
    runpy.run_path(str(ROOT / "infra" / "policy_pack" / "__main__.py"), run_name="__main__")
    (only,) = recorder.packs
    return only


def test_policy_pack_enforces_every_guard(pack: dict[str, Any]) -> None:
    policies = {p["name"]: p for p in pack["policies"]}
    expected = {g.name for g in validators.RESOURCE_GUARDS} | set(validators.STACK_GUARDS)
    assert set(policies) == expected
    assert {p["enforcement_level"] for p in policies.values()} == {"mandatory"}
    assert pack["enforcement_level"] == "mandatory"


def test_policy_pack_resource_policy_reports_violations(pack: dict[str, Any]) -> None:
    policy = {p["name"]: p for p in pack["policies"]}["no-public-influxdb-or-grafana"]
    reports: list[tuple[str, str | None]] = []
    args = types.SimpleNamespace(resource_type=validators.INGRESS_RULE, props={
        "ipProtocol": "tcp", "fromPort": 8086, "toPort": 8086, "cidrIpv4": "0.0.0.0/0"})
    policy["validate"](args, lambda message, urn: reports.append((message, urn)))
    assert len(reports) == 1 and "8086" in reports[0][0]


def test_policy_pack_stack_policy_matches_buckets_by_dependency(pack: dict[str, Any]) -> None:
    policy = {p["name"]: p for p in pack["policies"]}["buckets-private-encrypted-expiring"]

    def resource(type_: str, name: str, props: dict[str, Any], deps: list[Any]) -> Any:
        return types.SimpleNamespace(resource_type=type_, name=name, props=props, urn=f"urn:{name}",
                                     dependencies=deps, property_dependencies={"bucket": deps})

    bucket = resource(validators.BUCKET, "b", {}, [])
    flags = {f: True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}
    block = resource(validators.PUBLIC_ACCESS_BLOCK, "pab", flags, [bucket])
    reports: list[tuple[str, str | None]] = []
    policy["validate"](types.SimpleNamespace(resources=[bucket, block]),
                       lambda message, urn: reports.append((message, urn)))
    # the block is matched through its dependency; encryption and lifecycle are missing
    assert [urn for _, urn in reports] == ["urn:b", "urn:b"]
    assert not any("public access" in message for message, _ in reports)
