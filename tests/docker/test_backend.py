"""The docker backend against a real private dockerd: k6 containers on the host network
deliver the plan's load, tagged per runner; crashes and Ctrl-C end the run with exit 4;
no container survives a run, and stale ones are removed by the next `stack status`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import measurements as names
from core.influx import InfluxClient, quote_literal
from runners.images import k6_version
from runners.influxd import Influxd
from tests.fixtures.dockerd import PrivateDockerd
from tests.fixtures.runs import CliResult, cli_env, run_cli, write_plan
from tests.fixtures.target import Target

RUNNER = {"label": "loadbearing.role=runner"}


def _env(tmp_path: Path, dockerd: PrivateDockerd) -> dict[str, str]:
    return cli_env(tmp_path / "state", **dockerd.env())


def _runners(dockerd: PrivateDockerd) -> list[str]:
    return [c.name for c in dockerd.client.containers.list(all=True, filters=RUNNER)]


def _run(tmp_path: Path, plan: Path, backend: str, influxd: Influxd, influx: InfluxClient,
         env: dict[str, str], out: str) -> CliResult:
    return run_cli(["run", "parallel", "--plan", str(plan), "--backend", backend, "--runners", "2",
                    "--influx-url", f"{influxd.url}/{influx.db}", "--out-dir", str(tmp_path / out)], env)


def test_two_modules_two_containers_each_deliver_the_plan(tmp_path: Path, dockerd: PrivateDockerd,
                                                          influxd: Influxd, influx: InfluxClient,
                                                          target: Target) -> None:
    rate, seconds = 25, 8
    plan = write_plan(tmp_path, target.url, [{"name": n, "rate": rate, "duration": f"{seconds}s", "max_vus": 10}
                                             for n in ("alpha", "beta")])
    res = _run(tmp_path, plan, "docker", influxd, influx, _env(tmp_path, dockerd), "runs")
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["status"] == "passed"
    assert rec["backend"] == "docker"
    expected = rate * seconds
    for name in ("alpha", "beta"):
        # the target saw the plan's arrival rate from each module
        assert abs(target.seen(f"/{name}") - expected) <= 0.05 * expected, (name, target.seen(f"/{name}"))
        mod = next(m for m in rec["modules"] if m["name"] == name)
        assert mod["exit_codes"] == [0, 0]
        assert mod["requests"] == target.seen(f"/{name}")
        for i in range(2):
            assert (res.run_dir / "k6" / f"{name}-{i}.summary.json").is_file()
            assert (res.run_dir / "k6" / f"{name}-{i}.log").is_file()
    # every sample is tagged with its runner, and each runner did half of its module
    per_runner = {s["tags"]["runner"]: s["values"][0][1] for s in influx.series(
        f'SELECT count("value") FROM "http_reqs" WHERE "testid" = {quote_literal(rec["testid"])} GROUP BY "runner"')}
    assert sorted(per_runner) == ["alpha-0", "alpha-1", "beta-0", "beta-1"]
    for runner, n in per_runner.items():
        assert abs(n - expected / 2) <= 0.05 * expected / 2 + 1, (runner, n)
    # each container's k6 was sampled for CPU once a second, as the process backend's are: the
    # evidence the validity policy needs to tell a saturated generator from a slow target
    cpu = {s["tags"]["runner"]: s["values"][0][1:] for s in influx.series(
        f'SELECT count("{names.CPU_PERCENT}"), max("{names.CPU_PERCENT}") FROM "{names.RUNNER_CPU}" '
        f'WHERE "{names.TESTID}" = {quote_literal(rec["testid"])} GROUP BY "{names.RUNNER}"')}
    assert sorted(cpu) == ["alpha-0", "alpha-1", "beta-0", "beta-1"], cpu
    assert all(count >= seconds // 2 for count, _ in cpu.values()), cpu
    assert max(peak for _, peak in cpu.values()) > 0, cpu
    assert _runners(dockerd) == []
    # offline, the runners ran the wheel's own k6 from a local scratch image
    assert dockerd.client.images.get(f"loadbearing/k6:{k6_version()}-local").labels["loadbearing.image"] == "k6"


def test_no_engine_exits_4_before_any_load(tmp_path: Path, influxd: Influxd, influx: InfluxClient,
                                           target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "alpha", "rate": 10, "duration": "2s"}])
    env = cli_env(tmp_path / "state", DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    res = run_cli(["run", "parallel", "--plan", str(plan), "--backend", "docker", "--influx-url",
                   f"{influxd.url}/{influx.db}", "--out-dir", str(tmp_path / "runs")], env)
    assert res.code == 4
    assert "no Docker engine answers" in res.stderr and "no-engine.sock" in res.stderr
    assert "Traceback" not in res.stderr
    assert target.seen() == 0


def test_process_and_docker_backends_store_the_same_requests(tmp_path: Path, dockerd: PrivateDockerd,
                                                             influxd: Influxd, influx: InfluxClient,
                                                             target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": n, "rate": 20, "duration": "5s", "max_vus": 10}
                                             for n in ("alpha", "beta")])
    stored = {}
    for backend in ("process", "docker"):
        res = _run(tmp_path, plan, backend, influxd, influx, _env(tmp_path, dockerd), f"runs-{backend}")
        assert res.code == 0, res.stderr
        testid = quote_literal(res.record()["testid"])
        stored[backend] = influx.series(f'SELECT count("value") FROM "http_reqs" WHERE "testid" = {testid}'
                                        )[0]["values"][0][1]
    assert stored["process"] > 0
    assert abs(stored["docker"] - stored["process"]) <= 0.05 * stored["process"], stored
    assert _runners(dockerd) == []


def _start_long_run(tmp_path: Path, dockerd: PrivateDockerd, influxd: Influxd, influx: InfluxClient,
                    target: Target) -> tuple[subprocess.Popen[str], Path]:
    plan = write_plan(tmp_path, target.url, [{"name": n, "rate": 10, "duration": "60s", "max_vus": 5}
                                             for n in ("alpha", "beta")])
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "loadbearing.cli", "run", "parallel", "--plan", str(plan),
                             "--backend", "docker", "--runners", "2", "--influx-url", f"{influxd.url}/{influx.db}",
                             "--out-dir", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(tmp_path, dockerd))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if target.seen("/alpha") >= 5 and target.seen("/beta") >= 5:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the run did not start sending load: {err[-2000:]}")
    return proc, next(out.glob("*/run.json")).parent


def test_a_killed_runner_container_ends_the_run_with_exit_4(tmp_path: Path, dockerd: PrivateDockerd,
                                                            influxd: Influxd, influx: InfluxClient,
                                                            target: Target) -> None:
    proc, run_dir = _start_long_run(tmp_path, dockerd, influxd, influx, target)
    victims = dockerd.client.containers.list(filters={"label": "loadbearing.runner=beta-1"})
    assert len(victims) == 1 and len(_runners(dockerd)) == 4
    victims[0].kill()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "error"
    assert any("beta-1" in e and "SIGKILL" in e for e in rec["errors"]), rec["errors"]
    assert "beta-1" in err
    assert _runners(dockerd) == []
    assert not (run_dir / "INCOMPLETE").exists()


def test_ctrl_c_stops_and_removes_every_container(tmp_path: Path, dockerd: PrivateDockerd, influxd: Influxd,
                                                   influx: InfluxClient, target: Target) -> None:
    proc, run_dir = _start_long_run(tmp_path, dockerd, influxd, influx, target)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "aborted"
    # k6 got SIGINT inside its container and still wrote its summary
    for name in ("alpha-0", "alpha-1", "beta-0", "beta-1"):
        assert (run_dir / "k6" / f"{name}.summary.json").is_file(), name
    assert _runners(dockerd) == []
    seen = target.seen()
    time.sleep(1.0)
    assert target.seen() == seen  # no load after the run ended


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stack_status_removes_containers_of_a_dead_controller(tmp_path: Path, dockerd: PrivateDockerd,
                                                              docker_env: dict[str, str],
                                                              target: Target) -> None:
    from core.plan import Slo
    from core.rundir import RunDir, RunRecord
    from core.state import pid_dir
    from runners.backends import RunnerSpec
    from runners.backends.docker import DockerBackend

    script = tmp_path / "modules" / "a.js"
    script.parent.mkdir()
    script.write_text("import http from 'k6/http';\nexport default function () { http.get(__ENV.BASE_URL); }\n")
    config = {"scenarios": {"load": {"executor": "constant-vus", "vus": 1, "duration": "60s"}}}
    backend = DockerBackend()
    runners = []
    try:
        for run_id, owner in (("dead-run", _dead_pid()), ("live-run", os.getpid())):
            run_dir = RunDir.create(tmp_path, run_id)  # INCOMPLETE until the run ends
            run_dir.write_record(RunRecord(run_id=run_id, testid=run_id, strategy="parallel", plan="plan.toml",
                                           slo=Slo(p95_ms=500, max_error_rate=0.01)))
            pid_dir(run_id).mkdir(parents=True, exist_ok=True)
            (pid_dir(run_id) / "controller.pid").write_text(str(owner))
            spec = RunnerSpec(run_id=run_id, module="a", service="s", index=0, count=1, script=script,
                              config=config, tags={"testid": run_id, "runner": "a-0"},
                              env={"BASE_URL": target.url}, run_dir=run_dir)
            runners += backend.initialize([spec])  # paused: waits for a start that never comes
        assert len(_runners(dockerd)) == 2
        res = run_cli(["stack", "status"], docker_env)
        assert "removed stale runner container" in res.stderr and "dead-run" in res.stderr, res.stderr
        assert "live-run" not in res.stderr
        left = dockerd.client.containers.list(all=True, filters=RUNNER)
        assert [c.labels["loadbearing.run_id"] for c in left] == ["live-run"]
        rec = json.loads((tmp_path / "dead-run" / "run.json").read_text())
        assert rec["status"] == "error"
        assert json.loads((tmp_path / "live-run" / "run.json").read_text())["status"] == "running"
        assert target.seen() == 0  # paused runners sent nothing
    finally:
        backend.stop(runners, grace_s=2.0)
    assert _runners(dockerd) == []
