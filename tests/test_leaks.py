"""Nothing grows across many steps: file descriptors, threads, child processes (zombies too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import wfe_yaml
from tests.conftest import WAIT_LIMIT, wait_for


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fds_and_threads_stay_flat_across_1000_steps(tmp_path: Path) -> None:
    steps = "\n".join(
        f"    - {{name: s{i}, type: shell, config: {{shell: sh, run: 'echo {i}'}}}}"
        for i in range(500)
    )
    path = tmp_path / "workflows.yaml"
    path.write_text(f"workflow:\n  id: many\n  steps:\n{steps}\n")
    plan = wfe_yaml.load(path)
    engine = wfe_yaml.Engine()
    assert engine.run(plan).status == "succeeded"  # warm up: lazy imports, the watchdog
    fds, threads, children = open_fds(), threading.active_count(), _live_children()
    for _ in range(2):
        assert engine.run(plan).status == "succeeded"
    assert open_fds() <= fds
    assert threading.active_count() <= threads
    assert _live_children() == children


def _live_children() -> list[str]:
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent = fields[1]
        if parent == me:
            found.append(entry.name)
    return found


def test_a_killed_runner_leaves_no_step_process(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(
        "workflow:\n  id: ci\n  steps:\n    - name: long\n      type: shell\n"
        "      config:\n        run: |\n          sleep 1000 &\n"
        "          echo $! > background.pid\n"
        "          echo $$ > step.pid\n          sleep 1000\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "wfe_yaml", "run", "--plain", "--no-store"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # `echo $$ > step.pid` creates the file before it writes the pid: wait for the pid.
        wait_for(lambda: _text(tmp_path / "step.pid") != "", "the step to start")
        pids = [int((tmp_path / name).read_text()) for name in ("step.pid", "background.pid")]
    finally:
        runner.kill()
        runner.wait()
    assert not _still_running_after(pids, seconds=WAIT_LIMIT)


_UNREGISTERED_STEP = """
import os, subprocess, sys, time
from executors.watchdog import TOKEN_VARIABLE, watchdog
token = watchdog.ensure_running()
step = subprocess.Popen(
    ["sh", "-c", "sleep 1000 & echo $!; exec sleep 1000"],
    env={**os.environ, TOKEN_VARIABLE: token},
    stdout=subprocess.PIPE,
    start_new_session=True,
)
print(step.pid, step.stdout.readline().decode().strip(), flush=True)
if sys.argv[1] == "crash":
    time.sleep(1000)
"""


def test_a_step_the_runner_died_before_registering_is_still_ended() -> None:
    # The runner is killed after starting a step and before telling the watchdog about it.
    runner = subprocess.Popen(
        [sys.executable, "-c", _UNREGISTERED_STEP, "crash"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert runner.stdout is not None
        pids = [int(pid) for pid in runner.stdout.readline().split()]
    finally:
        runner.kill()
        runner.wait()
    assert len(pids) == 2
    assert not _still_running_after(pids, seconds=WAIT_LIMIT)


def test_a_clean_exit_does_not_sweep_by_token() -> None:
    # Only a crash widens the sweep to the token: a clean exit ends the registered groups.
    result = subprocess.run(
        [sys.executable, "-c", _UNREGISTERED_STEP, "exit"],
        stdout=subprocess.PIPE,
        text=True,
        timeout=30,
    )
    pids = [int(pid) for pid in result.stdout.split()]
    try:
        time.sleep(1)
        assert all(_running(pid) for pid in pids)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)


def _still_running_after(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if _running(pid)]


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
