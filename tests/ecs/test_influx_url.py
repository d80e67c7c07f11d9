"""`InfluxClient.from_url`: a base path behind a proxy is kept, not taken for a database name."""

from __future__ import annotations

import pytest

from core.errors import BadInput
from core.influx import InfluxClient


@pytest.mark.parametrize(("url", "db", "base", "database"), [
    ("http://127.0.0.1:8086", None, "http://127.0.0.1:8086", "loadbearing"),
    ("http://127.0.0.1:8086/perf", None, "http://127.0.0.1:8086", "perf"),
    ("http://127.0.0.1:8086/perf/", None, "http://127.0.0.1:8086", "perf"),
    # behind a reverse proxy: the last segment is the database, the rest the proxy's path
    ("https://lb.example.com:8086/influx/perf", None, "https://lb.example.com:8086/influx", "perf"),
    # with the database given, the whole path is the base path
    ("https://lb.example.com/a/influx", "perf", "https://lb.example.com/a/influx", "perf"),
    ("http://u:p@[::1]:9/influx/perf", None, "http://[::1]:9/influx", "perf"),
])
def test_base_path_is_kept(url: str, db: str | None, base: str, database: str) -> None:
    client = InfluxClient.from_url(url, db=db)
    assert (client.url, client.db) == (base, database)
    assert client.public_url == base


def test_k6_writes_to_the_runner_url_and_never_through_a_path() -> None:
    proxied = InfluxClient.from_url("http://127.0.0.1:9/influx", db="perf")
    with pytest.raises(BadInput, match="cannot write through a URL path"):
        proxied.k6_output_url()
    proxied.runner_url = "http://influxdb.lb.internal:8086"
    assert proxied.k6_output_url() == "http://influxdb.lb.internal:8086/perf"
    assert InfluxClient.from_url("http://127.0.0.1:8086/perf").k6_output_url() == "http://127.0.0.1:8086/perf"
