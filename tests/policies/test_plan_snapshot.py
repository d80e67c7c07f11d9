"""A run reads its own plan: the snapshot taken at start, not the plan file as it is later."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.influx import InfluxClient
from core.rundir import RunDir
from loadbearing.cli import main
from tests.policies.synthetic import Endpoint, Module, Service, write_run

FAST = Endpoint("items_get", latency_ms=lambda t, rnd: 8 + rnd.random() * 4, keys=40)
SLOW = Endpoint("report", latency_ms=lambda t, rnd: 900 + rnd.random() * 100)
QUICK = Endpoint("report", latency_ms=lambda t, rnd: 60 + rnd.random() * 20)
BUSY_POOL = {"size": 2.0, "checked_out": 2.0, "waiting": 30.0, "waiting_max": 40.0, "checkouts": 40.0,
             "timeouts": 0.0, "checkout_wait_ms_p95": 900.0, "checkout_wait_ms_mean": 700.0, "hold_ms_mean": 50.0}


def _outputs(before: Path, after: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """What recommend, report and verify print and write for the two runs."""
    out: dict[str, object] = {}
    assert main(["recommend", str(before), "--json"]) == 0
    out["recommend"] = capsys.readouterr().out
    assert main(["report", str(before)]) == 0
    capsys.readouterr()
    out["report.md"] = (before / "report.md").read_text()
    out["report.html"] = (before / "report.html").read_text()
    out["verify exit"] = main(["verify", str(before), str(after)])
    out["verify stdout"] = capsys.readouterr().out
    out["verification"] = json.loads((after / "verification.json").read_text())
    return out


def _edit(plan: Path) -> None:
    """Other settings than the runs had: pool, connection budget, instances, offered rate, SLO."""
    text = plan.read_text()
    edited = re.sub(r"db_pool_size = \d+", "db_pool_size = 7", text)
    edited = re.sub(r"db_max_connections = \d+", "db_max_connections = 500", edited)
    edited = re.sub(r"^rate = [\d.]+", "rate = 20", edited, flags=re.M)
    edited = re.sub(r"^p95_ms = [\d.]+", "p95_ms = 5", edited, flags=re.M)
    assert edited != text
    plan.write_text(edited)


def test_editing_the_plan_after_a_run_changes_nothing_recommend_report_or_verify_print(
        influx: InfluxClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A pool of 2 saturated under 200 req/s, capped by a budget of 12 connections: the pool and
    # autoscaling recommendations depend on the plan's pool, budget and offered rate.
    before = write_run(tmp_path / "before", influx, "snap-before", [Module("report", "report-api", 200, 20, [SLOW])],
                       [Service("report-api", {"db_pool_size": 2, "db_max_connections": 12}, pool_metrics=BUSY_POOL)],
                       slo_p95_ms=1000)
    assert main(["recommend", str(before), "--json"]) == 0
    recs = {r["kind"]: r for r in json.loads(capsys.readouterr().out)["recommendations"]}
    assert recs["db_pool"]["current"] == 2 and recs["db_pool"]["recommended"] == 12 - 3
    assert "autoscaling" in recs
    after = write_run(tmp_path / "after", influx, "snap-after", [Module("report", "report-api", 200, 20, [QUICK])],
                      [Service("report-api", {"db_pool_size": 9, "db_max_connections": 12},
                               pool_metrics={**BUSY_POOL, "size": 9.0, "waiting": 0.0, "waiting_max": 0.0,
                                         "checkout_wait_ms_p95": 0.0, "checkout_wait_ms_mean": 0.0})],
                      slo_p95_ms=1000)

    first = _outputs(before, after, capsys)
    checks = {c["check"]: c for c in first["verification"]["checks"]}  # type: ignore[index]
    assert checks["db_pool report-api"]["applied"] is True

    # The plan files both runs came from change afterwards.
    for run in (before, after):
        source = Path(RunDir(run).read_record().plan)
        assert source.is_file()
        _edit(source)
    assert _outputs(before, after, capsys) == first


def test_a_run_directory_without_a_snapshot_reads_the_plan_file_and_says_so(
        influx: InfluxClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = write_run(tmp_path / "old", influx, "snap-old", [Module("items", "shop-api", 50, 20, [FAST])],
                        [Service("shop-api", {"db_pool_size": 5})])
    RunDir(run_dir).plan_snapshot.unlink()  # as a run made before snapshots existed
    assert main(["recommend", str(run_dir), "--json"]) == 0
    notes = " ".join(json.loads(capsys.readouterr().out)["notes"])
    assert "no plan snapshot" in notes and "may differ from what the run ran with" in notes
