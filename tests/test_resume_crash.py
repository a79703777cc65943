"""Crash tests: the runner dies (SIGKILL, with the step it was running) at many points of a
pipeline; `wfe resume` then completes the run without running any succeeded step twice.

Kill points are deterministic: the step (or capability check) named by HOLD blocks after
writing its marker; the test waits for the marker, and for the parallel siblings that must be
recorded first, then kills. Every step counts its completed runs in a counter file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WFE, wait_for, wfe_environment

RESOURCES = Path(__file__).parent / "resources" / "store"
COUNTED = ("a", "b", "p1", "p2", "p3", "c1", "c2", "c3", "c_final", "m1", "m2", "e", "final")
WITH_OUTPUT = ("a", "b", "p1", "p2", "p3", "c1", "c2", "c3", "m1", "m2", "e")
SIBLINGS = {
    "p1": ("ci/par/p2", "ci/par/p3"),
    "p2": ("ci/par/p1", "ci/par/p3"),
    "p3": ("ci/par/p1", "ci/par/p2"),
    "m1": ("ci/m[shard=2]",),
    "m2": ("ci/m[shard=1]",),
}
"""Steps running beside a kill point: the test waits until they are recorded as succeeded."""

KILL_SEQUENCES = [
    ("gate_a",),  # before the first step: its capability check
    ("a",),
    ("b",),
    ("p1",),  # inside a parallel block
    ("p2",),
    ("p3",),
    ("gate_cover",),  # between the parallel block and the child workflow
    ("c1",),  # inside a child workflow
    ("c2",),
    ("c3",),
    ("c_final",),  # the child workflow's ensure hook
    ("m1",),  # one matrix instance
    ("m2",),
    ("gate_e",),  # between the matrix and the last step
    ("e",),
    ("final",),  # the workflow's ensure hook, after every step
    ("a", "e"),  # killed again while resuming
    ("p2", "c2"),
    ("c1", "c1"),
    ("gate_a", "p3", "final"),
]


class CrashProject:
    def __init__(self, root: Path):
        self.root = root
        self.markers = root / "markers"
        self.counters = root / "counters"
        self.store = root / ".wfe" / "wfe.db"
        for name in ("step.sh", "gate.sh"):
            shutil.copy(RESOURCES / name, root / name)
        shutil.copy(RESOURCES / "crash.yaml", root / "workflows.yaml")

    def environment(self, hold: str | None) -> dict[str, str]:
        extra = {"MARKERS": str(self.markers), "COUNTERS": str(self.counters)}
        if hold is not None:
            extra["HOLD"] = hold
        return wfe_environment(**extra)

    def start(self, hold: str, *args: str) -> subprocess.Popen[str]:
        # Markers are per attempt: a step that starts again must be seen starting again.
        shutil.rmtree(self.markers, ignore_errors=True)
        self.markers.mkdir()
        self.counters.mkdir(exist_ok=True)
        return subprocess.Popen(
            [*WFE, *args, "--plain"],
            cwd=self.root,
            env=self.environment(hold),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def crash(self, runner: subprocess.Popen[str], hold: str) -> None:
        """Wait for the kill point, then kill the runner and the step it runs, like a power cut."""
        marker = self.markers / f"{hold}.started"
        wait_for(lambda: _text(marker) != "" or runner.poll() is not None, f"{hold} to start")
        if runner.poll() is not None:
            pytest.fail(f"the runner ended before {hold}:\n{runner.communicate()[0]}")
        for path in SIBLINGS.get(hold, ()):
            wait_for(lambda p=path: self.latest_status(p) == "succeeded", f"{path} recorded")
        group = os.getpgid(int(_text(marker)))
        assert group != os.getpgrp()
        os.kill(runner.pid, signal.SIGKILL)
        runner.communicate()
        # The runner's watchdog may have ended the step's group already.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)

    def latest_status(self, path: str) -> str | None:
        if not self.store.exists():
            return None
        with sqlite3.connect(self.store) as db:
            row = db.execute(
                "SELECT status FROM step_runs WHERE path = ? ORDER BY attempt DESC LIMIT 1",
                (path,),
            ).fetchone()
        return row[0] if row else None

    def runs(self) -> list[tuple[str, str, int]]:
        with sqlite3.connect(self.store) as db:
            return db.execute("SELECT id, status, attempt FROM runs").fetchall()

    def completed_runs(self, name: str) -> int:
        counter = self.counters / name
        return len(counter.read_text().splitlines()) if counter.exists() else 0


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


@dataclass(frozen=True)
class Outcome:
    code: int
    output: str
    completed_runs: dict[str, int]
    report: dict[str, Any]
    runs: list[tuple[str, str, int]]


def crash_then_resume(root: Path, holds: tuple[str, ...]) -> Outcome:
    """Kill the run at the first hold, each resume at the next one, then resume to the end."""
    project = CrashProject(root)
    project.crash(project.start(holds[0], "run"), holds[0])
    for hold in holds[1:]:
        project.crash(project.start(hold, "resume"), hold)
    final = project.start("", "resume", "--report", "report.json")
    output = final.communicate(timeout=60)[0]
    report_file = root / "report.json"
    return Outcome(
        final.returncode,
        output,
        {name: project.completed_runs(name) for name in COUNTED},
        json.loads(report_file.read_text()) if report_file.exists() else {},
        project.runs(),
    )


@pytest.fixture(scope="module")
def crash_outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, ...], Future[Outcome]]]:
    """Every kill sequence, run a few at a time: each test below checks one of them."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield {
            holds: pool.submit(crash_then_resume, tmp_path_factory.mktemp("crash"), holds)
            for holds in KILL_SEQUENCES
        }


@pytest.mark.parametrize("holds", KILL_SEQUENCES, ids=["-then-".join(h) for h in KILL_SEQUENCES])
def test_killed_runner_resumes_without_running_a_succeeded_step_twice(
    crash_outcomes: dict[tuple[str, ...], Future[Outcome]], holds: tuple[str, ...]
) -> None:
    outcome = crash_outcomes[holds].result()

    assert outcome.code == 0, outcome.output
    assert outcome.completed_runs == dict.fromkeys(COUNTED, 1)
    assert outcome.report["status"] == "succeeded"
    for name in WITH_OUTPUT:
        assert outcome.report["outputs"][f"out_{name}"] == f"value-{name}"
    [(run_id, status, attempt)] = outcome.runs
    assert (outcome.report["run_id"], status, attempt) == (run_id, "succeeded", len(holds) + 1)


def test_a_killed_run_shows_as_interrupted_and_resume_says_what_it_restores(
    tmp_path: Path,
) -> None:
    project = CrashProject(tmp_path)
    project.crash(project.start("c2", "run"), "c2")

    listed = subprocess.run(
        [*WFE, "runs", "--json"],
        cwd=tmp_path,
        env=project.environment(None),
        capture_output=True,
        text=True,
        check=True,
    )
    [run] = json.loads(listed.stdout)
    assert run["status"] == "interrupted"

    resumed = project.start("", "resume")
    output = resumed.communicate(timeout=60)[0]
    assert resumed.returncode == 0, output
    # a, b, p1, p2, p3 and c1 are restored; the interrupted c2 and everything after run.
    assert f"resuming run {run['id']} (attempt 2): 6 step(s) restored" in output
    assert "[ci/cover/c1] restored from an earlier attempt" in output
    assert "[ci/cover/c2] $ started" in output
