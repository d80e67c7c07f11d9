"""The docker provider of the local stack: InfluxDB and Grafana containers.

`docker_up()` starts (or reuses) two containers on the host's network, each bound
to 127.0.0.1 only:

- `loadbearing-influxdb`: InfluxDB 1.x (`influxdb:1.8.10`, else a local build of
  this machine's influxd, see runners/images.py) on 127.0.0.1:8086 when that port is
  free, else a free port; configured like the process stack (runners/influxd.py:
  reporting off, `max-body-size = 0`, ...) through INFLUXDB_* variables; data in the
  named volume `loadbearing-influxdb-data`. Ready when `/ping` answers 204.
- `loadbearing-grafana` (pinned `grafana/grafana:12.4.12`, core/images.py), unless disabled with
  `grafana=False` or LOADBEARING_STACK_GRAFANA=0: on 127.0.0.1:3000 when free, else
  a free port; `grafana_dashboards/provisioning` mounted read-only at
  /etc/grafana/provisioning and `grafana_dashboards/json` at the path the dashboard
  provider names (default /var/lib/grafana/dashboards); the provisioned datasource
  reads LOADBEARING_INFLUX_URL (and _USERNAME, _PASSWORD: empty) from its environment; data in
  the named volume `loadbearing-grafana-data`. Ready when `/api/health` answers 200.

Health is waited on from the controller's side over loopback (the local InfluxDB
image has no shell for an in-container check); images that have one also carry a
Docker HEALTHCHECK, so `docker ps` shows it. A container that exits while being
waited on fails `stack up` with its log tail, and whatever `docker_up` started
(containers, volumes it created) is removed again. `docker_down()` removes the
stack's containers and keeps the volumes unless `purge`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

from core.errors import RunError
from core.influx import DEFAULT_DB
from core.state import free_port
from runners import images
from runners.backends.docker import LABEL, ROLE, connect
from runners.stack_state import StackInfo

INFLUXDB = "loadbearing-influxdb"
GRAFANA = "loadbearing-grafana"
INFLUXDB_VOLUME = "loadbearing-influxdb-data"
GRAFANA_VOLUME = "loadbearing-grafana-data"
SERVICE = f"{LABEL}.stack"
PORT = f"{LABEL}.port"
INFLUXDB_PORT = 8086
GRAFANA_PORT = 3000
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
GRAFANA_DASHBOARDS = "/var/lib/grafana/dashboards"
GRAFANA_DATA = "/var/lib/grafana"
INFLUXDB_READY_S = 60.0
GRAFANA_READY_S = 180.0


def engine_available(timeout: int = 3) -> bool:
    """True when a Docker engine answers at DOCKER_HOST (or the default socket)."""
    try:
        connect(timeout=timeout).close()
    except RunError:
        return False
    return True


def preferred_port(port: int) -> int:
    """`port` when it is free on 127.0.0.1, else a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def stack_labels(service: str, port: int) -> dict[str, str]:
    return {ROLE: "stack", SERVICE: service, PORT: str(port)}


