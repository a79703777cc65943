"""What the store gives back: one run, one step record, and how alive a run's owner is."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

HEARTBEAT_SECONDS = 2.0
"""How often a runner touches its run's row."""
STALE_SECONDS = 30.0
"""A run whose heartbeat is older than this has lost its runner, whatever its pid says."""


@dataclass(frozen=True)
class StoredRun:
    id: str
    workflow: str
    file: str
    source_hash: str
    inputs: dict[str, Any]
    config: dict[str, Any]
    selection: dict[str, Any] | None
    steps: list[str]
    recorded_status: str
    """The status column: `running` stays there when the runner dies."""
    attempt: int
    started_at: float
    finished_at: float | None
    exit_code: int | None
    error: str | None
    owner_pid: int | None
    owner_host: str | None
    heartbeat: float | None
    run_seconds: float = 0.0
    """Time spent running, summed over the attempts."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredRun:
        return cls(
            id=row["id"],
            workflow=row["workflow"],
            file=row["file"],
            source_hash=row["source_hash"],
            inputs=json.loads(row["inputs"]),
            config=json.loads(row["config"]),
            selection=json.loads(row["selection"]) if row["selection"] else None,
            steps=json.loads(row["steps"]),
            recorded_status=row["status"],
            attempt=row["attempt"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            exit_code=row["exit_code"],
            error=row["error"],
            owner_pid=row["owner_pid"],
            owner_host=row["owner_host"],
            heartbeat=row["heartbeat"],
            run_seconds=row["run_seconds"],
        )

    @property
    def status(self) -> str:
        """The recorded status, except that a run whose runner is gone is `interrupted`."""
        if self.recorded_status == "running" and not self.owner_alive():
            return "interrupted"
        return self.recorded_status

    def owner_alive(self) -> bool:
        if self.heartbeat is None or time.time() - self.heartbeat > STALE_SECONDS:
            return False
        if self.owner_host == socket.gethostname() and self.owner_pid is not None:
            return pid_alive(self.owner_pid) and _runs_wfe(self.owner_pid)
        return True

    @property
    def on_this_host(self) -> bool:
        return self.owner_host == socket.gethostname()


@dataclass(frozen=True)
class StoredStep:
    run_id: str
    attempt: int
    path: str
    workflow: str
    name: str
    matrix: dict[str, Any] | None
    type: str
    status: str
    attempts: int
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    skip_reason: str | None = None
    log_file: str | None = None
    hook: bool = False
    restored: bool = False

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredStep:
        return cls(
            run_id=row["run_id"],
            attempt=row["attempt"],
            path=row["path"],
            workflow=row["workflow"],
            name=row["name"],
            matrix=json.loads(row["matrix"]) if row["matrix"] else None,
            type=row["type"],
            status=row["status"],
            attempts=row["attempts"],
            exit_code=row["exit_code"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            outputs=json.loads(row["outputs"]),
            error=row["error"],
            skip_reason=row["skip_reason"],
            log_file=row["log_file"],
            hook=bool(row["hook"]),
            restored=bool(row["restored"]),
        )

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at) * 1000)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _runs_wfe(pid: int) -> bool:
    """False when the pid now belongs to another program (pids are reused); True when we
    cannot tell (no /proc)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"wfe" in cmdline.read()
    except OSError:
        return True


def _is_zombie(pid: int) -> bool:
    # A killed runner whose parent has not reaped it yet still answers kill(pid, 0).
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return False
