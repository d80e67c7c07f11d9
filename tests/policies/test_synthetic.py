"""Edge cases on synthetic k6-shaped samples stored in a real influxd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import BadInput, RunError
from core.influx import InfluxClient
from core.rundir import RunDir
from policies import recommend_run, write_report
from policies.cache import rescale_hit_ratio
from policies.inputs import load_run
from policies.metrics import MetricsReader
from runners.results import allowed_missing, near_coincidences
from tests.policies.synthetic import Endpoint, Module, Service, write_run

FAST = Endpoint("items_get", latency_ms=lambda t, rnd: 8 + rnd.random() * 4, keys=40)


def kinds(doc: dict[str, Any]) -> list[str]:
    return [f["kind"] for f in doc["findings"]]


def test_thinned_samples_make_the_run_invalid(influx: InfluxClient, tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", influx, "thinned", [Module("items", "shop-api", 50, 20, [FAST])],
                        [Service("shop-api", {"db_pool_size": 5})], keep=0.7)
    doc = recommend_run(run_dir)
    assert doc["valid"] is False
    assert "metrics_incomplete" in kinds(doc)
    assert doc["recommendations"] == []
    assert any("k6 counted 1000" in reason for reason in doc["invalid_reasons"])
    md, _ = write_report(run_dir)
    assert "INVALID" in md.read_text() and "metrics_incomplete" in md.read_text()


def test_same_nanosecond_merges_are_tolerated_only_as_far_as_the_store_shows_near_coincidences(
        influx: InfluxClient, tmp_path: Path) -> None:
    # 1000 requests + 3 twins InfluxDB merged (k6 counted 1013, 1010 stored: over 0.1 %) and
    # 10 twins 5 ns apart: a lockstep target; the 3 missing are explained as merges.
    lockstep = write_run(tmp_path / "lockstep", influx, "lockstep",
                         [Module("items", "shop-api", 50, 20, [FAST], twins=(3, 10))],
                         [Service("shop-api", {"db_pool_size": 5})])
    assert near_coincidences(influx, "lockstep") == {"items": 10}
    doc = recommend_run(lockstep)
    assert doc["valid"] is True, doc["invalid_reasons"]
    # the same 3 missing with no near-coincidence in the store: nothing explains them
    lost = write_run(tmp_path / "lost", influx, "lost", [Module("items", "shop-api", 50, 20, [FAST], twins=(3, 0))],
                     [Service("shop-api", {"db_pool_size": 5})])
    doc = recommend_run(lost)
    assert doc["valid"] is False and "metrics_incomplete" in kinds(doc)
    assert any("InfluxDB holds 1000 http_reqs samples but k6 counted 1003" in r for r in doc["invalid_reasons"])


@pytest.mark.parametrize(("k6_count", "near", "allowed"), [
    (0, 0, 0), (1, 0, 1), (999, 0, 1), (1000, 0, 1), (1001, 0, 2), (1120, 0, 2), (1120, 11, 11),
    (100_000, 0, 100), (100_000, 40, 100), (100_000, 400, 400),
])
def test_allowed_missing(k6_count: int, near: int, allowed: int) -> None:
    assert allowed_missing(k6_count, near) == allowed


def test_complete_samples_are_valid(influx: InfluxClient, tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", influx, "complete", [Module("items", "shop-api", 50, 20, [FAST])],
                        [Service("shop-api", {"db_pool_size": 5})])
    doc = recommend_run(run_dir)
    assert doc["valid"] is True, doc["invalid_reasons"]
    (ep,) = doc["endpoints"]
    assert ep["requests"] == 1000 and ep["rps"] == 50.0 and 8 <= ep["p50_ms"] <= 12
    # Time to first byte percentiles, on request (the synthetic waiting time is 95 % of the duration).
    inputs = load_run(run_dir)
    reader = MetricsReader(influx, inputs.testid, inputs.started_ms, inputs.ended_ms)
    stats = reader.endpoint_stats()
    reader.waiting_stats(stats)
    (st,) = stats.values()
    assert st.wait_p50_ms is not None and abs(st.wait_p50_ms - 0.95 * st.p50_ms) < 0.01
    reader.close()


def test_iterations_dropped_while_the_target_was_fast_mean_a_saturated_generator(
        influx: InfluxClient, tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", influx, "gen", [Module("items", "shop-api", 50, 20, [FAST],
                                                                 dropped_per_s=6)], [Service("shop-api")])
    doc = recommend_run(run_dir)
    assert doc["valid"] is False
    (f,) = [f for f in doc["findings"] if f["kind"] == "generator_saturated"]
    assert f["evidence"]["dropped"] == 120 and f["evidence"]["dropped_while_fast"] == 120


def test_climbing_error_rate(influx: InfluxClient, tmp_path: Path) -> None:
    flaky = Endpoint("pay", "POST", fails=lambda t, rnd: t > 0.5 and rnd.random() < 0.06)
    run_dir = write_run(tmp_path / "run", influx, "errs", [Module("pay", "pay-api", 50, 20, [flaky])],
                        [Service("pay-api")], max_error_rate=0.05)
    doc = recommend_run(run_dir)
    (f,) = [f for f in doc["findings"] if f["kind"] == "error_rate"]
    assert f["evidence"]["climbing"] is True
    assert f["evidence"]["first_half_error_rate"] == 0.0 and f["evidence"]["second_half_error_rate"] > 0.03
    assert "climbed" in f["detail"]


def test_missing_summary_and_too_little_data(influx: InfluxClient, tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", influx, "small", [Module("items", "shop-api", 1, 10, [FAST]),
                                                            Module("other", "shop-api", 50, 10, [FAST])],
                        [Service("shop-api")], missing_summaries=("other-0",))
    doc = recommend_run(run_dir)
    assert doc["valid"] is False
    assert "too_little_data" in kinds(doc)
    assert any("other-0" in r and "metrics_incomplete" in r for r in doc["invalid_reasons"])


def test_unfinished_run_is_invalid(influx: InfluxClient, tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", influx, "aborted", [Module("items", "shop-api", 50, 10, [FAST])],
                        [Service("shop-api")], status="aborted")
    doc = recommend_run(run_dir)
    assert doc["valid"] is False and "'aborted'" in doc["invalid_reasons"][0]


def test_idle_oversized_pool_may_shrink_but_never_grows(influx: InfluxClient, tmp_path: Path) -> None:
    idle = {"size": 50.0, "checked_out": 1.0, "waiting": 0.0, "waiting_max": 0.0, "checkouts": 50.0,
            "timeouts": 0.0, "checkout_wait_ms_p95": 0.0, "checkout_wait_ms_mean": 0.0, "hold_ms_mean": 10.0}
    spread = Endpoint("items_get", latency_ms=lambda t, rnd: 8 + rnd.random() * 40, keys=40)
    run_dir = write_run(tmp_path / "run", influx, "idle", [Module("items", "shop-api", 50, 20, [spread])],
                        [Service("shop-api", {"db_pool_size": 50, "db_max_connections": 200}, pool_metrics=idle)])
    doc = recommend_run(run_dir)
    (pool,) = [r for r in doc["recommendations"] if r["kind"] == "db_pool"]
    assert pool["current"] == 50 and pool["recommended"] < 25
    assert pool["evidence"]["waited"] is False
    # a smaller pool promises no better latency than the run had: its p95, plus any wait the smaller pool adds
    (items,) = [e for e in doc["endpoints"] if e["service"] == "shop-api"]
    assert pool["predicted"]["p95_ms"] >= items["p95_ms"]
    # the same idle pool of 10 on a database of 100 connections: far larger than needed, but it frees
    # nothing scarce: kept, and the note says so
    small = {**idle, "size": 10.0}
    kept = write_run(tmp_path / "kept", influx, "kept", [Module("items", "shop-api", 50, 20, [FAST])],
                     [Service("shop-api", {"db_pool_size": 10, "db_max_connections": 100}, pool_metrics=small)])
    doc = recommend_run(kept)
    assert not [r for r in doc["recommendations"] if r["kind"] == "db_pool"]
    assert any("shop-api" in n and "frees nothing scarce; kept" in n for n in doc["notes"]), doc["notes"]
    # The same service without pool metrics: nothing proves it never waited, and it did not wait: no pool change.
    bare = write_run(tmp_path / "bare", influx, "bare", [Module("items", "shop-api", 50, 20, [FAST])],
                     [Service("shop-api", {"db_pool_size": 50})])
    assert not [r for r in recommend_run(bare)["recommendations"] if r["kind"] == "db_pool"]


def test_connection_budget_caps_the_pool_and_says_what_else_to_do(influx: InfluxClient, tmp_path: Path) -> None:
    busy = {"size": 2.0, "checked_out": 2.0, "waiting": 30.0, "waiting_max": 40.0, "checkouts": 40.0,
            "timeouts": 0.0, "checkout_wait_ms_p95": 900.0, "checkout_wait_ms_mean": 700.0, "hold_ms_mean": 50.0}
    slow = Endpoint("report", latency_ms=lambda t, rnd: 900 + rnd.random() * 100, keys=None)
    run_dir = write_run(tmp_path / "run", influx, "cap", [Module("report", "report-api", 200, 20, [slow])],
                        [Service("report-api", {"db_pool_size": 2, "db_max_connections": 12}, pool_metrics=busy)],
                        slo_p95_ms=1000)
    doc = recommend_run(run_dir)
    (pool,) = [r for r in doc["recommendations"] if r["kind"] == "db_pool"]
    assert pool["cap_binds"] is True
    assert pool["recommended"] == 12 - 3                       # max_connections - reserve, one instance
    assert any("pooler" in a for a in pool["alternatives"])
    (scale,) = [r for r in doc["recommendations"] if r["kind"] == "autoscaling"]
    assert scale["max_instances"] * pool["recommended"] <= 12 - 3


def test_cache_needs_a_known_repeating_key_space(influx: InfluxClient, tmp_path: Path) -> None:
    named = Endpoint("named_get", latency_ms=lambda t, rnd: 80 + rnd.random() * 40, keys=None, share=1)
    unique = Endpoint("search_get", latency_ms=lambda t, rnd: 80 + rnd.random() * 40, keys=1_000_000, share=1)
    hot = Endpoint("hot_get", latency_ms=lambda t, rnd: 80 + rnd.random() * 400, keys=10, share=1)
    write = Endpoint("hot_put", "PUT", latency_ms=lambda t, rnd: 80 + rnd.random() * 400, keys=10, share=0.2)
    run_dir = write_run(tmp_path / "run", influx, "cache",
                        [Module("mix", "read-api", 100, 30, [named, unique, hot, write])],
                        [Service("read-api")], slo_p95_ms=1000)
    doc = recommend_run(run_dir)
    caches = [r for r in doc["recommendations"] if r["kind"] == "cache"]
    assert [(r["endpoint"], r["method"]) for r in caches] == [("hot_get", "GET")]
    (hot_rec,) = caches
    assert hot_rec["expected_hit_ratio"] >= 0.8 and hot_rec["ttl_s"] >= 1
    assert hot_rec["predicted"]["p95_ms"] < 0.8 * next(e["p95_ms"] for e in doc["endpoints"]
                                                       if e["name"] == "hot_get")
    notes = " ".join(doc["notes"])
    assert "named_get: key space unknown" in notes and "search_get" in notes and "unique key" in notes


def test_bad_run_dir_and_unreachable_store(tmp_path: Path, influx: InfluxClient) -> None:
    with pytest.raises(BadInput, match=r"no run\.json"):
        recommend_run(tmp_path)
    run_dir = write_run(tmp_path / "run", influx, "gone", [Module("items", "shop-api", 50, 10, [FAST])],
                        [Service("shop-api")])
    rd = RunDir(run_dir)
    record = rd.read_record()
    record.influx.url = "http://127.0.0.1:9"
    rd.write_record(record, complete=True)
    with pytest.raises(RunError, match="unreachable"):
        recommend_run(run_dir)


def test_a_cache_per_instance_hits_less_than_one_shared_cache(influx: InfluxClient, tmp_path: Path) -> None:
    hot = Endpoint("hot_get", latency_ms=lambda t, rnd: 10 + rnd.random() ** 4 * 900, keys=200, share=1)

    def cache_rec(testid: str, settings: dict[str, Any]) -> dict[str, Any]:
        run_dir = write_run(tmp_path / testid, influx, testid, [Module("reads", "read-api", 40, 30, [hot])],
                            [Service("read-api", settings)], slo_p95_ms=1000)
        (rec,) = [r for r in recommend_run(run_dir)["recommendations"] if r["kind"] == "cache"]
        return rec

    one = cache_rec("one", {"instances": 1})
    per_instance = cache_rec("three", {"instances": 3})
    shared = cache_rec("shared", {"instances": 3, "cache_scope": '"shared"'})
    assert (one["evidence"]["caches"], per_instance["evidence"]["caches"], shared["evidence"]["caches"]) == (1, 3, 1)
    # a shared cache hits as one cache does, whatever the instances
    assert shared["ttl_s"] == one["ttl_s"] and shared["expected_hit_ratio"] == one["expected_hit_ratio"]
    # three in-process caches each see a key at a third of its rate: the same TTL hits less
    rows = {row["ttl_s"]: row["expected_hit_ratio"] for row in one["evidence"]["ttl_table"]}
    rows3 = {row["ttl_s"]: row["expected_hit_ratio"] for row in per_instance["evidence"]["ttl_table"]}
    rate = one["evidence"]["rate_per_key"]
    for ttl, h in rows.items():
        assert rows3[ttl] == pytest.approx(rescale_hit_ratio(h, rate, ttl, 0.0, 1, 3), abs=1e-3)
        assert rows3[ttl] < h
    assert per_instance["expected_hit_ratio"] < one["expected_hit_ratio"]
    assert 'cache_scope = "shared"' in per_instance["reason"]
