"""docs/architecture.md documents every contract the code declares, and the project points
only at itself: a key added to a contract without a word in the page fails here."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

from core import measurements, rundir, targets
from core.rundir import MetricsRecord, ModuleRecord, PhaseRecord, RunRecord, StoreRecord
from core.stack_outputs import StackOutputs

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
MEASUREMENTS = [v for k, v in vars(measurements).items()
                if k.isupper() and isinstance(v, str) and v.startswith(("http_reqs", "http_req_", "loadbearing_"))]
RUN_DIR_FILES = [rundir.RECORD, rundir.INCOMPLETE, rundir.PLAN_SNAPSHOT, rundir.K6_DIR, rundir.ECS_TASKS,
                 rundir.RECOMMENDATIONS, rundir.VERIFICATION, rundir.COMPARISON, rundir.COMPARISON_MD,
                 rundir.REPORT_MD, rundir.REPORT_HTML, "baseline.json"]


def _mentioned(name: str) -> bool:
    return re.search(rf"`{re.escape(name)}`|\b{re.escape(name)}\b", PAGE) is not None


@pytest.mark.parametrize("model", [RunRecord, ModuleRecord, PhaseRecord, StoreRecord, MetricsRecord, StackOutputs,
                                   targets.TargetSettings, targets.Autoscaling])
def test_every_key_of_a_contract_is_described(model: type[BaseModel]) -> None:
    missing = [k for k in model.model_fields if not _mentioned(k)]
    assert missing == [], f"{model.__name__}: {missing} not in docs/architecture.md"


def test_every_file_and_measurement_is_described() -> None:
    assert [f for f in RUN_DIR_FILES if not _mentioned(f)] == []
    assert len(MEASUREMENTS) >= 10
    assert [m for m in MEASUREMENTS if not _mentioned(m)] == []
    assert _mentioned("capacity") and _mentioned("core/knees.py")


def test_the_project_points_only_at_itself() -> None:
    """No reference a reader of the repository cannot follow; every docs/ page named exists."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    texts = [p for p in tracked if p.endswith((".py", ".md", ".toml", ".yaml", ".sh")) and not p.startswith("tests/")]
    outside = re.compile(r"(?-i:ARCHITECTURE\.md)|\.\./shared|seed[ -]post|\bissues? \d+\b|\bissue-\d+\b", re.IGNORECASE)
    docs = re.compile(r"docs/[\w./-]+\.md")
    found, dangling = [], []
    for rel in texts:
        text = (ROOT / rel).read_text(encoding="utf-8", errors="replace")
        found += [f"{rel}: {m.group(0)}" for m in outside.finditer(text)]
        dangling += [f"{rel}: {m.group(0)}" for m in docs.finditer(text) if not (ROOT / m.group(0)).is_file()]
    assert found == []
    assert dangling == []
