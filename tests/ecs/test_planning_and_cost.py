"""Runner planning (`--runners auto`), the Fargate cost estimate, and parsing a task's output."""

from __future__ import annotations

import json
import math

import pytest

from core.errors import BadInput
from core.plan import Module, Plan, Slo, Stage, Target
from runners import capacity, cost
from runners.backends.ecs_planning import (
    STORE_REQUESTS_PER_VCPU_S,
    TEARDOWN_S,
    FleetTerms,
    check_stack_limits,
    check_store,
    fleet_estimate,
    module_load,
    module_tasks,
    plan_runners,
    size_fleet,
    task_lifetime_s,
)
from runners.backends.ecs_task import END_MARK, SUMMARY_MARK, parse_task_log
from runners.strategies import phases

VUS, RATE = 300, 200.0  # the defaults for a 1 vCPU / 2 GB task


def _module(**kw: object) -> Module:
    return Module.model_validate({"name": "m", "script": "m.js", **kw})


@pytest.mark.parametrize(("shape", "tasks"), [
    ({"vus": 1, "duration": "60s"}, 1),
    ({"vus": 300, "duration": "60s"}, 1),
    ({"vus": 301, "duration": "60s"}, 2),
    ({"vus": 1200, "duration": "60s"}, 4),                                  # the field report's ~1200 users
    ({"vus": 100, "stages": [{"duration": "1m", "target": 900}]}, 3),       # the peak counts, not the start
    ({"rate": 150, "duration": "60s"}, 1),                                  # 150 it/s, default 300 VUs
    ({"rate": 150, "max_vus": 500, "duration": "60s"}, 2),                  # VU-bound
    ({"rate": 450, "max_vus": 100, "duration": "60s"}, 3),                  # rate-bound
    ({"rate": 50, "max_vus": 1000, "stages": [{"duration": "1m", "target": 1000}]}, 5),
])
def test_tasks_per_module(shape: dict[str, object], tasks: int) -> None:
    assert module_tasks(_module(**shape), VUS, RATE) == tasks


def test_runners_auto_is_the_most_loaded_module() -> None:
    plan = Plan(name="p", target=Target(base_url="http://127.0.0.1:1", allow_hosts=["127.0.0.1"]),
                slo=Slo(p95_ms=500, max_error_rate=0.01),
                modules=[_module(vus=100, duration="60s"),
                         Module(name="profile", script="p.js", vus=1200, duration="60s"),
                         Module(name="jobs", script="j.js", rate=300, max_vus=200,
                                stages=[Stage(duration="30s", target=500)])])
    assert plan_runners(plan, VUS, RATE) == 4            # profile: 1200 / 300
    assert plan_runners(plan, 600, 400.0) == 2           # 2 vCPU tasks carry twice as much
    assert plan_runners(plan, 1000, 100.0) == 5          # jobs peaks at 500 it/s


def test_estimate_follows_fargate_billing() -> None:
    # 4 tasks of 1 vCPU / 2 GB for 90 s in us-east-1: per-second billing at list prices
    per_task_hour = 1 * 0.04048 + 2 * 0.004445
    assert cost.estimate(4, 1, 2, 90, "us-east-1", spot=False) == pytest.approx(4 * 90 / 3600 * per_task_hour)
    # a 10 s task is billed the one-minute minimum; 90.2 s rounds up to 91 s
    assert cost.estimate(1, 1, 2, 10, "us-east-1", spot=False) == pytest.approx(60 / 3600 * per_task_hour)
    assert cost.billed_seconds(90.2) == 91
    # Spot: assumed 50 % off on-demand
    assert cost.estimate(4, 1, 2, 90, "us-east-1", spot=True) == pytest.approx(
        cost.estimate(4, 1, 2, 90, "us-east-1", spot=False) / 2)
    # regions differ; an unknown region is priced at the table's highest, and says so
    assert cost.estimate(1, 1, 2, 3600, "sa-east-1", spot=False) == pytest.approx(0.0696 + 2 * 0.0076)
    unknown = cost.price("xx-nowhere-9", spot=False)
    assert (unknown.vcpu_hour, unknown.gb_hour) == cost.ON_DEMAND["sa-east-1"]
    assert "xx-nowhere-9" in unknown.describe() and "highest" in unknown.describe()
    assert cost.PRICES_AS_OF in cost.price("us-east-1", spot=False).describe()
    assert cost.estimate(0, 1, 2, 90, "us-east-1", spot=False) == 0.0


