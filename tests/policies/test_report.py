"""report.md and report.html on a real run; report.html rendered by headless Chromium."""

from __future__ import annotations

import subprocess
from pathlib import Path

from policies import write_report
from tests.fixtures.require import need_binary
from tests.policies.png import decode

BLUE = (0x1F, 0x77, 0xB4)     # first series colour (svg.PALETTE[0])
RED = (0xD6, 0x27, 0x28)      # second series colour


def near(px: tuple[int, ...], color: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, color, strict=False))


def test_reports_are_written_and_deterministic(real_runs: dict[str, Path]) -> None:
    run_dir = real_runs["baseline"]
    md, html = write_report(run_dir)
    assert (md, html) == (run_dir / "report.md", run_dir / "report.html")
    text = md.read_text()
    assert len(text) < 65_536                                   # fits a GitHub PR comment
    assert "db_pool" in text and "pool 1 -> " in text and "profile_get" in text
    assert "throughput_limit" in text and "slo_breach" in text
    page = html.read_text()
    assert page.count("<svg") >= 7                              # 3 per service + the scraped pool chart
    assert "SLO p95 600 ms" in page
    assert "<script" not in page and "src=" not in page and "href=" not in page   # self-contained
    assert "connection pool occupancy" in page and "SELECT" in page              # pool plots and evidence queries
    again = write_report(run_dir)
    assert again[0].read_text() == text and again[1].read_text() == page


def test_report_html_renders_its_plots_in_chromium(real_runs: dict[str, Path], tmp_path: Path) -> None:
    chromium = need_binary("chromium", "chromium")
    _, html = write_report(real_runs["baseline"])
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,4000",
         html.as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.exists(), proc.stderr.decode(errors="replace")[-2000:]
    image = decode(shot.read_bytes())
    assert (image.width, image.height) == (1200, 4000)
    blue_rows = set()
    red_rows = set()
    for y in range(image.height):
        row = image.rows[y]
        for x in range(0, image.width, 2):
            px = tuple(row[x * image.channels: x * image.channels + 3])
            if near(px, BLUE):
                blue_rows.add(y)
            elif near(px, RED):
                red_rows.add(y)
    # Series lines were drawn: coloured pixels over many rows (lines span the plot height) ...
    assert len(blue_rows) > 150, len(blue_rows)
    assert len(red_rows) > 50, len(red_rows)
    # ... in several separate charts (gaps of white between them).
    bands = sum(1 for y in sorted(blue_rows) if y - 1 not in blue_rows and y - 2 not in blue_rows)
    assert bands >= 4, bands
