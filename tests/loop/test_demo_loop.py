"""The closed loop on the real demo target, at the `test` scale (the `ci` shape, shorter).

One module-scoped `loadbearing demo` run (real services, real k6, and the local stack's real
influxd, which the demo starts and stops as `make demo` does), then the acceptance points of
the policies and the loop: its runs read back after the demo with the stack brought up on
demand; the field report's shape before, the recommended pool and cache, applied, verified; the pool
alone meets the SLO while two fewer connections do not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.influx import InfluxClient
from core.rundir import StoreRecord
from core.state import free_port
from demo.launcher import start_service
from demo.loop import run_demo
from demo.plan import write_plan
from runners import stack
from runners.controller import RunOptions, prepare
from runners.controller import run as run_strategy
from runners.stack import recorded_store
from tests.fixtures.require import need_binary
from tests.fixtures.runs import cli_env, run_cli

pytestmark = pytest.mark.slow


@dataclass
class Loop:
    code: int
    root: Path
    runs: list[dict[str, Any]]
    state: Path  # the demo's state dir: its local stack lives there

    @property
    def influx(self) -> InfluxClient:
        """The demo's store: the local stack, brought up again where it listens now."""
        return recorded_store(StoreRecord.model_validate(self.runs[0]["influx"]))

    def env(self) -> dict[str, str]:
        """The CLI's environment with the demo's state dir (and no other store)."""
        return cli_env(self.state)

    def run(self, strategy: str, index: int = 0) -> dict[str, Any]:
        return [r for r in self.runs if r["strategy"] == strategy][index]

    def dir(self, record: dict[str, Any]) -> Path:
        return self.root / record["run_id"]


def _demo_processes() -> list[psutil.Process]:
    """Demo services this test process started that still run, orphaned or not (the shared
    machine runs other people's demo services too: those are not ours to count)."""
    me = os.getpid()
    mine = {p.pid for p in psutil.Process(me).children(recursive=True)}
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if "demo.launcher" in " ".join(p.info["cmdline"] or []) and (
                    p.pid in mine or p.environ().get("DEMO_PARENT_PID") == str(me)):
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    need_binary("influxd", "influxdb")
    out = tmp_path_factory.mktemp("demo")
    mp = pytest.MonkeyPatch()
    mp.setenv("LOADBEARING_STATE_DIR", str(out / "state"))  # for the whole module: the stack lives there
    mp.delenv("LOADBEARING_INFLUX_URL", raising=False)
    try:
        code = run_demo(scale="test", out_dir=out / "runs")  # the local stack: up, then down again
        (root,) = [p for p in (out / "runs").iterdir() if p.is_dir()]
        runs = sorted((json.loads(p.read_text()) for p in root.glob("*/run.json")), key=lambda r: r["started_at"])
        yield Loop(code, root, runs, out / "state")
    finally:
        stack.down()
        mp.undo()


def _modules(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in record["modules"]}


def test_after_the_demo_its_runs_read_back_with_the_stack_started_on_demand(loop: Loop) -> None:
    assert all(r["influx"]["stack"] == "process" for r in loop.runs)
    stack.down()  # as `make demo` leaves it (a test before this one may have brought it up)
    assert stack.status()[1] is False
    before, after = loop.dir(loop.run("parallel", 0)), loop.dir(loop.run("parallel", 1))
    verify = run_cli(["verify", str(before), str(after)], loop.env())
    assert verify.code == 0, verify.stderr
    assert "starting it" in verify.stderr and "delivered" in verify.stderr
    info, alive = stack.status()
    assert alive and info is not None
    recommend = run_cli(["recommend", str(loop.dir(loop.run("hybrid"))), "--json"], loop.env())
    assert recommend.code == 0, recommend.stderr
    assert json.loads(recommend.stdout)["endpoints"]


def test_the_loop_runs_every_strategy_and_verify_passes(loop: Loop) -> None:
    assert [r["strategy"] for r in loop.runs] == ["sequential", "hybrid", "parallel", "parallel"]
    after = loop.dir(loop.run("parallel", 1))
    verification = json.loads((after / "verification.json").read_text())
    failed = [c for c in verification["checks"] if c["ok"] is False]
    assert loop.code == 0, failed
    assert verification["delivered"] is True
    caches = [c for c in verification["checks"] if c["check"].startswith("cache ")]
    assert caches and all(c["ok"] and c["measured"]["hit_ratio"] is not None for c in caches), caches
    assert any(c["check"] == "converged" and c["ok"] for c in verification["checks"])
    for d in (loop.dir(loop.run("parallel", 0)), after):
        assert (d / "report.html").stat().st_size > 10_000
        assert "loadbearing" in (d / "report.md").read_text()
    assert _demo_processes() == []


def test_before_has_the_seeds_shape(loop: Loop) -> None:
    before = loop.run("parallel", 0)
    slo = before["slo"]["p95_ms"]
    mods = _modules(before)
    assert mods["profile"]["p95_ms"] >= 10 * slo
    for name in ("jobs", "ecommerce", "notifications"):
        assert mods[name]["p95_ms"] <= slo and mods[name]["thresholds_ok"], name


