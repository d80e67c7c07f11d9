"""The plan file (TOML): what to load, how hard, against which allowed hosts.

`load_plan(path)` returns a validated `Plan` or raises `BadInput` (exit 2) whose
message names the file, the key and the fix. Host checks against `allow_hosts`
are separate (`runners.allowlist`) and raise `Refused` (exit 3).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.durations import parse_duration
from core.errors import BadInput

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
MAX_VUS = 100_000
MAX_RATE = 1_000_000.0
MAX_DURATION_S = 24 * 3600.0
MAX_METRICS_URLS = 256  # instances of one service scraped once a second

STRATEGIES: tuple[str, ...] = ("sequential", "hybrid", "parallel")
CAPACITY = "capacity"  # `loadbearing run capacity`: not a strategy, a stepped ramp per service
MIN_STEP_S = 2.0       # a step holds at least two of k6's 1 s pushes to InfluxDB


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host; write e.g. 'http://127.0.0.1:8000'")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"{value!r} has an invalid port: {exc}") from None
    return value.rstrip("/")


def _check_duration(value: str) -> str:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{value!r} is longer than 24h; split the test")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    base_url: str
    allow_hosts: list[str] = Field(min_length=1)

    _url = field_validator("base_url")(classmethod(lambda cls, v: _check_url(v)))


class Slo(_Strict):
    p95_ms: float = Field(gt=0, le=3_600_000)
    max_error_rate: float = Field(ge=0, le=1)


class Service(_Strict):
    base_url: str | None = None
    instances: int | None = Field(default=None, ge=1, le=10_000)
    db_pool_size: int | None = Field(default=None, ge=1, le=100_000)
    db_max_connections: int | None = Field(default=None, ge=1, le=1_000_000)
    cache_ttl_s: float | None = Field(default=None, ge=0)
    # Where the service's cache lives: "instance" (in-process: N instances keep N caches, and each
    # key reaches each cache at 1/N of its rate) or "shared" (one cache all instances use: Redis, memcached).
    cache_scope: Literal["instance", "shared"] = "instance"
    ecs_service: str | None = None
    # Prometheus text exposition of the service, scraped once a second during a run: one URL, or
    # one per instance when each instance exposes its own (instances behind a load balancer).
    metrics_url: str | list[str] | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)

    @field_validator("metrics_url", mode="before")
    @classmethod
    def _metrics_url(cls, v: Any) -> str | list[str] | None:
        if v is None or isinstance(v, str):
            return None if v is None else _check_url(v)
        if not isinstance(v, list):
            raise ValueError(f"{v!r} is neither a URL nor a list of URLs; write metrics_url = "
                             "\"http://127.0.0.1:8000/metrics\", or one URL per instance: metrics_url = "
                             "[\"http://10.0.0.1:8000/metrics\", \"http://10.0.0.2:8000/metrics\"]")
        if not v:
            raise ValueError("an empty list scrapes nothing; give one URL per instance, e.g. "
                             "metrics_url = [\"http://10.0.0.1:8000/metrics\", \"http://10.0.0.2:8000/metrics\"], "
                             "or remove the key")
        if len(v) > MAX_METRICS_URLS:
            raise ValueError(f"{len(v)} URLs; at most {MAX_METRICS_URLS} instances are scraped")
        urls: list[str] = []
        for i, raw in enumerate(v):
            if not isinstance(raw, str):
                raise ValueError(f"[{i}] {raw!r} is not a URL string; write e.g. \"http://10.0.0.1:8000/metrics\"")
            try:
                url = _check_url(raw)
            except ValueError as exc:
                raise ValueError(f"[{i}] {exc}") from None
            if url in urls:
                raise ValueError(f"[{i}] repeats [{urls.index(url)}] ({url!r}); give each instance's own URL once")
            urls.append(url)
        return urls

    @property
    def metrics_urls(self) -> list[str]:
        """The URLs to scrape: none, the one URL, or one per instance."""
        if self.metrics_url is None:
            return []
        return [self.metrics_url] if isinstance(self.metrics_url, str) else list(self.metrics_url)


class Stage(_Strict):
    duration: str
    target: float = Field(ge=0, le=MAX_RATE)

    _dur = field_validator("duration")(classmethod(lambda cls, v: _check_duration(v)))


class Module(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    script: str = Field(min_length=1)
    service: str | None = None
    vus: int | None = Field(default=None, ge=1, le=MAX_VUS)
    rate: float | None = Field(default=None, gt=0, le=MAX_RATE)
    max_vus: int | None = Field(default=None, ge=1, le=MAX_VUS)
    duration: str | None = None
    stages: list[Stage] | None = None
    # Average bytes of one response (headers and body): the ecs backend prices the data its
    # runners pull through a NAT gateway from it. Optional; the estimate says what it assumed.
    response_bytes: int | None = Field(default=None, ge=0, le=10**10)
    # Run the module through the generated entry script that tags each GET/HEAD with its cache
    # key (runners.k6_entry). Off: k6 runs the script itself, saving the entry's CPU per request
    # (bench/entry.py; it matters only where the generator's CPU is the limit), and the cache
    # policy sees this module's keys only if the script tags `key` itself.
    key_requests: bool = True

    _dur = field_validator("duration")(classmethod(lambda cls, v: v if v is None else _check_duration(v)))

    @model_validator(mode="after")
    def _shape(self) -> Module:
        if (self.vus is None) == (self.rate is None):
            raise ValueError(
                "set exactly one of 'vus' (closed model: constant VUs) or 'rate' "
                "(open model: iterations/s, with optional 'max_vus')"
            )
        if self.max_vus is not None and self.rate is None:
            raise ValueError("'max_vus' only applies with 'rate'; remove it or use 'rate'")
        if self.duration is None and not self.stages:
            raise ValueError("'duration' is missing; write e.g. duration = \"60s\" (or give 'stages')")
        if self.duration is not None and self.stages:
            raise ValueError("give either 'duration' or 'stages', not both")
        return self

    @property
    def duration_s(self) -> float:
        if self.stages:
            return sum(parse_duration(s.duration) for s in self.stages)
        assert self.duration is not None
        return parse_duration(self.duration)


class HybridStrategy(_Strict):
    groups: list[list[str]] = Field(min_length=1)
    recovery: str = "0s"

    @field_validator("recovery")
    @classmethod
    def _recovery(cls, v: str) -> str:
        seconds = parse_duration(v)
        if seconds > MAX_DURATION_S:
            raise ValueError(f"{v!r} is longer than 24h")
        return v

    @property
    def recovery_s(self) -> float:
        return parse_duration(self.recovery)


class SequentialStrategy(_Strict):
    recovery: str = "0s"

    _rec = field_validator("recovery")(classmethod(lambda cls, v: (parse_duration(v), v)[1]))

    @property
    def recovery_s(self) -> float:
        return parse_duration(self.recovery)


class ParallelStrategy(_Strict):
    pass


class Strategies(_Strict):
    sequential: SequentialStrategy = SequentialStrategy()
    hybrid: HybridStrategy | None = None
    parallel: ParallelStrategy = ParallelStrategy()


def _in_range(ranges: dict[str, tuple[float, float, bool, str]], v: float, info: ValidationInfo) -> float:
    """`v` if it lies in its field's range (`ranges[field]`: low, high, inclusive, in words), else ValueError."""
    lo, hi, inclusive, what = ranges[str(info.field_name)]
    ok = lo <= v <= hi if inclusive else lo < v < hi
    if not ok:
        raise ValueError(f"{v:g} must be {what}")
    return v


