"""The capacity run's ramp from the plan's [capacity] table: steps, rates, and what a capacity run refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BadInput
from core.plan import CapacityRamp, load_plan
from tests.fixtures.runs import write_plan

# (settings, base rate, expected step rates): steps up to max x base, within time_limit
RAMPS = [
    ({}, 10.0, [5.0, 6.0, 7.2, 8.64, 10.37, 12.44, 14.93, 17.92, 21.5, 25.8, 30.96, 37.15]),
    ({"start": 1.0, "growth": 1.5, "max": 3.0}, 20.0, [20.0, 30.0, 45.0]),       # 3 x 20 = 60: 67.5 is above
    ({"step": "30s", "time_limit": "1m"}, 10.0, [5.0, 6.0]),                        # time binds: 2 steps
    ({"start": 0.5, "growth": 2.0, "max": 4.0}, 45.0, [22.5, 45.0, 90.0, 180.0]),  # 4 x 45 = 180 exactly
    ({"start": 0.25, "growth": 1.1, "max": 0.3}, 7.0, [1.75, 1.93]),                # rounded to 0.01
]


@pytest.mark.parametrize(("settings", "base", "expected"), RAMPS)
def test_step_rates(settings: dict[str, object], base: float, expected: list[float]) -> None:
    ramp = CapacityRamp.model_validate(settings)
    assert ramp.step_rates(base) == expected
    assert ramp.steps == len(expected)
    assert ramp.step_rates(base)[-1] <= ramp.max * base


def test_defaults() -> None:
    ramp = CapacityRamp()
    assert (ramp.step_s, ramp.start, ramp.growth, ramp.max, ramp.time_limit_s, ramp.min_goodput) == \
        (10.0, 0.5, 1.2, 4.0, 300.0, 0.95)


def _plan(tmp_path: Path, extra: str, modules: list[dict[str, object]] | None = None) -> Path:
    mods = modules or [{"name": "a", "rate": 10, "duration": "1s", "service": "api"},
                       {"name": "b", "vus": 3, "duration": "1s", "service": "api"},
                       {"name": "c", "rate": 5, "duration": "1s", "service": "other"}]
    return write_plan(tmp_path, "http://127.0.0.1:9", mods, extra="[services.api]\n[services.other]\n" + extra)


def test_capacity_modules_by_service_and_the_vus_module_needs_a_rate(tmp_path: Path) -> None:
    from core.plan import capacity_modules

    plan = load_plan(_plan(tmp_path, ""))
    with pytest.raises(BadInput) as err:
        capacity_modules(plan)
    assert "capacity.rates.b: module 'b' is planned with vus" in err.value.message
    assert str(plan.path) in err.value.message
    assert [m.name for m in capacity_modules(plan, ["other"])["other"]] == ["c"]  # b's service is not ramped
    with pytest.raises(BadInput, match="capacity: no module loads 'ghost'"):
        capacity_modules(plan, ["ghost"])
    plan = load_plan(_plan(tmp_path, "[capacity]\nrates = { b = 4 }\nservices = [\"api\"]\n"))
    by = capacity_modules(plan)
    assert list(by) == ["api"] and [m.name for m in by["api"]] == ["a", "b"]
    assert [plan.capacity_base_rate(m) for m in by["api"]] == [10, 4]


def test_a_ramp_of_one_step_is_refused(tmp_path: Path) -> None:
    from core.plan import capacity_modules

    plan = load_plan(_plan(tmp_path, '[capacity]\nstep = "10s"\ntime_limit = "15s"\n',
                           [{"name": "a", "rate": 10, "duration": "1s", "service": "api"}]))
    with pytest.raises(BadInput, match="the ramp has 1 step"):
        capacity_modules(plan)
