"""Run the benchmarks and rewrite BENCHMARKS.md: `python -m bench.run_all` (`make bench`).

Each benchmark runs as its own subprocess (`python -m bench.NAME`), one after
another (they would disturb each other's figures), and prints one JSON line; this
prints those lines on stdout, in order, and writes BENCHMARKS.md with the
figures, the goals, pass/fail per goal, the machine's description and the load on
the machine before and after each benchmark. The whole run is held to the sum of the
benchmarks' caps (`TOTAL_BUDGET_S`, so adding a benchmark never starves the ones after
it): a benchmark gets at most its own cap and what is left of the total; one that fails
or runs out of time is recorded as such (with its stderr's tail), never skipped
silently. `analysis` (bench/analysis.py) is recorded "not available" when absent.

Exit code: 0 when every benchmark produced its line, 1 otherwise (a goal not met is
reported in BENCHMARKS.md, not an exit code: the figures are the product).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.harness import PY, REPO_ROOT
from bench.machine import load_now, machine
from runners.children import die_with_parent

OUT = REPO_ROOT / "BENCHMARKS.md"


@dataclass(frozen=True)
class Bench:
    name: str
    cap_s: float
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ("--quick",)


BENCHES = (
    Bench("overhead", 330, ("--rounds", "5", "--seconds", "10", "--components")),
    Bench("entry", 330, ("--rounds", "5", "--seconds", "10", "--components")),
    Bench("fidelity", 190, ("--rounds", "2", "--seconds", "10", "--tuning-seconds", "8")),
    Bench("start_skew", 120, ("--runs", "5")),
    Bench("analysis", 150),
    Bench("fleet_scaling", 110, ("--rounds", "2", "--seconds", "10")),
    Bench("seed_scale", 160, ("--seconds", "60")),
    Bench("accuracy", 420),
)
TOTAL_BUDGET_S = sum(b.cap_s for b in BENCHES)


@dataclass
class Outcome:
    name: str
    result: dict[str, Any] | None
    seconds: float
    error: str | None = None
    load_before: dict[str, Any] = field(default_factory=dict)
    load_after: dict[str, Any] = field(default_factory=dict)


def run_one(bench: Bench, budget_s: float, quick: bool) -> Outcome:
    """Run one benchmark; its last JSON stdout line is its result."""
    if not (REPO_ROOT / "bench" / f"{bench.name}.py").exists():
        return Outcome(bench.name, None, 0.0, error=f"not available (bench/{bench.name}.py is absent)")
    args = [PY, "-m", f"bench.{bench.name}", *(bench.quick_args if quick else bench.args)]
    before = _load()
    t0 = time.monotonic()
    busy0, ours0 = _machine_busy_s(), _our_cpu_s()
    sys.stderr.write(f"== {bench.name}: {' '.join(args[2:])} (at most {budget_s:.0f} s)\n")
    sys.stderr.flush()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", ""))
                                                       if p)}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            cwd=str(REPO_ROOT), env=env, preexec_fn=die_with_parent)
    try:
        out, err = proc.communicate(timeout=budget_s)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the benchmarks stop their servers on SIGTERM
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return Outcome(bench.name, None, time.monotonic() - t0, error=f"ran out of time ({budget_s:.0f} s)\n"
                       + _tail(err), load_before=before, load_after=_load())
    seconds = time.monotonic() - t0
    others = max(0.0, (_machine_busy_s() - busy0) - (_our_cpu_s() - ours0))
    before["others_cpu_pct"] = round(100 * others / (seconds * (os.cpu_count() or 1)), 1) if seconds else None
    sys.stderr.write(err.decode(errors="replace"))
    result = _last_json(out.decode(errors="replace"))
    if proc.returncode != 0 or result is None:
        return Outcome(bench.name, result, seconds, error=f"exit code {proc.returncode}\n" + _tail(err),
                       load_before=before, load_after=_load())
    return Outcome(bench.name, result, seconds, load_before=before, load_after=_load())


def _machine_busy_s() -> float:
    """CPU-seconds all cores spent busy since boot (everything but idle and iowait)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _our_cpu_s() -> float:
    """CPU-seconds of this process and every descendant reaped so far (the benchmark's whole tree)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> dict[str, Any]:
    one, five, _ = os.getloadavg()
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2)}


def _tail(err: bytes, chars: int = 1200) -> str:
    return err.decode(errors="replace")[-chars:]


def _last_json(stdout: str) -> dict[str, Any] | None:
    for raw in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


# -- goals --------------------------------------------------------------------------------

def verdict(name: str, r: dict[str, Any] | None) -> tuple[str, str, str]:
    """(goal, measured, PASS|FAIL|n/a) for one benchmark's result."""
    if r is None:
        return GOALS.get(name, "-"), "-", "n/a"
    if name == "overhead":
        ok = (r.get("ratio") or 0) >= 0.98
        measured = f"ratio {r.get('ratio')} (vs k6 without output: {r.get('ratio_vs_no_output')})"
    elif name == "entry":
        ratio, noise, cpu, cpu_noise = r.get("ratio"), r.get("noise"), r.get("cpu_ratio"), r.get("cpu_noise")
        ok = (ratio is not None and noise is not None and cpu is not None and cpu_noise is not None
              and 1 - ratio <= noise and cpu - 1 <= cpu_noise)
        measured = (f"req/s ratio {ratio} (noise {noise}); CPU per request x{cpu} (noise {cpu_noise}; the same "
                    "script twice)")
    elif name == "fidelity":
        stored = r.get("stored_ratio")
        ok = stored is not None and round(stored, 3) == 1.0 and (r.get("rps_ratio") or 0) >= 0.80
        measured = (f"stored_ratio {stored} ({r.get('lost_samples')} of {r.get('samples', {}).get('k6_requests')} "
                    f"missing), rps_ratio {r.get('rps_ratio')}")
    elif name == "start_skew":
        ok = (r.get("median_ms") or 1e9) <= 50
        measured = f"median {r.get('median_ms')} ms (resumed one by one: {r.get('sequential_median_ms')} ms)"
    elif name == "analysis":
        s5, s6 = r.get("seconds_1e5"), r.get("seconds_1e6")
        ok = bool(s6 is not None and s6 <= 3.0 and s5 and s6 / s5 < 10)
        measured = f"{s5} s at 1e5, {s6} s at 1e6 (naive reader: {r.get('naive_seconds_1e6')} s)"
    elif name == "fleet_scaling":
        ok = (r.get("efficiency_4") or 0) >= 0.8
        measured = f"efficiency_2 {r.get('efficiency_2')}, efficiency_4 {r.get('efficiency_4')}"
    elif name == "seed_scale":
        ok = bool(r.get("completed")) and r.get("stored_ratio") == 1.0
        measured = (f"{r.get('vus')} VUs, stored_ratio {r.get('stored_ratio')}, generator_saturated "
                    f"{str(r.get('generator_saturated')).lower()}, controller peak RSS "
                    f"{r.get('controller_peak_rss_mb')} MB")
    elif name == "accuracy":
        ok = r.get("accuracy") == 1.0
        measured = (f"accuracy {r.get('accuracy')} ({r.get('passed_cases')} of {r.get('cases')} gallery cases "
                    "in their ground-truth range)")
    else:
        return "-", json.dumps(r), "n/a"
    return GOALS[name], measured, "PASS" if ok else "FAIL"


