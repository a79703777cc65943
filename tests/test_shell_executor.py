from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from executors.base import BUILT_IN, ENTRY_POINT_GROUP, StepResult, StepStatus
from executors.shell import ShellConfig, ShellExecutor, default_shell
from tests._requests import LogCapture, cancel_after, make_request, process_alive, run

needs_bash = pytest.mark.skipif(
    default_shell() is None or "bash" not in default_shell()[0],  # type: ignore[index]
    reason="needs bash",
)


def execute(workspace: Path, log: LogCapture | None = None, **config: Any) -> StepResult:
    request = make_request(workspace, ShellConfig(**config), log=log)
    return run(ShellExecutor().run(request))


# -- config -------------------------------------------------------------------------------


def test_config_needs_run_or_file() -> None:
    with pytest.raises(ValidationError, match="a shell step needs 'run' or 'file'"):
        ShellConfig()


def test_config_run_and_file_exclude_each_other() -> None:
    with pytest.raises(ValidationError, match="'run' and 'file' exclude each other"):
        ShellConfig(run="true", file="x.sh")


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="script"):
        ShellConfig.model_validate({"run": "true", "script": "x"})


def test_config_env_values_are_stringified() -> None:
    config = ShellConfig.model_validate(
        {"run": "true", "env": {"A": 1, "B": 2.5, "C": True, "D": False, "E": "text"}}
    )
    assert config.env == {"A": "1", "B": "2.5", "C": "true", "D": "false", "E": "text"}


@pytest.mark.parametrize("value", [None, [1], {"a": 1}])
def test_config_env_rejects_non_scalars(value: object) -> None:
    with pytest.raises(ValidationError):
        ShellConfig.model_validate({"run": "true", "env": {"A": value}})


def test_config_timeout_is_a_duration() -> None:
    assert ShellConfig(run="true", timeout="1m30s").timeout == 90
    with pytest.raises(ValidationError):
        ShellConfig.model_validate({"run": "true", "timeout": "soon"})


@pytest.mark.parametrize("shell", ["", "   ", "bash 'unclosed"])
def test_config_shell_must_name_a_program(shell: str) -> None:
    with pytest.raises(ValidationError, match="'shell'"):
        ShellConfig(run="true", shell=shell)


def test_entry_point_names_this_executor() -> None:
    (entry,) = entry_points(group=ENTRY_POINT_GROUP, name="shell")
    assert entry.load() is ShellExecutor
    assert ShellExecutor.names == ("shell",)
    assert ShellExecutor.config_model is ShellConfig


def test_config_given_as_plain_data_is_validated(tmp_path: Path) -> None:
    request = make_request(tmp_path, {"run": "echo '##wfe[output a=1]'"})
    assert run(ShellExecutor().run(request)).outputs == {"a": 1}


# -- outputs ------------------------------------------------------------------------------


def test_outputs_are_parsed_from_stdout_only(tmp_path: Path) -> None:
    script = """
echo '##wfe[output count=007]'
echo '##wfe[output ratio=1e3]'
echo '##wfe[output flag=true]'
echo '##wfe[output nothing=null]'
echo '##wfe[output word=True]'
echo '##wfe[output spaced= 5]'
echo '##wfe[output pair=a=b=c]'
echo '  ##wfe[output indented=1]'
echo '##wfe[output trailing=1] '
echo '##wfe[output count=8]'
echo '##wfe[output from_stderr=1]' >&2
"""
    result = execute(tmp_path, run=script)
    assert result.status == StepStatus.SUCCEEDED
    assert result.outputs == {
        "count": 8,
        "ratio": 1000.0,
        "flag": True,
        "nothing": None,
        "word": "True",
        "spaced": " 5",
        "pair": "a=b=c",
    }


def test_output_on_a_last_line_without_newline(tmp_path: Path) -> None:
    result = execute(tmp_path, run="seq 1 100000; printf '##wfe[output last=yes]'")
    assert result.outputs == {"last": "yes"}


