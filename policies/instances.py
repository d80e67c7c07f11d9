"""How many instances a service needs: the arithmetic autoscaling and `INSTANCES` are sized by.

`size_instances(peak_rps, capacity_rps, ...)` is pure: from the plan's peak, the capacity
one instance sustains within the SLO, and the database's connection budget, it gives

- `needed`: the instances that carry the peak, each at the target utilisation
  (`ceil(peak / (capacity x utilisation))`); what `apply --env-file` writes as INSTANCES;
- `min_instances = ceil(needed / 2)` (half of it kept warm) and
  `max_instances = needed + ceil(needed / 2)` (room above the peak);
- `target_rps`: the per-instance load target tracking holds each instance to.

A lower bound (the knee was never reached: every load measured met the SLO) proves only
that one instance carries `capacity_rps`; the true capacity is higher by an unknown
amount. So nothing is added on top of it: the target is the lower bound itself, and
`needed` is the fewest instances that, at the lower bound each (less LOWER_BOUND_SLACK of
measurement noise in the reading), carry the peak. A capacity run finds the knee.

The connection budget: every instance opens its own pool, so `max_instances x pool` must
stay within `db_max_connections` less the reserve kept for administration and migrations.
When even `needed` does not fit, `needed` is cut to what fits and the note says the peak
cannot be carried within the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from policies.pool import reserve

UTILISATION = 0.7          # target utilisation of a measured capacity (room for bursts and scale-out delay)
LOWER_BOUND_SLACK = 0.05   # a lower bound is one bucket's throughput: read it as carrying 5 % more


@dataclass(frozen=True)
class InstanceSizing:
    needed: int                # instances at the plan's peak (INSTANCES)
    min_instances: int
    max_instances: int
    target_rps: float          # per instance
    utilisation: float         # of the capacity, at the target (1 for a lower bound)
    db_limit: int | None       # most instances the connection budget allows (None: unknown)
    capped: bool               # the budget lowered max_instances (or needed)
    note: str                  # in words: the budget, when it binds

    @property
    def carries_rps(self) -> float:
        """What `needed` instances carry at the target: the plan's peak or more (unless capped)."""
        return self.needed * self.target_rps


def size_instances(peak_rps: float, capacity_rps: float, *, lower_bound: bool = False,
                   utilisation: float = UTILISATION, pool_per_instance: int | None = None,
                   db_max_connections: int | None = None) -> InstanceSizing:
    if capacity_rps <= 0 or peak_rps < 0:
        raise ValueError(f"capacity {capacity_rps!r} and peak {peak_rps!r} must be positive")
    if lower_bound:
        utilisation = 1.0
        needed = max(1, math.ceil(peak_rps / (capacity_rps * (1 + LOWER_BOUND_SLACK)) - 1e-9))
    else:
        needed = max(1, math.ceil(peak_rps / (capacity_rps * utilisation) - 1e-9))
    target = capacity_rps * utilisation
    min_i = max(1, math.ceil(needed / 2))
    max_i = needed + math.ceil(needed / 2)
    limit: int | None = None
    capped = False
    note = ""
    if db_max_connections and pool_per_instance:
        budget = db_max_connections - reserve(db_max_connections)
        limit = max(1, budget // pool_per_instance)
        if max_i > limit:
            capped = True
            max_i = limit
            note = (f"max_instances is capped at {limit} so that {limit} x {pool_per_instance} connections stay within "
                    f"the database's budget of {budget} ({db_max_connections} - {reserve(db_max_connections)} "
                    "reserved)")
            if limit < needed:
                note += (f"; that is below the {needed} instances the peak needs, so {limit} it is: add a connection "
                         "pooler or shorten transactions to carry the peak")
                needed = limit
            min_i = min(min_i, max_i)
    return InstanceSizing(needed=needed, min_instances=min_i, max_instances=max_i, target_rps=target,
                          utilisation=utilisation, db_limit=limit, capped=capped, note=note)
