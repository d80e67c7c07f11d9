"""Runner planning for the `ecs` backend: how many Fargate tasks, and their cost, before launch.

A task of 1 vCPU carries VUS_PER_VCPU (300) VUs or RATE_PER_VCPU (200) iterations/s, scaled
by the task's vCPU; `LOADBEARING_ECS_VUS_PER_TASK` / `_RATE_PER_TASK` override. `--runners auto` is the largest
`module_tasks` over the plan's modules (`plan_runners`). `size_fleet` (the backend's
`plan_fleet` hook, called once by the controller's `prepare` before anything starts) resolves
it, prints the cost estimate (`fleet_estimate`, priced by `runners.cost`) and refuses above
`--max-cost` (exit 2). `FleetTerms` is what the backend knows that the sizing needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.console import console
from core.errors import BadInput
from core.plan import Module, Plan
from runners import cost, k6
from runners.backends import Fleet
from runners.fleet import MAX_RUNNERS
from runners.strategies import Phase

TEARDOWN_S = 20.0                # task stop and log flush, for the cost estimate
VUS_PER_VCPU = 300
RATE_PER_VCPU = 200.0


@dataclass(frozen=True)
class FleetTerms:
    """What sizing and pricing a Fargate fleet needs to know of the stack and the task definition."""

    vus_per_task: int
    rate_per_task: float
    vcpu: float
    memory_gb: float
    region: str
    spot: bool
    start_delay_s: float
    max_cost: float | None = None
    runner_count: int | None = None          # stack output: tasks the cost guard allows at once
    runner_max_minutes: int | None = None    # stack output: the longest a task may live


def module_tasks(module: Module, vus_per_task: int, rate_per_task: float) -> int:
    """Fargate tasks one module needs so no task carries more than its capacity."""
    if module.rate is not None:
        peak = max([module.rate, *(s.target for s in module.stages or [])])
        vus = module.max_vus or k6.default_max_vus(module.rate)
        return max(1, math.ceil(peak / rate_per_task), math.ceil(vus / vus_per_task))
    assert module.vus is not None
    peak_vus = max([module.vus, *(int(s.target) for s in module.stages or [])])
    return max(1, math.ceil(peak_vus / vus_per_task))


def plan_runners(plan: Plan, vus_per_task: int, rate_per_task: float = RATE_PER_VCPU) -> int:
    """`--runners auto`: tasks per module so that the most loaded module fits (every module
    gets the same count, as the controller runs them)."""
    return max(module_tasks(m, vus_per_task, rate_per_task) for m in plan.modules)


def task_lifetime_s(module: Module, start_delay_s: float) -> float:
    """How long a runner task of `module` lives: launch to the common start, the scenario,
    k6's graceful stop and the teardown (what the cost guard's age limit is measured against)."""
    return start_delay_s + module.duration_s + k6.parse_graceful_stop_s() + TEARDOWN_S


def check_stack_limits(plan: Plan, plan_phases: list[Phase], runners: int, start_delay_s: float,
                       runner_count: int | None, max_minutes: int | None) -> None:
    """Refuse (BadInput, exit 2) a fleet the stack's cost guard would cut short: more runner tasks
    at once than `runner_count` (it stops the newest beyond it) or a task living longer than
    `max_minutes` (it stops older ones). Both are stack outputs; None skips the check."""
    for phase in plan_phases:
        at_once = len(phase.modules) * runners
        if runner_count is not None and at_once > runner_count:
            raise BadInput(
                f"phase {phase.name} runs {len(phase.modules)} module(s) x {runners} runner(s) = {at_once} Fargate "
                f"tasks at once; the stack allows {runner_count} (loadbearing:runnerCount, stack output "
                f"runner_count), and its cost guard stops the newest tasks beyond it. Raise it (`pulumi config set "
                f"runnerCount {at_once}` and `pulumi up`), use fewer runners, or bigger tasks (runnerCpu)")
        if max_minutes is None:
            continue
        for name in phase.modules:
            life = task_lifetime_s(plan.module(name), start_delay_s)
            if life > max_minutes * 60:
                raise BadInput(
                    f"module {name}'s runner tasks would live {life / 60:.1f} min (start delay {start_delay_s:.0f} s + "
                    f"{plan.module(name).duration_s:.0f} s of load + graceful stop and teardown); the stack's cost "
                    f"guard stops runner tasks after {max_minutes} min (loadbearing:runnerMaxMinutes, stack output "
                    f"runner_max_minutes). Raise it (`pulumi config set runnerMaxMinutes {math.ceil(life / 60) + 1}` "
                    "and `pulumi up`) or shorten the module")


@dataclass(frozen=True)
class FleetEstimate:
    """A fleet's estimated cost in USD and the explanation printed before launch."""

    total_usd: float
    text: str


