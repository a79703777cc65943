"""Nothing grows across many steps: file descriptors, threads, child processes (zombies too)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import wfe_yaml


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
        deadline = time.monotonic() + 30
        while not (tmp_path / "step.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int((tmp_path / name).read_text()) for name in ("step.pid", "background.pid")]
    finally:
        runner.kill()
        runner.wait()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if _running(pid)]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
