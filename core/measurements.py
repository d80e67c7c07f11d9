"""The InfluxDB measurement, tag and field names every side of a run shares (docs/architecture.md).

Written by k6 (its InfluxDB output), by the controller and the policies, and by a target's own
instrumentation (the demo services); read by the policies, the reports and the Grafana
dashboards. Every writer and every reader imports the name from here.

Measurements are per sample or per second; tags are the few low-cardinality names a query
groups or filters by. `url` and a script's `key` travel as fields, not tags (cardinality).
"""

from __future__ import annotations

# -- what k6 writes (its metric names; `runners.k6` sets which system tags it keeps) --------------
HTTP_REQS = "http_reqs"                    # one point per request, value 1
HTTP_REQ_DURATION = "http_req_duration"    # ms
HTTP_REQ_WAITING = "http_req_waiting"      # ms, time to first byte
HTTP_REQ_FAILED = "http_req_failed"        # 1 failed, 0 not (expected_response)
ITERATIONS = "iterations"
ITERATION_DURATION = "iteration_duration"
DROPPED_ITERATIONS = "dropped_iterations"
VUS = "vus"
VUS_MAX = "vus_max"

# -- what loadbearing writes ----------------------------------------------------------------------
EVENTS = "loadbearing_events"              # runners.events (run/phase/module), policies.recommend (finding/recommendation)
RUNNER_CPU = "loadbearing_runner"          # runners.generator: each local runner's CPU, once a second
SCRAPE = "loadbearing_scrape"              # runners.scrape: a service's metrics_url (Prometheus text)
SCRAPE_HEALTH = "loadbearing_scrape_health"  # runners.scrape: every scrape attempt
RELATIVE = "loadbearing_relative"          # policies.compare: both runs' series on run-relative time
STORE_MARKER = "loadbearing_store"         # core.store_identity: which store this is

# -- what a target's own instrumentation writes (the demo services; any target may) ---------------
APP_POOL = "app_pool"                      # its database pool, per instance, once a second
APP_CACHE = "app_cache"                    # its cache's hits and misses
APP_ENDPOINT = "app_endpoint"              # server-side time per endpoint

# -- tags ---------------------------------------------------------------------------------------------
TESTID = "testid"        # the run (its run id); on every point of a run
STRATEGY = "strategy"    # sequential | hybrid | parallel
MODULE = "module"        # the plan's module
SERVICE = "service"      # the plan's service (a module's, or the one an app_* point describes)
RUNNER = "runner"        # `<module>-<index>` (core.rundir.runner_name)
NAME = "name"            # the request's name: the script's `name` tag, else k6's URL
METHOD = "method"        # the request's HTTP method (a k6 system tag)
INSTANCE = "instance"    # a service's instance (app_* points)
KIND = "kind"            # loadbearing_events: run | phase | module | finding | recommendation | knee
EVENT = "event"          # loadbearing_events: start | end, the finding/recommendation kind, or for a knee:
                         # knee | lower_bound | no_knee (runners.capacity: a capacity run's finding per service)
KNEE = "knee"            # loadbearing_events `kind` of a capacity run's knee (its `name` is the service)

# -- fields -------------------------------------------------------------------------------------------
CPU_PERCENT = "cpu_percent"   # loadbearing_runner: CPU of one core, percent


def run_tags(testid: str, strategy: str, module: str, service: str, runner: str) -> dict[str, str]:
    """The tags on every sample a runner writes (k6 `--tag`), as the policies and dashboards read them."""
    return {TESTID: testid, STRATEGY: strategy, MODULE: module, SERVICE: service, RUNNER: runner}
