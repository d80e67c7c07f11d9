"""Hand-built inline SVG line charts (no plotting dependency; deterministic output).

`line_chart` draws one or more series of (x seconds, y) points with axes, nice
ticks, an optional horizontal reference line (the SLO) and a legend. Every number
is formatted with fixed precision so the same data gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False          # drawn dashed (e.g. the baseline of a comparison)
    color: int | None = None      # palette index; default: the series' position
    markers: bool = False         # a dot on every point (few points, each one a measurement)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(v: float) -> str:
    if abs(v) >= 100 or v == int(v):
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}"


def line_chart(title: str, series: Sequence[Series], *, y_label: str, x_label: str = "seconds since start",
               hline: tuple[float, str] | None = None, width: int = 1040, height: int = 280,
               chart_id: str = "", vline: tuple[float, str] | None = None, x_from_zero: bool = False) -> str:
    """An SVG chart. Series with no points are listed in the legend only. `hline` / `vline`: a dashed
    reference line at that y / x, labelled (an SLO, a knee). `x_from_zero`: the x axis starts at 0."""
    left, right, top, bottom = 64, 16, 28, 44
    legend_rows = math.ceil(len(series) / 3) if series else 0
    legend_top = height + 12  # below the x axis label (baseline at height - 12)
    total_h = legend_top + legend_rows * 18
    pw, ph = width - left - right, height - top - bottom
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    if hline is not None:
        ys.append(hline[0])
    if vline is not None:
        xs.append(vline[0])
    if x_from_zero:
        xs.append(0.0)
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_hi = max(ys) if ys else 1.0
    y_ticks = nice_ticks(0.0, y_hi * 1.05 if y_hi > 0 else 1.0)
    x_ticks = nice_ticks(x_lo, x_hi if x_hi > x_lo else x_lo + 1.0, 8)
    y_top = y_ticks[-1]
    x_min, x_max = x_ticks[0], x_ticks[-1]

    def px(x: float) -> float:
        return left + (x - x_min) / (x_max - x_min) * pw if x_max > x_min else left

    def py(y: float) -> float:
        return top + ph - (y / y_top) * ph if y_top > 0 else top + ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
           f'width="{width}" height="{total_h}" viewBox="0 0 {width} {total_h}" role="img" '
           f'aria-label="{escape(title)}">',
           f'<rect x="0" y="0" width="{width}" height="{total_h}" fill="#ffffff"/>',
           f'<text x="{left}" y="18" font-size="14" font-weight="bold" fill="#222">{escape(title)}</text>']
    for t in y_ticks:
        y = py(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#555">'
                   f'{_fmt(t)}</text>')
    for t in x_ticks:
        x = px(t)
        out.append(f'<line x1="{x:.1f}" y1="{top + ph}" x2="{x:.1f}" y2="{top + ph + 4}" stroke="#888"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle" fill="#555">'
                   f'{_fmt(t)}</text>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#888"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#888"/>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph + 32}" font-size="11" text-anchor="middle" '
               f'fill="#555">{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{top + ph / 2:.1f}" font-size="11" text-anchor="middle" fill="#555" '
               f'transform="rotate(-90 14 {top + ph / 2:.1f})">{escape(y_label)}</text>')
    if hline is not None:
        y = py(hline[0])
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#000" '
                   'stroke-width="1.5" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{left + pw - 4}" y="{y - 4:.1f}" font-size="11" text-anchor="end" fill="#000">'
                   f'{escape(hline[1])}</text>')
    if vline is not None:
        x = px(vline[0])
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#000" '
                   'stroke-width="1.5" stroke-dasharray="3 3"/>')
        out.append(f'<text x="{x + 4:.1f}" y="{top + 12}" font-size="11" fill="#000">{escape(vline[1])}</text>')
    for i, s in enumerate(series):
        color = PALETTE[(i if s.color is None else s.color) % len(PALETTE)]
        dash = ' stroke-dasharray="7 4"' if s.dashed else ""
        pts = sorted(s.points)
        if len(pts) == 1:
            x, y = pts[0]
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        elif pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{path}"/>')
            if s.markers:
                out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>' for x, y in pts]
        row, col = divmod(i, 3)
        lx = left + col * (pw / 3)
        ly = legend_top + row * 18
        if s.dashed:
            out.append(f'<line x1="{lx:.1f}" y1="{ly - 7}" x2="{lx + 14:.1f}" y2="{ly - 7}" stroke="{color}" '
                       f'stroke-width="3" stroke-dasharray="4 2"/>')
        else:
            out.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="14" height="4" fill="{color}"/>')
        out.append(f'<text x="{lx + 20:.1f}" y="{ly - 4}" font-size="11" fill="#333">{escape(s.label)}</text>')
    out.append("</svg>")
    return "\n".join(out)