def test_max_cost_refuses_above_the_estimate() -> None:
    cost.check_max_cost(0.50, 0.50, "how")   # at the limit: allowed
    cost.check_max_cost(9.99, None, "how")   # no limit
    with pytest.raises(BadInput) as err:
        cost.check_max_cost(0.51, 0.50, "4 tasks x ...")
    assert err.value.exit_code == 2
    assert "$0.5100" in err.value.message and "--max-cost $0.5000" in err.value.message
    assert "4 tasks x ..." in err.value.message


def _summary_lines(summary: dict[str, object], code: int = 0) -> list[str]:
    """What the task wrapper prints after k6 (awk numbers each line of the summary file)."""
    body = json.dumps(summary, indent=4).splitlines()
    return [f"{SUMMARY_MARK} {i} {line}" for i, line in enumerate(body, 1)] + [f"{END_MARK} {code} {len(body)}"]


def test_task_output_parsing() -> None:
    summary = {"metrics": {"http_reqs": {"count": 42}}, "root_group": {"name": ""}}
    lines = ["LBSTART launched 1700000000", "LBSTART ready 1700000003", "LBSTART go 1700000010.004211000",
             'time="..." level=warning msg="something"', *_summary_lines(summary, 0)]
    log = parse_task_log(lines)
    assert log.summary == summary and log.exit_code == 0 and log.ended
    assert log.ready_at == 1700000003 and log.go_at == pytest.approx(1700000010.004211)
    assert log.tail() == ['time="..." level=warning msg="something"']
    # CloudWatch may hand lines back out of order: the numbering restores the file
    shuffled = [*lines[:4], *reversed(_summary_lines(summary, 99))]
    assert parse_task_log(shuffled).summary == summary and parse_task_log(shuffled).exit_code == 99
    # a summary with a line missing is no summary (the run must not trust it)
    partial = [ln for ln in lines if not ln.startswith(f"{SUMMARY_MARK} 2 ")]
    assert parse_task_log(partial).summary is None
    # busybox date without %N support still yields the second
    assert parse_task_log(["LBSTART go 1700000010.%N"]).go_at == 1700000010
    # no end line: the wrapper was killed; no summary, no code
    cut = parse_task_log(lines[:-1])
    assert cut.summary is None and cut.exit_code is None and not cut.ended


def test_cost_module_states_the_estimate() -> None:
    text = cost.price("eu-west-1", spot=True).describe()
    assert "Spot" in text and "eu-west-1" in text and cost.PRICING_URL in text


def _plan(*modules: Module) -> Plan:
    return Plan(name="p", target=Target(base_url="http://127.0.0.1:1", allow_hosts=["127.0.0.1"]),
                slo=Slo(p95_ms=500, max_error_rate=0.01), modules=list(modules),
                strategies={"hybrid": {"groups": [["a", "b"], ["c"]]}})  # type: ignore[arg-type]


@pytest.mark.parametrize(("strategy", "runners", "runner_count", "refused"), [
    ("parallel", 2, 6, False),     # 3 modules x 2 = 6 tasks at once
    ("parallel", 2, 5, True),
    ("hybrid", 2, 4, False),       # at most 2 modules at once
    ("hybrid", 3, 5, True),
    ("sequential", 5, 5, False),   # one module at a time
    ("parallel", 64, None, False),  # a stack without the output: not checked
])
def test_tasks_at_once_stay_within_runner_count(strategy: str, runners: int, runner_count: int | None,
                                                refused: bool) -> None:
    plan = _plan(*(Module(name=n, script=f"{n}.js", vus=10, duration="60s") for n in "abc"))
    check = lambda: check_stack_limits(plan, phases(plan, strategy), runners, 150, runner_count, None)  # noqa: E731
    if not refused:
        check()
        return
    with pytest.raises(BadInput) as err:
        check()
    at_once = 3 * runners if strategy == "parallel" else 2 * runners
    assert "loadbearing:runnerCount" in err.value.message and f"= {at_once} Fargate tasks at once" in err.value.message
    assert f"the stack allows {runner_count}" in err.value.message


def test_a_task_may_not_outlive_the_cost_guards_age_limit() -> None:
    from runners.k6 import parse_graceful_stop_s

    plan = _plan(Module(name="a", script="a.js", vus=1, duration="58m"))
    life = 150 + 58 * 60 + parse_graceful_stop_s() + TEARDOWN_S
    check_stack_limits(plan, phases(plan, "sequential"), 1, 150, None, math.ceil(life / 60))
    with pytest.raises(BadInput) as err:
        check_stack_limits(plan, phases(plan, "sequential"), 1, 150, None, 60)
    assert f"would live {life / 60:.1f} min" in err.value.message
    assert "loadbearing:runnerMaxMinutes" in err.value.message and "after 60 min" in err.value.message


