"""Scrape each service's `metrics_url` (Prometheus text) once a second during a run.

`Scraper(targets, influx, testid)` runs in its own thread: every `interval_s` it GETs
each service's URL, or each of its URLs when the plan gives one per instance (all at
once, each with a timeout shorter than the interval),
parses the exposition with prometheus-client's parser, and writes the samples to
InfluxDB in the layout of Telegraf's Prometheus input (metric_version 2): measurement
`loadbearing_scrape`, one point per label set and scrape with one field per sample name
(`db_client_connection_count`, `hikaricp_connections_usage_seconds_sum`, a histogram's
`..._bucket` with its `le` label as a tag), tagged with the sample's labels and
`testid`, `service`, `instance` (host:port of the URL, with its path when two of the
service's URLs share a host:port; a label of the same name is kept as `exported_<name>`,
as Prometheus does). Every attempt also writes a
`loadbearing_scrape_health` point (`ok`, `samples`, `ms`, `error`), so the policies can
count failures from the store.

A scrape that fails (refused, timeout, HTTP error, unparsable text) or a write that the
store refuses is counted and reported (`stop()` returns the counts per service), and
never slows or stops the run: the thread never blocks the controller, and each tick
starts on time however long the previous one took (a tick that would overlap is skipped
and counted as missed).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from core import measurements as names
from core.influx import InfluxClient, line

RESERVED_TAGS = (names.TESTID, names.SERVICE, names.INSTANCE)
MAX_SAMPLES = 20_000  # per scrape; more is not a pool's metrics but a whole registry gone wild


@dataclass
class ScrapeStats:
    """What happened to one service's scrapes over the run."""

    urls: list[str]
    attempts: int = 0
    ok: int = 0
    failed: int = 0
    samples: int = 0
    write_errors: int = 0
    last_error: str | None = None

    def summary(self, service: str) -> str:
        where = self.urls[0] if len(self.urls) == 1 else f"{len(self.urls)} instances' URLs"
        text = f"{service}: {self.ok} of {self.attempts} scrapes of {where} ok"
        if self.failed:
            text += f", {self.failed} failed (last: {self.last_error})"
        if self.write_errors:
            text += f", {self.write_errors} not stored"
        return text


def instance_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def instances_of(urls: list[str]) -> dict[str, str]:
    """Each URL's `instance` tag: its host:port, with its path where host:ports repeat (one
    proxy serving several instances' metrics under different paths)."""
    hosts = [instance_of(u) for u in urls]
    return {u: h if hosts.count(h) == 1 else h + (urlsplit(u).path or "/") for u, h in zip(urls, hosts, strict=True)}


def sample_lines(text: str, tags: dict[str, str], ts_ns: int) -> tuple[list[str], int]:
    """Line protocol for one exposition (fields grouped by label set); (lines, samples).
    Raises ValueError when the text is not Prometheus exposition."""
    points: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
    count = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            value = float(sample.value)
            if not math.isfinite(value):  # InfluxDB stores no NaN or infinity
                continue
            labels = {(f"exported_{k}" if k in RESERVED_TAGS else k): str(v) for k, v in sample.labels.items()}
            key = tuple(sorted(labels.items()))
            points.setdefault(key, {})[sample.name] = value
            count += 1
            if count >= MAX_SAMPLES:
                break
    lines = [line(names.SCRAPE, {**tags, **dict(key)}, fields, ts_ns) for key, fields in points.items()]
    return lines, count


@dataclass
class Scraper:
    """Scrapes `targets` (service -> its metrics URL, or one per instance) into `influx`, tagged with `testid`."""

    targets: dict[str, str | list[str]]
    influx: InfluxClient
    testid: str
    interval_s: float = 1.0
    timeout_s: float = 0.8
    stats: dict[str, ScrapeStats] = field(default_factory=dict)
    missed_ticks: int = 0
    stopped: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _counting: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        urls = {svc: [u] if isinstance(u, str) else list(u) for svc, u in sorted(self.targets.items())}
        self._jobs = [(svc, url, instance) for svc, us in urls.items() for url, instance in instances_of(us).items()]
        self.stats = {svc: ScrapeStats(us) for svc, us in urls.items()}
        # Its own connections, a short timeout and no retries: a slow or failing store delays the
        # next scrape, never the run (the next second writes anew; write errors are counted).
        self._store = self.influx.copy(timeout=max(1.0, self.interval_s * 2), retry_s=0.0)

    def start(self) -> Scraper:
        if self.targets and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="loadbearing-scrape", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> dict[str, ScrapeStats]:
        """Stop after a last scrape (so the run's end is covered); returns the counts per service."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=self.timeout_s + 15.0)
            self._thread = None
        self._store.close()
        self.stopped = True
        return self.stats

    def _loop(self) -> None:
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as http, \
                ThreadPoolExecutor(max_workers=min(8, len(self._jobs)) or 1) as pool:
            next_at = time.monotonic()
            while True:
                self._tick(http, pool)
                if self._stop.is_set():
                    return
                next_at += self.interval_s
                now = time.monotonic()
                while next_at < now:  # a tick that took too long: skip to the next slot
                    next_at += self.interval_s
                    self.missed_ticks += 1
                self._stop.wait(max(0.0, next_at - now))

    def _tick(self, http: httpx.Client, pool: ThreadPoolExecutor) -> None:
        ts_ns = time.time_ns()
        results = list(pool.map(lambda job: self._scrape(http, job[0], job[1], job[2], ts_ns), self._jobs))
        lines = [text for batch in results for text in batch]
        self._write(lines, sorted({svc for (svc, _, _), batch in zip(self._jobs, results, strict=True) if batch}))

    def _scrape(self, http: httpx.Client, service: str, url: str, instance: str, ts_ns: int) -> list[str]:
        stats = self.stats[service]
        tags = {names.TESTID: self.testid, names.SERVICE: service, names.INSTANCE: instance}
        started = time.monotonic()
        error: str | None = None
        lines: list[str] = []
        samples = 0
        try:
            r = http.get(url, headers={"Accept": "text/plain;version=0.0.4"})
            if r.status_code != 200:
                error = f"HTTP {r.status_code}"
            else:
                lines, samples = sample_lines(r.text, tags, ts_ns)
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        except ValueError as exc:
            error = f"not Prometheus text: {str(exc)[:120]}"
        ms = (time.monotonic() - started) * 1000.0
        with self._counting:  # one service's URLs are scraped at once, from several threads
            stats.attempts += 1
            if error is None:
                stats.ok += 1
                stats.samples += samples
            else:
                stats.failed += 1
                stats.last_error = error
        health: dict[str, object] = {"ok": error is None, "samples": samples, "ms": round(ms, 3)}
        if error is not None:
            health["error"] = error
        return [*lines, line(names.SCRAPE_HEALTH, tags, health, ts_ns)]

    def _write(self, lines: Iterable[str], services: list[str]) -> None:
        try:
            self._store.write(lines)
        except Exception:  # the store's trouble is counted, never raised into the run
            for svc in services:
                self.stats[svc].write_errors += 1
