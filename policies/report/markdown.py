"""report.md: the run's verdict, recommendations, findings and endpoints, sized for a PR comment.

GitHub caps a comment at 65,536 characters; the report stays under MAX_CHARS by
dropping evidence first (report.html and recommendations.json keep all of it).
"""

from __future__ import annotations

import json
from typing import Any

from policies.recommend import Analysis, headline
from policies.report.capacity import markdown as capacity_markdown

MAX_CHARS = 60_000


def _predicted(rec: dict[str, Any]) -> str:
    p = rec.get("predicted") or {}
    parts = []
    if p.get("p95_ms") is not None:
        parts.append(f"p95 ≈ {p['p95_ms']:g} ms")
    if p.get("throughput_rps") is not None:
        parts.append(f"{p['throughput_rps']:g} req/s")
    if p.get("hit_ratio") is not None:
        parts.append(f"hit ratio {p['hit_ratio']:g}")
    if p.get("instances_at_peak") is not None:
        parts.append(f"{p['instances_at_peak']} instance(s) at peak")
    return ", ".join(parts) or "-"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(analysis: Analysis, *, evidence: bool = True) -> str:
    doc = analysis.document
    verdict = "valid" if doc["valid"] else "**INVALID**: no recommendations"
    slo = doc["slo"]
    out = [f"## loadbearing · run `{doc['run_id']}` ({doc.get('strategy') or 'run'}) · {verdict}", "",
           f"SLO: p95 ≤ {slo['p95_ms']:g} ms, error rate ≤ {slo['max_error_rate']:.2%}. "
           f"Numbers are InfluxDB aggregates of the stored k6 samples ({doc['bucket_s']} s buckets).", ""]
    if doc["invalid_reasons"]:
        out += ["### Why this run is invalid", ""]
        out += [f"- {_cell(reason)}" for reason in doc["invalid_reasons"]]
        out.append("")
    out += ["### Recommendations", ""]
    recs = doc["recommendations"]
    if recs:
        out += ["| kind | service | endpoint | change | predicted |", "|---|---|---|---|---|"]
        for rec in recs:
            out.append(f"| {rec['kind']} | {_cell(rec['service'])} | {_cell(rec.get('endpoint') or '-')} | "
                       f"{_cell(headline(rec))} | {_cell(_predicted(rec))} |")
        out.append("")
        for rec in recs:
            where = "/".join(p for p in (rec["service"], rec.get("endpoint")) if p)
            out.append(f"- **{rec['kind']} {where}**: {rec['reason']}")
            if rec.get("alternatives"):
                out.append(f"  Alternatives: {'; '.join(rec['alternatives'])}.")
        out.append("")
    else:
        out += ["None." if doc["valid"] else "None: the run is invalid (see above).", ""]
    out += ["### Findings", ""]
    if doc["findings"]:
        out += [f"- **{f['kind']}** {_cell('/'.join(p for p in (f.get('service'), f.get('endpoint')) if p) or '')}: "
                f"{_cell(f['detail'])}" for f in doc["findings"]]
    else:
        out.append("None.")
    ramps, ramps_run = analysis.inputs.ramps, analysis.inputs.ramps_run
    if ramps is not None and ramps_run is not None:
        out += capacity_markdown(ramps, ramps_run.path.name)
    out += ["", "### Endpoints", "",
            "| module | service | endpoint | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for e in doc["endpoints"]:
        mark = " ⚠" if e["p95_ms"] is not None and e["p95_ms"] > slo["p95_ms"] else ""
        out.append(f"| {_cell(e['module'])} | {_cell(e['service'])} | {_cell(e['method'])} {_cell(e['name'])} | "
                   f"{e['requests']} | {e['rps']:g} | {e['p50_ms']:g} | {e['p95_ms']:g}{mark} | {e['p99_ms']:g} | "
                   f"{e['error_rate']:.2%} |")
    if doc.get("notes"):
        out += ["", "<details><summary>Notes</summary>", ""]
        out += [f"- {_cell(n)}" for n in doc["notes"]]
        out += ["", "</details>"]
    if evidence and recs:
        out += ["", "<details><summary>Evidence (queries and the numbers they returned)</summary>", ""]
        for rec in recs:
            where = "/".join(p for p in (rec["service"], rec.get("endpoint")) if p)
            out += [f"**{rec['kind']} {where}**", "", "```json",
                    json.dumps({"evidence": rec.get("evidence"), "predicted": rec.get("predicted")}, indent=1),
                    "```", ""]
        out.append("</details>")
    out += ["", "Full report with plots: `report.html` in the run directory."]
    text = "\n".join(out) + "\n"
    if len(text) > MAX_CHARS and evidence:
        return render(analysis, evidence=False)
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - 80] + "\n\n… (truncated; see report.html)\n"
    return text
