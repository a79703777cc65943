"""`wfe gc`: forget old runs: their records and their log files."""

from __future__ import annotations

import shutil

import click

from wfe_yaml.cli.history import open_history_or_fail, store_option


@click.command("gc")
@store_option
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="How many of the newest runs to keep.",
)
def command(store_path: str | None, keep: int) -> None:
    """Delete every run but the KEEP newest, with their logs. Running runs are never deleted."""
    from wfe_yaml.store.logs import run_log_dir

    store = open_history_or_fail(store_path)
    old = [run for run in store.runs()[keep:] if run.status != "running"]
    store.delete_runs(run.id for run in old)
    for run in old:
        shutil.rmtree(run_log_dir(store.logs, run.id), ignore_errors=True)
    kept = len(store.runs())
    click.echo(f"deleted {len(old)} run{'s' if len(old) != 1 else ''}, kept {kept}")
