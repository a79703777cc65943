"""The run history database: SQLite in WAL mode, shared safely by several `wfe` processes."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wfe_yaml.errors import ConfigError
from wfe_yaml.store.records import StoredRun, StoredStep
from wfe_yaml.store.schema import MIGRATIONS, Migration, migrate

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a write waits for another process's write to finish before giving up."""
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


@dataclass(frozen=True)
class NewRun:
    id: str
    workflow: str
    file: str
    source_hash: str
    inputs: Mapping[str, Any]
    config: Mapping[str, Any]
    selection: Mapping[str, Any] | None
    steps: Sequence[str]
    started_at: float


@dataclass(frozen=True)
class StepStart:
    run_id: str
    attempt: int
    path: str
    workflow: str
    name: str
    matrix: Mapping[str, Any] | None
    type: str
    attempts: int
    started_at: float
    log_file: str | None
    hook: bool


@dataclass(frozen=True)
class StepEnd:
    run_id: str
    attempt: int
    path: str
    workflow: str
    name: str
    matrix: Mapping[str, Any] | None
    type: str
    status: str
    attempts: int
    exit_code: int | None
    started_at: float | None
    finished_at: float
    outputs: Mapping[str, Any]
    error: str | None
    skip_reason: str | None
    hook: bool
    restored: bool
    log_file: str | None = None
    """Set when the step's start is recorded with its end."""


