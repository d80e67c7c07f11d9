"""What Grafana is provisioned with, from a grafana_dashboards/ tree (present, partial, broken)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.grafana_provisioning import (
    DATASOURCE_UID,
    DEFAULT_DASHBOARDS_PATH,
    ProvisioningError,
    collect,
)

DATASOURCE = """apiVersion: 1
datasources:
  - name: runs
    uid: my-influx
    type: influxdb
    url: ${LOADBEARING_INFLUX_URL}
    jsonData:
      dbName: loadbearing
"""
PROVIDER = """apiVersion: 1
providers:
  - name: lb
    type: file
    options:
      path: /dashboards/here
"""


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_repository_files_ship_unchanged(tmp_path: Path) -> None:
    root = tree(tmp_path, {"provisioning/datasources/ds.yaml": DATASOURCE,
                           "provisioning/dashboards/p.yaml": PROVIDER,
                           "provisioning/alerting/rules.yaml": "apiVersion: 1\n",
                           "json/a.json": '{"title": "A"}', "json/sub/b.json": '{"title": "B"}'})
    result = collect(root, "loadbearing")
    files = {f.key: f.content for f in result.files}
    assert files == {
        "provisioning/datasources/ds.yaml": DATASOURCE,
        "provisioning/dashboards/p.yaml": PROVIDER,
        "provisioning/alerting/rules.yaml": "apiVersion: 1\n",
        "dashboards/a.json": '{"title": "A"}',
        "dashboards/sub/b.json": '{"title": "B"}',
    }
    assert result.dashboards_path == "/dashboards/here"
    assert result.datasource_uid == "my-influx"


def test_database_name_is_rewritten_when_it_differs(tmp_path: Path) -> None:
    root = tree(tmp_path, {"provisioning/datasources/ds.yaml": DATASOURCE})
    files = {f.key: f.content for f in collect(root, "perf").files}
    doc = json.loads(files["provisioning/datasources/ds.yaml"])
    assert doc["datasources"][0]["jsonData"]["dbName"] == "perf"
    assert doc["datasources"][0]["url"] == "${LOADBEARING_INFLUX_URL}"


def test_absent_tree_gets_defaults(tmp_path: Path) -> None:
    result = collect(tmp_path / "missing", "loadbearing")
    assert {f.key for f in result.files} == {"provisioning/datasources/loadbearing.yaml",
                                             "provisioning/dashboards/loadbearing.yaml"}
    assert result.dashboards_path == DEFAULT_DASHBOARDS_PATH
    assert result.datasource_uid == DATASOURCE_UID


def test_digest_changes_with_any_file(tmp_path: Path) -> None:
    root = tree(tmp_path, {"json/a.json": '{"title": "A"}'})
    before = collect(root).digest()
    assert collect(root).digest() == before
    (root / "json/a.json").write_text('{"title": "A2"}')
    assert collect(root).digest() != before


def test_broken_files_are_named(tmp_path: Path) -> None:
    root = tree(tmp_path, {"json/broken.json": "{not json"})
    with pytest.raises(ProvisioningError, match=r"broken\.json: not valid JSON"):
        collect(root)
    root = tree(tmp_path / "two", {
        "provisioning/dashboards/p.yaml": PROVIDER,
        "provisioning/dashboards/q.yaml": PROVIDER.replace("/dashboards/here", "/elsewhere")})
    with pytest.raises(ProvisioningError, match="exactly one absolute directory"):
        collect(root)
