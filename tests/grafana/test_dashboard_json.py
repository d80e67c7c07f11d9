"""The committed dashboard JSON and provisioning files: fresh, consistent, resolvable."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from ruamel.yaml import YAML

from core.influx import DEFAULT_DB
from grafana_dashboards import DATASOURCE_UID, JSON_DIR, PROVISIONING_DIR, build, compare
from grafana_dashboards.influxql import InfluxAnnotationQuery, InfluxQLQuery
from grafana_dashboards.queries import extract
from grafana_dashboards.skeleton import COMPARE_UID
from grafana_dashboards.variables import RUN_FILTER

DASHBOARDS = sorted(JSON_DIR.glob("loadbearing-*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def yaml_file(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def datasource_refs(node: Any, where: str = "") -> list[tuple[str, Any]]:
    """Every value under a `datasource` key, anywhere in the JSON."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append((f"{where}/{key}", value))
            found += datasource_refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += datasource_refs(value, f"{where}[{i}]")
    return found


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out += all_panels(p.get("panels") or [])
    return out


def test_the_four_dashboards_are_committed() -> None:
    names = [p.name for p in DASHBOARDS]
    assert names == ["loadbearing-capacity.json", "loadbearing-compare.json", "loadbearing-endpoint.json",
                     "loadbearing-overview.json"]
    assert any("overview" in n for n in names)


def test_committed_json_is_what_the_code_generates() -> None:
    assert build.stale() == [], "run `make dashboards` (python -m grafana_dashboards.build) and commit"
    assert build.main(["--check"]) == 0


def test_check_names_a_stale_or_orphaned_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build.write(tmp_path)
    assert build.stale(tmp_path) == []
    edited = tmp_path / "loadbearing-endpoint.json"
    edited.write_text(edited.read_text().replace("Latency heatmap", "Latency map"))
    (tmp_path / "loadbearing-old.json").write_text("{}")
    assert build.stale(tmp_path) == ["loadbearing-endpoint.json", "loadbearing-old.json"]
    assert build.main(["--check", "--out", str(tmp_path)]) == 1
    assert "loadbearing-endpoint.json" in capsys.readouterr().err
    build.write(tmp_path)
    assert build.stale(tmp_path) == [] and not (tmp_path / "loadbearing-old.json").exists()


def test_generation_is_deterministic() -> None:
    assert build.render_all() == build.render_all()


def test_uids_and_panel_ids_are_unique() -> None:
    boards = [load(p) for p in DASHBOARDS]
    uids = [b["uid"] for b in boards]
    assert len(set(uids)) == len(uids) and all(uids)
    assert [f"{u}.json" for u in sorted(uids)] == [p.name for p in DASHBOARDS]
    for board in boards:
        ids = [p["id"] for p in all_panels(board["panels"])]
        assert len(set(ids)) == len(ids), f"{board['uid']}: duplicate panel ids {ids}"
        assert all(isinstance(i, int) and i > 0 for i in ids)
        names = [v["name"] for v in board["templating"]["list"]]
        assert len(set(names)) == len(names)
        for panel in all_panels(board["panels"]):
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, (panel["title"], pos)
            refs = [t["refId"] for t in panel.get("targets") or []]
            assert len(set(refs)) == len(refs), (panel["title"], refs)


def test_every_datasource_reference_is_the_provisioned_datasource() -> None:
    (provisioned,) = yaml_file(PROVISIONING_DIR / "datasources" / "influxdb.yaml")["datasources"]
    assert provisioned["uid"] == DATASOURCE_UID
    for path in DASHBOARDS:
        refs = datasource_refs(load(path))
        assert len(refs) > 10
        for where, ref in refs:
            assert ref == {"type": provisioned["type"], "uid": provisioned["uid"]}, f"{path.name}{where}: {ref}"


def test_every_query_filters_on_the_run() -> None:
    for path in DASHBOARDS:
        board = load(path)
        # The compare dashboard has two runs, each query reads one of them (or, for the endpoint list, both).
        filters = ([compare.run_filter(compare.BASELINE), compare.run_filter(compare.RUN)]
                   if board["uid"] == COMPARE_UID else [RUN_FILTER])
        for q in extract(board):
            if q.kind == "variable" and q.title in ("testid", compare.BASELINE, compare.RUN):
                continue
            assert any(f in q.text for f in filters), f"{q.label} does not filter on the run: {q.text}"
            if q.kind != "variable":
                assert "$timeFilter" in q.text, q.label
            used = set(re.findall(r"\$(\w+)", q.text)) - {"timeFilter", "__interval", "__interval_ms"}
            declared = {v["name"] for v in board["templating"]["list"]}
            assert used <= declared, f"{q.label} uses undeclared variables {used - declared}"


def test_datasource_provisioning() -> None:
    doc = yaml_file(PROVISIONING_DIR / "datasources" / "influxdb.yaml")
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["type"] == "influxdb" and ds["access"] == "proxy"
    assert ds["jsonData"]["version"] == "InfluxQL"
    assert ds["jsonData"]["dbName"] == DEFAULT_DB
    assert ds["jsonData"]["timeInterval"] == "1s"  # the low limit queries.DEFAULT_MIN_INTERVAL assumes
    # Grafana expands ${VAR} with Go's os.ExpandEnv; os.path.expandvars does the same for these forms.
    env = {**os.environ, "LOADBEARING_INFLUX_URL": "http://127.0.0.1:18086"}
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        assert os.path.expandvars(ds["url"]) == "http://127.0.0.1:18086"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert "LOADBEARING_INFLUX_PASSWORD" in ds["secureJsonData"]["password"]


def test_dashboard_provider_provisioning() -> None:
    doc = yaml_file(PROVISIONING_DIR / "dashboards" / "loadbearing.yaml")
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/loadbearing"


def test_influxql_targets_decode_through_the_sdk_runtime() -> None:
    board = load(JSON_DIR / "loadbearing-overview.json")
    target = board["panels"][0]["targets"][0]
    decoded = cogruntime.dataquery_from_json(target, "")
    assert isinstance(decoded, InfluxQLQuery)
    assert decoded.query == target["query"] and decoded.ref_id == "A"
    assert decoded.to_json() == target


def test_influx_annotations_round_trip() -> None:
    for path in DASHBOARDS:
        for ann in (load(path).get("annotations") or {}).get("list") or []:
            decoded = InfluxAnnotationQuery.from_json(ann)
            assert json.loads(json.dumps(decoded, cls=JSONEncoder)) == ann
            assert ann["target"]["query"] == ann["query"] and ann["target"]["rawQuery"] is True
