"""The Python API: `wfe_yaml.Engine().run(...)` from sync code, `await run_async(...)` from async
code, events to subscribers, cancel from another thread, and executors registered in code."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import wfe_yaml
from executors.base import Executor, ExecutorConfig, StepRequest, StepResult, StepStatus, registry
from tests.conftest import wait_for
from wfe_yaml.engine.events import Event, StepFinished, StepLog
from wfe_yaml.report.json_report import REPORT_SCHEMA, schema_errors

PIPELINE = """
workflows:
  - id: ci
    inputs: {name: string}
    steps:
      - {name: greet, type: shell, config: {run: 'echo "##wfe[output greeting=hello $NAME]"'}}
      - {name: shout, type: shell, config: {run: 'echo "${{ outputs.greeting | upper }}"'}}
"""


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "workflows.yaml"
    path.write_text(textwrap.dedent(text))
    return wfe_yaml.load(path)


def test_run_from_sync_code_returns_the_report_data(tmp_path: Path) -> None:
    result = wfe_yaml.Engine().run(load(tmp_path, PIPELINE), "ci", {"name": "ada"})
    assert result.succeeded
    assert result.outputs == {"name": "ada", "greeting": "hello ada"}
    assert [record.path for record in result.steps] == ["ci/greet", "ci/shout"]
    report = result.to_report()
    assert schema_errors(report, REPORT_SCHEMA) == []
    assert report["outputs"] == result.outputs


def test_run_async_from_async_code_with_subscribers(tmp_path: Path) -> None:
    events: list[Event] = []

    async def main() -> Any:
        engine = wfe_yaml.Engine(subscribers=(events.append,))
        return await engine.run_async(load(tmp_path, PIPELINE), inputs={"name": "bo"})

    result = asyncio.run(main())
    assert result.status == "succeeded"
    logged = [line for e in events if isinstance(e, StepLog) for line in e.lines]
    assert "HELLO BO" in logged
    finished = [(e.path, e.status) for e in events if isinstance(e, StepFinished)]
    assert finished == [("ci/greet", "succeeded"), ("ci/shout", "succeeded")]


def test_two_runs_of_one_engine_can_share_an_event_loop(tmp_path: Path) -> None:
    plan = load(tmp_path, PIPELINE)

    async def main() -> list[Any]:
        engine = wfe_yaml.Engine()
        runs = [engine.run_async(plan, inputs={"name": name}) for name in ("a", "b")]
        return list(await asyncio.gather(*runs))

    first, second = asyncio.run(main())
    assert first.outputs["greeting"] == "hello a"
    assert second.outputs["greeting"] == "hello b"
    assert first.run_id != second.run_id


def test_inputs_are_checked_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(wfe_yaml.ConfigError) as caught:
        wfe_yaml.Engine().run(load(tmp_path, PIPELINE), inputs={"name": 5})
    assert caught.value.format().startswith(
        "error: workflow 'ci' inputs: inputs.name: expected string, got integer 5"
    )


def test_cancel_from_another_thread_runs_ensure_and_ends_cancelled(tmp_path: Path) -> None:
    plan = load(
        tmp_path,
        """
        workflows:
          - id: ci
            steps:
              - name: long
                type: shell
                config: {run: 'touch running; sleep 1000'}
                ensure: {name: cleanup, type: shell, config: {run: 'touch cleaned'}}
        """,
    )
    engine = wfe_yaml.Engine(kill_grace=0.3)

    def cancel_when_running() -> None:
        wait_for(lambda: (tmp_path / "running").exists(), "the step to start")
        engine.cancel()

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    result = engine.run(plan)
    canceller.join()
    assert result.status == "cancelled"
    assert result.step("ci/long").status == "cancelled"
    assert (tmp_path / "cleaned").exists()


class StampConfig(ExecutorConfig):
    label: str
    repeat: int = 1


class StampExecutor(Executor):
    """A step type a program adds in code: writes a label into a file of the workspace."""

    names = ("stamp-for-tests",)
    config_model = StampConfig
    holds_slot = True

    async def run(self, request: StepRequest) -> StepResult:
        config: StampConfig = request.config
        text = config.label * config.repeat
        (request.workspace / "stamp.txt").write_text(text)
        request.log("stdout", [f"stamped {text}"])
        return StepResult(StepStatus.SUCCEEDED, exit_code=0, outputs={"stamp": text})


def test_an_executor_registered_in_code_runs_steps_of_a_file(tmp_path: Path) -> None:
    registry.register(StampExecutor)
    plan = load(
        tmp_path,
        """
        workflows:
          - id: ci
            inputs: {who: string}
            steps:
              - {name: mark, type: stamp-for-tests, config: {label: '${{ inputs.who }}', repeat: 2}}
              - {name: after, type: shell, config: {run: 'echo "$STAMP" > after.txt'}}
        """,
    )
    result = wfe_yaml.Engine().run(plan, inputs={"who": "ab"})
    assert result.status == "succeeded"
    assert (tmp_path / "stamp.txt").read_text() == "abab"
    assert (tmp_path / "after.txt").read_text() == "abab\n"
    assert result.step("ci/mark").type == "stamp-for-tests"


def test_a_registered_executor_config_is_validated_at_load(tmp_path: Path) -> None:
    registry.register(StampExecutor)
    with pytest.raises(wfe_yaml.ConfigError) as caught:
        load(
            tmp_path,
            """
            workflows:
              - id: ci
                steps:
                  - {name: mark, type: stamp-for-tests, config: {labl: x}}
            """,
        )
    assert "workflows.yaml:5:" in caught.value.format()
    assert "error: unknown key 'labl' in the stamp-for-tests config of step 'mark'\n" in (
        caught.value.format()
    )
    assert "hint: did you mean 'label'?" in caught.value.format()
