"""Shared fixtures: run `wfe` as a user would (a real subprocess in a temporary project) or
run a plan through the Python API; and helpers to watch the processes a step leaves behind."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

WFE = [sys.executable, "-m", "wfe_yaml"]
WAIT_LIMIT = 30.0
"""How long a test waits for something that should happen (a marker file, an exit): a hang
fails the test instead of blocking the suite. Never a measure of speed."""


class WfeResult(NamedTuple):
    code: int
    stdout: str
    stderr: str


RunWfe = Callable[..., WfeResult]


PLAN_CACHE = tempfile.mkdtemp(prefix="wfe-test-plans-")
"""The plan cache of every `wfe` a test starts: not the user's, and gone after the tests."""
atexit.register(shutil.rmtree, PLAN_CACHE, ignore_errors=True)


def wfe_environment(**extra: str) -> dict[str, str]:
    """Our environment, made deterministic: no colour, no inherited wfe settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFE_")}
    env["NO_COLOR"] = "1"
    env["WFE_PLAN_CACHE"] = PLAN_CACHE
    env.pop("CI", None)
    env.update(extra)
    return env


def write_workflows(directory: Path, yaml_text: str, name: str = "workflows.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(yaml_text))
    return path


@pytest.fixture
def run_wfe(tmp_path: Path) -> RunWfe:
    """`run_wfe(yaml_text, "run", "--jobs", "2")` writes workflows.yaml into tmp_path and runs
    `wfe run --jobs 2` there as a subprocess; returns (code, stdout, stderr). Pass
    `yaml_text=None` to reuse the file already there, `env={...}` to add variables."""

    def run(yaml_text: str | None, *args: str, env: dict[str, str] | None = None) -> WfeResult:
        if yaml_text is not None:
            write_workflows(tmp_path, yaml_text)
        completed = subprocess.run(
            [*WFE, *args],
            cwd=tmp_path,
            env=wfe_environment(**(env or {})),
            capture_output=True,
            text=True,
            timeout=WAIT_LIMIT * 2,
        )
        return WfeResult(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture
def run_plan(tmp_path: Path) -> Callable[..., Any]:
    """`run_plan(yaml_text, workflow=None, inputs=None, jobs=4)`: load the text as workflows.yaml
    in tmp_path and run it with the Python API (kill grace 0.3 s); returns the RunResult."""
    import wfe_yaml

    def run(
        yaml_text: str,
        workflow: str | None = None,
        inputs: dict[str, Any] | None = None,
        *,
        jobs: int = 4,
    ) -> Any:
        plan = wfe_yaml.load(write_workflows(tmp_path, yaml_text))
        return wfe_yaml.Engine(jobs=jobs, kill_grace=0.3).run(plan, workflow, inputs)

    return run


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll until `condition()` holds; fail the test (never hang it) if it does not."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rpartition(b")")[2].split()
        except OSError:
            continue
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members
