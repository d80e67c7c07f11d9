"""accuracy: the share of gallery cases whose recommendation falls in the ground-truth range.

Runs every case of `tests/gallery/cases.py` (small real servers, one per pathology,
driven by plain k6 scripts that tag only `name`, through the real controller into a
private InfluxDB) and checks each recommendations document against its row. Goal 1.0.
Prints one JSON line: `accuracy`, the cases, and for each what it missed.
`--quick` runs only the two pool-bound cases.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import base_parser, emit, exit_on_term, log, workdir
from bench.machine import load_now, machine
from bench.servers import start_influx
from core.influx import InfluxClient
from tests.gallery.cases import CASES
from tests.gallery.harness import run_case

QUICK = ("pool_queue", "pool_timeouts")


def main() -> int:
    parser = base_parser(__doc__ or "accuracy")
    args = parser.parse_args()
    exit_on_term()
    names = list(QUICK) if args.quick else sorted(CASES)
    result: dict[str, Any] = {"bench": "accuracy", "goal": "accuracy 1.0", "quick": bool(args.quick),
                              "load_before": load_now()}
    rows: dict[str, Any] = {}
    with workdir("accuracy", keep=args.keep) as root:
        influxd = start_influx(root / "influxd")
        try:
            for name in names:
                case = CASES[name]
                influx = InfluxClient.from_url(influxd.url, db=f"accuracy_{name}")
                influx.ensure_db()
                started = time.monotonic()
                try:
                    doc, _ = run_case(case, influx, root / "cases")
                    missed = case.check(doc)
                except Exception as exc:  # a case that cannot run is a miss, named
                    missed = [f"{type(exc).__name__}: {exc}"]
                rows[name] = {"pathology": case.pathology, "expected": case.expect, "truth": case.truth,
                              "passed": not missed, "missed": missed,
                              "seconds": round(time.monotonic() - started, 1)}
                log(f"{name}: {'pass' if not missed else 'MISS ' + '; '.join(missed)}")
        finally:
            influxd.stop()
    passed = sum(1 for r in rows.values() if r["passed"])
    result.update({"accuracy": round(passed / len(rows), 3) if rows else 0.0, "cases": len(rows),
                   "passed_cases": passed, "rows": rows, "passed": passed == len(rows), "machine": machine()})
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