class Store:
    """One connection to the store at `path`; logs live in `logs/` beside it."""

    def __init__(self, path: str | os.PathLike[str], migrations: Sequence[Migration] = MIGRATIONS):
        self.path = Path(path).absolute()
        self.root = self.path.parent
        self.logs = self.root / "logs"
        _create_private(self.path)
        self._lock = threading.Lock()
        self.connection = connect(self.path)
        self.version = migrate(self.connection, migrations)

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; taken at once (IMMEDIATE) so it never fails half-way."""
        with self._lock:
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")

    def write_one(self, statement: str, parameters: Sequence[Any]) -> None:
        """One statement, committed on its own (SQLite makes it a transaction by itself)."""
        with self._lock:
            self.connection.execute(statement, parameters)

    # -- writing -------------------------------------------------------------------------------

    def save_source(self, source_hash: str, files: Mapping[str, str]) -> None:
        self.write_one(
            "INSERT OR IGNORE INTO sources (hash, files) VALUES (?, ?)",
            (source_hash, json.dumps(dict(files))),
        )

    def begin_run(self, run: NewRun) -> None:
        """Record attempt 1 of a new run, owned by this process."""
        with self.write() as db:
            db.execute(
                "INSERT INTO runs (id, workflow, file, source_hash, inputs, config, selection,"
                " steps, status, attempt, started_at, owner_pid, owner_host, heartbeat)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', 1, ?, ?, ?, ?)",
                (
                    run.id,
                    run.workflow,
                    run.file,
                    run.source_hash,
                    _json(run.inputs),
                    _json(run.config),
                    _json(run.selection) if run.selection is not None else None,
                    _json(list(run.steps)),
                    run.started_at,
                    *_owner(),
                ),
            )
            _insert_attempt(db, run.id, 1, run.started_at)

    def claim_run(self, ref: str) -> tuple[StoredRun, int]:
        """Take over a run that is not running any more, for its next attempt.

        Two `wfe resume` of one run at once: the second one finds it running and is refused.
        """
        with self.write() as db:
            run = self._run(db, ref)
            if run.status == "running":
                raise ConfigError(
                    f"run {run.id} is still running (pid {run.owner_pid} on {run.owner_host})",
                    hint=f"wait for it, or stop it with: wfe cancel {run.id}",
                )
            attempt = run.attempt + 1
            db.execute(
                "UPDATE runs SET status = 'running', attempt = ?, finished_at = NULL,"
                " exit_code = NULL, error = NULL, owner_pid = ?, owner_host = ?, heartbeat = ?"
                " WHERE id = ?",
                (attempt, *_owner(), run.id),
            )
        return run, attempt

    def begin_attempt(
        self,
        run_id: str,
        attempt: int,
        started_at: float,
        steps: Sequence[str],
        source_hash: str,
    ) -> None:
        """Record the start of a resumed run's next attempt (with the file it runs now)."""
        with self.write() as db:
            db.execute(
                "UPDATE runs SET status = 'running', attempt = ?, steps = ?, source_hash = ?,"
                " finished_at = NULL, exit_code = NULL, error = NULL, owner_pid = ?,"
                " owner_host = ?, heartbeat = ? WHERE id = ?",
                (attempt, _json(list(steps)), source_hash, *_owner(), run_id),
            )
            _insert_attempt(db, run_id, attempt, started_at)

    def steps_started(self, starts: Sequence[StepStart]) -> None:
        with self.write() as db:
            db.executemany(_STEP_STARTED, [_start_row(start) for start in starts])

    def step_finished(self, end: StepEnd, starts: Sequence[StepStart] = ()) -> None:
        """A step's end, after the starts not committed yet (in the order they happened), in
        one commit."""
        if not starts:
            self.write_one(_STEP_FINISHED, _end_row(end))
            return
        with self.write() as db:
            db.executemany(_STEP_STARTED, [_start_row(start) for start in starts])
            db.execute(_STEP_FINISHED, _end_row(end))

    def finish_run(
        self,
        run_id: str,
        attempt: int,
        status: str,
        finished_at: float,
        exit_code: int | None,
        error: str | None,
    ) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, exit_code = ?, error = ?,"
                " heartbeat = ? WHERE id = ?",
                (status, finished_at, exit_code, error, finished_at, run_id),
            )
            db.execute(
                "UPDATE attempts SET status = ?, finished_at = ? WHERE run_id = ? AND attempt = ?",
                (status, finished_at, run_id, attempt),
            )

    def mark_ended(self, run_id: str, status: str) -> None:
        """A run that will not finish by itself (its runner is gone) gets a final status."""
        now = time.time()
        with self.write() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = COALESCE(finished_at, heartbeat, ?)"
                " WHERE id = ?",
                (status, now, run_id),
            )
            db.execute(
                "UPDATE attempts SET status = ?, finished_at = COALESCE(finished_at, ?)"
                " WHERE run_id = ? AND status = 'running'",
                (status, now, run_id),
            )
            db.execute(
                "UPDATE step_runs SET status = 'cancelled', error = 'runner stopped'"
                " WHERE run_id = ? AND status = 'running'",
                (run_id,),
            )

    def delete_runs(self, run_ids: Iterable[str]) -> None:
        ids = list(run_ids)
        with self.write() as db:
            db.executemany("DELETE FROM runs WHERE id = ?", [(run_id,) for run_id in ids])
            db.execute("DELETE FROM sources WHERE hash NOT IN (SELECT source_hash FROM runs)")

    # -- reading -------------------------------------------------------------------------------

    def run(self, ref: str) -> StoredRun:
        """The run with this id, or the only one whose id starts with it."""
        return self._run(self.connection, ref)

    def runs(
        self, limit: int | None = None, status: str | None = None, workflow: str | None = None
    ) -> list[StoredRun]:
        """Newest first. The status filter sees `interrupted` as `wfe runs` shows it."""
        query = _RUNS
        arguments: list[Any] = []
        if workflow is not None:
            query += " WHERE workflow = ?"
            arguments.append(workflow)
        query += " ORDER BY started_at DESC, rowid DESC"
        found: list[StoredRun] = []
        for row in self.connection.execute(query, arguments):
            run = StoredRun.from_row(row)
            if status is None or run.status == status:
                found.append(run)
                if len(found) == limit:
                    break
        return found

    def latest_unfinished(self) -> StoredRun | None:
        """The newest run that did not succeed (what `wfe resume` continues by default)."""
        for run in self.runs():
            if run.status != "succeeded":
                return run
        return None

    def steps(self, run_id: str) -> list[StoredStep]:
        """Every step record of the run, attempt by attempt, in the order they started."""
        rows = self.connection.execute(
            "SELECT * FROM step_runs WHERE run_id = ? ORDER BY attempt, rowid", (run_id,)
        )
        return [StoredStep.from_row(row) for row in rows]

    def source_files(self, source_hash: str) -> dict[str, str]:
        row = self.connection.execute(
            "SELECT files FROM sources WHERE hash = ?", (source_hash,)
        ).fetchone()
        return json.loads(row["files"]) if row else {}

    def latest_successes(self, workflow: str, file: str) -> dict[str, StoredStep]:
        """Step path → the newest succeeded record of it, over every run of this workflow."""
        rows = self.connection.execute(
            "SELECT s.* FROM step_runs s JOIN runs r ON r.id = s.run_id"
            " WHERE r.workflow = ? AND r.file = ? AND s.status = 'succeeded' AND s.hook = 0"
            " ORDER BY s.finished_at",
            (workflow, file),
        )
        return {row["path"]: StoredStep.from_row(row) for row in rows}

    def _run(self, db: sqlite3.Connection, ref: str) -> StoredRun:
        rows = db.execute(
            _RUNS + " WHERE id = ? OR id LIKE ? ESCAPE '\\' ORDER BY id = ? DESC",
            (ref, _like_prefix(ref), ref),
        ).fetchall()
        if not rows:
            raise ConfigError(f"no run '{ref}' in {self.path}", hint="list runs with: wfe runs")
        if rows[0]["id"] != ref and len(rows) > 1:
            ids = ", ".join(row["id"] for row in rows[:5])
            raise ConfigError(f"'{ref}' matches several runs: {ids}", hint="give more of the id")
        return StoredRun.from_row(rows[0])


