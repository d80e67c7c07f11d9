"""The generated entry script: the user's module runs unchanged, and GET/HEAD requests carry `key`.

Real k6 against a loopback server that records every request, writing to the real influxd.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from core.influx import InfluxClient, quote_literal
from core.rundir import RunDir
from runners import k6
from runners.k6_entry import write_entry

USER_SCRIPT = """\
import http from 'k6/http';
import { get } from 'k6/http';
import { helper } from './lib/helper.js';
const ids = open('./lib/ids.txt').trim().split(',');
export function setup() { return { id: ids[0] }; }
export default function (data) {
  const base = __ENV.BASE_URL;
  http.get(`${base}/items/${data.id}?view=full#frag`, { tags: { name: 'items_get' }, headers: { 'X-T': 'a' } });
  get(`${base}/named/7`, { tags: { name: 'named_get' } });
  http.get(http.url`${base}/tpl/${data.id}`);
  http.request('GET', `${base}/req/3`, null, { tags: { name: 'req' } });
  http.request('POST', `${base}/req/4`, 'body-4', { tags: { name: 'req_post' } });
  http.batch([`${base}/b/1`, ['GET', `${base}/b/2`, null, { tags: { name: 'b2' } }],
              { method: 'PUT', url: `${base}/b/3`, body: 'put-3' }]);
  http.put(`${base}/items/${data.id}`, 'put-body', { tags: { name: 'items_put' } });
  http.get(`${base}/own`, { tags: { name: 'own', key: 'mine' } });
  http.get(`${base}/go?to=http://elsewhere/x#top`, { tags: { name: 'go' } });
  for (const n of ['go2a', 'go2b']) http.get(`${base}/go?to=http://elsewhere/x#top`, { tags: { name: n } });
  helper(base);
}
"""
HELPER = "import http from 'k6/http';\nexport function helper(base) { http.head(`${base}/h/1`); }\n"


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, str, str | None]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        with self.lock:
            self.seen.append((self.command, self.path, body, self.headers.get("X-T")))
        payload = b"" if self.command == "HEAD" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(2))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_HEAD = _serve


@pytest.fixture
def recorder() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _run(script: Path, base: str, influx: InfluxClient, testid: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K6_")}
    env.update(k6.runner_env(base, influx.k6_env()))
    res = subprocess.run([k6.k6_binary(), "run", "-q", "--no-usage-report", "--iterations", "1", "--tag",
                          f"testid={testid}", "--out", f"influxdb={influx.k6_output_url()}", str(script)],
                         capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
    assert res.returncode == 0, res.stderr


def test_entry_keys_gets_and_heads_and_changes_no_request(tmp_path: Path, recorder: str,
                                                          influx: InfluxClient) -> None:
    user = tmp_path / "plan" / "modules"
    (user / "lib").mkdir(parents=True)
    (user / "script.js").write_text(USER_SCRIPT)
    (user / "lib" / "helper.js").write_text(HELPER)
    (user / "lib" / "ids.txt").write_text("42,43\n")
    entry = write_entry(RunDir(tmp_path / "run"), "shop", user / "script.js")
    assert entry == tmp_path / "run" / "k6" / "shop.entry.js"

    _run(user / "script.js", recorder, influx, "bare", user)
    bare = sorted(Recorder.seen)
    Recorder.seen = []
    _run(entry, recorder, influx, "wrapped", user)
    # The server saw exactly the same requests: methods, paths, bodies, headers.
    assert sorted(Recorder.seen) == bare
    assert ("PUT", "/b/3", "put-3", None) in bare and ("GET", "/items/42?view=full", "", "a") in bare

    rows = influx.rows(f'SELECT "value", "key", "method", "name" FROM "http_reqs" WHERE "testid" = {quote_literal("wrapped")}')
    keys = {(r["method"], r["name"]): r.get("key") for r in rows}
    assert keys[("GET", "items_get")] == "/items/42?view=full"
    assert keys[("GET", "named_get")] == "/named/7"          # a named import is wrapped too
    assert keys[("GET", "${}/tpl/${}")] == "/tpl/42"          # an http.url template: its real URL
    assert keys[("GET", "req")] == "/req/3"
    assert keys[("GET", "b2")] == "/b/2"
    assert keys[("GET", f"{recorder}/b/1")] == "/b/1"
    assert keys[("HEAD", f"{recorder}/h/1")] == "/h/1"        # a call inside an imported helper
    assert keys[("GET", "own")] == "mine"                      # the script's own key wins
    assert keys[("GET", "go")] == "/go?to=http://elsewhere/x"  # a URL inside the query stays the query's
    assert keys[("GET", "go2a")] == keys[("GET", "go2b")] == keys[("GET", "go")]   # a URL seen before
    for write in (("POST", "req_post"), ("PUT", "items_put"), ("PUT", f"{recorder}/b/3")):
        assert keys[write] is None                             # writes are never keyed
    bare_rows = influx.rows(f'SELECT "value", "key", "name" FROM "http_reqs" WHERE "testid" = {quote_literal("bare")}')
    assert {r["name"]: r.get("key") for r in bare_rows}["items_get"] is None


def test_entry_reexports_options_and_lifecycle(tmp_path: Path) -> None:
    script = tmp_path / "s.js"
    script.write_text("export const options = { thresholds: { http_req_failed: ['rate<0.5'] } };\n"
                      "export function setup() {}\nexport function teardown() {}\n"
                      "export function handleSummary() { return {}; }\nexport default function () {}\n")
    entry = write_entry(RunDir(tmp_path / "run"), "m", script)
    res = subprocess.run([k6.k6_binary(), "inspect", str(entry)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "K6_NO_USAGE_REPORT": "true"})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["thresholds"] == {"http_req_failed": ["rate<0.5"]}