def test_after_meets_the_slo_without_regressions(loop: Loop) -> None:
    before, after = _modules(loop.run("parallel", 0)), _modules(loop.run("parallel", 1))
    slo = loop.run("parallel", 1)["slo"]["p95_ms"]
    assert after["profile"]["p95_ms"] <= slo
    for name, b in before.items():
        assert after[name]["p95_ms"] <= max(b["p95_ms"] * 1.1, b["p95_ms"] + 20), name


def test_recommendations_pool_for_profile_cache_for_its_gets_only(loop: Loop) -> None:
    doc = json.loads((loop.dir(loop.run("parallel", 0)) / "recommendations.json").read_text())
    assert doc["valid"] is True
    pools = {r["service"]: r for r in doc["recommendations"] if r["kind"] == "db_pool"}
    assert pools["profile-api"]["current"] == 2 and pools["profile-api"]["recommended"] > 2
    core = pools.get("core-api")
    assert core is None or core["recommended"] <= core["current"]  # never an increase for core-api
    caches = {(r["service"], r["endpoint"]) for r in doc["recommendations"] if r["kind"] == "cache"}
    assert ("profile-api", "profile_get") in caches
    assert ("profile-api", "profile_put") not in caches
    assert all(r["method"] == "GET" for r in doc["recommendations"] if r["kind"] == "cache")
    env = (loop.root / "profile-api.env").read_text()
    assert f"DB_POOL_SIZE={pools['profile-api']['recommended']}" in env


def _parallel_with_pool(loop: Loop, pool: int, tmp_path: Path, plan_pool: int | None = None,
                        plan_cache_ttl_s: float | None = None) -> Path:
    """A parallel run with profile-api's real pool `pool` and no cache; the plan says `plan_pool`
    (default: the same) and `plan_cache_ttl_s`."""
    ports = {"core-api": free_port(), "profile-api": free_port()}
    env = {"LOADBEARING_INFLUX_URL": loop.influx.url, "LOADBEARING_INFLUX_DB": loop.influx.db}
    core = start_service("core-api", ports["core-api"], env)
    profile = start_service("profile-api", ports["profile-api"], {**env, "DB_POOL_SIZE": str(pool)})
    try:
        plan = write_plan(tmp_path / "plan.toml", "test", core.url, profile.url,
                          profile_pool=pool if plan_pool is None else plan_pool,
                          profile_cache_ttl_s=plan_cache_ttl_s)
        run_dir, _ = run_strategy(prepare(RunOptions(plan_path=plan, strategy="parallel", out_dir=tmp_path / "runs")),
                                  loop.influx)
    finally:
        core.stop()
        profile.stop()
    return run_dir.path


def _profile_p95(run_dir: Path) -> float:
    return float(_modules(json.loads((run_dir / "run.json").read_text()))["profile"]["p95_ms"])


def test_the_recommended_pool_alone_meets_the_slo_and_two_fewer_do_not(loop: Loop, tmp_path: Path) -> None:
    doc = json.loads((loop.dir(loop.run("parallel", 0)) / "recommendations.json").read_text())
    n = next(r["recommended"] for r in doc["recommendations"]
             if r["kind"] == "db_pool" and r["service"] == "profile-api")
    slo = loop.run("parallel", 0)["slo"]["p95_ms"]
    assert _profile_p95(_parallel_with_pool(loop, n, tmp_path / "n")) <= slo
    assert _profile_p95(_parallel_with_pool(loop, n - 2, tmp_path / "n-2")) > slo


def test_verify_fails_when_nothing_changed_or_the_change_did_not_take(loop: Loop, tmp_path: Path) -> None:
    lb_env = loop.env()
    before = loop.dir(loop.run("parallel", 0))
    # the same run as its own "after": recommending again still moves the pool: not converged
    same = run_cli(["verify", str(before), str(before)], lb_env)
    assert same.code == 1, same.stderr
    assert "NOT delivered" in same.stderr and "db_pool profile-api: 2 ->" in same.stderr
    # config says the pool and the cache were applied, but the service still runs with a pool
    # of 2 and no cache: both predictions fail
    doc = json.loads((before / "recommendations.json").read_text())
    n = next(r["recommended"] for r in doc["recommendations"]
             if r["kind"] == "db_pool" and r["service"] == "profile-api")
    ttl = next(r["ttl_s"] for r in doc["recommendations"] if r["kind"] == "cache" and r["service"] == "profile-api")
    after = _parallel_with_pool(loop, 2, tmp_path / "lie", plan_pool=n, plan_cache_ttl_s=ttl)
    res = run_cli(["verify", str(before), str(after)], lb_env)
    assert res.code == 1
    result = json.loads((after / "verification.json").read_text())
    pool_check = next(c for c in result["checks"] if c["check"] == "db_pool profile-api")
    assert pool_check["ok"] is False and "p95" in pool_check["detail"]
    cache_checks = [c for c in result["checks"] if c["check"].startswith("cache profile-api/")]
    assert cache_checks and all(c["ok"] is False and "hit ratio" in c["detail"] for c in cache_checks), cache_checks
    assert result["delivered"] is False
