"""`loadbearing stack up --provider docker` on a real private dockerd: InfluxDB in a
container (built from this machine's influxd when influxdb:1.8.10 cannot be pulled),
bound to loopback, data in a named volume kept by `stack down` and removed by `--purge`."""

from __future__ import annotations

import time

import httpx

from core.influx import InfluxClient, line
from runners import images
from tests.fixtures.dockerd import PrivateDockerd
from tests.fixtures.runs import run_cli

STACK = {"label": "loadbearing.role=stack"}
VOLUME = "loadbearing-influxdb-data"


def test_stack_up_answers_then_down_leaves_only_the_volume(dockerd: PrivateDockerd,
                                                           docker_env: dict[str, str]) -> None:
    env = {**docker_env, "LOADBEARING_STACK_GRAFANA": "0"}  # Grafana's image cannot be had offline
    client = dockerd.client
    try:
        up = run_cli(["stack", "up", "--provider", "docker"], env)
        assert up.code == 0, up.stderr
        url = up.stdout.strip().splitlines()[-1]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/ping", timeout=5).status_code == 204
        (container,) = client.containers.list(filters=STACK)
        assert container.name == "loadbearing-influxdb"
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        db = InfluxClient.from_url(url)  # `stack up` created the default database
        db.write([line("probe", {"k": "v"}, {"value": 1}, time.time_ns())])
        status = run_cli(["stack", "status"], env)
        assert status.stdout.strip() == url and "up" in status.stderr

        down = run_cli(["stack", "down"], env)
        assert down.code == 0, down.stderr
        assert client.containers.list(all=True, filters=STACK) == []
        assert [v.name for v in client.volumes.list(filters=STACK)] == [VOLUME]
        try:
            httpx.get(f"{url}/ping", timeout=2)
            raise AssertionError("InfluxDB still answers after stack down")
        except httpx.HTTPError:
            pass

        again = run_cli(["stack", "up", "--provider", "docker"], env)  # the volume kept the data
        assert again.code == 0, again.stderr
        url = again.stdout.strip().splitlines()[-1]
        rows = InfluxClient.from_url(url).rows('SELECT count("value") FROM "probe"')
        assert rows[0]["count"] == 1
    finally:
        purge = run_cli(["stack", "down", "--purge"], env)
    assert purge.code == 0, purge.stderr
    assert client.containers.list(all=True, filters=STACK) == []
    assert client.volumes.list(filters=STACK) == []


def test_the_engine_accepts_the_grafana_container_spec(dockerd: PrivateDockerd, docker_env: dict[str, str]) -> None:
    """Grafana cannot run here; its spec is created (not started) on a stand-in image and read back."""
    from runners import images
    from runners.stack_docker import GRAFANA_VOLUME, dashboards_dir, grafana_container_spec

    client = dockerd.client
    stand_in = client.images.get(images.ensure_k6_image(client, "never"))
    stand_in.tag("loadbearing/grafana-stand-in", "test")
    spec = grafana_container_spec("loadbearing/grafana-stand-in:test", 3999, "http://127.0.0.1:8086")
    spec.pop("detach")
    container = client.containers.create(**spec)
    try:
        host = container.attrs["HostConfig"]
        assert host["NetworkMode"] == "host"
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        assert "PortBindings" not in host or not host["PortBindings"]
        mounts = {m["Target"]: m for m in host["Mounts"]}
        root = dashboards_dir().resolve()
        assert mounts["/etc/grafana/provisioning"]["Source"] == str(root / "provisioning")
        assert mounts["/etc/grafana/provisioning"]["ReadOnly"] is True
        assert mounts["/var/lib/grafana"]["Source"] == GRAFANA_VOLUME
        env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
        assert env["GF_SERVER_HTTP_ADDR"] == "127.0.0.1" and env["GF_SERVER_HTTP_PORT"] == "3999"
        assert container.attrs["Config"]["Healthcheck"]["Test"][0] == "CMD-SHELL"
        assert container.labels["loadbearing.role"] == "stack"
    finally:
        container.remove(force=True)
        client.images.remove("loadbearing/grafana-stand-in:test")
        if GRAFANA_VOLUME in [v.name for v in client.volumes.list()]:
            client.volumes.get(GRAFANA_VOLUME).remove(force=True)


def test_stack_up_without_the_grafana_image_fails_clearly_and_leaves_nothing(dockerd: PrivateDockerd,
                                                                              docker_env: dict[str, str]) -> None:
    up = run_cli(["stack", "up", "--provider", "docker"], docker_env)  # Grafana wanted; never pulled here
    assert up.code == 4
    assert images.GRAFANA_IMAGE in up.stderr and "LOADBEARING_STACK_GRAFANA=0" in up.stderr
    assert "Traceback" not in up.stderr
    assert dockerd.client.containers.list(all=True, filters=STACK) == []
    run_cli(["stack", "down", "--purge"], docker_env)
    assert dockerd.client.volumes.list(filters=STACK) == []
