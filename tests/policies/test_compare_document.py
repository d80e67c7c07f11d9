"""The comparison document from two run profiles, without InfluxDB: what makes runs
incomparable, the order of the table, the gate, the files' round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import BadInput
from core.plan import Compare
from policies.baseline import baseline_for, read_file, show
from policies.compare import PlanMismatch, compare, dumps, plan_differences, relative_lines, thresholds
from policies.compare_profile import LADDER, EndpointProfile, RunProfile
from policies.compare_render import markdown, terminal

PLAN: dict[str, Any] = {
    "name": "shop",
    "target": {"base_url": "http://127.0.0.1:8000", "allow_hosts": ["127.0.0.1"]},
    "slo": {"p95_ms": 500.0, "max_error_rate": 0.01},
    "services": {"api": {"base_url": "http://127.0.0.1:8001", "db_pool_size": 2}},
    "modules": [{"name": "jobs", "script": "modules/jobs.js", "service": "api", "vus": 10, "rate": None,
                 "max_vus": None, "duration": "30s", "stages": None}],
    "strategies": {"sequential": {"recovery": "0s"}, "hybrid": {"groups": [["jobs"]], "recovery": "5s"},
                   "parallel": {}},
    "compare": Compare().model_dump(),
}


def ladder(scale_ms: float) -> list[tuple[float, float | None]]:
    """A ladder of percentiles: value = pct/100 x scale (a uniform distribution on [0, scale])."""
    return [(p, scale_ms * p / 100) for p in LADDER]


def endpoint(name: str, n: int, scale_ms: float, failed: int = 0, module: str = "jobs") -> EndpointProfile:
    return EndpointProfile(module=module, service="api", name=name, method="GET", requests=n, failed=failed,
                           rps=n / 30, ladder=ladder(scale_ms), series=[(0.5, scale_ms * 0.95, n / 30)])


def profile(run_id: str, endpoints: list[EndpointProfile], plan: dict[str, Any] | None = None,
            strategy: str = "parallel") -> RunProfile:
    return RunProfile(run_id=run_id, testid=run_id, strategy=strategy, status="passed",
                      started_at="2026-01-01T00:00:00.000Z", ended_at="2026-01-01T00:00:30.000Z",
                      started_ms=0, ended_ms=30_000, bucket_s=1, run_dir=f"/runs/{run_id}",
                      influx={"url": "http://127.0.0.1:8086", "db": "loadbearing"},
                      plan=json.loads(json.dumps(PLAN if plan is None else plan)), endpoints=endpoints)


def counts_for(base: RunProfile, run: RunProfile, share_at_or_below: dict[str, float]) -> dict[Any, dict[float, int]]:
    """What InfluxDB would count: the given share of the run's requests at or below each baseline value."""
    out: dict[Any, dict[float, int]] = {}
    for key, values in thresholds(base, run).items():
        n = run.endpoint(key).requests  # type: ignore[union-attr]
        share = share_at_or_below.get(key.name)
        out[key] = {v: round(n * (share if share is not None else pct / 100))
                    for v, pct in zip(values, (50, 95, 99), strict=True)}
    return out


def test_different_loads_are_refused_and_every_difference_is_named() -> None:
    other = json.loads(json.dumps(PLAN))
    other["modules"][0]["vus"] = 20
    other["strategies"]["hybrid"]["recovery"] = "9s"       # not the parallel strategy's setting
    other["services"]["api"]["db_pool_size"] = 8            # what a fix changes
    other["target"]["base_url"] = "http://127.0.0.1:9000"
    base = profile("a", [endpoint("list", 100, 50)])
    run = profile("b", [endpoint("list", 100, 50)], plan=other)
    refused, context = plan_differences(base, run)
    assert [d["key"] for d in refused] == ["modules[jobs].vus"]
    assert {d["key"] for d in context} == {"services.api.db_pool_size", "target.base_url", "strategies.hybrid.recovery"}
    with pytest.raises(PlanMismatch) as err:
        compare(base, run, counts_for(base, run, {}))
    assert err.value.exit_code == 2
    assert "modules[jobs].vus: 10 -> 20" in err.value.message and "--force" in err.value.message
    forced = compare(base, run, counts_for(base, run, {}), force=True)
    assert forced["forced"] is True and forced["differences"]["refused"][0]["run"] == 20
    assert "Compared with --force although the loads differ" in markdown(forced)


@pytest.mark.parametrize(("change", "key"), [
    (lambda p: p.update(name="other"), "name"),
    (lambda p: p["modules"].append({**p["modules"][0], "name": "extra"}), "modules[extra]"),
    (lambda p: p["modules"][0].update(script="modules/v2.js"), "modules[jobs].script"),
], ids=["plan-name", "module-added", "script"])
def test_what_counts_as_a_different_load(change: Any, key: str) -> None:
    other = json.loads(json.dumps(PLAN))
    change(other)
    refused, _ = plan_differences(profile("a", []), profile("b", [], plan=other))
    assert key in [d["key"] for d in refused]


