"""A watchdog that outlives the runner: nothing a step started survives a crashed `wfe`.

Steps run in process groups of their own (so that a timeout can kill a whole group), which
also means a runner killed with SIGKILL would leave them running. The runner tells a small
watchdog process about every group it starts (`+pgid`) and every group that has ended
(`-pgid`) over a pipe. When the pipe closes — the runner exited or died — the watchdog
terminates the groups still listed: a crashed run's steps, and background processes a step
left behind.

A runner killed between starting a step and telling the watchdog (a window that opens
whenever the kernel runs the new process before the runner) would still leave that step
behind, so every step also carries a token in its environment (`WFE_WATCHDOG`). A runner
that exits normally says so (`.`); when the pipe closes without that, the watchdog also
terminates the groups of every process that carries the token.
"""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import sys
import threading

TOKEN_VARIABLE = "WFE_WATCHDOG"

_SCRIPT = """
import os, signal, sys, time
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(number, signal.SIG_IGN)
marker = sys.argv[1].encode()
groups, clean = set(), False
for line in sys.stdin:
    sign = line[:1]
    if sign == ".":
        clean = True
    elif sign in "+-":
        (groups.add if sign == "+" else groups.discard)(int(line[1:]))
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
        self._send(f"+{pgid}\n")

    def ended(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        with self._lock:
            process, _ = self._running()
            if not _write(process, line):
                self._process = None

    def _running(self) -> tuple[subprocess.Popen[bytes], str]:
        # After a fork, poll() reports the parent's watchdog as gone: the child starts its own.
        process = self._process
        if process is None or process.poll() is not None:
            self._token = secrets.token_hex(8)
            process = self._process = _start(self._token)
            if not self._exit_hook:
                atexit.register(self._exit_cleanly)
                self._exit_hook = True
        return process, self._token

    def _exit_cleanly(self) -> None:
        with self._lock:
            process = self._process
            if process is not None and process.poll() is None:
                _write(process, ".\n")


def _write(process: subprocess.Popen[bytes], line: str) -> bool:
    if process.stdin is None:
        return False
    try:
        process.stdin.write(line.encode())
        process.stdin.flush()
    except OSError:
        return False
    return True


def _start(token: str) -> subprocess.Popen[bytes]:
    # Without the token of an outer runner, whose watchdog would otherwise kill this one.
    env = {name: value for name, value in os.environ.items() if name != TOKEN_VARIABLE}
    # Its own session: a Ctrl-C at the terminal must reach the runner, not the watchdog.
    return subprocess.Popen(
        [sys.executable, "-S", "-c", _SCRIPT, f"{TOKEN_VARIABLE}={token}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


watchdog = GroupWatchdog()
