"""The demo's plan at two scales, rendered for the URLs the services actually got.

Scales:
- `ci` (default): short modules (8-18 s) sized for a 2-core machine that also runs
  k6: sequential + hybrid + parallel in under 3 minutes, the whole demo loop with its
  capacity runs in under 5. profile is an open-model
  module at PROFILE_RATE req/s against a pool of PROFILE_POOL connections held
  PROFILE_DB_MS each: capacity = 2 / 0.05 s = 40 req/s < 70 req/s offered, so the
  queue grows for the whole module and profile's p95 ends far above the SLO, while
  jobs, ecommerce and notifications (closed model, think time) stay fast. A pool of
  ceil(rate x hold x 1.5) = 6 connections brings profile under the SLO. The SLO
  (p95 1 s) gives a 100 ms queueing-wait target (10 %): Erlang C then asks for 5
  connections at 70 req/s, and 3 (two fewer) cannot keep up (60 req/s < 70).
- `compare`: the `test` shape, lighter (profile at 30 req/s against a pool of 1), for
  comparing runs of the same plan on a shared machine (the compare acceptance test).
- `seed`: the field report's parallel run, ~1200 VUs with think time (300 per module),
  5 minutes a module, for targets with real capacity.

The `ci` and `test` scales also carry shipping-api (given its URL): the shipping module
offers SHIPPING_RATE quotes/s to a service whose instances each serve at most
MAX_INFLIGHT / CARRIER_MS = 25 quotes/s (request slots, each waiting on a slow carrier
API), not limited by its pool nor by the CPU: only more instances fix it, and at 70 %
target utilisation the peak needs ceil(40 / 17.5) = 3 of them, which a 2-core machine
runs easily (the instances mostly wait). 40 keeps that count for any knee a capacity run
can find (one 20 % step below the true capacity to 5 % above it: 3 instances for any
capacity per instance from 19.1 to 28.5 req/s), and two instances would run at 80 %.

`write_plan(path, scale, core_url, profile_url, ...)` writes a plan file that
`core.plan.load_plan` accepts; script paths are relative when the plan is
written into demo/, absolute otherwise. `demo/plan.toml` and
`demo/plan_seed.toml` are `plan_text` at the default ports (regenerate with
`python -m demo.plan`); a test keeps them in step. `service_env(plan, name)` maps
a plan's `[services.NAME]` settings to the service's environment knobs.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from core.plan import Plan

DEMO_DIR = Path(__file__).resolve().parent
MODULES_DIR = DEMO_DIR / "modules"
DEFAULT_CORE_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE_URL = "http://127.0.0.1:8001"
DEFAULT_SHIPPING_URL = "http://127.0.0.1:8002"
SLO_P95_MS = 1000
SLO_MAX_ERROR_RATE = 0.01
PROFILE_DB_MS = 50            # the services' default hold time (env PROFILE_DB_MS)
CORE_POOL = 10
SHIPPING_POOL = 2
SHIPPING_MAX_INFLIGHT = 5     # shipping-api's request slots per instance (env MAX_INFLIGHT)
SHIPPING_CARRIER_MS = 200     # how long each quote waits on the carrier, holding its slot (env CARRIER_MS)
SHIPPING_RATE = 40            # quotes/s offered at the ci and test scales
# The capacity run's ramp: short steps (a 2-core machine, a 5-minute demo); core-api's modules
# scale from these iterations/s when it is ramped (`--service core-api`): its knee is this
# machine's CPU, not a demo parameter, so the demo ramps profile-api and shipping-api only.
CAPACITY_STEP = "4s"
CORE_CAPACITY_RATES = {"jobs": 5, "ecommerce": 5, "notifications": 5}
PLAN_FILES = {"ci": "plan.toml", "seed": "plan_seed.toml"}


@dataclass(frozen=True)
class ModuleLoad:
    name: str
    service: str
    vus: int | None = None
    rate: int | None = None
    max_vus: int | None = None
    duration: str = "20s"


@dataclass(frozen=True)
class Scale:
    name: str
    description: str
    modules: tuple[ModuleLoad, ...]
    profile_pool: int
    hybrid_recovery: str

    @property
    def with_shipping(self) -> bool:
        return any(m.service == "shipping-api" for m in self.modules)


SCALES: dict[str, Scale] = {
    "ci": Scale(
        name="ci",
        description="sequential + hybrid + parallel in under 4 minutes on a 2-core machine",
        modules=(
            ModuleLoad("jobs", "core-api", vus=30, duration="8s"),
            ModuleLoad("ecommerce", "core-api", vus=30, duration="8s"),
            ModuleLoad("notifications", "core-api", vus=20, duration="8s"),
            ModuleLoad("profile", "profile-api", rate=70, max_vus=800, duration="18s"),
            ModuleLoad("shipping", "shipping-api", rate=SHIPPING_RATE, max_vus=400, duration="8s"),
        ),
        profile_pool=2,
        hybrid_recovery="2s",
    ),
    "test": Scale(
        name="test",
        description="the ci loop, shorter, for the test suite: the same shape in about half the time",
        modules=(
            ModuleLoad("jobs", "core-api", vus=10, duration="8s"),
            ModuleLoad("ecommerce", "core-api", vus=10, duration="8s"),
            ModuleLoad("notifications", "core-api", vus=8, duration="8s"),
            ModuleLoad("profile", "profile-api", rate=70, max_vus=800, duration="16s"),
            ModuleLoad("shipping", "shipping-api", rate=SHIPPING_RATE, max_vus=400, duration="10s"),
        ),
        profile_pool=2,
        hybrid_recovery="2s",
    ),
    "compare": Scale(
        name="compare",
        description="the test scale, lighter, for comparing runs: profile at 30 req/s against a pool of 1 "
                    "(20 req/s) and fewer users on core-api, so that a 2-core machine shared with other work "
                    "stays far from saturation once the pool is fixed",
        modules=(
            ModuleLoad("jobs", "core-api", vus=6, duration="8s"),
            ModuleLoad("ecommerce", "core-api", vus=6, duration="8s"),
            ModuleLoad("notifications", "core-api", vus=5, duration="8s"),
            ModuleLoad("profile", "profile-api", rate=30, max_vus=300, duration="10s"),
        ),
        profile_pool=1,
        hybrid_recovery="2s",
    ),
    "seed": Scale(
        name="seed",
        description="the field report's parallel run: ~1200 VUs with think time",
        modules=(
            ModuleLoad("jobs", "core-api", vus=300, duration="5m"),
            ModuleLoad("ecommerce", "core-api", vus=300, duration="5m"),
            ModuleLoad("notifications", "core-api", vus=300, duration="5m"),
            ModuleLoad("profile", "profile-api", vus=300, duration="5m"),
        ),
        profile_pool=2,
        hybrid_recovery="30s",
    ),
}


def capacity_rps(pool_size: int, hold_ms: float = PROFILE_DB_MS) -> float:
    """profile-api's throughput limit: pool_size / hold time."""
    return pool_size / (hold_ms / 1000.0)


