"""What `loadbearing compare` needs of one run, read from InfluxDB as aggregates.

`read_profile(run_dir)` returns a `RunProfile`: per endpoint (module, service, name,
method) the request and failure counts, requests/s, a ladder of InfluxDB's nearest-rank
percentiles of http_req_duration (`LADDER`, p50/p95/p99 among them), and the p95 and
requests/s per time bucket (seconds since the run started); plus the run's identity and
its plan. A profile is plain JSON
(`to_json`/`from_json`), so a pinned baseline (`policies.baseline`) keeps it in a file
and later comparisons need no InfluxDB for the baseline.

`count_at_or_below(run_dir, thresholds)` asks InfluxDB, per endpoint, how many of the
run's requests took at most each given duration: the one number the latency test
(`policies.compare_stats.quantile_test`) needs from the new run. No raw sample leaves
the database: every number is a `count()`, `percentile()` or `sum()` computed by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import measurements
from core.errors import BadInput
from core.influx import InfluxClient, quote_ident, quote_literal
from core.rundir import StoreConnector
from policies.inputs import RunInputs, load_run
from policies.metrics import EndpointKey, MetricsReader
from policies.recommend import client_for

PERCENTILES = (50.0, 95.0, 99.0)
# The percentile ladder kept per endpoint: it bounds how many of the run's requests took at most
# any duration (`compare_stats.at_or_below_bound`), finer where p50/p95/p99 are judged.
LADDER = (1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 30.0, 40.0, 45.0, 50.0, 55.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0,
          92.0, 94.0, 95.0, 96.0, 97.0, 98.0, 99.0, 99.5, 99.9)
# Statements per /query request when counting; InfluxDB runs one request's statements in turn.
STATEMENTS_PER_REQUEST = 24
UNFINISHED = ("error", "aborted", "running", "")


@dataclass
class EndpointProfile:
    module: str
    service: str
    name: str
    method: str
    requests: int
    failed: int
    rps: float
    # (percentile, its nearest-rank value in ms, None when the endpoint has too few requests)
    ladder: list[tuple[float, float | None]]
    # (seconds since the run started, at the bucket's middle; p95 ms; requests/s) per bucket
    series: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def key(self) -> EndpointKey:
        return EndpointKey(self.module, self.service, self.name, self.method)

    @property
    def label(self) -> str:
        return f"{self.method} {self.name}".strip()

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def percentile_ms(self, pct: float) -> float:
        """The ladder's value at `pct` (the largest one below it when too few requests rank there)."""
        known = [(p, v) for p, v in self.ladder if v is not None and p <= pct]
        if not known:
            raise ValueError(f"{self.label}: no percentile at or below p{pct:g}")
        return max(known)[1]  # type: ignore[return-value]

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50.0)

    @property
    def p95_ms(self) -> float:
        return self.percentile_ms(95.0)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99.0)


@dataclass
class RunProfile:
    run_id: str
    testid: str
    strategy: str
    status: str
    started_at: str
    ended_at: str
    started_ms: int
    ended_ms: int
    bucket_s: int
    run_dir: str
    influx: dict[str, str | None]
    plan: dict[str, Any] | None
    endpoints: list[EndpointProfile]

    @property
    def seconds(self) -> float:
        return max(0.0, (self.ended_ms - self.started_ms) / 1000.0)

    def endpoint(self, key: EndpointKey) -> EndpointProfile | None:
        return next((e for e in self.endpoints if e.key == key), None)

    def summary(self) -> dict[str, Any]:
        """Who this run is, for documents and messages."""
        return {"run_id": self.run_id, "testid": self.testid, "strategy": self.strategy, "status": self.status,
                "started_at": self.started_at, "ended_at": self.ended_at, "run_dir": self.run_dir,
                "plan": (self.plan or {}).get("name")}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for e in data["endpoints"]:
            e["ladder"] = [list(p) for p in e["ladder"]]
            e["series"] = [list(p) for p in e["series"]]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunProfile:
        endpoints = [EndpointProfile(**{**e, "ladder": [tuple(p) for p in e["ladder"]],
                                        "series": [tuple(p) for p in e.get("series") or []]})
                     for e in data["endpoints"]]
        return cls(**{**data, "endpoints": endpoints})


def _check_finished(inputs: RunInputs) -> None:
    if not inputs.run_dir.complete:
        raise BadInput(f"{inputs.run_dir}: the run did not finish (INCOMPLETE marker); compare finished runs")
    if inputs.status in UNFINISHED:
        raise BadInput(f"{inputs.run_dir.record_path}: status {inputs.status or 'missing'!r}: its samples are partial; "
                       "compare runs whose status is passed or failed")


def _plan_json(inputs: RunInputs) -> dict[str, Any] | None:
    if inputs.plan is None:
        return None
    data: dict[str, Any] = inputs.plan.model_dump(mode="json")
    return data


def _rel_s(t_ms: int, start_ms: int, step_s: int) -> float:
    """Seconds since the run started, at the bucket's middle (never before 0)."""
    return round(max(0.0, (t_ms - start_ms) / 1000.0 + step_s / 2), 3)