def fleet_estimate(terms: FleetTerms, plan: Plan, runners: int) -> FleetEstimate:
    """The cost of running every module of `plan` with `runners` tasks, and how it was computed."""
    graceful = k6.parse_graceful_stop_s()
    per_module = [(m.name, cost.billed_seconds(task_lifetime_s(m, terms.start_delay_s))) for m in plan.modules]
    total = sum(cost.estimate(runners, terms.vcpu, terms.memory_gb, s, terms.region, terms.spot)
                for _, s in per_module)
    p = cost.price(terms.region, terms.spot)
    billed = ", ".join(f"{name} {s:.0f} s" for name, s in per_module)
    text = (f"ecs: estimated cost ${total:.4f} (an estimate, not a bill) = {runners} task(s) per module x "
            f"({terms.vcpu:g} vCPU x ${p.vcpu_hour:.5f}/vCPU-h + {terms.memory_gb:g} GB x "
            f"${p.gb_hour:.6f}/GB-h) x billed time per task ({billed});\n"
            f"  billed time = start delay {terms.start_delay_s:.0f} s + module duration + {graceful:.0f} s "
            f"graceful stop + {TEARDOWN_S:.0f} s teardown, at least {cost.MIN_BILLED_S:.0f} s;\n"
            f"  prices: {p.describe()};\n"
            "  not counted: data transfer, NAT gateway, public IPv4, CloudWatch Logs, S3, the InfluxDB host")
    return FleetEstimate(total_usd=total, text=text)


def size_fleet(terms: FleetTerms, plan: Plan, plan_phases: list[Phase], runners: int | None) -> Fleet:
    """Before anything starts (exit 2 on problems): resolve `--runners auto` (runners None), check
    the fleet against the stack's cost guard, print the cost estimate to stderr and refuse above
    `--max-cost`. Returns the runner count and the estimate."""
    needed = plan_runners(plan, terms.vus_per_task, terms.rate_per_task)
    count = runners or needed
    if runners is None and count > MAX_RUNNERS:
        raise BadInput(f"--runners auto: the plan needs {count} tasks per module at {terms.vus_per_task} VUs / "
                       f"{terms.rate_per_task:g} it/s per task, above the limit of {MAX_RUNNERS}; use bigger "
                       "tasks (runnerCpu/runnerMemory) or LOADBEARING_ECS_VUS_PER_TASK")
    if runners is None:
        console.print(f"ecs: --runners auto -> {count} task(s) per module (capacity per task: "
                      f"{terms.vus_per_task} VUs or {terms.rate_per_task:g} iterations/s)")
    elif count < needed:
        console.print(f"[yellow]ecs: {count} runner(s) per module is below the {needed} the plan needs at "
                      f"{terms.vus_per_task} VUs / {terms.rate_per_task:g} it/s per task; load generators "
                      "may saturate (use --runners auto)[/]")
    check_stack_limits(plan, plan_phases, count, terms.start_delay_s, terms.runner_count, terms.runner_max_minutes)
    est = fleet_estimate(terms, plan, count)
    console.print(est.text, markup=False)
    cost.check_max_cost(est.total_usd, terms.max_cost, est.text)
    return Fleet(runners=count, estimate_usd=est.total_usd)
