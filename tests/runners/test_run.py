"""A real run: the fleet delivers the plan's load, every sample stored and tagged, the record per contract."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.influx import InfluxClient, quote_literal
from core.plan import load_plan
from core.rundir import parse_time_ms
from loadbearing.cli import main
from runners import controller, k6
from runners.influxd import Influxd
from tests.fixtures.runs import run_cli, write_plan
from tests.fixtures.target import Target


def _ts(iso: str) -> float:
    ms = parse_time_ms(iso)
    assert ms is not None, iso
    return ms / 1000


CONTRACT_KEYS = {"run_id", "testid", "strategy", "status", "started_at", "ended_at", "plan", "slo", "influx",
                 "phases", "modules"}
MODULE_KEYS = {"name", "service", "runners", "started_at", "ended_at", "exit_codes", "requests", "p95_ms",
               "error_rate", "thresholds_ok"}


def test_four_runners_deliver_the_plan_and_lose_no_sample(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                                                           lb_env: dict[str, str], target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 60, "duration": "5s"}])
    res = run_cli(["run", "parallel", "--plan", str(plan), "--runners", "4",
                   "--influx-url", f"{influxd.url}/{influx.db}", "--out-dir", str(tmp_path / "runs")], lb_env)
    assert res.code == 0, res.stderr
    assert res.run_dir.parent == tmp_path / "runs"
    rec = res.record()
    assert rec.keys() >= CONTRACT_KEYS
    mod = rec["modules"][0]
    assert mod.keys() >= MODULE_KEYS
    expected = 60 * 5
    assert abs(mod["requests"] - expected) <= 0.05 * expected
    # every runner did its share, each sample carries its runner tag
    assert sorted(mod["runner_requests"]) == ["a-0", "a-1", "a-2", "a-3"]
    assert all(abs(n - expected / 4) <= 0.1 * expected / 4 + 1 for n in mod["runner_requests"].values())
    stored = influx.series(f'SELECT count("value") FROM "http_reqs" WHERE "testid" = {quote_literal(rec["testid"])}')
    stored_n = stored[0]["values"][0][1]
    assert stored_n == mod["requests"] == mod["k6_requests"] == target.seen("/a")
    assert rec["metrics"]["complete"] is True
    assert rec["status"] == "passed" and mod["thresholds_ok"] is True
    assert mod["exit_codes"] == [0, 0, 0, 0]
    assert rec["slo"] == {"p95_ms": 500.0, "max_error_rate": 0.01}
    assert "@" not in rec["influx"]["url"]
    assert not (res.run_dir / "INCOMPLETE").exists()
    for i in range(4):
        assert (res.run_dir / "k6" / f"a-{i}.summary.json").is_file()
    # the validated plan as the run started, which every later reader of the run uses
    snapshot = json.loads((res.run_dir / "plan.json").read_text())
    assert snapshot == {"source": str(plan), "plan": load_plan(plan).model_dump(mode="json")}
    assert rec["plan"] == str(plan)
    # stdout carries only the run dir
    assert res.stdout.strip().splitlines() == [str(res.run_dir)]


def test_parallel_start_skew_is_small_and_each_module_keeps_its_own_window(
        tmp_path: Path, influxd: Influxd, influx: InfluxClient, lb_env: dict[str, str], target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 50, "duration": "1s"},
                                              {"name": "b", "rate": 50, "duration": "3s"}])
    res = run_cli(["run", "parallel", "--plan", str(plan), "--runners", "2",
                   "--influx-url", f"{influxd.url}/{influx.db}", "--out-dir", str(tmp_path / "runs")], lb_env)
    assert res.code == 0, res.stderr
    rec = res.record()
    testid = quote_literal(rec["testid"])
    firsts = [s["values"][0][0] for s in influx.series(
        f'SELECT first("value") FROM "http_reqs" WHERE "testid" = {testid} GROUP BY "runner"')]
    assert len(firsts) == 4
    assert max(firsts) - min(firsts) <= 250  # ms
    # A module's window is its own runners' (started together, each ended when its last runner did),
    # not the phase's: per-module requests/s over it is what that module carried.
    (phase,) = rec["phases"]
    mods = {m["name"]: m for m in rec["modules"]}
    assert mods["a"]["started_at"] == mods["b"]["started_at"] == phase["started_at"]
    assert mods["b"]["ended_at"] == phase["ended_at"]
    a_s, b_s = ((_ts(mods[n]["ended_at"]) - _ts(mods[n]["started_at"])) for n in ("a", "b"))
    assert 1.0 <= a_s < b_s - 1.5 and b_s >= 3.0, (a_s, b_s)


def test_slo_miss_exits_1(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                          lb_env: dict[str, str], target: Target) -> None:
    target.delay_s["/slow"] = 0.05
    plan = write_plan(tmp_path, target.url, [{"name": "slow", "rate": 10, "duration": "2s"}], p95_ms=20)
    res = run_cli(["run", "sequential", "--plan", str(plan), "--influx-url", f"{influxd.url}/{influx.db}",
                   "--out-dir", str(tmp_path / "runs")], lb_env)
    assert res.code == 1, res.stderr
    rec = res.record()
    assert rec["status"] == "failed"
    assert rec["modules"][0]["thresholds_ok"] is False
    assert rec["modules"][0]["p95_ms"] >= 50


def test_unreachable_influx_exits_4_before_load(tmp_path: Path, lb_env: dict[str, str], target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 10, "duration": "1s"}])
    res = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", "http://127.0.0.1:9/x",
                   "--out-dir", str(tmp_path / "runs")], lb_env)
    assert res.code == 4
    assert "http://127.0.0.1:9" in res.stderr and "unreachable" in res.stderr
    time.sleep(0.2)
    assert target.seen() == 0
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_run_uses_the_local_stack_when_no_url_is_given(tmp_path: Path, lb_env: dict[str, str],
                                                       target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 10, "duration": "1s"}])
    try:
        res = run_cli(["run", "parallel", "--plan", str(plan), "--out-dir", str(tmp_path / "runs")], lb_env)
        assert res.code == 0, res.stderr
        status = run_cli(["stack", "status"], lb_env)
        url = status.stdout.strip()
        assert url.startswith("http://127.0.0.1:")
        assert res.record()["influx"]["url"] == url
        assert res.record()["modules"][0]["requests"] == target.seen("/a")
    finally:
        run_cli(["stack", "down", "--purge"], lb_env)
    assert run_cli(["stack", "status"], lb_env).stdout.strip() == ""


def test_relative_out_dir_and_plan(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                                   lb_env: dict[str, str], target: Target) -> None:
    """Paths relative to the caller's directory work (k6 itself runs in the script's directory)."""
    write_plan(tmp_path, target.url, [{"name": "a", "rate": 10, "duration": "1s"}])
    res = run_cli(["run", "parallel", "--plan", "plan.toml", "--influx-url", f"{influxd.url}/{influx.db}",
                   "--out-dir", "runs"], lb_env, cwd=tmp_path)
    assert res.code == 0, res.stderr
    assert res.run_dir.is_absolute() and res.run_dir.parent == tmp_path / "runs"
    assert res.record()["modules"][0]["requests"] == target.seen("/a") > 0


def test_a_run_is_prepared_once(tmp_path: Path, influxd: Influxd, influx: InfluxClient, target: Target,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI prepares the run and the controller runs what was prepared: the plan is read once and
    each module's script goes through `k6 inspect` once."""
    calls: Counter[str] = Counter()

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(controller, "load_plan", counted("plan", controller.load_plan))
    monkeypatch.setattr(k6, "preflight", counted("inspect", k6.preflight))
    monkeypatch.setenv("LOADBEARING_STATE_DIR", str(tmp_path / "state"))
    plan = write_plan(tmp_path, target.url, [{"name": n, "rate": 10, "duration": "1s"} for n in ("a", "b")])
    code = main(["run", "sequential", "--plan", str(plan), "--influx-url", f"{influxd.url}/{influx.db}",
                 "--out-dir", str(tmp_path / "runs")])
    assert code == 0
    assert calls == {"plan": 1, "inspect": 2}


