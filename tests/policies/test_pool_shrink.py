"""When the pool policy recommends a smaller pool: far larger than needed, and holding connections that matter.

The demo's core-api (a pool of 10 on one instance, 0.5-0.8 Erlangs offered, a database of 100
connections) was told to shrink to 2 or 4 in some runs and not in others: the gauge of connections
in use, sampled once a second, peaked at 1, 2 or 3 from one run to the next, and the check-out
wait measured by the service (0.1 to 20 ms, with 8 of its 10 connections idle) crossed 1 ms in some.
A pool that frees nothing scarce is kept, so the same load gets the same advice.
"""

from __future__ import annotations

import pytest

from policies.pool import smaller_pool

KEPT = "kept"   # far larger than needed, kept (and said so)


@pytest.mark.parametrize(("current", "needed", "used_peak", "fleet", "budget", "expected"), [
    # the demo's core-api, whatever the sampled peak: 10 of 97 connections are not scarce
    (10, 2, 1.0, 1, 97, KEPT),
    (10, 2, 2.0, 1, 97, KEPT),
    (10, 2, 3.0, 1, 97, None),            # twice the peak (6) is not far below 10: nothing to say
    (10, 3, None, 2, 97, KEPT),           # 20 of 97: still under a quarter
    # the same pool on three instances holds 30 of 97: worth freeing, to twice the peak in use
    (10, 2, 2.0, 3, 97, 4),
    (10, 2, 0.0, 3, 97, 2),
    (10, 2, 3.0, 3, 97, None),
    # an idle pool of 50 on a database of 90 usable connections
    (50, 3, 1.0, 1, 90, 3),
    (50, 3, 20.0, 1, 90, None),           # 20 in use at one scrape: never below 40, not far below 50
    # the edge of "far larger": at least twice, and at least two connections fewer
    (4, 2, None, 10, 97, 2),
    (3, 1, None, 10, 27, 1),
    (3, 2, None, 10, 27, None),           # under twice what is needed
    (5, 4, None, 10, 27, None),
    (2, 1, None, 10, 7, None),            # twice, but not two fewer
    (6, 3, None, 5, 90, 3),
    (5, 3, None, 5, 90, None),
    # the edge of "scarce": a quarter of the budget
    (25, 5, None, 1, 100, 5),
    (24, 5, None, 1, 100, KEPT),
    # no budget declared: what a smaller pool frees cannot be weighed
    (50, 3, 1.0, 1, None, KEPT),
])
def test_smaller_pool(current: int, needed: int, used_peak: float | None, fleet: int, budget: int | None,
                      expected: int | str | None) -> None:
    got, why = smaller_pool(current, needed, used_peak, fleet, budget)
    assert got == (expected if isinstance(expected, int) else None)
    assert (why is not None) == (expected == KEPT)
    if why is not None:
        assert f"pool of {current}" in why and "kept" in why


def test_a_kept_pool_says_how_much_of_the_budget_it_holds() -> None:
    got, why = smaller_pool(10, 2, 1.0, 1, 97)
    assert got is None and why is not None
    assert "10 of the database's 97 connections" in why and "25%" in why
    got, why = smaller_pool(50, 3, 1.0, 1, None)
    assert got is None and why is not None and "db_max_connections" in why