# Each [compare] key: the values it accepts and what it means (the error message says both).
_COMPARE_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "p95_increase": (0, 100, True, "a share between 0 and 100 (0.10 allows a p95 10 % slower)"),
    "error_rate_increase": (0, 1, True, "between 0 and 1: an absolute change of the failed share "
                                        "(0.005 allows half a percentage point more failures)"),
    "min_effect_ms": (0, 3_600_000, True, "milliseconds between 0 and 3600000 (the smallest p95 change "
                                          "that may fail a build, e.g. 50)"),
    "alpha": (0, 0.5, False, "a significance level between 0 and 0.5, e.g. 0.01"),
}


class Compare(_Strict):
    """When `loadbearing compare` calls a change a regression (all optional).

    A p95 change counts only when it is significant, larger than `p95_increase` of the
    baseline's p95 and larger than `min_effect_ms`; an error-rate change only when it is
    significant and larger than `error_rate_increase`.
    """

    p95_increase: float = 0.10
    error_rate_increase: float = 0.005
    min_effect_ms: float = 50.0
    alpha: float = 0.01

    @field_validator(*_COMPARE_RANGES)
    @classmethod
    def _in_range(cls, v: float, info: ValidationInfo) -> float:
        return _in_range(_COMPARE_RANGES, v, info)


# Each [capacity] number: the values it accepts and what it means (the error message says both).
_CAPACITY_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "start": (0, 100, False, "a multiple of each module's rate above 0 (0.5: the first step offers half of it)"),
    "growth": (1, 10, False, "a factor above 1 and below 10 (1.2: each step offers 20 % more than the last)"),
    "max": (0, 1000, False, "a multiple of each module's rate above 0 (4: no step above four times it)"),
    "min_goodput": (0, 1, True, "a share between 0 and 1 (0.95: a step whose successful responses fall below "
                                "95 % of the offered rate broke)"),
}


class CapacityRamp(_Strict):
    """`loadbearing run capacity`: per service, a stepped arrival-rate ramp up to its knee (all optional).

    Step k offers each module `rate x start x growth^k` iterations/s for `step`, for as many
    steps as stay within `max x rate` and `time_limit`. A step breaks when its p95 is over
    the SLO, its error rate over the budget, or its successful responses fall below
    `min_goodput` of the offered rate; the service's modules stop at the first that breaks.
    """

    step: str = "10s"
    start: float = 0.5
    growth: float = 1.2
    max: float = 4.0
    time_limit: str = "5m"
    min_goodput: float = 0.95
    # Which services to ramp (default: every service that modules load).
    services: list[str] | None = None
    # Iterations/s each module's ramp scales from (default: the module's `rate`; needed for `vus` modules).
    rates: dict[str, float] = Field(default_factory=dict)

    @field_validator(*_CAPACITY_RANGES)
    @classmethod
    def _in_range(cls, v: float, info: ValidationInfo) -> float:
        return _in_range(_CAPACITY_RANGES, v, info)

    @field_validator("step", "time_limit")
    @classmethod
    def _durations(cls, v: str, info: ValidationInfo) -> str:
        _check_duration(v)
        if info.field_name == "step" and parse_duration(v) < MIN_STEP_S:
            raise ValueError(f"{v!r} is shorter than {MIN_STEP_S:g}s; each step must hold at least two of k6's "
                             "one-second pushes, write e.g. step = \"5s\"")
        return v

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: dict[str, float]) -> dict[str, float]:
        for name, rate in v.items():
            if not 0 < rate <= MAX_RATE:
                raise ValueError(f"{name} = {rate:g} must be iterations/s above 0 and at most {MAX_RATE:g}")
        return v

    @model_validator(mode="after")
    def _shape(self) -> CapacityRamp:
        if self.max < self.start:
            raise ValueError(f"max = {self.max:g} is below start = {self.start:g}: the ramp would have no step; "
                             "raise max or lower start")
        if self.time_limit_s < self.step_s:
            raise ValueError(f"time_limit = {self.time_limit!r} is shorter than one step ({self.step!r})")
        return self

    @property
    def step_s(self) -> float:
        return parse_duration(self.step)

    @property
    def time_limit_s(self) -> float:
        return parse_duration(self.time_limit)

    @property
    def steps(self) -> int:
        """How many steps a ramp has: up to `max`, within `time_limit`."""
        by_rate = math.floor(math.log(self.max / self.start) / math.log(self.growth) + 1e-9) + 1
        by_time = math.floor(self.time_limit_s / self.step_s + 1e-9)
        return max(1, min(by_rate, by_time))

    def step_rates(self, base: float) -> list[float]:
        """The iterations/s of each step for a module that scales from `base` (rounded to 0.01)."""
        return [round(base * self.start * self.growth**k, 2) for k in range(self.steps)]


