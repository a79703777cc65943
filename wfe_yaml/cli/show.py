"""`wfe show`: one recorded run, step by step."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from wfe_yaml.cli.history import (
    find_run,
    format_ms,
    format_time,
    iso_time,
    json_value,
    open_history_or_fail,
    step_status,
    store_option,
    table,
)
from wfe_yaml.cli.runs import run_summary

if TYPE_CHECKING:
    from wfe_yaml.store.records import StoredRun, StoredStep
    from wfe_yaml.store.store import Store


@click.command("show")
@click.argument("run_ref", metavar="[RUN]", required=False)
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def command(run_ref: str | None, store_path: str | None, as_json: bool) -> None:
    """Show RUN (an id or its start; default: the newest run): its steps with status, attempts,
    durations, outputs, errors and skip reasons, as the run stands after its last attempt."""
    from wfe_yaml.store.replay import current_view

    store = open_history_or_fail(store_path)
    run = find_run(store, run_ref)
    steps = current_view(store.steps(run.id))
    if as_json:
        click.echo(json.dumps(run_document(store, run, steps), indent=2, ensure_ascii=False))
        return
    click.echo("\n\n".join(_sections(run, steps)))


def run_document(store: Store, run: StoredRun, steps: list[StoredStep]) -> dict[str, Any]:
    document = run_summary(run)
    document.update(inputs=run.inputs, config=run.config, selection=run.selection)
    document["steps"] = [_step_document(store, run, step) for step in steps]
    document["not_run"] = _not_run(run, steps)
    return document


def _step_document(store: Store, run: StoredRun, step: StoredStep) -> dict[str, Any]:
    return {
        "path": step.path,
        "workflow": step.workflow,
        "name": step.name,
        "type": step.type,
        "status": step_status(step, run),
        "attempts": step.attempts,
        "exit_code": step.exit_code,
        "started_at": iso_time(step.started_at),
        "duration_ms": step.duration_ms,
        "skip_reason": step.skip_reason,
        "error": step.error,
        "outputs": step.outputs,
        "matrix": step.matrix,
        "hook": step.hook,
        "restored": step.restored,
        "run_attempt": step.attempt,
        "log_file": str(store.root / step.log_file) if step.log_file else None,
    }


def _not_run(run: StoredRun, steps: list[StoredStep]) -> list[str]:
    seen = {step.path for step in steps}
    return [path for path in run.steps if path not in seen]


def _sections(run: StoredRun, steps: list[StoredStep]) -> list[str]:
    sections = [_header(run)]
    if steps:
        sections.append(_steps_table(run, steps))
    waiting = _not_run(run, steps)
    if waiting:
        label = "Pending:" if run.status == "running" else "Not run:"
        sections.append("\n".join([label, *(f"  {path}" for path in waiting)]))
    for title, lines in (
        ("Outputs:", _output_lines(steps)),
        ("Skipped:", [f"  {s.path}: {s.skip_reason}" for s in steps if s.status == "skipped"]),
        ("Errors:", [f"  {s.path}: {s.error}" for s in steps if s.error and s.status != "skipped"]),
    ):
        if lines:
            sections.append("\n".join([title, *lines]))
    return sections


def _header(run: StoredRun) -> str:
    lines = [
        f"run {run.id}: {run.workflow} {run.status} (attempt {run.attempt})",
        f"  file:     {run.file}",
        f"  started:  {format_time(run.started_at)}, ran {format_ms(run.run_seconds * 1000)}"
        + (f", exit code {run.exit_code}" if run.exit_code is not None else ""),
    ]
    if run.inputs:
        lines.append(f"  inputs:   {json_value(run.inputs)}")
    if run.selection:
        lines.append(f"  selected: --{run.selection['mode']} {run.selection['step']}")
    if run.error:
        lines.append(f"  error:    {run.error}")
    if run.status == "running":
        lines.append(f"  runner:   pid {run.owner_pid} on {run.owner_host}")
    return "\n".join(lines)


def _steps_table(run: StoredRun, steps: list[StoredStep]) -> str:
    rows = []
    for step in steps:
        status = step_status(step, run)
        if step.restored:
            status += " (restored)"
        elif step.hook:
            status += " (hook)"
        rows.append(
            (
                step.path,
                status,
                str(step.attempts) if step.attempts else "-",
                format_ms(step.duration_ms) if step.status not in ("skipped",) else "-",
                "-" if step.exit_code is None else str(step.exit_code),
            )
        )
    headers = ("STEP", "STATUS", "ATTEMPTS", "DURATION", "EXIT")
    return table(headers, rows, frozenset({2, 3, 4}))


def _output_lines(steps: list[StoredStep]) -> list[str]:
    return [
        f"  {step.path}: {name} = {json_value(value)}"
        for step in steps
        if step.status in ("succeeded", "compensated")
        for name, value in step.outputs.items()
    ]
