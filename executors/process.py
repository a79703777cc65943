"""Subprocess control shared by the executors: process group, line streaming, cancellation.

A process runs in its own session, so it and everything it starts form one process group
that can be signalled as a whole. Its stdout and stderr are read as they arrive, cut into
lines and handed on in batches: memory stays flat whatever the process prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from executors.base import LogSink
from executors.loglines import LogLines
from executors.outputs import holds_marker
from executors.spawn import StartedProcess, start_process
from executors.watchdog import TOKEN_VARIABLE, watchdog

MAX_LINE_BYTES = 1024 * 1024
"""A longer line is delivered as several lines of at most this many bytes."""

PIPE_DRAIN_SECONDS = 0.5
"""How long output may still arrive after the process exited, before the group is killed."""

FIRST_READ_BYTES = 64 * 1024
"""A pipe's read buffer at first: the usual pipe capacity."""

GROWN_PIPE_BYTES = 1024 * 1024
"""Read buffer and (on Linux) pipe capacity once a read fills the buffer: fewer reads."""

_KILL_WAIT_SECONDS = 2.0
_POLL_FIRST_SECONDS = 0.005
_POLL_MAX_SECONDS = 0.05
_PROC = Path("/proc")

BatchHandler = Callable[[Sequence[str], bool], None]
"""Receives (lines, may_hold_marker): a batch of complete lines, and whether a `##wfe[`
command may be among them (False guarantees there is none)."""


@dataclass(frozen=True)
class ProcessOutcome:
    """How a process ended. Killed by a signal: `exit_code` is None and `signal` names it
    (not 128+n, which a script can also `exit` with)."""

    exit_code: int | None
    signal: int | None
    duration: float

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by signal {self.signal} ({signal_name(self.signal)})"
        return f"exited with code {self.exit_code}"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class LineSplitter:
    """Cuts a byte stream into lines: UTF-8 (invalid bytes replaced), no `\\n`, no trailing
    `\\r`. Feed it chunks; `close()` delivers a last line that had no newline."""

    def __init__(self, on_lines: BatchHandler, *, max_line: int = MAX_LINE_BYTES) -> None:
        self._on_lines = on_lines
        self._max_line = max_line
        self._tail = bytearray()

    def feed(self, data: bytes | bytearray, size: int | None = None) -> None:
        """Take data[:size] (all of it by default); the buffer may be reused afterwards."""
        end = len(data) if size is None else size
        # Ranges no longer than a line's cap keep every line after the first one within it.
        for start in range(0, end, self._max_line):
            self._feed_range(data, start, min(start + self._max_line, end))

    def close(self) -> None:
        if self._tail:
            last = bytes(self._tail)
            self._tail.clear()
            self._on_lines([_strip_cr(_decode(last))], holds_marker(last))

    def _feed_range(self, data: bytes | bytearray, start: int, end: int) -> None:
        view = memoryview(data)
        last_newline = data.rfind(b"\n", start, end)
        if last_newline < 0:
            self._tail += view[start:end]
            self._emit_overlong_tail()
            return
        if not self._tail:
            # The range starts a line: all its complete lines are one batch, decoded in place.
            self._tail = bytearray(view[last_newline + 1 : end])
            block = view[start : last_newline + 1]
            self._on_lines(
                LogLines(_block_text(block)), holds_marker(data, start, last_newline + 1)
            )
            return
        first_newline = data.find(b"\n", start, end)
        # The line completed by this range's first newline goes first, on its own: joining
        # it to the bulk would copy the whole range once more.
        head = self._tail + view[start : first_newline + 1]
        self._tail = bytearray(view[last_newline + 1 : end])
        if len(head) <= self._max_line:
            self._on_lines(LogLines(_block_text(head)), holds_marker(head))
        else:
            pieces = [_strip_cr(_decode(piece)) for piece in self._pieces(head[:-1])]
            self._on_lines(pieces, holds_marker(head))
        if last_newline > first_newline:
            # The bulk of the range is decoded in place, without copying it first.
            bulk = _block_text(view[first_newline + 1 : last_newline + 1])
            self._on_lines(LogLines(bulk), holds_marker(data, first_newline + 1, last_newline + 1))

    def _emit_overlong_tail(self) -> None:
        while len(self._tail) > self._max_line:
            cut = _char_boundary(self._tail, self._max_line)
            piece = bytes(self._tail[:cut])
            del self._tail[:cut]
            self._on_lines([_decode(piece)], holds_marker(piece))

    def _pieces(self, line: bytearray) -> list[bytes]:
        pieces = []
        while len(line) > self._max_line:
            cut = _char_boundary(line, self._max_line)
            pieces.append(bytes(line[:cut]))
            del line[:cut]
        pieces.append(bytes(line))
        return pieces


