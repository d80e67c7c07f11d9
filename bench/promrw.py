"""A Prometheus remote-write receiver for k6's native histograms (fidelity's design probe).

k6's `experimental-prometheus-rw` output can send every Trend as a Prometheus native
histogram (`K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM=true`): k6 aggregates in
process and pushes, per series, a cumulative exponential histogram each push
interval. Histograms of the same schema merge exactly by summing bucket counts, so
they are the one aggregating path k6 ships whose percentiles can be merged across
runners and seconds. This receiver measures what that path costs and how close its
p95 comes to k6's exact one; InfluxDB 1.x drops native histograms on its own
`/api/v1/prom/write`, hence a receiver.

Run as `python -m bench.promrw --port N`: POST /api/v1/write takes pushes (snappy
framed protobuf, remote-write 1.0), GET /summary returns JSON: the last
`k6_http_reqs_total` summed over series, and `k6_http_req_duration_seconds` merged
over series (schema, count, zero count, bucket index -> count).

The remote-write messages are built at runtime from descriptors with the protobuf
library (no protoc step); snappy comes from cramjam.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
# (number, name, type, label, message type) per field, as in prometheus/prompb types.proto.
_MESSAGES: dict[str, list[tuple[int, str, int, int, str | None]]] = {
    "Label": [(1, "name", _F.TYPE_STRING, _OPT, None), (2, "value", _F.TYPE_STRING, _OPT, None)],
    "Sample": [(1, "value", _F.TYPE_DOUBLE, _OPT, None), (2, "timestamp", _F.TYPE_INT64, _OPT, None)],
    "BucketSpan": [(1, "offset", _F.TYPE_SINT32, _OPT, None), (2, "length", _F.TYPE_UINT32, _OPT, None)],
    "Histogram": [
        (1, "count_int", _F.TYPE_UINT64, _OPT, None), (2, "count_float", _F.TYPE_DOUBLE, _OPT, None),
        (3, "sum", _F.TYPE_DOUBLE, _OPT, None), (4, "schema", _F.TYPE_SINT32, _OPT, None),
        (5, "zero_threshold", _F.TYPE_DOUBLE, _OPT, None), (6, "zero_count_int", _F.TYPE_UINT64, _OPT, None),
        (7, "zero_count_float", _F.TYPE_DOUBLE, _OPT, None),
        (8, "negative_spans", _F.TYPE_MESSAGE, _REP, "BucketSpan"),
        (9, "negative_deltas", _F.TYPE_SINT64, _REP, None), (10, "negative_counts", _F.TYPE_DOUBLE, _REP, None),
        (11, "positive_spans", _F.TYPE_MESSAGE, _REP, "BucketSpan"),
        (12, "positive_deltas", _F.TYPE_SINT64, _REP, None), (13, "positive_counts", _F.TYPE_DOUBLE, _REP, None),
        (14, "reset_hint", _F.TYPE_INT32, _OPT, None), (15, "timestamp", _F.TYPE_INT64, _OPT, None)],
    "TimeSeries": [(1, "labels", _F.TYPE_MESSAGE, _REP, "Label"), (2, "samples", _F.TYPE_MESSAGE, _REP, "Sample"),
                   (4, "histograms", _F.TYPE_MESSAGE, _REP, "Histogram")],
    "WriteRequest": [(1, "timeseries", _F.TYPE_MESSAGE, _REP, "TimeSeries")],
}


def _write_request_class() -> Any:
    fd = descriptor_pb2.FileDescriptorProto(name="loadbearing_prompb.proto", package="lbprompb", syntax="proto3")
    for name, fields in _MESSAGES.items():
        msg = fd.message_type.add(name=name)
        for number, fname, ftype, label, ref in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)  # type: ignore[arg-type]
            if ref:
                field.type_name = f".lbprompb.{ref}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("lbprompb.WriteRequest"))


WriteRequest = _write_request_class()


def positive_buckets(h: Any) -> dict[int, int]:
    """Bucket index -> count of a native histogram's positive buckets (spans + delta-encoded counts)."""
    out: dict[int, int] = {}
    deltas = iter(h.positive_deltas)
    index, count = 0, 0
    for n, span in enumerate(h.positive_spans):
        index = span.offset if n == 0 else index + span.offset
        for _ in range(span.length):
            count += next(deltas)
            out[index] = count
            index += 1
    return out


def quantile(buckets: dict[int, int], zero_count: int, schema: int, q: float) -> tuple[float, float]:
    """(lower, upper) bound of the q-quantile: the bounds of the bucket holding it.

    Bucket i of schema s holds values in (base^(i-1), base^i], base = 2^(2^-s).
    """
    total = zero_count + sum(buckets.values())
    rank = q * total
    if rank <= zero_count:
        return 0.0, 0.0
    seen = zero_count
    base = 2.0 ** (2.0 ** -schema)
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return base ** (index - 1), base ** index
    top = max(buckets)
    return base ** (top - 1), base ** top


class State:
    """The last cumulative value of every series k6 pushed (k6 pushes totals since its start)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, float] = {}
        self.durations: dict[str, Any] = {}
        self.pushes = 0

    def take(self, body: bytes) -> None:
        wr = WriteRequest()
        wr.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
        with self.lock:
            self.pushes += 1
            for ts in wr.timeseries:
                labels = {label.name: label.value for label in ts.labels}
                name = labels.pop("__name__", "")
                key = json.dumps(labels, sort_keys=True)
                if name == "k6_http_reqs_total" and ts.samples:
                    self.requests[key] = ts.samples[-1].value
                elif name == "k6_http_req_duration_seconds" and ts.histograms:
                    self.durations[key] = ts.histograms[-1]

    def summary(self) -> dict[str, Any]:
        with self.lock:
            merged: dict[int, int] = {}
            schemas = {h.schema for h in self.durations.values()}
            zero = count = 0
            for h in self.durations.values():
                zero += h.zero_count_int
                count += h.count_int
                for index, n in positive_buckets(h).items():
                    merged[index] = merged.get(index, 0) + n
            return {"pushes": self.pushes, "http_reqs": int(sum(self.requests.values())),
                    "duration": {"series": len(self.durations), "schemas": sorted(schemas), "count": count,
                                 "zero_count": zero, "buckets": {str(k): v for k, v in sorted(merged.items())}}}


def p95_bounds_ms(summary: dict[str, Any]) -> tuple[float, float] | None:
    """The merged http_req_duration histogram's p95 bucket, in ms (None: no histogram or mixed schemas)."""
    d = summary.get("duration") or {}
    if len(d.get("schemas") or []) != 1 or not d.get("buckets"):
        return None
    lo, hi = quantile({int(k): v for k, v in d["buckets"].items()}, d["zero_count"], d["schemas"][0], 0.95)
    return lo * 1000.0, hi * 1000.0


def relative_width(schema: int) -> float:
    """A bucket's width relative to its lower bound: 2^(2^-schema) - 1."""
    return math.pow(2.0, math.pow(2.0, -schema)) - 1.0


def serve(port: int) -> None:
    state = State()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.take(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:
            body = json.dumps(state.summary()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
