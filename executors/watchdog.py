"""A watchdog that outlives the runner: nothing a step started survives a crashed `wfe`.

Steps run in process groups of their own (so that a timeout can kill a whole group), which
also means a runner killed with SIGKILL would leave them running. The runner starts a small
watchdog process that holds the read end of a pipe from it, and writes every group it starts
(`+pgid`) and every group that has ended (`-pgid`) to a table file. When the pipe closes —
the runner exited or died — the watchdog terminates the groups the table still lists: a
crashed run's steps, and background processes a step left behind. (A file, not the pipe,
takes the groups: a write to a pipe wakes the watchdog, twice per step, at about 20–50 µs a
write on a 2-CPU machine; a file write wakes nobody.)

A runner killed between starting a step and telling the watchdog (a window that opens
whenever the kernel runs the new process before the runner) would still leave that step
behind, so every step also carries a token in its environment (`WFE_WATCHDOG`). A runner
that exits normally says so (`.`); when the pipe closes without that, the watchdog also
terminates the groups of every process that carries the token.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import secrets
import subprocess
import sys
import tempfile
import threading

TOKEN_VARIABLE = "WFE_WATCHDOG"

_SCRIPT = """
import os, signal, sys, time
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(number, signal.SIG_IGN)
marker, table = sys.argv[1].encode(), sys.argv[2]
clean = any(line.startswith(".") for line in sys.stdin)
groups = set()
try:
    with open(table) as lines:
        for line in lines:
            if line[:1] in ("+", "-") and line[1:-1].isdigit():
                (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
    os.unlink(table)
except OSError:
    pass
def marked_groups():
    found = set()
    try:
        names = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return found
    for name in names:
        try:
            with open("/proc/" + name + "/environ", "rb") as environ:
                if marker in environ.read().split(b"\\0"):
                    found.add(os.getpgid(int(name)))
        except OSError:
            pass
    return found
if not clean:
    groups |= marked_groups()
groups -= {0, 1, os.getpgid(0)}
def send(number):
    for pgid in list(groups):
        try:
            os.killpg(pgid, number)
        except OSError:
            groups.discard(pgid)
send(signal.SIGTERM)
if groups:
    time.sleep(2)
    send(signal.SIGKILL)
"""


class GroupWatchdog:
    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._token = ""
        self._table = -1
        self._lock = threading.Lock()
        self._exit_hook = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def ensure_running(self) -> str:
        """Start the watchdog unless it runs; the token that steps must carry."""
        with self._lock:
            return self._running()[1]

    def started(self, pgid: int) -> None:
        self._record(f"+{pgid}\n")

    def ended(self, pgid: int) -> None:
        self._record(f"-{pgid}\n")

    def _record(self, line: str) -> None:
        with self._lock:
            self._running()
            with contextlib.suppress(OSError):
                os.write(self._table, line.encode())

    def _running(self) -> tuple[subprocess.Popen[bytes], str]:
        # After a fork, poll() reports the parent's watchdog as gone: the child starts its own.
        process = self._process
        if process is None or process.poll() is not None:
            self._token = secrets.token_hex(8)
            if self._table >= 0:
                os.close(self._table)
            self._table, table_path = _new_table()
            process = self._process = _start(self._token, table_path)
            if not self._exit_hook:
                atexit.register(self._exit_cleanly)
                self._exit_hook = True
        return process, self._token

    def _exit_cleanly(self) -> None:
        with self._lock:
            process = self._process
            if process is not None and process.stdin is not None and process.poll() is None:
                with contextlib.suppress(OSError):
                    process.stdin.write(b".\n")
                    process.stdin.flush()


def _new_table() -> tuple[int, str]:
    """An append-only file for the group lines, open for writing, and its path."""
    fd, path = tempfile.mkstemp(prefix="wfe-watchdog-", suffix=".groups")
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_APPEND)
    return fd, path


def _start(token: str, table: str) -> subprocess.Popen[bytes]:
    # Without the token of an outer runner, whose watchdog would otherwise kill this one.
    env = {name: value for name, value in os.environ.items() if name != TOKEN_VARIABLE}
    # Its own session: a Ctrl-C at the terminal must reach the runner, not the watchdog.
    return subprocess.Popen(
        [sys.executable, "-S", "-c", _SCRIPT, f"{TOKEN_VARIABLE}={token}", table],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


watchdog = GroupWatchdog()
