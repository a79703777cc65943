"""The `shell` step: a script run by bash (fail-fast) or by the shell the step names.

Without `shell:` a script runs as `bash -eo pipefail -c <script>` (GitHub Actions' default:
the first failing command fails the step), or `sh -e -c` where bash is missing. With
`shell: X` it runs as `X -c <script>`, unchanged; X may carry arguments (`python3 -u`).
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from pydantic import field_validator, model_validator

from executors.base import Executor, ExecutorConfig, LogSink, StepRequest, StepResult, StepStatus
from executors.outputs import OutputParser, redact
from executors.process import ProcessOutcome, run_process
from wfe_yaml.durations import Duration
from wfe_yaml.models import Env

ENGINE_VARIABLES = ("WFE_RUN_ID", "WFE_WORKFLOW", "WFE_STEP", "WFE_WORKSPACE")


class ShellConfig(ExecutorConfig):
    run: str | None = None
    file: str | None = None
    shell: str | None = None
    env: Env = {}
    working_dir: str | None = None
    timeout: Duration | None = None
    """Enforced by the engine, which cancels the step; the executor never reads it."""

    @field_validator("shell")
    @classmethod
    def _shell_has_a_program(cls, value: str | None) -> str | None:
        if value is not None and not shell_words(value):
            raise ValueError("'shell' names no program")
        return value

    @model_validator(mode="after")
    def _run_or_file(self) -> ShellConfig:
        if self.run is None and self.file is None:
            raise ValueError("a shell step needs 'run' or 'file'")
        if self.run is not None and self.file is not None:
            raise ValueError("'run' and 'file' exclude each other")
        return self


def shell_words(shell: str) -> list[str]:
    return list(_split_shell(shell))


@functools.lru_cache(maxsize=64)
def _split_shell(shell: str) -> tuple[str, ...]:
    # Cached: a pipeline names the same few shells on every step.
    try:
        return tuple(shlex.split(shell))
    except ValueError as error:
        raise ValueError(f"'shell' cannot be split into words: {error}") from None


@functools.cache
def default_shell() -> tuple[str, ...] | None:
    """bash with fail-fast flags, else sh -e; looked up once per process."""
    bash = shutil.which("bash")
    if bash:
        return (bash, "-eo", "pipefail")
    sh = shutil.which("sh")
    return (sh, "-e") if sh else None


class StepFailure(Exception):
    """A reason the step cannot start, reported as a failed step rather than raised."""


class ShellExecutor(Executor):
    """Runs a shell step. Outputs come from `##wfe[output]` lines on stdout; they are returned
    for a failed step too, and the engine decides whether to keep them."""

    names = ("shell",)
    config_model = ShellConfig

    async def run(self, request: StepRequest) -> StepResult:
        config = _config_of(request)
        try:
            cwd = _working_dir(config, request)
            env = _environment(config, request)
            argv, program = _command(config, request, cwd, env)
        except StepFailure as failure:
            return StepResult.failed(str(failure))
        parser = OutputParser()
        try:
            outcome = await run_process(
                argv,
                executable=program,
                env=env,
                cwd=cwd,
                log=_masking_log(request.log, parser),
                stdout_lines=parser.feed,
                kill_grace=request.kill_grace,
            )
        except OSError as error:
            return StepResult.failed(f"could not start {argv[0]!r}: {error.strerror or error}")
        return _result(outcome, parser)


def _config_of(request: StepRequest) -> ShellConfig:
    # A remote worker receives the config as plain data.
    if isinstance(request.config, ShellConfig):
        return request.config
    return ShellConfig.model_validate(request.config)


def _working_dir(config: ShellConfig, request: StepRequest) -> Path:
    if config.working_dir is None:
        cwd = request.working_dir
    else:
        cwd = request.workspace / config.working_dir
    if not cwd.exists():
        raise StepFailure(f"working directory '{cwd}' does not exist")
    if not cwd.is_dir():
        raise StepFailure(f"working directory '{cwd}' is not a directory")
    return cwd


def _environment(config: ShellConfig, request: StepRequest) -> dict[str, str]:
    env = request.process_env()
    env.update(config.env)
    # The engine's WFE_* variables rank above every `env:` (DESIGN 4.1).
    env.update({name: request.env[name] for name in ENGINE_VARIABLES if name in request.env})
    return env


def _command(
    config: ShellConfig, request: StepRequest, cwd: Path, env: dict[str, str]
) -> tuple[list[str], str]:
    """The argv and the program file it starts."""
    interpreter, program = _interpreter(config.shell, cwd, env)
    if config.run is not None:
        return [*interpreter, "-c", config.run], program
    script = request.workspace / str(config.file)
    if not script.is_file():
        raise StepFailure(f"script file '{script}' does not exist")
    return [*interpreter, str(script)], program


def _interpreter(shell: str | None, cwd: Path, env: dict[str, str]) -> tuple[list[str], str]:
    if shell is None:
        found = default_shell()
        if found is None:
            raise StepFailure("neither bash nor sh found on PATH")
        return list(found), found[0]
    words = shell_words(shell)
    program = _find_program(words[0], cwd, env)
    if program is None:
        raise StepFailure(f"shell '{words[0]}' not found on PATH")
    return words, program


def _find_program(program: str, cwd: Path, env: dict[str, str]) -> str | None:
    # Like exec: a name with a slash is a path (relative to the step's cwd), else PATH is
    # searched, the step's PATH rather than ours.
    if "/" in program:
        path = cwd / program
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return _on_path(program, env.get("PATH", os.defpath))


_FOUND: dict[tuple[str, str], str] = {}


def _on_path(program: str, search_path: str) -> str | None:
    # Found programs are remembered: a 500-step pipeline looks `sh` up once, not 500 times
    # (and, given the file, Popen does not search PATH again either). A missing one is
    # looked up again, as an earlier step may install it.
    found = _FOUND.get((program, search_path))
    if found is None:
        found = shutil.which(program, path=search_path)
        if found is not None:
            _FOUND[(program, search_path)] = found
    return found


def _masking_log(log: LogSink, parser: OutputParser) -> LogSink:
    """Forwards log lines with the masks announced so far hidden, the mask line included
    (run_process hands each stdout batch to the parser before logging it)."""

    def forward(stream: str, lines: Sequence[str]) -> None:
        log(stream, redact(lines, parser.masks))

    return forward


def _result(outcome: ProcessOutcome, parser: OutputParser) -> StepResult:
    status = StepStatus.SUCCEEDED if outcome.succeeded else StepStatus.FAILED
    return StepResult(
        status,
        exit_code=outcome.exit_code,
        outputs=parser.outputs,
        error=None if outcome.succeeded else outcome.describe(),
        masks=parser.masks,
    )
