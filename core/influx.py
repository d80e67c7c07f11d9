"""The metrics store client: InfluxDB 1.x HTTP API (`/ping`, `/query`, `/write`).

Works against InfluxDB 1.x (basic auth or u/p params) and InfluxDB 2.x/3.x v1
compatibility endpoints (`Authorization: Token ...`). Credentials come from the URL's
userinfo, `LOADBEARING_INFLUX_USERNAME`/`_PASSWORD`, or `LOADBEARING_INFLUX_TOKEN`,
and are never part of `public_url` (what run records and messages show).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import tenacity

from core.errors import BadInput, RunError

DEFAULT_DB = "loadbearing"


# Line protocol escapes, as InfluxDB 1.x's own client (and so k6) writes them: measurement:
# comma, space; tag keys and values, field keys: comma, equals, space. A backslash is kept
# as it is (1.x stores an escaped backslash in a tag as two, which would not match what k6
# writes). Newline, carriage return and tab would end the line or the element: written as
# backslash-n, -r, -t (what InfluxData's Python client does).
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", **_CONTROL})
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", **_CONTROL})
_ESCAPE_STRING = str.maketrans({"\\": "\\\\", '"': '\\"'})

log = logging.getLogger(__name__)


def _escape_tag(value: str) -> str:
    return value.translate(_ESCAPE_KEY)


def _field(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + str(value).translate(_ESCAPE_STRING) + '"'


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def line(measurement: str, tags: dict[str, str], fields: dict[str, Any], ts_ns: int) -> str:
    """One point in InfluxDB line protocol; "" when no field is left to write.

    NaN and infinite floats have no line-protocol form (influxd refuses the whole batch):
    such fields are left out and named in a debug log."""
    skipped = [k for k, v in fields.items() if not _finite(v)]
    if skipped:
        log.debug("%s: non-finite fields left out: %s", measurement,
                  ", ".join(f"{k!r}={fields[k]!r}" for k in skipped))
    field_part = ",".join(f"{_escape_tag(k)}={_field(v)}" for k, v in fields.items() if _finite(v))
    if not field_part:
        return ""
    tag_part = "".join(f",{_escape_tag(k)}={_escape_tag(v)}" for k, v in sorted(tags.items()) if v != "")
    return f"{measurement.translate(_ESCAPE_MEASUREMENT)}{tag_part} {field_part} {ts_ns}"


def quote_literal(value: str) -> str:
    """An InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


RETRY_S = 10.0  # how long one query or write keeps retrying a store that dropped or refused it
TRANSPORT_RETRIES = 1  # httpx: one immediate reconnect when a connection cannot be made
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})  # answers that may differ a moment later


class _Transient(Exception):
    """An answer worth retrying (HTTP 5xx/429)."""


