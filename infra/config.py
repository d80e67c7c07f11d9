"""Stack configuration: every `loadbearing:*` key the program reads, validated.

`load_config()` reads the Pulumi stack config; `parse_config(raw, ...)` is the pure
part that validates plain values and builds a `StackConfig`. Every error is a
`ConfigError` whose message starts with the full key path
(`loadbearing:targets.profile-api.autoscaling.metric: ...`) and says what is allowed.

`KEYS` lists every key with its kind and default; Pulumi.example.yaml documents each
one (a test holds the two together). `loadbearing:targets` is the block that
`loadbearing apply --stack` writes: a map from service name to
`{ecs_service, db_pool_size, cache_ttl_s, alb_resource_label, autoscaling: {min_instances,
max_instances, metric, target_value, scale_out_cooldown_s, scale_in_cooldown_s}}`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

NAMESPACE = "loadbearing"

Kind = Literal["str", "int", "float", "list", "object", "secret"]


@dataclass(frozen=True)
class Key:
    """One config key: its kind, its default (None: optional or required) and meaning."""

    kind: Kind
    default: Any = None
    required: bool = False


KEYS: dict[str, Key] = {
    # network
    "vpcCidr": Key("str", "10.42.0.0/16"),
    "natGateways": Key("int", 1),
    "existingNetwork": Key("object"),
    # runner fleet
    "runnerCount": Key("int", 8),
    "runnerCpu": Key("int", 1024),
    "runnerMemory": Key("int", 2048),
    "runnerCapacityProvider": Key("str", "FARGATE"),
    "logRetentionDays": Key("int", 14),
    "resultsExpirationDays": Key("int", 30),
    # InfluxDB
    "influxdbCpu": Key("int", 1024),
    "influxdbMemory": Key("int", 4096),
    "influxdbDatabase": Key("str", "loadbearing"),
    "influxdbAdminUser": Key("str", "admin"),
    "influxdbAdminPassword": Key("secret", required=True),
    "operatorCidrs": Key("list", []),
    # Grafana
    "grafanaCpu": Key("int", 512),
    "grafanaMemory": Key("int", 1024),
    "grafanaAdminUser": Key("str", "admin"),
    "grafanaAdminPassword": Key("secret", required=True),
    "grafanaAllowedCidrs": Key("list", required=True),
    "grafanaCertificateArn": Key("str"),
    # feedback (written by `loadbearing apply --stack`)
    "targetClusterName": Key("str"),
    "targets": Key("object", {}),
    "targetSettingsPrefix": Key("str", "/loadbearing/targets"),
    # cost guard
    "runnerMaxMinutes": Key("int", 60),
    "reaperIntervalMinutes": Key("int", 5),
    "budgetMonthlyUsd": Key("float"),
    "budgetEmails": Key("list", []),
    "budgetScope": Key("str", "stack"),
}

SECRET_KEYS = tuple(k for k, spec in KEYS.items() if spec.kind == "secret")

AUTOSCALING_METRICS = ("ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization")
CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)
WORLD_CIDRS = ("0.0.0.0/0", "::/0")
TARGET_KEYS = ("ecs_service", "db_pool_size", "cache_ttl_s", "alb_resource_label", "autoscaling")
AUTOSCALING_KEYS = ("min_instances", "max_instances", "metric", "target_value",
                    "scale_out_cooldown_s", "scale_in_cooldown_s")
_PASSWORD_FORBIDDEN = re.compile(r"['\"\\\s$`]")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ConfigError(ValueError):
    """A stack config value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class ExistingNetwork:
    """An existing VPC to deploy into instead of creating one."""

    vpc_id: str
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class AutoscalingSettings:
    """Application Auto Scaling for one target ECS service (target tracking)."""

    min_instances: int
    max_instances: int
    metric: str
    target_value: float
    scale_out_cooldown_s: int
    scale_in_cooldown_s: int


@dataclass(frozen=True)
class TargetSettings:
    """What the feedback loop manages for one service under test."""

    name: str
    ecs_service: str
    db_pool_size: int | None = None
    cache_ttl_s: int | None = None
    alb_resource_label: str | None = None
    autoscaling: AutoscalingSettings | None = None


