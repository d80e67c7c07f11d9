"""Capacity per instance: the one number autoscaling is sized from, and where it came from.

`capacity_per_instance(...)` returns a `Capacity` (requests/s one instance sustains,
its kind, the evidence path) or None, from the best evidence the run has:

1. `pool_model`: the pool policy recommends a pool (applied with the autoscaling
   settings): the highest rate at which that pool meets its wait target (Erlang C). A
   knee measured at the old pool no longer holds once the pool changes.
2. `capacity_run`: a capacity run (`loadbearing run capacity`, this run or the one
   `recommend --capacity` names) found the service's knee: the successful requests/s of
   the highest step that met the SLO, per instance it ran with.
3. `plateau`: the service saturated: its goodput at the plateau (successful responses
   per second; `black_box`), per instance. This is what a limit of workers, threads or
   CPU allows, and the only honest figure for a service in trouble.
4. `knee`: some buckets met the SLO and some did not: the highest throughput among
   those that met it (errors within budget, no dropped iteration).
5. `lower_bound`: every bucket met the SLO (and a capacity run, if any, never broke):
   the highest throughput seen, a lower bound (the knee was not reached).

Keep this function the one place that decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policies.findings import Plateau
from policies.inputs import RunInputs
from policies.metrics import Measurements
from policies.pool import PoolDecision
from policies.queueing import max_rate
from policies.recommendations import Basis
from policies.workload import ServiceBucket

CapacityKind = Literal["pool_model", "capacity_run", "plateau", "knee", "lower_bound"]


@dataclass(frozen=True)
class Capacity:
    rps: float                  # per instance
    kind: CapacityKind
    source: str                 # in words, for the reason
    basis: Basis
    p95_ms: float | None = None  # the p95 measured at that rate, when one bucket shows it

    @property
    def knee_reached(self) -> bool:
        return self.kind != "lower_bound"


def within_slo(inputs: RunInputs, buckets: list[ServiceBucket]) -> list[ServiceBucket]:
    return [b for b in buckets if b.p95_max_ms <= inputs.slo_p95_ms and b.error_rate <= inputs.slo_error_rate
            and b.dropped == 0]


def capacity_per_instance(inputs: RunInputs, m: Measurements, service: str, buckets: list[ServiceBucket],
                          instances: int, plateau: Plateau | None, pool: PoolDecision | None) -> Capacity | None:
    good = within_slo(inputs, buckets)
    if pool is not None and pool.recommendation is not None and pool.recommended is not None and pool.hold_s:
        return Capacity(max_rate(pool.recommended, pool.hold_s, pool.target_wait_ms / 1000.0), "pool_model",
                        f"pool model: the highest rate at which {pool.recommended} connections meet the wait target",
                        pool.recommendation.basis)
    ramp = inputs.ramps.service(service) if inputs.ramps is not None else None
    measured = ramp.knee_step if ramp is not None else None
    if ramp is not None and measured is not None and ramp.knee_reached and ramp.capacity_per_instance_rps:
        failed = ramp.failed_step
        assert failed is not None
        return Capacity(ramp.capacity_per_instance_rps, "capacity_run",
                        f"knee measured by capacity run {_run_id(inputs)}: {measured.goodput_rps:.1f} req/s with "
                        f"{ramp.instances} instance(s) met the SLO, {failed.offered_rps:.1f} req/s offered did not",
                        Basis("black_box", "capacity run: the highest step of a rising arrival rate that met the SLO",
                              "high"), measured.p95_ms)
    if plateau is not None and plateau.throughput > 0:
        return Capacity(plateau.throughput / instances, "plateau",
                        "goodput plateau: successful responses per second while saturated",
                        Basis("black_box", "goodput plateau (k6's successful responses per second)", "medium"))
    if good:
        best = max(good, key=lambda b: (b.throughput, b.t_ms))
        if len(good) < len(buckets):
            return Capacity(best.throughput / instances, "knee", "knee",
                            Basis("black_box", "knee: the busiest bucket within the SLO", "medium"), best.p95_max_ms)
        bound = Capacity(best.throughput / instances, "lower_bound",
                         "the busiest bucket; the knee was not reached: every bucket met the SLO",
                         Basis("black_box", "lower bound: the busiest bucket, every bucket within the SLO", "low"),
                         best.p95_max_ms)
        ramped = ramp.capacity_per_instance_rps if ramp is not None and measured is not None else None
        if ramped is not None and measured is not None and ramped > bound.rps:
            return Capacity(ramped, "lower_bound",
                            f"capacity run {_run_id(inputs)} reached {measured.offered_rps:.1f} req/s with "
                            f"{ramp.instances if ramp else 1} instance(s) and every step met the SLO",
                            Basis("black_box", "lower bound: the highest step of a capacity run that never broke",
                                  "low"), measured.p95_ms)
        return bound
    return None


def _run_id(inputs: RunInputs) -> str:
    return inputs.ramps_run.path.name if inputs.ramps_run is not None else inputs.run_id
