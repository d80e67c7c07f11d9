"""Line protocol: what `core.influx.line` writes is what a real influxd stores, one point per line."""

from __future__ import annotations

import logging
import math

import pytest

from core.influx import InfluxClient, line

# (measurement, tags, fields) -> the line; the table pins the escaping rules of the
# line-protocol reference: measurement: comma, space; tag keys/values and field keys:
# comma, equals, space; newline, carriage return and tab as \n, \r, \t wherever they
# would end the line or the element; string fields: backslash and double quote.
ESCAPES = [
    ("m", {"t": "a\nb"}, {"v": 1}, "m,t=a\\nb v=1i 1"),
    ("m", {"t": "a\r\tb"}, {"v": 1}, "m,t=a\\r\\tb v=1i 1"),
    ("m", {"t": "a,b c=d"}, {"v": 1}, "m,t=a\\,b\\ c\\=d v=1i 1"),
    ("m", {"t\n": "x"}, {"f\n": 1}, "m,t\\n=x f\\n=1i 1"),
    ("a=b c,d", {}, {"v": 1}, "a=b\\ c\\,d v=1i 1"),  # `=` is not escaped in a measurement
    ("m\n", {}, {"v": 1}, "m\\n v=1i 1"),
    ("m", {}, {"s": 'say "hi"\\'}, 'm s="say \\"hi\\"\\\\" 1'),
    ("m", {}, {"v": 0.5, "b": True, "n": 3}, "m v=0.5,b=true,n=3i 1"),
    ("m", {"empty": ""}, {"v": 1}, "m v=1i 1"),  # an empty tag value is left out
]


@pytest.mark.parametrize(("measurement", "tags", "fields", "expected"), ESCAPES)
def test_line_escapes(measurement: str, tags: dict[str, str], fields: dict[str, object], expected: str) -> None:
    assert line(measurement, tags, fields, 1) == expected


def test_non_finite_floats_are_left_out_and_named_in_a_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="core.influx"):
        assert line("m", {"t": "x"}, {"a": math.nan, "b": 1.5, "c": math.inf}, 7) == "m,t=x b=1.5 7"
        assert line("m", {}, {"a": -math.inf}, 7) == ""  # no field left: no point
    text = caplog.text
    assert "m" in text and "'a'" in text and "'c'" in text and "nan" in text and "inf" in text


def test_a_real_influxd_stores_every_point_of_a_batch(influx: InfluxClient) -> None:
    """Before: a newline in a tag split a point in two and `v=nan` made influxd refuse the
    whole batch (HTTP 400), so none of these points were stored."""
    influx.write([
        line("lp", {"endpoint": "two\nlines", "tab": "a\tb"}, {"v": 1.0}, 1_000),
        line("lp", {"endpoint": "plain"}, {"v": math.nan, "w": 2.0}, 2_000),
        line("lp", {"endpoint": "plain"}, {"v": math.inf}, 3_000),  # nothing finite: not written
        line("lp", {"endpoint": "crlf\r\n"}, {"v": 3.0, "note": "line one\nline two"}, 4_000),
        line("odd=name", {}, {"v": 4.0}, 5_000),
        line("lp", {"endpoint": "C:\\dir\\x"}, {"v": 5.0}, 6_000),
    ])
    rows = influx.rows('SELECT * FROM "lp"')
    assert [(r["endpoint"], r["v"], r["w"]) for r in rows] == [
        ("two\\nlines", 1.0, None), ("plain", None, 2.0), ("crlf\\r\\n", 3.0, None),
        ("C:\\dir\\x", 5.0, None)]
    assert rows[0]["tab"] == "a\\tb"
    assert rows[2]["note"] == "line one\nline two"
    assert influx.rows('SELECT "v" FROM "odd=name"')[0]["v"] == 4.0
