"""Real runs for the policy tests: the real k6 binary against loopback targets, stored in a real influxd.

`real_runs` (session) records three parallel-strategy runs of two modules,
`profile` (profile-api: a pool of 1 connection held 20 ms, offered 90 req/s, so it
saturates) and `jobs` (core-api: fast, 40 req/s), against the gallery's servers
(`tests.policies.target`):

- "baseline": profile-api exposes its pool on /metrics (OpenTelemetry names), scraped;
- "verify":   the same load with profile-api's pool set to the baseline's
              recommendation;
- "no_app":   the baseline without a metrics_url (k6's samples alone).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.influx import InfluxClient
from policies import recommend_run
from runners.influxd import Influxd
from tests.policies.runs import ModuleSpec, RunResult, ServiceSpec, run_modules
from tests.policies.target import EchoTarget, PoolTarget

SLO_P95_MS = 600.0
HOLD_MS = 20.0
PROFILE_RATE = 90
JOBS_RATE = 40
SECONDS = 6


@pytest.fixture(scope="session")
def policy_store(influxd: Influxd) -> InfluxClient:
    client = InfluxClient.from_url(influxd.url, db=f"policies_{uuid.uuid4().hex[:8]}")
    client.ensure_db()
    return client


def record_run(root: Path, store: InfluxClient, name: str, pool: int, app_metrics: bool) -> RunResult:
    testid = f"{name}-{uuid.uuid4().hex[:6]}"
    profile = PoolTarget("profile-api", pool_size=pool, hold_ms=HOLD_MS, metrics=app_metrics).start()
    try:
        core = EchoTarget("core-api").start()
    except BaseException:
        profile.stop()
        raise
    try:
        return run_modules(
            root / testid, store, testid,
            [ServiceSpec("profile-api", profile.url, db_pool_size=pool, db_max_connections=100,
                         metrics_url=profile.metrics_url),
             ServiceSpec("core-api", core.url, db_pool_size=10, db_max_connections=100)],
            [ModuleSpec("profile", "profile-api", profile.url, PROFILE_RATE, SECONDS, 40),
             ModuleSpec("jobs", "core-api", core.url, JOBS_RATE, SECONDS, 20)],
            SLO_P95_MS)
    finally:
        profile.stop()
        core.stop()


@pytest.fixture(scope="session")
def real_runs(policy_store: InfluxClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("policy-runs")
    baseline = record_run(root, policy_store, "baseline", pool=1, app_metrics=True)
    doc = recommend_run(baseline.run_dir)
    pools = [r for r in doc["recommendations"] if r["kind"] == "db_pool" and r["service"] == "profile-api"]
    recommended = pools[0]["recommended"] if pools else 1
    verify = record_run(root, policy_store, "verify", pool=recommended, app_metrics=True)
    no_app = record_run(root, policy_store, "noapp", pool=1, app_metrics=False)
    yield {"baseline": baseline.run_dir, "verify": verify.run_dir, "no_app": no_app.run_dir}
