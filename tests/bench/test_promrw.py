"""bench.promrw: native-histogram decoding, merging and quantile bounds, then the real k6
output into the receiver (counts exact, k6's exact p95 inside the merged histogram's bucket)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cramjam
import httpx
import pytest

from bench import promrw
from bench.servers import promrw_receiver
from runners import k6 as k6mod


def _histogram(ts: object, *, schema: int, spans: list[tuple[int, int]], deltas: list[int], zero: int = 0) -> None:
    h = ts.histograms.add()  # type: ignore[attr-defined]
    h.schema, h.zero_count_int = schema, zero
    h.count_int = zero
    running = 0
    for d in deltas:
        running += d
        h.count_int += running
    for offset, length in spans:
        span = h.positive_spans.add()
        span.offset, span.length = offset, length
    h.positive_deltas.extend(deltas)


def _series(wr: object, metric: str, endpoint: str) -> object:
    ts = wr.timeseries.add()  # type: ignore[attr-defined]
    for k, v in {"__name__": metric, "name": endpoint}.items():
        label = ts.labels.add()
        label.name, label.value = k, v
    return ts


def test_spans_and_deltas_decode_to_absolute_bucket_counts() -> None:
    wr = promrw.WriteRequest()
    ts = _series(wr, "k6_http_req_duration_seconds", "a")
    # buckets -3, -2 then a gap of 2 -> 1, 2: counts 4, 6, 1, 1 as deltas 4, +2, -5, 0
    _histogram(ts, schema=0, spans=[(-3, 2), (2, 2)], deltas=[4, 2, -5, 0])
    assert promrw.positive_buckets(wr.timeseries[0].histograms[0]) == {-3: 4, -2: 6, 1: 1, 2: 1}


@pytest.mark.parametrize(("buckets", "zero", "schema", "q", "bounds"), [
    ({1: 10}, 0, 0, 0.95, (1.0, 2.0)),                 # schema 0: bucket i is (2^(i-1), 2^i]
    ({1: 90, 3: 10}, 0, 0, 0.95, (4.0, 8.0)),
    ({1: 95, 3: 5}, 0, 0, 0.95, (1.0, 2.0)),           # rank exactly at the bucket's end
    ({0: 1}, 99, 0, 0.95, (0.0, 0.0)),                 # the zero bucket holds the quantile
    ({8: 1}, 0, 3, 0.5, (2 ** (7 / 8), 2.0)),          # schema 3: base 2^(1/8)
])
def test_quantile_bounds(buckets: dict[int, int], zero: int, schema: int, q: float,
                         bounds: tuple[float, float]) -> None:
    assert promrw.quantile(buckets, zero, schema, q) == pytest.approx(bounds)


def test_the_receiver_merges_series_and_keeps_the_last_cumulative_push() -> None:
    with promrw_receiver() as rx:
        for total in (5, 12):  # two pushes: cumulative totals, the last one counts
            wr = promrw.WriteRequest()
            ts = _series(wr, "k6_http_reqs_total", "a")
            sample = ts.samples.add()  # type: ignore[attr-defined]
            sample.value, sample.timestamp = float(total), 1
            _histogram(_series(wr, "k6_http_req_duration_seconds", "a"), schema=3, spans=[(0, 1)],
                       deltas=[total])
            _histogram(_series(wr, "k6_http_req_duration_seconds", "b"), schema=3, spans=[(0, 2)],
                       deltas=[1, 1])  # counts 1, 2
            body = bytes(cramjam.snappy.compress_raw(wr.SerializeToString()))
            assert httpx.post(f"{rx.url}/api/v1/write", content=body).status_code == 204
        s = rx.summary()
    assert s["pushes"] == 2 and s["http_reqs"] == 12
    assert s["duration"] == {"series": 2, "schemas": [3], "count": 15, "zero_count": 0,
                             "buckets": {"0": 13, "1": 2}}


def test_k6_native_histograms_into_the_receiver(tmp_path: Path) -> None:
    """The real k6 output: the receiver's request count is k6's; k6's exact p95 lies in the
    merged histogram's p95 bucket (k6 1.x uses schema 3: buckets 9% wide)."""
    script = tmp_path / "t.js"
    script.write_text("import http from 'k6/http';\n"
                      "export const options = { vus: 2, iterations: 300 };\n"
                      "export default function () { http.get(`${__ENV.RX}/summary`); }\n")
    with promrw_receiver() as rx:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("K6_")}, "RX": rx.url,
               "K6_PROMETHEUS_RW_SERVER_URL": f"{rx.url}/api/v1/write",
               "K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM": "true", "K6_PROMETHEUS_RW_PUSH_INTERVAL": "1s"}
        summary_path = tmp_path / "summary.json"
        proc = subprocess.run([k6mod.k6_binary(), "run", "--quiet", "--no-usage-report", "--summary-export",
                               str(summary_path), "--out", "experimental-prometheus-rw", str(script)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        s = rx.summary()
    k6 = json.loads(summary_path.read_text())["metrics"]
    assert s["http_reqs"] == k6["http_reqs"]["count"] == 300
    assert s["duration"]["count"] == 300 and s["duration"]["schemas"] == [3]
    lo, hi = promrw.p95_bounds_ms(s)  # type: ignore[misc]
    assert lo <= k6["http_req_duration"]["p(95)"] <= hi
    assert hi / lo == pytest.approx(1 + promrw.relative_width(3))
