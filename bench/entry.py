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

`--components` adds, in the same rotation, where the entry's cost goes: `entry_no_key` (the
same wrapper passing every request's params through untouched: the entry mechanism alone)
and `entry_fixed_key` (the wrapper adding a constant `key`: the tag's own cost in k6,
without computing the key from the URL).

Prints one JSON line: `{"bench": "entry", "ratio": <median over rounds of entry / plain
req/s>, "noise": <largest |1 - plain_again / plain| of a round>, "cpu_ratio": <entry / plain
CPU-seconds per request>, "cpu_noise": <largest |1 - plain_again / plain| of a round's CPU
per request>, ...}`. Goal: within the noise of the same load run twice, by both measures:
`1 - ratio <= noise` and `cpu_ratio - 1 <= cpu_noise` (requests/s moves with whatever else
the machine runs; CPU per request far less, so it is the measure that can tell a cost from
noise on a shared machine). `keyed_share` checks that the wrapper was at work: the share of
the variant's stored requests that carry `key` (1.0 for `entry`, 0.0 for `plain`).
"""

from __future__ import annotations

from pathlib import Path
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
COMPONENTS = ("entry_no_key", "entry_fixed_key")


def component_script(entry: str, variant: str) -> str:
    """The entry with its keying cut short (`--components`): no key at all, or a constant one."""
    at = "  withKey.key = keyOf(url);\n"
    cut = {"entry_no_key": "  return params;\n", "entry_fixed_key": "  withKey.key = '/';\n"}[variant]
    if variant == "entry_no_key":
        at = "function keyed(method, url, params) {\n"
        cut = at + cut
    if entry.count(at) != 1:
        raise RuntimeError(f"runners.k6_entry's template changed: cannot make {variant} from it")
    return entry.replace(at, cut)


def keyed_count(client: InfluxClient, testid: str) -> int:
    """Stored requests of a run that carry the `key` field."""
    rows = client.rows(f'SELECT count("{KEY_TAG}") AS "n" FROM "{names.HTTP_REQS}" '
                       f'WHERE "{names.TESTID}" = {quote_literal(testid)}')
    return int(rows[0]["n"]) if rows else 0


def _ratio(a: float | None, b: float | None) -> float | None:
    return rnd(a / b) if a and b else None


def measure(rounds: int, seconds: int, vus: int, keep: bool = False, components: bool = False) -> dict[str, Any]:
    variants = VARIANTS + (COMPONENTS if components else ())
    requests = dict.fromkeys(variants, 0)
    cpu = dict.fromkeys(variants, 0.0)
    stored = dict.fromkeys(variants, 0)
    keyed = dict.fromkeys(variants, 0)
    per_round: list[dict[str, Any]] = []
    load_before = load_now()
    with workdir("entry", keep) as root, services(root) as (nginx, influxd):
        assert nginx is not None and influxd is not None
        plan_path = write_plan(root / "plan", nginx.url, [{"name": "fast", "vus": vus, "duration": f"{seconds}s"}])
        plan = load_plan(plan_path)
        (root / "k6").mkdir()
        text = entry_script(plan.script_path(plan.module("fast")), "fast")
        scripts: dict[str, Path | None] = dict.fromkeys(("plain", "plain_again"))
        for variant in variants[2:]:
            scripts[variant] = root / "k6" / f"{variant}.js"
            scripts[variant].write_text(text if variant == "entry" else component_script(text, variant))  # type: ignore[union-attr]
        client = new_db(influxd, "entry")
        for i in range(rounds):
            k = i % len(variants)
            order = variants[k:] + variants[:k]
            row: dict[str, Any] = {"order": list(order)}
            for variant in order:
                run = run_bare_k6(plan_path, "fast", root / "bare", influx=client, script=scripts[variant])
                if run.code != 0:
                    raise RuntimeError(f"k6 ({variant}) exited {run.code}")
                requests[variant] += run.requests
                cpu[variant] += run.cpu_s
                stored[variant] += stored_count(client, run.testid)
                keyed[variant] += keyed_count(client, run.testid)
                row[variant] = round(run.requests / seconds, 1)
                row[f"{variant}_cpu_s_per_1k"] = rnd(1000 * run.cpu_s / run.requests, 4) if run.requests else None
                log(f"round {i + 1}/{rounds} {variant}: {run.requests / seconds:,.0f} req/s")
            per_round.append(row)
    total_s = rounds * seconds
    entry_ratios = [row["entry"] / row["plain"] for row in per_round if row["plain"]]
    aa_ratios = [row["plain_again"] / row["plain"] for row in per_round if row["plain"]]
    ratio = median(entry_ratios)
    noise = max((abs(1 - x) for x in aa_ratios), default=float("nan"))
    aa_cpu = [row["plain_again_cpu_s_per_1k"] / row["plain_cpu_s_per_1k"] for row in per_round
              if row["plain_again_cpu_s_per_1k"] and row["plain_cpu_s_per_1k"]]
    cpu_noise = max((abs(1 - x) for x in aa_cpu), default=float("nan"))
    per_1k = {v: rnd(1000 * cpu[v] / requests[v], 4) if requests[v] else None for v in variants}
    cpu_ratio = per_1k["entry"] / per_1k["plain"] if per_1k["entry"] and per_1k["plain"] else None
    cpu_aa = per_1k["plain_again"] / per_1k["plain"] if per_1k["plain_again"] and per_1k["plain"] else None
    return {
        "bench": "entry",
        "ratio": rnd(ratio),
        "noise": rnd(noise),
        "cpu_noise": rnd(cpu_noise),
        "goal": "1 - ratio <= noise and cpu_ratio - 1 <= cpu_noise (within the round-to-round noise of the same "
                "load run twice without the entry)",
        "passed": bool(1 - ratio <= noise and cpu_ratio is not None and cpu_ratio - 1 <= cpu_noise),
        "round_ratios": [rnd(x) for x in entry_ratios],
        "aa_round_ratios": [rnd(x) for x in aa_ratios],
        "aa_ratio": rnd(median(aa_ratios)),
        "rps": {v: round(requests[v] / total_s, 1) for v in variants},
        # CPU-seconds per 1000 requests: a cost measure other load disturbs far less than requests/s.
        "cpu_s_per_1k_requests": per_1k,
        "cpu_ratio": rnd(cpu_ratio),
        "cpu_aa_ratio": rnd(cpu_aa),
        "cpu_aa_round_ratios": [rnd(x) for x in aa_cpu],
        "stored_ratio": {v: rnd(stored[v] / requests[v], 6) if requests[v] else None for v in variants},
        "keyed_share": {v: rnd(keyed[v] / stored[v], 4) if stored[v] else None for v in variants},
        "components": {v: {"cpu_ratio": _ratio(per_1k[v], per_1k["plain"]), "cpu_s_per_1k_requests": per_1k[v]}
                       for v in COMPONENTS} if components else None,
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
    parser.add_argument("--components", action="store_true",
                        help="also run the entry without a key and with a constant key, to tell the wrapper's, "
                             "the tag's and the key computation's shares of its cost apart")
    args = parser.parse_args(argv)
    exit_on_term()
    rounds, seconds = (1, 1) if args.quick else (args.rounds, args.seconds)
    emit(measure(rounds, seconds, args.vus, args.keep, args.components))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
