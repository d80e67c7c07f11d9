"""Guard rails for the loadbearing stack, as plain functions over resource properties.

The same functions run in two places: the CrossGuard pack (`__main__.py` beside this
file, during `pulumi preview/up --policy-pack infra/policy_pack`) and the unit tests
(over every resource the mocked program registers, and over hand-built violations).
This module uses only the standard library so the pack can run it unchanged.

Properties use Pulumi's wire names (camelCase: `retentionInDays`, `cidrIpv4`), which is
what both a policy pack and the mock monitor receive.

Resource guards take `(resource_type, props)` and return violation messages (empty:
compliant). Stack guards take every resource (`ResourceView`) and return `Violation`s;
they check relations (a bucket and its public-access block) and the set of buckets
the stack owns.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# InfluxDB's HTTP API, Grafana's HTTP port, and the ports of the ALB in front of Grafana.
PROTECTED_PORTS: tuple[int, ...] = (8086, 3000, 80, 443)

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
LIFECYCLE = (
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
)
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
LAMBDA_FUNCTION = "aws:lambda/function:Function"
IAM_POLICY_PROPS: dict[str, tuple[str, ...]] = {
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
}
ROLE = "aws:iam/role:Role"

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY", re.IGNORECASE)
_S3_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:s3:::(?P<bucket>[^/]+)(?:/(?P<key>.*))?$")


@dataclass(frozen=True)
class ResourceView:
    """One resource as a stack guard sees it.

    `depends_on` holds the URNs the resource's properties were computed from (a
    public-access block depends on its bucket); during a preview the bucket name
    may still be unknown, so guards match on either the name or the dependency.
    """

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    depends_on: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Violation:
    """A guard's finding: which guard, which resource, and what is wrong."""

    guard: str
    resource: str
    message: str
    urn: str = ""


# --------------------------------------------------------------------------- resource guards


def _ports_cover(protocol: Any, from_port: Any, to_port: Any, ports: Iterable[int]) -> list[int]:
    if str(protocol) in ("-1", "all"):
        return sorted(ports)
    if str(protocol).lower() not in ("tcp", "6"):
        return []
    try:
        low, high = int(from_port), int(to_port)
    except (TypeError, ValueError):
        return sorted(ports)  # unparseable range: assume the worst
    return sorted(p for p in ports if low <= p <= high)


def _world(cidrs: Iterable[Any]) -> list[str]:
    found = []
    for cidr in cidrs:
        try:
            if ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0:
                found.append(str(cidr))
        except ValueError:
            continue
    return found


def public_ingress(resource_type: str, props: Mapping[str, Any],
                   protected_ports: Sequence[int] = PROTECTED_PORTS) -> list[str]:
    """No security-group ingress from 0.0.0.0/0 or ::/0 to InfluxDB, Grafana or its ALB.

    Covers inline `ingress` blocks of a SecurityGroup, SecurityGroupRule (type
    ingress) and vpc.SecurityGroupIngressRule. Protocol -1 (all) covers every port.
    """
    rules: list[tuple[Any, Any, Any, list[Any]]] = []
    if resource_type == SECURITY_GROUP:
        for rule in props.get("ingress") or []:
            rules.append((rule.get("protocol"), rule.get("fromPort"), rule.get("toPort"),
                          list(rule.get("cidrBlocks") or []) + list(rule.get("ipv6CidrBlocks") or [])))
    elif resource_type == SECURITY_GROUP_RULE and props.get("type") == "ingress":
        rules.append((props.get("protocol"), props.get("fromPort"), props.get("toPort"),
                      list(props.get("cidrBlocks") or []) + list(props.get("ipv6CidrBlocks") or [])))
    elif resource_type == INGRESS_RULE:
        rules.append((props.get("ipProtocol"), props.get("fromPort"), props.get("toPort"),
                      [c for c in (props.get("cidrIpv4"), props.get("cidrIpv6")) if c]))
    messages = []
    for protocol, low, high, cidrs in rules:
        open_to = _world(cidrs)
        ports = _ports_cover(protocol, low, high, protected_ports)
        if open_to and ports:
            messages.append(f"ingress from {', '.join(open_to)} reaches port(s) "
                            f"{', '.join(map(str, ports))}; restrict it to known CIDRs or security groups")
    return messages


