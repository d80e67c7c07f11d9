"""Each strategy's ordering, from run.json and from the timestamps stored in InfluxDB."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.influx import InfluxClient, quote_literal
from runners.influxd import Influxd
from tests.fixtures.runs import run_cli, write_plan
from tests.fixtures.target import Target

MODULES = [{"name": n, "rate": 10, "duration": "2s"} for n in ("a", "b", "c")]
HYBRID = '[strategies.hybrid]\ngroups = [["a", "b"], ["c"]]\nrecovery = "2s"\n'


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _stored_windows(influx: InfluxClient, testid: str) -> dict[str, tuple[float, float]]:
    q = (f'SELECT first("value"), last("value") FROM "http_reqs" WHERE "testid" = {quote_literal(testid)} '
         'GROUP BY "module"')
    out = {}
    for s in influx.series(q.replace('first("value"), last("value")', 'count("value")')):
        out[s["tags"]["module"]] = (0.0, 0.0)
    for module in out:
        where = f'"testid" = {quote_literal(testid)} AND "module" = {quote_literal(module)}'
        first = influx.series(f'SELECT first("value") FROM "http_reqs" WHERE {where}')[0]["values"][0][0]
        last = influx.series(f'SELECT last("value") FROM "http_reqs" WHERE {where}')[0]["values"][0][0]
        out[module] = (first / 1000.0, last / 1000.0)
    return out


@pytest.fixture
def runs(tmp_path: Path, influxd: Influxd, influx: InfluxClient, lb_env: dict[str, str], target: Target):  # type: ignore[no-untyped-def]
    plan = write_plan(tmp_path, target.url, MODULES, extra=HYBRID)

    def go(strategy: str) -> tuple[dict, dict[str, tuple[float, float]]]:  # type: ignore[type-arg]
        res = run_cli(["run", strategy, "--plan", str(plan), "--influx-url", f"{influxd.url}/{influx.db}",
                       "--out-dir", str(tmp_path / "runs")], lb_env)
        assert res.code == 0, res.stderr
        rec = res.record()
        return rec, _stored_windows(influx, rec["testid"])

    return go


def test_sequential_windows_do_not_overlap(runs) -> None:  # type: ignore[no-untyped-def]
    rec, stored = runs("sequential")
    assert [p["modules"] for p in rec["phases"]] == [["a"], ["b"], ["c"]]
    mods = {m["name"]: m for m in rec["modules"]}
    for x, y in (("a", "b"), ("b", "c")):
        assert _t(mods[x]["ended_at"]) <= _t(mods[y]["started_at"])
        assert stored[x][1] < stored[y][0], "stored samples of consecutive modules overlap"


def test_hybrid_groups_are_separated_by_recovery(runs) -> None:  # type: ignore[no-untyped-def]
    rec, stored = runs("hybrid")
    assert [p["modules"] for p in rec["phases"]] == [["a", "b"], ["c"]]
    gap = _t(rec["phases"][1]["started_at"]) - _t(rec["phases"][0]["ended_at"])
    assert gap >= 2.0
    assert stored["c"][0] - max(stored["a"][1], stored["b"][1]) >= 2.0
    # a and b ran together
    assert stored["a"][0] < stored["b"][1] and stored["b"][0] < stored["a"][1]


def test_parallel_modules_overlap(runs) -> None:  # type: ignore[no-untyped-def]
    rec, stored = runs("parallel")
    assert len(rec["phases"]) == 1 and rec["phases"][0]["modules"] == ["a", "b", "c"]
    latest_start = max(s for s, _ in stored.values())
    earliest_end = min(e for _, e in stored.values())
    assert latest_start < earliest_end
    events = InfluxClient(url=rec["influx"]["url"], db=rec["influx"]["db"]).rows(
        f'SELECT "text" FROM "loadbearing_events" WHERE "testid" = {quote_literal(rec["testid"])} GROUP BY *')
    kinds = sorted({(e["kind"], e["event"]) for e in events})
    assert ("module", "start") in kinds and ("phase", "end") in kinds and ("run", "start") in kinds
    assert sum(1 for e in events if e["kind"] == "module" and e["event"] == "start") == 3