GOALS = {
    "overhead": "ratio >= 0.98",
    "entry": "within the noise of the same load run twice: 1 - ratio <= noise, cpu_ratio - 1 <= cpu_noise",
    "fidelity": "stored_ratio 1.000 and rps_ratio >= 0.80",
    "start_skew": "median_ms <= 50",
    "analysis": "seconds_1e6 <= 3, growing sublinearly (1e5 -> 1e6 under 10x)",
    "fleet_scaling": "efficiency_4 >= 0.8",
    "seed_scale": "completes, every sample stored, saturation judged honestly",
    "accuracy": "accuracy 1.0 (every gallery case's recommendation in its ground-truth range)",
}


# -- BENCHMARKS.md ------------------------------------------------------------------------

def _store_sentence(st: dict[str, Any]) -> str:
    """What InfluxDB's own counters (SHOW STATS) say about the loadbearing rounds' writes."""
    if not st:
        return "No write is refused: the store kept every point k6 sent."
    refused = sum(int(st.get(k) or 0) for k in ("points_written_fail", "points_written_dropped", "client_errors",
                                                 "server_errors", "write_errors", "write_drops", "write_timeouts"))
    return (f"InfluxDB's own counters (SHOW STATS) over the loadbearing rounds: {st.get('write_requests')} write "
            f"requests, {st.get('points_written_ok')} points written, {st.get('points_written_fail')} failed, "
            f"{st.get('points_written_dropped')} dropped, {st.get('client_errors')} client and "
            f"{st.get('server_errors')} server errors: "
            + ("no write was refused, so the rate is lost to CPU, not to the store." if refused == 0 else
               f"{refused} refusals, see the counters in the raw line."))


