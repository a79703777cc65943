"""`wfe cancel`: stop a running run from another terminal, as Ctrl-C in its own would."""

from __future__ import annotations

import os
import signal
import time

import click

from wfe_yaml.cli.common import fail
from wfe_yaml.cli.history import find_run, open_history_or_fail, store_option

POLL_SECONDS = 0.1


@click.command("cancel")
@click.argument("run_ref", metavar="RUN")
@store_option
@click.option("--wait", is_flag=True, help="Wait until the run has ended, then print its status.")
def command(run_ref: str, store_path: str | None, wait: bool) -> None:
    """Cancel RUN: its runner gets SIGINT, stops its steps, runs their ensure hooks and records
    the run as cancelled. A run whose runner is gone (interrupted) is marked cancelled."""
    from wfe_yaml.errors import ConfigError

    store = open_history_or_fail(store_path)
    run = find_run(store, run_ref)
    if run.status == "interrupted":
        store.mark_ended(run.id, "cancelled")
        click.echo(f"run {run.id} had no live runner; marked cancelled")
        return
    if run.status != "running":
        fail(ConfigError(f"run {run.id} is not running: it {run.status}"))
    if not run.on_this_host or run.owner_pid is None:
        fail(ConfigError(f"run {run.id} runs on {run.owner_host}: cancel it there"))
    os.kill(run.owner_pid, signal.SIGINT)
    click.echo(f"cancelling run {run.id}: sent SIGINT to its runner (pid {run.owner_pid})")
    if wait:
        while (run := store.run(run.id)).status == "running":
            time.sleep(POLL_SECONDS)
        click.echo(f"run {run.id} {run.status}")
