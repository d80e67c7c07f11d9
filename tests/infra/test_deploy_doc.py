"""docs/deploy.md's commands are the ones the tests run.

Its `pulumi config set` lines, applied in order to an empty stack, give a configuration the
program accepts; the program runs under mocks with it and exports what the page says. Its
`loadbearing` lines parse as the CLI's commands, and its `loadbearing run` is the command
the ECS tests run (tests/ecs/test_controller_store.py) plus the page's sizing flags.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
from typer.main import get_command

from loadbearing.cli import app
from tests.infra.harness import ROOT, SECRETS, run_program

DOC = ROOT / "docs" / "deploy.md"


def shell_lines() -> list[list[str]]:
    """Every command of the page's ```sh blocks, split as the shell would (`$(...)` kept whole)."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.DOTALL)
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.strip()]


def _set(config: dict[str, Any], key: str, value: str, path: bool) -> None:
    full = key if ":" in key else f"loadbearing:{key}"
    match = re.fullmatch(r"([\w:]+)\[(\d+)\]", full) if path else None
    if match:
        items = config.setdefault(match.group(1), [])
        index = int(match.group(2))
        items[index:index + 1] = [value]
    else:
        config[full] = value


def doc_config() -> tuple[dict[str, Any], list[str]]:
    """(plain config, secret keys) that the page's `pulumi config set` lines make."""
    config: dict[str, Any] = {}
    secrets: list[str] = []
    for words in shell_lines():
        if words[:3] != ["pulumi", "config", "set"]:
            continue
        args = words[3:]
        secret, path = "--secret" in args, "--path" in args
        key, value = [a for a in args if not a.startswith("--")]
        if secret:
            assert value.startswith("$("), f"{key}: a secret is generated, never written in the page"
            secrets.append(f"loadbearing:{key}")
        else:
            _set(config, key, value, path)
    return config, secrets


def test_the_pages_configuration_deploys_under_mocks() -> None:
    config, secrets = doc_config()
    assert sorted(secrets) == sorted(SECRETS)
    run = run_program(config)
    assert run.exports["grafana_url"] == "https://loadtest.example.com"
    assert run.exports["influxdb_controller_url"] == "https://loadtest.example.com:8086"
    assert run.exports["controller_policy_arn"] and run.exports["influxdb_controller_secret_arn"]
    assert run.exports["k6_image"].startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/grafana/k6@")
    assert run.secret_exports == frozenset()
    for key in ("load_balancer_dns_name", "runner_count", "runner_max_minutes", "influxdb_cpu", "influxdb_store_id"):
        assert run.exports[key] is not None, key
        assert f"`{key}`" in DOC.read_text()


def _parse(words: list[str]) -> click.Context:
    """Parse a `loadbearing ...` command as the CLI would, without running it."""
    group = get_command(app)
    ctx = group.make_context("loadbearing", list(words[1:]), resilient_parsing=False)
    pending = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
    name, command, rest = group.resolve_command(ctx, pending)
    assert command is not None, words
    return command.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize("words", [w for w in shell_lines() if w[0] == "loadbearing"], ids=" ".join)
def test_the_pages_loadbearing_commands_parse(words: list[str]) -> None:
    ctx = _parse(words)
    if words[1] == "run":
        assert ctx.params["backend"].value == "ecs" and ctx.params["influx_url"] is None
        assert ctx.params["stack_outputs"] == Path("stack-outputs.json")


def test_the_pages_run_is_the_command_the_ecs_tests_run() -> None:
    from tests.ecs.test_controller_store import _run

    (doc_run, *_) = [w for w in shell_lines() if w[:2] == ["loadbearing", "run"]]
    tested = _run(Path("plan.toml"), Path("stack-outputs.json"), Path("."))
    flags = {w for w in tested if w.startswith("--")}
    assert {w for w in doc_run if w.startswith("--")} - flags <= {"--max-cost"}   # tests/ecs/test_stack_limits.py
    assert "--influx-url" not in flags | set(doc_run)   # the stack's door is the default in both
    assert doc_run[2] == tested[1] == "parallel"


def test_the_page_installs_what_its_commands_need_and_puts_loadbearing_on_path() -> None:
    """The Pulumi program needs the `infra` extra and `--backend ecs` the `ecs` extra (without it the
    backend refuses with exit 2); `loadbearing` is on PATH once the virtualenv is active."""
    lines = shell_lines()
    install = next(w for w in lines if "install" in w and any(x.endswith("pip") for x in w))
    found = re.search(r"\.\[([\w,]+)\]", " ".join(install))
    assert found is not None, install
    assert {"infra", "ecs"} <= set(found.group(1).split(","))
    first = next(i for i, w in enumerate(lines) if w[0] == "loadbearing")
    assert any(w[:2] in (["source", ".venv/bin/activate"], [".", ".venv/bin/activate"]) for w in lines[:first])
