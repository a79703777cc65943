"""`wfe logs`: the log of a run's steps, from their log files; `-f` follows them live."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from wfe_yaml.cli.common import fail
from wfe_yaml.cli.history import find_run, open_history_or_fail, store_option

if TYPE_CHECKING:
    from wfe_yaml.store.records import StoredRun, StoredStep
    from wfe_yaml.store.store import Store

POLL_SECONDS = 0.2


@click.command("logs")
@click.argument("run_ref", metavar="[RUN]", required=False)
@click.argument("step", required=False)
@store_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
def command(run_ref: str | None, step: str | None, store_path: str | None, follow: bool) -> None:
    """Print the logs of RUN's steps (default: the newest run), or of STEP only (a step name
    or path). `wfe logs STEP` is STEP of the newest run.

    Several steps are printed one after the other under `==> path <==` headers; with -f their
    new lines are printed as they come, prefixed `[path]`.
    """
    store = open_history_or_fail(store_path)
    run, step = _run_and_step(store, run_ref, step)
    wanted = _matching_paths(run, store.steps(run.id), step) if step is not None else None
    if follow:
        _follow(store, run, wanted)
    else:
        _print_all(_logged(store, store.steps(run.id), wanted), wanted)


@dataclass
class _Tail:
    path: str
    file: Path
    offset: int = 0
    partial: bytes = b""

    def new_lines(self, final: bool) -> list[str]:
        try:
            with self.file.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            data = b""
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        return [line.decode("utf-8", errors="replace") for line in lines]


def _run_and_step(
    store: Store, first: str | None, second: str | None
) -> tuple[StoredRun, str | None]:
    """The run and step the arguments name: none (the newest run), RUN, RUN STEP, or STEP
    alone (when it names no run but a step of the newest run)."""
    from wfe_yaml.errors import ConfigError

    if first is None or second is not None:
        return find_run(store, first), second
    try:
        return store.run(first), None
    except ConfigError as not_a_run:
        newest = find_run(store, None)
        names = _step_names(newest, store.steps(newest.id))
        if _step_paths(names, first):
            return newest, first
        steps = ", ".join(names)
        hint = f"{not_a_run.message}; the newest run ({newest.id}) has steps: {steps}"
        fail(ConfigError(f"no run or step '{first}'", hint=hint))


def _matching_paths(run: StoredRun, steps: list[StoredStep], ref: str) -> set[str]:
    """The step paths REF names, or exit 2 listing the run's steps."""
    from wfe_yaml.errors import ConfigError

    names = _step_names(run, steps)
    paths = _step_paths(names, ref)
    if paths:
        return paths
    fail(ConfigError(f"no step '{ref}' in run {run.id}", hint=f"steps: {', '.join(names)}"))


def _step_names(run: StoredRun, steps: list[StoredStep]) -> dict[str, str]:
    """Each step path of the run with its name; steps not started yet count too (for -f)."""
    names = {step.path: step.name for step in steps}
    for path in run.steps:
        names.setdefault(path, path.rsplit("/", 1)[-1])
    return names


def _step_paths(names: dict[str, str], ref: str) -> set[str]:
    """The step paths REF names: a path (with or without its workflow), a step name, or the
    name of a matrix step (all its instances)."""
    exact = {path for path in names if path == ref or path.split("/", 1)[-1] == ref}
    if exact:
        return exact
    return {path for path, name in names.items() if name == ref or name.startswith(ref + "[")}


def _logged(store: Store, steps: list[StoredStep], wanted: set[str] | None) -> list[_Tail]:
    """One tail per log file, in the order the steps first started."""
    tails: dict[str, _Tail] = {}
    for step in steps:
        if step.log_file and (wanted is None or step.path in wanted):
            tails.setdefault(step.log_file, _Tail(step.path, store.root / step.log_file))
    return list(tails.values())


def _print_all(tails: list[_Tail], wanted: set[str] | None) -> None:
    headers = len(tails) > 1 or wanted is None
    printed = False
    for tail in tails:
        lines = tail.new_lines(final=True)
        if not lines:
            continue
        if headers:
            click.echo(("\n" if printed else "") + f"==> {tail.path} <==")
        click.echo("\n".join(lines))
        printed = True
    if not printed:
        click.echo("(no log output)", err=True)


def _follow(store: Store, run: StoredRun, wanted: set[str] | None) -> None:
    tails: dict[str, _Tail] = {}
    prefix = wanted is None or len(wanted) > 1
    while True:
        run = store.run(run.id)
        running = run.status == "running"
        for tail in _logged(store, store.steps(run.id), wanted):
            tails.setdefault(str(tail.file), tail)
        for tail in tails.values():
            for line in tail.new_lines(final=not running):
                click.echo(f"[{tail.path}] {line}" if prefix else line)
        sys.stdout.flush()
        if not running:
            return
        time.sleep(POLL_SECONDS)
