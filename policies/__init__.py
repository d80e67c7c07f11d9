"""Policies: read a run back from InfluxDB, judge it, and recommend settings with evidence.

Entry points (what `loadbearing recommend` and `loadbearing report` call):

- `recommend_run(run_dir, influx=None) -> dict`: the recommendations document
  (docs/architecture.md), also written to RUN_DIR/recommendations.json and to InfluxDB
  as `loadbearing_events` (kind=finding|recommendation).
- `write_report(run_dir, influx=None) -> (report.md, report.html)`.
- `dumps_document(doc) -> str`: the exact bytes of recommendations.json / `--json`.
- `render_summary(doc) -> str`: a plain-text summary for humans.

`loadbearing compare` and `baseline` live in `policies.compare` (with `compare_profile`,
`compare_stats`, `compare_render`) and `policies.baseline`.
"""

from __future__ import annotations

from policies.queueing import erlang_c, max_rate, smallest_pool, wait_quantile_s
from policies.recommend import Analysis, analyze_run, dumps_document, recommend_run, render_summary
from policies.report import write_report

__all__ = [
    "Analysis",
    "analyze_run",
    "dumps_document",
    "erlang_c",
    "max_rate",
    "recommend_run",
    "render_summary",
    "smallest_pool",
    "wait_quantile_s",
    "write_report",
]
