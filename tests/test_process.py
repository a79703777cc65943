from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from executors.process import (
    MAX_LINE_BYTES,
    LineSplitter,
    ProcessOutcome,
    group_alive,
    run_process,
)
from executors.spawn import start_process
from tests._requests import LogCapture, cancel_after, open_fds, process_alive, run

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

SH = shutil.which("sh")
START: dict[str, Any] = {}
"""Where the processes of a test start: set for each of the two ways a process is started."""


@pytest.fixture(autouse=True, params=["spawned here", "popen elsewhere"])
def start_path(request: pytest.FixtureRequest) -> None:
    # A step in wfe's own directory is started by posix_spawn, elsewhere by Popen: every
    # process test runs both ways, as both must behave alike.
    START["cwd"] = Path.cwd() if request.param == "spawned here" else Path("/")


async def start(argv: list[str], log: LogCapture | None = None, **kw: Any) -> ProcessOutcome:
    kw.setdefault("env", dict(os.environ))
    return await run_process(
        argv,
        executable=shutil.which(argv[0]),
        cwd=START["cwd"],
        log=log if log is not None else LogCapture(),
        **kw,
    )


async def sh(script: str, log: LogCapture | None = None, **kw: Any) -> ProcessOutcome:
    return await start(["sh", "-c", script], log, **kw)


# -- line splitting ---------------------------------------------------------------------


def split(*chunks: bytes, max_line: int = MAX_LINE_BYTES) -> list[tuple[list[str], bool]]:
    batches: list[tuple[list[str], bool]] = []
    splitter = LineSplitter(
        lambda lines, marked: batches.append((lines, marked)), max_line=max_line
    )
    for chunk in chunks:
        splitter.feed(chunk)
    splitter.close()
    return batches


def lines_of(batches: list[tuple[list[str], bool]]) -> list[str]:
    return [line for lines, _ in batches for line in lines]


def test_lines_split_across_chunks_are_joined() -> None:
    assert lines_of(split(b"ab", b"c\nde", b"f\ng", b"h\n")) == ["abc", "def", "gh"]


def test_final_line_without_newline_is_delivered() -> None:
    assert lines_of(split(b"one\ntwo")) == ["one", "two"]
    assert lines_of(split(b"one\n")) == ["one"]
    assert lines_of(split(b"")) == []


def test_crlf_and_empty_lines() -> None:
    assert lines_of(split(b"a\r\n\r\nb\r", b"\nc\r\r\nd\r")) == ["a", "", "b", "c\r", "d"]


def test_crlf_split_between_chunks() -> None:
    assert lines_of(split(b"a\r", b"\nb\n")) == ["a", "b"]


def test_invalid_utf8_is_replaced_and_split_sequences_survive() -> None:
    assert lines_of(split(b"caf\xc3", b"\xa9\n\xff\n")) == ["café", "\ufffd"]


def test_feed_takes_only_the_given_size_of_a_reused_buffer() -> None:
    batches: list[tuple[list[str], bool]] = []
    splitter = LineSplitter(lambda lines, marked: batches.append((lines, marked)))
    buffer = bytearray(b"first\nsec")
    splitter.feed(buffer, 9)
    buffer[:6] = b"ond\nXX"
    splitter.feed(buffer, 4)
    splitter.close()
    assert lines_of(batches) == ["first", "second"]


def test_overlong_line_is_cut_into_pieces_without_splitting_characters() -> None:
    batches = split("é".encode() * 10, b"tail\n", max_line=5)
    pieces = lines_of(batches)
    assert "".join(pieces) == "é" * 10 + "tail"
    assert all(len(piece.encode()) <= 5 for piece in pieces)
    assert "\ufffd" not in "".join(pieces)


def test_overlong_line_inside_one_chunk_is_cut() -> None:
    pieces = lines_of(split(b"short\n" + b"x" * 12 + b"\nend\n", max_line=5))
    assert pieces == ["short", "xxxxx", "xxxxx", "xx", "end"]


def test_batches_are_flagged_only_when_a_marker_may_be_inside() -> None:
    batches = split(b"plain\n# comment\n", b"x\n##wfe[output a=1]\n", b"##wfe[mask v]")
    assert [marked for _, marked in batches] == [False, True, True]


# -- running processes ------------------------------------------------------------------


def test_stdout_and_stderr_are_streamed_separately() -> None:
    log = LogCapture()
    outcome = run(sh("echo out1; echo err1 >&2; printf 'out2'", log))
    assert outcome == ProcessOutcome(0, None, outcome.duration)
    assert log.lines("stdout") == ["out1", "out2"]
    assert log.lines("stderr") == ["err1"]


def test_lines_written_in_pieces_with_pauses() -> None:
    log = LogCapture()
    run(sh("printf 'ab'; sleep 0.05; printf 'c\\r\\nd'; sleep 0.05; printf 'e\\n'", log))
    assert log.lines() == ["abc", "de"]


