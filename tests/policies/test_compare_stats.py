"""The statistics of `loadbearing compare`, without InfluxDB: exact laws, known distributions,
the effect-size floor and the multiple-testing correction."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from core.percentile import nearest_rank, rank_of
from core.plan import Compare
from policies.compare_stats import (
    IMPROVED,
    REGRESSED,
    UNCHANGED,
    at_or_below_bound,
    judge_errors,
    judge_latency,
    latency_test,
    overall,
    per_test_alpha,
    quantile_test,
    rate_test,
)


def brute_force_law(n1: int, n2: int, pct: float) -> dict[int, float]:
    """P(M = m) by enumerating every interleaving of n1 baseline and n2 new values."""
    r = rank_of(n1, pct)
    counts: Counter[int] = Counter()
    for new in itertools.combinations(range(n1 + n2), n2):
        chosen = set(new)
        base = [i for i in range(n1 + n2) if i not in chosen]
        counts[sum(1 for i in new if i <= base[r - 1])] += 1
    total = sum(counts.values())
    return {m: c / total for m, c in counts.items()}


@pytest.mark.parametrize(("n1", "n2", "pct"), [(5, 4, 95), (7, 6, 50), (10, 5, 95), (6, 9, 90), (1, 3, 95),
                                                (3, 1, 95), (8, 8, 99)])
def test_quantile_test_tails_are_the_exact_permutation_law(n1: int, n2: int, pct: float) -> None:
    law = brute_force_law(n1, n2, pct)
    for m in range(n2 + 1):
        t = quantile_test(n1, n2, m, pct)
        assert t.p_slower == pytest.approx(sum(p for k, p in law.items() if k <= m), abs=1e-12)
        assert t.p_faster == pytest.approx(sum(p for k, p in law.items() if k >= m), abs=1e-12)


@pytest.mark.parametrize(("n", "pct", "rank"), [(0, 95, 0), (1, 95, 1), (10, 95, 10), (20, 95, 19), (100, 95, 95),
                                                (65, 95, 62), (8, 1, 0), (100, 50, 50), (3, 50, 2)])
def test_the_rank_is_influxdbs_percentile(n: int, pct: float, rank: int) -> None:
    # InfluxDB 1.x percentile(): the value at index floor(n * pct / 100 + 0.5) - 1 of the sorted values.
    assert rank_of(n, pct) == rank


def test_quantile_test_is_exact_for_a_million_requests_and_quick() -> None:
    # Nothing changed: M lands on its mean; both tails are about one half.
    t = quantile_test(1_000_000, 1_000_000, 950_000)
    assert t.p_slower == pytest.approx(0.5, abs=0.01) and t.p_faster == pytest.approx(0.5, abs=0.01)
    # 0.2 % of the new run moved above the baseline's p95: about 6.5 standard deviations.
    assert quantile_test(1_000_000, 1_000_000, 948_000).p_slower < 1e-9


def _sample(rng: random.Random, n: int, scale_ms: float, shift_ms: float = 0.0) -> list[float]:
    return [shift_ms + rng.lognormvariate(math.log(scale_ms), 0.6) for _ in range(n)]


def _nearest_rank_value(values: list[float], pct: float) -> float:
    value = nearest_rank(values, pct)
    assert value is not None
    return value


def _latency(base: list[float], new: list[float], pct: float = 95.0) -> tuple[float, float, float]:
    q_base, q_new = _nearest_rank_value(base, pct), _nearest_rank_value(new, pct)
    m = sum(1 for v in new if v <= q_base)
    exact = sum(1 for v in base if v <= q_new)
    t = latency_test(len(base), len(new), m, exact, pct)
    return q_base, q_new, t.p_slower if q_new >= q_base else t.p_faster


def test_same_lognormal_distribution_rarely_looks_different() -> None:
    """Known distribution, no change: the false-positive rate is at most the test's level
    (two-sided: each side at half of it, as `per_test_alpha` does)."""
    rng = random.Random(18)
    trials, level = 400, 0.05
    hits = 0
    for _ in range(trials):
        *_, p = _latency(_sample(rng, 200, 20.0), _sample(rng, 200, 20.0))
        hits += p < level / 2
    assert hits / trials <= level + 0.02  # binomial slack for 400 trials


def test_a_shifted_tail_is_found_and_a_faster_run_is_not_called_slower() -> None:
    rng = random.Random(7)
    base = _sample(rng, 300, 20.0)
    slower = _sample(rng, 300, 20.0, shift_ms=30.0)
    q_base, q_new, p = _latency(base, slower)
    assert q_new > q_base and p < 1e-9
    faster = _sample(rng, 300, 10.0)
    q_base, q_new, p = _latency(base, faster)
    t = latency_test(len(base), len(faster), sum(1 for v in faster if v <= q_base),
                     sum(1 for v in base if v <= q_new))
    assert q_new < q_base and t.p_faster < 1e-6 and t.p_slower > 0.5


def test_a_better_median_with_a_worse_tail_is_slower_at_p95() -> None:
    """What Mann-Whitney would call an improvement: 85 % much faster, 15 % much slower."""
    rng = random.Random(3)
    base = _sample(rng, 400, 50.0)
    new = [v / 5 for v in _sample(rng, 340, 50.0)] + [v * 10 for v in _sample(rng, 60, 50.0)]
    assert _nearest_rank_value(new, 50) < _nearest_rank_value(base, 50) / 3
    q_base, q_new, p = _latency(base, new)
    assert q_new > q_base and p < 1e-4


def test_the_improvement_side_bound_from_a_ladder_only_errs_towards_no_change() -> None:
    rng = random.Random(11)
    base = sorted(_sample(rng, 500, 40.0))
    ladder = [(pct, _nearest_rank_value(base, pct)) for pct in (1, 5, 10, 25, 50, 75, 90, 95, 99)]
    for x in (1.0, 15.0, 33.3, 40.0, 58.0, 90.0, 500.0):
        exact = sum(1 for v in base if v <= x)
        bound = at_or_below_bound(ladder, len(base), x)
        assert exact <= bound
    assert at_or_below_bound(ladder, 500, 10_000.0) == 500
    assert at_or_below_bound([(95.0, None), (99.0, 7.0)], 10, 5.0) == rank_of(10, 99) - 1


@pytest.mark.parametrize(("f1", "n1", "f2", "n2"), [(0, 10, 0, 10), (1, 10, 5, 10), (3, 20, 0, 15), (2, 5, 5, 5),
                                                    (0, 1000, 12, 1000)])
def test_fisher_tails_are_the_hypergeometric_law(f1: int, n1: int, f2: int, n2: int) -> None:
    k, total = f1 + f2, n1 + n2
    law = {x: math.comb(k, x) * math.comb(total - k, n2 - x) / math.comb(total, n2) for x in range(0, min(k, n2) + 1)}
    t = rate_test(f1, n1, f2, n2)
    assert t.p_higher == pytest.approx(sum(p for x, p in law.items() if x >= f2), abs=1e-12)
    assert t.p_lower == pytest.approx(sum(p for x, p in law.items() if x <= f2), abs=1e-12)


DEFAULTS = Compare()


def _judge(base_ms: float, new_ms: float, p_slower: float, p_faster: float, tol: Compare = DEFAULTS,
           alpha_1: float = 0.001) -> str:
    # Counts that give the wanted p-values are beside the point here: stub the test object.
    class T:
        pass

    t = T()
    t.p_slower, t.p_faster = p_slower, p_faster  # type: ignore[attr-defined]
    return judge_latency(base_ms, new_ms, t, tol, alpha_1).verdict  # type: ignore[arg-type]


@pytest.mark.parametrize(("base", "new", "p_slower", "p_faster", "tol", "verdict"), [
    # significant and beyond 10 % and 50 ms: regressed / improved
    (100.0, 200.0, 1e-9, 1.0, DEFAULTS, REGRESSED),
    (2000.0, 100.0, 1.0, 1e-9, DEFAULTS, IMPROVED),
    # the floor: +40 ms is 40 % but under 50 ms, however significant
    (100.0, 140.0, 1e-30, 1.0, DEFAULTS, UNCHANGED),
    # the tolerance: +80 ms on 1 s is beyond the floor but within 10 %
    (1000.0, 1080.0, 1e-30, 1.0, DEFAULTS, UNCHANGED),
    # beyond both, but not significant (few requests)
    (20.0, 400.0, 0.01, 1.0, DEFAULTS, UNCHANGED),
    # a plan with a tighter floor and tolerance flags the same +40 ms
    (100.0, 140.0, 1e-30, 1.0, Compare(min_effect_ms=10, p95_increase=0.2), REGRESSED),
    # the significance is judged on the side the change went
    (100.0, 300.0, 1.0, 1e-30, DEFAULTS, UNCHANGED),
], ids=["regressed", "improved", "under-floor", "within-tolerance", "not-significant", "plan-floor", "wrong-side"])
def test_effect_size_floor_tolerance_and_significance(base: float, new: float, p_slower: float, p_faster: float,
                                                      tol: Compare, verdict: str) -> None:
    assert _judge(base, new, p_slower, p_faster, tol) == verdict


@pytest.mark.parametrize(("f1", "f2", "n", "verdict"), [
    (0, 60, 1000, REGRESSED),     # 0 % -> 6 %: significant, beyond 0.5 points
    (0, 4, 1000, UNCHANGED),      # 0.4 points: within the tolerance
    (0, 2, 20, UNCHANGED),        # 10 % of 20 requests: beyond the tolerance, not significant
    (80, 0, 1000, IMPROVED),
])
def test_error_rate_judgement(f1: int, f2: int, n: int, verdict: str) -> None:
    assert judge_errors(rate_test(f1, n, f2, n), DEFAULTS, per_test_alpha(0.01, 10)).verdict == verdict


def test_bonferroni_splits_alpha_over_tests_and_sides() -> None:
    assert per_test_alpha(0.01, 20) == pytest.approx(0.01 / 40)
    assert per_test_alpha(0.01, 0) == pytest.approx(0.005)


def test_overall_verdict() -> None:
    assert overall([UNCHANGED, IMPROVED, REGRESSED]) == REGRESSED
    assert overall([UNCHANGED, IMPROVED]) == IMPROVED
    assert overall([]) == UNCHANGED


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        quantile_test(0, 5, 0)
    with pytest.raises(ValueError):
        quantile_test(5, 5, 6)
    with pytest.raises(ValueError):
        rate_test(3, 2, 0, 5)
    with pytest.raises(ValueError, match="too few"):
        quantile_test(8, 5, 0, pct=1)
