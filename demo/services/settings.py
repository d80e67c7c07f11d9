"""A demo service's settings, read from the environment once at start.

| variable | default | meaning |
|---|---|---|
| `DATABASE_URL` | SQLite file | `postgresql://...` (psycopg 3 driver) or `sqlite:///path` |
| `DEMO_SQLITE_PATH` | a temp file removed at exit | the SQLite file when no DATABASE_URL |
| `DB_POOL_SIZE` | 10 (core-api), 2 (profile-api) | SQLAlchemy QueuePool size |
| `DB_MAX_OVERFLOW` | 0 | connections allowed above the pool size |
| `DB_POOL_TIMEOUT` | 30 | seconds a request waits for a connection before HTTP 503 |
| `PROFILE_DB_MS` | 50 | ms each profile-api request holds its pooled connection |
| `CACHE_TTL_S` | 0 (off) | TTL of the in-process cache on cacheable GETs |
| `DEMO_SLOW_ENDPOINTS` | unset | `name=ms[,name=ms]`: add this delay to every request of these endpoints (a deliberate regression) |
| `INSTANCES` | 1 | worker processes serving the one listening socket, each with its own pool (and cache) |
| `MAX_INFLIGHT` | 5 | shipping-api: requests one instance serves at a time; the others wait for a slot |
| `CARRIER_MS` | 200 | shipping-api: ms each request waits on the carrier's rate API, holding its slot |
| `INFLIGHT_TIMEOUT` | 30 | shipping-api: seconds a request waits for a slot before HTTP 503 |
| `DEMO_PARENT_PID` | unset | exit when this process is gone (set by the launcher) |
| `DEMO_TEMP_DIR` | unset | a directory to remove at exit (the launcher's temp log dir) |

`from_env` raises `SettingsError` naming the variable and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

SERVICES = ("core-api", "profile-api", "shipping-api")
DEFAULT_POOL = {"core-api": 10, "profile-api": 2, "shipping-api": 2}
MAX_INSTANCES = 16  # worker processes of one service (a 2-core laptop runs the demo)


class SettingsError(ValueError):
    """A setting in the environment is invalid; the message names it."""


@dataclass(frozen=True)
class Settings:
    service: str
    database_url: str | None
    sqlite_path: str | None
    pool_size: int
    max_overflow: int
    pool_timeout_s: float
    profile_db_ms: float
    cache_ttl_s: float
    parent_pid: int | None
    temp_dir: str | None = None
    slow_ms: Mapping[str, float] = field(default_factory=dict)
    instances: int = 1
    max_inflight: int = 5
    carrier_ms: float = 200.0
    inflight_timeout_s: float = 30.0

    @property
    def hold_s(self) -> float:
        """Seconds a request holds its connection (profile-api only; 0 for core-api)."""
        return self.profile_db_ms / 1000.0 if self.service == "profile-api" else 0.0


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float,
            integer: bool = False, maximum: float | None = None) -> float:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise SettingsError(f"{name}={raw!r} is not {kind}; e.g. {name}={int(default)}") from None
    if value < minimum or (not integer and not value == value):  # NaN check
        raise SettingsError(f"{name}={raw!r} must be >= {minimum:g}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={raw!r} must be <= {maximum:g}")
    return value


def _slow_endpoints(env: Mapping[str, str]) -> dict[str, float]:
    raw = env.get("DEMO_SLOW_ENDPOINTS", "").strip()
    out: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in raw.split(","))):
        name, sep, ms = item.partition("=")
        try:
            delay = float(ms)
        except ValueError:
            delay = -1.0
        if not sep or not name.strip() or not delay >= 0:
            raise SettingsError(f"DEMO_SLOW_ENDPOINTS={raw!r}: {item!r} is not endpoint=milliseconds; "
                                "e.g. DEMO_SLOW_ENDPOINTS=jobs_search=200")
        out[name.strip()] = delay
    return out


def from_env(service: str, env: Mapping[str, str] | None = None) -> Settings:
    """Settings for `service` (one of SERVICES) from `env` (default: os.environ)."""
    if service not in SERVICES:
        raise SettingsError(f"unknown service {service!r}; use one of: {', '.join(SERVICES)}")
    env = os.environ if env is None else env
    parent = env.get("DEMO_PARENT_PID", "").strip()
    return Settings(
        service=service,
        database_url=env.get("DATABASE_URL", "").strip() or None,
        sqlite_path=env.get("DEMO_SQLITE_PATH", "").strip() or None,
        pool_size=int(_number(env, "DB_POOL_SIZE", DEFAULT_POOL[service], minimum=1, integer=True)),
        max_overflow=int(_number(env, "DB_MAX_OVERFLOW", 0, minimum=0, integer=True)),
        pool_timeout_s=_number(env, "DB_POOL_TIMEOUT", 30.0, minimum=0.001),
        profile_db_ms=_number(env, "PROFILE_DB_MS", 50.0, minimum=0),
        cache_ttl_s=_number(env, "CACHE_TTL_S", 0.0, minimum=0),
        parent_pid=int(parent) if parent.isdigit() else None,
        temp_dir=env.get("DEMO_TEMP_DIR", "").strip() or None,
        slow_ms=_slow_endpoints(env),
        instances=int(_number(env, "INSTANCES", 1, minimum=1, integer=True, maximum=MAX_INSTANCES)),
        max_inflight=int(_number(env, "MAX_INFLIGHT", 5, minimum=1, integer=True)),
        carrier_ms=_number(env, "CARRIER_MS", 200.0, minimum=0),
        inflight_timeout_s=_number(env, "INFLIGHT_TIMEOUT", 30.0, minimum=0.001),
    )
