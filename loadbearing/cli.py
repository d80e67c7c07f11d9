"""The `loadbearing` command (typer). Thin: parse, call, print.

The composition root: nothing imports this module, and it wires the layers below it
(runners, policies, the demo loop) together, e.g. handing the policies the way to reach a
run's store (`runners.stack.recorded_store`). Each command imports what it runs, so
`loadbearing --help` and a mistyped flag do not load boto3, the docker SDK or the policies.

Human progress goes to stderr; results to stdout. Exit codes: core.errors.ExitCode.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from core.console import console
from core.errors import BadInput, ExitCode, LoadbearingError
from core.rundir import RunDir

app = typer.Typer(
    name="loadbearing",
    help="Load tests that end in a change, not a chart.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="The local stack (InfluxDB; Grafana with docker).", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
baseline_app = typer.Typer(help="The pinned baseline that 'compare --baseline' compares with.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")
BaselineFile = Annotated[Path | None, typer.Option(
    "--file", help="The baselines file (default: baseline.json beside the run directories).",
    envvar="LOADBEARING_BASELINE_FILE")]


class Strategy(StrEnum):
    sequential = "sequential"
    hybrid = "hybrid"
    parallel = "parallel"
    capacity = "capacity"  # not a strategy: each service's stepped ramp up to its knee


class BackendName(StrEnum):
    process = "process"
    docker = "docker"
    ecs = "ecs"


class Provider(StrEnum):
    process = "process"
    docker = "docker"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@app.command()
def run(
    strategy: Annotated[Strategy, typer.Argument(help="sequential, hybrid or parallel; or capacity: each "
                                                      "service's stepped arrival-rate ramp, stopped at its knee")],
    plan: Annotated[Path, typer.Option("--plan", help="The plan file (TOML).", envvar="LOADBEARING_PLAN")],
    backend: Annotated[BackendName, typer.Option(help="Where runners run.")] = BackendName.process,
    runners: Annotated[str, typer.Option(help="k6 runners per module (execution segments); 'auto' with ecs.")] = "1",
    influx_url: Annotated[str | None, typer.Option(help="InfluxDB URL (v1 API).",
                                                   envvar="LOADBEARING_INFLUX_URL")] = None,
    out_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    stack_outputs: Annotated[Path | None, typer.Option(help="ecs: `pulumi stack output --json` file.",
                                                       envvar="LOADBEARING_STACK_OUTPUTS")] = None,
    max_cost: Annotated[float | None, typer.Option(help="ecs: refuse (exit 2) above this estimate, USD.")] = None,
    run_id: Annotated[str | None, typer.Option(help="Use this run id (= testid) instead of a new one.")] = None,
    service: Annotated[list[str] | None, typer.Option(
        help="capacity: ramp this service (repeat for several; default: the plan's capacity.services, else "
             "every service that modules load).")] = None,
    parallel: Annotated[bool, typer.Option(
        help="capacity: ramp every service at once (default: one after another, so they do not "
             "disturb each other).")] = False,
) -> None:
    """Run the plan's modules with a strategy. Last stdout line: the run directory."""
    from runners.backends import BackendOptions, DockerOptions, EcsOptions, ProcessOptions
    from runners.capacity import CapacityOptions
    from runners.controller import RunOptions, prepare
    from runners.controller import run as run_strategy
    from runners.stack import resolve_store

    options: BackendOptions = ProcessOptions()
    if backend is BackendName.docker:
        options = DockerOptions()
    elif backend is BackendName.ecs:
        options = EcsOptions(stack_outputs=stack_outputs, max_cost=max_cost)
    try:
        count = None if runners == "auto" else int(runners)
    except ValueError:
        raise BadInput(f"--runners {runners!r}: give a whole number (or 'auto' where the backend sizes its fleet)") from None
    if strategy is not Strategy.capacity and (service or parallel):
        raise BadInput("--service and --parallel are options of 'run capacity'")
    ramp = CapacityOptions(parallel=parallel, services=service or None) if strategy is Strategy.capacity else None
    prepared = prepare(RunOptions(plan_path=plan, strategy=strategy.value, backend=options, runners=count,
                                  out_dir=out_dir, run_id=run_id, capacity=ramp))  # exit 2/3 before any load
    influx = prepared.backend.metrics_store(influx_url)
    local_stack = None
    if influx is None:
        influx, local_stack = resolve_store(influx_url)
    run_dir, code = run_strategy(prepared, influx, local_stack=local_stack)
    _out(str(run_dir))
    raise typer.Exit(int(code))


