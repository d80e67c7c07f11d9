"""verify's judgement of an applied instance count: measured vs predicted capacity per instance, the
peak carried at the target utilisation, the SLO at that count, the connection budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import BadInput
from core.plan import Slo
from core.rundir import RunDir, RunRecord
from policies.inputs import load_run, with_capacity_run
from policies.verify import CAPACITY_TOLERANCE, instance_problems

BASE: dict[str, Any] = {"applied": 3, "peak_rps": 45.0, "predicted_rps": 22.5, "measured_rps": 21.6,
                        "measured_is_lower_bound": False, "utilisation": 0.7, "slo_ok": True,
                        "pool_per_instance": 2, "db_max_connections": 100}

# (changes to BASE, expected problems as substrings; [] = the count delivers)
CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, []),                                                            # the demo's shipping-api, as sized
    ({"applied": 2}, ["2 instance(s) x 22.5 req/s per instance (predicted; measured 21.6) at 70% target "
                      "utilisation carry 31.5 req/s < the plan's peak of 45.0 req/s: 3 are needed"]),
    ({"measured_rps": 15.0}, ["capacity per instance measured 15.0 req/s, predicted 22.5"]),  # did not scale
    ({"measured_rps": 18.0}, []),                                       # 20 % below: within the tolerance
    ({"measured_rps": 22.5 * (1 + CAPACITY_TOLERANCE) + 0.1}, ["more than 25% apart"]),  # a surprise either way
    ({"measured_rps": 40.0, "measured_is_lower_bound": True}, []),     # a lower bound above: not a contradiction
    ({"applied": 2, "measured_rps": 25.0, "measured_is_lower_bound": True},
     ["2 instance(s) x 22.5 req/s per instance (predicted; measured at least 25.0)"]),
    ({"measured_rps": None}, []),                                        # nothing measured: the prediction stands
    ({"slo_ok": False}, ["the SLO is not met at 3 instance(s)"]),
    ({"pool_per_instance": 40}, ["3 x 40 connections exceed the database's budget of 90 (100 - 10 reserved)"]),
    ({"utilisation": 1.0, "applied": 1, "peak_rps": 70.8, "predicted_rps": 89.0, "measured_rps": 95.0,
      "measured_is_lower_bound": True}, []),                             # core-api: a lower bound at one instance
]


@pytest.mark.parametrize(("changes", "expected"), CASES)
def test_instance_verdicts(changes: dict[str, Any], expected: list[str]) -> None:
    problems = instance_problems(**{**BASE, **changes})
    assert bool(problems) == bool(expected), problems
    for want in expected:
        assert any(want in p for p in problems), (want, problems)


def test_a_capacity_run_option_that_is_not_a_capacity_run_is_refused(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "20260101T000000Z-parallel-abcd")
    rd.write_record(RunRecord(run_id=rd.path.name, testid=rd.path.name, strategy="parallel", plan="plan.toml",
                              slo=Slo(p95_ms=500, max_error_rate=0.01), started_at="2026-01-01T00:00:00.000Z",
                              ended_at="2026-01-01T00:01:00.000Z"), complete=True)
    with pytest.raises(BadInput, match=r"--capacity .*: not a capacity run"):
        with_capacity_run(load_run(rd), rd)


def test_convergence_counts_only_the_settings_the_loop_changed() -> None:
    from types import SimpleNamespace

    from policies.verify import _material_changes

    plan = SimpleNamespace(services={"core-api": SimpleNamespace(db_pool_size=10, instances=1, cache_ttl_s=0),
                                     "shipping-api": SimpleNamespace(db_pool_size=2, instances=3, cache_ttl_s=0)})
    after = {"recommendations": [{"kind": "db_pool", "service": "core-api", "recommended": 2},
                                 {"kind": "autoscaling", "service": "shipping-api", "instances": 4}]}
    # the before run gave core-api no pool advice: a smaller pool now is the next step, not a moved setting
    moved, new = _material_changes(after, plan, {("autoscaling", "shipping-api")})
    assert moved == ["instances shipping-api: 3 -> 4"] and new == ["db_pool core-api: 10 -> 2"]
    moved, new = _material_changes(after, plan, {("db_pool", "core-api")})
    assert moved == ["db_pool core-api: 10 -> 2"] and new == ["instances shipping-api: 3 -> 4"]
