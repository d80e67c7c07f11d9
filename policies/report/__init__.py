"""`loadbearing report RUN_DIR`: report.md (PR comment) and report.html (plots), from one analysis.

`write_report(run_dir, influx=None)` re-reads the run from InfluxDB (aggregates
only; the same numbers `recommend` uses), writes both files and returns their
paths; a run that `loadbearing compare` compared with a baseline (RUN_DIR/comparison.json)
gets a section with that comparison. Plots are hand-built inline SVG: no plotting dependency, no scripts, no
network, and the same data gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import BadInput
from core.influx import InfluxClient
from policies.recommend import Analysis, analyze_run
from policies.report import html, markdown

__all__ = ["write_analysis", "write_report"]


def write_analysis(analysis: Analysis) -> tuple[Path, Path]:
    run_dir = analysis.inputs.run_dir
    md_path = run_dir / "report.md"
    html_path = run_dir / "report.html"
    md_path.write_text(markdown.render(analysis), encoding="utf-8")
    html_path.write_text(html.render(analysis, comparison(run_dir)), encoding="utf-8")
    return md_path, html_path


def comparison(run_dir: Path) -> dict[str, Any] | None:
    """RUN_DIR/comparison.json when `loadbearing compare` wrote one for this run (else None)."""
    path = run_dir / "comparison.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: unreadable ({exc}); run 'loadbearing compare' again or delete it") from None
    return data if isinstance(data, dict) else None


def write_report(run_dir: Path, influx: InfluxClient | None = None) -> tuple[Path, Path]:
    """Write RUN_DIR/report.md and RUN_DIR/report.html; returns (md_path, html_path)."""
    return write_analysis(analyze_run(Path(run_dir), influx))