@dataclass(frozen=True)
class StackConfig:
    """Validated stack configuration. Secrets stay `pulumi.Output`s marked secret."""

    stack: str
    influxdb_admin_password: pulumi.Output[str]
    grafana_admin_password: pulumi.Output[str]
    grafana_allowed_cidrs: tuple[str, ...]
    vpc_cidr: str = "10.42.0.0/16"
    nat_gateways: int = 1
    existing_network: ExistingNetwork | None = None
    runner_count: int = 8
    runner_cpu: int = 1024
    runner_memory: int = 2048
    runner_capacity_provider: str = "FARGATE"
    log_retention_days: int = 14
    results_expiration_days: int = 30
    influxdb_cpu: int = 1024
    influxdb_memory: int = 4096
    influxdb_database: str = "loadbearing"
    influxdb_admin_user: str = "admin"
    operator_cidrs: tuple[str, ...] = ()
    grafana_cpu: int = 512
    grafana_memory: int = 1024
    grafana_admin_user: str = "admin"
    grafana_certificate_arn: str | None = None
    target_cluster_name: str | None = None
    targets: Mapping[str, TargetSettings] = field(default_factory=dict)
    target_settings_prefix: str = "/loadbearing/targets"
    runner_max_minutes: int = 60
    reaper_interval_minutes: int = 5
    budget_monthly_usd: float | None = None
    budget_emails: tuple[str, ...] = ()
    budget_scope: str = "stack"

    @property
    def name_prefix(self) -> str:
        """Prefix for physical names: `loadbearing-<stack>`, fit for ECS, Lambda and DNS names.

        The stack name is lower-cased, anything but letters, digits and '-' becomes '-',
        and it is cut to 30 characters (names such as `<prefix>-runner-reaper` must stay
        within AWS's 64-character limits).
        """
        safe = re.sub(r"[^a-z0-9-]+", "-", self.stack.lower()).strip("-")[:30].strip("-")
        return f"{NAMESPACE}-{safe or 'stack'}"

    @property
    def tags(self) -> dict[str, str]:
        """Tags on every taggable resource; `loadbearing-stack` is what the budget filters on."""
        return {"loadbearing-stack": self.stack, "project": NAMESPACE, "managed-by": "pulumi"}


# --------------------------------------------------------------------------- readers


def load_config(stack: str | None = None) -> StackConfig:
    """Read and validate the `loadbearing:*` stack config of the current stack."""
    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    secrets: dict[str, pulumi.Output[str]] = {}
    for key, spec in KEYS.items():
        if spec.kind == "secret":
            value = cfg.get_secret(key)
            if value is not None:
                secrets[key] = value
            continue
        try:
            if spec.kind == "str":
                raw[key] = cfg.get(key)
            elif spec.kind == "int":
                raw[key] = cfg.get_int(key)
            elif spec.kind == "float":
                raw[key] = cfg.get_float(key)
            else:
                raw[key] = cfg.get_object(key)
        except Exception as exc:  # pulumi raises ConfigTypeError / JSON errors
            raise ConfigError(f"{NAMESPACE}:{key}: {exc}") from exc
    return parse_config({k: v for k, v in raw.items() if v is not None}, secrets,
                        stack or pulumi.get_stack())


