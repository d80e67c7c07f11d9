"""Which metrics store a URL reaches: the stack's identity marker in its database.

On AWS the runners write to InfluxDB inside the VPC (`influxdb_url`) and the controller
reads through another door (the load balancer's `influxdb_controller_url`, a VPN, a
proxy). Two URLs cannot be compared as text, so the store says who it is: InfluxDB's
start script (infra/influxdb.py) writes one point, `MARKER_LINE`, into the stack's
database, holding the stack output `influxdb_store_id` (the EFS file system that holds
the data). `store_id(client)` reads it back through any URL; a URL that does not show
the stack's id is not the store the runners write to.
"""

from __future__ import annotations

from core import measurements
from core.influx import InfluxClient, line, quote_ident

MEASUREMENT = measurements.STORE_MARKER
FIELD = "id"
# A fixed timestamp: writing the marker again (every start) replaces the one point.
MARKER_TS_NS = 0


def marker_line(store_id: str) -> str:
    """The line-protocol point that marks a database as the store `store_id`."""
    return line(MEASUREMENT, {}, {FIELD: store_id}, MARKER_TS_NS)


def store_id(client: InfluxClient) -> str | None:
    """The store id in `client`'s database, or None when it has no marker."""
    rows = client.rows(f"SELECT last({quote_ident(FIELD)}) FROM {quote_ident(MEASUREMENT)}")
    if not rows:
        return None
    value = rows[0].get("last")
    return None if value is None else str(value)
