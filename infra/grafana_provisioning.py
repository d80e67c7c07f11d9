"""What Grafana on ECS is provisioned with, read from `grafana_dashboards/` at program time.

`grafana_dashboards/provisioning/` (datasources, dashboard providers, ...) is shipped as
it is, and `grafana_dashboards/json/*.json` lands in the directory the dashboard
provider reads (`options.path`, e.g. `/var/lib/grafana/dashboards/loadbearing`).
When a part is absent, a default takes its place: the loadbearing InfluxDB datasource
and a provider for the `loadbearing` folder, so Grafana always starts with a working
datasource. The datasource file takes its connection from Grafana's environment
(`LOADBEARING_INFLUX_URL`, `..._USERNAME`, `..._PASSWORD`), which the Grafana task sets;
its database is rewritten to the stack's `influxdbDatabase` when that differs.

Grafana's task gets the files from S3 (`grafana/provisioning/...`, `grafana/dashboards/...`
in the stack bucket), copied onto task volumes by an init container before Grafana
starts; `digest()` changes whenever a file does, which rolls the task.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

DASHBOARDS_ROOT = Path(__file__).resolve().parent.parent / "grafana_dashboards"
PROVISIONING_PATH = "/etc/grafana/provisioning"
DEFAULT_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/loadbearing"
DATASOURCE_UID = "loadbearing-influxdb"
ENV_URL = "LOADBEARING_INFLUX_URL"
ENV_USERNAME = "LOADBEARING_INFLUX_USERNAME"
ENV_PASSWORD = "LOADBEARING_INFLUX_PASSWORD"


class ProvisioningError(ValueError):
    """A file under grafana_dashboards/ cannot be shipped as it is; the message names it."""


@dataclass(frozen=True)
class ProvisioningFile:
    """One file: `key` is its S3 key under the bucket's `grafana/` prefix."""

    key: str
    content: str

    @property
    def content_type(self) -> str:
        return "application/json" if self.key.endswith(".json") else "application/yaml"


@dataclass(frozen=True)
class Provisioning:
    """The files, where dashboards go in the container, and the InfluxDB datasource uid."""

    files: tuple[ProvisioningFile, ...]
    dashboards_path: str
    datasource_uid: str

    def digest(self) -> str:
        """sha256 over every key and content (stable order)."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.key):
            h.update(f.key.encode() + b"\0" + f.content.encode() + b"\0")
        return h.hexdigest()


def _load_yaml(path: Path) -> Any:
    try:
        return YAML(typ="safe", pure=True).load(path.read_text())
    except Exception as exc:
        raise ProvisioningError(f"{path}: not valid YAML ({exc})") from exc


def default_datasources(database: str) -> dict[str, Any]:
    """The loadbearing InfluxDB (InfluxQL) datasource, connection from the environment."""
    return {"apiVersion": 1, "datasources": [{
        "name": "loadbearing InfluxDB",
        "uid": DATASOURCE_UID,
        "type": "influxdb",
        "access": "proxy",
        "url": f"${{{ENV_URL}}}",
        "user": f"${{{ENV_USERNAME}}}",
        "isDefault": True,
        "editable": False,
        "jsonData": {"version": "InfluxQL", "dbName": database, "httpMode": "GET", "timeInterval": "1s"},
        "secureJsonData": {"password": f"${{{ENV_PASSWORD}}}"},
    }]}


def default_dashboard_provider() -> dict[str, Any]:
    """A file provider loading every dashboard into the `loadbearing` folder."""
    return {"apiVersion": 1, "providers": [{
        "name": "loadbearing", "orgId": 1, "folder": "loadbearing", "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 30,
        "options": {"path": DEFAULT_DASHBOARDS_PATH, "foldersFromFilesStructure": False},
    }]}


def _yaml_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


def collect(root: Path = DASHBOARDS_ROOT, database: str = "loadbearing") -> Provisioning:
    """Read `root/provisioning/**` and `root/json/**/*.json`; fill in defaults for what is absent.

    Raises ProvisioningError for a file that is not valid YAML/JSON, or for dashboard
    providers that read more than one directory (the task mounts one).
    """
    files: list[ProvisioningFile] = []
    provisioning = root / "provisioning"

    datasource_files = _yaml_files(provisioning / "datasources")
    uid = DATASOURCE_UID
    if datasource_files:
        for path in datasource_files:
            text = path.read_text()
            doc = _load_yaml(path) or {}
            changed = False
            for ds in doc.get("datasources") or []:
                if ds.get("type") != "influxdb":
                    continue
                uid = ds.get("uid") or uid
                json_data = ds.setdefault("jsonData", {})
                if json_data.get("dbName", ds.get("database")) != database:
                    json_data["dbName"] = database
                    ds.pop("database", None)
                    changed = True
            # YAML is a superset of JSON: a rewritten file is shipped as JSON text.
            files.append(ProvisioningFile(f"provisioning/datasources/{path.name}",
                                          json.dumps(doc, indent=2) if changed else text))
    else:
        files.append(ProvisioningFile("provisioning/datasources/loadbearing.yaml",
                                      json.dumps(default_datasources(database), indent=2)))

    provider_files = _yaml_files(provisioning / "dashboards")
    paths: set[str] = set()
    for path in provider_files:
        doc = _load_yaml(path) or {}
        for provider in doc.get("providers") or []:
            if provider.get("type", "file") == "file":
                paths.add(str((provider.get("options") or {}).get("path", "")))
        files.append(ProvisioningFile(f"provisioning/dashboards/{path.name}", path.read_text()))
    if not provider_files:
        files.append(ProvisioningFile("provisioning/dashboards/loadbearing.yaml",
                                      json.dumps(default_dashboard_provider(), indent=2)))
        paths.add(DEFAULT_DASHBOARDS_PATH)
    if len(paths) != 1 or not next(iter(paths)).startswith("/"):
        raise ProvisioningError(f"{provisioning / 'dashboards'}: dashboard providers must read exactly one "
                                f"absolute directory, found {sorted(paths)}")

    if provisioning.is_dir():
        for path in sorted(provisioning.rglob("*")):
            rel = path.relative_to(provisioning)
            if path.is_file() and rel.parts[0] not in ("datasources", "dashboards"):
                files.append(ProvisioningFile(f"provisioning/{rel.as_posix()}", path.read_text()))

    dashboards = root / "json"
    if dashboards.is_dir():
        for path in sorted(dashboards.rglob("*.json")):
            text = path.read_text()
            try:
                json.loads(text)
            except ValueError as exc:
                raise ProvisioningError(f"{path}: not valid JSON ({exc})") from exc
            files.append(ProvisioningFile(f"dashboards/{path.relative_to(dashboards).as_posix()}", text))

    return Provisioning(files=tuple(files), dashboards_path=next(iter(paths)), datasource_uid=uid)
