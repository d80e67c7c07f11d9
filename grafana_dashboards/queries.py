"""Every query of a dashboard JSON, rendered the way Grafana renders InfluxQL.

`extract(dashboard)` lists each panel target (rows' nested panels included), each
query variable and each InfluxDB annotation. `Renderer(...).render(query)` substitutes:

- `$timeFilter` -> `time >= <from>ms and time <= <to>ms` (Grafana's InfluxQL time filter);
- `$__interval` / `$interval` / `$__interval_ms`: the range divided by the panel's
  max data points (Grafana: `maxDataPoints`, else the panel's width in pixels), rounded
  to Grafana's nice intervals (`round_interval`) and raised to the low limit (the
  panel's `interval`, else the datasource's `timeInterval`);
- `$__from`, `$__to` (epoch ms), `$__range`, `$__range_s`, `$__range_ms`;
- dashboard variables (`$var`, `${var}`, `${var:format}`, `[[var]]`) formatted like
  Grafana's InfluxDB datasource: numbers as-is; values of multi-value or include-All
  variables, and values used inside a `=~ /.../` regex, regex-escaped, several values as
  `(a|b)`; All (`$__all`) as the variable's custom all value, unescaped (else all options).

Unknown `$names` are left as they are (as Grafana does); `unresolved()` finds them.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ALL = "$__all"
DEFAULT_MIN_INTERVAL = "1s"  # the provisioned datasource's jsonData.timeInterval
SCREEN_WIDTH_PX = 1920  # a 24-column grid on a 1920 px screen: panel width ~ w * 80 px
GRAFANA_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)
# A regex literal after =~ or !~ (Grafana's regexMatcher for InfluxQL).
REGEX_LITERAL = re.compile(r"(\s*(=|!)~\s*)/((?![*+?])(?:[^\r\n\[/\\]|\\.|\[(?:[^\r\n\]\\]|\\.)*\])+)/")
REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
JS_NUMBER_PREFIX = re.compile(r"\s*[+-]?(\d|\.\d|Infinity)")

Kind = Literal["panel", "variable", "annotation"]
Value = str | Sequence[str]


@dataclass(frozen=True)
class Query:
    """One query as stored in a dashboard, with what rendering it needs."""

    dashboard_uid: str
    kind: Kind
    title: str  # panel title, variable name or annotation name
    text: str  # the raw InfluxQL with Grafana macros
    datasource: Mapping[str, Any] | None
    panel_id: int | None = None
    ref_id: str | None = None
    repeat: str | None = None  # the variable a repeated panel iterates over
    interval: str | None = None  # the panel's min interval
    max_data_points: int | None = None
    width: int = 24  # grid columns
    result_format: str = "time_series"

    @property
    def label(self) -> str:
        ref = f" {self.ref_id}" if self.ref_id else ""
        return f"{self.dashboard_uid} {self.kind} {self.title!r}{ref}"


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    default: str | None = None  # textbox/constant value


@dataclass(frozen=True)
class TimeRange:
    start_ms: int
    end_ms: int

    @classmethod
    def around(cls, start_s: float, end_s: float, margin_s: float = 0.0) -> TimeRange:
        return cls(int((start_s - margin_s) * 1000), math.ceil((end_s + margin_s) * 1000))

    @property
    def span_ms(self) -> int:
        return self.end_ms - self.start_ms


def _panels(panels: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels") or []))
    return out


def _variable_query(raw: Any) -> str:
    if isinstance(raw, Mapping):
        return str(raw.get("query", ""))
    return str(raw or "")


def extract(dashboard: Mapping[str, Any]) -> list[Query]:
    """Every query of the dashboard: panel targets, query variables, InfluxDB annotations."""
    uid = str(dashboard.get("uid", ""))
    out: list[Query] = []
    for panel in _panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            if target.get("hide"):
                continue
            out.append(Query(
                dashboard_uid=uid, kind="panel", title=str(panel.get("title", "")),
                text=str(target.get("query", "")),
                datasource=target.get("datasource") or panel.get("datasource"),
                panel_id=panel.get("id"), ref_id=target.get("refId"), repeat=panel.get("repeat"),
                interval=panel.get("interval"), max_data_points=panel.get("maxDataPoints"),
                width=int((panel.get("gridPos") or {}).get("w", 24)),
                result_format=str(target.get("resultFormat", "time_series")),
            ))
    for var in (dashboard.get("templating") or {}).get("list") or []:
        if var.get("type") == "query":
            out.append(Query(dashboard_uid=uid, kind="variable", title=str(var["name"]),
                             text=_variable_query(var.get("query")), datasource=var.get("datasource")))
    for ann in (dashboard.get("annotations") or {}).get("list") or []:
        ds = ann.get("datasource") or {}
        if ds.get("type") != "influxdb":
            continue
        target = ann.get("target") if isinstance(ann.get("target"), Mapping) else {}
        text = (target or {}).get("query") or ann.get("query") or ""
        out.append(Query(dashboard_uid=uid, kind="annotation", title=str(ann.get("name", "")),
                         text=str(text), datasource=ds))
    return out


def variables(dashboard: Mapping[str, Any]) -> dict[str, Variable]:
    out: dict[str, Variable] = {}
    for var in (dashboard.get("templating") or {}).get("list") or []:
        current = var.get("current") or {}
        default = None
        if var.get("type") in ("textbox", "constant", "custom"):
            default = current.get("value") or _variable_query(var.get("query")) or None
        out[var["name"]] = Variable(
            name=var["name"], type=str(var.get("type")), multi=bool(var.get("multi")),
            include_all=bool(var.get("includeAll")), all_value=var.get("allValue") or None,
            default=default if isinstance(default, str) else None,
        )
    return out


# --- Grafana's interval arithmetic (rangeutil.roundInterval / secondsToHms) ---------------

_ROUNDING_MS = [
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
    (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000),
    (90000, 60000), (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000),
    (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
    (16200000, 10800000), (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
    (1814400000, 604800000), (3628800000, 2592000000),
]
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
             "y": 31_536_000_000}


def round_interval(ms: float) -> int:
    """Grafana's `roundInterval`: the 'nice' interval for a raw interval in ms."""
    for limit, nice in _ROUNDING_MS:
        if ms < limit:
            return nice
    return 31_536_000_000


