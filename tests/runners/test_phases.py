"""`strategies.phases`: which modules run together, in which order, with which recovery."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import BadInput
from core.plan import Plan
from runners.strategies import Phase, phases


def _plan(strategies: dict[str, Any] | None = None, names: tuple[str, ...] = ("a", "b", "c")) -> Plan:
    return Plan.model_validate({
        "name": "p", "target": {"base_url": "http://127.0.0.1:1", "allow_hosts": ["127.0.0.1"]},
        "slo": {"p95_ms": 500, "max_error_rate": 0.01},
        "modules": [{"name": n, "script": f"{n}.js", "rate": 1, "duration": "1s"} for n in names],
        "strategies": strategies or {}})


@pytest.mark.parametrize(("strategies", "strategy", "expected"), [
    ({}, "sequential", [Phase("sequential-1-a", ("a",)), Phase("sequential-2-b", ("b",)),
                        Phase("sequential-3-c", ("c",))]),
    ({"sequential": {"recovery": "5s"}}, "sequential",
     [Phase("sequential-1-a", ("a",)), Phase("sequential-2-b", ("b",), 5.0), Phase("sequential-3-c", ("c",), 5.0)]),
    ({"hybrid": {"groups": [["c", "a"], ["b"]], "recovery": "1m"}}, "hybrid",
     [Phase("hybrid-group-1", ("c", "a")), Phase("hybrid-group-2", ("b",), 60.0)]),
    ({"hybrid": {"groups": [["a", "b", "c"]]}}, "hybrid", [Phase("hybrid-group-1", ("a", "b", "c"))]),
    ({}, "parallel", [Phase("parallel", ("a", "b", "c"))]),
    ({"sequential": {"recovery": "5s"}, "hybrid": {"groups": [["a"], ["b", "c"]], "recovery": "9s"}}, "parallel",
     [Phase("parallel", ("a", "b", "c"))]),                   # parallel has no recovery: one phase
])
def test_phases(strategies: dict[str, Any], strategy: str, expected: list[Phase]) -> None:
    assert phases(_plan(strategies), strategy) == expected


def test_one_module_is_one_phase_whatever_the_strategy() -> None:
    plan = _plan({"hybrid": {"groups": [["a"]]}}, names=("a",))
    assert [p.modules for s in ("sequential", "hybrid", "parallel") for p in phases(plan, s)] == [("a",)] * 3


@pytest.mark.parametrize(("strategies", "strategy", "message"), [
    ({}, "hybrid", "the hybrid strategy needs groups"),
    ({}, "random", "unknown strategy 'random'; use one of: sequential, hybrid, parallel"),
])
def test_strategies_the_plan_cannot_run(strategies: dict[str, Any], strategy: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        phases(_plan(strategies), strategy)
