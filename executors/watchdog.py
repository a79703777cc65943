"""A watchdog that outlives the runner: nothing a step started survives a crashed `wfe`.

Steps run in process groups of their own (so that a timeout can kill a whole group), which
also means a runner killed with SIGKILL would leave them running. The runner tells a small
watchdog process about every group it starts (`+pgid`) and every group that has ended
(`-pgid`) over a pipe. When the pipe closes — the runner exited or died — the watchdog
terminates the groups still listed: a crashed run's steps, and background processes a step
left behind.
"""

from __future__ import annotations

import subprocess
import sys
import threading

_SCRIPT = """
import os, signal, sys, time
for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(number, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    sign, pgid = line[:1], int(line[1:])
    (groups.add if sign == "+" else groups.discard)(pgid)
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
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def started(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def ended(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                process = self._process = _start()
            if process.stdin is None:
                return
            try:
                process.stdin.write(line.encode())
                process.stdin.flush()
            except OSError:
                self._process = None


def _start() -> subprocess.Popen[bytes]:
    # Its own session: a Ctrl-C at the terminal must reach the runner, not the watchdog.
    return subprocess.Popen(
        [sys.executable, "-S", "-c", _SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


watchdog = GroupWatchdog()
