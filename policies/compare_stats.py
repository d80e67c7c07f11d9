"""The statistics behind `loadbearing compare`: pure functions, no I/O, no InfluxDB.

Latency: the control quantile test
----------------------------------
The gate is on p95, so the test is about p95. Take the baseline's p95 `q` (InfluxDB's
nearest-rank percentile: the r-th smallest of its n1 durations, r = floor(n1 x 0.95 + 0.5)).
InfluxDB counts how many of the new run's n2 requests took at most `q`: M. If nothing
changed, M is close to n2 x r / (n1 + 1), i.e. about 95 % of the new run; a p95 that
moved up leaves fewer requests below `q`, one that moved down leaves more.

Under "both runs draw from the same latency distribution" the law of M does not depend
on that distribution (it is a statement about ranks): of the C(n1+n2, n2) equally likely
interleavings of the two samples, those with exactly m new requests below the baseline's
r-th value number C(r-1+m, m) x C(n1+n2-r-m, n2-m). `quantile_test` sums that law's
tails exactly (no normal approximation), so it is as valid for 20 requests as for a
million. This is the control quantile test (Mathisen's control median test, at the 95th
percentile instead of the 50th).

Anchored at the baseline's p95, the test is strong against "slower" (many new requests
above it) but weak against "faster": only the ~5 % of baseline requests above its p95
can be beaten. So `latency_test` asks the faster question the other way round, anchored
at the new run's p95: how many *baseline* requests took at most the new run's p95? A
pinned baseline keeps no samples, only its percentile ladder (`at_or_below_bound`), so
that count is bounded from above by the ladder, which can only make "faster" harder to
claim, never easier.

Why not Mann-Whitney U on the durations: it asks whether requests are *generally*
slower, which can disagree with p95. A cache that makes 90 % of requests faster and 10 %
much slower has a better U and a far worse p95; a gate on p95 must not call that an
improvement. Why not a bootstrap over per-second p95s: with the short runs CI can afford
there are a few dozen buckets of a few requests each, and the estimate is noisy where it
matters. The quantile test uses every request and needs two numbers from InfluxDB.

Error rate: Fisher's exact test on the 2x2 table (failed / succeeded per run), one
tail per direction, summed exactly from the hypergeometric law.

Both tests treat requests as independent. Requests of a load test are not (a queue
slows neighbours together), so p-values are optimistic, and on a shared machine the
same plan run twice really does differ. That is what the effect-size floor is for: a
change fails a build only when it is significant (family-wise `alpha`, Bonferroni over
every endpoint and metric, two-sided) *and* larger than the plan's tolerance *and*
larger than an absolute floor (`min_effect_ms` for latency). The tolerances are the
plan's `[compare]` table (`core.plan.Compare`, which holds the defaults).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from core.percentile import rank_of
from core.plan import Compare

Verdict = Literal["regressed", "improved", "no significant change"]
REGRESSED: Verdict = "regressed"
IMPROVED: Verdict = "improved"
UNCHANGED: Verdict = "no significant change"

# Terms smaller than this share of the running tail sum are dropped.
_EPS = 1e-17


def _log_comb(n: int, k: int) -> float:
    if k < 0 or k > n:
        return -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _tail(log_pmf: Callable[[int], float], start: int, stop: int, step: int) -> float:
    """sum(exp(log_pmf(m))) for m from `start` towards `stop` (inclusive) in `step`s.

    The laws here are unimodal, so once terms shrink they keep shrinking: the sum stops
    when a term is both smaller than the previous one and negligible.
    """
    total = 0.0
    ref: float | None = None
    previous = math.inf
    m = start
    while (m <= stop) if step > 0 else (m >= stop):
        lp = log_pmf(m)
        if lp > -math.inf:
            if ref is None:
                ref = lp
            term = math.exp(lp - ref)
            total += term
            if term < previous and term < _EPS * total:
                break
            previous = term
        m += step
    if ref is None:
        return 0.0
    return min(1.0, total * math.exp(ref))


def _two_tails(log_pmf: Callable[[int], float], lo: int, hi: int, observed: int,
               mean: float) -> tuple[float, float]:
    """(P(X <= observed), P(X >= observed)), each summed from the side away from the mode."""
    if observed <= mean:
        below = _tail(log_pmf, observed, lo, -1)
        above = 1.0 - _tail(log_pmf, observed - 1, lo, -1) if observed > lo else 1.0
    else:
        above = _tail(log_pmf, observed, hi, 1)
        below = 1.0 - _tail(log_pmf, observed + 1, hi, 1) if observed < hi else 1.0
    return min(1.0, max(0.0, below)), min(1.0, max(0.0, above))


@dataclass(frozen=True)
class QuantileTest:
    """The control quantile test of one percentile: baseline n1 and rank r, new run n2 and M."""

    pct: float
    n1: int
    rank: int
    n2: int
    at_or_below: int            # M: new-run requests that took at most the baseline's value
    p_slower: float             # P(M <= observed): small when the new run is slower at this percentile
    p_faster: float             # P(M >= observed): small when it is faster

    @property
    def expected(self) -> float:
        """E[M] when nothing changed."""
        return self.n2 * self.rank / (self.n1 + 1)

    @property
    def share_above(self) -> float:
        """Share of the new run slower than the baseline's value (about 1 - pct/100 when unchanged)."""
        return 1.0 - self.at_or_below / self.n2 if self.n2 else 0.0


