"""The report.html section for a run that `loadbearing compare` compared with a baseline:
the verdict, the table (regressions first) and, per service, both runs' p95 over time on
one plot (the baseline dashed), from RUN_DIR/comparison.json."""

from __future__ import annotations

from html import escape
from typing import Any

from policies.compare_render import fmt_ms, headline, tolerance_line
from policies.report.svg import Series, line_chart

CSS = {"regressed": "bad", "improved": "ok"}


def charts(doc: dict[str, Any]) -> list[str]:
    """Per service: every shared endpoint's p95 over time, the run solid and the baseline dashed."""
    by_service: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for label, entry in sorted((k, v) for k, v in doc["series"].items() if k != "bucket_s"):
        by_service.setdefault(entry["service"], []).append((label, entry))
    out = []
    for service, entries in sorted(by_service.items()):
        lines: list[Series] = []
        for i, (label, entry) in enumerate(entries):
            lines.append(Series(f"{label} (run)", [(t, p95) for t, p95, _ in entry["run"]], color=i))
            lines.append(Series(f"{label} (baseline)", [(t, p95) for t, p95, _ in entry["baseline"]],
                                dashed=True, color=i))
        slug = "".join(c if c.isalnum() else "-" for c in service)
        out.append(line_chart(f"{service}: p95 per endpoint, this run (solid) and the baseline (dashed)", lines,
                              y_label="p95 ms", x_label="seconds since each run started",
                              chart_id=f"compare-p95-{slug}"))
    return out


def section(doc: dict[str, Any]) -> str:
    base = doc["baseline"]
    verdict = doc["verdict"]
    out = [f"<h2>Compared with baseline {escape(base['run_id'])}</h2>",
           f'<p class="{CSS.get(verdict, "")}">{escape(headline(doc))}</p>',
           f"<p>{escape(tolerance_line(doc))}</p>"]
    if doc["forced"]:
        out.append("<p class=\"bad\">Compared with --force although the loads differ: "
                   + escape("; ".join(f"{d['key']}: {d.get('baseline')!r} -> {d.get('run')!r}"
                                      for d in doc["differences"]["refused"])) + "</p>")
    out.append("<table><tr><th>verdict</th><th>endpoint</th><th>p95 ms (baseline → run)</th><th>change</th>"
               "<th>slower than baseline p95</th><th>error rate</th><th>why</th></tr>")
    for e in doc["endpoints"]:
        b, r, p95 = e["baseline"], e["run"], e["p95"]
        why = "; ".join(x["why"] for x in (p95, e["error_rate"]) if x["verdict"] != "no significant change")
        out.append(f'<tr><td class="{CSS.get(e["verdict"], "")}">{escape(e["verdict"])}</td>'
                   f"<td>{escape(e['module'])} {escape(e['method'])} {escape(e['name'])}</td>"
                   f'<td class="n">{fmt_ms(b["p95_ms"])} → {fmt_ms(r["p95_ms"])}</td>'
                   f'<td class="n">{p95["change_ms"]:+,.1f} ms</td><td class="n">{p95["share_above"]:.0%}</td>'
                   f'<td class="n">{b["error_rate"]:.2%} → {r["error_rate"]:.2%}</td><td>{escape(why)}</td></tr>')
    out.append("</table>")
    out += charts(doc)
    return "\n".join(out)
