"""Plans and k6 scripts for benchmarks: `write_plan` (the fast script against the fast target)
and `demo_plan` (the demo's plan at a scale, every module lasting the same).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from demo.plan import plan_text

FAST_SCRIPT = """\
import http from 'k6/http';
export default function () {
  http.get(`${__ENV.BASE_URL}/`, { tags: { name: 'fast_get' } });
}
"""


def write_plan(dir: Path, base_url: str, modules: list[dict[str, Any]], name: str = "bench") -> Path:
    """A plan with one [[modules]] table per dict (script: the fast script unless given)."""
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "modules").mkdir(exist_ok=True)
    out = [f'name = "{name}"', "[target]", f'base_url = "{base_url}"', 'allow_hosts = ["127.0.0.1", "localhost"]',
           "[slo]", "p95_ms = 500", "max_error_rate = 0.01"]
    for m in modules:
        m = dict(m)
        if "script" not in m:
            script = dir / "modules" / f"{m['name']}.js"
            script.write_text(FAST_SCRIPT)
            m["script"] = f"modules/{m['name']}.js"
        out.append("[[modules]]")
        out += [f"{k} = {json.dumps(v)}" for k, v in m.items()]
    plan = dir / "plan.toml"
    plan.write_text("\n".join(out) + "\n")
    return plan


def demo_plan(path: Path, scale: str, core_url: str, profile_url: str, seconds: int, *,
              profile_pool: int | None = None, vus_per_module: int | None = None) -> Path:
    """demo/plan.py's plan at `scale` written to `path`, every one of its four modules lasting
    `seconds` (and, if given, running `vus_per_module` VUs instead of the scale's)."""
    text = plan_text(scale, core_url, profile_url, path=path, profile_pool=profile_pool)
    text, n = re.subn(r'(?m)^duration = "[^"]*"$', f'duration = "{seconds}s"', text)
    if n != 4:
        raise RuntimeError(f"the demo {scale} plan changed shape: {n} durations, expected 4")
    if vus_per_module is not None:
        text = re.sub(r"(?m)^vus = \d+$", f"vus = {vus_per_module}", text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
