"""Runner planning for the `ecs` backend: how many Fargate tasks, and their cost, before launch.

A task of 1 vCPU carries VUS_PER_VCPU (300) VUs or RATE_PER_VCPU (200) iterations/s, scaled
by the task's vCPU; `LOADBEARING_ECS_VUS_PER_TASK` / `_RATE_PER_TASK` override. `--runners auto` is the largest
`module_tasks` over the plan's modules (`plan_runners`). `size_fleet` (the backend's
`plan_fleet` hook, called once by the controller's `prepare` before anything starts) resolves
it, refuses a fleet the stack's cost guard would cut short (`check_stack_limits`:
`runner_count` tasks at once, `runner_max_minutes` per task) or a load its InfluxDB cannot
ingest (`check_store`), prints the cost estimate (`fleet_estimate`: Fargate time, and NAT
data or public IPv4 hours, priced by `runners.cost`) and refuses above `--max-cost` (exit 2).
`FleetTerms` is what the backend knows that the sizing needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.console import console
from core.durations import parse_duration
from core.errors import BadInput
from core.plan import Module, Plan
from runners import cost, k6
from runners.backends import Fleet
from runners.fleet import MAX_RUNNERS
from runners.strategies import Phase

TEARDOWN_S = 20.0                # task stop and log flush, for the cost estimate
VUS_PER_VCPU = 300
RATE_PER_VCPU = 200.0

# What a module's load means in requests when the plan cannot say: one request per iteration,
# and for a closed model (VUs) one iteration per VU per second (a request plus think time).
ASSUMED_ITERATIONS_PER_VU_S = 1.0
DEFAULT_RESPONSE_BYTES = 16 * 1024   # per response, when the module declares no response_bytes

# The stack's InfluxDB ingests k6's samples: 13.0 points per request with loadbearing's k6 output
# settings. influxd's CPU per 1000 requests, from bench/fidelity.py on this project's 2-core AMD
# EPYC machine (InfluxDB 1.6.7, k6 1.1.0): 0.0428 CPU-s on a quiet machine (`make bench`,
# BENCHMARKS.md), 0.0625 CPU-s measured again for this planner on 2026-12-01 with the machine
# shared (load average 2.9; 582,566 points for 44,810 requests, none refused). The planner takes
# the higher, and since a Fargate vCPU is a hyperthread and the store also answers the
# controller's and Grafana's queries and compacts, counts on half of the rate that gives.
POINTS_PER_REQUEST = 13.0
INFLUXD_CPU_S_PER_1K_REQUESTS = 0.0625
STORE_HEADROOM = 0.5
STORE_REQUESTS_PER_VCPU_S = STORE_HEADROOM * 1000 / INFLUXD_CPU_S_PER_1K_REQUESTS   # 8,000
STORE_WARN = 0.7                    # warn above this share of the store's budget


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
    public_ip: bool = False                  # stack output assign_public_ip: no NAT gateway in the path
    influxdb_cpu: int | None = None          # stack outputs: the store's Fargate size (CPU units, MiB)
    influxdb_memory: int | None = None


@dataclass(frozen=True)
class ModuleLoad:
    """A module's requests over its run and at its peak, and whether they rest on ASSUMED_* figures."""

    requests: float
    peak_rps: float
    assumed: bool


def module_load(module: Module) -> ModuleLoad:
    """Requests a module sends (the plan's rate over its duration and stages, linear ramps)."""
    if module.rate is not None:
        start, levels, assumed = module.rate, [module.rate], False
    else:
        assert module.vus is not None
        start, levels, assumed = module.vus * ASSUMED_ITERATIONS_PER_VU_S, [module.vus * ASSUMED_ITERATIONS_PER_VU_S], True
    if not module.stages:
        return ModuleLoad(start * module.duration_s, start, assumed)
    total, level = 0.0, start
    scale = 1.0 if module.rate is not None else ASSUMED_ITERATIONS_PER_VU_S
    for stage in module.stages:
        target = stage.target * scale
        total += (level + target) / 2 * parse_duration(stage.duration)
        levels.append(target)
        level = target
    return ModuleLoad(total, max(levels), assumed)


