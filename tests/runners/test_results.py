"""The numbers of a finished run (`runners.results`): per module from the stored aggregates, else
from k6's own summaries; and whether the store holds every request k6 counted."""

from __future__ import annotations

import pytest

from core.plan import Slo
from core.rundir import K6Summary, MetricsRecord, ModuleRecord, RunRecord
from runners.results import SOURCE_STORE, SOURCE_SUMMARIES, Stored, completeness, module_numbers

SLO = Slo(p95_ms=500, max_error_rate=0.01)


def _summary(runner: str, requests: int, p95_ms: float, error_rate: float) -> K6Summary:
    return K6Summary(runner=runner, requests=requests, iterations=requests, dropped=0, iteration_ms=None,
                     duration_ms=None, p95_ms=p95_ms, error_rate=error_rate, vus_max=None)


def _record(*names: str, started: bool = True) -> RunRecord:
    at = "2026-01-01T00:00:00.000Z" if started else None
    return RunRecord(run_id="r", testid="r", strategy="parallel", plan="plan.toml", slo=SLO,
                     modules=[ModuleRecord(name=n, service="s", runners=2, started_at=at) for n in names])


SUMMARIES = {"a-0": _summary("a-0", 600, 120.0, 0.0), "a-1": _summary("a-1", 400, 480.0, 0.05),
             "b-0": _summary("b-0", 50, 900.0, 0.0)}
STORED = Stored(requests={"a": 1000, "b": 50}, p95_ms={"a": 300.12345, "b": 880.0},
                error_rate={"a": 0.0200004, "b": 0.0}, runner_requests={"a-0": 600, "a-1": 400, "b-0": 50})


def _numbers(stored: Stored | None, summaries: dict[str, K6Summary], *names: str,
             started: bool = True) -> tuple[dict[str, ModuleRecord], tuple[int, int]]:
    record = _record(*names, started=started)
    totals = module_numbers(record, SLO, stored, summaries)
    return {m.name: m for m in record.modules}, totals


@pytest.mark.parametrize(("stored", "module", "expected"), [
    # from the store: InfluxDB's own count, p95 and error rate (rounded), k6's count beside them
    (STORED, "a", {"requests": 1000, "k6_requests": 1000, "p95_ms": 300.123, "error_rate": 0.02,
                   "runner_requests": {"a-0": 600, "a-1": 400}, "thresholds_ok": False}),   # 2 % errors > 1 %
    (STORED, "b", {"requests": 50, "k6_requests": 50, "p95_ms": 880.0, "error_rate": 0.0,
                   "runner_requests": {"b-0": 50}, "thresholds_ok": False}),                # p95 > 500 ms
    # the store gone: k6's summaries; p95 is the worst runner's (k6 cannot merge percentiles),
    # the error rate weighted by each runner's requests
    (None, "a", {"requests": 1000, "k6_requests": 1000, "p95_ms": 480.0, "error_rate": 0.02,
                 "runner_requests": {}, "thresholds_ok": False}),
    (None, "b", {"requests": 50, "k6_requests": 50, "p95_ms": 900.0, "error_rate": 0.0, "runner_requests": {},
                 "thresholds_ok": False}),
])
def test_module_numbers(stored: Stored | None, module: str, expected: dict[str, object]) -> None:
    mods, _ = _numbers(stored, SUMMARIES, "a", "b")
    assert {k: getattr(mods[module], k) for k in expected} == expected


def test_a_module_within_the_slo_passes_and_totals_add_up() -> None:
    stored = Stored(requests={"a": 998}, p95_ms={"a": 499.9}, error_rate={"a": 0.01}, runner_requests={})
    mods, totals = _numbers(stored, {"a-0": _summary("a-0", 1000, 1.0, 0.0)}, "a")
    assert mods["a"].thresholds_ok is True and mods["a"].failures == []
    assert totals == (998, 1000)


@pytest.mark.parametrize(("stored", "started", "ok", "failures"), [
    (Stored({}, {}, {}, {}), True, False, ["no requests were recorded"]),   # ran, nothing stored
    (None, True, False, ["no requests were recorded"]),                     # ran, no summary either
    (None, False, None, []),                                                # never started: no verdict
])
def test_a_module_without_requests(stored: Stored | None, started: bool, ok: bool | None,
                                   failures: list[str]) -> None:
    mods, totals = _numbers(stored, {}, "a", started=started)
    assert (mods["a"].thresholds_ok, mods["a"].failures, totals) == (ok, failures, (0, 0))


@pytest.mark.parametrize(("stored", "k6", "near", "complete", "collapsed", "reason"), [
    (1000, 1000, None, True, None, None),
    (999, 1000, None, True, 1, None),                # 0.1 % of k6's count may merge in the store
    (998, 1000, None, False, None, "stored 998 of k6's 1000 requests"),
    (990, 1000, 11, True, 10, None),                 # the store shows 11 same-series pairs within 25 ns
    (990, 1000, 3, False, None, "stored 990 of k6's 1000 requests (more than the 3 same-series pairs"),
    (0, 0, None, True, None, None),
])
def test_completeness(stored: int, k6: int, near: int | None, complete: bool, collapsed: int | None,
                      reason: str | None) -> None:
    metrics = completeness(True, stored, k6, near)
    assert (metrics.source, metrics.complete, metrics.collapsed_points) == (SOURCE_STORE, complete, collapsed)
    assert (metrics.incomplete_reason or "").startswith(reason or "")
    assert (metrics.incomplete_reason is None) == (reason is None)


def test_numbers_from_k6_summaries_are_never_complete() -> None:
    assert completeness(False, 1000, 1000, None) == MetricsRecord(
        source=SOURCE_SUMMARIES, stored_requests=None, k6_requests=1000, complete=False,
        incomplete_reason=SOURCE_SUMMARIES)
