"""The comparison document as people read it: a Markdown table for a pull-request comment
(regressions first) and a plain table for the terminal. Same document, same text."""

from __future__ import annotations

from typing import Any

VERDICT_MD = {"regressed": "**regressed**", "improved": "improved", "no significant change": "no significant change"}


def fmt_ms(v: float | None) -> str:
    """Milliseconds for people: whole above 100 ms, one decimal below."""
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def _arrow(a: float | None, b: float | None, fmt: Any = fmt_ms) -> str:
    return f"{fmt(a)} → {fmt(b)}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"


def _change(e: dict[str, Any]) -> str:
    p95 = e["p95"]
    rel = "" if p95["change"] is None else f" ({p95['change']:+.0%})"
    return f"{p95['change_ms']:+,.1f} ms{rel}"


def _slower_share(e: dict[str, Any]) -> str:
    p95 = e["p95"]
    return f"{p95['share_above']:.0%} (≈{p95['expected_share_above']:.0%} if unchanged)"


def headline(doc: dict[str, Any]) -> str:
    eps = doc["endpoints"]
    counts = {v: sum(1 for e in eps if e["verdict"] == v) for v in ("regressed", "improved", "no significant change")}
    if doc["verdict"] == "no significant change":
        head = f"no significant change ({len(eps)} endpoints)"
    else:
        head = (f"{counts['regressed']} regressed, {counts['improved']} improved, "
                f"{counts['no significant change']} without significant change")
    return head


def tolerance_line(doc: dict[str, Any]) -> str:
    t = doc["tolerances"]
    return (f"A change counts when p95 moves by more than {t['p95_increase']:.0%} and {t['min_effect_ms']:g} ms, "
            f"or the error rate by more than {t['error_rate_increase']:.2%}, and the test says it is not noise "
            f"(α = {t['alpha']:g} over {t['tests']} tests: each one-sided p < {t['per_test_alpha']:.2g}).")


def markdown(doc: dict[str, Any]) -> str:
    """The PR comment: verdict, table (regressions first), tolerances, method, differences."""
    base, run = doc["baseline"], doc["run"]
    out = [f"### loadbearing compare: {headline(doc)}", "",
           f"Run `{run['run_id']}` ({run['strategy']}) against baseline `{base['run_id']}` ({base['strategy']}), "
           f"plan `{run.get('plan') or '?'}`.", ""]
    if doc["forced"]:
        out += ["> **Compared with --force although the loads differ:** "
                + "; ".join(_diff(d) for d in doc["differences"]["refused"]), ""]
    if doc["endpoints"]:
        out += ["| verdict | endpoint | p95 ms | p95 change | slower than baseline p95 | p50 ms | p99 ms "
                "| error rate | req/s |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for e in doc["endpoints"]:
            b, r = e["baseline"], e["run"]
            name = f"{e['module']} {e['method']} {e['name']}".replace("|", "\\|")
            out.append(f"| {VERDICT_MD[e['verdict']]} | {name} "
                       f"| {_arrow(b['p95_ms'], r['p95_ms'])} | {_change(e)} | {_slower_share(e)} "
                       f"| {_arrow(b['p50_ms'], r['p50_ms'])} | {_arrow(b['p99_ms'], r['p99_ms'])} "
                       f"| {_arrow(b['error_rate'], r['error_rate'], _pct)} "
                       f"| {_arrow(b['rps'], r['rps'], lambda v: f'{v:g}')} |")
        out.append("")
    flagged = [e for e in doc["endpoints"] if e["verdict"] != "no significant change"]
    if flagged:
        out += [f"- {e['module']} {e['method']} {e['name']}: {e['verdict']}: "
                + "; ".join(x["why"] for x in (e["p95"], e["error_rate"]) if x["verdict"] != "no significant change")
                for e in flagged]
        out.append("")
    for label, items in (("Only in the baseline", doc["only_in_baseline"]), ("Only in this run", doc["only_in_run"])):
        if items:
            out.append(f"{label} (not compared): " + ", ".join(f"{i['module']} {i['method']} {i['name']}"
                                                              for i in items) + ".")
            out.append("")
    info = doc["differences"]["informational"]
    if info:
        out += [f"<details><summary>{len(info)} plan difference(s) in what the runs ran against (they do not "
                "stop a comparison)</summary>", "", *[f"- {_diff(d)}" for d in info], "", "</details>", ""]
    out += [tolerance_line(doc), "",
            f"Latency: {doc['method']['latency']}. Errors: {doc['method']['errors']}.", ""]
    out += [f"Note: {n}" for n in doc.get("notes") or []]
    return "\n".join(out).rstrip() + "\n"


def _diff(d: dict[str, Any]) -> str:
    if "detail" in d:
        return f"`{d['key']}`: {d['detail']}"
    return f"`{d['key']}` {d['baseline']!r} → {d['run']!r}"


def terminal(doc: dict[str, Any]) -> str:
    """A plain-text table for stderr."""
    rows = [("verdict", "endpoint", "p95 ms", "change", "slower", "errors", "req/s")]
    for e in doc["endpoints"]:
        b, r = e["baseline"], e["run"]
        rows.append((e["verdict"], f"{e['module']} {e['method']} {e['name']}", _arrow(b["p95_ms"], r["p95_ms"]),
                     _change(e), f"{e['p95']['share_above']:.0%}", _arrow(b["error_rate"], r["error_rate"], _pct),
                     _arrow(b["rps"], r["rps"], lambda v: f"{v:g}")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"compare {doc['run']['run_id']} against baseline {doc['baseline']['run_id']}: {headline(doc)}"]
    if doc["forced"]:
        lines.append("forced although the loads differ: " + "; ".join(_diff(d) for d in doc["differences"]["refused"]))
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for e in doc["endpoints"]:
        if e["verdict"] != "no significant change":
            lines.append(f"  {e['module']} {e['method']} {e['name']}: "
                         + "; ".join(x["why"] for x in (e["p95"], e["error_rate"])
                                     if x["verdict"] != "no significant change"))
    info = doc["differences"]["informational"]
    if info:
        lines.append("plan differences: " + "; ".join(_diff(d) for d in info))
    lines.append(tolerance_line(doc))
    return "\n".join(lines) + "\n"