class Plan(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    target: Target
    slo: Slo
    services: dict[str, Service] = Field(default_factory=dict)
    modules: list[Module] = Field(min_length=1)
    strategies: Strategies = Strategies()
    compare: Compare = Compare()
    capacity: CapacityRamp = CapacityRamp()
    # Set by load_plan, not by the file.
    path: Path = Field(default=Path("plan.toml"), exclude=True)

    def module(self, name: str) -> Module:
        return next(m for m in self.modules if m.name == name)

    def script_path(self, module: Module) -> Path:
        return (self.path.parent / module.script).resolve()

    def base_url(self, module: Module) -> str:
        if module.service and self.services[module.service].base_url:
            url = self.services[module.service].base_url
            assert url is not None
            return url
        return self.target.base_url

    def capacity_base_rate(self, module: Module) -> float | None:
        """The iterations/s a module's capacity ramp scales from: capacity.rates.NAME, else its `rate`."""
        return self.capacity.rates.get(module.name, module.rate)

    def urls(self) -> list[tuple[str, str]]:
        """Every (key, url) the plan would send load to."""
        found = [("target.base_url", self.target.base_url)]
        for name, svc in self.services.items():
            if svc.base_url:
                found.append((f"services.{name}.base_url", svc.base_url))
            urls = svc.metrics_urls
            for i, url in enumerate(urls):
                found.append((f"services.{name}.metrics_url" + (f"[{i}]" if isinstance(svc.metrics_url, list) else ""),
                              url))
        return found


def _key_path(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    out = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            name = None
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                name = node[part].get("name")
            out += f"[{part}]" if name is None else f"[{part}] (name = {name!r})"
        else:
            out += f".{part}" if out else str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out or "(top level)"


_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
}


def _format_errors(path: Path, exc: ValidationError, raw: dict[str, Any]) -> str:
    lines = [f"{path}: invalid plan:"]
    for err in exc.errors():
        key = _key_path(tuple(err["loc"]), raw)
        kind = err["type"]
        if kind == "missing":
            lines.append(f"  {key}: required key is missing; {_FIXES['missing']}")
        elif kind == "extra_forbidden":
            lines.append(f"  {key}: unknown key; {_FIXES['extra_forbidden']}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def _cross_checks(plan: Plan) -> list[str]:
    problems: list[str] = []
    names = [m.name for m in plan.modules]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"  modules: module name {dup!r} appears more than once; names must be unique")
    for i, m in enumerate(plan.modules):
        if m.service is not None and m.service not in plan.services:
            known = ", ".join(sorted(plan.services)) or "none defined"
            problems.append(
                f"  modules[{i}] (name = {m.name!r}).service: {m.service!r} is not a [services.*] table "
                f"(known: {known}); add [services.{m.service}] or fix the name"
            )
        script = plan.script_path(m)
        if not script.is_file():
            problems.append(
                f"  modules[{i}] (name = {m.name!r}).script: {m.script!r} does not exist "
                f"(looked for {script}); paths are relative to the plan file"
            )
    served = {m.service for m in plan.modules if m.service is not None}
    for i, name in enumerate(plan.capacity.services or []):
        if name not in plan.services:
            known = ", ".join(sorted(plan.services)) or "none defined"
            problems.append(f"  capacity.services[{i}]: {name!r} is not a [services.*] table (known: {known}); "
                            "fix the name")
        elif name not in served:
            problems.append(f"  capacity.services[{i}]: no module loads {name!r}; give a module `service = "
                            f"\"{name}\"` or remove it")
    for name in plan.capacity.rates:
        if name not in names:
            problems.append(f"  capacity.rates.{name}: {name!r} is not a module (modules: {', '.join(names)}); "
                            "fix the name")
    hybrid = plan.strategies.hybrid
    if hybrid is not None:
        seen: dict[str, int] = {}
        for gi, group in enumerate(hybrid.groups):
            if not group:
                problems.append(f"  strategies.hybrid.groups[{gi}]: empty group; remove it")
            for name in group:
                if name not in names:
                    problems.append(
                        f"  strategies.hybrid.groups[{gi}]: {name!r} is not a module "
                        f"(modules: {', '.join(names)}); fix the name"
                    )
                elif name in seen:
                    problems.append(
                        f"  strategies.hybrid.groups[{gi}]: module {name!r} is already in group {seen[name]}; "
                        "a module belongs to one group"
                    )
                else:
                    seen[name] = gi
        missing = [n for n in names if n not in seen]
        if missing:
            problems.append(
                f"  strategies.hybrid.groups: modules {', '.join(map(repr, missing))} are in no group; "
                "add each module to exactly one group"
            )
    return problems


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file. Raises BadInput (exit 2) with every problem found."""
    plan_path = Path(path)
    try:
        text = plan_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{plan_path}: plan file not found; pass --plan with the path to a plan TOML file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError, OSError) as exc:
        raise BadInput(f"{plan_path}: cannot read the plan file: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{plan_path}: not valid TOML: {exc}; fix the syntax") from None
    try:
        plan = Plan.model_validate({**raw, "path": plan_path.resolve()} if isinstance(raw, dict) else raw)
    except ValidationError as exc:
        raise BadInput(_format_errors(plan_path, exc, raw)) from None
    problems = _cross_checks(plan)
    if problems:
        raise BadInput("\n".join([f"{plan_path}: invalid plan:", *problems]))
    return plan


def capacity_modules(plan: Plan, services: list[str] | None = None) -> dict[str, list[Module]]:
    """The modules a capacity run ramps, by service (plan order). `services` (e.g. from the
    command line) overrides capacity.services. Raises BadInput (exit 2) naming what to fix:
    an unknown service, a `vus` module without capacity.rates.NAME."""
    chosen = services if services is not None else plan.capacity.services
    by_service: dict[str, list[Module]] = {}
    for m in plan.modules:
        if m.service is not None:
            by_service.setdefault(m.service, []).append(m)
    if chosen is not None:
        unknown = [s for s in chosen if s not in by_service]
        if unknown:
            raise BadInput(f"{plan.path}: capacity: no module loads {', '.join(map(repr, unknown))} "
                           f"(services with modules: {', '.join(by_service) or 'none'}); fix the name")
        by_service = {s: by_service[s] for s in by_service if s in chosen}
    if not by_service:
        raise BadInput(f"{plan.path}: capacity: a capacity run ramps services, and no module names its service; "
                       "give each module `service = \"NAME\"` with a [services.NAME] table")
    problems = []
    for mods in by_service.values():
        for m in mods:
            if plan.capacity_base_rate(m) is None:
                problems.append(f"  capacity.rates.{m.name}: module {m.name!r} is planned with vus (closed model); "
                                f"a capacity run offers an arrival rate: add capacity.rates.{m.name} = "
                                "ITERATIONS_PER_S (the rate its ramp scales from) or plan the module with `rate`")
    if plan.capacity.steps < 2:
        problems.append(f"  capacity: the ramp has {plan.capacity.steps} step (start {plan.capacity.start:g}, growth "
                        f"{plan.capacity.growth:g}, max {plan.capacity.max:g}, time_limit "
                        f"{plan.capacity.time_limit}); raise max or time_limit, or lower start or growth, to get "
                        "at least two")
    if problems:
        raise BadInput("\n".join([f"{plan.path}: invalid plan for a capacity run:", *problems]))
    return by_service


def check_strategy(plan: Plan, strategy: str) -> None:
    """Raise BadInput when the plan cannot run this strategy."""
    if strategy not in STRATEGIES:
        raise BadInput(f"unknown strategy {strategy!r}; use one of: {', '.join(STRATEGIES)}")
    if strategy == "hybrid" and plan.strategies.hybrid is None:
        raise BadInput(
            f"{plan.path}: strategies.hybrid.groups: the hybrid strategy needs groups; add\n"
            '  [strategies.hybrid]\n  groups = [["a", "b"], ["c"]]\n  recovery = "10s"'
        )

