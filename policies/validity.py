"""Run validity: can this run's numbers be trusted enough to recommend settings?

A run is invalid (`"valid": false`, each reason in `invalid_reasons`) when:

- `metrics_incomplete`: InfluxDB holds fewer samples than k6 itself counted (k6's
  `--summary-export`), per module, for http_reqs, http_req_duration or
  http_req_failed, beyond what same-nanosecond merges explain
  (`runners.results.allowed_missing`: 0.1 %, or the store's own count of
  near-coincident same-series samples); or a runner left no summary to check
  against; or the run record is marked incomplete / did not finish.
- `metrics_inconsistent`: more samples stored than k6 counted (a reused testid).
- `generator_saturated`: a load generator could not produce the planned load:
  its CPU was pegged (`loadbearing_runner.cpu_percent` p90 >= 90, when the
  controller records it), or it dropped iterations while the target was fast
  (dropped in buckets whose p95 was within the SLO). Drops caused by a slow target
  exhausting `max_vus` (in buckets over the SLO) do not count.
- `too_little_data`: a module with fewer than MIN_REQUESTS stored requests, unless
  its service never answered at all.

Not a reason to distrust the run but a finding about the target: `no_response`, a
module whose requests were sent and never answered (k6 stores nothing for an
iteration it interrupted at the end of the run, and stores a request that timed out
or was reset without an HTTP status, `status` 0). Sent is at least the stored
requests plus the interrupted iterations: for an arrival rate, the iterations it
scheduled (rate x duration) less those it dropped and those that completed; for
constant VUs that completed nothing, one per VU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core import measurements as names
from policies.findings import Finding, r
from policies.inputs import ModuleRun, RunInputs
from policies.metrics import Measurements
from runners.results import allowed_missing

MIN_REQUESTS = 30
DROP_SHARE = 0.01            # dropped iterations above 1 % of scheduled ones matter
CPU_PEGGED = 90.0
CHECKED_MEASUREMENTS = (names.HTTP_REQS, names.HTTP_REQ_DURATION, names.HTTP_REQ_FAILED)


@dataclass
class Validity:
    valid: bool = True
    reasons: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def invalid(self, finding: Finding) -> None:
        self.valid = False
        self.reasons.append(f"{finding.kind}: {finding.detail}")
        self.findings.append(finding)


def short_modules(inputs: RunInputs, m: Measurements) -> list[str]:
    """Modules whose stored samples fall short of k6's count by more than 0.1 %: only for
    these is the store asked how many same-nanosecond merges could explain (`m.near_pairs`)."""
    return [mod.name for mod in inputs.modules if mod.k6_requests and any(
        m.stored.get(mod.name, {}).get(meas, 0) < mod.k6_requests - allowed_missing(mod.k6_requests)
        for meas in CHECKED_MEASUREMENTS)]


def judge(inputs: RunInputs, m: Measurements) -> Validity:
    v = Validity()
    status = inputs.status
    if not inputs.run_dir.complete or status not in ("passed", "failed"):
        why = f"run status is {status!r}" if status not in ("passed", "failed") else "the run directory is marked INCOMPLETE"
        v.invalid(Finding("metrics_incomplete", None, None,
                          f"{why}; the run did not finish, so its samples are partial"))
    for mod in inputs.modules:
        if mod.missing_summaries:
            v.invalid(Finding("metrics_incomplete", mod.service, None,
                              f"module {mod.name}: no k6 summary from runner(s) {', '.join(mod.missing_summaries)}; "
                              "stored samples cannot be checked against k6's own count", module=mod.name))
        stored = m.stored.get(mod.name, {})
        k6 = mod.k6_requests
        if k6 is not None and not mod.missing_summaries:
            for meas in CHECKED_MEASUREMENTS:
                have = stored.get(meas, 0)
                if have < k6 - allowed_missing(k6, m.near_pairs.get(mod.name, 0)):
                    v.invalid(Finding(
                        "metrics_incomplete", mod.service, None,
                        f"module {mod.name}: InfluxDB holds {have} {meas} samples but k6 counted {k6} requests "
                        f"({1 - have / k6:.1%} missing); percentiles and rates would be wrong",
                        module=mod.name, evidence={"measurement": meas, "stored": have, "k6_count": k6}))
                    break
                if have > k6 + allowed_missing(k6):
                    v.invalid(Finding(
                        "metrics_inconsistent", mod.service, None,
                        f"module {mod.name}: InfluxDB holds {have} {meas} samples but k6 counted only {k6} "
                        "(testid reused?)", module=mod.name,
                        evidence={"measurement": meas, "stored": have, "k6_count": k6}))
                    break
        total = stored.get("http_reqs", 0)
        silent = no_response(mod, total, sum(m.unanswered.get(mod.name, {}).values()))
        if silent is not None:
            v.findings.append(silent)
        elif total < MIN_REQUESTS:
            v.invalid(Finding("too_little_data", mod.service, None,
                              f"module {mod.name}: {total} stored requests (< {MIN_REQUESTS}); run it longer "
                              "or harder before trusting any recommendation", module=mod.name,
                              evidence={"stored": total, "minimum": MIN_REQUESTS}))
        _generator(inputs, m, mod.name, v)
    for runner, cpu in sorted(m.runner_cpu.items()):
        if cpu["p90"] >= CPU_PEGGED:
            module = runner.rsplit("-", 1)[0]
            mod_run = inputs.module(module)
            v.invalid(Finding("generator_saturated", mod_run.service if mod_run else None, None,
                              f"runner {runner}: CPU p90 {cpu['p90']:.0f}% (max {cpu['max']:.0f}%); the load "
                              "generator, not the target, set the pace", module=module,
                              evidence={"runner": runner, "cpu_p90": r(cpu["p90"]), "cpu_max": r(cpu["max"])}))
    return v


def interrupted_iterations(mod: ModuleRun) -> int | None:
    """Iterations k6 started but cut off at the end of the run (None: cannot be told)."""
    if not mod.summaries or mod.plan is None:
        return None
    done = mod.k6_iterations
    if mod.plan.rate is not None and not mod.plan.stages:
        scheduled = round(mod.plan.rate * mod.plan.duration_s)
        return max(0, scheduled - mod.k6_dropped - done)
    if mod.plan.vus is not None and done == 0:
        return mod.peak_vus or 0
    return None


def no_response(mod: ModuleRun, stored: int, unanswered: int) -> Finding | None:
    """`no_response` when nothing the module sent was ever answered."""
    interrupted = interrupted_iterations(mod) or 0
    answered = stored - unanswered
    if answered > 0 or interrupted + unanswered <= 0:
        return None
    sent = stored + interrupted
    parts = []
    if interrupted:
        parts.append(f"{interrupted} were still waiting when k6 interrupted their iterations at the end of the run")
    if unanswered:
        parts.append(f"{unanswered} ended without an HTTP status (timed out or reset)")
    return Finding(
        "no_response", mod.service, None,
        f"{mod.service}: module {mod.name} sent at least {sent} requests and none was answered ("
        + "; ".join(parts) + "). The service accepts connections but does not respond: check that it is up "
        "and not stuck (a deadlock, an exhausted worker pool, a dependency it waits on forever); no setting "
        "can be computed for a service that never answered", module=mod.name,
        evidence={"sent_at_least": sent, "answered": 0, "interrupted_iterations": interrupted,
                  "no_status": unanswered, "stored": stored})


def _generator(inputs: RunInputs, m: Measurements, module: str, v: Validity) -> None:
    mod = inputs.module(module)
    if mod is None:
        return
    buckets = m.modules.get(module, [])
    dropped = sum(b.dropped for b in buckets)
    if dropped <= 0:
        dropped = float(mod.k6_dropped)
        buckets = []
    scheduled = mod.k6_iterations + dropped
    if dropped < 5 or scheduled <= 0 or dropped / scheduled < DROP_SHARE:
        return
    # Worst endpoint p95 of this module per bucket: was the target fast when iterations were dropped?
    p95_at: dict[int, float] = {}
    for key, series in m.series.items():
        if key.module == module:
            for b in series:
                p95_at[b.t_ms] = max(p95_at.get(b.t_ms, 0.0), b.p95_ms)
    if buckets:
        # A bucket with no completed request at all counts as slow (a stalled target).
        fast = sum(b.dropped for b in buckets if p95_at.get(b.t_ms, float("inf")) <= inputs.slo_p95_ms)
    else:
        eps = [s for k, s in m.endpoints.items() if k.module == module]
        fast = dropped if eps and max(s.p95_ms for s in eps) <= inputs.slo_p95_ms else 0.0
    if fast >= 0.5 * dropped:
        v.invalid(Finding(
            "generator_saturated", mod.service, None,
            f"module {module}: k6 dropped {dropped:.0f} of {scheduled:.0f} scheduled iterations "
            f"({dropped / scheduled:.1%}), {fast / dropped:.0%} of them while the target answered within the "
            f"SLO (p95 <= {inputs.slo_p95_ms:g} ms): the generator (CPU or max_vus), not the target, "
            "limited the load", module=module,
            evidence={"dropped": r(dropped, 0), "scheduled": r(scheduled, 0),
                      "dropped_while_fast": r(fast, 0), "slo_p95_ms": inputs.slo_p95_ms}))