def test_another_strategy_or_an_unknown_plan_is_refused() -> None:
    refused, _ = plan_differences(profile("a", []), profile("b", [], strategy="hybrid"))
    assert refused == [{"key": "strategy", "baseline": "parallel", "run": "hybrid"}]
    unknown = profile("b", [])
    unknown.plan = None
    refused, _ = plan_differences(profile("a", []), unknown)
    assert "plan of b was not found" in refused[0]["detail"]


def test_regressions_first_then_improvements_and_the_gate() -> None:
    base = profile("a", [endpoint("steady", 400, 100), endpoint("slower", 400, 100), endpoint("faster", 400, 2000),
                         endpoint("failing", 400, 100), endpoint("gone", 10, 100)])
    run = profile("b", [endpoint("steady", 400, 102), endpoint("slower", 400, 400), endpoint("faster", 400, 200),
                        endpoint("failing", 400, 100, failed=60), endpoint("new", 10, 100)])
    # slower: only 25 % of the run at or below the baseline's p95 (95 % expected)
    doc = compare(base, run, counts_for(base, run, {"slower": 0.25, "failing": 0.95, "faster": 1.0}))
    order = [(e["name"], e["verdict"]) for e in doc["endpoints"]]
    assert order[:2] == [("slower", "regressed"), ("failing", "regressed")]
    assert order[2] == ("faster", "improved") and order[3] == ("steady", "no significant change")
    assert doc["verdict"] == "regressed" and doc["regressed"] == ["jobs GET slower", "jobs GET failing"]
    failing = next(e for e in doc["endpoints"] if e["name"] == "failing")
    assert failing["p95"]["verdict"] == "no significant change" and failing["error_rate"]["verdict"] == "regressed"
    assert [e["name"] for e in doc["only_in_baseline"]] == ["gone"] and [e["name"] for e in doc["only_in_run"]] == ["new"]
    assert doc["tolerances"]["tests"] == 8 and doc["tolerances"]["per_test_alpha"] == pytest.approx(0.01 / 16, rel=1e-2)
    json.loads(dumps(doc))  # plain JSON, no NaN
    md = markdown(doc)
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[1].startswith("| **regressed** | jobs GET slower |")
    assert "Only in the baseline (not compared): jobs GET gone." in md
    assert "jobs GET slower" in terminal(doc).splitlines()[2]


def test_the_runs_own_plan_sets_the_tolerances() -> None:
    lenient = json.loads(json.dumps(PLAN))
    lenient["compare"]["p95_increase"] = 5.0               # a p95 may grow 5-fold
    base = profile("a", [endpoint("slower", 400, 100)])
    run = profile("b", [endpoint("slower", 400, 400)], plan=lenient)
    doc = compare(base, run, counts_for(base, run, {"slower": 0.25}), force=True)
    assert doc["verdict"] == "no significant change"
    assert "within the tolerance (500%)" in doc["endpoints"][0]["p95"]["why"]


def test_relative_series_start_at_the_epoch_and_keep_the_runs_tags() -> None:
    e = endpoint("list", 30, 50)
    e.series = [(0.5, 40.0, 3.0), (1.5, 45.5, 4.0)]
    lines = relative_lines("run-1", [e])
    assert lines == [
        "loadbearing_relative,method=GET,module=jobs,name=list,service=api,testid=run-1 p95_ms=40.0,rps=3.0 500000000",
        "loadbearing_relative,method=GET,module=jobs,name=list,service=api,testid=run-1 p95_ms=45.5,rps=4.0 1500000000",
    ]


def test_a_profile_survives_the_baselines_file(tmp_path: Path) -> None:
    base = profile("a", [endpoint("list", 100, 50)])
    file = tmp_path / "baseline.json"
    file.write_text(json.dumps({"version": 1, "baselines": {"shop/parallel": {
        "set_at": "2026-01-01T00:00:00Z", "run_id": "a", "run_dir": "/runs/a", "profile": base.to_json()}}}))
    run = profile("b", [endpoint("list", 100, 50)])
    again = baseline_for(run, file)
    assert again == base
    assert show(file)[0]["key"] == "shop/parallel"
    with pytest.raises(BadInput, match="no baseline pinned for shop/hybrid"):
        baseline_for(profile("c", [], strategy="hybrid"), file)
    file.write_text("{not json")
    with pytest.raises(BadInput, match="not a readable baselines file"):
        read_file(file)
    assert read_file(tmp_path / "absent.json") == {"version": 1, "baselines": {}}