def read_endpoints(client: InfluxClient, testid: str, start_ms: int, end_ms: int,
                   module_seconds: Mapping[str, float]) -> tuple[list[EndpointProfile], int]:
    """Per endpoint of run `testid` (window in epoch ms): counts, percentile ladder and series;
    and the bucket size (s). `module_seconds` gives each module's active time for requests/s."""
    reader = MetricsReader(client, testid, start_ms, end_ms)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            ladder_f = pool.submit(_ladders, reader)
            series_f = pool.submit(reader.endpoint_series)
            (counts, failed), series = ladder_f.result(), series_f.result()
    finally:
        reader.close()
    step = reader.interval_s
    run_s = max(0.0, (end_ms - start_ms) / 1000.0)
    endpoints = []
    for key, (n, ladder) in sorted(counts.items()):
        seconds = module_seconds.get(key.module) or run_s
        endpoints.append(EndpointProfile(
            module=key.module, service=key.service, name=key.name, method=key.method,
            requests=n, failed=failed.get(key, 0), rps=round(n / seconds, 3) if seconds else 0.0, ladder=ladder,
            series=[(_rel_s(b.t_ms, start_ms, step), round(b.p95_ms, 3), round(b.requests / step, 3))
                    for b in series.get(key, [])]))
    return endpoints, step


def read_profile(run_dir: Path, influx: InfluxClient | None = None,
                 connect: StoreConnector | None = None) -> RunProfile:
    """The run's endpoint aggregates (InfluxDB) and identity. BadInput for an unfinished run."""
    inputs = load_run(Path(run_dir))
    _check_finished(inputs)
    client = influx or client_for(inputs, connect)
    endpoints, step = read_endpoints(client, inputs.testid, inputs.started_ms, inputs.ended_ms,
                                     {m.name: m.seconds for m in inputs.modules if m.seconds > 0})
    if not endpoints:
        raise BadInput(f"{inputs.run_dir}: InfluxDB ({client.public_url}, db {client.db}) holds no request of run "
                       f"{inputs.testid}; was it written to another database?")
    return RunProfile(
        run_id=inputs.run_id, testid=inputs.testid, strategy=inputs.strategy, status=inputs.status,
        started_at=str(inputs.record.started_at), ended_at=str(inputs.record.ended_at),
        started_ms=inputs.started_ms, ended_ms=inputs.ended_ms, bucket_s=step,
        run_dir=str(inputs.run_dir.path.resolve()), influx={"url": client.public_url, "db": client.db},
        plan=_plan_json(inputs), endpoints=endpoints)


def _alias(pct: float) -> str:
    return "p" + f"{pct:g}".replace(".", "_")


def _ladders(reader: MetricsReader) -> tuple[dict[EndpointKey, tuple[int, list[tuple[float, float | None]]]],
                                             dict[EndpointKey, int]]:
    """Per endpoint: (requests, percentile ladder) and failed requests; two statements."""
    group = ", ".join(quote_ident(t) for t in ("module", "service", "name", "method"))
    ladder = ", ".join(f'percentile("value", {p:g}) AS "{_alias(p)}"' for p in LADDER)
    rows, failures = reader.multi("compare_ladder", [
        f'SELECT count("value") AS "n", {ladder} FROM "{measurements.HTTP_REQ_DURATION}" WHERE {reader.where} GROUP BY {group}',
        f'SELECT sum("value") AS "failed" FROM "{measurements.HTTP_REQ_FAILED}" WHERE {reader.where} GROUP BY {group}',
    ])
    counts = {}
    for row in rows:
        key = EndpointKey(*(str(row.get(t) or "") for t in ("module", "service", "name", "method")))
        values = [(p, None if row.get(_alias(p)) is None else float(row[_alias(p)])) for p in LADDER]
        counts[key] = (int(row.get("n") or 0), values)
    failed = {EndpointKey(*(str(row.get(t) or "") for t in ("module", "service", "name", "method"))):
              round(float(row.get("failed") or 0.0)) for row in failures}
    return counts, failed


def _where(profile: RunProfile, key: EndpointKey, reader: MetricsReader) -> str:
    tags = " AND ".join(f"{quote_ident(t)} = {quote_literal(getattr(key, t))}"
                        for t in ("module", "service", "name", "method"))
    return f"{reader.where} AND {tags}"


def count_at_or_below(profile: RunProfile, thresholds: Mapping[EndpointKey, Iterable[float]],
                      influx: InfluxClient | None = None) -> dict[EndpointKey, dict[float, int]]:
    """Per endpoint and threshold (ms): requests of the run whose http_req_duration <= threshold."""
    client = influx or InfluxClient.from_url(str(profile.influx["url"]), db=profile.influx.get("db"))
    reader = MetricsReader(client, profile.testid, profile.started_ms, profile.ended_ms)
    asked: list[tuple[EndpointKey, float]] = [(k, float(v)) for k, values in sorted(thresholds.items())
                                              for v in values]
    statements = [f'SELECT count("value") AS "n" FROM "{measurements.HTTP_REQ_DURATION}" WHERE {_where(profile, key, reader)} '
                  f'AND "value" <= {value!r}' for key, value in asked]
    chunks = [list(range(i, min(i + STATEMENTS_PER_REQUEST, len(statements))))
              for i in range(0, len(statements), STATEMENTS_PER_REQUEST)]

    def run(indices: list[int]) -> list[int]:
        results = client.query(";\n".join(statements[i] for i in indices))
        counts = []
        for res in results:
            rows = [v for s in res.get("series") or [] for v in s.get("values") or []]
            counts.append(int(rows[0][1]) if rows and rows[0][1] is not None else 0)
        return counts

    with ThreadPoolExecutor(max_workers=2) as pool:
        found = [n for part in pool.map(run, chunks) for n in part]
    out: dict[EndpointKey, dict[float, int]] = {}
    for (key, value), n in zip(asked, found, strict=True):
        out.setdefault(key, {})[value] = n
    return out
