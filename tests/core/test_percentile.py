"""One percentile rule for the whole project: InfluxDB's `percentile()` (nearest rank).

The demo server's p95 (in GET /status) and the policies' numbers
(from InfluxDB) must agree; they used to differ at n = 31."""

from __future__ import annotations

import random
from collections import deque

import pytest

from core.influx import InfluxClient, line
from core.percentile import nearest_rank
from demo.services.metrics import RECENT, EndpointMetrics

# (values, pct, expected): the rank is floor(n * pct / 100 + 0.5), 1-based; none below 1.
TABLE = [
    ([], 95, None),
    ([7.0], 95, 7.0),
    ([7.0], 10, None),              # rank 0: InfluxDB answers null
    (list(range(1, 32)), 95, 29),   # n = 31: 29.45 + 0.5 -> 29 (a ceiling rule gives 30)
    (list(range(1, 20)), 95, 18),   # n = 19: 18.05 + 0.5 -> 18 (ceiling: 19)
    (list(range(1, 21)), 95, 19),
    (list(range(1, 101)), 99, 99),
    (list(range(1, 101)), 100, 100),
    (list(range(1, 101)), 0, None),
    ([3.0, 1.0, 2.0], 50, 2.0),     # unsorted input
]


@pytest.mark.parametrize(("values", "pct", "expected"), TABLE)
def test_nearest_rank_table(values: list[float], pct: float, expected: float | None) -> None:
    assert nearest_rank(values, pct) == expected


SIZES = (1, 2, 3, 19, 20, 21, 31, 39, 40, 99, 101, 200)
PCTS = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)


def test_matches_a_real_influxd(influx: InfluxClient) -> None:
    """The rule checked against the store itself: every size and percentile above, shuffled values."""
    rng = random.Random(31)
    samples = {n: [round(rng.uniform(0, 1000), 3) for _ in range(n)] for n in SIZES}
    influx.write(line("pct", {"n": str(n)}, {"v": v}, i + 1) for n, vs in samples.items() for i, v in enumerate(vs))
    select = ", ".join(f'percentile("v", {p}) AS "p{i}"' for i, p in enumerate(PCTS))
    rows = {int(r["n"]): r for r in influx.rows(f'SELECT {select} FROM "pct" GROUP BY "n"')}
    assert set(rows) == set(SIZES)
    for n, vs in samples.items():
        for i, p in enumerate(PCTS):
            assert nearest_rank(vs, p) == rows[n][f"p{i}"], (n, p)


def test_the_demo_server_reports_the_stores_p95() -> None:
    metrics = EndpointMetrics()
    for ms in range(1, 32):
        metrics.observe("get", float(ms), 200)
    assert metrics.snapshot()["get"]["p95_ms"] == 29.0
    assert isinstance(metrics.endpoints["get"].recent, deque)
    for _ in range(RECENT + 10):
        metrics.observe("get", 1.0, 200)
    assert len(metrics.endpoints["get"].recent) == RECENT
