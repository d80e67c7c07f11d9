"""k6 inside a runner task: the script sees BASE_URL and nothing else of the task's environment.

The task's environment carries the metrics store's credentials (K6_INFLUXDB_*), which k6's
InfluxDB output needs; a module's script must not be able to read them from `__ENV`.
LocalFargate runs the real task wrapper and k6 with the RunTask override's environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.influx import InfluxClient
from loadbearing.cli import main
from tests.ecs.local_fargate import LocalFargate
from tests.ecs.stack import EcsStack
from tests.fixtures.runs import write_plan
from tests.fixtures.target import Target

PASSWORD = "s3cret-influx-pw-4-env"

SCRIPT = """\
import http from 'k6/http';
const seen = (name) => encodeURIComponent(String(__ENV[name]));
export default function () {
  http.get(`${__ENV.BASE_URL}/env/${seen('K6_INFLUXDB_PASSWORD')}/${seen('K6_INFLUXDB_USERNAME')}/${seen('LB_ARCHIVE_URL')}`,
           { tags: { name: 'env' } });
}
"""


def test_a_script_cannot_read_the_stores_credentials(ecs_stack: EcsStack, influx: InfluxClient, target: Target,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADBEARING_INFLUX_USERNAME", "k6-user")
    monkeypatch.setenv("LOADBEARING_INFLUX_PASSWORD", PASSWORD)   # reaches the task's environment
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "env.js").write_text(SCRIPT)
    plan = write_plan(tmp_path, target.url, [{"name": "env", "script": "modules/env.js", "rate": 5, "max_vus": 1,
                                              "duration": "2s"}])
    with LocalFargate(ecs_stack, tmp_path / "fargate") as fargate:
        code = main(["run", "parallel", "--plan", str(plan), "--backend", "ecs", "--runners", "1",
                     "--stack-outputs", str(ecs_stack.outputs_path), "--influx-url", f"{influx.url}/{influx.db}",
                     "--out-dir", str(tmp_path / "runs")])
    out = capsys.readouterr()
    assert code == 0, out.err + json.dumps(fargate.outputs)[-2000:]
    (task,) = ecs_stack.tasks()
    env = {e["name"]: e["value"] for e in task["overrides"]["containerOverrides"][0]["environment"]}
    assert env["K6_INFLUXDB_PASSWORD"] == PASSWORD   # the task has it (k6's output uses it) ...
    assert target.seen("/env/undefined/undefined/undefined") > 0   # ... the script does not; BASE_URL works
    assert target.seen() == target.seen("/env/undefined/undefined/undefined")
    record = json.loads((Path(out.out.strip().splitlines()[-1]) / "run.json").read_text())
    assert record["metrics"]["complete"] is True   # the output still read its settings from the task
