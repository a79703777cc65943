"""The store's subscriber: every run state change is committed while the engine waits.

The engine emits events synchronously and starts nothing new until the subscribers return, so
a StepFinished committed here is on disk before any step that depends on it starts: a runner
killed at any moment loses at most the steps that were running.

A step's start is the one change nothing depends on (a step lost while running runs again on
resume, recorded as running or not). It is committed with the step's end when that comes
within a quarter of a second, else on its own then: one commit per step, not two, while
`wfe show` and `wfe logs -f` still see a longer step running.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wfe_yaml.engine.events import (
    Event,
    RunFinished,
    RunStarted,
    StepFinished,
    StepLog,
    StepStarted,
    WorkflowStarted,
)
from wfe_yaml.plan import Plan, PlanWorkflow, walk_steps
from wfe_yaml.secrets import Masker
from wfe_yaml.store.logs import LogFiles, run_log_dir
from wfe_yaml.store.records import HEARTBEAT_SECONDS
from wfe_yaml.store.sources import snapshot
from wfe_yaml.store.store import BEAT, NewRun, StepEnd, StepStart, Store, connect

START_DELAY_SECONDS = 0.25
"""How long a step's start may wait to be committed together with its end."""
CONTAINER_TYPES = frozenset({"parallel", "workflow"})
"""Step types that run other steps and write no log of their own."""


