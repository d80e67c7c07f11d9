# loadbearing — two commands on a fresh Debian/Ubuntu machine: `make demo`, `make test`.
PY := .venv/bin/python
SHELL := /bin/bash

.PHONY: setup setup-test demo test lint dashboards bench lock clean

setup:        # the project alone, from requirements/demo.lock
	@scripts/bootstrap.sh

setup-test:   # with the dev extra (tests, linters, every optional part), from requirements/test.lock
	@scripts/bootstrap.sh --test

demo: setup
	.venv/bin/loadbearing demo --scale ci

test: setup-test lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup-test
	.venv/bin/ruff check core loadbearing runners policies demo grafana_dashboards infra tests bench
	.venv/bin/mypy core loadbearing runners policies demo grafana_dashboards infra bench

dashboards: setup-test
	$(PY) -m grafana_dashboards.build

bench: setup-test
	$(PY) -m bench.run_all

# Pin every package by hash after a change of pyproject.toml's dependencies (uv, pinned in the dev extra).
lock:
	@test -x .venv/bin/python || python3 -m venv .venv
	@test -x .venv/bin/uv || .venv/bin/python -m pip install -q "$$(grep -o 'uv==[0-9.]*' pyproject.toml)"
	.venv/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet -o requirements/demo.lock
	.venv/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes --quiet -o requirements/test.lock

clean:
	rm -rf .venv .loadbearing runs .pytest_cache .mypy_cache .ruff_cache
