"""A run whose store was the local stack reads back after `stack down`: recommend, report,
verify and compare bring the stack up again (its data is kept) and find it where it listens now."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from core.influx import InfluxClient
from core.rundir import RunDir
from loadbearing.cli import main
from runners import stack
from tests.fixtures.require import need_binary
from tests.policies.synthetic import Endpoint, Module, Service, write_run

FAST = Endpoint("items_get", latency_ms=lambda t, rnd: 8 + rnd.random() * 4, keys=40)


@pytest.fixture
def local_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[stack.StackInfo]:
    need_binary("influxd", "influxdb")
    monkeypatch.setenv("LOADBEARING_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("LOADBEARING_INFLUX_URL", raising=False)
    info = stack.up("process")
    try:
        yield info
    finally:
        stack.down()


def test_reading_a_run_back_starts_the_local_stack_where_it_listens_now(
        local_stack: stack.StackInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = InfluxClient.from_url(local_stack.influx_url, db=local_stack.influx_db)
    runs = []
    for name in ("before", "after"):
        run_dir = write_run(tmp_path / name, client, f"ondemand-{name}",
                            [Module("items", "shop-api", 50, 20, [FAST])], [Service("shop-api", {"db_pool_size": 5})])
        rd = RunDir(run_dir)
        record = rd.read_record()
        record.influx.stack = "process"  # as `run` records a store that is the local stack
        rd.write_record(record, complete=True)
        runs.append(run_dir)
    stack.down()
    assert stack.status() == (None, False)

    # Whatever now listens where the stack did is not the stack: the run must not be read from there.
    old = urlsplit(local_stack.influx_url)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((old.hostname or "127.0.0.1", old.port or 0))
    squatter.listen()
    try:
        assert main(["recommend", str(runs[0]), "--json"]) == 0
        out = capsys.readouterr()
        doc = json.loads(out.out)
        assert doc["valid"] is True and doc["endpoints"][0]["requests"] == 1000
        assert "starting it" in out.err
        info, alive = stack.status()
        assert alive and info is not None and info.influx_url != local_stack.influx_url
        assert main(["report", str(runs[0])]) == 0
        assert main(["verify", str(runs[0]), str(runs[1])]) == 0
        assert (runs[1] / "verification.json").is_file()
        assert main(["compare", str(runs[0]), str(runs[1])]) == 0  # the same samples twice: no change
        assert (runs[1] / "comparison.json").is_file()
    finally:
        squatter.close()


def test_a_run_with_another_store_is_read_where_it_recorded(local_stack: stack.StackInfo, tmp_path: Path) -> None:
    client = InfluxClient.from_url(local_stack.influx_url, db=local_stack.influx_db)
    run_dir = write_run(tmp_path / "run", client, "ondemand-url", [Module("items", "shop-api", 50, 20, [FAST])],
                        [Service("shop-api", {"db_pool_size": 5})])
    store = RunDir(run_dir).read_record().influx
    assert store.stack is None
    assert stack.recorded_store(store).url == local_stack.influx_url
