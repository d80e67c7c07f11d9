"""`loadbearing apply`: Pulumi stack config and env files get exactly the recommended values."""

from __future__ import annotations

import json
from pathlib import Path

from ruamel.yaml import YAML

from tests.fixtures.runs import run_cli

STACK = """\
# Production-like test stack. Owned by the platform team.
config:
  aws:region: eu-west-1   # keep in sync with the VPC
  loadbearing:grafanaAdminPassword:
    secure: AAABAJk1c2VjcmV0LWJ5dGVzLWtlcHQtYXMtdGhleS1hcmU=
  loadbearing:targets:
    # profile-api: the one that spiked to 17 s
    profile-api:
      ecs_service: profile-svc
      db_pool_size: 2  # set by hand in 2024
    core-api:
      ecs_service: core-svc
      cache_ttl_s: 0
      alb_resource_label: app/shop/50dc6c495c0c9188/targetgroup/core/943f017f100becff
"""
LABEL = "app/shop/50dc6c495c0c9188/targetgroup/core/943f017f100becff"

DOC = {
    "run_id": "parallel-x", "valid": True, "invalid_reasons": [], "findings": [], "endpoints": [],
    "recommendations": [
        {"kind": "db_pool", "service": "profile-api", "current": 2, "recommended": 9, "reason": "r",
         "evidence": {}, "predicted": {}},
        {"kind": "cache", "service": "profile-api", "endpoint": "profile_get", "ttl_s": 30,
         "expected_hit_ratio": 0.8, "reason": "r"},
        {"kind": "autoscaling", "service": "core-api", "min_instances": 2, "max_instances": 6,
         "metric": "ALBRequestCountPerTarget", "target_value": 1200, "scale_out_cooldown_s": 60,
         "scale_in_cooldown_s": 300, "reason": "r"},
    ],
}


def _run_dir(tmp_path: Path, doc: dict) -> Path:  # type: ignore[type-arg]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recommendations.json").write_text(json.dumps(doc))
    return run_dir


def test_apply_stack_keeps_comments_and_secrets_and_writes_exact_values(tmp_path: Path,
                                                                        lb_env: dict[str, str]) -> None:
    run_dir = _run_dir(tmp_path, DOC)
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(STACK)
    res = run_cli(["apply", str(run_dir), "--stack", "dev", "--project-dir", str(tmp_path)], lb_env)
    assert res.code == 0, res.stderr
    assert res.stdout.strip() == str(stack)
    text = stack.read_text()
    # comments and the secure value, byte for byte
    for kept in ("# Production-like test stack. Owned by the platform team.",
                 "aws:region: eu-west-1   # keep in sync with the VPC",
                 "    secure: AAABAJk1c2VjcmV0LWJ5dGVzLWtlcHQtYXMtdGhleS1hcmU=",
                 "    # profile-api: the one that spiked to 17 s",
                 "      ecs_service: profile-svc"):
        assert kept in text
    targets = YAML(typ="safe").load(text)["config"]["loadbearing:targets"]
    assert targets["profile-api"] == {"ecs_service": "profile-svc", "db_pool_size": 9, "cache_ttl_s": 30}
    assert targets["core-api"] == {
        "ecs_service": "core-svc", "cache_ttl_s": 0, "alb_resource_label": LABEL,
        "autoscaling": {"min_instances": 2, "max_instances": 6, "metric": "ALBRequestCountPerTarget",
                        "target_value": 1200, "scale_out_cooldown_s": 60, "scale_in_cooldown_s": 300}}
    assert "-      db_pool_size: 2" in res.stderr and "+      db_pool_size: 9" in res.stderr
    # idempotent: a second apply changes nothing
    again = run_cli(["apply", str(run_dir), "--stack", "dev", "--project-dir", str(tmp_path)], lb_env)
    assert again.code == 0
    assert stack.read_text() == text
    assert "already up to date" in again.stderr


def test_dry_run_changes_nothing(tmp_path: Path, lb_env: dict[str, str]) -> None:
    run_dir = _run_dir(tmp_path, DOC)
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(STACK)
    res = run_cli(["apply", str(run_dir), "--stack", "dev", "--project-dir", str(tmp_path), "--dry-run"], lb_env)
    assert res.code == 0
    assert "+      db_pool_size: 9" in res.stderr
    assert stack.read_text() == STACK


def test_apply_env_file_keeps_other_lines(tmp_path: Path, lb_env: dict[str, str]) -> None:
    run_dir = _run_dir(tmp_path, DOC)
    env = tmp_path / "profile.env"
    env.write_text("# demo profile-api\nPROFILE_DB_MS=50\nDB_POOL_SIZE=2\n")
    res = run_cli(["apply", str(run_dir), "--env-file", str(env), "--service", "profile-api"], lb_env)
    assert res.code == 0, res.stderr
    assert env.read_text() == "# demo profile-api\nPROFILE_DB_MS=50\nDB_POOL_SIZE=9\nCACHE_TTL_S=30\n"
    # several services, no --service: a clear exit 2
    res = run_cli(["apply", str(run_dir), "--env-file", str(env)], lb_env)
    assert res.code == 2 and "--service" in res.stderr


def test_invalid_run_is_never_applied(tmp_path: Path, lb_env: dict[str, str]) -> None:
    doc = {**DOC, "valid": False, "invalid_reasons": ["metrics_incomplete: stored 80 of k6's 100 requests"]}
    run_dir = _run_dir(tmp_path, doc)
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(STACK)
    res = run_cli(["apply", str(run_dir), "--stack", "dev", "--project-dir", str(tmp_path)], lb_env)
    assert res.code == 2
    assert "metrics_incomplete" in res.stderr
    assert stack.read_text() == STACK


def test_apply_refuses_a_targets_block_pulumi_up_would_refuse(tmp_path: Path, lb_env: dict[str, str]) -> None:
    """Request-count autoscaling needs the target group's ALB label, which only the stack's owner
    knows: without it the merged block is invalid for the program (core.targets), so apply
    writes nothing and names the key to add (exit 2)."""
    run_dir = _run_dir(tmp_path, DOC)
    stack = tmp_path / "Pulumi.dev.yaml"
    original = STACK.replace(f"      alb_resource_label: {LABEL}\n", "")
    stack.write_text(original)
    res = run_cli(["apply", str(run_dir), "--stack", "dev", "--project-dir", str(tmp_path)], lb_env)
    assert res.code == 2, res.stderr
    assert "loadbearing:targets.core-api.alb_resource_label: required when autoscaling.metric is " \
           "ALBRequestCountPerTarget" in res.stderr
    assert "nothing was written" in res.stderr and "Traceback" not in res.stderr
    assert stack.read_text() == original
