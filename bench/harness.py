"""A benchmark's own plumbing: its output contract (exactly one JSON line on stdout, `emit`;
progress on stderr, `log`), its flags (`base_parser`), its temp dir (`workdir`), SIGTERM
ending it through its `finally` blocks (`exit_on_term`), and rounding (`rnd`, `median`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


PY = sys.executable


_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress on stderr, prefixed with the benchmark's elapsed time."""
    sys.stderr.write(f"[{time.monotonic() - _T0:6.1f}s] {msg}\n")
    sys.stderr.flush()


def emit(result: dict[str, Any]) -> None:
    """The benchmark's single stdout line."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def median(values: list[float]) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def exit_on_term() -> None:
    """SIGTERM ends a benchmark through its `finally` blocks, so its servers are stopped."""

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


def base_parser(description: str) -> argparse.ArgumentParser:
    """argparse with the flags every benchmark takes (`--quick`: one short round, for the smoke test)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny mode: one round of a few seconds (smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (run dirs, logs)")
    return parser


@contextlib.contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=f"loadbearing-bench-{prefix}-"))
    try:
        yield root
    finally:
        if keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