def parse_config(raw: Mapping[str, Any], secrets: Mapping[str, pulumi.Output[str]],
                 stack: str) -> StackConfig:
    """Validate plain config values (`raw`, keys without namespace) into a StackConfig.

    Secret keys come in `secrets` as Outputs; their values are checked when they
    resolve (`check_password`). Unknown keys in `raw` are refused.
    """
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"{NAMESPACE}:{unknown[0]}: unknown key; known keys: {', '.join(KEYS)}")
    for key, spec in KEYS.items():
        if spec.required and spec.kind == "secret" and key not in secrets:
            raise ConfigError(f"{NAMESPACE}:{key}: required; set it with "
                              f"`pulumi config set --secret {key} <value>`")
        if spec.required and spec.kind != "secret" and raw.get(key) is None:
            raise ConfigError(f"{NAMESPACE}:{key}: required")

    def get(key: str) -> Any:
        value = raw.get(key)
        return KEYS[key].default if value is None else value

    influx_pw = secrets["influxdbAdminPassword"].apply(
        lambda v: check_password("influxdbAdminPassword", v))
    grafana_pw = secrets["grafanaAdminPassword"].apply(
        lambda v: check_password("grafanaAdminPassword", v))

    runner_cpu, runner_memory = _fargate_size("runnerCpu", "runnerMemory", get)
    influx_cpu, influx_memory = _fargate_size("influxdbCpu", "influxdbMemory", get)
    grafana_cpu, grafana_memory = _fargate_size("grafanaCpu", "grafanaMemory", get)

    targets = parse_targets(get("targets"))
    target_cluster = _opt_str("targetClusterName", raw.get("targetClusterName"))
    if targets and not target_cluster:
        raise ConfigError(f"{NAMESPACE}:targetClusterName: required when "
                          f"{NAMESPACE}:targets is not empty (the ECS cluster of the target services)")

    budget = raw.get("budgetMonthlyUsd")
    budget_emails = _str_list("budgetEmails", get("budgetEmails"))
    if budget is not None:
        budget = _number("budgetMonthlyUsd", budget, minimum=1)
        if not budget_emails:
            raise ConfigError(f"{NAMESPACE}:budgetEmails: at least one address is required "
                              f"when {NAMESPACE}:budgetMonthlyUsd is set")
    for i, email in enumerate(budget_emails):
        if "@" not in email:
            raise ConfigError(f"{NAMESPACE}:budgetEmails[{i}]: {email!r} is not an email address")

    prefix = _str("targetSettingsPrefix", get("targetSettingsPrefix"))
    if not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        raise ConfigError(f"{NAMESPACE}:targetSettingsPrefix: {prefix!r} must start with '/' "
                          "and not end with '/', e.g. /loadbearing/targets")

    return StackConfig(
        stack=stack,
        influxdb_admin_password=influx_pw,
        grafana_admin_password=grafana_pw,
        grafana_allowed_cidrs=_cidrs("grafanaAllowedCidrs", get("grafanaAllowedCidrs"), nonempty=True),
        vpc_cidr=_vpc_cidr(get("vpcCidr")),
        nat_gateways=_choice("natGateways", _int("natGateways", get("natGateways")), (1, 2)),
        existing_network=_existing_network(raw.get("existingNetwork")),
        runner_count=_int("runnerCount", get("runnerCount"), minimum=1, maximum=500),
        runner_cpu=runner_cpu,
        runner_memory=runner_memory,
        runner_capacity_provider=_choice("runnerCapacityProvider",
                                         _str("runnerCapacityProvider", get("runnerCapacityProvider")),
                                         CAPACITY_PROVIDERS),
        log_retention_days=_choice("logRetentionDays", _int("logRetentionDays", get("logRetentionDays")),
                                   LOG_RETENTION_DAYS),
        results_expiration_days=_int("resultsExpirationDays", get("resultsExpirationDays"), minimum=1),
        influxdb_cpu=influx_cpu,
        influxdb_memory=influx_memory,
        influxdb_database=_identifier("influxdbDatabase", get("influxdbDatabase")),
        influxdb_admin_user=_identifier("influxdbAdminUser", get("influxdbAdminUser")),
        operator_cidrs=_cidrs("operatorCidrs", get("operatorCidrs")),
        grafana_cpu=grafana_cpu,
        grafana_memory=grafana_memory,
        grafana_admin_user=_identifier("grafanaAdminUser", get("grafanaAdminUser")),
        grafana_certificate_arn=_opt_str("grafanaCertificateArn", raw.get("grafanaCertificateArn")),
        target_cluster_name=target_cluster,
        targets=targets,
        target_settings_prefix=prefix,
        runner_max_minutes=_int("runnerMaxMinutes", get("runnerMaxMinutes"), minimum=5, maximum=24 * 60),
        reaper_interval_minutes=_int("reaperIntervalMinutes", get("reaperIntervalMinutes"),
                                     minimum=1, maximum=60),
        budget_monthly_usd=budget,
        budget_emails=budget_emails,
        budget_scope=_choice("budgetScope", _str("budgetScope", get("budgetScope")), ("stack", "account")),
    )


def check_password(key: str, value: str) -> str:
    """Return `value` if it is usable as an admin password, else raise ConfigError.

    At least 12 characters; no quotes, backslashes, `$`, backticks or whitespace: the
    InfluxDB image puts it in an InfluxQL statement and Grafana provisioning files
    interpolate it, both of which those characters would break. The message never
    contains the value.
    """
    if len(value) < 12:
        raise ConfigError(f"{NAMESPACE}:{key}: must be at least 12 characters long")
    if _PASSWORD_FORBIDDEN.search(value):
        raise ConfigError(f"{NAMESPACE}:{key}: must not contain quotes, backslashes, '$', "
                          "backticks or whitespace")
    return value


