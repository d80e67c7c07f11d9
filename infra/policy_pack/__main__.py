"""Entry point Pulumi runs for the policy pack; wraps the guards in `validators`.

Every guard in `validators.RESOURCE_GUARDS` becomes a mandatory ResourceValidationPolicy
and every one in `validators.STACK_GUARDS` a mandatory StackValidationPolicy, so the
pack enforces exactly what the unit tests check. Not imported by tests: building the
PolicyPack starts a server that never returns.
"""

from __future__ import annotations

from typing import Any

# Pulumi runs this directory as a program, with the directory first on sys.path.
import validators  # type: ignore[import-not-found]
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)


def _resource_policy(guard: Any) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in guard.check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=guard.name,
        description=guard.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def _view(resource: Any) -> Any:
    depends_on = {dep.urn for deps in resource.property_dependencies.values() for dep in deps}
    depends_on.update(dep.urn for dep in resource.dependencies)
    return validators.ResourceView(
        type=resource.resource_type,
        name=resource.name,
        props=resource.props,
        urn=resource.urn,
        depends_on=frozenset(depends_on),
    )


def _stack_policy(name: str, description: str, check: Any) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for violation in check([_view(r) for r in args.resources]):
            report_violation(f"{violation.resource}: {violation.message}", violation.urn or None)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


PolicyPack(
    name="loadbearing-guards",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        *(_resource_policy(g) for g in validators.RESOURCE_GUARDS),
        *(_stack_policy(n, d, c) for n, (d, c) in validators.STACK_GUARDS.items()),
    ],
)