def _decode(data: bytes | bytearray | memoryview) -> str:
    return str(data, "utf-8", "replace")


def _block_text(block: bytes | bytearray | memoryview) -> str:
    """The text of a block that ends with a newline, with `\r\n` line ends made `\n`."""
    text = _decode(block)
    return text.replace("\r\n", "\n") if "\r" in text else text


def _strip_cr(line: str) -> str:
    return line[:-1] if line.endswith("\r") else line


def _char_boundary(data: bytearray, limit: int) -> int:
    """The largest cut at or below limit that does not split a UTF-8 sequence."""
    for cut in range(limit, max(limit - 4, 0), -1):
        if data[cut] & 0xC0 != 0x80:
            return cut
    return limit


class _ProcessWatch:
    """What the supervisor waits for: the process's exit, the end of its output pipes, and a
    failure of a line consumer (kept here, since a reader callback cannot raise usefully).

    Each change wakes the waiting supervisor directly: `asyncio.wait` would cost two more
    turns of the event loop per wait, which a run of short steps pays at every step.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self.exited = False
        self.pipes_closed = False
        self.sink_error: Exception | None = None
        self.open_pipes = 0

    def process_exited(self) -> None:
        self.exited = True
        self._changed()

    def pipe_ended(self) -> None:
        self.open_pipes -= 1
        if self.open_pipes <= 0:
            self.pipes_closed = True
            self._changed()

    def deliver(self, action: Callable[..., None], *args: object) -> None:
        if self.sink_error is not None:
            return  # the group is being terminated; its remaining output is dropped
        try:
            action(*args)
        except Exception as error:
            self.sink_error = error
            self._changed()

    def ended_or_failed(self) -> bool:
        return self.exited or self.sink_error is not None

    async def until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait until `condition()` holds (True) or `timeout` seconds pass (False)."""
        deadline = None if timeout is None else self._loop.time() + timeout
        while not condition():
            if deadline is not None and self._loop.time() >= deadline:
                return False
            waiter = self._waiter = self._loop.create_future()
            timer = None if deadline is None else self._loop.call_at(deadline, _wake, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return True

    def _changed(self) -> None:
        if self._waiter is not None:
            _wake(self._waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _PipeReader:
    """Reads one pipe whenever it is readable, into one reused buffer (allocating a fresh
    buffer per read costs more than the read itself), and feeds a line splitter."""

    def __init__(self, fd: int, splitter: LineSplitter, watch: _ProcessWatch) -> None:
        self._fd = fd
        self._splitter = splitter
        self._watch = watch
        self._buffer = bytearray(FIRST_READ_BYTES)
        self._loop = asyncio.get_running_loop()
        self.closed = False
        os.set_blocking(fd, False)
        watch.open_pipes += 1
        self._loop.add_reader(fd, self._on_readable)

    def close(self) -> None:
        """Stop reading; a last line without newline is still delivered. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._watch.deliver(self._splitter.close)
        self._watch.pipe_ended()

    def _on_readable(self) -> None:
        try:
            size = os.readv(self._fd, [self._buffer])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            size = 0
        if size == 0:
            self.close()
            return
        self._watch.deliver(self._splitter.feed, self._buffer, size)
        if size == len(self._buffer) < GROWN_PIPE_BYTES:
            self._enlarge()

    def _enlarge(self) -> None:
        # Only pipes that fill up grow: many quiet parallel steps should not each hold a
        # large buffer, nor use up the pipe memory the kernel allows a user.
        self._buffer = bytearray(GROWN_PIPE_BYTES)
        set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
        if set_size is not None:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._fd, set_size, GROWN_PIPE_BYTES)


async def run_process(
    argv: list[str],
    *,
    executable: str | None = None,
    env: dict[str, str],
    cwd: Path,
    log: LogSink,
    stdout_lines: Callable[[Sequence[str]], None] | None = None,
    stdout_markers_only: bool = True,
    kill_grace: float = 10.0,
    stdin_data: bytes | None = None,
    drain: float = PIPE_DRAIN_SECONDS,
) -> ProcessOutcome:
    """Run argv in a new process group, streaming its output, until it and its pipes end.

    `executable` is the program file when the caller has already found it (argv[0] stays the
    name the program sees); None searches PATH for argv[0].

    Each batch of lines goes to `log(stream, lines)`; stdout batches go first to
    `stdout_lines` (before `log`, so that masks found in a batch can already hide it), and
    with `stdout_markers_only` only the batches that may hold a `##wfe[` command.

    When the process exits while something it started still holds the pipes open, output is
    awaited for `drain` seconds, then the rest of the group is terminated. Processes that no
    longer write to the pipes are left running (a step may start a server for later steps).

    Cancelling the awaiting task terminates the whole group (SIGTERM, up to `kill_grace`
    seconds, then SIGKILL) and re-raises CancelledError; a second cancel kills at once.
    An exception raised by `log` or `stdout_lines` terminates the group and is re-raised.
    OSError when the process cannot be started (missing program or cwd).
    """
    started = time.monotonic()
    stdout_splitter = LineSplitter(_stdout_handler(log, stdout_lines, stdout_markers_only))
    stderr_splitter = LineSplitter(lambda lines, _marked: log("stderr", lines))
    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    watch = _ProcessWatch()
    try:
        child = _spawn(argv, executable, env, cwd, stdin_data, stdout_write, stderr_write, watch)
    except BaseException:
        os.close(stdout_read)
        os.close(stderr_read)
        raise
    finally:
        os.close(stdout_write)
        os.close(stderr_write)
    readers = [
        _PipeReader(stdout_read, stdout_splitter, watch),
        _PipeReader(stderr_read, stderr_splitter, watch),
    ]
    pgid = child.pid
    try:
        await _supervise(pgid, watch, kill_grace, drain)
    finally:
        for reader in readers:
            reader.close()
        child.close()
        if not group_alive(pgid):
            watchdog.ended(pgid)
    if watch.sink_error is not None:
        raise watch.sink_error
    return _outcome(child.returncode, time.monotonic() - started)


def _spawn(
    argv: list[str],
    executable: str | None,
    env: dict[str, str],
    cwd: Path,
    stdin_data: bytes | None,
    stdout: int,
    stderr: int,
    watch: _ProcessWatch,
) -> _Child:
    env = {**env, TOKEN_VARIABLE: watchdog.ensure_running()}
    stdin_read = stdin_write = None
    if stdin_data is not None:
        stdin_read, stdin_write = os.pipe()
    try:
        process = start_process(
            argv,
            executable=executable,
            env=env,
            cwd=cwd,
            stdin=stdin_read,
            stdout=stdout,
            stderr=stderr,
        )
    except BaseException:
        for fd in (stdin_read, stdin_write):
            if fd is not None:
                os.close(fd)
        raise
    # At once, before anything awaits; the token in env covers a runner killed before this.
    watchdog.started(process.pid)
    stdin = None
    if stdin_read is not None and stdin_write is not None:
        os.close(stdin_read)
        stdin = _StdinWriter(stdin_write, stdin_data or b"")
    return _Child(process, watch, stdin)


class _Child:
    """A started process whose exit it reports to `watch`: through a pidfd on the event
    loop where the kernel has them (no thread per process), else through a waiting thread."""

    def __init__(
        self, process: StartedProcess, watch: _ProcessWatch, stdin: _StdinWriter | None
    ) -> None:
        self._process = process
        self._watch = watch
        self._stdin = stdin
        self._loop = asyncio.get_running_loop()
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_in_thread, daemon=True).start()
        else:
            self._loop.add_reader(self._pidfd, self._on_exit)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def close(self) -> None:
        """Stop watching; a process still running is reaped later, as `Popen` does."""
        if self._stdin is not None:
            self._stdin.close()
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _on_exit(self) -> None:
        if self._process.poll() is not None:
            self.close()
            self._watch.process_exited()

    def _wait_in_thread(self) -> None:
        self._process.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._watch.process_exited)


class _StdinWriter:
    """Writes bytes to a child's stdin whenever the pipe takes them, then closes it."""

    def __init__(self, fd: int, data: bytes) -> None:
        self._fd = fd
        self._data = memoryview(data)
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._loop.add_writer(fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            written = os.write(self._fd, self._data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            written = len(self._data)  # the reader is gone: nothing more to send
        self._data = self._data[written:]
        if not self._data:
            self.close()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_writer(self._fd)
            os.close(self._fd)
            self._fd = -1


def _stdout_handler(
    log: LogSink, stdout_lines: Callable[[Sequence[str]], None] | None, markers_only: bool
) -> BatchHandler:
    if stdout_lines is None:
        return lambda lines, _marked: log("stdout", lines)
    consume = stdout_lines

    def handle(lines: Sequence[str], marked: bool) -> None:
        if marked or not markers_only:
            consume(lines)
        log("stdout", lines)

    return handle


async def _supervise(pgid: int, watch: _ProcessWatch, kill_grace: float, drain: float) -> None:
    def exited() -> bool:
        return watch.exited

    def pipes_closed() -> bool:
        return watch.pipes_closed

    try:
        await watch.until(watch.ended_or_failed)
        if watch.sink_error is None:
            await watch.until(pipes_closed, drain)
        if watch.sink_error is not None or not watch.pipes_closed:
            await _terminate_group(pgid, kill_grace)
            await watch.until(exited, _KILL_WAIT_SECONDS)
            # Something outside the group (it called setsid) may hold the pipes forever.
            await watch.until(pipes_closed, drain)
    except asyncio.CancelledError:
        try:
            await _terminate_group(pgid, kill_grace)
        finally:
            await watch.until(exited, _KILL_WAIT_SECONDS)
        raise


async def _terminate_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, SIGKILL what is left after `grace` seconds (or on a second cancel)."""
    _signal_group(pgid, signal.SIGTERM)
    try:
        if await _group_gone_within(pgid, grace):
            return
    except asyncio.CancelledError:
        _signal_group(pgid, signal.SIGKILL)
        await _group_gone_within(pgid, _KILL_WAIT_SECONDS)
        raise
    _signal_group(pgid, signal.SIGKILL)
    await _group_gone_within(pgid, _KILL_WAIT_SECONDS)


def _signal_group(pgid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, number)


async def _group_gone_within(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pause = _POLL_FIRST_SECONDS
    while group_alive(pgid):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, _POLL_MAX_SECONDS)
    return True


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: an orphan waits for
    init to reap it, and some container inits never do."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _live_member_in_proc(pgid) if _PROC.is_dir() else True


def _live_member_in_proc(pgid: int) -> bool:
    with os.scandir(_PROC) as entries:
        return any(entry.name.isdigit() and _is_live_member(entry.path, pgid) for entry in entries)


def _is_live_member(proc_dir: str, pgid: int) -> bool:
    try:
        with open(f"{proc_dir}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return False
    # After the command name come: state, ppid, pgrp, ...
    return fields[0] != b"Z" and int(fields[2]) == pgid


def _outcome(returncode: int | None, duration: float) -> ProcessOutcome:
    if returncode is not None and returncode < 0:
        return ProcessOutcome(exit_code=None, signal=-returncode, duration=duration)
    return ProcessOutcome(exit_code=returncode, signal=None, duration=duration)