def sufficient_pool(rate: float, hold_ms: float = PROFILE_DB_MS, headroom: float = 1.5) -> int:
    """The smallest pool >= rate x hold x headroom (the issue's 'pool knob is real' size)."""
    return math.ceil(rate * hold_ms / 1000.0 * headroom - 1e-9)


def shipping_capacity_rps(instances: int = 1, max_inflight: int = SHIPPING_MAX_INFLIGHT,
                          carrier_ms: float = SHIPPING_CARRIER_MS) -> float:
    """shipping-api's throughput limit: instances x request slots / the time each holds one."""
    return instances * max_inflight / (carrier_ms / 1000.0)


def predicted_p95_ms(rate: float, duration_s: float, pool_size: int, hold_ms: float = PROFILE_DB_MS) -> float:
    """Fluid-model p95 latency of an open-model module against a pool (0 when it keeps up).

    Above capacity mu = pool / hold, the queue grows at (rate - mu) per second, so a
    request arriving at time t waits (rate - mu) * t / mu; over a run of duration D
    (k6 waits for the backlog to drain) the waits spread evenly over
    [0, (rate - mu) * D / mu], and the p95 is 95 % of the largest.
    """
    mu = capacity_rps(pool_size, hold_ms)
    if rate <= mu:
        return 0.0
    return 0.95 * (rate - mu) * duration_s / mu * 1000.0


