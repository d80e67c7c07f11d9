"""The k6 modules: real k6 runs each script against the services; every request is named.

The names k6 tags requests with must be the endpoint names the services report
(GET /status), so that client and server views of a run join.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from demo.plan import MODULES_DIR
from tests.demo.conftest import StartService
from tests.demo.k6_direct import arrival_rate, run_k6

MODULES = {"jobs": "core-api", "ecommerce": "core-api", "notifications": "core-api", "profile": "profile-api"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_scripts_leave_the_load_shape_to_the_plan(module: str) -> None:
    script = (MODULES_DIR / f"{module}.js").read_text()
    assert "import http from 'k6/http'" in script
    assert not re.search(r"export\s+(const|let|var)\s+options", script)
    assert "__ENV.BASE_URL" in script
    calls = re.findall(r"http\.(?:get|post|put|del|patch)\(", script)
    named = re.findall(r"tags: \{ name: '([a-z_]+)'(?:, key: `[^`]+`)? \}", script)
    assert calls and len(named) == len(calls)  # one name per request


def test_every_module_runs_clean_and_names_match_the_server(services: StartService, tmp_path: Path) -> None:
    core = services("core-api")
    profile = services("profile-api", PROFILE_DB_MS="5", DB_POOL_SIZE="4")
    urls = {"core-api": core.url, "profile-api": profile.url}

    def run(module: str):  # type: ignore[no-untyped-def]
        # Arrival rate: no think time, so a few seconds reach every endpoint of the flow.
        return run_k6(module, urls[MODULES[module]], arrival_rate(12, "4s", max_vus=40, graceful_stop="10s"), tmp_path / module,
                      json_out=True)

    with ThreadPoolExecutor(len(MODULES)) as pool:
        results = dict(zip(MODULES, pool.map(run, MODULES), strict=True))

    client_counts: dict[str, int] = {}
    for module, result in results.items():
        assert result.returncode == 0, f"{module}: {result.stderr[-800:]}"
        assert result.metric("checks")["value"] == 1.0, module
        assert result.metric("http_req_failed")["value"] == 0.0, module
        assert result.unnamed == 0, module
        client_counts.update(result.names)

    server_counts = {}
    for url in urls.values():
        for name, ep in httpx.get(f"{url}/status", timeout=10).json()["endpoints"].items():
            server_counts[name] = ep["count"]
    assert client_counts == server_counts
    for name in ("jobs_list", "jobs_search", "jobs_detail", "products_list", "product_detail", "cart_create",
                 "cart_add", "cart_get", "notifications_list", "profile_get", "profile_feed", "profile_put"):
        assert client_counts.get(name, 0) > 0, name
