"""The instance arithmetic: peak rate, capacity per instance, target utilisation, min/max, the
connection budget, and a lower bound that never adds instances beyond what it covers."""

from __future__ import annotations

import pytest

from policies.instances import size_instances

# peak req/s, capacity req/s per instance, lower bound?, pool per instance, db_max_connections
#   -> needed, min, max, target req/s per instance, db limit, capped
CASES = [
    # the demo's shipping-api: 45 req/s, a knee of 22.5 per instance: 45 / (22.5 x 0.7) = 2.86 -> 3
    ((45, 22.5, False, None, None), (3, 2, 5, 15.75, None, False)),
    # exactly at the target: 31.5 / (45 x 0.7) = 1.0 -> 1 (no rounding up past an exact fit)
    ((31.5, 45, False, None, None), (1, 1, 2, 31.5, None, False)),
    # a little above it: 2
    ((31.6, 45, False, None, None), (2, 1, 3, 31.5, None, False)),
    # a small peak still needs one instance
    ((0.5, 100, False, None, None), (1, 1, 2, 70.0, None, False)),
    # the budget binds: 100 - 10 reserved = 90 / 20 per pool = 4 instances at most, below the 8 needed
    ((100, 20, False, 20, 100), (4, 4, 4, 14.0, 4, True)),
    # the budget is roomy: 10 x 5 = 50 <= 90
    ((45, 22.5, False, 10, 100), (3, 2, 5, 15.75, 9, False)),
    # the budget binds max but leaves needed: 30 - 3 reserved = 27 / 5 = 5 >= 3 needed
    ((45, 22.5, False, 5, 30), (3, 2, 5, 15.75, 5, False)),
    # ... and one pool more per instance: 27 / 6 = 4 < 5
    ((45, 22.5, False, 6, 30), (3, 2, 4, 15.75, 4, True)),
    # a small database: the reserve is at least 3 connections (10 - 3 = 7 / 2 = 3, below the 7 needed)
    ((45, 10, False, 2, 10), (3, 3, 3, 7.0, 3, True)),
    # lower bound: core-api carried 89 req/s per instance within the SLO at a 70.8 req/s peak;
    # the knee was never reached, so the lower bound alone covers the peak: 1, not 2
    ((70.8, 89, True, None, None), (1, 1, 2, 89.0, None, False)),
    # lower bound measured at 3 instances carrying 45 req/s (14.9 each, a bucket's reading): still 3
    ((45, 14.9, True, None, None), (3, 2, 5, 14.9, None, False)),
    # lower bound below the peak: the fewest instances that carry it at the lower bound each, no headroom
    ((100, 30, True, None, None), (4, 2, 6, 30.0, None, False)),
]


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_instance_arithmetic(given: tuple[float, float, bool, int | None, int | None],
                             expected: tuple[int, int, int, float, int | None, bool]) -> None:
    peak, capacity, lower, pool, max_conn = given
    s = size_instances(peak, capacity, lower_bound=lower, pool_per_instance=pool, db_max_connections=max_conn)
    assert (s.needed, s.min_instances, s.max_instances, round(s.target_rps, 3), s.db_limit, s.capped) == expected
    assert s.min_instances <= s.max_instances
    if s.db_limit is not None and pool is not None:
        assert s.max_instances * pool <= (max_conn or 0) - max(3, -(-(max_conn or 0) // 10))
    if not s.capped:  # the needed instances carry the peak at the target (a lower bound: within its slack)
        assert s.carries_rps * (1.05 if lower else 1.0) >= peak * (1 - 1e-9)


def test_a_budget_below_the_peak_cuts_needed_and_says_so() -> None:
    s = size_instances(200, 10, pool_per_instance=10, db_max_connections=50)  # (50 - 5) / 10 = 4 < 29
    assert (s.needed, s.max_instances, s.capped) == (4, 4, True)
    assert "below the 29 instances the peak needs, so 4 it is" in s.note and "connection pooler" in s.note
    assert s.carries_rps < 200


def test_bad_numbers_are_refused() -> None:
    with pytest.raises(ValueError):
        size_instances(10, 0)
