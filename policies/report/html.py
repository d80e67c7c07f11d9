"""report.html: one self-contained file (inline CSS and SVG, no scripts, no network).

When `loadbearing compare` compared the run with a baseline (RUN_DIR/comparison.json),
a section with its verdict, table and both runs' p95 over time on one plot per service.
When the run is a capacity run, or its recommendations were sized from one, a section
plotting it (policies.report.capacity).
Per service: requests/s and p95 per endpoint over time (with the SLO line),
failed requests/s, and — when its metrics_url exposed its pool — the connection-pool
occupancy. Then the recommendations with their reasons, predictions and evidence (the
InfluxQL queries and the numbers they returned), the findings and the endpoints.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from policies.recommend import Analysis, headline
from policies.report.capacity import section as capacity_section
from policies.report.comparison import section as compare_section
from policies.report.svg import Series, line_chart

STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px}table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f5f5f5}
td.n{text-align:right}.bad{color:#b00020;font-weight:bold}.ok{color:#1b7a1b;font-weight:bold}
.card{border:1px solid #ccc;border-radius:6px;padding:10px 14px;margin:10px 0;background:#fafafa}
pre{background:#f4f4f4;padding:8px;overflow-x:auto;font-size:12px}details{margin:6px 0}
.chart{display:block;margin:8px 0;border:1px solid #eee}
"""


def _rel(t_ms: int, start_ms: int, step_s: int = 0) -> float:
    """Seconds since the run started, at the bucket's middle."""
    return round(max(0.0, (t_ms - start_ms) / 1000.0 + step_s / 2), 3)


def service_charts(analysis: Analysis, service: str) -> list[str]:
    """The SVG charts of one service."""
    inputs, m = analysis.inputs, analysis.measurements
    start = inputs.started_ms
    keys = sorted(k for k in m.endpoints if k.service == service)
    rps, p95, errors = [], [], []
    for k in keys:
        series = m.series.get(k, [])
        label = f"{k.method} {k.name}" + (f" ({k.module})" if len({x.module for x in keys}) > 1 else "")
        rps.append(Series(label, [(_rel(b.t_ms, start, m.interval_s), round(b.requests / m.interval_s, 3)) for b in series]))
        p95.append(Series(label, [(_rel(b.t_ms, start, m.interval_s), round(b.p95_ms, 3)) for b in series]))
        errors.append(Series(label, [(_rel(b.t_ms, start, m.interval_s), round(b.failed / m.interval_s, 3)) for b in series]))
    slug = "".join(c if c.isalnum() else "-" for c in service)
    charts = [
        line_chart(f"{service}: requests/s per endpoint", rps, y_label="requests/s", chart_id=f"rps-{slug}"),
        line_chart(f"{service}: p95 latency per endpoint", p95, y_label="p95 ms",
                   hline=(inputs.slo_p95_ms, f"SLO p95 {inputs.slo_p95_ms:g} ms"), chart_id=f"p95-{slug}"),
        line_chart(f"{service}: failed requests/s", errors, y_label="failed/s", chart_id=f"errors-{slug}"),
    ]
    pool = m.pools.get(service)
    if pool is not None and pool.series:
        busy = Series("connections in use", [(_rel(p["t_ms"], start, m.interval_s), p["used"] or 0.0)
                                             for p in pool.series])
        waiting = Series("requests waiting", [(_rel(p["t_ms"], start, m.interval_s), p["pending"] or 0.0)
                                              for p in pool.series])
        charts.append(line_chart(f"{service}: connection pool occupancy ({pool.convention})", [busy, waiting],
                                 y_label="connections / requests", chart_id=f"pool-{slug}"))
    return charts


def _rec_card(rec: dict[str, Any]) -> str:
    where = "/".join(p for p in (rec["service"], rec.get("endpoint")) if p)
    out = [f'<div class="card"><h3>{escape(rec["kind"])} · {escape(where)}: {escape(headline(rec))}</h3>',
           f"<p>{escape(rec.get('reason', ''))}</p>"]
    if rec.get("alternatives"):
        out.append("<p>Alternatives: " + escape("; ".join(rec["alternatives"])) + "</p>")
    out.append("<details><summary>Predicted</summary><pre>"
               + escape(json.dumps(rec.get("predicted"), indent=2)) + "</pre></details>")
    evidence = dict(rec.get("evidence") or {})
    queries = evidence.pop("queries", [])
    out.append("<details><summary>Evidence</summary><pre>" + escape(json.dumps(evidence, indent=2)) + "</pre>")
    for q in queries:
        out.append(f"<p><b>{escape(q['label'])}</b></p><pre>{escape(q['query'])}</pre>")
    out.append("</details></div>")
    return "\n".join(out)


