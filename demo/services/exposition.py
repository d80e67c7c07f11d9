"""GET /metrics of a demo service: Prometheus text in the standard names, as a real service exposes them.

- the connection pool in OpenTelemetry's semantic conventions for database client
  connection pools, as the OpenTelemetry Prometheus exporter names them:
  `db_client_connection_count{db_client_connection_state="used"|"idle"}`,
  `db_client_connection_max` (size + max overflow), `db_client_connection_pending_requests`,
  `db_client_connection_timeouts_total`, `db_client_connection_use_time_seconds` and
  `db_client_connection_wait_time_seconds` (histograms: `_sum`, `_count`), all with
  `db_client_connection_pool_name` = the service;
- the cache in Micrometer's names: `cache_gets_total{cache=<endpoint>, result="hit"|"miss"}`
  (a coalesced miss waited for another request's load and counts as a hit).

Values are read from the service's own counters at scrape time (prometheus-client's
custom collector), so serving the metrics costs nothing per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from demo.services.cache import TTLCache
from demo.services.db import Database
from demo.services.settings import Settings

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
POOL = "db_client_connection_pool_name"


class ServiceContext(Protocol):
    """What the collector reads of a running service (demo.services.app.ServiceContext)."""

    settings: Settings
    db: Database
    cache: TTLCache


class ServiceCollector(Collector):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        ctx = self.ctx
        name = ctx.settings.service
        pool = ctx.db.pool_state()
        stats = ctx.db.stats
        count = GaugeMetricFamily("db_client_connection_count", "Connections in the state of the state label",
                                  labels=[POOL, "db_client_connection_state"])
        size = pool["size"] + pool["max_overflow"]
        count.add_metric([name, "used"], pool["checked_out"])
        count.add_metric([name, "idle"], max(0, size - pool["checked_out"]))
        yield count
        yield _gauge("db_client_connection_max", "The maximum number of open connections allowed", name, size)
        yield _gauge("db_client_connection_pending_requests", "Pending requests for an open connection", name,
                     pool["waiting"])
        timeouts = CounterMetricFamily("db_client_connection_timeouts", "Connection timeouts", labels=[POOL])
        timeouts.add_metric([name], stats.timeouts)
        yield timeouts
        yield _histogram("db_client_connection_use_time_seconds", "Time between borrowing a connection and "
                         "returning it", name, stats.holds, stats.hold_ms_total / 1000.0)
        yield _histogram("db_client_connection_wait_time_seconds", "Time it took to obtain an open connection",
                         name, stats.checkouts, stats.wait_ms_total / 1000.0)
        gets = CounterMetricFamily("cache_gets", "Cache lookups by result", labels=["cache", "result"])
        for endpoint, counts in sorted(ctx.cache.totals.items()):
            gets.add_metric([endpoint, "hit"], counts.hits)
            gets.add_metric([endpoint, "miss"], counts.misses)
        yield gets


def _gauge(metric: str, doc: str, pool: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(metric, doc, labels=[POOL])
    family.add_metric([pool], value)
    return family


def _histogram(metric: str, doc: str, pool: str, count: int, total_s: float) -> HistogramMetricFamily:
    family = HistogramMetricFamily(metric, doc, labels=[POOL])
    family.add_metric([pool], buckets=[("+Inf", count)], sum_value=total_s)
    return family


def registry_for(ctx: ServiceContext) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(ctx))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