def test_masks_are_returned_and_hidden_in_the_log(tmp_path: Path) -> None:
    log = LogCapture()
    script = "echo '##wfe[mask s3cret]'; echo 'after s3cret'; sleep 0.05; echo s3cret >&2"
    result = execute(tmp_path, log, run=script)
    assert result.masks == ["s3cret"]
    assert log.lines("stdout") == ["##wfe[mask ***]", "after ***"]
    assert log.lines("stderr") == ["***"]


# -- shells -------------------------------------------------------------------------------


@needs_bash
def test_default_shell_stops_at_the_first_failure(tmp_path: Path) -> None:
    log = LogCapture()
    result = execute(tmp_path, log, run="false; echo after")
    assert result.status == StepStatus.FAILED
    assert result.exit_code == 1
    assert "after" not in log.lines()


@needs_bash
def test_default_shell_fails_a_pipeline_with_a_failing_part(tmp_path: Path) -> None:
    assert execute(tmp_path, run="false | true").status == StepStatus.FAILED


@needs_bash
def test_default_shell_is_bash(tmp_path: Path) -> None:
    log = LogCapture()
    execute(tmp_path, log, run='echo "$BASH_VERSION"; [[ -o errexit ]] && echo errexit')
    assert log.lines()[0] != ""
    assert log.lines()[1] == "errexit"


def test_named_shell_runs_the_script_unchanged(tmp_path: Path) -> None:
    log = LogCapture()
    result = execute(tmp_path, log, run="false; echo after", shell="sh")
    assert result.status == StepStatus.SUCCEEDED
    assert log.lines() == ["after"]


def test_shell_with_arguments(tmp_path: Path) -> None:
    log = LogCapture()
    shell = f"{shlex.quote(sys.executable)} -I"
    result = execute(tmp_path, log, run="import sys; print(sys.flags.isolated)", shell=shell)
    assert result.status == StepStatus.SUCCEEDED
    assert log.lines() == ["1"]


def test_missing_shell_is_a_failed_step(tmp_path: Path) -> None:
    result = execute(tmp_path, run="true", shell="fish-not-installed-here")
    assert result.status == StepStatus.FAILED
    assert result.error == "shell 'fish-not-installed-here' not found on PATH"


def test_shell_is_searched_on_the_step_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "myshell"
    tool.write_text('#!/bin/sh\necho "myshell $*"\n')
    tool.chmod(0o755)
    log = LogCapture()
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    request = make_request(
        tmp_path, ShellConfig(run="x", shell="myshell", env={"PATH": path}), log=log
    )
    assert run(ShellExecutor().run(request)).status == StepStatus.SUCCEEDED
    assert log.lines() == ["myshell -c x"]


# -- files and directories ----------------------------------------------------------------


@needs_bash
def test_file_runs_with_the_default_shell(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "build.sh").write_text("false\necho after\n")
    log = LogCapture()
    result = execute(tmp_path, log, file="ci/build.sh")
    assert result.status == StepStatus.FAILED
    assert log.lines() == []


def test_file_runs_with_a_named_shell(tmp_path: Path) -> None:
    (tmp_path / "build.sh").write_text("false\necho '##wfe[output built=1]'\n")
    result = execute(tmp_path, file="build.sh", shell="sh")
    assert result.status == StepStatus.SUCCEEDED
    assert result.outputs == {"built": 1}


def test_missing_file_is_a_failed_step(tmp_path: Path) -> None:
    result = execute(tmp_path, file="nope.sh")
    assert result.status == StepStatus.FAILED
    assert result.error == f"script file '{tmp_path / 'nope.sh'}' does not exist"


def test_working_dir_defaults_to_the_request_working_dir(tmp_path: Path) -> None:
    elsewhere = tmp_path / "yaml-dir"
    elsewhere.mkdir()
    log = LogCapture()
    request = make_request(tmp_path, ShellConfig(run="pwd"), log=log, working_dir=elsewhere)
    run(ShellExecutor().run(request))
    assert log.lines() == [str(elsewhere)]


