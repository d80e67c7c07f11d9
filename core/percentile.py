"""Percentiles computed in Python follow InfluxDB's `percentile()`, so that a number the
demo server or a benchmark computes matches what the policies read back from the store.

InfluxDB 1.x (and its v1 API on 2.x) takes the nearest rank: sort the n values, take the
one at rank floor(n * pct / 100 + 0.5) (1-based); no value below rank 1 (null).
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def rank_of(n: int, pct: float) -> int:
    """The 1-based rank InfluxDB's `percentile(value, pct)` takes among n values; 0 where it answers null."""
    rank = math.floor(n * pct / 100.0 + 0.5)
    return rank if 1 <= rank <= n else 0


def nearest_rank(values: Iterable[float], pct: float) -> float | None:
    """The `pct` (0-100) percentile of `values` by InfluxDB's rule; None where it answers null."""
    ordered = sorted(values)
    rank = rank_of(len(ordered), pct)
    return float(ordered[rank - 1]) if rank else None
