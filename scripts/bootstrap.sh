#!/usr/bin/env bash
# Bootstrap a fresh Debian/Ubuntu machine for loadbearing: the system packages it needs when
# missing, and .venv with the project installed from a lock file (every package pinned by hash).
#   scripts/bootstrap.sh            # what `make demo` needs: influxd; the project without extras
#                                   # (requirements/demo.lock)
#   scripts/bootstrap.sh --test     # everything the test suite needs: dockerd, nginx, PostgreSQL,
#                                   # Chromium; the project with its dev extra (requirements/test.lock)
# A pip failure stops the script with pip's message; only a complete install is stamped
# (.venv/.installed-<what>-<hash of pyproject.toml and the lock file>), so the next run
# retries an install that failed.
set -euo pipefail
cd "$(dirname "$0")/.."

what=demo
[[ "${1:-}" == "--test" ]] && what=test
lock=requirements/$what.lock

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "bootstrap: $PY not found; install Python >= 3.11 (Debian/Ubuntu: apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python >= 3.11 is required (found $("$PY" --version 2>&1))" >&2
  exit 1
fi

need=()
# Stock Debian/Ubuntu Pythons have no venv/ensurepip until python3-venv (python3.X-venv) is in.
venv_pkg="python$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv"
if [[ ! -x .venv/bin/python ]] && ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need+=("$venv_pkg")
fi
command -v influxd >/dev/null 2>&1 || [[ -x /usr/bin/influxd ]] || need+=(influxdb)
if [[ $what == test ]]; then
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

if [[ ! -x .venv/bin/python ]]; then
  if ! "$PY" -m venv .venv; then
    rm -rf .venv
    echo "bootstrap: '$PY -m venv' failed; on Debian/Ubuntu install $venv_pkg (sudo apt-get install $venv_pkg)" >&2
    exit 1
  fi
fi

hash=$(cat pyproject.toml "$lock" | sha1sum | cut -c1-12)
stamp=.venv/.installed-$what-$hash
# The test install holds everything the demo install does.
[[ -f $stamp || ( $what == demo && -f .venv/.installed-test-$hash ) ]] && exit 0

pip() {
  # pip's own output, less the notes about this machine's unused local indexes; its exit status kept.
  .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
}
echo "bootstrap: installing the project into .venv from $lock" >&2
rm -f .venv/.installed-*
pip install --require-hashes -r "$lock"
pip install --no-deps -e .
.venv/bin/python -c 'import loadbearing.cli, runners.controller, demo.loop' \
  || { echo "bootstrap: the installed project does not import; see the errors above" >&2; exit 1; }
touch "$stamp"
