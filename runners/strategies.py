"""The three strategies as phases: which modules run together, in which order.

- sequential: one module per phase, in plan order (optional recovery between).
- hybrid: one phase per group, groups in order, `recovery` between groups.
- parallel: one phase with every module.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.plan import Plan, check_strategy


@dataclass(frozen=True)
class Phase:
    """Modules that run together. `ramp`: a capacity run's stepped ramp (runners.capacity), which
    runs until each service's knee, so the plan's durations and rates do not say how long its
    runners live or how much load they send; a backend that sizes its fleet from them refuses it."""

    name: str
    modules: tuple[str, ...]
    recovery_before_s: float = 0.0
    ramp: bool = False


def phases(plan: Plan, strategy: str) -> list[Phase]:
    check_strategy(plan, strategy)
    names = [m.name for m in plan.modules]
    if strategy == "sequential":
        rec = plan.strategies.sequential.recovery_s
        return [Phase(f"sequential-{i + 1}-{n}", (n,), rec if i else 0.0) for i, n in enumerate(names)]
    if strategy == "hybrid":
        hybrid = plan.strategies.hybrid
        assert hybrid is not None
        return [Phase(f"hybrid-group-{i + 1}", tuple(g), hybrid.recovery_s if i else 0.0)
                for i, g in enumerate(hybrid.groups)]
    return [Phase("parallel", tuple(names))]
