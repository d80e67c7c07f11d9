"""`apply` changes the values and nothing else: `export`, quotes, comments, line endings,
the file's mode and owner (env files hold secrets), and a symlink stays a symlink."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from policies.config_edit import set_env_values
from tests.feedback.test_apply import DOC as APPLY_DOC
from tests.fixtures.runs import run_cli

DOC = {**APPLY_DOC, "recommendations": APPLY_DOC["recommendations"][:2]}  # profile-api: pool 9, TTL 30 s
OWNER = (65534, 65534)  # nobody:nogroup, not the user running apply


def _run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "recommendations.json").write_text(json.dumps(DOC))
    return run_dir


def _apply_env(tmp_path: Path, env: Path, lb_env: dict[str, str]) -> str:
    res = run_cli(["apply", str(_run_dir(tmp_path)), "--env-file", str(env), "--service", "profile-api"], lb_env)
    assert res.code == 0, res.stderr
    return res.stderr


ENV_CASES = [
    # (before, after)
    ("export DB_POOL_SIZE=5\nexport CACHE_TTL_S=0\n", "export DB_POOL_SIZE=9\nexport CACHE_TTL_S=30\n"),
    ('DB_POOL_SIZE="5"\nCACHE_TTL_S=\'0\'\n', 'DB_POOL_SIZE="9"\nCACHE_TTL_S=\'30\'\n'),
    ("DB_POOL_SIZE=5  # hand-tuned in May\n  export  CACHE_TTL_S = 0 # off\n",
     "DB_POOL_SIZE=9  # hand-tuned in May\n  export  CACHE_TTL_S = 30 # off\n"),
    ("# secrets below\nexport DB_PASSWORD='s3cr#t'\nexport DB_POOL_SIZE=2",  # no newline at the end
     "# secrets below\nexport DB_PASSWORD='s3cr#t'\nexport DB_POOL_SIZE=9\nexport CACHE_TTL_S=30\n"),
    ("PROFILE_DB_MS=50\r\nDB_POOL_SIZE=2\r\n", "PROFILE_DB_MS=50\r\nDB_POOL_SIZE=9\r\nCACHE_TTL_S=30\r\n"),
]


@pytest.mark.parametrize(("before", "after"), ENV_CASES)
def test_env_file_keeps_export_quotes_comments_and_line_endings(tmp_path: Path, lb_env: dict[str, str],
                                                                before: str, after: str) -> None:
    env = tmp_path / "profile.env"
    env.write_bytes(before.encode())
    _apply_env(tmp_path, env, lb_env)
    assert env.read_bytes().decode() == after
    _apply_env(tmp_path, env, lb_env)  # idempotent
    assert env.read_bytes().decode() == after


def test_env_file_keeps_mode_and_owner(tmp_path: Path, lb_env: dict[str, str]) -> None:
    env = tmp_path / "profile.env"
    env.write_text("export DB_PASSWORD=secret\nexport DB_POOL_SIZE=2\n")
    env.chmod(0o600)
    os.chown(env, *OWNER)
    _apply_env(tmp_path, env, lb_env)
    st = env.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == OWNER
    assert "DB_POOL_SIZE=9" in env.read_text()
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []


def test_a_symlinked_env_file_stays_a_link(tmp_path: Path, lb_env: dict[str, str]) -> None:
    real = tmp_path / "shared" / "profile.env"
    real.parent.mkdir()
    real.write_text("DB_POOL_SIZE=2\n")
    link = tmp_path / "profile.env"
    link.symlink_to(real)
    _apply_env(tmp_path, link, lb_env)
    assert link.is_symlink() and real.read_text() == "DB_POOL_SIZE=9\nCACHE_TTL_S=30\n"


def test_stack_file_keeps_mode_and_owner(tmp_path: Path, lb_env: dict[str, str]) -> None:
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text('config:\n  aws:region: "eu-west-1"  # quoted\n  loadbearing:targets:\n'
                     "    profile-api:\n      ecs_service: profile-svc\n      db_pool_size: 2\n")
    stack.chmod(0o640)
    os.chown(stack, *OWNER)
    res = run_cli(["apply", str(_run_dir(tmp_path)), "--stack", "dev", "--project-dir", str(tmp_path)], lb_env)
    assert res.code == 0, res.stderr
    st = stack.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and (st.st_uid, st.st_gid) == OWNER
    text = stack.read_text()
    assert 'aws:region: "eu-west-1"  # quoted' in text and "db_pool_size: 9" in text


PURE = [
    ("", {"A": "1"}, "A=1\n"),
    ("export A=1\nB=2\n", {"C": "3"}, "export A=1\nB=2\nC=3\n"),  # mixed style: new keys bare
    ("A=1\n", {"B": "two words", "C": 'say "$x"'}, 'A=1\nB="two words"\nC="say \\"\\$x\\""\n'),
    ("A='x'\n", {"A": "it's"}, "A=\"it's\"\n"),
    ("#A=1\nA=1 #c\n", {"A": "2"}, "#A=1\nA=2 #c\n"),
]


@pytest.mark.parametrize(("text", "values", "expected"), PURE)
def test_set_env_values(text: str, values: dict[str, str], expected: str) -> None:
    assert set_env_values(text, values) == expected
