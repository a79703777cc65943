"""The store's tables, and forward migrations from any older version of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from wfe_yaml.errors import ConfigError

Migration = str
"""SQL statements that take the schema from one version to the next."""

MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE sources (
        hash TEXT PRIMARY KEY,
        files TEXT NOT NULL                 -- JSON: path relative to the main file → text
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        file TEXT NOT NULL,                 -- absolute path of the workflows file
        source_hash TEXT NOT NULL REFERENCES sources(hash),
        inputs TEXT NOT NULL,               -- JSON, secret values masked
        config TEXT NOT NULL,               -- JSON of the ((variables)), secret values masked
        selection TEXT,                     -- JSON of --only/--from: mode, step, omitted paths
        steps TEXT NOT NULL DEFAULT '[]',   -- JSON: the plan's step paths, in plan order
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        exit_code INTEGER,
        error TEXT,
        owner_pid INTEGER,
        owner_host TEXT,
        heartbeat REAL
    );
    CREATE INDEX runs_by_start ON runs(started_at);
    CREATE TABLE attempts (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        PRIMARY KEY (run_id, attempt)
    );
    CREATE TABLE step_runs (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,           -- the run's attempt (1, then one more per resume)
        path TEXT NOT NULL,
        workflow TEXT NOT NULL,
        name TEXT NOT NULL,
        matrix TEXT,                        -- JSON of the matrix values, or NULL
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,  -- executions of the step (retries included)
        exit_code INTEGER,
        started_at REAL,
        finished_at REAL,
        outputs TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        skip_reason TEXT,
        log_file TEXT,                      -- relative to the store's directory
        hook INTEGER NOT NULL DEFAULT 0,    -- 1 for on_success/on_failure/ensure/compensate
        restored INTEGER NOT NULL DEFAULT 0,  -- 1 when outputs were restored, not produced
        PRIMARY KEY (run_id, attempt, path)
    );
    """,
)


def migrate(connection: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the schema up to the newest version; return that version.

    An up-to-date store is only read. Otherwise the migrations run in one write transaction
    that first reads the version again, so two processes opening an old store at once agree.
    """
    if _version(connection, len(migrations)) == len(migrations):
        return len(migrations)
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = _version(connection, len(migrations))
        for script in migrations[current:]:
            for statement in _statements(script):
                connection.execute(statement)
        connection.execute("DELETE FROM schema_version")
        connection.execute("INSERT INTO schema_version VALUES (?)", (len(migrations),))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(migrations)


def _version(connection: sqlite3.Connection, known: int) -> int:
    try:
        row = connection.execute("SELECT version FROM schema_version").fetchone()
    except sqlite3.OperationalError:  # no such table: a new store
        return 0
    current = row[0] if row else 0
    if current > known:
        raise ConfigError(
            f"the run store was written by a newer wfe (schema {current}, this one knows {known})",
            hint="upgrade wfe-yaml, or use another store with --store",
        )
    return int(current)


def _statements(script: str) -> list[str]:
    # executescript() would commit the open transaction: split and run one by one instead.
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
