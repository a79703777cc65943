"""The `preflight` step: looks for the tools a pipeline needs and reports what it found.

Outputs, for every tool: `has_<tool>` (found, and new enough when a version was asked for)
and `<tool>_version` (the version read from `<tool> --version`, or None). The step fails only
when an essential tool is missing or too old.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from executors.base import Executor, ExecutorConfig, StepRequest, StepResult, StepStatus
from wfe_yaml.models import empty_list
from wfe_yaml.preflight import ToolReport, ToolSpec, VersionConstraint, detect_tool

ESSENTIAL = "essential"
OPTIONAL = "optional"
_NOT_IN_KEY = re.compile(r"[^A-Za-z0-9_]")


def tool_key(name: str) -> str:
    """A tool name as it appears in output names: `redis-server` → `redis_server`."""
    return _NOT_IN_KEY.sub("_", name)


class ToolEntry(BaseModel):
    """A tool: its `name`, optionally a `check` command replacing the PATH lookup and a
    `version` constraint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    check: str | None = None
    version: str | None = None

    @field_validator("name")
    @classmethod
    def _single_word(cls, name: str) -> str:
        if not name.strip() or any(char.isspace() for char in name):
            raise ValueError(f"a tool name is one word, got {name!r}")
        return name

    @field_validator("check")
    @classmethod
    def _non_empty_command(cls, check: str | None) -> str | None:
        if check is not None and not check.strip():
            raise ValueError("`check` must be a command; leave it out to look on PATH")
        return check

    @field_validator("version")
    @classmethod
    def _valid_constraint(cls, version: str | None) -> str | None:
        if version is not None:
            VersionConstraint.parse(version)
        return version

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.check, self.version)


def _entry_from_name(value: Any) -> Any:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict | ToolEntry):
        return value
    raise ValueError(f"a tool is a name or {{name, check, version}}, got {value!r}")


ToolItem = Annotated[
    ToolEntry, BeforeValidator(_entry_from_name, json_schema_input_type=str | ToolEntry)
]


class PreflightConfig(ExecutorConfig):
    essential: list[ToolItem] = Field(default_factory=empty_list)
    optional: list[ToolItem] = Field(default_factory=empty_list)

    @model_validator(mode="after")
    def _tools_named_once(self) -> PreflightConfig:
        entries = [*self.essential, *self.optional]
        if not entries:
            raise ValueError("a preflight step needs at least one tool in essential or optional")
        name_of_key: dict[str, str] = {}
        for entry in entries:
            key = tool_key(entry.name)
            if key in name_of_key:
                raise ValueError(_clash_message(name_of_key[key], entry.name, key))
            name_of_key[key] = entry.name
        return self

    def entries(self) -> list[tuple[str, ToolEntry]]:
        """(kind, entry) for every tool, essential ones first."""
        return [(ESSENTIAL, entry) for entry in self.essential] + [
            (OPTIONAL, entry) for entry in self.optional
        ]


def _clash_message(earlier: str, later: str, key: str) -> str:
    if earlier == later:
        return f"tool '{later}' is listed twice"
    return f"tools '{earlier}' and '{later}' would both set the output has_{key}"


@dataclass(frozen=True)
class ToolCheck:
    kind: str
    report: ToolReport


class PreflightExecutor(Executor):
    names = ("preflight",)
    config_model = PreflightConfig

    async def run(self, request: StepRequest) -> StepResult:
        config = _config_of(request)
        checks = await check_tools(config, request.process_env(), request.working_dir)
        request.log("stdout", format_table(checks))
        outputs = tool_outputs(checks)
        unmet = [check for check in checks if check.kind == ESSENTIAL and not check.report.usable]
        if unmet:
            return StepResult.failed(missing_message(unmet), outputs=outputs)
        return StepResult(StepStatus.SUCCEEDED, outputs=outputs)


def _config_of(request: StepRequest) -> PreflightConfig:
    if isinstance(request.config, PreflightConfig):
        return request.config
    return PreflightConfig.model_validate(request.config)


async def check_tools(
    config: PreflightConfig, env: dict[str, str], cwd: Path | None
) -> list[ToolCheck]:
    """Every tool of the config, looked for concurrently, in config order."""
    async with asyncio.TaskGroup() as group:
        pending = [
            (kind, group.create_task(detect_tool(entry.spec(), env, cwd=cwd)))
            for kind, entry in config.entries()
        ]
    return [ToolCheck(kind, task.result()) for kind, task in pending]


def tool_outputs(checks: list[ToolCheck]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for check in checks:
        key = tool_key(check.report.name)
        outputs[f"has_{key}"] = check.report.usable
        outputs[f"{key}_version"] = check.report.version
    return outputs


def missing_message(unmet: list[ToolCheck]) -> str:
    listed = ", ".join(f"{check.report.name} ({check.report.how})" for check in unmet)
    return f"missing essential tools: {listed}"


_COLUMNS = ("tool", "found", "version", "path", "kind", "note")


def format_table(checks: list[ToolCheck]) -> list[str]:
    """Aligned lines: tool, found (✓/✗), version, path, kind, and how a missing one was sought."""
    rows = [_COLUMNS, *(_row(check) for check in checks)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _row(check: ToolCheck) -> tuple[str, ...]:
    report = check.report
    return (
        report.name,
        "✓" if report.usable else "✗",
        report.version or "-",
        report.path or "-",
        check.kind,
        "" if report.usable else _short_note(report.how),
    )


def _short_note(how: str) -> str:
    """The table keeps to one screen line: a searched PATH is cut (the failure message has it)."""
    if how.startswith("not on PATH (") and len(how) > 48:
        return how[:45] + "…)"
    return how
