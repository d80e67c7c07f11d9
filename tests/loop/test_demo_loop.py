"""The closed loop on the real demo target, at the `test` scale (the `ci` shape, shorter).

One module-scoped `loadbearing demo` run (real services, real k6, and the local stack's real
influxd, which the demo starts and stops as `make demo` does), then the acceptance points of
the policies and the loop: its runs read back after the demo with the stack brought up on
demand; the field report's shape before, the recommended pool and cache, applied, verified; the pool
alone meets the SLO while two fewer connections do not;
shipping-api's instances sized from the knee a capacity run found, applied (INSTANCES),
re-measured by a capacity run and verified, and one instance too few refused by verify.
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
from core.knees import CapacityRecord
from core.plan import Compare
from core.rundir import RunDir, StoreRecord
from core.state import free_port
from demo import plan as demo_plan
from demo.launcher import start_service
from demo.loop import run_demo
from demo.plan import write_plan
from policies.verify import regression_bound
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
    assert [r["strategy"] for r in loop.runs] == ["sequential", "hybrid", "parallel", "capacity", "parallel",
                                                  "capacity"]
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
    assert mods["shipping"]["p95_ms"] >= 2 * slo  # one instance of shipping-api cannot keep up


def test_after_meets_the_slo_without_regressions(loop: Loop) -> None:
    before, after = _modules(loop.run("parallel", 0)), _modules(loop.run("parallel", 1))
    slo = loop.run("parallel", 1)["slo"]["p95_ms"]
    assert after["profile"]["p95_ms"] <= slo
    for name, b in before.items():
        assert after[name]["p95_ms"] <= regression_bound(b["p95_ms"], Compare()), name


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
    core = start_service("core-api", ports["core-api"])
    profile = start_service("profile-api", ports["profile-api"], {"DB_POOL_SIZE": str(pool)})
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


# shipping-api's true capacity per instance: MAX_INFLIGHT / CARRIER_MS
SHIPPING_C = demo_plan.shipping_capacity_rps(1)


def _ramps(loop: Loop, index: int) -> CapacityRecord:
    ramps = RunDir.open(loop.dir(loop.run("capacity", index))).read_record().capacity
    assert ramps is not None
    return ramps


def test_instances_are_sized_from_the_knee_applied_remeasured_and_verified(loop: Loop) -> None:
    before_ramps, after_ramps = _ramps(loop, 0), _ramps(loop, 1)
    knees = {s.service: s for s in before_ramps.services}
    assert set(knees) == {"profile-api", "shipping-api"}  # core-api's knee is the CPU: not ramped here
    for service, true_c in (("profile-api", demo_plan.capacity_rps(2)), ("shipping-api", SHIPPING_C)):
        cap = knees[service].capacity_per_instance_rps
        assert cap is not None and 0.9 * true_c / before_ramps.growth <= cap <= true_c / before_ramps.min_goodput
    doc = json.loads((loop.dir(loop.run("parallel", 0)) / "recommendations.json").read_text())
    assert doc["capacity_run"]["run_id"] == loop.run("capacity", 0)["run_id"]
    scale = {r["service"]: r for r in doc["recommendations"] if r["kind"] == "autoscaling"}
    shipping = scale["shipping-api"]
    assert shipping["evidence"]["capacity_kind"] == "capacity_run"
    assert shipping["evidence"]["capacity_rps_per_instance"] == pytest.approx(knees["shipping-api"].capacity_rps, abs=0.01)
    assert shipping["instances"] == 3 and shipping["min_instances"] <= 3 <= shipping["max_instances"]
    assert "INSTANCES=3" in (loop.root / "shipping-api.env").read_text()
    # a lower bound (every bucket met the SLO, no capacity run ramped the service) never adds instances beyond
    # the count that carried the load, and the reason says which capacity run would find the knee
    after_doc = json.loads((loop.dir(loop.run("parallel", 1)) / "recommendations.json").read_text())
    bounds = [r for d in (doc, after_doc) for r in d["recommendations"]
              if r["kind"] == "autoscaling" and r["evidence"]["capacity_kind"] == "lower_bound"]
    assert bounds  # after the fix core-api and profile-api hold their peak with room: lower bounds
    for r in bounds:
        assert r["instances"] == r["evidence"]["current_instances"], r["reason"]
        assert "loadbearing run capacity --plan" in r["reason"] and f"--service {r['service']}" in r["reason"]
    # applied: the after run's plan (and so its services) had 3 instances, and met the SLO with them
    after = loop.run("parallel", 1)
    plan, _ = RunDir.open(loop.dir(after)).read_plan()
    assert plan is not None and plan.services["shipping-api"].instances == 3
    assert _modules(after)["shipping"]["p95_ms"] <= after["slo"]["p95_ms"]
    # re-measured: a ramp of 3 instances from the plan's peak; per instance within tolerance of the truth
    (again,) = after_ramps.services
    assert again.service == "shipping-api" and again.instances == 3 and again.knee_reached
    per = again.capacity_per_instance_rps
    assert per is not None and 0.9 * SHIPPING_C / after_ramps.growth <= per <= SHIPPING_C / after_ramps.min_goodput
    verification = json.loads((loop.dir(after) / "verification.json").read_text())
    check = next(c for c in verification["checks"] if c["check"] == "autoscaling shipping-api")
    assert check["ok"] is True, check
    # The document rounds to 3 decimals (a knee of 66.25 req/s over 3 instances is 22.083).
    assert check["measured"]["instances"] == 3
    assert check["measured"]["capacity_rps_per_instance"] == pytest.approx(per, abs=1e-3)
    assert check["predicted"]["capacity_rps_per_instance"] == shipping["evidence"]["capacity_rps_per_instance"]
    # the reports plot the capacity runs the recommendations and the verification stood on
    for d in (loop.dir(loop.run("parallel", 0)), loop.dir(after)):
        html = (d / "report.html").read_text()
        assert 'id="capacity-rps-shipping-api"' in html and 'id="capacity-p95-shipping-api"' in html
        assert "knee" in html


def test_one_instance_too_few_fails_verify_naming_measured_and_predicted_capacity(
        loop: Loop, tmp_path: Path, lb_env: dict[str, str]) -> None:
    from tests.fixtures.runs import run_cli

    before = loop.dir(loop.run("parallel", 0))
    doc = json.loads((before / "recommendations.json").read_text())
    rec = next(r for r in doc["recommendations"] if r["kind"] == "autoscaling" and r["service"] == "shipping-api")
    too_few = rec["instances"] - 1
    env = {"INSTANCES": str(too_few)}
    with start_service("shipping-api", env=env) as shipping:
        rate = demo_plan.SHIPPING_RATE
        plan = tmp_path / "plan.toml"
        plan.write_text(f"""name = "one-too-few"
