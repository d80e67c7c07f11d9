"""Stack configuration: every `loadbearing:*` key the program reads, validated with pydantic.

`load_config()` reads the Pulumi stack config; `parse_config(raw, secrets, stack)` is the
pure part: it validates plain values (`StackSettings`, one field per key, the key being
the field's camelCase alias) and builds a `StackConfig`. Every error is a `ConfigError`
whose message starts with the full key path (`loadbearing:runnerCount: ...`,
`loadbearing:targets.profile-api.autoscaling.metric: ...`) and says what is allowed.

`KEYS` lists every key; Pulumi.example.yaml documents each one (a test holds the two
together). `loadbearing:targets` is declared in `core.targets` (what `loadbearing apply
--stack` writes).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pulumi
from pulumi.runtime.config import CONFIG, get_config, get_config_env
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from core.config_types import WholeNumber, describe
from core.stack_outputs import CapacityProvider
from core.targets import TargetsBlock, TargetsError, TargetSettings
from core.targets import parse_targets as parse_target_block

NAMESPACE = "loadbearing"
SECRET_KEYS = ("influxdbAdminPassword", "grafanaAdminPassword")

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)
_PASSWORD_FORBIDDEN = re.compile(r"['\"\\\s$`]")
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"

# Fargate task sizes: cpu units -> allowed memory (MiB).
FARGATE_MEMORY: dict[int, range] = {
    256: range(512, 2048 + 1, 512),
    512: range(1024, 4096 + 1, 1024),
    1024: range(2048, 8192 + 1, 1024),
    2048: range(4096, 16384 + 1, 1024),
    4096: range(8192, 30720 + 1, 1024),
    8192: range(16384, 61440 + 1, 4096),
    16384: range(32768, 122880 + 1, 8192),
}


class ConfigError(ValueError):
    """A stack config value is missing or invalid; the message names the key."""


class _Keys(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True,
                              allow_inf_nan=False)


class ExistingNetwork(_Keys):
    """An existing VPC to deploy into instead of creating one."""

    model_config = ConfigDict(alias_generator=None)

    vpc_id: str = Field(pattern=r"^vpc-[0-9a-zA-Z]+$")
    public_subnet_ids: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]

    @field_validator("public_subnet_ids", "private_subnet_ids")
    @classmethod
    def _subnets(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        if len(ids) < 2 or not all(i.startswith("subnet-") for i in ids):
            raise ValueError("at least two subnet ids (subnet-...) in different availability zones are required")
        return ids


def _cidr(item: str) -> str:
    try:
        net = ipaddress.ip_network(item, strict=True)
    except ValueError as exc:
        raise ValueError(f"{item!r} is not a CIDR block ({exc})") from None
    if net.prefixlen == 0:
        raise ValueError(f"{item!r} opens the service to the whole internet; list the networks that need access")
    return item


def _email(item: str) -> str:
    if "@" not in item:
        raise ValueError(f"{item!r} is not an email address")
    return item


Cidr = Annotated[str, AfterValidator(_cidr)]
Email = Annotated[str, AfterValidator(_email)]


class StackSettings(_Keys):
    """Every plain (non-secret) `loadbearing:*` key, with its default."""

    # network
    vpc_cidr: str = "10.42.0.0/16"
    nat_gateways: Literal[1, 2] = 1
    existing_network: ExistingNetwork | None = None
    vpc_endpoints: bool = True
    # images: through an ECR pull-through cache (a Docker Hub credential), or straight from Docker Hub
    docker_hub_credential_arn: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache/.+$")
    pull_images_from_docker_hub: bool = False
    # runner fleet
    runner_count: WholeNumber = Field(default=8, ge=1, le=500)
    runner_cpu: WholeNumber = 1024
    runner_memory: WholeNumber = 2048
    runner_capacity_provider: CapacityProvider = "FARGATE"
    runner_subnets: Literal["private", "public"] = "private"
    log_retention_days: WholeNumber = 14
    results_expiration_days: WholeNumber = Field(default=30, ge=1)
    # InfluxDB
    influxdb_cpu: WholeNumber = 1024
    influxdb_memory: WholeNumber = 4096
    influxdb_database: str = Field(default="loadbearing", pattern=_IDENTIFIER)
    influxdb_admin_user: str = Field(default="admin", pattern=_IDENTIFIER)
    operator_cidrs: tuple[Cidr, ...] = ()
    # Grafana
    grafana_cpu: WholeNumber = 512
    grafana_memory: WholeNumber = 1024
    grafana_admin_user: str = Field(default="admin", pattern=_IDENTIFIER)
    grafana_allowed_cidrs: tuple[Cidr, ...] = Field(min_length=1)
    grafana_certificate_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+$")
    grafana_domain_name: str | None = Field(
        default=None, max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    allow_insecure_http: bool = False
    # feedback (written by `loadbearing apply --stack`)
    target_cluster_name: str | None = Field(default=None, min_length=1)
    targets: TargetsBlock = Field(default_factory=dict)
    target_settings_prefix: str = "/loadbearing/targets"
    # cost guard
    runner_max_minutes: WholeNumber = Field(default=60, ge=5, le=24 * 60)
    reaper_interval_minutes: WholeNumber = Field(default=5, ge=1, le=60)
    budget_monthly_usd: float | None = Field(default=None, ge=1)
    budget_emails: tuple[Email, ...] = ()
    budget_scope: Literal["stack", "account"] = "stack"

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, text: str) -> str:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a CIDR block ({exc})") from None
        if net.version != 4 or not 16 <= net.prefixlen <= 20:
            raise ValueError(f"{text!r} must be an IPv4 block from /16 to /20 (it is split into four subnets)")
        return text

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            raise ValueError(f"{days} is not a CloudWatch Logs retention ({', '.join(map(str, LOG_RETENTION_DAYS))})")
        return days

    @field_validator("runner_cpu", "influxdb_cpu", "grafana_cpu")
    @classmethod
    def _fargate_cpu(cls, cpu: int) -> int:
        if cpu not in FARGATE_MEMORY:
            raise ValueError(f"{cpu} is not a Fargate CPU size ({', '.join(map(str, FARGATE_MEMORY))})")
        return cpu

    @field_validator("grafana_allowed_cidrs", "operator_cidrs", "budget_emails", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("target_settings_prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        if not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
            raise ValueError(f"{prefix!r} must start with '/' and not end with '/', e.g. /loadbearing/targets")
        return prefix

    @model_validator(mode="after")
    def _together(self) -> StackSettings:
        for cpu_key, memory_key in (("runnerCpu", "runnerMemory"), ("influxdbCpu", "influxdbMemory"),
                                    ("grafanaCpu", "grafanaMemory")):
            cpu = getattr(self, _snake(cpu_key))
            memory = getattr(self, _snake(memory_key))
            allowed = FARGATE_MEMORY[cpu]
            if memory not in allowed:
                raise ValueError(f"{memory_key}: {memory} MiB does not fit {cpu} CPU units on Fargate "
                                 f"({allowed.start}-{allowed.stop - 1} in steps of {allowed.step})")
        if self.targets and not self.target_cluster_name:
            raise ValueError(f"targetClusterName: required when {NAMESPACE}:targets is not empty (the ECS cluster "
                             "of the target services)")
        if not self.allow_insecure_http and not (self.grafana_certificate_arn and self.grafana_domain_name):
            missing = "grafanaCertificateArn" if not self.grafana_certificate_arn else "grafanaDomainName"
            raise ValueError(f"{missing}: required: Grafana (and the controller's InfluxDB door) are served over "
                             "HTTPS with an ACM certificate (grafanaCertificateArn) for a name you own "
                             "(grafanaDomainName); or set allowInsecureHttp: true for a trial over plain HTTP")
        if self.grafana_domain_name and not self.grafana_certificate_arn:
            raise ValueError("grafanaCertificateArn: required with grafanaDomainName (the certificate for it)")
        if self.docker_hub_credential_arn is None and not self.pull_images_from_docker_hub:
            raise ValueError("dockerHubCredentialArn: required: the ARN of a Secrets Manager secret named "
                             "ecr-pullthroughcache/<name> holding a Docker Hub username and access token, for the "
                             "stack's ECR pull-through cache (every task pulling from Docker Hub through one NAT "
                             "address hits its anonymous pull limit); or set pullImagesFromDockerHub: true for a "
                             "small trial")
        if self.docker_hub_credential_arn is not None and self.pull_images_from_docker_hub:
            raise ValueError("pullImagesFromDockerHub: true contradicts dockerHubCredentialArn (the cache); keep one")
        if self.budget_monthly_usd is not None and not self.budget_emails:
            raise ValueError(f"budgetEmails: at least one address is required when {NAMESPACE}:budgetMonthlyUsd "
                             "is set")
        return self


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


KEYS: tuple[str, ...] = tuple(f.alias or k for k, f in StackSettings.model_fields.items()) + SECRET_KEYS
_STRING_KEYS = frozenset(f.alias or k for k, f in StackSettings.model_fields.items()
                         if f.annotation in (str, "str", "str | None") or f.annotation == (str | None))


class StackConfig(StackSettings):
    """Validated stack configuration: the settings, the stack name and the two admin
    passwords (Outputs marked secret, checked by `check_password` when they resolve)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    stack: str
    influxdb_admin_password: Any = Field(exclude=True, repr=False)
    grafana_admin_password: Any = Field(exclude=True, repr=False)

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