def _overhead_cause(r: dict[str, Any]) -> list[str]:
    """When overhead misses 0.98: how far the rounds spread, and where loadbearing's extra CPU goes."""
    if (r.get("ratio") or 0) >= 0.98:
        return []
    rr = [x for x in r.get("round_ratios") or [] if isinstance(x, int | float)]
    cpu = r.get("cpu_s_per_1k_requests", {})
    same, lb = cpu.get("k6_same_output"), cpu.get("loadbearing")
    lb_requests = (r.get("rps", {}).get("loadbearing") or 0) * (r.get("seconds_per_round") or 0) * len(rr)
    ctl = r.get("controller_cpu_s_per_run")
    parts = []
    if rr:
        parts.append(f"the {len(rr)} rounds' ratios spread from {min(rr)} to {max(rr)}, {max(rr) - min(rr):.2f} wide, "
                     f"while the median misses 0.98 by {0.98 - (r.get('ratio') or 0):.3f}: the miss is inside the "
                     "round-to-round noise of requests/s on this machine")
    if same and lb and ctl is not None and lb_requests:
        ctl_1k = 1000 * ctl * len(rr) / lb_requests
        parts.append(f"by CPU, which other load disturbs far less, loadbearing spent {lb / same:.3f}x bare k6's "
                     f"CPU per request with the same output: {ctl_1k / same:.1%} of bare k6's per-request CPU is the "
                     f"controller ({ctl} CPU-s per run, its Python start and the `k6 inspect` "
                     f"preflight included), the other {(lb - same - ctl_1k) / same:.1%} is k6's own")
    comp = r.get("components") or {}
    if comp:
        parts.append("the runner mechanics alone, without the controller (paused start, REST API, resume): "
                     + ", ".join(f"`{k}` ratio {v.get('ratio')} at {v.get('cpu_s_per_1k_requests')} CPU-s per 1000 "
                                 "requests" for k, v in comp.items())
                     + " (`paused_resumed_polled` reads the live metrics as the progress table does)")
    if not parts:
        return []
    return ["", "**Why ratio is below 0.98**: " + "; ".join(parts) + "."]


def _entry_explained(r: dict[str, Any]) -> list[str]:
    rps, cpu, keyed = r.get("rps", {}), r.get("cpu_s_per_1k_requests", {}), r.get("keyed_share", {})
    ratio, noise = r.get("ratio") or 0.0, r.get("noise") or 0.0
    lines = [
        f"The same k6 load as overhead (constant-vus, {r.get('vus')} VUs, no think time, "
        f"{r.get('seconds_per_round')} s per round, {len(r.get('rounds', []))} rounds in rotating order, bare "
        "`k6 run` with loadbearing's config, tags and `--out influxdb`) against a private nginx, run three ways: "
        f"the user's script (`plain`, {rps.get('plain')} req/s), the same again (`plain_again`, "
        f"{rps.get('plain_again')} req/s: the A/A control), and the generated entry script around it (`entry`, "
        f"{rps.get('entry')} req/s; every GET tagged `key`, stored as one more field: share of stored requests "
        f"with a key {keyed.get('entry')} through the entry, {keyed.get('plain')} without). `ratio` = entry / "
        f"plain, median of the per-round ratios {r.get('round_ratios')} = **{r.get('ratio')}**; the same script "
        f"twice gave {r.get('aa_round_ratios')}, so this machine's round-to-round noise is **{r.get('noise')}** "
        "(the largest distance from 1 of an A/A round).",
        "",
        f"CPU-seconds per 1000 requests: plain {cpu.get('plain')}, plain_again {cpu.get('plain_again')}, entry "
        f"{cpu.get('entry')}: the entry costs x{r.get('cpu_ratio')} the CPU per request (the same script twice: "
        f"x{r.get('cpu_aa_ratio')}, rounds {r.get('cpu_aa_round_ratios')}, so CPU noise **{r.get('cpu_noise')}**).",
    ]
    cpu_ratio, cpu_noise = r.get("cpu_ratio") or 0.0, r.get("cpu_noise") or 0.0
    if 1 - ratio > noise or cpu_ratio - 1 > cpu_noise:
        per_1k = (cpu.get("entry") or 0.0) - (cpu.get("plain") or 0.0)
        lines += ["", f"**Why the goal is missed**: the entry costs k6 {per_1k * 1000:.0f} µs of CPU per request "
                      f"({cpu_ratio - 1:.1%} of the plain script's, against {cpu_noise:.1%} between two runs of the "
                      "same script): its JavaScript runs in k6's hot loop for every request (the wrapper call, the "
                      "copied params and tags, the key lookup) and every sample k6 writes carries one more field "
                      "(`key`). This is the worst case, k6 saturated with no think time, where the generator's CPU "
                      "is the rate; with think time the cost is CPU headroom on the runners, which "
                      "`generator_saturated` watches."]
    return lines


