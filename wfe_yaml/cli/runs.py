"""`wfe runs`: the recorded runs, newest first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from wfe_yaml.cli.history import (
    format_ms,
    format_time,
    iso_time,
    open_history_or_fail,
    store_option,
    table,
)

if TYPE_CHECKING:
    from wfe_yaml.store.records import StoredRun

STATUSES = (
    "running",
    "interrupted",
    "succeeded",
    "failed",
    "cancelled",
    "suspended",
    "waiting",
)


@click.command("runs")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.option(
    "-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most N."
)
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--workflow", metavar="ID", help="Only runs of this workflow.")
def command(
    store_path: str | None, as_json: bool, limit: int, status: str | None, workflow: str | None
) -> None:
    """List recorded runs, newest first. A run whose runner died shows as `interrupted`."""
    store = open_history_or_fail(store_path)
    runs = store.runs(limit=limit, status=status, workflow=workflow)
    if as_json:
        click.echo(json.dumps([run_summary(run) for run in runs], indent=2, ensure_ascii=False))
        return
    if not runs:
        click.echo("no runs recorded" + (" matching the filters" if status or workflow else ""))
        return
    rows = [
        (
            run.id,
            run.workflow,
            run.status,
            format_time(run.started_at),
            format_ms(run.run_seconds * 1000),
        )
        for run in runs
    ]
    click.echo(table(("ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"), rows, frozenset({4})))


def run_summary(run: StoredRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status,
        "attempt": run.attempt,
        "started_at": iso_time(run.started_at),
        "finished_at": iso_time(run.finished_at),
        "duration_ms": round(run.run_seconds * 1000),
        "exit_code": run.exit_code,
        "file": run.file,
        "error": run.error,
    }