@dataclass
class StoreRetry:
    """A query or write that needed more than one attempt: what run records report."""

    op: str
    attempts: int
    waited_s: float
    error: str
    ok: bool
    at: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class InfluxClient:
    """A small InfluxDB v1 API client. `url` is the base URL, 'http(s)://host:port[/base/path]'
    (the API's `/ping`, `/query` and `/write` are under it: an InfluxDB behind a reverse-proxy
    path keeps that path).

    One long-lived httpx.Client per InfluxClient (thread-safe; building one per request
    cost the controller more than half its CPU: a TLS context each time). `close()`, or
    the end of a `with` block, releases its connections; a later request opens new ones.

    Queries and writes are idempotent (a rewritten point with the same series and timestamp
    overwrites itself), so a dropped connection, a refused one or a 5xx/429 answer is retried
    with exponential backoff for up to `retry_s` seconds (per call: `retry_s=`); each call
    that needed retries is kept in `retries` for the run record. Other answers (a bad query,
    bad auth) are not retried. `ping` does not retry: it answers "is it up now?".
    """

    url: str
    db: str = DEFAULT_DB
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    # Where k6 runners write, when it is not `url`: the same store reached another way (on AWS
    # the runners write inside the VPC while the controller reads through the load balancer).
    runner_url: str | None = None
    # The AWS Secrets Manager secret (its ARN) the username and password were read from, when they
    # were: a run records it (never the credential) so that whoever reads the run gets them again.
    credential_secret: str | None = None
    retry_s: float = RETRY_S
    retries: list[StoreRetry] = field(default_factory=list, repr=False, compare=False)
    _http: httpx.Client | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def from_url(cls, url: str, db: str | None = None) -> InfluxClient:
        """A client for 'http(s)://[user:pass@]host:port[/base/path][/db]'.

        With `db` given, the whole path is the base path. Without it, the last path segment
        names the database and what comes before it is the base path
        (`https://proxy.example.com/influx/loadbearing`: base `/influx`, database `loadbearing`).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(f"--influx-url {redact(url)!r} is not an http(s) URL; e.g. http://127.0.0.1:8086")
        segments = [s for s in parts.path.split("/") if s]
        if db is None and segments:
            db = segments.pop()
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        if ":" in parts.hostname:
            netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        base_path = "".join(f"/{s}" for s in segments)
        return cls(
            url=urlunsplit((parts.scheme, netloc, base_path, "", "")),
            db=db or DEFAULT_DB,
            username=parts.username or os.environ.get("LOADBEARING_INFLUX_USERNAME"),
            password=parts.password or os.environ.get("LOADBEARING_INFLUX_PASSWORD"),
            token=os.environ.get("LOADBEARING_INFLUX_TOKEN"),
        )

    @property
    def public_url(self) -> str:
        """The base URL without credentials, safe for records and messages."""
        return self.url

    def k6_output_url(self) -> str:
        """The `--out influxdb=` argument (credentials travel in env, see `k6_env`): `runner_url`
        or `url`, and the database.

        k6 reads the URL's path as the database name, so it cannot write through a base path.
        """
        base = self.runner_url or self.url
        if urlsplit(base).path not in ("", "/"):
            raise BadInput(f"InfluxDB at {base}: k6's InfluxDB output cannot write through a URL path "
                           "(it reads the path as the database name); give the runners a URL without one")
        return f"{base.rstrip('/')}/{self.db}"

    def k6_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.username:
            env["K6_INFLUXDB_USERNAME"] = self.username
        if self.password:
            env["K6_INFLUXDB_PASSWORD"] = self.password
        if self.token and not self.username:
            # InfluxDB 2.x v1-compat accepts the token as the password of any user.
            env["K6_INFLUXDB_USERNAME"] = "loadbearing"
            env["K6_INFLUXDB_PASSWORD"] = self.token
        return env

    def copy(self, **changes: Any) -> InfluxClient:
        """The same store and credentials with its own connections (and `changes`, e.g. timeout)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init and f.name != "retries"}
        return InfluxClient(**{**fields, **changes})

    def http_options(self) -> dict[str, Any]:
        """`base_url`, `headers` and `auth` for an httpx client (sync or async) of this store:
        the one place credentials become HTTP auth. A token (InfluxDB 2.x/3.x v1 API) goes in
        `Authorization: Token`; a user name and password are basic auth (1.x)."""
        headers: dict[str, str] = {}
        auth: httpx.Auth | None = None
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        elif self.username:
            auth = httpx.BasicAuth(self.username, self.password or "")
        return {"base_url": self.url, "headers": headers, "auth": auth}

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None or self._http.is_closed:
                transport = httpx.HTTPTransport(retries=TRANSPORT_RETRIES)
                self._http = httpx.Client(**self.http_options(), timeout=self.timeout, transport=transport)
            return self._http

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def __enter__(self) -> InfluxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, op: str, request: Callable[[httpx.Client], httpx.Response],
              retry_s: float | None) -> httpx.Response:
        """One request, retried while transient for up to `retry_s` (default: self.retry_s)."""
        budget = self.retry_s if retry_s is None else retry_s
        started = time.monotonic()
        errors: list[str] = []

        def attempt() -> httpx.Response:
            try:
                r = request(self._client())
            except httpx.TransportError as exc:
                errors.append(type(exc).__name__)
                raise
            if r.status_code in RETRY_STATUS:
                errors.append(f"HTTP {r.status_code}")
                raise _Transient(r.text[:300])
            return r

        retrying = tenacity.Retrying(
            stop=tenacity.stop_before_delay(budget), reraise=True,
            wait=tenacity.wait_exponential(multiplier=0.2, max=3.0) + tenacity.wait_random(0, 0.2),
            retry=tenacity.retry_if_exception_type((httpx.TransportError, _Transient)))
        ok = False
        try:
            response = retrying(attempt)
            ok = True
            return response
        except httpx.TransportError as exc:
            raise RunError(f"InfluxDB at {self.public_url} is unreachable ({type(exc).__name__}"
                           + self._retried(errors, started) + ")") from None
        except _Transient as exc:
            raise RunError(f"InfluxDB at {self.public_url} failed the {op} ({errors[-1]}"
                           + self._retried(errors, started) + f"): {exc}") from None
        finally:
            attempts = len(errors) + ok
            if attempts > 1:
                self.retries.append(StoreRetry(
                    op=op, attempts=attempts, waited_s=round(time.monotonic() - started, 3),
                    error=", ".join(dict.fromkeys(errors)), ok=ok,
                    at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")))

    @staticmethod
    def _retried(errors: list[str], started: float) -> str:
        if len(errors) < 2:
            return ""
        return f"; retried for {time.monotonic() - started:.1f} s, {len(errors)} attempts"

    def ping(self) -> None:
        """Raise RunError (exit 4) naming the URL when the store does not answer."""
        try:
            r = self._client().get("/ping")
        except httpx.HTTPError as exc:
            raise RunError(
                f"InfluxDB at {self.public_url} is unreachable ({type(exc).__name__}); start it with "
                "'loadbearing stack up' or pass a reachable --influx-url"
            ) from None
        if r.status_code not in (200, 204):
            raise RunError(f"InfluxDB at {self.public_url} answered /ping with HTTP {r.status_code}")

    def ensure_db(self) -> None:
        """Create the database. A user that is not an admin may not (InfluxDB: "requires admin
        privilege"); for it the database must exist already and be readable."""
        try:
            self.query(f"CREATE DATABASE {quote_ident(self.db)}", method="POST", db=None)
        except RunError as exc:
            if "requires admin privilege" not in exc.message:
                raise
            self.query("SHOW MEASUREMENTS LIMIT 1")

    def query(self, q: str, *, method: str = "GET", db: str | bool | None = True,
              epoch: str | None = "ms", retry_s: float | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the `results` list. Raises RunError on HTTP or query errors."""
        params: dict[str, str] = {"q": q}
        if db is True:
            params["db"] = self.db
        elif isinstance(db, str):
            params["db"] = db
        if epoch:
            params["epoch"] = epoch
        r = self._send("query", lambda c: c.post("/query", data=params) if method == "POST"
                       else c.get("/query", params=params), retry_s)
        if r.status_code >= 400:
            raise RunError(f"InfluxDB query failed (HTTP {r.status_code}): {r.text[:300]}")
        body = r.json()
        results: list[dict[str, Any]] = body.get("results", [])
        for res in results:
            if "error" in res:
                raise RunError(f"InfluxQL error: {res['error']} in query: {q}")
        return results

    def series(self, q: str) -> list[dict[str, Any]]:
        """Flattened series of the first statement: [{'name', 'tags', 'columns', 'values'}]."""
        results = self.query(q)
        if not results:
            return []
        return list(results[0].get("series", []))

    def rows(self, q: str) -> list[dict[str, Any]]:
        """Rows of the first statement as dicts, with the series tags merged into each row."""
        out: list[dict[str, Any]] = []
        for s in self.series(q):
            tags = s.get("tags", {}) or {}
            for values in s.get("values", []):
                row = dict(zip(s["columns"], values, strict=False))
                row.update(tags)
                out.append(row)
        return out

    def write(self, lines: Iterable[str], precision: str = "n", retry_s: float | None = None) -> None:
        body = "\n".join(p for p in lines if p).encode()
        if not body:
            return
        r = self._send("write", lambda c: c.post("/write", params={"db": self.db, "precision": precision},
                                                 content=body), retry_s)
        if r.status_code >= 400:
            raise RunError(f"InfluxDB write failed (HTTP {r.status_code}): {r.text[:300]}")


def redact(url: str) -> str:
    """A URL with any userinfo removed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
