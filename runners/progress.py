"""Human progress on stderr: a live table while running, a final table at the end.

Live numbers come from each runner's k6 REST API (`/v1/metrics`); p95 while running
is the highest runner p95 (k6 cannot merge percentiles across processes). The final
table shows the numbers computed from the stored samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from core import measurements as names
from core.console import console
from runners.backends import Runner

LIVE_METRICS = (names.HTTP_REQS, names.VUS, names.HTTP_REQ_FAILED)  # read from each runner every second
TREND_EVERY = 5  # http_req_duration (k6 computes its percentiles on each read) every 5th read
# Without a terminal nothing is drawn until the end (a CI log gets the last snapshot), so the
# runners are read every 5 s there: each read costs k6 CPU (bench/overhead --components).
UNATTENDED_EVERY_S = 5.0


@dataclass
class ModuleProgress:
    state: str = "waiting"
    vus: int = 0
    requests: int = 0
    rps: float = 0.0
    p95_ms: float | None = None
    error_rate: float | None = None
    _last: tuple[float, int] = (0.0, 0)


@dataclass
class Progress:
    modules: list[str]
    title: str
    rows: dict[str, ModuleProgress] = field(default_factory=dict)
    live: Live | None = None
    _client: httpx.Client | None = None
    _calls: int = 0
    _next_read: float = 0.0
    _durations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = {m: ModuleProgress() for m in self.modules}

    def __enter__(self) -> Progress:
        self._client = httpx.Client(timeout=0.5)
        self.live = Live(self.render(), console=console, refresh_per_second=2, transient=False,
                         auto_refresh=console.is_terminal)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(None, None, None)
        if self._client is not None:
            self._client.close()

    def set_state(self, modules: tuple[str, ...] | list[str], state: str) -> None:
        for m in modules:
            self.rows[m].state = state
        self.refresh()

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def sample(self, runners: list[Runner[Any]]) -> None:
        """Read every running runner's live metrics (called about once a second).

        On a terminal: the cheap metrics every time, the duration trend (k6 computes its
        percentiles on each read) every 5th call. Unattended (no terminal, nothing drawn
        until the end): everything every UNATTENDED_EVERY_S seconds.
        """
        if self._client is None:
            return
        attended = console.is_terminal
        if not attended and time.monotonic() < self._next_read:
            return
        self._next_read = time.monotonic() + UNATTENDED_EVERY_S
        self._calls += 1
        wanted = list(LIVE_METRICS)
        if not attended or self._calls % TREND_EVERY == 1:
            wanted.append(names.HTTP_REQ_DURATION)
        per: dict[str, list[dict[str, Any]]] = {}
        for r in runners:
            if not r.api or r.exit_code is not None:
                continue
            sample: dict[str, Any] = {}
            for metric in wanted:
                try:
                    sample[metric] = self._client.get(f"{r.api}/v1/metrics/{metric}").json()[
                        "data"]["attributes"]["sample"]
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    continue
            if names.HTTP_REQ_DURATION not in sample and r.spec.name in self._durations:
                sample[names.HTTP_REQ_DURATION] = self._durations[r.spec.name]
            elif names.HTTP_REQ_DURATION in sample:
                self._durations[r.spec.name] = sample[names.HTTP_REQ_DURATION]
            per.setdefault(r.spec.module, []).append(sample)
        now = time.monotonic()
        for module, samples in per.items():
            row = self.rows[module]
            reqs = sum(int(s.get(names.HTTP_REQS, {}).get("count", 0)) for s in samples)
            t0, r0 = row._last
            if t0:
                row.rps = (reqs - r0) / max(1e-3, now - t0)
            row._last = (now, reqs)
            row.requests = reqs
            row.vus = sum(int(s.get(names.VUS, {}).get("value", 0)) for s in samples)
            p95s = [s[names.HTTP_REQ_DURATION].get("p(95)") for s in samples if names.HTTP_REQ_DURATION in s]
            row.p95_ms = max((p for p in p95s if p is not None), default=None)
            rates = [(s.get(names.HTTP_REQ_FAILED, {}).get("rate"), int(s.get(names.HTTP_REQS, {}).get("count", 0)))
                     for s in samples]
            total = sum(n for _, n in rates)
            if total:
                row.error_rate = sum((r or 0.0) * n for r, n in rates) / total
        self.refresh()

    def render(self) -> Table:
        table = Table(title=escape(self.title), title_justify="left")
        for col in ("module", "state", "VUs", "requests", "req/s", "p95 ms", "errors"):
            table.add_column(col, justify="left" if col in ("module", "state") else "right")
        for name, row in self.rows.items():
            table.add_row(escape(name), escape(row.state), str(row.vus), str(row.requests), f"{row.rps:.1f}",
                          "-" if row.p95_ms is None else f"{row.p95_ms:.0f}",
                          "-" if row.error_rate is None else f"{row.error_rate:.2%}")
        return table


def final_table(record: dict[str, Any]) -> Table:
    slo = record.get("slo", {})
    table = Table(title=f"{escape(record['run_id'])}: {record['status']} (from stored samples; SLO p95 <= "
                        f"{slo.get('p95_ms')} ms, errors <= {slo.get('max_error_rate', 0):.2%})",
                  title_justify="left")
    for col in ("module", "service", "runners", "requests", "p95 ms", "errors", "SLO"):
        table.add_column(col, justify="left" if col in ("module", "service", "SLO") else "right")
    for m in record.get("modules", []):
        ok = m.get("thresholds_ok")
        table.add_row(escape(m["name"]), escape(m["service"]), str(m["runners"]), str(m.get("requests")),
                      "-" if m.get("p95_ms") is None else f"{m['p95_ms']:.0f}",
                      "-" if m.get("error_rate") is None else f"{m['error_rate']:.2%}",
                      "[green]met[/]" if ok else ("[red]missed[/]" if ok is False else "-"))
    return table