def parse_targets(raw: Any) -> dict[str, TargetSettings]:
    """Validate the `loadbearing:targets` map (see the module docstring for its shape)."""
    base = f"{NAMESPACE}:targets"
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{base}: must be a map from service name to settings")
    targets: dict[str, TargetSettings] = {}
    for name, entry in raw.items():
        where = f"{base}.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}: service names are 1-63 letters, digits, '-', '_' or '.'")
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: must be a map of settings (ecs_service, db_pool_size, ...)")
        extra = sorted(set(entry) - set(TARGET_KEYS))
        if extra:
            raise ConfigError(f"{where}.{extra[0]}: unknown key; known: {', '.join(TARGET_KEYS)}")
        ecs_service = entry.get("ecs_service", name)
        if not isinstance(ecs_service, str) or not ecs_service:
            raise ConfigError(f"{where}.ecs_service: must be the target's ECS service name "
                              "(default: the service name)")
        db_pool = entry.get("db_pool_size")
        cache_ttl = entry.get("cache_ttl_s")
        label = entry.get("alb_resource_label")
        autoscaling = _autoscaling(where, entry.get("autoscaling"))
        if label is not None and (not isinstance(label, str) or not label.startswith("app/")
                                  or "/targetgroup/" not in label):
            raise ConfigError(f"{where}.alb_resource_label: must look like "
                              "app/<alb-name>/<alb-id>/targetgroup/<tg-name>/<tg-id>")
        if autoscaling and autoscaling.metric == "ALBRequestCountPerTarget" and not label:
            raise ConfigError(f"{where}.alb_resource_label: required when autoscaling.metric is "
                              "ALBRequestCountPerTarget (the ALB and target group that count requests)")
        targets[name] = TargetSettings(
            name=name,
            ecs_service=ecs_service,
            db_pool_size=None if db_pool is None else _int(f"targets.{name}.db_pool_size", db_pool, minimum=1),
            cache_ttl_s=None if cache_ttl is None else _int(f"targets.{name}.cache_ttl_s", cache_ttl, minimum=0),
            alb_resource_label=label,
            autoscaling=autoscaling,
        )
    return targets


def _autoscaling(where: str, raw: Any) -> AutoscalingSettings | None:
    if raw is None:
        return None
    where = f"{where}.autoscaling"
    key = where.removeprefix(f"{NAMESPACE}:")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a map")
    extra = sorted(set(raw) - set(AUTOSCALING_KEYS))
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown key; known: {', '.join(AUTOSCALING_KEYS)}")
    missing = [k for k in AUTOSCALING_KEYS if raw.get(k) is None]
    if missing:
        raise ConfigError(f"{where}.{missing[0]}: required")
    low = _int(f"{key}.min_instances", raw["min_instances"], minimum=0)
    high = _int(f"{key}.max_instances", raw["max_instances"], minimum=1)
    if low > high:
        raise ConfigError(f"{where}.min_instances: {low} is more than max_instances {high}")
    metric = raw["metric"]
    if metric not in AUTOSCALING_METRICS:
        raise ConfigError(f"{where}.metric: {metric!r} is not one of {', '.join(AUTOSCALING_METRICS)}")
    target_value = _number(f"{key}.target_value", raw["target_value"], minimum=0, exclusive=True)
    if metric == "ECSServiceAverageCPUUtilization" and target_value > 100:
        raise ConfigError(f"{where}.target_value: CPU utilisation is a percentage (0-100], got {target_value}")
    return AutoscalingSettings(
        min_instances=low,
        max_instances=high,
        metric=metric,
        target_value=target_value,
        scale_out_cooldown_s=_int(f"{key}.scale_out_cooldown_s", raw["scale_out_cooldown_s"], minimum=0),
        scale_in_cooldown_s=_int(f"{key}.scale_in_cooldown_s", raw["scale_in_cooldown_s"], minimum=0),
    )


# --------------------------------------------------------------------------- helpers