def parse_interval(text: str) -> int:
    """'1s', '100ms', '>10s' (Grafana's min-interval form) -> ms."""
    m = re.fullmatch(r">?\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)", text.strip())
    if not m:
        raise ValueError(f"not an interval: {text!r} (e.g. 10s, 500ms, 1m)")
    return int(float(m.group(1)) * _UNITS_MS[m.group(2)])


def format_interval(ms: int) -> str:
    """Grafana's `secondsToHms` for an interval in ms: the largest whole unit (1y ... 10s, 500ms)."""
    seconds = ms / 1000
    rest = seconds % 31_536_000
    for n, unit in (
        (math.floor(seconds / 31_536_000), "y"),
        (math.floor(rest / 86_400), "d"),
        (math.floor((rest % 86_400) / 3_600), "h"),
        (math.floor((rest % 3_600) / 60), "m"),
        (math.floor(rest % 60), "s"),
        (math.floor(seconds * 1000), "ms"),
    ):
        if n:
            return f"{n}{unit}"
    return "less than a millisecond"


def interval_ms(time_range: TimeRange, max_data_points: int, min_interval: str | None) -> int:
    """Grafana's `calculateInterval`: round(range / points), at least the low limit."""
    low = parse_interval(min_interval) if min_interval else 1
    return max(round_interval(time_range.span_ms / max(max_data_points, 1)), low)


# --- variable formatting (InfluxDB datasource's interpolateQueryExpr) --------------------

