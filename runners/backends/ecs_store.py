"""The controller's way to the stack's InfluxDB on AWS, and the check that it is the runners' store.

The runners write to the stack output `influxdb_url`, which resolves only inside the VPC.
The controller (a laptop, CI) reads and writes through `influxdb_controller_url` (port
8086 of the stack's load balancer, open to `operatorCidrs` only) unless `--influx-url`
names another way in (a VPN, a proxy). Its credentials come from the URL or
`LOADBEARING_INFLUX_USERNAME`/`_PASSWORD`, else from the Secrets Manager secret
`influxdb_controller_secret_arn` (the stack's controller user: read and write on the
stack's database, not admin).

`controller_store` refuses (BadInput, exit 2, naming both URLs) a URL whose database is
not the stack's or whose store marker (core.store_identity) is not `influxdb_store_id`:
the controller would read an empty store and end the run with metrics_incomplete.

The client remembers the secret its user came from (`credential_secret`), the run records
it, and `login_from_secret` reads it again for whoever reads the run later (`recommend`,
`report`, `verify`, `compare` through `runners.stack.recorded_store`).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from core.console import console
from core.errors import BadInput, RunError
from core.influx import InfluxClient, redact
from core.stack_outputs import StackOutputs
from core.store_identity import MEASUREMENT, store_id
from runners.backends.ecs_errors import aws_error

NO_DOOR_FIX = ("add the network you run loadbearing from to loadbearing:operatorCidrs and `pulumi up` (the "
               "stack then exports influxdb_controller_url), or pass --influx-url with a URL that reaches the "
               "stack's InfluxDB (a VPN into the VPC)")


def controller_store(outputs: StackOutputs, influx_url: str | None, session: Any) -> InfluxClient:
    """The controller's client for the stack's store; the runners write to `influxdb_url`.

    Raises BadInput (exit 2) for a URL that is not the runners' store, RunError (exit 4)
    when the store does not answer."""
    database = outputs.influxdb_database
    if influx_url:
        client = InfluxClient.from_url(influx_url)
        source = "--influx-url"
    elif outputs.influxdb_controller_url:
        client = InfluxClient.from_url(outputs.influxdb_controller_url, db=database)
        source = "stack output influxdb_controller_url"
    else:
        raise BadInput("--backend ecs: the stack exports no influxdb_controller_url, and the runners' "
                       f"influxdb_url ({outputs.influxdb_url}) resolves only inside the VPC; {NO_DOOR_FIX}")
    runner_url = redact(outputs.influxdb_url).rstrip("/")
    runners = f"{runner_url}/{database or client.db}"
    if database and client.db != database:
        raise BadInput(f"{source} {client.public_url} (database {client.db!r}) is not the store the runners "
                       f"write to ({runners}): the stack's database is {database!r}")
    if outputs.influxdb_controller_secret_arn:
        login_from_secret(client, outputs.influxdb_controller_secret_arn, session)
    client.ping()
    found = _marker(client, source)
    expected = outputs.influxdb_store_id
    if expected is None:
        console.print(f"[yellow]ecs: the stack exports no influxdb_store_id: cannot check that {client.public_url} "
                      f"is the store the runners write to ({runners})[/]")
    elif found != expected:
        what = f"its store marker is {found!r}" if found else f"it has no store marker ({MEASUREMENT})"
        raise BadInput(f"{source} {client.public_url} (database {client.db!r}) is not the store the runners write "
                       f"to ({runners}): {what}, the stack's store is {expected!r}. Leave --influx-url out to use "
                       "the stack's influxdb_controller_url, or give a URL that reaches the stack's InfluxDB")
    client.runner_url = runner_url
    return client


def _marker(client: InfluxClient, source: str) -> str | None:
    try:
        return store_id(client)
    except RunError as exc:
        if "not authorized" in exc.message or "HTTP 401" in exc.message or "HTTP 403" in exc.message:
            raise BadInput(f"{source} {client.public_url}: InfluxDB refused the controller's credentials "
                           f"({exc.message[:200]}); use the stack's controller user (leave "
                           "LOADBEARING_INFLUX_USERNAME/_PASSWORD unset to read it from Secrets Manager)") from None
        raise


def login_from_secret(client: InfluxClient, arn: str, session: Any | None = None) -> None:
    """Give `client` the InfluxDB user in the secret `arn` unless it has credentials already (from
    the URL or the environment), and remember the secret (`credential_secret`) for the run record."""
    if client.username or client.token:
        return
    client.username, client.password = secret_credential(arn, session)
    client.credential_secret = arn


def secret_credential(arn: str, session: Any | None = None) -> tuple[str, str]:
    """(username, password) from the Secrets Manager secret `arn` (JSON with both), read in the
    ARN's region (with `session`, or a new boto3 session)."""
    parts = arn.split(":")
    region = parts[3] if len(parts) > 3 and parts[3] else None
    if session is None:
        session = boto3.session.Session(region_name=region)
    try:
        value = session.client("secretsmanager", region_name=region).get_secret_value(SecretId=arn)
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, "secretsmanager:GetSecretValue", region=region or "?",
                        what="the controller's InfluxDB credential") from None
    try:
        doc = json.loads(value.get("SecretString") or "")
        return str(doc["username"]), str(doc["password"])
    except (ValueError, KeyError, TypeError):
        raise RunError(f"the secret {arn} does not hold {{\"username\": ..., \"password\": ...}}; run "
                       "`pulumi up` for the stack again") from None