def _native_histogram_lines(nh: dict[str, Any]) -> list[str]:
    """The mergeable aggregating path (k6's native histograms): its cost and its p95's precision."""
    if not nh.get("rps_ratio"):
        return []
    width = nh.get("bucket_relative_width")
    return ["", (
        f"`prometheus_rw_native_histogram` is the same output with every Trend as a Prometheus native histogram, "
        f"received by `bench/promrw.py` (InfluxDB 1.x drops native histograms): rps_ratio {nh.get('rps_ratio')}, "
        f"k6 {nh.get('k6_cpu_s_per_1k')} CPU-s per 1000 requests, receiver {nh.get('influxd_cpu_s_per_1k')}, "
        f"request count exact (stored_ratio {nh.get('stored_ratio')}). Its histograms merge exactly across runners "
        "and seconds (bucket counts add up), but k6 fixes their schema at "
        f"{nh.get('histogram_schema')}: buckets {width:.1%} wide, so a percentile is known only to its bucket. "
        f"k6's exact p95 was {nh.get('p95_exact_ms')} ms; the merged histogram puts it in "
        f"{nh.get('p95_bucket_ms')} ms (geometric midpoint off by {nh.get('p95_midpoint_error'):+.1%}). "
        "So the one path that reaches the goal's cost gives exact counts and error rates but percentiles to "
        "about +-4.5%, short of the issue's \"numbers the dashboards and policies show exact\"; an exact "
        "aggregate needs an aggregator inside k6 with finer buckets (an xk6 output extension, which needs a Go "
        "toolchain this machine does not have). loadbearing keeps the per-sample output, exact and complete, "
        "and states its cost here."
        if width is not None and nh.get("p95_midpoint_error") is not None else
        f"`prometheus_rw_native_histogram` (Trends as native histograms): rps_ratio {nh.get('rps_ratio')}; "
        "no merged histogram was received, so its precision was not measured.")]


def render(outcomes: list[Outcome], mach: dict[str, Any], started: datetime, load_start: dict[str, Any],
           total_s: float, quick: bool) -> str:
    by = {o.name: o.result for o in outcomes}
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench.run_all` (`make bench`); every figure below comes from that run, and is "
        "rewritten by the next. Ratios are measured side by side in one run, in alternating rounds. Each benchmark "
        "is `python -m bench.NAME` and prints one JSON line (the raw lines are at the end).",
        "",
        f"Run: {started.strftime('%Y-%m-%d %H:%M UTC')}, {total_s / 60:.1f} minutes"
        + (" — **quick mode (smoke figures, not benchmarks)**" if quick else "") + ".",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {mach['cpu_model']} |",
        f"| cores | {mach['cores']} |",
        f"| memory | {mach['memory_gb']} GiB |",
        f"| kernel | {mach['kernel']} |",
        f"| k6 | {mach['k6']} |",
        f"| InfluxDB | {mach['influxdb']} |",
        f"| nginx (fast target) | {mach['nginx']} |",
        f"| Python | {mach['python']} |",
        f"| load at start | load average {load_start['loadavg_1m']} (1 min), {load_start['loadavg_5m']} (5 min); "
        f"CPU busy {load_start['cpu_pct_1s']}% over 1 s |",
        "",
        _load_note(outcomes, load_start, mach),
        "",
        "## Results",
        "",
        "| benchmark | goal | measured | verdict | time |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        goal, measured, ok = verdict(o.name, o.result)
        if o.error:
            measured = f"{measured if o.result else ''} **{o.error.splitlines()[0]}**".strip()
            ok = "n/a" if o.result is None else ok
        lines.append(f"| `{o.name}` | {goal} | {measured} | **{ok}** | {o.seconds:.0f} s |")
    lines += ["", "## What each figure means, and why a goal is missed", ""]
    for o in outcomes:
        lines += [f"### {o.name}", ""]
        lines += _explain(o.name, by.get(o.name), o)
        lines.append("")
    lines += ["## Raw results", "", "```json"]
    for o in outcomes:
        lines.append(json.dumps(o.result) if o.result is not None else json.dumps(
            {"bench": o.name, "error": (o.error or "").splitlines()[0] if o.error else None}))
    lines += ["```", ""]
    return "\n".join(lines)


