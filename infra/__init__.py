"""The Pulumi program for AWS: the loadbearing test environment.

`infra.program.build(cfg)` creates everything; `infra/__main__.py` (what `pulumi up`
runs) only loads the stack config, calls it and exports the outputs. One
ComponentResource per module: network, credentials, runner_fleet, influxdb, grafana,
feedback, cost_guard. `infra/policy_pack/` holds the CrossGuard pack whose validators
(`infra.policy_pack.validators`) the tests run against the mocked program too.
"""
