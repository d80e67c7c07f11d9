"""`loadbearing verify`'s tolerances (policies/verify.py), at and around each edge."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from core.plan import Compare, Slo
from policies.compare_stats import REGRESSED, UNCHANGED, judge_latency
from policies.verify import (
    HIT_RATIO_TOLERANCE,
    expected_hit_ratio,
    hit_ratio_problem,
    p95_bound,
    prediction_problems,
    regression_bound,
)

SLO = Slo(p95_ms=1000, max_error_rate=0.01)


@pytest.mark.parametrize(("predicted", "slo", "meets", "bound"), [
    (400.0, 1000.0, True, 600.0),       # 50 % over the prediction ...
    (60.0, 1000.0, True, 110.0),        # ... or 50 ms, whichever is larger
    (100.0, 1000.0, True, 150.0),       # the two agree at 100 ms
    (800.0, 1000.0, True, 1000.0),      # never above an SLO the prediction meets
    (800.0, 1000.0, False, 1200.0),     # unless the prediction said it would not meet it
    (1200.0, 1000.0, True, 1800.0),     # a prediction above the SLO is held to itself
])
def test_p95_bound(predicted: float, slo: float, meets: bool, bound: float) -> None:
    assert p95_bound(predicted, slo, meets) == pytest.approx(bound)


@pytest.mark.parametrize(("predicted", "measured", "problems"), [
    ({"p95_ms": 400}, {"p95_ms": 600, "error_rate": 0.0}, []),
    ({"p95_ms": 400}, {"p95_ms": 601, "error_rate": 0.0}, ["p95 601 ms > 600 ms allowed"]),
    ({"p95_ms": 400}, {"p95_ms": None, "error_rate": None}, []),                 # nothing measured: no claim
    ({}, {"p95_ms": 5000, "error_rate": 0.0}, []),                               # nothing predicted
    ({}, {"p95_ms": 10, "error_rate": 0.0101}, ["error rate 1.01% > 1.00%"]),    # the SLO's error budget
    ({"throughput_rps": 100}, {"throughput_rps": 95.0}, []),                    # 95 % of the prediction
    ({"throughput_rps": 100}, {"throughput_rps": 94.9}, ["throughput 94.9/s < 95.0/s"]),
    ({"p95_ms": 50, "throughput_rps": 40}, {"p95_ms": 120, "error_rate": 0.5, "throughput_rps": 10},
     ["p95 120 ms > 100 ms allowed", "error rate 50.00% > 1.00%", "throughput 10.0/s < 38.0/s"]),
])
def test_prediction_problems(predicted: dict[str, Any], measured: dict[str, Any], problems: list[str]) -> None:
    assert prediction_problems(predicted, measured, SLO) == problems


@pytest.mark.parametrize(("measured", "expected", "problem"), [
    (0.80, 0.80, None),
    (0.70, 0.80, None),                                       # within 10 points
    (0.69, 0.80, "svc cache hit ratio 0.69 vs expected 0.80"),
    (0.95, 0.80, "svc cache hit ratio 0.95 vs expected 0.80"),  # a surprise either way
    (0.50, None, None),                                       # nothing expected: counters suffice
    (None, 0.80, "no cache counters from svc (cache_gets_total scraped from its metrics_url) in the after run: "
                 "the hit ratio cannot be verified"),
])
def test_hit_ratio(measured: float | None, expected: float | None, problem: str | None) -> None:
    assert HIT_RATIO_TOLERANCE == 0.10
    assert hit_ratio_problem("svc", measured, expected) == problem


@pytest.mark.parametrize(("before", "rule", "bound"), [
    (1000.0, Compare(), 1100.0),   # 10 % worse and ...
    (100.0, Compare(), 150.0),     # ... 50 ms worse: the larger of the two binds
    (500.0, Compare(), 550.0),
    (0.0, Compare(), 50.0),
    (10.0, Compare(), 60.0),       # a 10 ms endpoint at 38 ms is noise on a shared machine, not a regression
    (100.0, Compare(p95_increase=0.5, min_effect_ms=0), 150.0),
    (100.0, Compare(p95_increase=0.0, min_effect_ms=5), 105.0),
])
def test_regression_bound_is_compares_rule(before: float, rule: Compare, bound: float) -> None:
    assert regression_bound(before, rule) == pytest.approx(bound)
    # one rule: `compare` calls a significant change up to the bound no change, and one beyond it a regression
    sure = SimpleNamespace(p_slower=1e-30, p_faster=1.0)
    assert judge_latency(before, bound, sure, rule, 0.01).verdict == UNCHANGED  # type: ignore[arg-type]
    assert judge_latency(before, bound + 0.01, sure, rule, 0.01).verdict == REGRESSED  # type: ignore[arg-type]


def _cache_doc(*recs: tuple[str, float, int, float]) -> dict[str, Any]:
    """A before run's document with cache recommendations (endpoint, expected hit ratio, caches, requests)."""
    return {"recommendations": [
        {"kind": "cache", "service": "read-api", "endpoint": ep, "ttl_s": 10, "expected_hit_ratio": h,
         "evidence": {"requests": n, "rate_per_key": 1.0, "write_rate_per_key": 0.0, "caches": c}}
        for ep, h, c, n in recs]}


@pytest.mark.parametrize(("doc", "after_caches", "expected"), [
    (_cache_doc(("a", 0.9, 1, 100)), 1, 0.9),
    # predicted for one cache, run as three instances with their own caches: each sees a key at a third
    # of its rate (1 key/s, 10 s TTL: 10/11 -> (10/3)/(13/3))
    (_cache_doc(("a", 0.9, 1, 100)), 3, round(0.9 * (10 / 13) / (10 / 11), 4)),
    # predicted for three (the count autoscaling sized), run with three: as predicted
    (_cache_doc(("a", 0.7, 3, 100)), 3, 0.7),
    # weighted by each endpoint's reads
    (_cache_doc(("a", 0.9, 1, 300), ("b", 0.5, 1, 100)), 1, 0.8),
    ({"recommendations": []}, 1, None),
])
def test_expected_hit_ratio_follows_the_caches_the_after_run_ran(doc: dict[str, Any], after_caches: int,
                                                                 expected: float | None) -> None:
    assert expected_hit_ratio(doc, "read-api", after_caches) == (
        pytest.approx(expected, abs=1e-4) if expected is not None else None)