def _load_note(outcomes: list[Outcome], load_start: dict[str, Any], mach: dict[str, Any]) -> str:
    """How much CPU others used while each benchmark ran: machine busy CPU minus the benchmark's own tree."""
    cores = mach.get("cores") or 1
    shares = {o.name: o.load_before.get("others_cpu_pct") for o in outcomes if o.load_before}
    known = [v for v in shares.values() if v is not None]
    worst = max(known, default=0.0)
    per = ", ".join(f"{name} {v}%" for name, v in shares.items())
    if worst < 5:
        head = "The machine was quiet: other processes used under 5% of its CPU while each benchmark ran."
    else:
        head = (f"**The machine was not quiet**: other processes used up to {worst}% of its {cores} cores' CPU "
                "while a benchmark ran, so requests/s figures are noisy and lower than on a quiet machine; the "
                "ratios are measured in alternating rounds to cancel some of it, and CPU-seconds per request "
                "(reported beside them) is far less disturbed.")
    return (f"{head} Share of the machine's CPU used by other processes during each benchmark (busy CPU minus the "
            f"benchmark's own process tree): {per}. Load average at the start: {load_start.get('loadavg_1m')}.")


def _explain(name: str, r: dict[str, Any] | None, o: Outcome) -> list[str]:
    if r is None:
        msg = o.error or "no result"
        return [f"No result: {msg.splitlines()[0]}", "", "```", msg[-800:], "```"]
    if name == "overhead":
        rps = r.get("rps", {})
        cpu = r.get("cpu_s_per_1k_requests", {})
        return [
            f"The same k6 script (constant-vus, {r.get('vus')} VUs, no think time, {r.get('seconds_per_round')} s "
            f"per round, {len(r.get('rounds', []))} rounds in rotating order) against a private nginx: bare "
            f"`k6 run` without output {rps.get('k6_no_output')} req/s; bare `k6 run` with the same config, tags "
            f"and `--out influxdb` loadbearing uses {rps.get('k6_same_output')} req/s; `loadbearing run parallel` "
            f"(1 module, 1 runner, the same script: `key_requests = false`; the entry script a default run adds "
            f"is `entry` below) {rps.get('loadbearing')} req/s. `ratio` = loadbearing / k6-with-the-same-output, "
            f"median of the per-round ratios {r.get('round_ratios')} = **{r.get('ratio')}** (ratio of the totals "
            f"{r.get('ratio_of_totals')}); against k6 without any output: {r.get('ratio_vs_no_output')} (that gap "
            "is the metrics output's cost, see fidelity).",
            "",
            f"CPU-seconds per 1000 requests: k6 without output {cpu.get('k6_no_output')}, k6 with the output "
            f"{cpu.get('k6_same_output')}, loadbearing (controller + k6, including the controller's fixed start: "
            f"Python, `k6 inspect` preflight) {cpu.get('loadbearing')}; the controller itself used "
            f"{r.get('controller_cpu_s_per_run')} CPU-s per run. "
            + (f"{r.get('runs_marked_incomplete')} of the {len(r.get('rounds', []))} loadbearing runs ended with exit 4 "
               f"(`metrics_incomplete`): {(r.get('lost_samples') or {}).get('loadbearing')} samples in all were "
               "missing from InfluxDB, two requests stamped in the same nanosecond stored as one point (see "
               "fidelity); bare k6 with the same output lost "
               f"{(r.get('lost_samples') or {}).get('k6_same_output')} the same way. "
               if r.get("runs_marked_incomplete") else "")
            + "Per-round req/s: "
            + "; ".join(", ".join(f"{k} {v}" for k, v in row.items() if k != "order") for row in r.get("rounds", []))
            + ".",
            *_overhead_cause(r),
        ]
    if name == "entry":
        return _entry_explained(r)
    if name == "fidelity":
        cpu = r.get("cpu_s_per_1k_requests", {})
        pct = r.get("cpu_pct_of_one_core_during_loadbearing", {})
        s = r.get("samples", {})
        out = [
            f"Full rate ({r.get('vus')} VUs, no think time) through the pipeline: k6 counted {s.get('k6_requests')} "
            f"requests; InfluxDB stored {s.get('stored_http_reqs')} `http_reqs` and "
            f"{s.get('stored_http_req_duration')} `http_req_duration` samples: stored_ratio "
            f"**{r.get('stored_ratio')}**. Requests/s: bare k6 without output {r.get('rps', {}).get('k6_no_output')}, "
            f"loadbearing {r.get('rps', {}).get('loadbearing')}: rps_ratio **{r.get('rps_ratio')}**.",
            "",
            f"Where the CPU goes (CPU-seconds per 1000 requests): k6 without output {cpu.get('k6_no_output')}; "
            f"k6 with the InfluxDB output (+ controller) {cpu.get('loadbearing_k6_and_controller')}; influxd "
            f"{cpu.get('influxd')}; nginx {cpu.get('nginx_with_loadbearing')}. During the loadbearing rounds k6 "
            f"used {pct.get('k6_and_controller')}% of a core, influxd {pct.get('influxd')}%, nginx {pct.get('nginx')}%.",
        ]
        k6_bare, k6_out, ix = cpu.get("k6_no_output"), cpu.get("loadbearing_k6_and_controller"), cpu.get("influxd")
        if k6_bare and k6_out and ix is not None and (r.get("rps_ratio") or 0) < 0.80:
            ng_lb = cpu.get("nginx_with_loadbearing") or 0.0
            ng_bare = cpu.get("nginx_with_bare") or ng_lb
            cost_bare, cost_lb = k6_bare + ng_bare, k6_out + ix + ng_lb
            rps = r.get("rps", {})
            cores_bare = cost_bare * (rps.get("k6_no_output") or 0) / 1000
            cores_lb = cost_lb * (rps.get("loadbearing") or 0) / 1000
            out += ["", (
                f"**Why rps_ratio is below 0.80**: k6's built-in InfluxDB output makes every request cost k6 "
                f"{k6_out / k6_bare:.1f}x the CPU it costs without output (one line-protocol point per metric "
                "sample, about 11 per request), and influxd needs another "
                f"{ix / k6_bare:.1f}x bare k6's per-request CPU to ingest them. On this {{cores}}-core box the "
                "generator, the store and the target share the CPU, so the rate is the CPU they get divided by "
                f"the CPU a request costs: {cost_bare:.4f} CPU-s per 1000 requests bare (k6 + nginx) against "
                f"{cost_lb:.4f} through the pipeline (k6 with output + controller + influxd + nginx), "
                f"{cost_bare / cost_lb:.2f} at equal CPU; the pipeline kept {cores_lb:.2f} cores busy against bare "
                f"k6's {cores_bare:.2f}, hence {r.get('rps_ratio')}. Reaching 0.80 on a box whose cores are all "
                "in use needs a pipeline whose per-request CPU is at most 1.25x bare k6's; k6's per-sample "
                "InfluxDB output is far from it and no batching setting changes its per-sample cost (tuning "
                "table below). " + _store_sentence(r.get("influxd_stats") or {}))]
        col = r.get("collision_check") or {}
        if r.get("lost_samples"):
            out += ["", (
                f"**The {r.get('lost_samples')} missing samples** (stored_ratio {r.get('stored_ratio')}, 1.000 to three "
                "decimals) are not lost writes: InfluxDB identifies a point by measurement, tag set and timestamp, "
                "and k6 1.x writes `vu`/`iter` as fields, so two requests with the same tags that k6 stamps in the "
                "same nanosecond become one point. Collisions grow with the square of a runner's rate: a few per "
                "10^5 samples at ~10,000 req/s per runner, next to none at hundreds. "
                + (f"Measured cause: bare k6 writing to InfluxDB and to a CSV file at once ({col.get('runs')} runs of "
                   f"{col.get('seconds')} s, {col.get('requests')} requests): {col.get('same_ns_timestamp')} requests "
                   f"shared a nanosecond timestamp, {col.get('missing_in_influxdb')} were missing in InfluxDB."
                   if col else ""))]
        tuning = r.get("tuning") or {}
        if tuning:
            out += ["", f"Output variants, bare k6, one run of {r.get('tuning_seconds')} s each, between two "
                        f"no-output reference runs ({tuning.get('reference_rps')} req/s on average):", "",
                    "| variant | req/s | rps_ratio | k6 CPU-s / 1k req | influxd CPU-s / 1k req | stored_ratio |",
                    "|---|---|---|---|---|---|"]
            for k, v in tuning.items():
                if isinstance(v, dict):
                    out.append(f"| `{k}` | {v.get('rps')} | {v.get('rps_ratio')} | {v.get('k6_cpu_s_per_1k')} | "
                               f"{v.get('influxd_cpu_s_per_1k')} | {v.get('stored_ratio')} |")
            out += ["", "Compare variants by CPU-seconds per 1000 requests: `influx_push_5s` moves most writes after "
                        "the measured window (k6 flushes at the end), which flatters its req/s but not its CPU. "
                        "`csv_output_no_influx` is the cheapest per-sample output k6 has; "
                        "`prometheus_rw_aggregated` is k6's aggregating output (counters and trend statistics "
                        "per push, per runner) written into the same InfluxDB (`/api/v1/prom/write`): its "
                        "counts are exact (`stored_ratio` compares k6's final `k6_http_reqs_total` with k6's "
                        "count), but its percentiles are per runner and per push, not mergeable across runners "
                        "exactly, and its measurements (`k6_*`) are not the ones the dashboards and policies read."]
            prw = tuning.get("prometheus_rw_aggregated") or {}
            if prw.get("rps_ratio") and k6_bare:
                out += ["", (f"Of the variants measured, only an aggregating path reaches the goal's cost: "
                             f"`prometheus_rw_aggregated` ran at rps_ratio {prw.get('rps_ratio')} with k6 at "
                             f"{prw.get('k6_cpu_s_per_1k')} CPU-s per 1000 requests ({prw['k6_cpu_s_per_1k'] / k6_bare:.2f}x "
                             "bare) and influxd next to idle.")]
            out += _native_histogram_lines(tuning.get("prometheus_rw_native_histogram") or {})
        return [line.replace("{cores}", str(os.cpu_count())) for line in out]
    if name == "start_skew":
        return [
            f"{r.get('k6_processes')} k6 processes (4 modules x 4 runners, parallel strategy, all initialised paused), "
            "1 VU each; skew = spread of the runners' first stored `http_reqs` timestamps (InfluxDB `first()` "
            f"per `runner` tag). Median of {len((r.get('runs_ms') or {}).get('together', []))} runs: "
            f"`loadbearing run parallel` (resume_together: one barrier releases every PATCH) **{r.get('median_ms')} ms**; "
            f"the same paused runners resumed one after another over open connections "
            f"{r.get('sequential_median_ms')} ms; 16 `k6 run ... &` started one after another, not paused, as "
            f"the field report's bash scripts did: {r.get('shell_background_median_ms')} ms. Runs (ms): "
            f"{json.dumps(r.get('runs_ms'))}.",
            "",
            "Resuming a paused k6 is one cheap HTTP call, so resuming in sequence costs only about 1 ms per "
            "runner; the skew that remains with either is the 16 processes getting CPU on "
            f"{os.cpu_count()} cores. What matters is starting paused: unpaused processes started in sequence "
            "spread by their start-up and VU initialisation.",
            *_start_failures(r.get("start_failures") or []),
        ]
    if name == "accuracy":
        rows = r.get("rows") or {}
        return ["Every case of the gallery (tests/gallery/cases.py: a small real server per pathology, plain k6 "
                "scripts tagging only `name`, the real controller and InfluxDB), checked against its row:"] + [
            f"- `{n}` ({row.get('pathology')}): " + ("in range" if row.get("passed") else
                                                     "**missed**: " + "; ".join(row.get("missed") or []))
            + f" ({row.get('seconds')} s)" for n, row in sorted(rows.items())]
    if name == "analysis":
        keys = ("seconds_1e5", "seconds_1e6", "naive_seconds_1e6", "cpu_seconds_1e5", "cpu_seconds_1e6",
                "naive_cpu_seconds_1e6", "same_result")
        return ["`recommend` on a run of synthetic k6-shaped samples (bench/analysis.py): " + ", ".join(
            f"{k} {r.get(k)}" for k in keys if k in r) + "."]
    if name == "fleet_scaling":
        return [
            f"One module at {r.get('rate_per_runner')} iterations/s per runner (constant-arrival-rate split by "
            f"execution segments), N = 1, 2, 4 runners, {r.get('rounds')} rounds of {r.get('seconds_per_run')} s "
            f"in alternating order: delivered / requested = {json.dumps(r.get('delivered_share'))}, req/s "
            f"{json.dumps(r.get('rps'))} for {json.dumps(r.get('requested_rps'))} requested, dropped iterations "
            f"{json.dumps(r.get('dropped_iterations'))}, stored_ratio {json.dumps(r.get('stored_ratio'))}. "
            f"efficiency_N = rps_N / (N x rps_1): **{r.get('efficiency_2')}** (2), **{r.get('efficiency_4')}** (4).",
        ]
    if name == "seed_scale":
        ev = r.get("saturation_evidence", {})
        verdict_doc = r.get("run_verdict", {})
        mods = r.get("modules", {})
        return [
            f"The demo's seed plan (4 modules x 300 VUs with the scripts' think time = {r.get('vus')} VUs), "
            f"parallel strategy, {r.get('seconds')} s, against the demo services (core-api, profile-api) on "
            f"loopback: status `{r.get('status')}` (exit {r.get('exit_code')}"
            + ("; `failed` means an SLO was missed, the demo's seeded pathology, not a run error"
               if r.get("status") == "failed" else "")
            + f"), {r.get('requests', {}).get('k6')} "
            f"requests ({r.get('rps')} req/s), stored_ratio **{r.get('stored_ratio')}**, controller peak RSS "
            f"**{r.get('controller_peak_rss_mb')} MB** ({r.get('controller_cpu_s')} CPU-s).",
            "",
            "Per module (stored requests, p95 ms, error rate): " + "; ".join(
                f"{k} {v.get('requests')}, {v.get('p95_ms')}, {v.get('error_rate')}" for k, v in mods.items()) + ".",
            "",
            f"generator_saturated **{str(r.get('generator_saturated')).lower()}**: k6 CPU p90 per runner "
            f"{json.dumps(ev.get('k6_cpu_p90_pct'))} (% of one core; saturated at >= 90), dropped iterations "
            f"{ev.get('dropped_iterations')}. "
            + ("; ".join(ev.get("reasons", [])) + ". " if ev.get("reasons") else "")
            + f"The machine's CPU averaged {ev.get('machine_cpu_mean_pct')}%"
            + (" — pegged: the target, InfluxDB and k6 all queued for CPU, so latencies include that queueing."
               if ev.get("machine_cpu_pegged") else ".")
            + (f" The run's own verdict (`policies.recommend`): valid {verdict_doc.get('valid')}, findings "
               f"{verdict_doc.get('finding_kinds')}." if verdict_doc.get("available") else
               f" The run's own verdict was not available: {verdict_doc.get('reason')}."),
        ]
    return [json.dumps(r)]