def _typed(key: str, text: str) -> Any:
    """A config value as the engine hands it (a string) back to data: JSON where it parses,
    except for keys that are strings (a database called `123` stays a string)."""
    if key in _STRING_KEYS:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_config(stack: str | None = None) -> StackConfig:
    """Read and validate the `loadbearing:*` stack config of the current stack."""
    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    secrets: dict[str, pulumi.Output[str]] = {}
    for key in SECRET_KEYS:
        value = cfg.get_secret(key)
        if value is not None:
            secrets[key] = value
    for full_key in _namespace_keys():  # every key set, so that unknown ones are refused
        key = full_key.split(":", 1)[1]
        text = get_config(full_key)
        if key not in SECRET_KEYS and text is not None:
            raw[key] = _typed(key, str(text))
    return parse_config(raw, secrets, stack or pulumi.get_stack())


def _namespace_keys() -> list[str]:
    """Every `loadbearing:*` key the stack sets (the engine passes them in PULUMI_CONFIG;
    mocks through set_all_config)."""
    every = {**(get_config_env() or {}), **CONFIG.get()}
    return sorted(k for k in every if k.startswith(f"{NAMESPACE}:"))


def parse_config(raw: Mapping[str, Any], secrets: Mapping[str, pulumi.Output[str]],
                 stack: str) -> StackConfig:
    """Validate plain config values (`raw`, keys without namespace) into a StackConfig.

    Secret keys come in `secrets` as Outputs; their values are checked when they
    resolve (`check_password`). Unknown keys in `raw` are refused.
    """
    for key in SECRET_KEYS:
        if key in raw:
            raise ConfigError(f"{NAMESPACE}:{key}: must be a secret; set it with "
                              f"`pulumi config set --secret {key} <value>`")
        if key not in secrets:
            raise ConfigError(f"{NAMESPACE}:{key}: required; set it with "
                              f"`pulumi config set --secret {key} <value>`")
    try:
        settings = StackSettings.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError("\n".join(_messages(exc))) from None
    return StackConfig.model_construct(
        **dict(settings), stack=stack,
        influxdb_admin_password=secrets["influxdbAdminPassword"].apply(
            lambda v: check_password("influxdbAdminPassword", v)),
        grafana_admin_password=secrets["grafanaAdminPassword"].apply(
            lambda v: check_password("grafanaAdminPassword", v)),
    )


def _messages(exc: ValidationError) -> list[str]:
    """describe(), and for an unknown top-level key the list of known ones."""
    known = f" (Pulumi.example.yaml documents every key: {', '.join(KEYS)})"
    return [line + (known if err["type"] == "extra_forbidden" and len(err["loc"]) == 1 else "")
            for err, line in zip(exc.errors(), describe(exc, f"{NAMESPACE}:"), strict=True)]


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
    """Validate a `loadbearing:targets` block (declared in core.targets); ConfigError naming the key."""
    try:
        return parse_target_block(raw)
    except TargetsError as exc:
        raise ConfigError(str(exc)) from None