def quantile_test(n1: int, n2: int, at_or_below: int, pct: float = 95.0) -> QuantileTest:
    """Exact control quantile test: the baseline's nearest-rank `pct` percentile of n1 requests,
    and `at_or_below` of the new run's n2 requests that took at most that value."""
    if n1 < 1 or n2 < 1:
        raise ValueError("both runs need at least one request")
    if not 0 <= at_or_below <= n2:
        raise ValueError(f"at_or_below={at_or_below} is outside 0..{n2}")
    r = rank_of(n1, pct)
    if r == 0:
        raise ValueError(f"too few baseline requests ({n1}) for a p{pct:g}")
    total = n1 + n2
    log_norm = _log_comb(total, n2)

    def log_pmf(m: int) -> float:
        return _log_comb(r - 1 + m, m) + _log_comb(total - r - m, n2 - m) - log_norm

    slower, faster = _two_tails(log_pmf, 0, n2, at_or_below, n2 * r / (n1 + 1))
    return QuantileTest(pct, n1, r, n2, at_or_below, slower, faster)


def at_or_below_bound(ladder: Iterable[tuple[float, float | None]], n: int, x: float) -> int:
    """An upper bound of how many of n values are <= x, from (pct, nearest-rank percentile value)
    pairs: the first percentile whose value exceeds x has rank r, so at most r - 1 values are <= x."""
    for pct, value in sorted((p, v) for p, v in ladder if v is not None):
        if value > x:
            return rank_of(n, pct) - 1
    return n


@dataclass(frozen=True)
class LatencyTest:
    """Both one-sided questions about one percentile of the two runs."""

    slower: QuantileTest         # control = baseline: new-run requests at or below the baseline's value (exact)
    faster: QuantileTest         # control = new run: baseline requests at or below the new run's value (bound)

    @property
    def pct(self) -> float:
        return self.slower.pct

    @property
    def p_slower(self) -> float:
        return self.slower.p_slower

    @property
    def p_faster(self) -> float:
        return self.faster.p_slower

    @property
    def share_above(self) -> float:
        return self.slower.share_above

    @property
    def expected_share_above(self) -> float:
        return 1.0 - self.slower.expected / self.slower.n2


def latency_test(n_base: int, n_run: int, run_at_or_below_base: int, base_at_or_below_run: int,
                 pct: float = 95.0) -> LatencyTest:
    """`run_at_or_below_base`: new-run requests <= the baseline's `pct` percentile (counted);
    `base_at_or_below_run`: baseline requests <= the new run's `pct` percentile (an upper bound)."""
    return LatencyTest(quantile_test(n_base, n_run, run_at_or_below_base, pct),
                       quantile_test(n_run, n_base, base_at_or_below_run, pct))


@dataclass(frozen=True)
class RateTest:
    """Fisher's exact test of two failure counts."""

    failed1: int
    n1: int
    failed2: int
    n2: int
    p_higher: float             # P(X >= failed2): small when the new run fails more often
    p_lower: float              # P(X <= failed2): small when it fails less often

    @property
    def rate1(self) -> float:
        return self.failed1 / self.n1 if self.n1 else 0.0

    @property
    def rate2(self) -> float:
        return self.failed2 / self.n2 if self.n2 else 0.0


