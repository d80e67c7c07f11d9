"""Every gallery row passes: plain k6 scripts tagging only `name`, real servers, real k6 and InfluxDB.

Each case's row (its pathology, ground truth and expected recommendation) is in
`tests/gallery/cases.py`; a failure prints the row, what was missed and the findings.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from core.influx import InfluxClient
from runners.influxd import Influxd
from tests.gallery.cases import CASES
from tests.gallery.harness import run_case

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(CASES))
def test_gallery_row(name: str, influxd: Influxd, tmp_path: Path) -> None:
    case = CASES[name]
    influx = InfluxClient.from_url(influxd.url, db=f"gallery_{uuid.uuid4().hex[:8]}")
    influx.ensure_db()
    doc, run_dir = run_case(case, influx, tmp_path)
    problems = case.check(doc)
    shown = {"findings": [(f["kind"], f["service"], f["detail"]) for f in doc["findings"]],
             "recommendations": [(r["kind"], r["service"], r.get("reason")) for r in doc["recommendations"]],
             "notes": doc.get("notes")}
    assert not problems, (f"{name} ({case.pathology}); expected: {case.expect}; truth {case.truth}\n"
                          f"missed: {problems}\n{json.dumps(shown, indent=1)}\nrun: {run_dir}")
