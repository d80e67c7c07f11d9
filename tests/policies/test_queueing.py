"""Erlang C against known values (the acceptance table) and its invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.cache import ttl_hit_ratio
from policies.queueing import erlang_b, erlang_c, max_rate, mean_wait_s, smallest_pool, wait_quantile_s


def test_acceptance_table_lambda_100_hold_50ms_target_10ms_gives_9() -> None:
    assert smallest_pool(100.0, 0.050, 0.010) == 9
    assert wait_quantile_s(9, 100.0, 0.050) * 1000 <= 10.0
    assert wait_quantile_s(8, 100.0, 0.050) * 1000 == pytest.approx(20.1, abs=0.5)
    assert wait_quantile_s(7, 100.0, 0.050) * 1000 == pytest.approx(46.7, abs=0.5)


def test_known_erlang_values() -> None:
    # M/M/1: P(wait) = rho; Erlang B(1, a) = a / (1 + a).
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    # Textbook: a = 2 Erlangs, c = 3 -> C = 4/9.
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    # M/M/1 mean wait: rho / (mu - lambda) = 0.5 / (10 - 5) s.
    assert mean_wait_s(1, 5.0, 0.1) == pytest.approx(0.1)


def test_unstable_queue_waits_forever() -> None:
    assert erlang_c(5, 5.0) == 1.0
    assert math.isinf(wait_quantile_s(5, 100.0, 0.05))
    assert math.isinf(mean_wait_s(2, 100.0, 0.05))


def test_smallest_pool_gives_up_above_limit() -> None:
    assert smallest_pool(1e6, 1.0, 0.001, limit=10) is None


def test_max_rate_is_the_inverse_of_smallest_pool() -> None:
    lam = max_rate(9, 0.050, 0.010)
    assert 100.0 <= lam < 9 / 0.050
    assert wait_quantile_s(9, lam, 0.050) <= 0.010 + 1e-9
    assert wait_quantile_s(9, lam * 1.01, 0.050) > 0.010


@given(rate=st.floats(1, 2000), hold_ms=st.floats(1, 500), target_ms=st.floats(1, 1000))
def test_smallest_pool_is_smallest(rate: float, hold_ms: float, target_ms: float) -> None:
    c = smallest_pool(rate, hold_ms / 1000, target_ms / 1000)
    assert c is not None
    assert wait_quantile_s(c, rate, hold_ms / 1000) <= target_ms / 1000
    if c > 1:
        assert wait_quantile_s(c - 1, rate, hold_ms / 1000) > target_ms / 1000


def test_ttl_hit_ratio() -> None:
    # lambda T = 4 -> 4/5; writes shorten the entry's life.
    assert ttl_hit_ratio(2.0, 2.0) == pytest.approx(0.8)
    assert ttl_hit_ratio(2.0, 2.0, write_rate_per_key=1.0) < 0.8
    assert ttl_hit_ratio(0.0, 30.0) == 0.0