def rate_test(failed1: int, n1: int, failed2: int, n2: int) -> RateTest:
    """Fisher's exact test: under equal rates, failed2 given all failures is hypergeometric."""
    if n1 < 1 or n2 < 1:
        raise ValueError("both runs need at least one request")
    if not (0 <= failed1 <= n1 and 0 <= failed2 <= n2):
        raise ValueError("failures must be between 0 and the number of requests")
    k = failed1 + failed2
    total = n1 + n2
    lo, hi = max(0, k - n1), min(k, n2)
    log_norm = _log_comb(total, n2)

    def log_pmf(x: int) -> float:
        return _log_comb(k, x) + _log_comb(total - k, n2 - x) - log_norm

    lower, higher = _two_tails(log_pmf, lo, hi, failed2, n2 * k / total)
    return RateTest(failed1, n1, failed2, n2, higher, lower)


def per_test_alpha(alpha: float, tests: int) -> float:
    """Bonferroni, two-sided: each one-sided p-value is compared with alpha / (2 x tests)."""
    return alpha / (2 * max(1, tests))


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    why: str


def show_p(p: float) -> str:
    """A p-value for people: three significant digits, and below what a float holds, a bound."""
    return f"{p:.2g}" if p > 0 else "< 1e-300"


def p95_allowance_ms(base_ms: float, tol: Compare) -> float:
    """How far a p95 may move from the baseline's `base_ms` and still count as no change: the
    relative tolerance or the absolute floor, whichever is larger (`verify` uses it too)."""
    return max(tol.p95_increase * base_ms, tol.min_effect_ms)


def judge_latency(base_ms: float, new_ms: float, test: LatencyTest, tol: Compare,
                  per_test_alpha: float) -> Judgement:
    """Regressed / improved only when the p95 change is significant, beyond the relative
    tolerance and beyond the absolute floor; otherwise say which of the three it missed."""
    delta = new_ms - base_ms
    needed = p95_allowance_ms(base_ms, tol)
    p = test.p_slower if delta > 0 else test.p_faster
    significant = p < per_test_alpha
    if abs(delta) <= needed:
        rule = ("the floor" if tol.min_effect_ms >= tol.p95_increase * base_ms
                else f"the tolerance ({tol.p95_increase:.0%})")
        return Judgement(UNCHANGED, f"p95 {delta:+.1f} ms is within {rule} of ±{needed:.1f} ms")
    if not significant:
        return Judgement(UNCHANGED, f"p95 {delta:+.1f} ms is not significant (p = {show_p(p)} >= {per_test_alpha:.2g})")
    verdict = REGRESSED if delta > 0 else IMPROVED
    return Judgement(verdict, f"p95 {delta:+.1f} ms (beyond ±{needed:.1f} ms), p = {show_p(p)}")


def judge_errors(test: RateTest, tol: Compare, per_test_alpha: float) -> Judgement:
    """Regressed / improved only when the error-rate change is significant and beyond the tolerance."""
    delta = test.rate2 - test.rate1
    p = test.p_higher if delta > 0 else test.p_lower
    if abs(delta) <= tol.error_rate_increase:
        return Judgement(UNCHANGED, f"error rate {delta:+.2%} is within the tolerance of "
                                    f"±{tol.error_rate_increase:.2%}")
    if p >= per_test_alpha:
        return Judgement(UNCHANGED, f"error rate {delta:+.2%} is not significant "
                                    f"(p = {show_p(p)} >= {per_test_alpha:.2g})")
    verdict = REGRESSED if delta > 0 else IMPROVED
    return Judgement(verdict, f"error rate {delta:+.2%} (beyond ±{tol.error_rate_increase:.2%}), p = {show_p(p)}")


def overall(verdicts: list[Verdict]) -> Verdict:
    """An endpoint regressed when any gated metric did; improved when one did and none regressed."""
    if REGRESSED in verdicts:
        return REGRESSED
    if IMPROVED in verdicts:
        return IMPROVED
    return UNCHANGED
