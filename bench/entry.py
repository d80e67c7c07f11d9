"""The entry script's cost: the same k6 load through the user's script and through its generated entry.

A run starts each module through `RUN_DIR/k6/<module>.entry.js` (`runners.k6_entry`), which
imports the user's script unchanged and wraps `k6/http` so that every GET/HEAD carries a
`key` tag (stored as a field). This measures what that costs k6, as the overhead benchmark
measures the controller: one module, one runner, constant-vus at full rate (50 VUs, no think
time) against a private nginx, bare `k6 run` with the config, tags, env and `--out influxdb`
loadbearing gives its runner. Three variants per round, in an order that rotates every round:

- `plain`        the user's script (the fast script: one named GET);
- `plain_again`  the same again: the A/A control, whose ratio to `plain` is this machine's
                 round-to-round noise, measured in the same run;
- `entry`        the generated entry script around the same user's script (each request
                 tagged `key`, one more field stored per sample).

Prints one JSON line: `{"bench": "entry", "ratio": <median over rounds of entry / plain
req/s>, "noise": <largest |1 - plain_again / plain| of a round>, "cpu_ratio": <entry / plain
CPU-seconds per request>, ...}`. Goal: the entry costs no more than the noise
(`1 - ratio <= noise`), i.e. within the overhead benchmark's noise. `keyed_share` checks
that the wrapper was at work: the share of the variant's stored requests that carry `key`
(1.0 for `entry`, 0.0 for `plain`).
"""

from __future__ import annotations

from typing import Any

from bench.harness import base_parser, emit, exit_on_term, log, median, rnd, workdir
from bench.machine import load_now
from bench.plans import write_plan
from bench.runs import run_bare_k6
from bench.servers import new_db, services, stored_count
from core import measurements as names
from core.influx import InfluxClient, quote_literal
from core.plan import load_plan
from runners.k6_entry import KEY_TAG, entry_script

VARIANTS = ("plain", "plain_again", "entry")


def keyed_count(client: InfluxClient, testid: str) -> int:
    """Stored requests of a run that carry the `key` field."""
    rows = client.rows(f'SELECT count("{KEY_TAG}") AS "n" FROM "{names.HTTP_REQS}" '
                       f'WHERE "{names.TESTID}" = {quote_literal(testid)}')
    return int(rows[0]["n"]) if rows else 0


def measure(rounds: int, seconds: int, vus: int, keep: bool = False) -> dict[str, Any]:
    requests = dict.fromkeys(VARIANTS, 0)
    cpu = dict.fromkeys(VARIANTS, 0.0)
    stored = dict.fromkeys(VARIANTS, 0)
    keyed = dict.fromkeys(VARIANTS, 0)
    per_round: list[dict[str, Any]] = []
    load_before = load_now()
    with workdir("entry", keep) as root, services(root) as (nginx, influxd):
        assert nginx is not None and influxd is not None
        plan_path = write_plan(root / "plan", nginx.url, [{"name": "fast", "vus": vus, "duration": f"{seconds}s"}])
        plan = load_plan(plan_path)
        entry = root / "k6" / "fast.entry.js"
        entry.parent.mkdir(parents=True)
        entry.write_text(entry_script(plan.script_path(plan.module("fast")), "fast"))
        client = new_db(influxd, "entry")
        for i in range(rounds):
            k = i % len(VARIANTS)
            order = VARIANTS[k:] + VARIANTS[:k]
            row: dict[str, Any] = {"order": list(order)}
            for variant in order:
                run = run_bare_k6(plan_path, "fast", root / "bare", influx=client,
                                  script=entry if variant == "entry" else None)
                if run.code != 0:
                    raise RuntimeError(f"k6 ({variant}) exited {run.code}")
                requests[variant] += run.requests
                cpu[variant] += run.cpu_s
                stored[variant] += stored_count(client, run.testid)
                keyed[variant] += keyed_count(client, run.testid)
                row[variant] = round(run.requests / seconds, 1)
                log(f"round {i + 1}/{rounds} {variant}: {run.requests / seconds:,.0f} req/s")
            per_round.append(row)
    total_s = rounds * seconds
    entry_ratios = [row["entry"] / row["plain"] for row in per_round if row["plain"]]
    aa_ratios = [row["plain_again"] / row["plain"] for row in per_round if row["plain"]]
    ratio = median(entry_ratios)
    noise = max((abs(1 - x) for x in aa_ratios), default=float("nan"))
    per_1k = {v: rnd(1000 * cpu[v] / requests[v], 4) if requests[v] else None for v in VARIANTS}
    cpu_ratio = per_1k["entry"] / per_1k["plain"] if per_1k["entry"] and per_1k["plain"] else None
    cpu_aa = per_1k["plain_again"] / per_1k["plain"] if per_1k["plain_again"] and per_1k["plain"] else None
    return {
        "bench": "entry",
        "ratio": rnd(ratio),
        "noise": rnd(noise),
        "goal": "1 - ratio <= noise (within the round-to-round noise of the same load without the entry)",
        "passed": bool(1 - ratio <= noise),
        "round_ratios": [rnd(x) for x in entry_ratios],
        "aa_round_ratios": [rnd(x) for x in aa_ratios],
        "aa_ratio": rnd(median(aa_ratios)),
        "rps": {v: round(requests[v] / total_s, 1) for v in VARIANTS},
        # CPU-seconds per 1000 requests: a cost measure other load disturbs far less than requests/s.
        "cpu_s_per_1k_requests": per_1k,
        "cpu_ratio": rnd(cpu_ratio),
        "cpu_aa_ratio": rnd(cpu_aa),
        "stored_ratio": {v: rnd(stored[v] / requests[v], 6) if requests[v] else None for v in VARIANTS},
        "keyed_share": {v: rnd(keyed[v] / stored[v], 4) if stored[v] else None for v in VARIANTS},
        "rounds": per_round,
        "vus": vus,
        "seconds_per_round": seconds,
        "load_before": load_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--vus", type=int, default=50)
    args = parser.parse_args(argv)
    exit_on_term()
    rounds, seconds = (1, 1) if args.quick else (args.rounds, args.seconds)
    emit(measure(rounds, seconds, args.vus, args.keep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
