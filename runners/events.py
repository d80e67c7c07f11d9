"""Phase and module events: into run.json's timeline and InfluxDB (`loadbearing_events`).

Grafana shows them as annotations. A failed event write never fails the run; it
is retried for EVENT_RETRY_S (not at all once one has failed), reported once on stderr,
and the event stays in run.json.
"""

from __future__ import annotations

import sys
import time

from core import measurements as names
from core.errors import RunError
from core.influx import InfluxClient, line

EVENT_RETRY_S = 2.0  # the controller waits this long at most for one event write


class EventLog:
    def __init__(self, influx: InfluxClient, testid: str, strategy: str) -> None:
        self.influx = influx
        self.testid = testid
        self.strategy = strategy
        self.failed = False

    def emit(self, kind: str, event: str, name: str, text: str = "", ts: float | None = None) -> None:
        at = time.time() if ts is None else ts
        point = line(
            names.EVENTS,
            {names.TESTID: self.testid, names.STRATEGY: self.strategy, names.KIND: kind, names.EVENT: event, names.NAME: name},
            {"title": f"{kind} {name} {event}", "text": text or f"{kind} {name} {event}"},
            int(at * 1e9),
        )
        try:
            self.influx.write([point], retry_s=0.0 if self.failed else EVENT_RETRY_S)
        except RunError as exc:
            if not self.failed:
                print(f"warning: could not write events to InfluxDB: {exc}", file=sys.stderr)
            self.failed = True