def check_store(plan: Plan, plan_phases: list[Phase], influxdb_cpu: int | None, influxdb_memory: int | None) -> None:
    """Refuse (BadInput) a plan whose peak samples/s exceed what the stack's InfluxDB ingests;
    warn above STORE_WARN of it. The load of a phase is the sum of its modules' peaks."""
    if influxdb_cpu is None:
        return
    budget = influxdb_cpu / 1024 * STORE_REQUESTS_PER_VCPU_S
    for phase in plan_phases:
        loads = [module_load(plan.module(n)) for n in phase.modules]
        peak = sum(m.peak_rps for m in loads)
        assumed = " (closed-model modules counted at 1 request per VU per second)" if any(
            m.assumed for m in loads) else ""
        what = (f"phase {phase.name} peaks at {peak:,.0f} requests/s{assumed} = {peak * POINTS_PER_REQUEST:,.0f} "
                f"InfluxDB points/s; the stack's InfluxDB ({influxdb_cpu / 1024:g} vCPU, {influxdb_memory} MiB: "
                f"loadbearing:influxdbCpu / influxdbMemory) ingests about {budget * POINTS_PER_REQUEST:,.0f}")
        if peak > budget:
            cpu = next((c for c in (512, 1024, 2048, 4096, 8192, 16384)
                        if c > influxdb_cpu and c / 1024 * STORE_REQUESTS_PER_VCPU_S >= peak), 16384)
            memory = max(influxdb_memory or 0, cpu * 2)   # Fargate's smallest memory for that CPU is twice it
            raise BadInput(f"{what}: samples would be refused or late, and the run marked metrics_incomplete. "
                           f"Give InfluxDB more CPU (`pulumi config set influxdbCpu {cpu}` and `pulumi config set "
                           f"influxdbMemory {memory}`, then `pulumi up`) or lower the rate")
        if peak > STORE_WARN * budget:
            console.print(f"[yellow]ecs: {what} ({peak / budget:.0%} of it); consider a bigger influxdbCpu[/]",
                          markup=True, highlight=False)


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
    """The cost of running every module of `plan` with `runners` tasks, and how it was computed:
    Fargate time, plus the data the runners pull through the NAT gateway (or their public IPs)."""
    graceful = k6.parse_graceful_stop_s()
    per_module = [(m.name, cost.billed_seconds(task_lifetime_s(m, terms.start_delay_s))) for m in plan.modules]
    fargate = sum(cost.estimate(runners, terms.vcpu, terms.memory_gb, s, terms.region, terms.spot)
                  for _, s in per_module)
    loads = {m.name: module_load(m) for m in plan.modules}
    undeclared = [m.name for m in plan.modules if m.response_bytes is None]
    through = sum(loads[m.name].requests * (m.response_bytes if m.response_bytes is not None
                                            else DEFAULT_RESPONSE_BYTES) for m in plan.modules)
    data = cost.transfer(public_ip=terms.public_ip, region=terms.region, bytes_through=through,
                         task_seconds=runners * sum(s for _, s in per_module))
    total = fargate + data.usd
    p = cost.price(terms.region, terms.spot)
    billed = ", ".join(f"{name} {s:.0f} s" for name, s in per_module)
    assumptions = []
    if any(load.assumed for load in loads.values()):
        assumptions.append("closed-model modules at 1 request per VU per second")
    if undeclared and not terms.public_ip:
        assumptions.append(f"{DEFAULT_RESPONSE_BYTES // 1024} KiB per response for {', '.join(undeclared)} "
                           "(set response_bytes in the plan)")
    text = (f"ecs: estimated cost ${total:.4f} (an estimate, not a bill) = Fargate ${fargate:.4f} + data "
            f"${data.usd:.4f};\n"
            f"  Fargate = {runners} task(s) per module x ({terms.vcpu:g} vCPU x ${p.vcpu_hour:.5f}/vCPU-h + "
            f"{terms.memory_gb:g} GB x ${p.gb_hour:.6f}/GB-h) x billed time per task ({billed});\n"
            f"  billed time = start delay {terms.start_delay_s:.0f} s + module duration + {graceful:.0f} s "
            f"graceful stop + {TEARDOWN_S:.0f} s teardown, at least {cost.MIN_BILLED_S:.0f} s;\n"
            f"  prices: {p.describe()};\n"
            f"  data: {data.text}"
            + (f"; assumed: {'; '.join(assumptions)}" if assumptions else "") + ";\n"
            "  not counted: CloudWatch Logs, S3 requests, the stack's standing cost (InfluxDB, Grafana, load "
            "balancer, NAT gateway hours)")
    return FleetEstimate(total_usd=total, text=text)


def size_fleet(terms: FleetTerms, plan: Plan, plan_phases: list[Phase], runners: int | None) -> Fleet:
    """Before anything starts (exit 2 on problems): resolve `--runners auto` (runners None), check
    the fleet against the stack's cost guard, print the cost estimate to stderr and refuse above
    `--max-cost`. Returns the runner count and the estimate. A capacity ramp is refused: its tasks
    live until each service's knee, which the plan's durations and rates cannot tell."""
    if any(phase.ramp for phase in plan_phases):
        raise BadInput("run capacity: --backend ecs sizes and prices its fleet from the plan's fixed durations; "
                       "run the capacity ramp with --backend process or docker")
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
    check_store(plan, plan_phases, terms.influxdb_cpu, terms.influxdb_memory)
    est = fleet_estimate(terms, plan, count)
    console.print(est.text, markup=False)
    cost.check_max_cost(est.total_usd, terms.max_cost, est.text)
    return Fleet(runners=count, estimate_usd=est.total_usd)