def escape_regex(value: str) -> str:
    """Grafana's `escapeRegex`: backslash every regex special character and `/`."""
    return REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def _regex_list(values: Sequence[str]) -> str:
    escaped = [escape_regex(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _in_regex(query: str, name: str) -> bool:
    inside = re.compile(r"/(?:\^)?(.*)(\$" + re.escape(name) + r")(?:\$)?/")
    return any(inside.search(m.group(0)) for m in REGEX_LITERAL.finditer(query))


def _format(value: Value, fmt: str | None, var: Variable | None, query: str) -> str:
    values = [value] if isinstance(value, str) else list(value)
    if fmt in (None, ""):
        if isinstance(value, str) and JS_NUMBER_PREFIX.match(value):
            return value
        if var is not None and (var.multi or var.include_all or _in_regex(query, var.name)):
            return _regex_list(values)
        return ",".join(values)
    if fmt == "raw":
        return ",".join(values)
    if fmt == "regex":
        return _regex_list(values)
    if fmt == "pipe":
        return "|".join(values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    raise ValueError(f"variable format {fmt!r} is not supported here")


@dataclass
class Renderer:
    """Renders queries of one dashboard for a time range and chosen variable values.

    `values` maps variable names to a value, a list of values (multi-select) or `ALL`.
    Textbox/constant variables default to their dashboard value; include-All variables
    default to All; other query variables must be given. `all_options` gives the option
    lists Grafana would use for All when a variable has no custom all value.
    """

    dashboard: Mapping[str, Any]
    time_range: TimeRange
    values: Mapping[str, Value] = field(default_factory=dict)
    min_interval: str = DEFAULT_MIN_INTERVAL
    all_options: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._vars = variables(self.dashboard)

    def interval_ms(self, query: Query) -> int:
        points = query.max_data_points or round(query.width * SCREEN_WIDTH_PX / 24)
        return interval_ms(self.time_range, points, query.interval or self.min_interval)

    def _builtins(self, query: Query) -> dict[str, str]:
        iv = self.interval_ms(query)
        span = self.time_range.span_ms
        return {
            "timeFilter": f"time >= {self.time_range.start_ms}ms and time <= {self.time_range.end_ms}ms",
            "__interval": format_interval(iv),
            "interval": format_interval(iv),
            "__interval_ms": str(iv),
            "__from": str(self.time_range.start_ms),
            "__to": str(self.time_range.end_ms),
            "__range_ms": str(span),
            "__range_s": str(round(span / 1000)),
            "__range": f"{round(span / 1000)}s",
        }

    def value_of(self, name: str, scoped: Mapping[str, Value] | None = None) -> Value | None:
        var = self._vars.get(name)
        if scoped and name in scoped:
            return scoped[name]
        if name in self.values:
            return self.values[name]
        if var is None:
            return None
        if var.default is not None:
            return var.default
        if var.include_all:
            return ALL
        raise KeyError(f"no value for dashboard variable {name!r}; pass it in values")

    def render(self, query: Query | str, scoped: Mapping[str, Value] | None = None) -> str:
        """The query with every macro and variable substituted (`scoped`: e.g. a repeat value)."""
        q = query if isinstance(query, Query) else Query("", "panel", "", str(query), None)
        text = q.text
        builtins = self._builtins(q)

        def substitute(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2) or m.group(4)
            fmt = m.group(3) or m.group(6)
            if name in builtins and not (scoped and name in scoped):
                return builtins[name]
            value = self.value_of(name, scoped)
            if value is None:
                return m.group(0)
            var = self._vars.get(name)
            if value == ALL or (not isinstance(value, str) and list(value) == [ALL]):
                if var is not None and var.all_value is not None:
                    return var.all_value
                options = self.all_options.get(name)
                if options is None:
                    raise KeyError(f"variable {name!r} is All without a custom all value; pass all_options")
                value = list(options)
            return _format(value, fmt, var, text)

        return GRAFANA_VARIABLE.sub(substitute, text)


def unresolved(rendered: str) -> list[str]:
    """`$names` still in a rendered query (a `$` that ends a regex, as in `/^a$/`, is not one)."""
    return re.findall(r"\$\{?\w+", rendered)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    """Print every query of a dashboard JSON, rendered for a run and time range."""
    parser = argparse.ArgumentParser(prog="python -m grafana_dashboards.queries", description=main.__doc__)
    parser.add_argument("dashboard", type=Path, help="a dashboard JSON file")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable value; NAME=a,b for several values; NAME=$__all for All")
    parser.add_argument("--from-ms", type=int, help="range start, epoch ms (default: 30 minutes ago)")
    parser.add_argument("--to-ms", type=int, help="range end, epoch ms (default: now)")
    args = parser.parse_args(argv)
    now_ms = int(time.time() * 1000)
    values: dict[str, Value] = {}
    for item in args.var:
        name, _, raw = item.partition("=")
        values[name] = raw.split(",") if "," in raw else raw
    dashboard = load(args.dashboard)
    renderer = Renderer(dashboard, TimeRange(args.from_ms or now_ms - 1_800_000, args.to_ms or now_ms),
                        values)
    try:
        for query in extract(dashboard):
            print(f"-- {query.label}\n{renderer.render(query)};")
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
