"""The demo plan: valid for the controller, sized for the field report's shape, and in step with demo/plan.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.plan import Plan, load_plan
from demo import plan as demo_plan
from runners import capacity as capacity_module
from runners import k6


def _profile(plan: Plan):  # type: ignore[no-untyped-def]
    return plan.module("profile")


@pytest.mark.parametrize("scale", sorted(demo_plan.PLAN_FILES))
def test_committed_plan_files_are_what_demo_plan_generates(scale: str) -> None:
    committed = demo_plan.DEMO_DIR / demo_plan.PLAN_FILES[scale]
    assert committed.read_text() == demo_plan.plan_text(scale, shipping_url=demo_plan.DEFAULT_SHIPPING_URL), \
        "run `python -m demo.plan` to regenerate"
    plan = load_plan(committed)
    names = ["jobs", "ecommerce", "notifications", "profile"] + (["shipping"] if scale == "ci" else [])
    assert [m.script for m in plan.modules] == [f"modules/{m}.js" for m in names]


@pytest.mark.parametrize("scale", sorted(demo_plan.SCALES))
def test_write_plan_points_every_module_at_its_service(scale: str, tmp_path: Path) -> None:
    path = demo_plan.write_plan(tmp_path / "run" / "plan.toml", scale, "http://127.0.0.1:41000",
                                "http://127.0.0.1:41001", profile_pool=7, profile_cache_ttl_s=30)
    plan = load_plan(path)
    urls = {m.name: plan.base_url(m) for m in plan.modules}
    assert urls == {"jobs": "http://127.0.0.1:41000", "ecommerce": "http://127.0.0.1:41000",
                    "notifications": "http://127.0.0.1:41000", "profile": "http://127.0.0.1:41001"}
    assert all(plan.script_path(m).is_file() for m in plan.modules)
    assert plan.services["profile-api"].db_pool_size == 7
    assert demo_plan.service_env(plan, "profile-api") == {"DB_POOL_SIZE": "7", "CACHE_TTL_S": "30", "INSTANCES": "1"}
    assert demo_plan.service_env(plan, "core-api") == {"DB_POOL_SIZE": "10", "CACHE_TTL_S": "0", "INSTANCES": "1"}
    assert "shipping-api" not in plan.services  # only with its URL


@pytest.mark.parametrize("scale", ["ci", "test"])
def test_shipping_needs_instances_and_the_recommended_count_fits_two_cores(scale: str, tmp_path: Path) -> None:
    path = demo_plan.write_plan(tmp_path / "plan.toml", scale, "http://127.0.0.1:41000", "http://127.0.0.1:41001",
                                shipping_url="http://127.0.0.1:41002", shipping_instances=3)
    plan = load_plan(path)
    shipping = plan.module("shipping")
    assert plan.base_url(shipping) == "http://127.0.0.1:41002" and plan.services["shipping-api"].instances == 3
    assert demo_plan.service_env(plan, "shipping-api")["INSTANCES"] == "3"
    assert plan.strategies.hybrid is not None and "shipping" in plan.strategies.hybrid.groups[-1]
    one = demo_plan.shipping_capacity_rps(1)
    assert shipping.rate is not None and shipping.rate >= 1.5 * one  # one instance is far from enough
    # at 70 % target utilisation the peak needs 3 instances, for any knee a ramp of growth 1.2 can find
    # (one step below the true capacity to 5 % above it); two would run above the 70 % target
    for knee in (one / plan.capacity.growth, one, one / plan.capacity.min_goodput):
        assert math.ceil(shipping.rate / (0.7 * knee)) == 3, knee
    assert shipping.rate > 0.7 * demo_plan.shipping_capacity_rps(2)
    # the capacity run ramps profile-api and shipping-api from half their rate: each breaks within a few steps
    cap = plan.capacity
    assert cap.services == ["profile-api", "shipping-api"] and cap.step_s <= 5
    for name, capacity in (("profile", demo_plan.capacity_rps(2)), ("shipping", one)):
        rates = cap.step_rates(plan.module(name).rate or 0)
        assert rates[0] < capacity < rates[2], (name, rates[:3])


def test_ci_scale_overloads_profile_only_and_the_bigger_pool_fixes_it() -> None:
    plan = load_plan(demo_plan.DEMO_DIR / "plan.toml")
    profile = _profile(plan)
    pool = plan.services["profile-api"].db_pool_size
    assert profile.rate is not None and pool is not None
    capacity = demo_plan.capacity_rps(pool)
    assert profile.rate >= 1.25 * capacity  # offered well above what the pool can serve
    p95 = demo_plan.predicted_p95_ms(profile.rate, profile.duration_s, pool)
    assert p95 >= 10 * plan.slo.p95_ms * 1.2  # the field report's shape, with margin
    backlog = (profile.rate - capacity) * profile.duration_s
    assert profile.max_vus is not None and profile.max_vus >= 1.2 * backlog  # k6 can keep offering
    fixed = demo_plan.sufficient_pool(profile.rate)
    assert fixed >= profile.rate * demo_plan.PROFILE_DB_MS / 1000 * 1.5
    assert demo_plan.predicted_p95_ms(profile.rate, profile.duration_s, fixed) == 0.0
    assert all(m.vus is not None and m.vus <= 50 for m in plan.modules if m.service == "core-api")


def test_the_ci_demo_fits_in_five_minutes() -> None:
    """A model of `make demo`'s runs from the plan, against the 5-minute budget (measured runs: README)."""
    plan = load_plan(demo_plan.DEMO_DIR / "plan.toml")
    pool = plan.services["profile-api"].db_pool_size
    assert pool is not None
    startup_s = 5.0  # per phase: k6 start, VU init, resume, summary
    restart_s = 4.0  # per run: the services restarted (all at once), tagged with the run (measured 3-5 s)
    capacity = {"profile-api": demo_plan.capacity_rps(pool), "shipping-api": demo_plan.shipping_capacity_rps(1)}

    def phase(names: list[str], fixed: bool = False) -> float:
        longest = 0.0
        for name in names:
            m = plan.module(name)
            drain = 0.0
            if m.rate is not None and m.service in capacity and not fixed:  # the backlog drains after the last arrival
                c = capacity[m.service]
                drain = max(0.0, (m.rate - c) * m.duration_s / c)
            longest = max(longest, m.duration_s + min(drain, k6.parse_graceful_stop_s()))  # k6 waits that long
        return longest + startup_s

    def ramp(service: str, true_c: float, start: float) -> float:
        """A service's capacity ramp: its steps up to the first one above the true capacity, then judging."""
        base = sum(m.rate or 0 for m in plan.modules if m.service == service)
        steps = 0
        while base * start * plan.capacity.growth ** steps <= true_c / plan.capacity.min_goodput:
            steps += 1
        return (steps + 1) * plan.capacity.step_s + capacity_module.DATA_LAG_S + startup_s

    hybrid = plan.strategies.hybrid
    assert hybrid is not None
    names = [m.name for m in plan.modules]
    sequential = sum(phase([n]) for n in names)
    hybrid_s = sum(phase(g) for g in hybrid.groups) + hybrid.recovery_s * (len(hybrid.groups) - 1)
    before, after = phase(names), phase(names, fixed=True)
    ramps = plan.capacity.services or []
    ramp_before = max(ramp(s, capacity[s], plan.capacity.start) for s in ramps)  # ramped together
    ramp_after = ramp("shipping-api", demo_plan.shipping_capacity_rps(3), 1.0)  # 3 instances, from the peak
    runs = sequential + hybrid_s + before + ramp_before + after + ramp_after + 4 * restart_s  # not before a ramp
    analysis_s = 15.0  # recommend, the two reports, apply, verify (measured 10-15 s in all)
    assert runs + analysis_s <= 290, (sequential, hybrid_s, before, ramp_before, after, ramp_after)  # 10 s: the stack


def test_seed_scale_is_the_posts_1200_users() -> None:
    plan = load_plan(demo_plan.DEMO_DIR / "plan_seed.toml")
    assert sum(m.vus or 0 for m in plan.modules) == 1200
    assert {m.name for m in plan.modules} == {"jobs", "ecommerce", "notifications", "profile"}
