"""Changing `loadbearing:runnerCount` changes only what it should.

Runner tasks are started per run by the ecs backend, so the fleet size touches two
things: the cost guard's limit on concurrent runner tasks (`MAX_RUNNERS` of the
reaper Lambda) and the `runner_count` stack output. Same resources, same inputs
everywhere else: no task definition, network, InfluxDB or Grafana change.
"""

from __future__ import annotations

from typing import Any

import pulumi

from tests.infra.harness import ProgramRun, example_config, run_program


def normalized(value: Any) -> Any:
    """Inputs as comparable data (assets by their content, not their identity)."""
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {k: normalized(v) for k, v in value.assets.items()}}
    if isinstance(value, pulumi.FileAsset):
        return {"file": str(value.path)}
    if isinstance(value, pulumi.StringAsset):
        return {"text": value.text}
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalized(v) for v in value]
    return value


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two normalized values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


def _inputs(run: ProgramRun) -> dict[tuple[str, str], Any]:
    return {(r.type, r.name): normalized(r.inputs) for r in run.resources}


def test_runner_count_changes_only_the_cost_guard_limit_and_the_output(example_run: ProgramRun) -> None:
    config = example_config()
    assert config["loadbearing:runnerCount"] == 8
    config["loadbearing:runnerCount"] = 12
    bigger = run_program(config)

    before, after = _inputs(example_run), _inputs(bigger)
    assert set(before) == set(after), "runnerCount added or removed resources"
    changed = {key: differences(before[key], after[key]) for key in before if before[key] != after[key]}
    assert changed == {
        ("aws:lambda/function:Function", "cost-guard-reaper"): [".environment.variables.MAX_RUNNERS"],
    }
    reaper = bigger.named("cost-guard-reaper")
    assert reaper.inputs["environment"]["variables"]["MAX_RUNNERS"] == "12"

    changed_exports = {k for k in example_run.exports if example_run.exports[k] != bigger.exports[k]}
    assert changed_exports == {"runner_count"}
    assert bigger.exports["runner_count"] == 12


def test_runner_size_changes_only_the_runner_task_definition(example_run: ProgramRun) -> None:
    config = example_config()
    config["loadbearing:runnerCpu"] = 2048
    config["loadbearing:runnerMemory"] = 4096
    bigger = run_program(config)
    before, after = _inputs(example_run), _inputs(bigger)
    assert set(before) == set(after)
    changed = {key: differences(before[key], after[key]) for key in before if before[key] != after[key]}
    assert changed == {("aws:ecs/taskDefinition:TaskDefinition", "runners-task"): [".cpu", ".memory"]}
