"""Starting a step's process: `os.posix_spawn` where it does what `subprocess.Popen` would.

A run of short steps spends much of its time starting processes. `Popen` prepares each child
in Python (the environment encoded entry by entry, an error pipe, the exec error read back);
`posix_spawn` does the same in C, some 50 µs less per step. It cannot change the working
directory, so it is used only when the step runs in ours, and it closes no descriptors, so
the descriptors `wfe` inherited are made non-inheritable first (Python opens every other one
non-inheritable; a program using wfe as a library has its own inherited ones changed so); the
rest is what `Popen(start_new_session=True)` does: a new session, stdin/stdout/stderr in
place, and SIGPIPE and SIGXFSZ back to their defaults.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Protocol

_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)
"""The signals Python ignores that `Popen(restore_signals=True)` gives back to a child."""

_FD_DIR = "/proc/self/fd"


class StartedProcess(Protocol):
    """What the supervisor needs of a started process (a subset of `Popen`)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...


def start_process(
    argv: list[str],
    *,
    executable: str | None,
    env: dict[str, str],
    cwd: Path,
    stdin: int | None,
    stdout: int,
    stderr: int,
) -> StartedProcess:
    """Start argv in a new session with the given descriptors (stdin None: /dev/null).
    OSError when it cannot start (missing program or working directory)."""
    if executable is not None and _can_spawn(executable, cwd, (stdin, stdout, stderr)):
        spawned = _spawn(argv, executable, env, stdin, stdout, stderr)
        if spawned is not None:
            return spawned
    return subprocess.Popen(
        argv,
        executable=executable,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


class _SpawnedProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            self._reap(0)
        return self.returncode

    def _reap(self, options: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, options)
        except ChildProcessError:
            # Reaped elsewhere, its status lost: what Popen reports in that case too.
            self.returncode = 0
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def __del__(self) -> None:
        # Dropped while running (it survived SIGKILL): reaped at a later start, as Popen does.
        if self.returncode is None:
            _unreaped.append(self.pid)


_unreaped: list[int] = []
_checked_pid: int | None = None
"""The process whose inherited descriptors were made non-inheritable (none after a fork)."""
_spawn_works = hasattr(os, "posix_spawn") and os.path.isdir(_FD_DIR)


def _can_spawn(executable: str, cwd: Path, fds: tuple[int | None, ...]) -> bool:
    return (
        _spawn_works
        and os.path.isabs(executable)
        and all(fd is None or fd > 2 for fd in fds)
        and os.fspath(cwd) == os.getcwd()
    )


def _spawn(
    argv: list[str],
    executable: str,
    env: dict[str, str],
    stdin: int | None,
    stdout: int,
    stderr: int,
) -> StartedProcess | None:
    """The spawned process, or None where this libc cannot start a new session."""
    global _spawn_works
    _reap_dropped()
    _close_inherited_on_exec()
    stdin_action = (
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
        if stdin is None
        else (os.POSIX_SPAWN_DUP2, stdin, 0)
    )
    actions = [stdin_action, (os.POSIX_SPAWN_DUP2, stdout, 1), (os.POSIX_SPAWN_DUP2, stderr, 2)]
    try:
        pid = os.posix_spawn(
            executable, argv, env, file_actions=actions, setsid=True, setsigdef=_DEFAULT_SIGNALS
        )
    except NotImplementedError:
        _spawn_works = False
        return None
    return _SpawnedProcess(pid)


def _reap_dropped() -> None:
    for pid in list(_unreaped):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _unreaped.remove(pid)


def _close_inherited_on_exec() -> None:
    """Make the descriptors this process inherited non-inheritable, once per process:
    `Popen(close_fds=True)` keeps them from every step, and so must a spawned step."""
    global _checked_pid
    if _checked_pid == os.getpid():
        return
    for name in os.listdir(_FD_DIR):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor, now closed
                os.set_inheritable(fd, False)
    _checked_pid = os.getpid()
