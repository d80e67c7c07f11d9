"""`k6.scenario`: the plan's load shape as the k6 scenario every runner of a module gets."""

from __future__ import annotations

from typing import Any

import pytest

from core.plan import Module
from runners import k6

STOP = {"gracefulStop": "30s"}


@pytest.mark.parametrize(("shape", "scenario"), [
    # closed model: constant VUs, or ramping from `vus` through the stages
    ({"vus": 300, "duration": "60s"}, {"executor": "constant-vus", "vus": 300, "duration": "60s", **STOP}),
    ({"vus": 10, "stages": [{"duration": "30s", "target": 50}, {"duration": "1m", "target": 0}]},
     {"executor": "ramping-vus", "startVUs": 10, "gracefulRampDown": "30s", **STOP,
      "stages": [{"duration": "30s", "target": 50}, {"duration": "1m", "target": 0}]}),
    # open model: iterations/s; every VU initialised before the start (preAllocated = max)
    ({"rate": 150, "duration": "90s"},
     {"executor": "constant-arrival-rate", "rate": 150, "timeUnit": "1s", "duration": "90s",
      "preAllocatedVUs": 300, "maxVUs": 300, **STOP}),                      # default: 2 s of iterations
    ({"rate": 150, "max_vus": 40, "duration": "60s"},
     {"executor": "constant-arrival-rate", "rate": 150, "timeUnit": "1s", "duration": "60s",
      "preAllocatedVUs": 40, "maxVUs": 40, **STOP}),
    ({"rate": 2, "duration": "10s"},
     {"executor": "constant-arrival-rate", "rate": 2, "timeUnit": "1s", "duration": "10s",
      "preAllocatedVUs": 10, "maxVUs": 10, **STOP}),                        # at least 10 VUs
    ({"rate": 0.5, "duration": "10s"},                                      # k6 wants whole iterations per unit
     {"executor": "constant-arrival-rate", "rate": 5, "timeUnit": "10s", "duration": "10s",
      "preAllocatedVUs": 10, "maxVUs": 10, **STOP}),
    ({"rate": 12.25, "max_vus": 50, "duration": "1m"},
     {"executor": "constant-arrival-rate", "rate": 1225, "timeUnit": "100s", "duration": "60s",
      "preAllocatedVUs": 50, "maxVUs": 50, **STOP}),
    ({"rate": 10, "max_vus": 100, "stages": [{"duration": "20s", "target": 40.5}, {"duration": "20s", "target": 5}]},
     {"executor": "ramping-arrival-rate", "startRate": 100, "timeUnit": "10s", "preAllocatedVUs": 100,
      "maxVUs": 100, **STOP,
      "stages": [{"duration": "20s", "target": 405}, {"duration": "20s", "target": 50}]}),
])
def test_scenario(shape: dict[str, Any], scenario: dict[str, Any]) -> None:
    assert k6.scenario(Module.model_validate({"name": "m", "script": "m.js", **shape})) == scenario


@pytest.mark.parametrize(("rates", "unit"), [
    ([1.0], 1), ([150.0, 300.0], 1), ([0.5], 10), ([0.25, 3.0], 100), ([0.125], 1000), ([1 / 3], 1000),
])
def test_time_unit(rates: list[float], unit: int) -> None:
    assert k6.time_unit(rates) == unit


def test_config_carries_the_scenario_the_trimmed_tags_and_the_block_list() -> None:
    module = Module.model_validate({"name": "m", "script": "m.js", "vus": 1, "duration": "1s"})
    cfg = k6.config(module, {"blacklistIPs": ["0.0.0.0/0"]})
    assert cfg["scenarios"] == {k6.SCENARIO: k6.scenario(module)}
    assert cfg["blacklistIPs"] == ["0.0.0.0/0"] and cfg["noUsageReport"] is True
    assert "url" in cfg["systemTags"] and "vu" not in cfg["systemTags"]
