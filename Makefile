# loadbearing — two commands on a fresh Debian/Ubuntu machine: `make demo`, `make test`.
PY := .venv/bin/python
SHELL := /bin/bash

.PHONY: setup setup-test demo test lint dashboards bench clean

setup:
	@scripts/bootstrap.sh

setup-test:
	@scripts/bootstrap.sh --test

demo: setup
	.venv/bin/loadbearing demo --scale ci

test: setup-test lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check core loadbearing runners policies demo grafana_dashboards infra tests bench
	.venv/bin/mypy core loadbearing runners policies demo grafana_dashboards infra bench

dashboards: setup
	$(PY) -m grafana_dashboards.build

bench: setup-test
	$(PY) -m bench.run_all

clean:
	rm -rf .venv .loadbearing runs .pytest_cache .mypy_cache .ruff_cache
