"""`wfe run`: run a workflow with live progress, a summary, and reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Mapping
from typing import Any

import click

from wfe_yaml.cli.common import (
    broker_options,
    config_options,
    fail,
    file_argument,
    load_plan,
    read_secrets,
    secret_options,
)
from wfe_yaml.cli.history import Recording, prepare_recording, store_option

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
@secret_options
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Steps running at once [CPUs].")
@click.option("--dry-run", is_flag=True, help="Show the plan and stop.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write a JSON report here.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write a JUnit XML report here.")
@click.option("--plain", is_flag=True, help="Plain prefixed lines instead of the live tree.")
@click.option("-q", "--quiet", is_flag=True, help="Only failures and the summary.")
@click.option("-v", "--verbose", is_flag=True, help="Also show each step's outputs.")
@broker_options
@store_option
@click.option("--no-store", is_flag=True, help="Keep no run history (no resume, no `wfe logs`).")
@click.option(
    "--only",
    "only_step",
    metavar="STEP",
    help="Run just STEP; the other steps restore their latest recorded outputs.",
)
@click.option(
    "--from",
    "from_step",
    metavar="STEP",
    help="Run STEP and every step after it; the ones before restore their recorded outputs.",
)
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
    broker: str | None,
    distribute: bool,
    store_path: str | None,
    no_store: bool,
    only_step: str | None,
    from_step: str | None,
    secret_pairs: tuple[str, ...],
    secret_files: tuple[str, ...],
) -> None:
    """Run WORKFLOW of FILE (default: workflows.yaml here; the `entry:` workflow).

    Exit codes: 0 succeeded, 1 failed, 2 config or usage error, 3 suspended, 130 interrupted.
    """
    from wfe_yaml.errors import ConfigError

    plan = load_plan(file, assignments, config_file, cached=True)
    try:
        target = plan.workflow(workflow)
        inputs = typed_inputs(input_pairs, target.inputs)
    except ConfigError as error:
        fail(error)
    if dry_run:
        from wfe_yaml.cli.plan import render_workflow

        click.echo("\n".join(render_workflow(target)))
        return
    distribution = distribution_for(broker, distribute, plan)
    secrets = read_secrets(plan, secret_pairs, secret_files)
    try:
        recording, plan = prepare_recording(
            plan, target, store_path, no_store, only_step, from_step
        )
    except ConfigError as error:
        fail(error)
    verbosity = -1 if quiet else (1 if verbose else 0)
    status = execute(
        plan,
        target.id,
        inputs,
        jobs,
        plain,
        verbosity,
        report,
        junit,
        distribution=distribution,
        recording=recording,
        secrets=secrets,
    )
    sys.exit(EXIT_CODES.get(status, 1))


def distribution_for(broker: str | None, distribute: bool, plan: Any) -> Any:
    """Where steps run: None (all here), or the workers; exit 2 if the broker is unreachable."""
    if not (broker or distribute or uses_runs_on(plan)):
        return None
    from executors.remote import Distribution
    from wfe_yaml.errors import ConfigError

    try:
        return Distribution.from_options(broker, distribute, plan)
    except ConfigError as error:
        fail(error)


def uses_runs_on(plan: Any) -> bool:
    from wfe_yaml.plan import walk_steps

    return any(
        step.runs_on
        for workflow in plan.workflows.values()
        for step in walk_steps(workflow.steps + workflow.ensure)
    )


def typed_inputs(pairs: tuple[str, ...], declared: Mapping[str, Any]) -> dict[str, Any]:
    """`-i name=value` values, auto-typed like outputs. When that value does not fit the declared
    type but the text does, or the text read as JSON does, that is taken instead: `-i version=1.10`
    stays "1.10" for a string input, and `-i 'tags=["a", "b"]'` gives a list<string> its list.
    What fits nothing is left for the engine to report."""
    if not pairs:
        return {}  # without importing the loading code, which a cached plan does without
    from wfe_yaml.interpolate import parse_assignment
    from wfe_yaml.types import check_value

    inputs = {}
    for text in pairs:
        name, value = parse_assignment(text)
        spec = declared.get(name)
        if spec is not None and check_value(value, spec, name) is not None:
            for candidate in _readings(text.partition("=")[2]):
                if check_value(candidate, spec, name) is None:
                    value = candidate
                    break
        inputs[name] = value
    return inputs


def _readings(raw: str) -> list[Any]:
    readings: list[Any] = [raw]
    with contextlib.suppress(ValueError):
        readings.append(json.loads(raw))
    return readings


def execute(
    plan: Any,
    workflow: str,
    inputs: dict[str, Any],
    jobs: int | None,
    plain: bool,
    verbosity: int,
    report: str | None,
    junit: str | None,
    *,
    distribution: Any = None,
    recording: Recording | None = None,
    secrets: Mapping[str, str] | None = None,
) -> str:
    """Run with console output and reports; return the run's status."""
    from wfe_yaml.engine import Engine
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.report.console import make_console_reporter
    from wfe_yaml.report.summary import TailCollector

    sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    console = make_console_reporter(sys.stdout, plain=plain, verbosity=verbosity)
    tails = getattr(console, "tails", None) or TailCollector()
    subscribers = (console,) if hasattr(console, "tails") else (tails, console)
    recorder = None
    if recording is not None:
        # First: a step's record is committed before any reporter hears of it.
        recorder = recording.recorder(
            plan, lambda status: EXIT_CODES.get(status, 1), verbosity, secrets
        )
        subscribers = (recorder, *subscribers)
    engine = Engine(jobs=jobs, subscribers=subscribers)
    if distribution is not None:
        engine.dispatch = distribution.dispatcher(engine.bus.emit)
    try:
        result = asyncio.run(_run_with_signals(engine, plan, workflow, inputs, recording, secrets))
    except ConfigError as error:
        console.close()
        fail(error)
    finally:
        console.close()
        if recorder is not None:
            recorder.close()
    hint = recording.resume_hint(result) if recording is not None else None
    if hint:
        click.echo(hint)
    if report:
        from wfe_yaml.report.json_report import write_json_report

        write_json_report(result, report)
    if junit:
        from wfe_yaml.report.junit import write_junit

        write_junit(result, junit, tails.tails)
    return result.status


async def _run_with_signals(
    engine: Any,
    plan: Any,
    workflow: str,
    inputs: dict[str, Any],
    recording: Recording | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Any:
    loop = asyncio.get_running_loop()
    presses = 0

    def interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            click.echo("\ncancelling: running ensure hooks (Ctrl-C again to kill now)", err=True)
        elif presses == 2:
            click.echo("killing: every step and hook stops now", err=True)
        engine.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        extra = recording.engine_arguments() if recording is not None else {}
        return await engine.run_async(plan, workflow, inputs, secrets=secrets, **extra)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