def log_retention(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every CloudWatch log group sets a retention (never-expire logs are a growing bill)."""
    if resource_type != LOG_GROUP:
        return []
    days = props.get("retentionInDays")
    # Numbers arrive as floats over the wire (protobuf Struct).
    if not isinstance(days, int | float) or isinstance(days, bool) or days <= 0:
        return [f"log group has no retention (retentionInDays={days!r}); set one"]
    return []


def lambda_log_group(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every Lambda logs to a log group the stack manages (else AWS creates one without retention)."""
    if resource_type != LAMBDA_FUNCTION:
        return []
    logging = props.get("loggingConfig") or {}
    if not logging.get("logGroup"):
        return ["function does not set loggingConfig.logGroup, so it logs to an unmanaged "
                "/aws/lambda/... group with no retention"]
    return []


def image_pinned(image: str) -> str | None:
    """None if `image` is pinned by digest (`...@sha256:<64 hex>`), else why not.

    A tag (even x.y.z) can be moved to other content; only a digest names one image.
    """
    if _DIGEST.search(image):
        return None
    return f"image {image!r} is not pinned by digest; append @sha256:<digest> (a tag can be moved)"


def _container_definitions(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = props.get("containerDefinitions")
    if isinstance(raw, str):
        raw = json.loads(raw)
    return [c for c in raw or [] if isinstance(c, Mapping)]


def images_pinned(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every container image in a task definition is pinned by digest."""
    if resource_type != TASK_DEFINITION:
        return []
    messages = []
    for container in _container_definitions(props):
        problem = image_pinned(str(container.get("image", "")))
        if problem:
            messages.append(f"container {container.get('name')!r}: {problem}")
    return messages


def no_plaintext_secrets(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Task definitions pass passwords and tokens through `secrets`, never `environment`."""
    if resource_type != TASK_DEFINITION:
        return []
    messages = []
    for container in _container_definitions(props):
        for env in container.get("environment") or []:
            name = str(env.get("name", ""))
            if _SECRET_NAME.search(name) and env.get("value"):
                messages.append(f"container {container.get('name')!r} sets {name} in plain environment; "
                                "use `secrets` with a Secrets Manager ARN")
    return messages


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _touches_s3(actions: list[Any]) -> bool:
    return any(str(a) == "*" or str(a).lower().startswith("s3:") for a in actions)


def policy_s3_scope(document: Any, allowed_buckets: Iterable[str] | None = None) -> list[str]:
    """An IAM policy document grants S3 only on named buckets, never `*`.

    Every Allow statement with an S3 action (or `*`) must list Resources that are S3
    ARNs of a bucket without wildcards in its name, and, when `allowed_buckets` is
    given, one of those buckets. `s3:*`, `*` actions and NotResource/NotAction in
    an Allow statement are refused outright.
    """
    if isinstance(document, str):
        document = json.loads(document)
    allowed = None if allowed_buckets is None else set(allowed_buckets)
    messages = []
    for i, statement in enumerate(_as_list((document or {}).get("Statement"))):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid") or f"#{i}"
        if "NotAction" in statement:
            messages.append(f"statement {sid}: Allow with NotAction may grant S3; list the actions")
            continue
        actions = _as_list(statement.get("Action"))
        if not _touches_s3(actions):
            continue
        broad = [str(a) for a in actions if str(a) in ("*", "s3:*")]
        if broad:
            messages.append(f"statement {sid}: action {broad[0]!r} grants every S3 operation")
        if "NotResource" in statement:
            messages.append(f"statement {sid}: Allow with NotResource grants S3 on unnamed buckets")
            continue
        for resource in _as_list(statement.get("Resource")):
            text = str(resource)
            match = _S3_ARN.match(text)
            if text == "*" or match is None:
                messages.append(f"statement {sid}: S3 access on {text!r}; name the bucket ARN")
                continue
            bucket = match.group("bucket")
            if "*" in bucket or "?" in bucket:
                messages.append(f"statement {sid}: bucket name {bucket!r} has a wildcard")
            elif allowed is not None and bucket not in allowed:
                messages.append(f"statement {sid}: bucket {bucket!r} is not a bucket of this stack")
    return messages


def iam_s3_scope(resource_type: str, props: Mapping[str, Any],
                 allowed_buckets: Iterable[str] | None = None) -> list[str]:
    """IAM policies (standalone, inline role policies, role `inlinePolicies`) name only buckets."""
    documents: list[Any] = []
    for prop in IAM_POLICY_PROPS.get(resource_type, ()):
        documents.append(props.get(prop))
    if resource_type == ROLE:
        documents.extend(p.get("policy") for p in props.get("inlinePolicies") or [] if isinstance(p, Mapping))
    messages = []
    for document in documents:
        if document:
            messages.extend(policy_s3_scope(document, allowed_buckets))
    return messages


ResourceGuard = Callable[[str, Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Guard:
    """A named resource guard with the description the policy pack shows."""

    name: str
    description: str
    check: ResourceGuard


RESOURCE_GUARDS: tuple[Guard, ...] = (
    Guard("no-public-influxdb-or-grafana",
          "No security group rule opens InfluxDB (8086), Grafana (3000) or its ALB (80/443) to "
          "0.0.0.0/0 or ::/0.", public_ingress),
    Guard("log-groups-have-retention", "Every CloudWatch log group sets a retention.", log_retention),
    Guard("lambdas-log-to-managed-groups", "Every Lambda logs to a log group the stack manages.",
          lambda_log_group),
    Guard("images-pinned", "Every container image is pinned by digest (@sha256:...).", images_pinned),
    Guard("no-plaintext-secrets-in-tasks", "Task definitions take passwords from Secrets Manager.",
          no_plaintext_secrets),
    Guard("iam-s3-names-buckets", "IAM policies grant S3 on named buckets only, never '*'.",
          iam_s3_scope),
)


# --------------------------------------------------------------------------- stack guards


def _bucket_name(view: ResourceView) -> str | None:
    name = view.props.get("bucket") or view.props.get("id")
    return str(name) if name else None


def _covers(config: ResourceView, bucket: ResourceView) -> bool:
    if bucket.urn and bucket.urn in config.depends_on:
        return True
    name = _bucket_name(bucket)
    return name is not None and config.props.get("bucket") == name


def bucket_protection(resources: Sequence[ResourceView]) -> list[Violation]:
    """Every bucket blocks public access (all four flags), is encrypted and expires objects.

    A bucket is covered by a BucketPublicAccessBlock, a server-side encryption
    configuration (AES256 or KMS) and a lifecycle configuration with an enabled
    expiration rule, each naming the bucket (or depending on it).
    """
    buckets = [r for r in resources if r.type in (BUCKET, BUCKET_V2)]
    blocks = [r for r in resources if r.type == PUBLIC_ACCESS_BLOCK]
    encryption = [r for r in resources if r.type in ENCRYPTION]
    lifecycle = [r for r in resources if r.type in LIFECYCLE]
    found = []
    for bucket in buckets:
        def violation(message: str, bucket: ResourceView = bucket) -> Violation:
            return Violation("buckets-private-encrypted-expiring", bucket.name, message, bucket.urn)

        block = [b for b in blocks if _covers(b, bucket)]
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        if not block:
            found.append(violation("bucket has no public access block"))
        elif not any(all(b.props.get(f) is True for f in flags) for b in block):
            off = [f for f in flags if block[0].props.get(f) is not True]
            found.append(violation(f"public access block leaves {', '.join(off)} off"))
        sse = [e for e in encryption if _covers(e, bucket)]
        algorithms = {
            ((rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm"))
            for e in sse for rule in e.props.get("rules") or []
        }
        if not algorithms & {"AES256", "aws:kms", "aws:kms:dsse"}:
            found.append(violation("bucket has no server-side encryption configuration"))
        rules = [rule for lc in lifecycle if _covers(lc, bucket) for rule in lc.props.get("rules") or []]
        if not any(rule.get("status") == "Enabled" and (rule.get("expiration") or {}).get("days")
                   for rule in rules):
            found.append(violation("bucket has no enabled lifecycle rule that expires objects"))
    return found


def stack_iam_s3_scope(resources: Sequence[ResourceView]) -> list[Violation]:
    """IAM policies grant S3 only on buckets this stack owns."""
    owned = {name for r in resources if r.type in (BUCKET, BUCKET_V2) if (name := _bucket_name(r))}
    found = []
    for r in resources:
        for message in iam_s3_scope(r.type, r.props, owned):
            found.append(Violation("iam-s3-only-own-buckets", r.name, message, r.urn))
    return found


StackGuard = Callable[[Sequence[ResourceView]], list[Violation]]

STACK_GUARDS: dict[str, tuple[str, StackGuard]] = {
    "buckets-private-encrypted-expiring": (
        "Every S3 bucket blocks public access, is encrypted and has a lifecycle expiry.",
        bucket_protection),
    "iam-s3-only-own-buckets": ("IAM policies grant S3 only on this stack's buckets.", stack_iam_s3_scope),
}


def check_stack(resources: Sequence[ResourceView]) -> list[Violation]:
    """Run every resource guard on every resource, then every stack guard."""
    found: list[Violation] = []
    for r in resources:
        for guard in RESOURCE_GUARDS:
            found.extend(Violation(guard.name, r.name, m, r.urn) for m in guard.check(r.type, r.props))
    for _description, stack_guard in STACK_GUARDS.values():
        found.extend(stack_guard(resources))
    return found