@app.command()
def recommend(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the recommendations JSON on stdout.")] = False,
    capacity: Annotated[Path | None, typer.Option(
        help="A capacity run (the directory 'loadbearing run capacity' printed): autoscaling and instances are "
             "sized from its knees.")] = None,
) -> None:
    """Read a run back and recommend pool sizes, caches and autoscaling."""
    from policies import dumps_document, recommend_run, render_summary
    from runners.stack import recorded_store

    doc = recommend_run(run_dir, connect=recorded_store, capacity=capacity)
    if json_out:
        sys.stdout.write(dumps_document(doc))
        sys.stdout.flush()
    else:
        console.print(render_summary(doc), markup=False, highlight=False)
        _out(str(RunDir(run_dir).recommendations))


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Write RUN_DIR/report.md and RUN_DIR/report.html."""
    from policies import write_report
    from runners.stack import recorded_store

    md, html = write_report(run_dir, connect=recorded_store)
    _out(str(md))
    _out(str(html))


@app.command()
def apply(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with recommendations.")],
    stack: Annotated[str | None, typer.Option(help="Pulumi stack: writes Pulumi.NAME.yaml.")] = None,
    env_file: Annotated[Path | None, typer.Option(help="Env file for env-configured targets.")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service (needed with --env-file when "
                                                     "several services have recommendations).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the diff only.")] = False,
    project_dir: Annotated[Path, typer.Option(help="Where Pulumi.NAME.yaml lives.")] = Path("."),
) -> None:
    """Write recommended settings into Pulumi stack config or an env file."""
    from policies.apply import apply_run
    from runners.stack import recorded_store

    changed = apply_run(run_dir, stack=stack, env_file=env_file, service=service, dry_run=dry_run,
                        project_dir=project_dir, connect=recorded_store)
    _out(str(changed))


@app.command()
def verify(
    before_dir: Annotated[Path, typer.Argument(help="The run the recommendations came from.")],
    after_dir: Annotated[Path, typer.Argument(help="The run after applying them.")],
    capacity: Annotated[Path | None, typer.Option(
        help="A capacity run of the after state ('loadbearing run capacity'): the capacity per instance "
             "the applied instance count delivers.")] = None,
) -> None:
    """Predicted vs measured for every recommendation; exit 1 if one did not deliver."""
    from policies.verify import verify_runs
    from runners.stack import recorded_store

    ok = verify_runs(before_dir, after_dir, connect=recorded_store, capacity=capacity)
    raise typer.Exit(0 if ok else int(ExitCode.SLO_FAILED))


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="BASELINE_RUN RUN, or RUN alone with --baseline.",
                                               metavar="[BASELINE_RUN] RUN", show_default=False)],
    json_out: Annotated[bool, typer.Option("--json", help="Print the comparison JSON on stdout.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the Markdown table (PR comment) on stdout.")] = False,
    baseline: Annotated[bool, typer.Option("--baseline", help="Compare RUN with the pinned baseline of its plan "
                                                              "and strategy ('loadbearing baseline set').")] = False,
    force: Annotated[bool, typer.Option("--force", help="Compare runs of different plans or strategies.")] = False,
    baseline_file: Annotated[Path | None, typer.Option(
        help="With --baseline: the baselines file (default: baseline.json beside RUN).",
        envvar="LOADBEARING_BASELINE_FILE")] = None,
) -> None:
    """Did anything get slower or fail more often? Exit 1 when an endpoint regressed beyond the plan's tolerances."""
    from policies.compare import compare_runs
    from policies.compare_render import terminal
    from runners.stack import recorded_store

    if json_out and markdown:
        raise BadInput("--json and --markdown both want stdout; pick one (both files are written to RUN)")
    if baseline and len(runs) != 1:
        raise BadInput(f"with --baseline give one run (RUN), not {len(runs)}; the baseline is the pinned one")
    if not baseline and len(runs) != 2:
        raise BadInput(f"give BASELINE_RUN and RUN ({len(runs)} given), or RUN alone with --baseline")
    outcome = compare_runs(runs[-1], None if baseline else runs[0], baseline_file=baseline_file, force=force,
                           connect=recorded_store)
    console.print(terminal(outcome.document), markup=False, highlight=False, end="", soft_wrap=True)
    if json_out:
        _out(outcome.json_path.read_text(encoding="utf-8").rstrip("\n"))
    elif markdown:
        _out(outcome.markdown_path.read_text(encoding="utf-8").rstrip("\n"))
    else:
        _out(str(outcome.json_path))
    raise typer.Exit(int(ExitCode.SLO_FAILED) if outcome.regressed else 0)


