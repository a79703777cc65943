"""Nothing grows across many steps: file descriptors, threads, child processes (zombies too)."""

from __future__ import annotations

import os
import threading
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
    assert engine.run(plan).status == "succeeded"  # warm up: lazy imports, caches
    fds, threads = open_fds(), threading.active_count()
    for _ in range(2):
        assert engine.run(plan).status == "succeeded"
    assert open_fds() <= fds
    assert threading.active_count() <= threads
    assert not _live_children()


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
