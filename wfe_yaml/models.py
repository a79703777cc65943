"""Pydantic models of the format (DESIGN §3). Executor configs live with their executors."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from wfe_yaml.conditions import Condition
from wfe_yaml.durations import Duration
from wfe_yaml.types import TypeString

UNIMPLEMENTED_WFE_KEYS = {"shared_volume"}
"""WFE keys we accept and ignore, with a warning."""


def empty_list() -> list[Any]:
    """A default factory. Not `list`: pydantic reads a factory's signature, and for a builtin
    that means parsing its text signature, about 1 ms each time."""
    return []


def empty_dict() -> dict[str, Any]:
    """A default factory (see `empty_list`)."""
    return {}


class Strict(BaseModel):
    # strict: YAML already typed every value, so "yes" must not become a boolean, nor "3" a number.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


def _as_list(value: Any) -> Any:
    """Accept a single item where a list is expected (`requires: docker`, `ensure: {...}`)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class ErrorBehavior(Strict):
    type: Literal["terminate", "retry", "continue", "suspend", "compensate"] = "terminate"
    interval: Duration = 1.0
    max_retries: int = Field(default=3, ge=0)
    backoff: float = Field(default=1.0, ge=1.0)
    max_interval: Duration | None = None
    on_exit_codes: list[int] | None = None


class OutputRef(Strict):
    name: str
    path: str | None = None
    json_path: str | None = None

    @classmethod
    def coerce(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


def _output_refs(value: Any) -> Any:
    return [OutputRef.coerce(item) for item in _as_list(value)]


def env_strings(value: Any) -> Any:
    """Environment values written as YAML numbers or booleans become their text."""
    if not isinstance(value, dict):
        return value
    return {key: _env_text(item) for key, item in value.items()}


def _env_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


# The JSON Schema shows what a user may write (one item or a list; env numbers), not what the
# validators turn it into.
Names = Annotated[list[str], BeforeValidator(_as_list, json_schema_input_type=str | list[str])]
Steps = Annotated[
    list["Step"], BeforeValidator(_as_list, json_schema_input_type=Union["Step", list["Step"]])
]
OutputRefs = Annotated[
    list[OutputRef],
    BeforeValidator(_output_refs, json_schema_input_type=str | OutputRef | list[str | OutputRef]),
]
Env = Annotated[
    dict[str, str],
    BeforeValidator(env_strings, json_schema_input_type=dict[str, str | int | float | bool]),
]


class Step(Strict):
    name: str = Field(min_length=1)
    type: str | None = None
    config: dict[str, Any] | None = None
    parallel: list[Step] | None = None
    needs: list[str] | None = None
    when: Condition | None = None
    requires: Names = Field(default_factory=empty_list)
    matrix: dict[str, list[Any]] | None = None
    max_parallel: int | None = Field(default=None, ge=1)
    fail_fast: bool = True
    timeout: Duration | None = None
    error_behavior: ErrorBehavior | None = None
    on_success: Steps = Field(default_factory=empty_list)
    on_failure: Steps = Field(default_factory=empty_list)
    ensure: Steps = Field(default_factory=empty_list)
    compensate: Steps = Field(default_factory=empty_list)
    outputs: OutputRefs = Field(default_factory=empty_list)
    inputs: OutputRefs = Field(default_factory=empty_list)
    runs_on: Names = Field(default_factory=empty_list)
    env: Env = Field(default_factory=empty_dict)
    secrets: Names = Field(default_factory=empty_list)
    continue_on_error: bool = False

    def hooks(self) -> dict[str, list[Step]]:
        return {
            "on_success": self.on_success,
            "on_failure": self.on_failure,
            "ensure": self.ensure,
            "compensate": self.compensate,
        }


class Readiness(Strict):
    exec: list[str] | str | None = None
    tcp: int | None = None
    http: dict[str, Any] | int | None = None
    interval: Duration = 2.0
    timeout: Duration = 60.0
    retries: int = 30


class Service(Strict):
    image: str
    ports: list[int | str] = Field(default_factory=empty_list)
    env: Env = Field(default_factory=empty_dict)
    command: list[str] | str | None = None
    args: list[str] = Field(default_factory=empty_list)
    readiness: Readiness | None = None
    memory: str | None = None
    cpus: float | str | None = None
    cpu: str | None = None


class Workflow(Strict):
    id: str = Field(min_length=1)
    version: int = 1
    name: str | None = None
    description: str | None = None
    inputs: dict[str, TypeString] = Field(default_factory=empty_dict)
    outputs: dict[str, TypeString] = Field(default_factory=empty_dict)
    steps: list[Step] = Field(min_length=1)
    ensure: Steps = Field(default_factory=empty_list)
    error_behavior: ErrorBehavior | None = None
    timeout: Duration | None = None
    env: Env = Field(default_factory=empty_dict)
    requires: Names = Field(default_factory=empty_list)
    services: dict[str, Service] = Field(default_factory=empty_dict)
    shared_volume: Any = None


class Document(Strict):
    include: Names = Field(default_factory=empty_list)
    config: dict[str, Any] = Field(default_factory=empty_dict)
    entry: str | None = None
    secrets: Names = Field(default_factory=empty_list)
    capabilities: dict[str, str] = Field(default_factory=empty_dict)
    workflow: Workflow | None = None
    workflows: list[Workflow] | None = None

    def all_workflows(self) -> list[Workflow]:
        if self.workflow is not None:
            return [self.workflow]
        return list(self.workflows or [])