def _int(key: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        integral_float = isinstance(value, float) and value.is_integer()
        integral_text = isinstance(value, str) and value.strip().lstrip("-").isdigit()
        if integral_float or integral_text:
            value = int(value)
        else:
            raise ConfigError(f"{NAMESPACE}:{key}: must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{NAMESPACE}:{key}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{NAMESPACE}:{key}: must be at most {maximum}, got {value}")
    return value


def _number(key: str, value: Any, minimum: float, exclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{NAMESPACE}:{key}: must be a number, got {value!r}") from None
    if value < minimum or (exclusive and value == minimum):
        raise ConfigError(f"{NAMESPACE}:{key}: must be {'more than' if exclusive else 'at least'} "
                          f"{minimum:g}, got {value}")
    return float(value)


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{NAMESPACE}:{key}: must be a non-empty string, got {value!r}")
    return value


def _opt_str(key: str, value: Any) -> str | None:
    return None if value in (None, "") else _str(key, value)


def _identifier(key: str, value: Any) -> str:
    text = _str(key, value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", text):
        raise ConfigError(f"{NAMESPACE}:{key}: {text!r} must be letters, digits and '_' "
                          "(starting with a letter or '_')")
    return text


def _choice(key: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    if value not in allowed:
        raise ConfigError(f"{NAMESPACE}:{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
    return value


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{NAMESPACE}:{key}: must be a list of strings, got {value!r}")
    return tuple(value)


def _cidrs(key: str, value: Any, nonempty: bool = False) -> tuple[str, ...]:
    items = _str_list(key, value)
    if nonempty and not items:
        raise ConfigError(f"{NAMESPACE}:{key}: at least one CIDR is required")
    for i, item in enumerate(items):
        try:
            net = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise ConfigError(f"{NAMESPACE}:{key}[{i}]: {item!r} is not a CIDR block ({exc})") from None
        if net.prefixlen == 0:
            raise ConfigError(f"{NAMESPACE}:{key}[{i}]: {item!r} opens the service to the whole internet; "
                              "list the networks that need access")
    return items


def _vpc_cidr(value: Any) -> str:
    text = _str("vpcCidr", value)
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ConfigError(f"{NAMESPACE}:vpcCidr: {text!r} is not a CIDR block ({exc})") from None
    if net.version != 4 or not 16 <= net.prefixlen <= 20:
        raise ConfigError(f"{NAMESPACE}:vpcCidr: {text!r} must be an IPv4 block from /16 to /20 "
                          "(it is split into four subnets)")
    return text


def _existing_network(value: Any) -> ExistingNetwork | None:
    if value is None:
        return None
    key = f"{NAMESPACE}:existingNetwork"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: must be a map with vpc_id, public_subnet_ids, private_subnet_ids")
    extra = sorted(set(value) - {"vpc_id", "public_subnet_ids", "private_subnet_ids"})
    if extra:
        raise ConfigError(f"{key}.{extra[0]}: unknown key")
    vpc_id = value.get("vpc_id")
    if not isinstance(vpc_id, str) or not vpc_id.startswith("vpc-"):
        raise ConfigError(f"{key}.vpc_id: must be a VPC id (vpc-...), got {vpc_id!r}")
    subnets: dict[str, tuple[str, ...]] = {}
    for part in ("public_subnet_ids", "private_subnet_ids"):
        ids = _str_list(f"existingNetwork.{part}", value.get(part, []))
        if len(ids) < 2 or not all(i.startswith("subnet-") for i in ids):
            raise ConfigError(f"{key}.{part}: at least two subnet ids (subnet-...) in different "
                              "availability zones are required")
        subnets[part] = ids
    return ExistingNetwork(vpc_id, subnets["public_subnet_ids"], subnets["private_subnet_ids"])


# Fargate task sizes: cpu units -> allowed memory (MiB).
_FARGATE_MEMORY: dict[int, range] = {
    256: range(512, 2048 + 1, 512),
    512: range(1024, 4096 + 1, 1024),
    1024: range(2048, 8192 + 1, 1024),
    2048: range(4096, 16384 + 1, 1024),
    4096: range(8192, 30720 + 1, 1024),
    8192: range(16384, 61440 + 1, 4096),
    16384: range(32768, 122880 + 1, 8192),
}


def _fargate_size(cpu_key: str, memory_key: str, get: Any) -> tuple[int, int]:
    cpu = _int(cpu_key, get(cpu_key))
    memory = _int(memory_key, get(memory_key))
    if cpu not in _FARGATE_MEMORY:
        raise ConfigError(f"{NAMESPACE}:{cpu_key}: {cpu} is not a Fargate CPU size "
                          f"({', '.join(map(str, _FARGATE_MEMORY))})")
    allowed = _FARGATE_MEMORY[cpu]
    if memory not in allowed:
        raise ConfigError(f"{NAMESPACE}:{memory_key}: {memory} MiB does not fit {cpu} CPU units on "
                          f"Fargate ({allowed.start}-{allowed.stop - 1} in steps of {allowed.step})")
    return cpu, memory
