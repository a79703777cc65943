"""`wfe resume`: continue a run that did not succeed, restoring what already succeeded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from wfe_yaml.cli.common import (
    EXIT_CONFIG,
    broker_options,
    fail,
    long_lived_objects,
    read_secrets,
    secret_options,
    show_warnings,
    style,
)
from wfe_yaml.cli.history import Recording, open_history_or_fail, store_option, unmasked

if TYPE_CHECKING:
    from wfe_yaml.plan import Plan
    from wfe_yaml.store.records import StoredRun
    from wfe_yaml.store.store import Store


@click.command("resume")
@click.argument("run_ref", metavar="[RUN]", required=False)
@store_option
@click.option("--force", is_flag=True, help="Resume even though the workflows file changed.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Steps running at once [CPUs].")
@click.option("--report", type=click.Path(dir_okay=False), help="Write a JSON report here.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write a JUnit XML report here.")
@click.option("--plain", is_flag=True, help="Plain prefixed lines instead of the live tree.")
@click.option("-q", "--quiet", is_flag=True, help="Only failures and the summary.")
@click.option("-v", "--verbose", is_flag=True, help="Also show each step's outputs.")
@secret_options
@broker_options
def command(
    run_ref: str | None,
    store_path: str | None,
    force: bool,
    jobs: int | None,
    report: str | None,
    junit: str | None,
    plain: bool,
    quiet: bool,
    verbose: bool,
    secret_pairs: tuple[str, ...],
    secret_files: tuple[str, ...],
    broker: str | None,
    distribute: bool,
) -> None:
    """Continue RUN (default: the newest run that did not succeed) as its next attempt.

    Steps that succeeded are not run again: their recorded outputs are restored. Failed,
    cancelled, suspended, interrupted and never-started steps run. Refuses when the workflows
    file changed since the run, unless --force.
    """
    from wfe_yaml.cli.run import EXIT_CODES, distribution_for, execute
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.store.replay import omit, resume_replay

    store = open_history_or_fail(store_path)
    run = _resumable(store, run_ref)
    plan = _recorded_plan(store, run, force)
    try:
        target = plan.workflow(run.workflow)
        if run.selection:
            plan = omit(plan, target, run.selection.get("omitted", ()))
        replay = resume_replay(store.steps(run.id))
        run, attempt = store.claim_run(run.id)
    except ConfigError as error:
        fail(error)
    recording = Recording(
        store, run_id=run.id, attempt=attempt, replay=replay, selection=run.selection
    )
    verbosity = -1 if quiet else (1 if verbose else 0)
    if verbosity >= 0:
        click.echo(f"resuming run {run.id} (attempt {attempt}): {len(replay)} step(s) restored")
    status = execute(
        plan,
        run.workflow,
        run.inputs,
        jobs,
        plain,
        verbosity,
        report,
        junit,
        recording=recording,
        secrets=read_secrets(plan, secret_pairs, secret_files),
        distribution=distribution_for(broker, distribute, plan),
    )
    sys.exit(EXIT_CODES.get(status, 1))


def _resumable(store: Store, ref: str | None) -> StoredRun:
    from wfe_yaml.errors import ConfigError

    try:
        run = store.run(ref) if ref is not None else store.latest_unfinished()
    except ConfigError as error:
        fail(error)
    if run is None:
        fail(ConfigError(f"nothing to resume: every run in {store.path} succeeded"))
    if run.status == "succeeded":
        fail(ConfigError(f"run {run.id} succeeded: nothing to resume"))
    return run


def _recorded_plan(store: Store, run: StoredRun, force: bool) -> Plan:
    """The run's workflows file loaded again with the run's variables; refused when it changed."""
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.loader import load
    from wfe_yaml.store.sources import snapshot

    path = Path(run.file)
    if not path.is_file():
        fail(ConfigError(f"the workflows file of run {run.id} is gone: {path}"))
    try:
        with long_lived_objects():
            plan = load(path, config=unmasked(run.config))
    except ConfigError as error:
        fail(error)
    show_warnings(plan.warnings)
    current_hash, current_files = snapshot(plan.source, plan.files)
    if current_hash != run.source_hash and not force:
        _refuse_changed(run, store.source_files(run.source_hash), current_files)
    return plan


def _refuse_changed(run: StoredRun, recorded: dict[str, str], current: dict[str, str]) -> NoReturn:
    from wfe_yaml.store.sources import describe_changes

    click.echo(
        style(f"error: {Path(run.file).name} changed since run {run.id} was recorded:", "red"),
        err=True,
    )
    for line in describe_changes(recorded, current):
        click.echo(f"  {line}", err=True)
    click.echo("hint: resume anyway with --force, or start a new run with `wfe run`", err=True)
    sys.exit(EXIT_CONFIG)
