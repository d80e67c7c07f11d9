"""`loadbearing compare` and `baseline` on real runs of the demo (real services, k6, influxd).

One module-scoped set of four parallel runs of the demo at the `compare` scale (profile
at 30 req/s; core-api modules with a few users; 8-10 s each):

- `before`: profile-api with a pool of 1 connection (20 req/s of capacity): its queue grows;
- `after1`, `after2`: the same plan with the fix (a pool of 3), twice;
- `slow`: the fixed plan again, with core-api's jobs_search slowed by 400 ms (DEMO_SLOW_ENDPOINTS).

The plans set `[compare] min_effect_ms = 100`: measured on this 2-core machine shared with
other work, the same plan run twice moved endpoint p95s by up to ~30 ms (and profile-api's
by ~15 ms); the floor keeps that noise from failing a build while 400 ms stands far above it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.influx import InfluxClient
from core.state import free_port
from demo.launcher import start_service
from demo.plan import write_plan
from grafana_dashboards import JSON_DIR
from grafana_dashboards.queries import Renderer, TimeRange, extract
from runners.controller import RunOptions, prepare
from runners.controller import run as run_strategy
from runners.influxd import Influxd
from tests.fixtures.runs import CliResult, cli_env, run_cli

pytestmark = pytest.mark.slow

SLOWED = "jobs_search"
DELAY_MS = 400
TOLERANCES = "\n[compare]\nmin_effect_ms = 100\n"


@dataclass
class Runs:
    root: Path
    dirs: dict[str, Path]
    influx: InfluxClient
    env: dict[str, str]

    def cli(self, *args: str) -> CliResult:
        res = run_cli([*args], self.env, timeout=120)
        assert "Traceback" not in res.stderr, res.stderr
        return res

    def compare(self, base: str, run: str, *flags: str) -> CliResult:
        return self.cli("compare", str(self.dirs[base]), str(self.dirs[run]), *flags)


def _run(root: Path, influx: InfluxClient, name: str, pool: int, slow: str | None = None) -> Path:
    ports = {"core-api": free_port(), "profile-api": free_port()}
    core_env = {"DEMO_SLOW_ENDPOINTS": slow} if slow else {}
    core = start_service("core-api", ports["core-api"], core_env)
    profile = start_service("profile-api", ports["profile-api"], {"DB_POOL_SIZE": str(pool)})
    try:
        plan = write_plan(root / "plans" / name / "plan.toml", "compare", core.url, profile.url, profile_pool=pool)
        plan.write_text(plan.read_text() + TOLERANCES)
        run_dir, _ = run_strategy(prepare(RunOptions(plan_path=plan, strategy="parallel", out_dir=root / "runs")), influx)
    finally:
        core.stop()
        profile.stop()
    return run_dir.path


@pytest.fixture(scope="module")
def runs(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("compare")
    influx = InfluxClient.from_url(influxd.url, db=f"compare_{uuid.uuid4().hex[:8]}")
    influx.ensure_db()
    dirs = {"before": _run(root, influx, "before", pool=1),
            "after1": _run(root, influx, "after1", pool=3),
            "after2": _run(root, influx, "after2", pool=3),
            "slow": _run(root, influx, "slow", pool=3, slow=f"{SLOWED}={DELAY_MS}")}
    yield Runs(root, dirs, influx, cli_env(root / "state"))


def _doc(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "comparison.json").read_text())
    return data


def _verdicts(doc: dict[str, Any]) -> dict[str, str]:
    return {f"{e['module']} {e['method']} {e['name']}": e["verdict"] for e in doc["endpoints"]}


def test_the_same_plan_twice_is_no_significant_change(runs: Runs) -> None:
    res = runs.compare("after1", "after2")
    assert res.code == 0, res.stderr
    assert res.stdout.strip() == str(runs.dirs["after2"] / "comparison.json")
    doc = _doc(runs.dirs["after2"])
    assert doc["verdict"] == "no significant change", res.stderr
    assert doc["regressed"] == [] and doc["improved"] == []
    assert len(doc["endpoints"]) >= 12            # every module's endpoints were compared
    assert "no significant change" in res.stderr
    # The runs ran against different ports: listed, not refused.
    assert any(d["key"] == "target.base_url" for d in doc["differences"]["informational"])


def test_before_the_fix_against_after_profile_improved_nothing_regressed(runs: Runs) -> None:
    res = runs.compare("before", "after1", "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc == _doc(runs.dirs["after1"])
    assert doc["regressed"] == []
    verdicts = _verdicts(doc)
    profile = {k: v for k, v in verdicts.items() if k.startswith("profile ")}
    assert profile and set(profile.values()) == {"improved"}, profile
    assert all(v != "regressed" for v in verdicts.values())
    for e in doc["endpoints"]:
        if e["module"] == "profile":
            assert e["run"]["p95_ms"] < e["baseline"]["p95_ms"] / 10    # seconds of queueing -> ~60 ms
            assert e["p95"]["p_faster"] < doc["tolerances"]["per_test_alpha"]
    # What the fix changed is listed; it is what a before/after comparison is for.
    (pool,) = [d for d in doc["differences"]["informational"] if d["key"] == "services.profile-api.db_pool_size"]
    assert (pool["baseline"], pool["run"]) == (1, 3)


def test_a_slowed_endpoint_regresses_and_nothing_else_is_flagged(runs: Runs) -> None:
    res = runs.compare("after1", "slow", "--markdown")
    assert res.code == 1, res.stderr
    doc = _doc(runs.dirs["slow"])
    assert doc["verdict"] == "regressed"
    assert doc["regressed"] == [f"jobs GET {SLOWED}"]
    flagged = {k: v for k, v in _verdicts(doc).items() if v != "no significant change"}
    assert flagged == {f"jobs GET {SLOWED}": "regressed"}
    slowed = doc["endpoints"][0]                       # regressions first
    assert slowed["name"] == SLOWED and slowed["run"]["p95_ms"] >= DELAY_MS
    assert slowed["p95"]["change_ms"] > doc["tolerances"]["min_effect_ms"]
    assert slowed["p95"]["share_above"] > 0.9          # nearly every request above the baseline's p95
    # The Markdown (stdout, and comparison.md) leads with the regression.
    md = res.stdout.rstrip("\n")
    assert md == (runs.dirs["slow"] / "comparison.md").read_text().rstrip("\n")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert rows[1].startswith(f"| **regressed** | jobs GET {SLOWED} |"), rows[:2]
    assert "1 regressed" in md.splitlines()[0]


def test_a_pinned_baseline_is_a_file_that_outlives_its_run_directory(runs: Runs) -> None:
    pinned_dir = runs.root / "runs" / "pinned-copy"
    shutil.copytree(runs.dirs["after1"], pinned_dir)
    res = runs.cli("baseline", "set", str(pinned_dir))
    assert res.code == 0, res.stderr
    file = runs.root / "runs" / "baseline.json"
    assert res.stdout.strip() == str(file)
    shutil.rmtree(pinned_dir)                          # the numbers are in the file, not behind a pointer
    shown = runs.cli("baseline", "show", "--out-dir", str(runs.root / "runs"))
    assert shown.code == 0
    (line,) = shown.stdout.strip().splitlines()
    assert line.startswith("demo-compare/parallel\t")
    regressed = runs.cli("compare", "--baseline", str(runs.dirs["slow"]))
    assert regressed.code == 1, regressed.stderr
    assert _doc(runs.dirs["slow"])["regressed"] == [f"jobs GET {SLOWED}"]
    same = runs.cli("compare", "--baseline", str(runs.dirs["after2"]))
    assert same.code == 0, same.stderr
    assert _doc(runs.dirs["after2"])["verdict"] == "no significant change"


def test_runs_of_different_strategies_are_refused_unless_forced(runs: Runs) -> None:
    other = runs.root / "runs" / "other-strategy"
    shutil.copytree(runs.dirs["after2"], other)
    (other / "comparison.json").unlink(missing_ok=True)
    record = json.loads((other / "run.json").read_text())
    record["strategy"] = "sequential"
    (other / "run.json").write_text(json.dumps(record))
    res = runs.cli("compare", str(runs.dirs["after1"]), str(other))
    assert res.code == 2
    assert "ran different loads" in res.stderr and "strategy: \"parallel\" -> \"sequential\"" in res.stderr
    assert "--force" in res.stderr
    assert not (other / "comparison.json").exists()   # refused before anything is written
    forced = runs.cli("compare", str(runs.dirs["after1"]), str(other), "--force", "--markdown")
    assert forced.code == 0, forced.stderr
    assert "Compared with --force although the loads differ" in forced.stdout and "`strategy`" in forced.stdout
    assert _doc(other)["forced"] is True


def test_bad_input_exits_2_and_says_what_to_do(runs: Runs, tmp_path: Path) -> None:
    one = runs.cli("compare", str(runs.dirs["after1"]))
    assert one.code == 2 and "give BASELINE_RUN and RUN" in one.stderr
    both = runs.compare("after1", "after2", "--json", "--markdown")
    assert both.code == 2 and "pick one" in both.stderr
    missing = runs.cli("compare", str(tmp_path / "nope"), str(runs.dirs["after1"]))
    assert missing.code == 2 and "not a directory" in missing.stderr
    lonely = tmp_path / "lonely"
    shutil.copytree(runs.dirs["after2"], lonely / "run")
    unpinned = runs.cli("compare", "--baseline", str(lonely / "run"))
    assert unpinned.code == 2
    assert f"{lonely / 'baseline.json'}: no baseline pinned for demo-compare/parallel" in unpinned.stderr
    assert "loadbearing baseline set" in unpinned.stderr


def test_report_html_has_both_runs_p95_on_one_plot(runs: Runs) -> None:
    assert runs.compare("after1", "slow").code == 1
    res = runs.cli("report", str(runs.dirs["slow"]))
    assert res.code == 0, res.stderr
    page = (runs.dirs["slow"] / "report.html").read_text()
    section = page[page.index("<h2>Compared with baseline"):]
    assert runs.dirs["after1"].name in section[:200]
    chart = section[section.index('id="compare-p95-core-api"'):]
    chart = chart[:chart.index("</svg>")]
    assert f"jobs GET {SLOWED} (run)" in chart and f"jobs GET {SLOWED} (baseline)" in chart
    assert 'stroke-dasharray="7 4"' in chart          # the baseline is dashed


def test_the_compare_dashboard_shows_the_regression(runs: Runs) -> None:
    """The dashboard's queries, on the series `compare` stored for these real runs."""
    assert runs.compare("after1", "slow").code == 1
    board = json.loads((JSON_DIR / "loadbearing-compare.json").read_text())
    testid = {k: json.loads((d / "run.json").read_text())["testid"] for k, d in runs.dirs.items()}
    renderer = Renderer(board, TimeRange(0, 600_000), {"baseline": testid["after1"], "run": testid["slow"],
                                                       "endpoint": SLOWED})
    base_q, run_q = [q for q in extract(board) if q.kind == "panel" and q.title == "p95 by endpoint"]
    p95 = {}
    for name, q in (("baseline", base_q), ("run", run_q)):
        rows = [r for s in runs.influx.query(renderer.render(q))[0].get("series", []) for r in s["values"]]
        assert rows, name
        p95[name] = max(v for _, v in rows)
        # on the run-relative axis: within the run's first seconds, never at its wall-clock time
        assert 0 <= min(t for t, _ in rows) < 5_000 and max(t for t, _ in rows) < 60_000
    assert p95["run"] >= DELAY_MS > 2 * p95["baseline"]