def test_relative_working_dir_is_relative_to_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    log = LogCapture()
    request = make_request(
        tmp_path,
        ShellConfig(run="pwd", working_dir="sub"),
        log=log,
        working_dir=tmp_path / "elsewhere",
    )
    run(ShellExecutor().run(request))
    assert log.lines() == [str(tmp_path / "sub")]


def test_missing_working_dir_is_a_failed_step(tmp_path: Path) -> None:
    result = execute(tmp_path, run="true", working_dir="missing")
    assert result.status == StepStatus.FAILED
    assert result.error == f"working directory '{tmp_path / 'missing'}' does not exist"


def test_working_dir_that_is_a_file_is_a_failed_step(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    result = execute(tmp_path, run="true", working_dir="a-file")
    assert result.error == f"working directory '{tmp_path / 'a-file'}' is not a directory"


# -- environment --------------------------------------------------------------------------


def test_environment_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELLTEST_INHERITED", "inherited")
    monkeypatch.setenv("SHELLTEST_SECRET", "hunter2")
    monkeypatch.setenv("SHELLTEST_OVERRIDDEN", "runner")
    log = LogCapture()
    config = ShellConfig(
        run='echo "$SHELLTEST_INHERITED|${SHELLTEST_SECRET-unset}|$FROM_STEP|$SHELLTEST_OVERRIDDEN'
        '|$FLAG|$WFE_STEP"',
        env={"SHELLTEST_OVERRIDDEN": "config", "FLAG": True, "WFE_STEP": "not-this"},
    )
    request = make_request(
        tmp_path,
        config,
        log=log,
        env={"FROM_STEP": "step", "SHELLTEST_OVERRIDDEN": "step", "WFE_STEP": "build"},
        hidden_env=frozenset({"SHELLTEST_SECRET"}),
    )
    run(ShellExecutor().run(request))
    assert log.lines() == ["inherited|unset|step|config|true|build"]


# -- exits, signals, cancellation ---------------------------------------------------------


def test_exit_code_fails_the_step_and_keeps_outputs(tmp_path: Path) -> None:
    result = execute(tmp_path, run="echo '##wfe[output partial=1]'; exit 3")
    assert result.status == StepStatus.FAILED
    assert result.exit_code == 3
    assert result.error == "exited with code 3"
    assert result.outputs == {"partial": 1}


def test_death_by_signal_fails_the_step(tmp_path: Path) -> None:
    result = execute(tmp_path, run="kill -9 $$")
    assert result.status == StepStatus.FAILED
    assert result.exit_code is None
    assert result.error == "killed by signal 9 (SIGKILL)"


def test_success(tmp_path: Path) -> None:
    result = execute(tmp_path, run="echo hi")
    assert (result.status, result.exit_code, result.error) == (StepStatus.SUCCEEDED, 0, None)


def test_cancel_kills_the_step_and_its_children(tmp_path: Path) -> None:
    pids: list[int] = []

    async def scenario() -> None:
        ready = asyncio.Event()

        def log(stream: str, lines: list[str]) -> None:
            pids.extend(int(line) for line in lines)
            ready.set()

        request = make_request(
            tmp_path, ShellConfig(run="sleep 1000 & echo $!; wait"), kill_grace=2
        )
        request.log = log
        await cancel_after(ShellExecutor().run(request), ready)

    started = time.monotonic()
    run(scenario())
    assert time.monotonic() - started < 3
    assert pids
    assert not process_alive(pids[0])


def test_background_child_holding_stdout_does_not_hang_the_step(tmp_path: Path) -> None:
    log = LogCapture()
    started = time.monotonic()
    result = execute(tmp_path, log, run="sleep 1000 & echo $!")
    assert result.status == StepStatus.SUCCEEDED
    assert time.monotonic() - started < 5
    assert not process_alive(int(log.lines()[0]))


def test_built_in_table_matches_the_declared_entry_points() -> None:
    declared = {entry.name: entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}
    assert {name: declared.get(name) for name in BUILT_IN} == BUILT_IN