def test_huge_single_line_is_delivered_in_capped_pieces() -> None:
    log = LogCapture()
    size = 3 * MAX_LINE_BYTES + 123
    script = f"import sys; sys.stdout.write('y' * {size})"
    run(start([sys.executable, "-c", script], log))
    pieces = log.lines()
    assert sum(map(len, pieces)) == size
    assert max(map(len, pieces)) <= MAX_LINE_BYTES


def test_many_lines_arrive_in_few_batches_and_all_in_order() -> None:
    log = LogCapture()
    run(sh("seq 1 200000", log))
    assert log.lines() == [str(n) for n in range(1, 200001)]
    assert len(log.batches) < 200


def test_stdout_lines_sees_only_marked_batches_by_default(tmp_path: Path) -> None:
    seen: list[list[str]] = []
    read = tmp_path / "read"

    def log(stream: str, lines: list[str]) -> None:
        if "50000" in lines:
            read.touch()

    # The marker follows once the numbers were read (not after a pause, which a loaded
    # machine can outlast): it cannot arrive in the same batch as any of them.
    wait = f"for i in $(seq 3000); do [ -e {read} ] && break; sleep 0.01; done"
    script = f"seq 1 50000; {wait}; echo '##wfe[output a=1]'"
    run(sh(script, log, stdout_lines=seen.append))  # type: ignore[arg-type]
    assert [line for batch in seen for line in batch] == ["##wfe[output a=1]"]


def test_stdout_lines_sees_everything_when_asked() -> None:
    seen: list[str] = []
    run(sh("echo a; echo b >&2; echo c", stdout_lines=seen.extend, stdout_markers_only=False))
    assert seen == ["a", "c"]


def test_stdout_lines_gets_a_batch_before_the_log() -> None:
    order: list[str] = []
    run(
        sh(
            "echo '##wfe[mask x]'",
            log=lambda stream, lines: order.append("log"),  # type: ignore[arg-type]
            stdout_lines=lambda lines: order.append("parser"),
        )
    )
    assert order == ["parser", "log"]


def test_stdin_data_is_sent() -> None:
    log = LogCapture()
    run(sh("cat", log, stdin_data=b"from stdin\n"))
    assert log.lines() == ["from stdin"]


def test_stdin_is_empty_by_default() -> None:
    log = LogCapture()
    run(sh("cat; echo done", log))
    assert log.lines() == ["done"]


def test_exit_code_is_reported() -> None:
    outcome = run(sh("exit 3"))
    assert (outcome.exit_code, outcome.signal) == (3, None)
    assert outcome.describe() == "exited with code 3"
    assert not outcome.succeeded


def test_death_by_signal_is_reported() -> None:
    outcome = run(sh("kill -9 $$"))
    assert (outcome.exit_code, outcome.signal) == (None, signal.SIGKILL)
    assert outcome.describe() == "killed by signal 9 (SIGKILL)"


def test_missing_program_raises_oserror() -> None:
    with pytest.raises(FileNotFoundError):
        run(run_process(["no-such-program-wfe"], env={}, cwd=START["cwd"], log=LogCapture()))
    with pytest.raises(FileNotFoundError):
        run(
            run_process(
                ["gone"], executable="/no/such/program", env={}, cwd=START["cwd"], log=LogCapture()
            )
        )


def test_missing_working_directory_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run(run_process(["sh", "-c", "true"], env={}, cwd=tmp_path / "gone", log=LogCapture()))


def test_process_runs_in_its_own_session() -> None:
    log = LogCapture()
    script = "import os; print(os.getsid(0)); print(os.getpgid(0)); print(os.getpid())"
    run(start([sys.executable, "-c", script], log, env={}))
    sid, pgid, pid = (int(value) for value in log.lines())
    assert sid == pgid == pid != os.getpgid(0)


def test_process_runs_in_the_given_directory() -> None:
    log = LogCapture()
    run(sh("pwd -P", log))
    assert log.lines() == [str(START["cwd"].resolve())]


def test_sigpipe_is_back_to_its_default() -> None:
    # Python ignores SIGPIPE; a step's `yes | head` must end quietly, as in a terminal.
    log = LogCapture()
    outcome = run(sh("yes | head -n 1", log))
    assert outcome.succeeded
    assert (log.lines(), log.lines("stderr")) == (["y"], [])