def _start_failures(failures: list[dict[str, Any]]) -> list[str]:
    if not failures:
        return []
    text = [f"**{len(failures)} start attempt(s) failed and were retried**: " + "; ".join(
        f"{f.get('variant')}: {f.get('error')}" for f in failures) + "."]
    if any("address already in use" in str(f.get("error")) for f in failures):
        text.append("Cause: the process backend asks the OS for a free port, closes it and hands the number to k6 "
                    "(`--address 127.0.0.1:PORT`); the port is in the ephemeral range, and another connection on "
                    "the machine can take it before k6 binds it, so k6 exits 106 and the run ends with exit 4.")
    return ["", *text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every benchmark in its tiny mode (smoke run)")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write (default BENCHMARKS.md)")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    mach = machine()
    load_start = load_now(1.0)
    outcomes: list[Outcome] = []
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        left = TOTAL_BUDGET_S - (time.monotonic() - t0)
        if left < 20:
            outcomes.append(Outcome(bench.name, None, 0.0, error=f"not run: the {TOTAL_BUDGET_S / 60:.0f}-minute "
                                                                  "budget was spent"))
            continue
        outcome = run_one(bench, min(bench.cap_s, left), args.quick)
        outcomes.append(outcome)
        line = outcome.result if outcome.result is not None else {"bench": bench.name, "error": (
            outcome.error or "").splitlines()[0] if outcome.error else None}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    total = time.monotonic() - t0
    args.out.write_text(render(outcomes, mach, started, load_start, total, args.quick))
    sys.stderr.write(f"wrote {args.out} ({total / 60:.1f} min)\n")
    return 0 if all(o.result is not None and not o.error for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
