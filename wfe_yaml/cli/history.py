"""What `run`, `resume` and the history verbs share: the store option, opening the store, the
recording handed to the engine, and how times and statuses are shown."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from wfe_yaml.cli.common import fail

if TYPE_CHECKING:
    from wfe_yaml.engine.result import RunResult
    from wfe_yaml.plan import Plan, PlanWorkflow
    from wfe_yaml.store.recorder import RunRecorder
    from wfe_yaml.store.records import StoredRun, StoredStep
    from wfe_yaml.store.store import Store

F = TypeVar("F", bound=Callable[..., Any])


def store_option(function: F) -> F:
    return click.option(
        "--store",
        "store_path",
        metavar="PATH",
        help="The run history database [WFE_STORE, else .wfe/wfe.db here].",
    )(function)


def open_history_or_fail(option: str | None) -> Store:
    """The store the history verbs read, or exit 2 saying there is none."""
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.store.location import open_history

    try:
        return open_history(option)
    except ConfigError as error:
        fail(error)
    except (sqlite3.Error, OSError) as error:
        fail(_unreadable(option or "the store", error))


def open_store(path: Path) -> Store:
    from wfe_yaml.store.store import Store

    try:
        return Store(path)
    except (sqlite3.Error, OSError) as error:
        raise _unreadable(str(path), error) from error


def _unreadable(where: str, error: Exception) -> Any:
    from wfe_yaml.errors import ConfigError

    return ConfigError(
        f"cannot use the run store {where}: {error}",
        hint="pass another one with --store, or run without history: --no-store",
    )


def find_run(store: Store, ref: str | None) -> StoredRun:
    """The run REF names (an id or its unique start), else the newest run; or exit 2."""
    from wfe_yaml.errors import ConfigError

    try:
        if ref is not None:
            return store.run(ref)
        runs = store.runs(limit=1)
    except ConfigError as error:
        fail(error)
    if not runs:
        fail(ConfigError(f"no runs recorded in {store.path}"))
    return runs[0]


# -- recording a run ---------------------------------------------------------------------------


@dataclass
class Recording:
    """Where a run is recorded, and what it restores instead of running."""

    store: Store
    run_id: str | None = None
    attempt: int = 1
    replay: dict[str, dict[str, Any]] = field(default_factory=dict)
    selection: dict[str, Any] | None = None

    def engine_arguments(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "replay": self.replay, "attempt": self.attempt}

    def recorder(
        self,
        plan: Plan,
        exit_code_of: Callable[[str], int],
        verbosity: int,
        secrets: Mapping[str, str] | None = None,
    ) -> RunRecorder:
        from wfe_yaml.store.recorder import RunRecorder

        if verbosity > 0:
            click.echo(f"store: {self.store.path}")
        if self.selection is not None and verbosity >= 0:
            click.echo(self.selection_text())
        if secrets is None:
            secrets = {name: os.environ[name] for name in plan.secrets if name in os.environ}
        return RunRecorder(
            self.store,
            plan,
            exit_code_of=exit_code_of,
            secret_values=secrets,
            selection=self.selection,
        )

    def selection_text(self) -> str:
        assert self.selection is not None
        text = f"--{self.selection['mode']} {self.selection['step']}: "
        text += f"{len(self.replay)} step(s) restored from earlier runs"
        if self.selection["omitted"]:
            text += "; left out (no successful record): " + ", ".join(self.selection["omitted"])
        return text

    def resume_hint(self, result: RunResult) -> str | None:
        """How to continue a run that stopped short; only a recorded run can be resumed."""
        if result.status not in ("failed", "cancelled", "suspended"):
            return None
        return f"resume with: wfe resume {result.run_id}{self._store_argument()}"

    def _store_argument(self) -> str:
        from wfe_yaml.store.location import history_store_path

        if history_store_path(None) == self.store.path:
            return ""
        return f" --store {self.store.path}"


def prepare_recording(
    plan: Plan,
    workflow: PlanWorkflow,
    store_option: str | None,
    no_store: bool,
    only: str | None,
    start: str | None,
) -> tuple[Recording | None, Plan]:
    """The recording of a new `wfe run`, and the plan narrowed by `--only`/`--from`."""
    from wfe_yaml.errors import ConfigError
    from wfe_yaml.store.location import run_store_path
    from wfe_yaml.store.replay import select

    if only and start:
        raise ConfigError("--only and --from exclude each other: give one of them")
    if no_store:
        if only or start:
            raise ConfigError(
                "--only and --from restore recorded outputs: they need the run store",
                hint="drop --no-store",
            )
        return None, plan
    store = open_store(run_store_path(plan.source, store_option))
    ref = only or start
    if ref is None:
        return Recording(store), plan
    successes = store.latest_successes(workflow.id, str(plan.source.resolve()))
    selection = select(plan, workflow, "only" if only else "from", ref, successes)
    recording = Recording(store, replay=selection.replay, selection=selection.record())
    return recording, selection.plan


# -- showing history ---------------------------------------------------------------------------


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def iso_time(timestamp: float | None) -> str | None:
    from datetime import UTC, datetime

    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def format_ms(milliseconds: float | None) -> str:
    from wfe_yaml.durations import format_duration

    return "-" if milliseconds is None else format_duration(milliseconds / 1000)


def step_status(step: StoredStep, run: StoredRun) -> str:
    """A step still `running` in a run whose runner is gone was interrupted."""
    if step.status == "running" and run.status != "running":
        return "interrupted"
    return step.status


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int]) -> str:
    """Columns padded to their widest cell; `right` holds the right-aligned column indexes."""
    from wfe_yaml.report.console import display_width, pad

    widths = [
        max([len(h), *(display_width(row[i]) for row in rows)]) for i, h in enumerate(headers)
    ]
    lines = []
    for row in (headers, *rows):
        cells = [pad(cell, widths[i], i in right) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def json_value(value: Any) -> str:
    import json

    if isinstance(value, str) and "\n" not in value:
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def unmasked(config: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded variables without the masked ones (they come from the file or -c again)."""
    from wfe_yaml.secrets import MASK

    kept: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            kept[key] = unmasked(value)
        elif not (isinstance(value, str) and MASK in value):
            kept[key] = value
    return kept
