"""The ground floor of loadbearing: errors and exit codes, the console, durations, the
plan model, the InfluxDB client and the local state directory. Nothing here imports
from `runners`, `policies`, `demo`, `infra` or `grafana_dashboards`; everything above
imports from here. See docs/architecture.md.
"""