@pytest.mark.parametrize(("shape", "requests", "peak", "assumed"), [
    ({"rate": 100, "duration": "60s"}, 6000, 100, False),
    ({"rate": 10, "stages": [{"duration": "60s", "target": 110}, {"duration": "30s", "target": 110}]},
     60 * 60 + 110 * 30, 110, False),                            # a linear ramp, then a plateau
    ({"vus": 50, "duration": "60s"}, 3000, 50, True),           # closed model: 1 request per VU per second
])
def test_module_load(shape: dict[str, object], requests: float, peak: float, assumed: bool) -> None:
    load = module_load(_module(**shape))
    assert (load.requests, load.peak_rps, load.assumed) == (pytest.approx(requests), pytest.approx(peak), assumed)


def _terms(**kw: object) -> FleetTerms:
    base: dict[str, object] = {"vus_per_task": 300, "rate_per_task": 200.0, "vcpu": 1.0, "memory_gb": 2.0,
                               "region": "us-east-1", "spot": False, "start_delay_s": 150.0}
    return FleetTerms(**{**base, **kw})  # type: ignore[arg-type]


def test_the_estimate_counts_nat_data_or_public_addresses() -> None:
    """100 req/s for 10 minutes of 50 kB responses through the NAT: 3 GB at $0.045; with public
    IPs instead, no NAT data, one IPv4 address per task-hour."""
    plan = _plan(Module(name="a", script="a.js", rate=100, duration="10m", response_bytes=50_000))
    fargate_only = cost.estimate(2, 1, 2, cost.billed_seconds(task_lifetime_s(plan.modules[0], 150)), "us-east-1",
                                 False)
    nat = fleet_estimate(_terms(), plan, 2)
    assert nat.total_usd == pytest.approx(fargate_only + 3.0 * 0.045)
    assert "NAT gateway data: 3.000 GB x $0.045/GB = $0.1350" in nat.text
    assert "assumed" not in nat.text
    public = fleet_estimate(_terms(public_ip=True), plan, 2)
    task_hours = 2 * cost.billed_seconds(task_lifetime_s(plan.modules[0], 150)) / 3600
    assert public.total_usd == pytest.approx(fargate_only + task_hours * 0.005)
    assert "no NAT gateway data charge" in public.text
    # undeclared sizes and closed-model rates are assumed, and the estimate says so
    guess = fleet_estimate(_terms(region="eu-west-1"), _plan(Module(name="b", script="b.js", vus=10, duration="100s")), 1)
    assert "16 KiB per response for b (set response_bytes in the plan)" in guess.text
    assert "closed-model modules at 1 request per VU per second" in guess.text
    assert "no verified NAT price for eu-west-1" in guess.text


def test_a_plan_beyond_the_stores_ingest_is_refused_naming_its_size(capsys: pytest.CaptureFixture[str]) -> None:
    budget = STORE_REQUESTS_PER_VCPU_S   # requests/s one vCPU of InfluxDB is planned to ingest
    plan = _plan(*(Module(name=n, script=f"{n}.js", rate=budget * 0.4, duration="60s") for n in "abc"))
    check_store(plan, phases(plan, "sequential"), 1024, 4096)          # one module at a time: 40 %
    assert capsys.readouterr().err == ""
    check_store(plan, phases(plan, "hybrid"), 1024, 4096)              # a + b together: 80 %, warned
    assert "80% of it" in capsys.readouterr().err
    with pytest.raises(BadInput) as err:
        check_store(plan, phases(plan, "parallel"), 1024, 4096)        # 120 %
    message = err.value.message
    assert f"peaks at {budget * 1.2:,.0f} requests/s" in message
    assert "loadbearing:influxdbCpu / influxdbMemory" in message and "1 vCPU, 4096 MiB" in message
    assert "pulumi config set influxdbCpu 2048" in message and "influxdbMemory 4096" in message
    check_store(plan, phases(plan, "parallel"), 2048, 4096)
    check_store(plan, phases(plan, "parallel"), None, None)            # outputs without the size: not checked


def test_a_capacity_ramp_is_refused_by_the_fleet_planner() -> None:
    """A capacity run ramps until its knee: how long its tasks live and what they cost is not
    in the plan's durations the planner sizes from, so the ecs backend's plan_fleet refuses it
    (the controller asks every backend the same way and knows none of them)."""
    plan = _plan(Module(name="a", script="a.js", rate=10, duration="60s", service="api"))
    ramps = capacity.phases({"api": plan.modules}, parallel=False)
    assert all(p.ramp for p in ramps) and not any(p.ramp for p in phases(plan, "parallel"))
    size_fleet(_terms(), plan, phases(plan, "parallel"), 1)
    with pytest.raises(BadInput) as err:
        size_fleet(_terms(), plan, ramps, 1)
    assert "run capacity" in err.value.message and "--backend process or docker" in err.value.message
