"""The task's shell wrapper, run here with dash and GNU tools in place of the image's busybox.

It downloads the archive from moto's S3 through a presigned URL (loopback), holds k6
paused until the start time, and on SIGTERM (what ECS's stop_task sends to the
container) lets k6 stop gracefully and still prints the summary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.plan import Module
from core.state import free_port
from runners import k6
from runners.allowlist import k6_block_options
from runners.backends import RunnerSpec
from runners.backends.ecs_task import parse_task_log, task_k6_args, wrapper_script
from tests.ecs.stack import EcsStack
from tests.fixtures.runs import write_script
from tests.fixtures.target import Target


def test_sigterm_stops_k6_gracefully_and_the_summary_is_printed(ecs_stack: EcsStack, target: Target,
                                                                 tmp_path: Path) -> None:
    module = Module(name="api", script="modules/api.js", rate=20, max_vus=2, duration="30s")
    script = tmp_path / write_script(tmp_path, "api")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(k6.config(module, k6_block_options(["127.0.0.1"]))))
    archive = tmp_path / "api.tar"
    subprocess.run([k6.k6_binary(), "archive", "--config", str(cfg), "-O", str(archive), str(script)], check=True,
                   capture_output=True, cwd=tmp_path)
    ecs_stack.s3.put_object(Bucket=ecs_stack.bucket, Key="runs/r/api.tar", Body=archive.read_bytes())
    url = ecs_stack.s3.generate_presigned_url("get_object", Params={"Bucket": ecs_stack.bucket,
                                                                    "Key": "runs/r/api.tar"}, ExpiresIn=600)
    spec = RunnerSpec(run_id="r", module="api", service="default", index=0, count=1, script=script, config={},
                      tags={"testid": "r", "runner": "api-0"}, env={"BASE_URL": target.url})
    start_at = int(time.time()) + 5
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "K6_NO_USAGE_REPORT": "true", "LB_ARCHIVE_URL": url,
           "LB_START_AT": str(start_at), "LB_K6_API": f"127.0.0.1:{free_port()}", "LB_WORK_DIR": str(tmp_path / "w")}
    proc = subprocess.Popen(["sh", "-c", wrapper_script(task_k6_args(spec, None))], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while time.time() < start_at + 2 and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[0]
        assert target.seen() > 0  # released at the start time, k6 is sending load
        proc.send_signal(signal.SIGTERM)  # to the wrapper (PID 1 in the task), as ECS does
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = parse_task_log(out.splitlines())
    assert log.ended and log.summary is not None, out
    assert log.summary["metrics"]["http_reqs"]["count"] > 0
    assert log.exit_code == proc.returncode, out
    assert log.ready_at is not None and log.ready_at <= start_at  # initialised before the start ...
    assert log.go_at is not None and log.go_at >= start_at        # ... and not released before it
    assert os.path.exists(tmp_path / "w" / "archive.tar")
