"""Capacity per instance: the one number autoscaling is sized from, and where it came from.

`capacity_per_instance(...)` returns a `Capacity` (requests/s one instance sustains,
its kind, the evidence path) or None, from the best evidence the run has:

1. `pool_model`: the pool policy recommends a pool (applied with the autoscaling
   settings): the highest rate at which that pool meets its wait target (Erlang C).
2. `plateau`: the service saturated: its goodput at the plateau (successful responses
   per second; `black_box`), per instance. This is what a limit of workers, threads or
   CPU allows, and the only honest figure for a service in trouble.
3. `knee`: some buckets met the SLO and some did not: the highest throughput among
   those that met it (errors within budget, no dropped iteration).
4. `lower_bound`: every bucket met the SLO: the highest throughput seen, a lower bound
   (the knee was not reached).

A capacity run (stepped arrival rate until the knee) adds a measured knee as a new
kind ahead of these; keep this function the one place that decides.
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

CapacityKind = Literal["pool_model", "plateau", "knee", "lower_bound"]


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
    if plateau is not None and plateau.throughput > 0:
        return Capacity(plateau.throughput / instances, "plateau",
                        "goodput plateau: successful responses per second while saturated",
                        Basis("black_box", "goodput plateau (k6's successful responses per second)", "medium"))
    if good:
        best = max(good, key=lambda b: (b.throughput, b.t_ms))
        if len(good) < len(buckets):
            return Capacity(best.throughput / instances, "knee", "knee",
                            Basis("black_box", "knee: the busiest bucket within the SLO", "medium"), best.p95_max_ms)
        return Capacity(best.throughput / instances, "lower_bound",
                        "lower bound (the knee was not reached: every bucket met the SLO)",
                        Basis("black_box", "lower bound: the busiest bucket, every bucket within the SLO", "low"),
                        best.p95_max_ms)
    return None
