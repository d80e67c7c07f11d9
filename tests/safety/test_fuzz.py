"""Property-based fuzzing: every plan and every argument list either loads or exits 2/3
with a message, never a traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import BadInput, Refused
from core.plan import load_plan
from loadbearing.cli import main

SCRIPT = "import http from 'k6/http';\nexport default function () { http.get(`${__ENV.BASE_URL}/`); }\n"

scalars = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12), st.floats(allow_nan=True), st.booleans(),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20), st.sampled_from(["60s", "1m30s", "0s", "-5s", "500ms", "abc", "", "99999h",
                                           "http://127.0.0.1:8000", "ftp://x", "modules/a.js", "../../etc/passwd"]),
)
keys = st.sampled_from(["name", "target", "slo", "modules", "services", "strategies", "base_url", "allow_hosts",
                        "p95_ms", "max_error_rate", "script", "vus", "rate", "max_vus", "duration", "stages",
                        "groups", "recovery", "hybrid", "service", "instances", "db_pool_size", "unknown"])
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, str):
        body = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in v)
        return f'"{body}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + "}"
    raise TypeError(v)


BASE = {
    "name": "fuzz",
    "target": {"base_url": "http://127.0.0.1:8000", "allow_hosts": ["127.0.0.1"]},
    "slo": {"p95_ms": 500, "max_error_rate": 0.01},
    "modules": [{"name": "a", "script": "modules/a.js", "vus": 1, "duration": "1s"}],
}


def _mutate(base: dict, path: list[str], value: object) -> dict:  # type: ignore[type-arg]
    import copy

    doc = copy.deepcopy(base)
    node: object = doc
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and node:
            node = node[0]
    if isinstance(node, dict):
        node[path[-1]] = value
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        node[0][path[-1]] = value
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(keys, min_size=1, max_size=3), value=values)
def test_mutated_plans_load_or_fail_cleanly(tmp_path: Path, path: list[str], value: object) -> None:
    (tmp_path / "modules").mkdir(exist_ok=True)
    (tmp_path / "modules" / "a.js").write_text(SCRIPT)
    doc = _mutate(BASE, path, value)
    text = "\n".join(f'"{k}" = {_toml_value(v)}' for k, v in doc.items())
    plan = tmp_path / "plan.toml"
    plan.write_text(text)
    tomllib.loads(text)  # the generator writes valid TOML; the plan loader judges the content
    try:
        load_plan(plan)
    except BadInput as exc:
        assert str(plan) in exc.message
    except Refused:
        pytest.fail("load_plan never refuses hosts; that is check_plan_hosts' job")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_as_a_plan(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    plan = tmp_path_factory.mktemp("p") / "plan.toml"
    plan.write_bytes(data)
    with pytest.raises(BadInput) as err:
        load_plan(plan)
    assert str(plan) in err.value.message


flags = st.sampled_from(["run", "sequential", "hybrid", "parallel", "chaos", "--plan", "--runners", "--backend",
                         "--influx-url", "--out-dir", "recommend", "report", "apply", "--stack", "--env-file",
                         "verify", "stack", "up", "down", "status", "--provider", "-1", "0", "99999999999",
                         "auto", "nope.toml", "http://127.0.0.1:9", "docker", "ecs", "process", "--json",
                         "--help", "", "\x00", "compare", "baseline", "set", "show", "--markdown", "--baseline",
                         "--force", "--file", "--baseline-file"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(flags, max_size=6))
def test_random_arguments_never_traceback(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path, args: list[str]) -> None:
    monkeypatch.setenv("LOADBEARING_STATE_DIR", str(tmp_path / "state"))  # never touch a real local stack
    if args[:2] == ["stack", "up"] or args[:1] == ["demo"]:
        return  # would start real services; covered by their own tests
    code = main(args)
    out = capsys.readouterr()
    assert code in (0, 1, 2, 3, 4)
    assert "Traceback" not in out.err + out.out
