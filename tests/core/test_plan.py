"""Plan errors: exit 2 (or 3 for hosts), a message naming the file and key, no traceback, no load."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.plan import load_plan
from tests.fixtures.runs import run_cli, write_plan, write_script
from tests.fixtures.target import Target

GOOD = [{"name": "a", "rate": 10, "duration": "1s"}]


def _run(plan: Path, env: dict[str, str], *extra: str) -> tuple[int, str]:
    res = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", "http://127.0.0.1:9", *extra], env)
    assert "Traceback" not in res.stderr + res.stdout
    return res.code, res.stderr


def _edit(plan: Path, old: str, new: str) -> None:
    text = plan.read_text()
    assert old in text
    plan.write_text(text.replace(old, new, 1))


CASES = [
    # (description, edit (old, new), expected key in the message)
    ("missing slo", ("[slo]\np95_ms = 500\nmax_error_rate = 0.01\n", ""), "slo: required key is missing"),
    ("unknown key", ('name = "test"', 'name = "test"\ncolour = "red"'), "colour: unknown key"),
    ("bad duration", ('duration = "1s"', 'duration = "ten seconds"'), "modules[0] (name = 'a').duration"),
    ("zero duration", ('duration = "1s"', 'duration = "0s"'), "must be longer than zero"),
    ("negative rate", ("rate = 10", "rate = -5"), "modules[0] (name = 'a').rate"),
    ("vus and rate", ("rate = 10", "rate = 10\nvus = 3"), "set exactly one of 'vus'"),
    ("neither vus nor rate", ("rate = 10", ""), "set exactly one of 'vus'"),
    ("huge vus", ("rate = 10", "vus = 100000000"), "modules[0] (name = 'a').vus"),
    ("non-http url", ('base_url = "http://127.0.0.1', 'base_url = "ftp://127.0.0.1'), "target.base_url"),
    ("missing script", ('script = "modules/a.js"', 'script = "modules/nope.js"'), "modules[0] (name = 'a').script"),
    ("not toml", ('name = "test"', 'name = "test'), "not valid TOML"),
    ("unknown service", ('duration = "1s"', 'duration = "1s"\nservice = "ghost"'), "'ghost' is not a [services.*]"),
    ("compare tolerance", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[compare]\np95_increase = -0.1\n"),
     "compare.p95_increase: -0.1 must be a share between 0 and 100"),
    ("compare unknown key", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[compare]\np95_increse = 0.1\n"),
     "compare.p95_increse: unknown key"),
    ("compare alpha", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[compare]\nalpha = 1.5\n"),
     "compare.alpha: 1.5 must be a significance level"),
    ("compare floor", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[compare]\nmin_effect_ms = \"50ms\"\n"),
     "compare.min_effect_ms"),
    ("capacity growth", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[capacity]\ngrowth = 1\n"),
     "capacity.growth: 1 must be a factor above 1"),
    ("capacity step", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[capacity]\nstep = \"1s\"\n"),
     "capacity.step: '1s' is shorter than 2s"),
    ("capacity max below start", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[capacity]\nstart = 2\nmax = 1\n"),
     "max = 1 is below start = 2"),
    ("capacity goodput", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[capacity]\nmin_goodput = 1.5\n"),
     "capacity.min_goodput: 1.5 must be a share between 0 and 1"),
    ("capacity rate", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[capacity]\nrates = { a = 0 }\n"),
     "capacity.rates: a = 0 must be iterations/s above 0"),
    ("capacity unknown module", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[capacity]\nrates = { zz = 3 }\n"),
     "capacity.rates.zz: 'zz' is not a module"),
    ("cache scope", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[services.api]\ncache_scope = \"redis\"\n"),
     "services.api.cache_scope: Input should be 'instance' or 'shared'"),
    ("capacity unknown service", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[capacity]\nservices = [\"ghost\"]\n"),
     "capacity.services[0]: 'ghost' is not a [services.*] table"),
    ("metrics_url list empty", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[services.api]\nmetrics_url = []\n"),
     "services.api.metrics_url: an empty list scrapes nothing; give one URL per instance"),
    ("metrics_url list bad item", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[services.api]\n"
                                   "metrics_url = [\"http://127.0.0.1:9/metrics\", \"ftp://x\"]\n"),
     "services.api.metrics_url: [1] 'ftp://x' is not an http(s) URL"),
    ("metrics_url list repeated", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[services.api]\n"
                                   "metrics_url = [\"http://127.0.0.1:9/m\", \"http://127.0.0.1:9/m/\"]\n"),
     "services.api.metrics_url: [1] repeats [0] ('http://127.0.0.1:9/m'); give each instance's own URL once"),
    ("metrics_url not a url", ("max_error_rate = 0.01\n", "max_error_rate = 0.01\n[services.api]\nmetrics_url = 42\n"),
     "services.api.metrics_url: 42 is neither a URL nor a list of URLs"),
]


@pytest.mark.parametrize(("desc", "edit", "expected"), CASES, ids=[c[0] for c in CASES])
def test_plan_errors_exit_2_and_name_the_key(tmp_path: Path, lb_env: dict[str, str], target: Target,
                                             desc: str, edit: tuple[str, str], expected: str) -> None:
    plan = write_plan(tmp_path, target.url, GOOD)
    _edit(plan, *edit)
    code, err = _run(plan, lb_env)
    assert code == 2, err
    assert str(plan) in err
    assert expected in err
    assert target.seen() == 0


def test_compare_tolerances_default_and_come_from_the_plan(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, "http://127.0.0.1:9", GOOD)
    defaults = load_plan(plan).compare
    assert (defaults.p95_increase, defaults.error_rate_increase, defaults.min_effect_ms, defaults.alpha) == \
        (0.10, 0.005, 50.0, 0.01)
    _edit(plan, "max_error_rate = 0.01\n",
          "max_error_rate = 0.01\n[compare]\np95_increase = 0.25\nerror_rate_increase = 0.01\nmin_effect_ms = 5\n")
    mine = load_plan(plan).compare
    assert (mine.p95_increase, mine.error_rate_increase, mine.min_effect_ms, mine.alpha) == (0.25, 0.01, 5.0, 0.01)


def test_hybrid_group_errors(tmp_path: Path, lb_env: dict[str, str], target: Target) -> None:
    mods = [{"name": n, "rate": 5, "duration": "1s"} for n in ("a", "b")]
    plan = write_plan(tmp_path, target.url, mods, extra='[strategies.hybrid]\ngroups = [["a", "zz"], ["a", "b"]]\n')
    res = run_cli(["run", "hybrid", "--plan", str(plan), "--influx-url", "http://127.0.0.1:9"], lb_env)
    assert res.code == 2
    assert "strategies.hybrid.groups[0]: 'zz' is not a module" in res.stderr
    assert "strategies.hybrid.groups[1]: module 'a' is already in group 0" in res.stderr


def test_hybrid_without_groups_is_exit_2(tmp_path: Path, lb_env: dict[str, str], target: Target) -> None:
    plan = write_plan(tmp_path, target.url, GOOD)
    res = run_cli(["run", "hybrid", "--plan", str(plan), "--influx-url", "http://127.0.0.1:9"], lb_env)
    assert res.code == 2
    assert "strategies.hybrid.groups" in res.stderr


def test_unknown_strategy_and_bad_flags_exit_2(tmp_path: Path, lb_env: dict[str, str], target: Target) -> None:
    plan = write_plan(tmp_path, target.url, GOOD)
    res = run_cli(["run", "chaos", "--plan", str(plan)], lb_env)
    assert res.code == 2 and "chaos" in res.stderr
    res = run_cli(["run", "parallel", "--plan", str(plan), "--runners", "0"], lb_env)
    assert res.code == 2 and "--runners" in res.stderr
    res = run_cli(["run", "parallel", "--plan", str(tmp_path / "missing.toml")], lb_env)
    assert res.code == 2 and "plan file not found" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("export default function () { (", "Unexpected end of input"),
        ("import x from 'k6/nothing';\nexport default function () {}", "unknown module: k6/nothing"),
        ("export function other() {}", "function 'default' not found"),
        ("export const options = { vus: 50, duration: '1h' };\nexport default function () {}",
         "the load shape comes from the plan"),
        ("export const options = { hosts: { 'a.example': '10.0.0.1' } };\nexport default function () {}",
         "options.hosts"),
    ],
    ids=["syntax", "missing-import", "no-default", "own-shape", "own-hosts"],
)
def test_broken_scripts_exit_2_before_load(tmp_path: Path, lb_env: dict[str, str], target: Target,
                                           body: str, expected: str) -> None:
    script = write_script(tmp_path, "a")
    (tmp_path / script).write_text(body)
    plan = write_plan(tmp_path, target.url, [{**GOOD[0], "script": script}])
    code, err = _run(plan, lb_env)
    assert code == 2, err
    assert expected in err
    assert "module 'a'" in err
    assert target.seen() == 0


@pytest.mark.parametrize("host", ["10.1.2.3", "example.com", "[fd00::1]", "192.168.0.10"])
def test_host_outside_allowlist_is_refused_with_exit_3(tmp_path: Path, lb_env: dict[str, str],
                                                       target: Target, host: str) -> None:
    plan = write_plan(tmp_path, f"http://{host}:8000", GOOD)
    code, err = _run(plan, lb_env)
    assert code == 3, err
    assert "not in target.allow_hosts" in err and "target.base_url" in err
    assert target.seen() == 0


def test_service_url_outside_allowlist_is_refused(tmp_path: Path, lb_env: dict[str, str], target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{**GOOD[0], "service": "api"}],
                      extra='[services.api]\nbase_url = "http://10.0.0.5:80"\n')
    code, err = _run(plan, lb_env)
    assert code == 3
    assert "services.api.base_url" in err
    assert target.seen() == 0


def test_a_services_cache_is_per_instance_unless_the_plan_says_shared(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, "http://127.0.0.1:9", GOOD)
    _edit(plan, "max_error_rate = 0.01\n", "max_error_rate = 0.01\n[services.api]\n[services.redis-api]\n"
          "cache_scope = \"shared\"\n")
    services = load_plan(plan).services
    assert (services["api"].cache_scope, services["redis-api"].cache_scope) == ("instance", "shared")
