"""Ctrl-C on a running `wfe run` subprocess: cancel, run ensure hooks, exit 130; a second Ctrl-C
kills at once (DESIGN §4.4). Marker files tell the test when a step is running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    WAIT_LIMIT,
    WFE,
    process_alive,
    wait_for,
    wfe_environment,
    write_workflows,
)


class RunningWfe:
    """`wfe run` started in the background in a project directory, its output in files."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.directory = directory
        self.out = (directory / "stdout.txt").open("w")
        self.err = (directory / "stderr.txt").open("w")
        self.process = subprocess.Popen(
            [*WFE, "run", "--plain", *args],
            cwd=directory,
            env=wfe_environment(),
            stdout=self.out,
            stderr=self.err,
        )

    def wait_for_file(self, name: str) -> None:
        wait_for(lambda: (self.directory / name).exists(), f"{name} to appear")

    def wait_for_stderr(self, text: str) -> None:
        wait_for(lambda: text in self.stderr, f"{text!r} on stderr")

    def interrupt(self, number: int = signal.SIGINT) -> None:
        self.process.send_signal(number)

    def finish(self) -> int:
        return self.process.wait(timeout=WAIT_LIMIT)

    @property
    def stdout(self) -> str:
        return (self.directory / "stdout.txt").read_text()

    @property
    def stderr(self) -> str:
        return (self.directory / "stderr.txt").read_text()

    def close(self) -> None:
        """Stop what a failed test left running: wfe, and the step groups that recorded their
        id in a `*.pgid` file (steps run in their own session, out of wfe's reach)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            for recorded in self.directory.glob("*.pgid"):
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.killpg(int(recorded.read_text()), signal.SIGKILL)
        self.out.close()
        self.err.close()


StartWfe = Callable[..., RunningWfe]


@pytest.fixture
def start_wfe(tmp_path: Path) -> Iterator[StartWfe]:
    started: list[RunningWfe] = []

    def start(yaml_text: str, *args: str) -> RunningWfe:
        write_workflows(tmp_path, yaml_text)
        running = RunningWfe(tmp_path, *args)
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


LONG_STEP = """
workflows:
  - id: ci
    ensure: {name: wf-ensure, type: shell, config: {run: 'touch wf-ensured'}}
    steps:
      - name: long
        type: shell
        config:
          run: |
            echo $$ > long.pgid
            sleep 1000 &
            echo $! > grandchild.pid
            touch long.running
            wait
        ensure: {name: long-ensure, type: shell, config: {run: 'touch long-ensured'}}
      - {name: next, type: shell, config: {run: 'touch next-ran'}}
"""


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_cancels_runs_ensure_hooks_and_exits_130(
    start_wfe: StartWfe, tmp_path: Path, number: int
) -> None:
    run = start_wfe(LONG_STEP, "--report", "report.json")
    run.wait_for_file("long.running")
    run.interrupt(number)
    assert run.finish() == 130
    assert (tmp_path / "long-ensured").exists()
    assert (tmp_path / "wf-ensured").exists()
    assert not (tmp_path / "next-ran").exists()
    assert not process_alive(int((tmp_path / "grandchild.pid").read_text()))
    assert "cancelling: running ensure hooks (Ctrl-C again to kill now)" in run.stderr
    assert "[ci/long] ⊘ cancelled" in run.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "cancelled"
    assert {s["name"]: s["status"] for s in report["steps"]} == {
        "long": "cancelled",
        "long-ensure": "succeeded",
        "next": "cancelled",
        "wf-ensure": "succeeded",
    }


def test_a_hook_already_running_finishes_after_the_first_interrupt(
    start_wfe: StartWfe, tmp_path: Path
) -> None:
    run = start_wfe(
        """
        workflows:
          - id: ci
            steps:
              - name: quick
                type: shell
                config: {run: 'true'}
                ensure:
                  name: cleanup
                  type: shell
                  config:
                    run: |
                      echo $$ > cleanup.pgid
                      touch cleanup.running
                      while [ ! -e go ]; do sleep 0.02; done
                      touch cleaned
              - {name: next, type: shell, config: {run: 'touch next-ran'}}
        """
    )
    run.wait_for_file("cleanup.running")
    run.interrupt()
    run.wait_for_stderr("cancelling")
    (tmp_path / "go").touch()
    assert run.finish() == 130
    assert (tmp_path / "cleaned").exists()
    assert not (tmp_path / "next-ran").exists()


STUBBORN_HOOK = """
workflows:
  - id: ci
    ensure: {name: wf-ensure, type: shell, config: {run: 'touch wf-ensured'}}
    steps:
      - name: long
        type: shell
        config: {run: 'echo $$ > long.pgid; touch long.running; sleep 1000'}
        ensure:
          name: stubborn
          type: shell
          config:
            run: |
              echo $$ > stubborn.pgid
              trap '' TERM
              sleep 1000 &
              echo $! > grandchild.pid
              touch stubborn.running
              while true; do sleep 0.05 || true; done
"""


def test_a_second_interrupt_kills_everything_at_once(start_wfe: StartWfe, tmp_path: Path) -> None:
    # The hook ignores SIGTERM: without the second Ctrl-C it would hold the run for the
    # 10 s kill grace. The wait below is shorter than that grace.
    run = start_wfe(STUBBORN_HOOK)
    run.wait_for_file("long.running")
    run.interrupt()
    run.wait_for_file("stubborn.running")
    run.interrupt()
    assert run.process.wait(timeout=8) == 130
    assert "killing: every step and hook stops now" in run.stderr
    assert not process_alive(int((tmp_path / "grandchild.pid").read_text()))
    assert "[ci/stubborn] ⊘ cancelled" in run.stdout
    # Killing means no further hook starts.
    assert "[ci/wf-ensure] ⊘ cancelled" in run.stdout
    assert not (tmp_path / "wf-ensured").exists()


STUBBORN_CHILD = """
workflows:
  - id: parent
    steps:
      - name: call
        type: workflow
        config: {workflow: child}
  - id: child
    ensure: {name: child-ensure, type: shell, config: {run: 'touch child-ensured'}}
    steps:
      - name: stubborn
        type: shell
        config:
          run: |
            echo $$ > stubborn.pgid
            trap '' TERM
            touch stubborn.running
            while true; do sleep 0.05 || true; done
"""


def test_killing_a_child_workflow_still_records_all_of_its_steps(
    start_wfe: StartWfe, tmp_path: Path
) -> None:
    run = start_wfe(STUBBORN_CHILD, "--report", "report.json")
    run.wait_for_file("stubborn.running")
    run.interrupt()
    run.wait_for_stderr("cancelling")
    run.interrupt()
    assert run.process.wait(timeout=8) == 130
    report = json.loads((tmp_path / "report.json").read_text())
    assert {s["path"]: s["status"] for s in report["steps"]} == {
        "parent/call": "cancelled",
        "parent/call/stubborn": "cancelled",
        "parent/call/child-ensure": "cancelled",
    }
    assert not (tmp_path / "child-ensured").exists()
