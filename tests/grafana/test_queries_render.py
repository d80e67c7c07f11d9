"""Macro and variable substitution, checked against what Grafana's InfluxDB datasource does."""

from __future__ import annotations

from typing import Any

import pytest

from grafana_dashboards.queries import (
    ALL,
    Query,
    Renderer,
    TimeRange,
    escape_regex,
    extract,
    format_interval,
    interval_ms,
    round_interval,
    unresolved,
)


def board(**extra_vars: Any) -> dict[str, Any]:
    return {
        "uid": "b",
        "panels": [{"id": 1, "title": "p", "gridPos": {"w": 12, "h": 8, "x": 0, "y": 0},
                    "targets": [{"refId": "A", "query": "SELECT 1 WHERE $timeFilter"},
                                {"refId": "B", "query": "hidden", "hide": True}]},
                   {"id": 2, "type": "row", "title": "r", "panels": [
                       {"id": 3, "title": "inner", "interval": "10s", "maxDataPoints": 100,
                        "targets": [{"refId": "A", "query": "SELECT 2"}]}]}],
        "templating": {"list": [
            {"name": "testid", "type": "query", "query": "SHOW TAG VALUES WITH KEY = \"testid\""},
            {"name": "module", "type": "query", "multi": True, "includeAll": True, "allValue": ".*",
             "query": {"query": "SHOW TAG VALUES WITH KEY = \"module\"", "refId": "X"}},
            {"name": "host", "type": "query", "multi": False, "includeAll": True, "query": "q"},
            {"name": "slo", "type": "textbox", "query": "500"},
            *extra_vars.get("more", []),
        ]},
        "annotations": {"list": [
            {"name": "builtin", "datasource": {"type": "grafana", "uid": "-- Grafana --"}},
            {"name": "legacy", "datasource": {"type": "influxdb", "uid": "x"}, "query": "SELECT legacy"},
            {"name": "new", "datasource": {"type": "influxdb", "uid": "x"}, "target": {"query": "SELECT new"}},
        ]},
    }


RANGE = TimeRange(1_700_000_000_000, 1_700_000_020_000)  # 20 s


def render(text: str, values: dict[str, Any] | None = None, **kw: Any) -> str:
    return Renderer(board(), RANGE, values or {"testid": "run-1"}, **kw).render(text)


def test_extract_finds_targets_nested_panels_variables_and_influx_annotations() -> None:
    found = [(q.kind, q.title, q.text) for q in extract(board())]
    assert found == [
        ("panel", "p", "SELECT 1 WHERE $timeFilter"),
        ("panel", "inner", "SELECT 2"),
        ("variable", "testid", 'SHOW TAG VALUES WITH KEY = "testid"'),
        ("variable", "module", 'SHOW TAG VALUES WITH KEY = "module"'),
        ("variable", "host", "q"),
        ("annotation", "legacy", "SELECT legacy"),
        ("annotation", "new", "SELECT new"),
    ]


def test_time_filter_is_grafanas_influxql_time_filter() -> None:
    assert render("WHERE $timeFilter") == "WHERE time >= 1700000000000ms and time <= 1700000020000ms"


@pytest.mark.parametrize(("raw_ms", "nice"), [
    (12, 10), (20, 20), (1400, 1000), (1500, 2000), (9000, 10000), (16000, 15000), (40000, 30000),
    (100_000, 120_000), (4_000_000, 3_600_000), (10 ** 11, 31_536_000_000),
])
def test_round_interval_matches_grafanas_table(raw_ms: int, nice: int) -> None:
    assert round_interval(raw_ms) == nice


@pytest.mark.parametrize(("ms", "text"), [(500, "500ms"), (1000, "1s"), (10_000, "10s"), (60_000, "1m"),
                                          (90_000, "1m"), (3_600_000, "1h"), (172_800_000, "2d")])
def test_intervals_print_like_grafana(ms: int, text: str) -> None:
    assert format_interval(ms) == text


def test_interval_comes_from_range_points_and_low_limit() -> None:
    assert interval_ms(RANGE, 960, "1s") == 1000  # 20.8 ms -> 20 ms, raised to the 1 s low limit
    assert interval_ms(TimeRange(0, 3_600_000), 960, "1s") == 5000  # 3750 ms -> 5 s
    assert interval_ms(TimeRange(0, 86_400_000), 960, None) == 120_000


def test_interval_macros_follow_the_panel() -> None:
    b = board()
    r = Renderer(b, TimeRange(0, 3_600_000), {"testid": "x"})
    outer, inner = (q for q in extract(b) if q.kind == "panel")
    text = "GROUP BY time($__interval) $__interval_ms ${__interval} [[__interval]] $interval"
    assert r.render(Query(**{**outer.__dict__, "text": text})) == "GROUP BY time(5s) 5000 5s 5s 5s"
    # the nested panel: maxDataPoints 100 -> 36 s -> 30 s
    assert r.render(Query(**{**inner.__dict__, "text": text})) == "GROUP BY time(30s) 30000 30s 30s 30s"


def test_range_macros() -> None:
    assert render("$__from $__to $__range_s $__range_ms $__range") == \
        "1700000000000 1700000020000 20 20000 20s"


def test_single_value_variable_is_raw_outside_a_regex_and_escaped_inside() -> None:
    v = {"testid": "run.01/a"}
    assert render("\"testid\" = '$testid'", v) == "\"testid\" = 'run.01/a'"
    assert render('"testid" =~ /^$testid$/', v) == '"testid" =~ /^run\\.01\\/a$/'


def test_a_value_that_starts_like_a_number_is_never_escaped() -> None:
    """Grafana's quirk (parseFloat): why the dashboards match testid with = '...', not a regex."""
    assert render('"testid" =~ /^$testid$/', {"testid": "20260101T00.1"}) == '"testid" =~ /^20260101T00.1$/'


def test_multi_value_variables_are_escaped_and_joined() -> None:
    base = {"testid": "t"}
    assert render('"module" =~ /^$module$/', {**base, "module": "shop.v2"}) == '"module" =~ /^shop\\.v2$/'
    assert render('"module" =~ /^$module$/', {**base, "module": ["a+b", "c"]}) == '"module" =~ /^(a\\+b|c)$/'
    assert render('"module" =~ /^${module}$/', {**base, "module": ["a"]}) == '"module" =~ /^a$/'


def test_all_uses_the_custom_all_value_unescaped() -> None:
    assert render('"module" =~ /^$module$/', {"testid": "t", "module": ALL}) == '"module" =~ /^.*$/'
    # include-All variables default to All
    assert render('"module" =~ /^$module$/') == '"module" =~ /^.*$/'


def test_all_without_custom_value_uses_every_option() -> None:
    r = Renderer(board(), RANGE, {"testid": "t"}, all_options={"host": ["a.1", "b"]})
    assert r.render('"host" =~ /^$host$/') == '"host" =~ /^(a\\.1|b)$/'
    with pytest.raises(KeyError, match="host"):
        Renderer(board(), RANGE, {"testid": "t"}).render("$host")


def test_numbers_are_never_escaped_and_textbox_defaults_apply() -> None:
    assert render("count(value) * 0 + $slo") == "count(value) * 0 + 500"
    assert render("$slo", {"testid": "t", "slo": "2.5"}) == "2.5"


def test_formats() -> None:
    v = {"testid": "t", "module": ["a.b", "c"]}
    assert render("${module:csv}", v) == "a.b,c"
    assert render("${module:pipe}", v) == "a.b|c"
    assert render("${module:regex}", v) == "(a\\.b|c)"
    assert render("${module:raw}", v) == "a.b,c"
    assert render("${module:singlequote}", v) == "'a.b','c'"
    assert render("[[module:doublequote]]", v) == '"a.b","c"'
    with pytest.raises(ValueError, match="lucene"):
        render("${module:lucene}", v)


def test_scoped_values_win_like_a_repeated_panel() -> None:
    r = Renderer(board(), RANGE, {"testid": "t", "module": ALL})
    assert r.render('"module" =~ /^$module$/', {"module": "shop"}) == '"module" =~ /^shop$/'


def test_query_variable_without_value_is_an_error_and_unknown_names_stay() -> None:
    with pytest.raises(KeyError, match="testid"):
        Renderer(board(), RANGE, {}).render("$testid")
    out = render("$nosuch and /^x$/")
    assert out == "$nosuch and /^x$/"
    assert unresolved(out) == ["$nosuch"]


def test_escape_regex_escapes_slashes_for_influxql() -> None:
    assert escape_regex("/special/path") == "\\/special\\/path"
    assert escape_regex("a(b)[c]{d}|^$*+?.") == "a\\(b\\)\\[c\\]\\{d\\}\\|\\^\\$\\*\\+\\?\\."