def test_descriptors_wfe_inherited_do_not_reach_the_process(tmp_path: Path) -> None:
    # Like a runner started by make with its jobserver pipe: the step must not hold it.
    runner_dir = START["cwd"] if START["cwd"] == Path.cwd() else tmp_path
    program = (
        "import asyncio, os, sys; from pathlib import Path\n"
        "from executors.process import run_process\n"
        "os.chdir(sys.argv[1])\n"  # the step's directory is the runner's, or not
        "log = lambda stream, lines: print(*lines, sep='\\n')\n"
        "asyncio.run(run_process(['sh', '-c', 'ls /proc/self/fd'], executable=sys.argv[2],"
        " env={}, cwd=Path(sys.argv[3]), log=log))\n"
    )
    read_end, write_end = os.pipe()
    try:
        listing = subprocess.run(
            [sys.executable, "-c", program, str(runner_dir), str(SH), str(START["cwd"])],
            pass_fds=(write_end,),
            cwd=Path(__file__).parent.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert str(write_end) not in listing
    assert {"0", "1", "2"} <= set(listing)


def test_a_step_in_the_runners_directory_is_spawned_directly() -> None:
    read_end, write_end = os.pipe()
    try:
        process = start_process(
            ["sh", "-c", "true"],
            executable=str(SH),
            env={},
            cwd=START["cwd"],
            stdin=None,
            stdout=write_end,
            stderr=write_end,
        )
        process.wait()
    finally:
        os.close(read_end)
        os.close(write_end)
    spawned = not isinstance(process, subprocess.Popen)
    assert spawned == (START["cwd"] == Path.cwd())
    assert process.returncode == 0


def cancel_test(script: str, kill_grace: float) -> tuple[list[int], float]:
    """Run script, cancel it once it printed its pids; return them and the cancel time."""
    pids: list[int] = []

    async def scenario() -> float:
        ready = asyncio.Event()

        def log(stream: str, lines: list[str]) -> None:
            pids.extend(int(line) for line in lines if line.isdigit())
            if len(pids) >= 2:
                ready.set()

        started = time.monotonic()
        await cancel_after(sh(script, log, kill_grace=kill_grace), ready)  # type: ignore[arg-type]
        return time.monotonic() - started

    elapsed = run(scenario())
    return pids, elapsed


def test_cancel_kills_the_whole_group_including_background_children() -> None:
    pids, elapsed = cancel_test("sleep 1000 & echo $!; echo $$; wait", kill_grace=5)
    assert not any(map(process_alive, pids))
    assert not group_alive(pids[1])
    assert elapsed < 3


def test_cancel_kills_a_detached_grandchild() -> None:
    script = "(sleep 1000 & echo $!); echo $$; sleep 1000"
    pids, _ = cancel_test(script, kill_grace=5)
    assert not any(map(process_alive, pids))


def test_cancel_escalates_to_sigkill_after_the_grace() -> None:
    script = "trap '' TERM; sleep 1000 & echo $!; echo $$; wait"
    pids, elapsed = cancel_test(script, kill_grace=0.3)
    assert not any(map(process_alive, pids))
    assert 0.3 <= elapsed < 3


def test_second_cancel_kills_at_once() -> None:
    pids: list[int] = []

    async def scenario() -> float:
        ready = asyncio.Event()

        def log(stream: str, lines: list[str]) -> None:
            pids.extend(int(line) for line in lines)
            ready.set()

        task = asyncio.ensure_future(sh("trap '' TERM; echo $$; sleep 1000", log, kill_grace=30))  # type: ignore[arg-type]
        await ready.wait()
        started = time.monotonic()
        task.cancel()
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    elapsed = run(scenario())
    assert elapsed < 3
    assert not group_alive(pids[0])


def test_background_child_holding_stdout_does_not_block_the_end() -> None:
    log = LogCapture()
    started = time.monotonic()
    outcome = run(sh("sleep 1000 & echo $!; echo done", log, drain=0.2, kill_grace=2))
    assert outcome.exit_code == 0
    assert time.monotonic() - started < 3
    child = int(log.lines()[0])
    assert log.lines()[1] == "done"
    assert not process_alive(child)


def test_output_written_just_after_exit_is_drained() -> None:
    log = LogCapture()
    run(sh("(sleep 0.1; echo late) & echo early", log, drain=2))
    assert log.lines() == ["early", "late"]


def test_background_child_with_its_own_output_is_left_running() -> None:
    log = LogCapture()
    outcome = run(sh("sleep 1000 >/dev/null 2>&1 & echo $!", log))
    child = int(log.lines()[0])
    try:
        assert outcome.exit_code == 0
        assert process_alive(child)
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_failing_log_sink_stops_the_process_and_raises() -> None:
    def broken(stream: str, lines: list[str]) -> None:
        raise RuntimeError("disk full")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="disk full"):
        run(sh("echo boom; sleep 1000", broken, kill_grace=1))  # type: ignore[arg-type]
    assert time.monotonic() - started < 3


def test_no_file_descriptors_leak() -> None:
    async def many() -> None:
        for _ in range(5):
            await sh("echo hi; echo err >&2")
        await sh("cat", stdin_data=b"x" * 100_000)
        await sh("sleep 1000 & echo $!", drain=0.05, kill_grace=1)
        ready = asyncio.Event()
        ready.set()
        await cancel_after(sh("sleep 1000"), ready, delay=0.05)

    run(many())  # the first run creates the loop's own fds
    before = open_fds()
    run(many())
    assert open_fds() == before


def test_no_zombie_children_are_left() -> None:
    def children() -> set[str]:
        return set(Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split())

    run(sh("true"))  # starts the watchdog, once per process
    before = children()
    for _ in range(5):
        run(sh("true"))
    assert children() <= before
