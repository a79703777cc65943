"""Step log files: `logs/<run>/<path with / as __>.log` beside the store, private to the user."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from executors.loglines import as_text
from wfe_yaml.store.store import PRIVATE_DIR, PRIVATE_FILE

BUFFER_BYTES = 64 * 1024
FOLLOW_FLUSH_SECONDS = 0.5
"""A line a running step writes reaches the disk within this time, for `wfe logs -f`."""
_MAX_NAME = 200


def log_name(path: str) -> str:
    """The file name of a step's log: its path with `/` as `__` (hashed when too long)."""
    name = path.replace("/", "__")
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(path.encode()).hexdigest()[:16]
        name = f"{name[: _MAX_NAME - 17]}-{digest}"
    return f"{name}.log"


def run_log_dir(logs_root: Path, run_id: str) -> Path:
    return logs_root / run_id


@dataclass
class _OpenLog:
    file: TextIO
    dirty: bool = False


class LogFiles:
    """Buffered writers for the steps of one run that are running now."""

    def __init__(self, directory: Path, root: Path):
        self.directory = directory
        self._relative_dir = directory.relative_to(root)
        self._open: dict[str, _OpenLog] = {}
        self._created = False
        self._flush_due = False

    def relative(self, path: str) -> str:
        """Where a step's log is, relative to the store's directory."""
        return f"{self._relative_dir}/{log_name(path)}"

    def begin(self, path: str, header: str | None) -> None:
        """A step starts: a retry or a resumed run appends to the earlier log, under a header."""
        self.close(path)
        if header is None:
            return
        target = self.directory / log_name(path)
        if target.exists() and target.stat().st_size > 0:
            self._log(path).file.write(f"--- {header} ---\n")

    def write(self, path: str, lines: Sequence[str]) -> None:
        if not lines:
            return
        log = self._log(path)
        log.file.write(as_text(lines))
        log.dirty = True
        if not self._flush_due:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        """One flush of every written-to log, half a second from now: writes stay batched,
        and a step that goes quiet still shows its last lines."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the engine's loop: no timer to wait for
            self._flush_dirty()
            return
        self._flush_due = True
        loop.call_later(FOLLOW_FLUSH_SECONDS, self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_due = False
        for log in self._open.values():
            if log.dirty:
                log.file.flush()
                log.dirty = False

    def close(self, path: str) -> None:
        log = self._open.pop(path, None)
        if log is not None:
            log.file.close()

    def close_all(self) -> None:
        for path in list(self._open):
            self.close(path)

    def _log(self, path: str) -> _OpenLog:
        log = self._open.get(path)
        if log is None:
            if not self._created:
                self.directory.parent.mkdir(mode=PRIVATE_DIR, exist_ok=True)
                self.directory.mkdir(mode=PRIVATE_DIR, exist_ok=True)
                self._created = True
            descriptor = os.open(
                self.directory / log_name(path),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                PRIVATE_FILE,
            )
            file = open(  # noqa: SIM115 - closed when the step ends
                descriptor, "a", buffering=BUFFER_BYTES, encoding="utf-8", errors="replace"
            )
            log = self._open[path] = _OpenLog(file)
        return log
