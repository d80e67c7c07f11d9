"""The capacity run in a report: per service, offered vs achieved requests/s and p95 per step,
the knee marked (a vertical line at the knee's offered rate), and the steps as a table.

Used for a capacity run's own report and for the run whose recommendations were sized
from one (`recommend --capacity`): the knees autoscaling and INSTANCES stand on.
"""

from __future__ import annotations

from html import escape

from core.knees import CapacityRecord, ServiceKnee
from core.plan import Slo
from policies.report.svg import Series, line_chart


def _knee_line(svc: ServiceKnee) -> tuple[float, str] | None:
    knee = svc.knee_step
    if knee is None:
        return None
    word = "knee" if svc.knee_reached else "no knee up to"
    return knee.offered_rps, f"{word} {knee.offered_rps:.1f} req/s"


def charts(svc: ServiceKnee, slo: Slo) -> list[str]:
    slug = "".join(c if c.isalnum() else "-" for c in svc.service)
    x_label = "offered requests/s (one point per step)"
    offered = [(s.offered_rps, s.offered_rps) for s in svc.steps]
    achieved = [(s.offered_rps, s.achieved_rps) for s in svc.steps]
    goodput = [(s.offered_rps, s.goodput_rps) for s in svc.steps]
    p95 = [(s.offered_rps, s.p95_ms) for s in svc.steps if s.p95_ms is not None]
    knee = _knee_line(svc)
    return [
        line_chart(f"{svc.service}: offered vs achieved requests/s per step ({svc.instances} instance(s))",
                   [Series("offered", offered, dashed=True), Series("completed", achieved, markers=True),
                    Series("successful", goodput, markers=True)],
                   y_label="requests/s", x_label=x_label, vline=knee, x_from_zero=True,
                   chart_id=f"capacity-rps-{slug}"),
        line_chart(f"{svc.service}: p95 per step", [Series("p95", p95, markers=True)], y_label="p95 ms",
                   x_label=x_label, hline=(slo.p95_ms, f"SLO p95 {slo.p95_ms:g} ms"), vline=knee, x_from_zero=True,
                   chart_id=f"capacity-p95-{slug}"),
    ]


def section(ramps: CapacityRecord, run_id: str, slo: Slo) -> str:
    """The HTML section."""
    out = [f"<h2>Capacity run {escape(run_id)}</h2>",
           f"<p>Each service's arrival rate in steps of {ramps.step_s:g} s, each {ramps.growth:g} x the last "
           f"({escape(ramps.mode)}); a step breaks on p95 over the SLO, errors over the budget, or fewer than "
           f"{ramps.min_goodput:.0%} of the offered requests answered successfully. The knee is the highest step "
           "that held.</p>"]
    for svc in ramps.services:
        out.append(f"<h3>{escape(svc.service)}</h3><p>{escape(svc.note)}</p>")
        out += charts(svc, slo)
        out.append("<table><tr><th>step</th><th>offered req/s</th><th>completed req/s</th><th>successful req/s</th>"
                   "<th>p95 ms</th><th>errors</th><th>result</th></tr>")
        for i, s in enumerate(svc.steps):
            mark = "knee" if i == svc.knee else ("broke" if i == svc.first_failed else ("held" if s.ok else "broke"))
            cls = "bad" if not s.ok else ("ok" if i == svc.knee else "")
            out.append(f"<tr><td class=\"n\">{s.step + 1}</td><td class=\"n\">{s.offered_rps:g}</td>"
                       f"<td class=\"n\">{s.achieved_rps:g}</td><td class=\"n\">{s.goodput_rps:g}</td>"
                       f"<td class=\"n\">{'-' if s.p95_ms is None else f'{s.p95_ms:.0f}'}</td>"
                       f"<td class=\"n\">{s.error_rate:.2%}</td><td class=\"{cls}\">{mark}"
                       f"{': ' + escape('; '.join(s.reasons)) if s.reasons else ''}</td></tr>")
        out.append("</table>")
    return "\n".join(out)


def markdown(ramps: CapacityRecord, run_id: str) -> list[str]:
    """The Markdown lines: one row per service."""
    lines = ["", f"### Capacity run {run_id}", "", "| service | instances | knee req/s | per instance | "
             "first step that broke |", "|---|---:|---:|---:|---|"]
    for svc in ramps.services:
        cap, per, failed = svc.capacity_rps, svc.capacity_per_instance_rps, svc.failed_step
        knee = "-" if cap is None else (f"{cap:.1f}" if svc.knee_reached else f">= {cap:.1f}")
        broke = "-" if failed is None else f"{failed.offered_rps:.1f} req/s: {'; '.join(failed.reasons)}"
        cells = [svc.service, str(svc.instances), knee, "-" if per is None else f"{per:.1f}", broke]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines
