"""Safety: no request reaches a host outside allow_hosts, not even through a redirect;
no credential is printed or written anywhere."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from core.influx import InfluxClient
from runners.allowlist import host_allowed, k6_block_options
from runners.influxd import Influxd
from tests.fixtures.runs import run_cli, write_plan
from tests.fixtures.target import Target, _handler

SCRIPT = """\
import http from 'k6/http';
export default function () {
  http.get(`${__ENV.BASE_URL}/redirect?to=${encodeURIComponent('ELSEWHERE')}`, { tags: { name: 'hop' } });
}
"""


@pytest.fixture
def elsewhere():  # type: ignore[no-untyped-def]
    """A second loopback server on 127.0.0.2: reachable, but not in the plan's allow_hosts."""
    ref: list[Target] = []
    server = ThreadingHTTPServer(("127.0.0.2", 0), _handler(ref))
    t = Target(server=server)
    ref.append(t)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield t
    server.shutdown()
    server.server_close()


def test_redirect_to_a_host_outside_the_allowlist_is_not_followed(
        tmp_path: Path, influxd: Influxd, influx: InfluxClient, lb_env: dict[str, str], target: Target,
        elsewhere: Target) -> None:
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "hop.js").write_text(SCRIPT.replace("ELSEWHERE", elsewhere.url + "/stolen"))
    plan = write_plan(tmp_path, target.url, [{"name": "hop", "script": "modules/hop.js", "rate": 10,
                                              "duration": "2s"}], allow=("127.0.0.1",))
    res = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", f"{influxd.url}/{influx.db}",
                   "--out-dir", str(tmp_path / "runs")], lb_env)
    assert target.seen("/redirect") >= 15
    assert target.seen() == target.seen("/redirect")  # the script really asked for the other host
    assert elsewhere.seen() == 0
    log = (res.run_dir / "k6" / "hop-0.log").read_text()
    assert "127.0.0.2" in log and "blacklist" in log.lower()


def test_same_target_on_an_allowed_alias_still_works(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                                                     lb_env: dict[str, str], target: Target) -> None:
    """The block list does not block what the plan allows (127.0.0.1 via 'localhost')."""
    port = target.url.rsplit(":", 1)[1]
    plan = write_plan(tmp_path, f"http://localhost:{port}", [{"name": "a", "rate": 10, "duration": "1s"}],
                      allow=("localhost",))
    res = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", f"{influxd.url}/{influx.db}",
                   "--out-dir", str(tmp_path / "runs")], lb_env)
    assert res.code == 0, res.stderr
    assert target.seen("/a") == res.record()["modules"][0]["requests"] > 0


@pytest.mark.parametrize(
    ("host", "allow", "ok"),
    [
        ("127.0.0.1", ["127.0.0.1"], True),
        ("127.0.0.2", ["127.0.0.1"], False),
        ("10.0.0.1", ["10.0.0.0/8"], True),
        ("10.0.0.1", ["127.0.0.0/8"], False),
        ("[::1]", ["::1"], True),
        ("::1", ["127.0.0.1"], False),
        ("localhost", ["localhost"], True),
        ("LOCALHOST", ["localhost"], True),
        ("localhost", ["127.0.0.1", "::1"], True),   # resolves only to allowed addresses
        ("localhost", ["10.0.0.1"], False),           # a name that resolves elsewhere
        ("no-such-host.invalid", ["127.0.0.1"], False),
    ],
)
def test_host_allowed_table(host: str, allow: list[str], ok: bool) -> None:
    assert host_allowed(host, allow) is ok


def test_block_list_covers_everything_but_the_allowed() -> None:
    import ipaddress

    blocked = [ipaddress.ip_network(n) for n in k6_block_options(["127.0.0.1"])["blacklistIPs"]]
    for ip in ("127.0.0.2", "10.0.0.1", "192.168.1.1", "8.8.8.8", "::1", "fd00::1", "0.0.0.0"):
        addr = ipaddress.ip_address(ip)
        assert any(addr in n for n in blocked if n.version == addr.version), ip
    assert not any(ipaddress.ip_address("127.0.0.1") in n for n in blocked if n.version == 4)


def test_credentials_are_never_printed_or_recorded(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                                                   lb_env: dict[str, str], target: Target) -> None:
    secret = "Pl4nted-S3cret-9d1e"
    env = {**lb_env, "LOADBEARING_INFLUX_PASSWORD": f"{secret}-env"}
    host = influxd.url.removeprefix("http://")
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 10, "duration": "1s"}])
    res = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", f"http://ops:{secret}@{host}/{influx.db}",
                   "--out-dir", str(tmp_path / "runs")], env)
    assert res.code == 0, res.stderr
    assert secret not in res.stdout + res.stderr
    for path in res.run_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    # and with a store that is down, the error names the URL without the password
    bad = run_cli(["run", "parallel", "--plan", str(plan), "--influx-url", f"http://ops:{secret}@127.0.0.1:9/x",
                   "--out-dir", str(tmp_path / "runs")], env)
    assert bad.code == 4
    assert "127.0.0.1:9" in bad.stderr and secret not in bad.stderr + bad.stdout