class RunRecorder:
    """Records one run (one attempt of it) of `plan` into `store`."""

    def __init__(
        self,
        store: Store,
        plan: Plan,
        *,
        exit_code_of: Callable[[str], int],
        secret_values: Mapping[str, str] | None = None,
        selection: Mapping[str, Any] | None = None,
    ):
        self.store = store
        self.plan = plan
        self.exit_code_of = exit_code_of
        self.selection = selection
        self.masker = Masker((secret_values or {}).values())
        self.file = str(plan.source.resolve())
        self.source_hash, self.source_files = snapshot(plan.source, plan.files)
        self.run_id: str | None = None
        self.attempt = 1
        self.finished = False
        self._known_steps: set[str] = set()
        self._running: set[str] = set()
        self._matrices = _MatrixLookup(plan)
        self._logs: LogFiles | None = None
        self._heartbeat: Heartbeat | None = None
        self._starts: dict[str, StepStart] = {}
        self._starts_due = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepLog):
            if self._logs is not None:
                self._logs.write(event.path, self.masker.lines(event.lines))
        elif isinstance(event, StepStarted):
            self._step_started(event)
        elif isinstance(event, StepFinished):
            self._step_finished(event)
        elif isinstance(event, WorkflowStarted):
            self._known_steps.update(info.path for info in event.steps)
        elif isinstance(event, RunStarted):
            self._run_started(event)
        elif isinstance(event, RunFinished):
            self._run_finished(event)

    def close(self) -> None:
        """After the run: a run that never finished (an internal error) is left interrupted."""
        self._stop()
        if self.run_id is not None and not self.finished:
            self.store.mark_ended(self.run_id, "interrupted")

    # -- events --------------------------------------------------------------------------------

    def _run_started(self, event: RunStarted) -> None:
        self.run_id, self.attempt = event.run_id, event.attempt
        steps = [info.path for info in event.steps]
        self._known_steps.update(steps)
        self.store.save_source(self.source_hash, self.source_files)
        if event.attempt == 1:
            self.store.begin_run(
                NewRun(
                    id=event.run_id,
                    workflow=event.workflow,
                    file=self.file,
                    source_hash=self.source_hash,
                    inputs=self.masker.value(dict(event.inputs)),
                    config=self.masker.value(dict(self.plan.variables)),
                    selection=self.selection,
                    steps=steps,
                    started_at=event.started_at,
                )
            )
        else:
            self.store.begin_attempt(
                event.run_id, event.attempt, event.started_at, steps, self.source_hash
            )
        self._logs = LogFiles(run_log_dir(self.store.logs, event.run_id), self.store.root)
        # The heartbeat thread checkpoints the WAL (and waits for the disk) instead of the
        # commit that happens to cross the threshold, which would hold the engine up.
        self.store.connection.execute("PRAGMA wal_autocheckpoint = 0")
        self._heartbeat = Heartbeat(self.store.path, event.run_id)
        self._heartbeat.start()

    def _step_started(self, event: StepStarted) -> None:
        assert self.run_id is not None and self._logs is not None
        self._running.add(event.path)
        leaf = event.type not in CONTAINER_TYPES
        self._starts[event.path] = StepStart(
            run_id=self.run_id,
            attempt=self.attempt,
            path=event.path,
            workflow=event.workflow,
            name=event.name,
            matrix=self._matrices.of(event.workflow, event.name),
            type=event.type,
            attempts=event.attempt,
            started_at=time.time(),
            log_file=self._logs.relative(event.path) if leaf else None,
            hook=event.path not in self._known_steps,
        )
        if leaf:
            self._logs.begin(event.path, self._log_header(event.attempt))
        if not self._starts_due:
            self._schedule_starts()

    def _schedule_starts(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the engine's loop: nothing to wait with
            self._commit_starts()
            return
        self._starts_due = True
        loop.call_later(START_DELAY_SECONDS, self._commit_starts)

    def _commit_starts(self) -> None:
        self._starts_due = False
        starts, self._starts = list(self._starts.values()), {}
        if starts:
            self.store.steps_started(starts)

    def _log_header(self, step_attempt: int) -> str | None:
        if step_attempt > 1:
            return f"attempt {step_attempt}"
        if self.attempt > 1:
            return f"run attempt {self.attempt}"
        return None

    def _step_finished(self, event: StepFinished) -> None:
        assert self.run_id is not None and self._logs is not None
        ran_here = event.path in self._running
        self._running.discard(event.path)
        self._logs.close(event.path)
        started = event.started_at if event.started_at is not None else time.time()
        # Alone, the step's own start folds into its end's row; else all starts go first, in
        # order, so rows keep the order steps started in.
        own_start = self._starts.pop(event.path, None) if len(self._starts) == 1 else None
        starts, self._starts = list(self._starts.values()), {}
        self.store.step_finished(
            StepEnd(
                run_id=self.run_id,
                attempt=self.attempt,
                path=event.path,
                workflow=event.workflow,
                name=event.name,
                matrix=self._matrices.of(event.workflow, event.name),
                type=event.type,
                status=event.status,
                attempts=event.attempts,
                exit_code=event.exit_code,
                started_at=started,
                finished_at=started + event.duration_ms / 1000,
                outputs=event.outputs,
                error=event.error,
                skip_reason=event.skip_reason,
                hook=event.path not in self._known_steps,
                # Only a restored step succeeds without having started.
                restored=event.status == "succeeded" and not ran_here,
                log_file=own_start.log_file if own_start is not None else None,
            ),
            starts,
        )

    def _run_finished(self, event: RunFinished) -> None:
        assert self.run_id is not None
        self._stop()
        result = event.result
        self.store.finish_run(
            self.run_id,
            self.attempt,
            result.status,
            result.finished_at,
            self.exit_code_of(result.status),
            result.error,
        )
        self.finished = True

    def _stop(self) -> None:
        self._commit_starts()
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        if self._logs is not None:
            self._logs.close_all()


class Heartbeat:
    """A thread touching the run's row every few seconds: `wfe runs` tells a live run from one
    whose runner was killed by how fresh this is. It also moves the write-ahead log into the
    database file as it goes (a checkpoint), off the engine's thread."""

    def __init__(self, store_path: Path, run_id: str):
        self._path = store_path
        self._run_id = run_id
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="wfe-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        connection = connect(self._path)
        try:
            while not self._stopped.wait(HEARTBEAT_SECONDS):
                try:
                    connection.execute(BEAT, (time.time(), self._run_id, os.getpid()))
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.OperationalError:
                    continue  # the store stayed busy past the timeout: the next beat will do
        finally:
            connection.close()


class _MatrixLookup:
    """The matrix values of a step instance, by workflow id and step name."""

    def __init__(self, plan: Plan):
        self._plan = plan
        self._by_workflow: dict[str, dict[str, Mapping[str, Any]]] = {}

    def of(self, workflow: str, name: str) -> Mapping[str, Any] | None:
        table = self._by_workflow.get(workflow)
        if table is None:
            found = self._plan.workflows.get(workflow)
            table = self._by_workflow[workflow] = _matrices(found) if found else {}
        return table.get(name)


def _matrices(workflow: PlanWorkflow) -> dict[str, Mapping[str, Any]]:
    return {
        step.name: step.matrix
        for step in walk_steps(workflow.steps + workflow.ensure)
        if step.matrix and step.group
    }
