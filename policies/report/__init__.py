"""`loadbearing report RUN_DIR`: report.md (PR comment) and report.html (plots), from one analysis.

`write_report(run_dir, influx=None)` re-reads the run from InfluxDB (aggregates
only; the same numbers `recommend` uses), writes both files and returns their
paths; a run that `loadbearing compare` compared with a baseline (RUN_DIR/comparison.json)
gets a section with that comparison. Plots are hand-built inline SVG: no plotting dependency, no scripts, no
network, and the same data gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from core.influx import InfluxClient
from core.rundir import StoreConnector
from policies.recommend import Analysis, analyze_run
from policies.report import html, markdown

__all__ = ["write_analysis", "write_report"]


def write_analysis(analysis: Analysis) -> tuple[Path, Path]:
    run_dir = analysis.inputs.run_dir
    return run_dir.write_reports(markdown.render(analysis), html.render(analysis, run_dir.read_comparison()))


def write_report(run_dir: Path, influx: InfluxClient | None = None,
                 connect: StoreConnector | None = None) -> tuple[Path, Path]:
    """Write RUN_DIR/report.md and RUN_DIR/report.html; returns (md_path, html_path)."""
    return write_analysis(analyze_run(Path(run_dir), influx, connect))