[target]
base_url = "{shipping.url}"
allow_hosts = ["127.0.0.1"]
[slo]
p95_ms = {demo_plan.SLO_P95_MS}
max_error_rate = {demo_plan.SLO_MAX_ERROR_RATE}
[services.shipping-api]
base_url = "{shipping.url}"
instances = {too_few}
db_pool_size = {demo_plan.SHIPPING_POOL}
db_max_connections = 100
[[modules]]
name = "shipping"
script = "{demo_plan.MODULES_DIR / 'shipping.js'}"
service = "shipping-api"
rate = {rate}
max_vus = 400
duration = "10s"
""")
        after, _ = run_strategy(prepare(RunOptions(plan_path=plan, strategy="parallel", out_dir=tmp_path / "runs")),
                                loop.influx)
    res = run_cli(["verify", str(before), str(after.path)], lb_env)
    assert res.code == 1, res.stderr
    check = next(c for c in json.loads(after.verification.read_text())["checks"]
                 if c["check"] == "autoscaling shipping-api")
    predicted = rec["evidence"]["capacity_rps_per_instance"]
    assert check["ok"] is False and check["measured"]["instances"] == too_few
    assert f"{too_few} instance(s) x {predicted:.1f} req/s per instance (predicted; measured " in check["detail"]
    assert f"{rec['instances']} are needed" in check["detail"]
    assert "autoscaling shipping-api" in res.stderr and "are needed" in res.stderr
