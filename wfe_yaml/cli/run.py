"""`wfe run`: run a workflow with live progress, a summary, and reports."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import click

from wfe_yaml.cli.common import config_options, fail, file_argument, load_plan

EXIT_CODES = {"succeeded": 0, "failed": 1, "suspended": 3, "waiting": 3, "cancelled": 130}


@click.command("run")
@file_argument
@click.argument("workflow", required=False)
@config_options
@click.option(
    "-i",
    "--input",
    "input_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A workflow input; typed like an output, then checked against `inputs:`.",
)
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Steps running at once [CPUs].")
@click.option("--dry-run", is_flag=True, help="Show the plan and stop.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write a JSON report here.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write a JUnit XML report here.")
@click.option("--plain", is_flag=True, help="Plain prefixed lines instead of the live tree.")
@click.option("-q", "--quiet", is_flag=True, help="Only failures and the summary.")
@click.option("-v", "--verbose", is_flag=True, help="Also show each step's outputs.")
def command(
    file: str | None,
    workflow: str | None,
    assignments: tuple[str, ...],
    config_file: str | None,
    input_pairs: tuple[str, ...],
    jobs: int | None,
    dry_run: bool,
    report: str | None,
    junit: str | None,
    plain: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Run WORKFLOW of FILE (default: workflows.yaml here; the `entry:` workflow).

    Exit codes: 0 succeeded, 1 failed, 2 config or usage error, 3 suspended, 130 interrupted.
    """
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.interpolate import parse_assignment

    plan = load_plan(file, assignments, config_file)
    try:
        target = plan.workflow(workflow)
        inputs = dict(parse_assignment(text) for text in input_pairs)
    except ConfigError as error:
        fail(error)
    if dry_run:
        from wfe_yaml.cli.plan import render_workflow

        click.echo("\n".join(render_workflow(target)))
        return
    verbosity = -1 if quiet else (1 if verbose else 0)
    status = execute(plan, target.id, inputs, jobs, plain, verbosity, report, junit)
    sys.exit(EXIT_CODES.get(status, 1))


def execute(
    plan: Any,
    workflow: str,
    inputs: dict[str, Any],
    jobs: int | None,
    plain: bool,
    verbosity: int,
    report: str | None,
    junit: str | None,
) -> str:
    """Run with console output and reports; return the run's status."""
    from wfe_yaml.engine import Engine
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.report.console import make_console_reporter
    from wfe_yaml.report.json_report import write_json_report
    from wfe_yaml.report.junit import write_junit
    from wfe_yaml.report.summary import TailCollector

    sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    console = make_console_reporter(sys.stdout, plain=plain, verbosity=verbosity)
    tails = getattr(console, "tails", None) or TailCollector()
    subscribers = (console,) if hasattr(console, "tails") else (tails, console)
    engine = Engine(jobs=jobs, subscribers=subscribers)
    try:
        result = asyncio.run(_run_with_signals(engine, plan, workflow, inputs))
    except ConfigError as error:
        console.close()
        fail(error)
    finally:
        console.close()
    if report:
        write_json_report(result, report)
    if junit:
        write_junit(result, junit, tails.tails)
    return result.status


async def _run_with_signals(engine: Any, plan: Any, workflow: str, inputs: dict[str, Any]) -> Any:
    loop = asyncio.get_running_loop()
    presses = 0

    def interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            click.echo("\ncancelling: running ensure hooks (Ctrl-C again to kill now)", err=True)
        engine.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        return await engine.run_async(plan, workflow, inputs)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