def _script(path: Path, module: str) -> str:
    script = MODULES_DIR / f"{module}.js"
    if path.resolve().parent == DEMO_DIR:
        return f"modules/{module}.js"
    return str(script)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan_text(scale: str = "ci", core_url: str = DEFAULT_CORE_URL, profile_url: str = DEFAULT_PROFILE_URL, *,
              path: Path = DEMO_DIR / "plan.toml", profile_pool: int | None = None,
              profile_cache_ttl_s: float | None = None, core_pool: int = CORE_POOL,
              shipping_url: str | None = None, shipping_instances: int = 1, capacity_start: float = 0.5) -> str:
    """The plan file's text (see `write_plan`)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; use one of: {', '.join(SCALES)}")
    sc = SCALES[scale]
    shipping = shipping_url is not None and sc.with_shipping
    modules = [m for m in sc.modules if shipping or m.service != "shipping-api"]
    pool = sc.profile_pool if profile_pool is None else profile_pool
    ttl = 0 if profile_cache_ttl_s is None else profile_cache_ttl_s
    out = [
        "# The loadbearing demo plan (generated by demo/plan.py; regenerate with `python -m demo.plan`).",
        f"# Scale {sc.name!r}: {sc.description}.",
        f"# profile-api holds a pooled DB connection {PROFILE_DB_MS} ms per request (PROFILE_DB_MS), so its",
        f"# capacity is db_pool_size / {PROFILE_DB_MS / 1000:g} s = {capacity_rps(pool):g} req/s with this pool.",
        f'name = "demo-{sc.name}"',
        "",
        "[target]",
        f"base_url = {_toml_str(core_url)}",
        'allow_hosts = ["127.0.0.1", "localhost"]',
        "",
        "[slo]",
        f"p95_ms = {SLO_P95_MS}",
        f"max_error_rate = {SLO_MAX_ERROR_RATE}",
        "",
        '[services.core-api]',
        f"base_url = {_toml_str(core_url)}",
        f"metrics_url = {_toml_str(core_url + '/metrics')}",
        "instances = 1",
        f"db_pool_size = {core_pool}",
        "db_max_connections = 100",
        "cache_ttl_s = 0",
        "",
        '[services.profile-api]',
        f"base_url = {_toml_str(profile_url)}",
        f"metrics_url = {_toml_str(profile_url + '/metrics')}",
        "instances = 1",
        f"db_pool_size = {pool}",
        "db_max_connections = 100",
        f"cache_ttl_s = {ttl:g}",
    ]
    if shipping:
        assert shipping_url is not None
        out[4:4] = [f"# shipping-api serves {SHIPPING_MAX_INFLIGHT} requests at a time per instance, each waiting "
                    f"{SHIPPING_CARRIER_MS} ms on its carrier",
                    f"# (MAX_INFLIGHT, CARRIER_MS): {shipping_capacity_rps():g} req/s per instance."]
        out += [
            "",
            '[services.shipping-api]',
            f"base_url = {_toml_str(shipping_url)}",
            f"instances = {shipping_instances}",
            f"db_pool_size = {SHIPPING_POOL}",
            "db_max_connections = 100",
            "cache_ttl_s = 0",
        ]
    for m in modules:
        out += ["", "[[modules]]", f'name = "{m.name}"', f"script = {_toml_str(_script(path, m.name))}",
                f'service = "{m.service}"']
        if m.vus is not None:
            out.append(f"vus = {m.vus}")
        if m.rate is not None:
            out.append(f"rate = {m.rate}")
        if m.max_vus is not None:
            out.append(f"max_vus = {m.max_vus}")
        out.append(f'duration = "{m.duration}"')
    if shipping:
        rates = ", ".join(f"{k} = {v}" for k, v in CORE_CAPACITY_RATES.items())
        out += [
            "",
            "[capacity]",
            f'step = "{CAPACITY_STEP}"',
            f"start = {capacity_start:g}",
            "growth = 1.2",
            "max = 4",
            'time_limit = "60s"',
            'services = ["profile-api", "shipping-api"]',
            f"rates = {{ {rates} }}",
        ]
    out += [
        "",
        "[strategies.hybrid]",
        'groups = [["jobs", "ecommerce"], ["notifications", "profile"' + (', "shipping"' if shipping else "") + ']]',
        f'recovery = "{sc.hybrid_recovery}"',
        "",
    ]
    return "\n".join(out)


def write_plan(path: str | Path, scale: str = "ci", core_url: str = DEFAULT_CORE_URL,
               profile_url: str = DEFAULT_PROFILE_URL, *, profile_pool: int | None = None,
               profile_cache_ttl_s: float | None = None, core_pool: int = CORE_POOL,
               shipping_url: str | None = None, shipping_instances: int = 1, capacity_start: float = 0.5) -> Path:
    """Write the demo plan for `scale` with these service URLs and settings; returns the path.

    `profile_pool` / `profile_cache_ttl_s` record profile-api's current settings in
    the plan (start the service with the same values: see `service_env`). With
    `shipping_url` (and a scale that has it) the plan also loads shipping-api, which runs
    `shipping_instances` instances, and a [capacity] ramp that starts at `capacity_start` times
    each module's rate.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(plan_text(scale, core_url, profile_url, path=target, profile_pool=profile_pool,
                                profile_cache_ttl_s=profile_cache_ttl_s, core_pool=core_pool,
                                shipping_url=shipping_url, shipping_instances=shipping_instances,
                                capacity_start=capacity_start))
    return target


def service_env(plan: Plan, service: str) -> dict[str, str]:
    """Environment knobs for a demo service from the plan's `[services.NAME]` settings."""
    env: dict[str, str] = {}
    settings = plan.services.get(service)
    if settings is None:
        return env
    if settings.db_pool_size is not None:
        env["DB_POOL_SIZE"] = str(settings.db_pool_size)
    if settings.cache_ttl_s is not None:
        env["CACHE_TTL_S"] = f"{settings.cache_ttl_s:g}"
    if settings.instances is not None:
        env["INSTANCES"] = str(settings.instances)
    return env


def main() -> int:
    for scale, name in PLAN_FILES.items():
        path = write_plan(DEMO_DIR / name, scale, shipping_url=DEFAULT_SHIPPING_URL)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