@baseline_app.command("set")
def baseline_set(run_dir: Annotated[Path, typer.Argument(help="The run to pin.")],
                 file: BaselineFile = None) -> None:
    """Pin RUN as the baseline of its plan and strategy (its numbers are stored in the file)."""
    from policies.baseline import set_baseline
    from runners.stack import recorded_store

    path, key, entry = set_baseline(run_dir, file, connect=recorded_store)
    console.print(f"baseline for {key}: {entry['run_id']} (stored in {path})", markup=False, highlight=False)
    _out(str(path))


@baseline_app.command("show")
def baseline_show(file: BaselineFile = None,
                  out_dir: Annotated[Path, typer.Option(help="Where the run directories are (the file is "
                                                             "DIR/baseline.json).")] = Path("runs")) -> None:
    """List the pinned baselines: plan/strategy, run, when it was pinned."""
    from policies.baseline import FILE_NAME, show

    path = file if file is not None else out_dir / FILE_NAME
    rows = show(path)
    if not rows:
        console.print(f"no baseline pinned in {path}; pin one with 'loadbearing baseline set RUN_DIR'",
                      markup=False, highlight=False)
    for row in rows:
        _out(f"{row['key']}\t{row['run_id']}\tset {row['set_at']}\t{row['endpoints']} endpoints\t{row['run_dir']}")


@app.command()
def demo(
    scale: Annotated[str, typer.Option(help="ci (minutes on a laptop) or seed (~1200 VUs).")] = "ci",
    out_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs/demo"),
    influx_url: Annotated[str | None, typer.Option(help="InfluxDB URL (v1 API); default: the local stack.",
                                                   envvar="LOADBEARING_INFLUX_URL")] = None,
) -> None:
    """The whole loop on the demo target: run, recommend, apply, re-run, verify, report."""
    from demo.loop import run_demo

    raise typer.Exit(int(run_demo(scale=scale, out_dir=out_dir, influx_url=influx_url)))


@stack_app.command("up")
def stack_up(
    provider: Annotated[Provider | None, typer.Option(help="process or docker (default: docker when an engine "
                                                           "answers)")] = None,
    grafana: Annotated[bool | None, typer.Option("--grafana/--no-grafana",
                                                 help="docker: start Grafana too (default: yes).")] = None,
) -> None:
    """Start the local stack."""
    from runners.stack import up

    info = up(provider.value if provider else None, grafana=grafana)
    console.print(f"stack up ({info.provider}): InfluxDB {info.influx_url} db {info.influx_db}"
                  + (f", Grafana {info.grafana_url}" if info.grafana_url else ""), markup=False)
    _out(info.influx_url)
    if info.grafana_url:
        _out(info.grafana_url)


@stack_app.command("down")
def stack_down(purge: Annotated[bool, typer.Option(help="Also delete stored data.")] = False) -> None:
    """Stop the local stack (data kept unless --purge)."""
    from runners.stack import down

    info = down(purge=purge)
    console.print("stack down" if info else "no stack was up")


@stack_app.command("status")
def stack_status() -> None:
    """Show the local stack, and clean up runners left by a controller that died."""
    from runners.backends.docker import cleanup_stale_containers
    from runners.backends.process import cleanup_stale_processes
    from runners.stack import status

    for msg in cleanup_stale_processes():
        console.print(f"[yellow]cleanup:[/] {escape(msg)}")
    for msg in cleanup_stale_containers():
        console.print(f"[yellow]cleanup:[/] {escape(msg)}")
    info, alive = status()
    if info is None:
        console.print("no stack")
        raise typer.Exit(0)
    console.print(f"{info.provider} stack: InfluxDB {info.influx_url} {'up' if alive else 'DOWN'}"
                  + (f", Grafana {info.grafana_url}" if info.grafana_url else ""), markup=False)
    _out(info.influx_url if alive else "down")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors become a message and an exit code, never a traceback."""
    try:
        app(args=argv, prog_name="loadbearing")
    except SystemExit as exc:  # typer's standalone mode: usage errors exit 2, typer.Exit its code
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else int(ExitCode.BAD_INPUT))
    except LoadbearingError as exc:
        _err(exc.message)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _err("aborted")
        return int(ExitCode.RUN_ERROR)
    return 0


def _err(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
