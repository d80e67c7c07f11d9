"""Policies on real k6 runs: a pool-bound service next to a fast one (see conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.influx import InfluxClient, quote_literal
from policies import dumps_document, recommend_run
from policies.queueing import smallest_pool
from tests.policies.conftest import SLO_P95_MS


def recs(doc: dict[str, Any], kind: str, service: str | None = None) -> list[dict[str, Any]]:
    return [r for r in doc["recommendations"] if r["kind"] == kind and (service is None or r["service"] == service)]


def findings(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f["kind"] == kind]


def summary_requests(run_dir: Path, module: str) -> int:
    data = json.loads((run_dir / "k6" / f"{module}-0.summary.json").read_text())
    return int(data["metrics"]["http_reqs"]["count"])


def test_baseline_finds_the_pool_limit_and_sizes_the_pool(real_runs: dict[str, Path]) -> None:
    run_dir = real_runs["baseline"]
    doc = recommend_run(run_dir)
    assert doc["valid"] is True, doc["invalid_reasons"]
    # Endpoint counts are exactly k6's own counts.
    by_module: dict[str, int] = {}
    for e in doc["endpoints"]:
        by_module[e["module"]] = by_module.get(e["module"], 0) + e["requests"]
    assert by_module == {"profile": summary_requests(run_dir, "profile"), "jobs": summary_requests(run_dir, "jobs")}
    # The plateau on profile-api, attributed to its pool (its scraped pool metrics show waiting).
    (limit,) = findings(doc, "throughput_limit")
    assert limit["service"] == "profile-api"
    assert limit["evidence"]["attribution"] == "db_pool", limit
    assert 35 <= limit["evidence"]["throughput_rps"] <= 55          # 1 connection / 20 ms = 50/s
    breached = {f["endpoint"] for f in findings(doc, "slo_breach")}
    assert breached == {"profile_get", "profile_put"}
    # db_pool: the Erlang-C answer for the measured hold time at the plan's 90 req/s.
    (pool,) = recs(doc, "db_pool")
    assert pool["service"] == "profile-api" and pool["current"] == 1
    hold_s = pool["evidence"]["hold_time_ms"] / 1000
    assert 0.019 <= hold_s <= 0.03
    assert pool["evidence"]["hold_time_source"].startswith("db_client_connection_use_time_seconds_sum")
    assert (pool["evidence_path"], pool["confidence"]) == ("white_box", "high")
    assert pool["recommended"] == smallest_pool(90.0, hold_s, 0.1 * SLO_P95_MS / 1000)
    assert pool["predicted"]["meets_slo"] is True
    fewer = pool["predicted"]["two_fewer"]
    assert fewer["stable"] is False or fewer["p95_wait_ms"] > pool["predicted"]["p95_wait_ms"]
    assert pool["predicted"]["at_current"]["stable"] is False      # 1 connection, 90 req/s x 20 ms
    assert pool["evidence"]["queries"] and "percentile" in pool["evidence"]["queries"][0]["query"]
    assert not recs(doc, "db_pool", "core-api")
    # cache: the GET with repeating keys, never the PUT.
    (cache,) = recs(doc, "cache")
    assert (cache["service"], cache["endpoint"], cache["method"]) == ("profile-api", "profile_get", "GET")
    assert cache["expected_hit_ratio"] >= 0.5
    assert cache["predicted"]["p95_ms"] < next(e["p95_ms"] for e in doc["endpoints"] if e["name"] == "profile_get")
    # autoscaling for both services, jointly capped with the pool.
    for service in ("core-api", "profile-api"):
        (scale,) = recs(doc, "autoscaling", service)
        assert 1 <= scale["min_instances"] <= scale["max_instances"]
        assert scale["scale_in_cooldown_s"] >= 300 and scale["metric"] == "ALBRequestCountPerTarget"
    # Drops caused by the slow target (max_vus exhausted) are not a saturated generator.
    dropped = json.loads((run_dir / "k6" / "profile-0.summary.json").read_text())["metrics"]["dropped_iterations"]
    assert dropped["count"] > 0
    assert not findings(doc, "generator_saturated")


def test_recommended_pool_meets_the_slo_on_rerun(real_runs: dict[str, Path]) -> None:
    before = json.loads((real_runs["baseline"] / "recommendations.json").read_text())
    (pool,) = recs(before, "db_pool")
    after = recommend_run(real_runs["verify"])
    p95 = {e["name"]: e["p95_ms"] for e in after["endpoints"]}
    # With the recommended pool the SLO holds; with the baseline's smaller pool it did not.
    assert p95["profile_get"] <= SLO_P95_MS and p95["profile_put"] <= SLO_P95_MS
    assert pool["current"] < pool["recommended"]
    assert {e["name"]: e["p95_ms"] for e in before["endpoints"]}["profile_get"] > SLO_P95_MS
    assert not findings(after, "throughput_limit")
    assert not [r for r in recs(after, "db_pool") if r["recommended"] > r["current"]]


def test_without_app_metrics_falls_back_to_the_plateau(real_runs: dict[str, Path]) -> None:
    doc = recommend_run(real_runs["no_app"])
    (limit,) = findings(doc, "throughput_limit")
    # Without pool metrics: the concurrency sustained (Little's law) matches the declared pool of 1.
    assert limit["evidence"]["attribution"] == "db_pool", limit
    n = limit["evidence"]["concurrency"]
    assert n["low"] - 0.5 <= 1 <= n["high"] + 0.5                  # a whole pool within N's range
    (pool,) = recs(doc, "db_pool")
    assert pool["evidence"]["hold_time_source"].startswith("Little's law on the goodput plateau")
    assert pool["evidence_path"] == "black_box"
    hold_s = pool["evidence"]["hold_time_ms"] / 1000
    assert pool["recommended"] == smallest_pool(90.0, hold_s, 0.1 * SLO_P95_MS / 1000)
    assert not recs(doc, "db_pool", "core-api")


def test_same_data_same_document_and_events(real_runs: dict[str, Path], policy_store: InfluxClient) -> None:
    run_dir = real_runs["baseline"]
    first = recommend_run(run_dir)
    text = (run_dir / "recommendations.json").read_text()
    second = recommend_run(run_dir)
    assert text == dumps_document(first) == dumps_document(second) == (run_dir / "recommendations.json").read_text()
    testid = json.loads((run_dir / "run.json").read_text())["testid"]
    rows = policy_store.rows(f"SELECT count(\"title\") AS n FROM loadbearing_events WHERE testid = {quote_literal(testid)} "
                             "GROUP BY \"kind\"")
    counts = {r["kind"]: r["n"] for r in rows}
    assert counts == {"finding": len(first["findings"]), "recommendation": len(first["recommendations"])}