def test_a_module_with_key_requests_off_runs_its_script_as_it_is(
        tmp_path: Path, influxd: Influxd, influx: InfluxClient, lb_env: dict[str, str], target: Target) -> None:
    """key_requests = false: no entry script for that module and no `key` on its requests; the
    module beside it, left on, is keyed as always."""
    plan = write_plan(tmp_path, target.url, [{"name": "plain", "rate": 20, "duration": "1s", "key_requests": False},
                                              {"name": "keyed", "rate": 20, "duration": "1s"}])
    res = run_cli(["run", "parallel", "--plan", str(plan), "--runners", "1",
                   "--influx-url", f"{influxd.url}/{influx.db}", "--out-dir", str(tmp_path / "runs")], lb_env)
    assert res.code == 0, res.stderr
    assert sorted(p.name for p in (res.run_dir / "k6").glob("*.entry.js")) == ["keyed.entry.js"]
    testid = quote_literal(res.record()["testid"])
    counts = {s["tags"]["module"]: (s["values"][0][1], s["values"][0][2]) for s in influx.series(
        f'SELECT count("value"), count("key") FROM "http_reqs" WHERE "testid" = {testid} GROUP BY "module"')}
    assert counts["plain"][0] > 0 and not counts["plain"][1]   # count() of a field never written: null
    assert counts["keyed"][0] > 0 and counts["keyed"][1] == counts["keyed"][0]