def influxdb_environment(http_port: int, rpc_port: int) -> dict[str, str]:
    """INFLUXDB_* overrides: the process stack's config (runners/influxd.py) on the given loopback ports."""
    return {
        "INFLUXDB_REPORTING_DISABLED": "true",
        "INFLUXDB_BIND_ADDRESS": f"127.0.0.1:{rpc_port}",
        "INFLUXDB_HTTP_BIND_ADDRESS": f"127.0.0.1:{http_port}",
        "INFLUXDB_HTTP_AUTH_ENABLED": "false",
        "INFLUXDB_HTTP_LOG_ENABLED": "false",
        "INFLUXDB_HTTP_MAX_BODY_SIZE": "0",
        "INFLUXDB_HTTP_MAX_CONCURRENT_WRITE_LIMIT": "0",
        "INFLUXDB_HTTP_MAX_ENQUEUED_WRITE_LIMIT": "0",
        "INFLUXDB_META_DIR": f"{images.INFLUXD_DATA}/meta",
        "INFLUXDB_DATA_DIR": f"{images.INFLUXD_DATA}/data",
        "INFLUXDB_DATA_WAL_DIR": f"{images.INFLUXD_DATA}/wal",
        "INFLUXDB_DATA_QUERY_LOG_ENABLED": "false",
        "INFLUXDB_DATA_MAX_SERIES_PER_DATABASE": "0",
        "INFLUXDB_DATA_MAX_VALUES_PER_TAG": "0",
        "INFLUXDB_COORDINATOR_MAX_SELECT_POINT": "0",
        "INFLUXDB_COORDINATOR_MAX_SELECT_SERIES": "0",
        "INFLUXDB_COORDINATOR_QUERY_TIMEOUT": "60s",
        "INFLUXDB_MONITOR_STORE_ENABLED": "false",
        "INFLUXDB_SUBSCRIBER_ENABLED": "false",
        "INFLUXDB_CONTINUOUS_QUERIES_ENABLED": "false",
        "INFLUXDB_LOGGING_LEVEL": "warn",
    }


def _healthcheck(command: str) -> dict[str, Any]:
    second = 1_000_000_000
    return {"test": ["CMD-SHELL", command], "interval": 5 * second, "timeout": 3 * second,
            "retries": 12, "start_period": 5 * second}


def influxdb_container_spec(image: str, http_port: int, rpc_port: int) -> dict[str, Any]:
    """The keyword arguments of `containers.run` for the stack's InfluxDB."""
    spec: dict[str, Any] = {
        "image": image,
        "name": INFLUXDB,
        "network_mode": "host",
        "environment": influxdb_environment(http_port, rpc_port),
        "labels": stack_labels("influxdb", http_port),
        "mounts": [docker.types.Mount(target=images.INFLUXD_DATA, source=INFLUXDB_VOLUME, type="volume")],
        "restart_policy": {"Name": "unless-stopped"},
        "detach": True,
    }
    if image == images.INFLUXDB_IMAGE:  # the official image has curl; the local build has no shell
        spec["healthcheck"] = _healthcheck(f"curl -sf http://127.0.0.1:{http_port}/ping || exit 1")
    return spec


