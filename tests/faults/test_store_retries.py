"""A store that drops a connection at the wrong moment: the end-of-run numbers and `recommend`
retry instead of falling back to k6's summaries or aborting, and run.json says so.

The run writes and reads through a real loopback relay (tests/fixtures/flaky_proxy.py) in
front of the session's influxd; k6's own output goes through it too."""

from __future__ import annotations

from pathlib import Path

from tests.core.test_influx_retries import DROPPED
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.runs import run_cli, write_plan
from tests.fixtures.target import Target

# The first query of the run's end: count("value") FROM "http_reqs" ... GROUP BY "module"
END_OF_RUN_QUERY = b"GET /query?q=SELECT+count%28%22value%22%29+FROM+%22http_reqs%22"


def test_the_end_of_run_query_and_recommend_retry_a_dropped_connection(
        tmp_path: Path, flaky_proxy: FlakyProxy, lb_env: dict[str, str], target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 20, "duration": "2s"}])
    flaky_proxy.arm(END_OF_RUN_QUERY)
    res = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", f"{flaky_proxy.url}/retries",
                   "--out-dir", str(tmp_path / "runs")], lb_env)
    assert not flaky_proxy.armed, "the relay never saw the end-of-run query"
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["metrics"]["source"] == "influxdb" and rec["metrics"]["complete"] is True
    assert rec["modules"][0]["requests"] == rec["modules"][0]["k6_requests"] >= 38
    [retry] = rec["metrics"]["store_retries"]
    assert retry["op"] == "query" and retry["attempts"] == 2 and retry["ok"] is True
    assert retry["error"] in DROPPED
    assert "metrics store unavailable" not in res.stderr

    flaky_proxy.arm(b"GET /query")  # recommend's first read of the run
    out = run_cli(["recommend", str(res.run_dir), "--json"], lb_env)
    assert not flaky_proxy.armed
    assert out.code == 0, out.stderr
    assert '"run_id"' in out.stdout
