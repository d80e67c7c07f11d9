"""Generate the dashboards' JSON: `python -m grafana_dashboards.build [--check] [--out DIR]`.

Output is deterministic: keys sorted, two-space indent, panels flowed left to right
on the 24-column grid, panel ids numbered 1..N in layout order, variable ids equal to
their names. Without flags it writes
`grafana_dashboards/json/<uid>.json` (and removes generated files of dashboards that
no longer exist). With `--check` it writes nothing and exits 1 when the committed JSON
differs from what the code generates (naming the stale files), else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana_dashboards import JSON_DIR, capacity, compare, endpoint, overview, skeleton

BUILDERS: dict[str, Callable[[], Dashboard]] = {
    skeleton.OVERVIEW_UID: overview.build,
    skeleton.ENDPOINT_UID: endpoint.build,
    skeleton.CAPACITY_UID: capacity.build,
    skeleton.COMPARE_UID: compare.build,
}
GENERATED_GLOB = f"{skeleton.TAG}-*.json"


def _number_panels(panels: list[dict[str, Any]], next_id: int = 1) -> int:
    for panel in panels:
        panel["id"] = next_id
        next_id += 1
        next_id = _number_panels(panel.get("panels") or [], next_id)
    return next_id


def _flow(panels: list[dict[str, Any]], columns: int = 24) -> None:
    """Lay top-level panels out left to right in their order, wrapping at the grid width.

    (The SDK's own flow can place a full-width panel at x=12 after an odd number of
    half-width panels; this keeps every panel inside the grid.)
    """
    x = y = row_height = 0
    for panel in panels:
        pos = panel["gridPos"]
        w = min(int(pos["w"]), columns)
        if x + w > columns:
            x, y, row_height = 0, y + row_height, 0
        pos.update({"x": x, "y": y, "w": w})
        x += w
        row_height = max(row_height, int(pos["h"]))


def as_dict(board: Dashboard) -> dict[str, Any]:
    """The dashboard model as plain JSON data: grid flow, stable panel and variable ids."""
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    _flow(data.get("panels") or [])
    _number_panels(data.get("panels") or [])
    for variable in (data.get("templating") or {}).get("list") or []:
        variable["id"] = variable["name"]
    return data


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """File name -> JSON text for every dashboard."""
    return {f"{uid}.json": render(as_dict(build())) for uid, build in BUILDERS.items()}


def stale(out_dir: Path = JSON_DIR) -> list[str]:
    """Names of files in `out_dir` that are missing, different, or no longer generated."""
    wanted = render_all()
    names = [n for n, text in wanted.items()
             if not (out_dir / n).exists() or (out_dir / n).read_text() != text]
    names += [p.name for p in sorted(out_dir.glob(GENERATED_GLOB)) if p.name not in wanted]
    return sorted(names)


def write(out_dir: Path = JSON_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = render_all()
    for old in out_dir.glob(GENERATED_GLOB):
        if old.name not in wanted:
            old.unlink()
    paths = []
    for name, text in wanted.items():
        path = out_dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana_dashboards.build", description=__doc__)
    parser.add_argument("--out", type=Path, default=JSON_DIR, help="output directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON in --out is stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.out)
        if names:
            print(f"stale dashboard JSON in {args.out}: {', '.join(names)}; run `make dashboards`",
                  file=sys.stderr)
            return 1
        return 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