def dashboards_dir() -> Path:
    """The `grafana_dashboards` package directory (found without importing it)."""
    found = importlib.util.find_spec("grafana_dashboards")
    if found is not None and found.submodule_search_locations:
        return Path(next(iter(found.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "grafana_dashboards"


_PATH = re.compile(r"^\s*path:\s*['\"]?([^'\"#\s]+)", re.MULTILINE)


def provider_dashboards_path(provisioning: Path) -> str:
    """Where the file dashboard provider in `provisioning/dashboards/*.y*ml` reads dashboards."""
    for path in sorted((provisioning / "dashboards").glob("*.y*ml")):
        try:
            found = _PATH.search(path.read_text())
        except OSError:
            continue
        if found and found.group(1).startswith("/"):
            return found.group(1)
    return GRAFANA_DASHBOARDS


def grafana_container_spec(image: str, port: int, influx_url: str, influx_db: str = DEFAULT_DB,
                           dashboards: Path | None = None) -> dict[str, Any]:
    """The keyword arguments of `containers.run` for the stack's Grafana."""
    root = (dashboards or dashboards_dir()).resolve()
    provisioning = root / "provisioning"
    json_dir = root / "json"
    target = provider_dashboards_path(provisioning)
    env = {
        "GF_SERVER_HTTP_ADDR": "127.0.0.1",
        "GF_SERVER_HTTP_PORT": str(port),
        "GF_SERVER_ROOT_URL": f"http://127.0.0.1:{port}/",
        "GF_PATHS_PROVISIONING": GRAFANA_PROVISIONING,
        "GF_AUTH_ANONYMOUS_ENABLED": "true",   # loopback only: a local, single-user stack
        "GF_AUTH_ANONYMOUS_ORG_ROLE": "Admin",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
        "GF_NEWS_NEWS_FEED_ENABLED": "false",
        # Read by grafana_dashboards/provisioning/datasources (Grafana expands ${VAR}).
        "LOADBEARING_INFLUX_URL": influx_url,
        "LOADBEARING_INFLUX_DB": influx_db,
        "LOADBEARING_INFLUX_USERNAME": "",  # the local stack's InfluxDB has no authentication
        "LOADBEARING_INFLUX_PASSWORD": "",
    }
    home = json_dir / "loadbearing-overview.json"
    if home.exists():
        env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] = f"{target}/{home.name}"
    return {
        "image": image,
        "name": GRAFANA,
        "network_mode": "host",
        "environment": env,
        "labels": stack_labels("grafana", port),
        "mounts": [
            docker.types.Mount(target=GRAFANA_DATA, source=GRAFANA_VOLUME, type="volume"),
            docker.types.Mount(target=GRAFANA_PROVISIONING, source=str(provisioning), type="bind", read_only=True),
            docker.types.Mount(target=target, source=str(json_dir), type="bind", read_only=True),
        ],
        "healthcheck": _healthcheck(f"wget -q -O /dev/null http://127.0.0.1:{port}/api/health || exit 1"),
        "restart_policy": {"Name": "unless-stopped"},
        "detach": True,
    }


def grafana_enabled(grafana: bool | None) -> bool:
    if grafana is not None:
        return grafana
    return os.environ.get("LOADBEARING_STACK_GRAFANA", "1").strip().lower() not in ("0", "false", "no", "off")


def _stack_containers(client: docker.DockerClient) -> list[Any]:
    found: list[Any] = client.containers.list(all=True, filters={"label": f"{ROLE}=stack"})
    return found


def _log_tail(container: Any, lines: int = 30) -> str:
    try:
        return bytes(container.logs(tail=lines)).decode(errors="replace")
    except docker.errors.DockerException:
        return "(no log)"


def wait_healthy(container: Any, url: str, ok_status: int, timeout_s: float, what: str) -> None:
    """Wait until `url` answers `ok_status`; RunError if the container exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as http:
        while True:
            try:
                if http.get(url).status_code == ok_status:
                    return
            except httpx.HTTPError:
                pass
            try:
                container.reload()
                state = container.attrs.get("State", {})
            except docker.errors.DockerException as exc:
                raise RunError(f"{what}: the Docker engine lost its container: {exc}") from None
            if not state.get("Running") and state.get("Status") not in ("created", "restarting"):
                raise RunError(f"{what} exited with code {state.get('ExitCode')} before answering {url}:\n"
                               f"{_log_tail(container)}")
            if time.monotonic() > deadline:
                raise RunError(f"{what} did not answer {url} within {timeout_s:.0f}s:\n{_log_tail(container)}")
            time.sleep(0.2)


def _reusable(container: Any, path: str, ok_status: int) -> str | None:
    """The base URL of a running stack container that answers, else None."""
    port = (container.labels or {}).get(PORT)
    if container.status != "running" or not port:
        return None
    url = f"http://127.0.0.1:{port}"
    try:
        if httpx.get(url + path, timeout=2.0).status_code == ok_status:
            return url
    except httpx.HTTPError:
        pass
    return None


def _volume(client: docker.DockerClient, name: str, service: str) -> Any:
    """The named volume, created when missing; returns it when created now, else None."""
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        return client.volumes.create(name=name, labels={ROLE: "stack", SERVICE: service})
    return None


def _start(client: docker.DockerClient, spec: dict[str, Any]) -> Any:
    try:
        return client.containers.run(**spec)
    except docker.errors.APIError as exc:
        raise RunError(f"could not start {spec['name']} ({spec['image']}): {exc.explanation or exc}") from None


def docker_up(grafana: bool | None = None, pull: str | None = None, base_url: str | None = None) -> StackInfo:
    """Start (or reuse) the stack's containers and wait until each answers; see the module doc."""
    client = connect(base_url)
    policy = images.pull_policy(pull)
    with_grafana = grafana_enabled(grafana)
    existing = {c.name: c for c in _stack_containers(client)}
    started: list[Any] = []
    created: list[Any] = []  # volumes made by this call: removed again if it fails
    try:
        influx_url = _reusable(existing[INFLUXDB], "/ping", 204) if INFLUXDB in existing else None
        if influx_url is None:
            if INFLUXDB in existing:
                existing[INFLUXDB].remove(force=True)
            image = images.ensure_influxdb_image(client, policy)
            created.append(_volume(client, INFLUXDB_VOLUME, "influxdb"))
            port = preferred_port(INFLUXDB_PORT)
            container = _start(client, influxdb_container_spec(image, port, free_port()))
            started.append(container)
            influx_url = f"http://127.0.0.1:{port}"
            wait_healthy(container, f"{influx_url}/ping", 204, INFLUXDB_READY_S, f"InfluxDB ({image})")
        names = [INFLUXDB]
        grafana_url = None
        if with_grafana:
            grafana_url = _reusable(existing[GRAFANA], "/api/health", 200) if GRAFANA in existing else None
            if grafana_url is None:
                if GRAFANA in existing:
                    existing[GRAFANA].remove(force=True)
                try:
                    image = images.ensure_grafana_image(client, policy)
                except RunError as exc:
                    raise RunError(f"{exc.message}; or start the stack without Grafana: "
                                   "LOADBEARING_STACK_GRAFANA=0 loadbearing stack up --provider docker") from None
                created.append(_volume(client, GRAFANA_VOLUME, "grafana"))
                port = preferred_port(GRAFANA_PORT)
                container = _start(client, grafana_container_spec(image, port, influx_url))
                started.append(container)
                grafana_url = f"http://127.0.0.1:{port}"
                wait_healthy(container, f"{grafana_url}/api/health", 200, GRAFANA_READY_S, f"Grafana ({image})")
            names.append(GRAFANA)
        elif GRAFANA in existing:
            existing[GRAFANA].remove(force=True)
    except BaseException:
        for c in started:
            try:
                c.remove(force=True)
            except docker.errors.DockerException:
                pass
        for v in created:
            try:
                if v is not None:
                    v.remove(force=True)
            except docker.errors.DockerException:
                pass
        raise
    return StackInfo(provider="docker", influx_url=influx_url, influx_db=DEFAULT_DB, grafana_url=grafana_url,
                     containers=names)


def docker_down(purge: bool = False, base_url: str | None = None) -> list[str]:
    """Remove the stack's containers (and its volumes when `purge`); returns what was removed.

    When no engine answers there is nothing left to remove: returns [].
    """
    try:
        client = connect(base_url, timeout=30)
    except RunError:
        return []
    removed: list[str] = []
    for c in _stack_containers(client):
        try:
            c.stop(timeout=10)
        except docker.errors.DockerException:
            pass
        try:
            c.remove(force=True, v=False)
            removed.append(f"container {c.name}")
        except docker.errors.NotFound:
            pass
    if purge:
        volumes = {v.name: v for v in client.volumes.list(filters={"label": f"{ROLE}=stack"})}
        for name in (INFLUXDB_VOLUME, GRAFANA_VOLUME):
            if name not in volumes:
                try:
                    volumes[name] = client.volumes.get(name)
                except docker.errors.NotFound:
                    continue
        for name, volume in sorted(volumes.items()):
            try:
                volume.remove(force=True)
                removed.append(f"volume {name}")
            except docker.errors.NotFound:
                pass
    return removed