def render(analysis: Analysis, comparison: dict[str, Any] | None = None) -> str:
    """The page; with `comparison` (RUN_DIR/comparison.json) a section comparing the run with its baseline."""
    doc = analysis.document
    slo = doc["slo"]
    verdict = ('<span class="ok">valid</span>' if doc["valid"]
               else '<span class="bad">INVALID: no recommendations</span>')
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>loadbearing report {escape(doc['run_id'])}</title>", f"<style>{STYLE}</style></head><body>",
           f"<h1>loadbearing · run {escape(doc['run_id'])} ({escape(doc.get('strategy') or '')}) · {verdict}</h1>",
           f"<p>SLO: p95 ≤ {slo['p95_ms']:g} ms, error rate ≤ {slo['max_error_rate']:.2%}. "
           f"All numbers are InfluxDB aggregates of the stored k6 samples, in {doc['bucket_s']} s buckets.</p>"]
    if doc["invalid_reasons"]:
        out.append("<h2>Why this run is invalid</h2><ul>")
        out += [f"<li>{escape(reason)}</li>" for reason in doc["invalid_reasons"]]
        out.append("</ul>")
    out.append("<h2>Recommendations</h2>")
    if doc["recommendations"]:
        out.append("<table><tr><th>kind</th><th>service</th><th>endpoint</th><th>change</th>"
                   "<th>predicted p95</th></tr>")
        for rec in doc["recommendations"]:
            p95 = (rec.get("predicted") or {}).get("p95_ms")
            out.append(f"<tr><td>{escape(rec['kind'])}</td><td>{escape(rec['service'])}</td>"
                       f"<td>{escape(rec.get('endpoint') or '-')}</td><td>{escape(headline(rec))}</td>"
                       f"<td class=\"n\">{'-' if p95 is None else f'{p95:g} ms'}</td></tr>")
        out.append("</table><p>Reasons, predictions and evidence are below the plots.</p>")
    else:
        out.append("<p>None.</p>")
    out.append("<h2>Findings</h2>")
    if doc["findings"]:
        out.append("<ul>")
        for f in doc["findings"]:
            where = "/".join(p for p in (f.get("service"), f.get("endpoint")) if p)
            out.append(f"<li><b>{escape(f['kind'])}</b> {escape(where)}: {escape(f['detail'])}</li>")
        out.append("</ul>")
    else:
        out.append("<p>None.</p>")
    if comparison is not None:
        out.append(compare_section(comparison))
    ramps, ramps_run = analysis.inputs.ramps, analysis.inputs.ramps_run
    if ramps is not None and ramps_run is not None:
        out.append(capacity_section(ramps, ramps_run.path.name, analysis.inputs.record.slo))
    for service in analysis.inputs.services():
        out.append(f"<h2>{escape(service)}</h2>")
        out += service_charts(analysis, service)
    if doc["recommendations"]:
        out.append("<h2>Recommendations in detail</h2>")
        out += [_rec_card(rec) for rec in doc["recommendations"]]
    out.append("<h2>Endpoints</h2><table><tr><th>module</th><th>service</th><th>endpoint</th><th>requests</th>"
               "<th>req/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>errors</th></tr>")
    for e in doc["endpoints"]:
        bad = ' class="n bad"' if e["p95_ms"] > slo["p95_ms"] else ' class="n"'
        out.append(f"<tr><td>{escape(e['module'])}</td><td>{escape(e['service'])}</td>"
                   f"<td>{escape(e['method'])} {escape(e['name'])}</td><td class=\"n\">{e['requests']}</td>"
                   f"<td class=\"n\">{e['rps']:g}</td><td class=\"n\">{e['p50_ms']:g}</td>"
                   f"<td{bad}>{e['p95_ms']:g}</td><td class=\"n\">{e['p99_ms']:g}</td>"
                   f"<td class=\"n\">{e['error_rate']:.2%}</td></tr>")
    out.append("</table>")
    if doc.get("notes"):
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in doc["notes"]) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
