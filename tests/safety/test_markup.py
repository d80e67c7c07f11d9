"""User-supplied strings are shown as they are: rich never reads them as markup.

A service named `svc[/]` used to raise rich's MarkupError in the end-of-run table, after
the load had run (a traceback instead of the result); `[bold]` in a name or a path
vanished from the output."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from core.plan import Slo
from core.rundir import ModuleRecord, RunDir, RunRecord
from demo.loop import _before_after, _changes_table
from runners.influxd import Influxd
from tests.fixtures.runs import run_cli, write_plan
from tests.fixtures.target import Target

NASTY = "svc[/]"
BOLD = "api[bold]x"


def test_a_run_with_markup_in_names_and_paths(tmp_path: Path, influxd: Influxd, lb_env: dict[str, str],
                                              target: Target) -> None:
    plan_dir = tmp_path / "plans[red]"
    plan_dir.mkdir()
    plan = write_plan(plan_dir, target.url, [
        {"name": "a", "rate": 5, "duration": "1s", "service": NASTY},
        {"name": "b", "rate": 5, "duration": "1s", "service": BOLD},
    ], extra=f'[services."{NASTY}"]\n[services."{BOLD}"]\n')
    out = tmp_path / "runs[/]"
    res = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", f"{influxd.url}/markup",
                   "--out-dir", str(out)], lb_env)
    assert "Traceback" not in res.stderr and "MarkupError" not in res.stderr
    assert res.code == 0, res.stderr
    assert res.run_dir.parent == out
    assert NASTY in res.stderr and BOLD in res.stderr  # the end-of-run table, as written in the plan
    assert {m["service"] for m in res.record()["modules"]} == {NASTY, BOLD}

    rec = run_cli(["recommend", str(res.run_dir)], lb_env)
    assert rec.code == 0, rec.stderr
    assert rec.stdout.strip() == str(res.run_dir / "recommendations.json")
    doc = json.loads((res.run_dir / "recommendations.json").read_text())
    assert {e["service"] for e in doc["endpoints"]} == {NASTY, BOLD}
    rep = run_cli(["report", str(res.run_dir)], lb_env)
    assert rep.code == 0, rep.stderr
    assert "Traceback" not in rec.stderr + rep.stderr

    # apply and verify, from a run that recommends a pool for svc[/]
    before = tmp_path / "before[/]"
    before.mkdir(parents=True)
    (before / "run.json").write_text((res.run_dir / "run.json").read_text())
    (before / "recommendations.json").write_text(json.dumps({
        "run_id": "before", "valid": True, "invalid_reasons": [], "findings": [], "endpoints": [],
        "recommendations": [{"kind": "db_pool", "service": NASTY, "current": 2, "recommended": 9,
                             "reason": "[bold]r", "evidence": {}, "predicted": {}}]}))
    env = tmp_path / "env[/]" / "svc.env"
    app = run_cli(["apply", str(before), "--env-file", str(env), "--service", NASTY], lb_env)
    assert app.code == 0, app.stderr
    assert f"changed {env}" in app.stderr and env.read_text() == "DB_POOL_SIZE=9\n"
    ver = run_cli(["verify", str(before), str(res.run_dir)], lb_env)
    assert "Traceback" not in ver.stderr
    assert ver.code == 1, ver.stderr  # the pool was not applied in the after run: not delivered
    assert f"db_pool {NASTY}" in ver.stderr


def _text(renderable: object) -> str:
    console = Console(record=True, width=200, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def test_demo_tables_show_names_as_they_are(tmp_path: Path) -> None:
    for name in ("before", "after"):
        RunDir.create(tmp_path, name).write_record(RunRecord(
            run_id=name, testid=name, strategy="parallel", plan="plan.toml", slo=Slo(p95_ms=500, max_error_rate=0.01),
            modules=[ModuleRecord(name=NASTY, service="s", runners=1, p95_ms=12.0, error_rate=0.0, requests=10,
                                  thresholds_ok=True)]), complete=True)
    assert NASTY in _text(_before_after(tmp_path / "before", tmp_path / "after", 500))
    text = _text(_changes_table([(BOLD, "DB_POOL_SIZE", "[2]", "5")]))
    assert BOLD in text and "[2]" in text