_RUNS = (
    "SELECT *, (SELECT TOTAL(MAX(0, COALESCE(a.finished_at, r.heartbeat, r.started_at)"
    " - a.started_at)) FROM attempts a WHERE a.run_id = r.id) AS run_seconds FROM runs r"
)
"""Runs with the time spent running, summed over their attempts (an open one: until the
last heartbeat)."""
_STEP_STARTED = (
    "INSERT INTO step_runs (run_id, attempt, path, workflow, name, matrix, type,"
    " status, attempts, started_at, log_file, hook)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)"
    " ON CONFLICT (run_id, attempt, path) DO UPDATE SET status = 'running',"
    " attempts = excluded.attempts, log_file = excluded.log_file,"
    " started_at = CASE WHEN excluded.attempts > 1 THEN started_at"
    " ELSE excluded.started_at END,"
    " finished_at = NULL, exit_code = NULL, error = NULL, skip_reason = NULL"
)
_STEP_FINISHED = (
    "INSERT INTO step_runs (run_id, attempt, path, workflow, name, matrix, type,"
    " status, attempts, exit_code, started_at, finished_at, outputs, error,"
    " skip_reason, hook, restored, log_file)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, attempt, path) DO UPDATE SET status = excluded.status,"
    " attempts = excluded.attempts, exit_code = excluded.exit_code,"
    " started_at = excluded.started_at, finished_at = excluded.finished_at,"
    " outputs = excluded.outputs, error = excluded.error,"
    " skip_reason = excluded.skip_reason, restored = excluded.restored,"
    " log_file = COALESCE(excluded.log_file, log_file)"
)


def _start_row(start: StepStart) -> tuple[Any, ...]:
    return (
        start.run_id,
        start.attempt,
        start.path,
        start.workflow,
        start.name,
        _json_or_null(start.matrix),
        start.type,
        start.attempts,
        start.started_at,
        start.log_file,
        int(start.hook),
    )


def _end_row(end: StepEnd) -> tuple[Any, ...]:
    return (
        end.run_id,
        end.attempt,
        end.path,
        end.workflow,
        end.name,
        _json_or_null(end.matrix),
        end.type,
        end.status,
        end.attempts,
        end.exit_code,
        end.started_at,
        end.finished_at,
        _json(end.outputs),
        end.error,
        end.skip_reason,
        int(end.hook),
        int(end.restored),
        end.log_file,
    )


BEAT = "UPDATE runs SET heartbeat = ? WHERE id = ? AND owner_pid = ? AND status = 'running'"
"""The heartbeat's update: only while this process still owns the running run."""


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
    )
    connection.row_factory = sqlite3.Row
    _enable_wal(connection)
    # In WAL mode, NORMAL survives a killed process (not a power cut) without an fsync per commit.
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def _enable_wal(connection: sqlite3.Connection) -> None:
    # Two runners creating one new store race for this switch, and SQLite answers the loser
    # "database is locked" at once instead of waiting out the busy timeout: retry it here.
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    pause = 0.005
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


def _create_private(path: Path) -> None:
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def _insert_attempt(db: sqlite3.Connection, run_id: str, attempt: int, started_at: float) -> None:
    db.execute(
        "INSERT OR REPLACE INTO attempts (run_id, attempt, status, started_at)"
        " VALUES (?, ?, 'running', ?)",
        (run_id, attempt, started_at),
    )


def _owner() -> tuple[int, str, float]:
    return os.getpid(), socket.gethostname(), time.time()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _json_or_null(value: Mapping[str, Any] | None) -> str | None:
    return _json(dict(value)) if value else None


def _like_prefix(ref: str) -> str:
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
