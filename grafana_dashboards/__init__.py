"""Grafana dashboards as code for loadbearing runs.

Dashboards are built with grafana-foundation-sdk (`overview`, `endpoint`, `capacity`, `compare`);
`python -m grafana_dashboards.build` writes them to `grafana_dashboards/json/` (committed,
so users import them without Python). `provisioning/` holds the Grafana provisioning
files: the InfluxDB (InfluxQL) datasource with the fixed uid `DATASOURCE_UID` and a
file dashboard provider. `queries` extracts every query from the JSON and substitutes
Grafana's macros the way Grafana does, to run them against InfluxDB directly.
"""

from __future__ import annotations

from pathlib import Path

from grafana_dashboards.influxql import DATASOURCE_UID, PLUGIN_ID

PACKAGE_DIR = Path(__file__).resolve().parent
JSON_DIR = PACKAGE_DIR / "json"
PROVISIONING_DIR = PACKAGE_DIR / "provisioning"

__all__ = ["DATASOURCE_UID", "JSON_DIR", "PACKAGE_DIR", "PLUGIN_ID", "PROVISIONING_DIR"]
