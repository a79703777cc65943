"""The executor protocol: what the engine hands an executor and what it gets back.

The engine knows executors only through this module. Executors register through the
entry-point group `wfe_yaml.executors`; the built-in ones are also listed here (`BUILT_IN`),
so that running a file that uses only them never scans the installed distributions.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

ENTRY_POINT_GROUP = "wfe_yaml.executors"

BUILT_IN = {
    "shell": "executors.shell:ShellExecutor",
    "javascript": "executors.javascript:JavaScriptExecutor",
    "js": "executors.javascript:JavaScriptExecutor",
    "deno": "executors.javascript:JavaScriptExecutor",
    "docker": "executors.docker:DockerExecutor",
    "kubernetes": "executors.docker:KubernetesExecutor",
    "k8s": "executors.docker:KubernetesExecutor",
    "workflow": "executors.workflow:WorkflowExecutor",
    "preflight": "executors.preflight:PreflightExecutor",
}
"""The step types wfe ships (also declared as entry points, for listings). They are found
without reading every installed distribution's entry points — 10–20 ms at each start — and a
plug-in cannot take their names over."""


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"
    SUSPENDED = "suspended"


class ExecutorConfig(BaseModel):
    """Base of every executor's config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


LogSink = Callable[[str, Sequence[str]], None]
"""Receives (stream, lines): stream is "stdout" or "stderr"; lines carry no newline."""


@dataclass
class StepRequest:
    """Everything an executor needs to run one step once."""

    run_id: str
    workflow: str
    path: str
    name: str
    type: str
    config: Any
    working_dir: Path
    workspace: Path
    env: Mapping[str, str] = field(default_factory=dict)
    hidden_env: frozenset[str] = frozenset()
    base_env: Mapping[str, str] | None = None
    """The runner's environment minus secrets, when the caller has it at hand (saves a copy of
    os.environ per step); None means: read os.environ here (a remote worker's own)."""
    data: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    kill_grace: float = 10.0
    log: LogSink = lambda stream, lines: None
    context: Any = None

    def process_env(self) -> dict[str, str]:
        """The environment of a process started here: our own minus secrets, plus the step's."""
        if self.base_env is not None:
            base = dict(self.base_env)
        else:
            base = {k: v for k, v in os.environ.items() if k not in self.hidden_env}
        base.update(self.env)
        return base


@dataclass
class StepResult:
    status: StepStatus
    exit_code: int | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    masks: list[str] = field(default_factory=list)

    @classmethod
    def failed(cls, error: str, exit_code: int | None = None, **kw: Any) -> StepResult:
        return cls(StepStatus.FAILED, exit_code=exit_code, error=error, **kw)


class Executor(ABC):
    """One step type. Subclasses set `names` and `config_model` and implement `run`.

    Cancellation and timeouts reach `run` as `asyncio.CancelledError`: an executor must stop
    its work (kill the process group, remove the container, close the V8 context) and re-raise.
    """

    names: ClassVar[tuple[str, ...]]
    config_model: ClassVar[type[BaseModel]]
    holds_slot: ClassVar[bool] = True
    """Whether a running step of this type takes one of the run's --jobs slots."""

    @abstractmethod
    async def run(self, request: StepRequest) -> StepResult: ...


class Registry:
    """Step type name → executor class, from entry points and from code.

    An entry point is named after the step type it provides (aliases get entries of their
    own), so validating a file imports only the executors the file uses.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[Executor]] = {}
        self._instances: dict[type[Executor], Executor] = {}
        self._entries: dict[str, Any] | None = None
        self.broken: dict[str, str] = {}
        """Entry points that failed to import: name → why, shown when a file uses them."""

    def register(self, executor: type[Executor]) -> type[Executor]:
        for name in executor.names:
            self._classes[name] = executor
        return executor

    def names(self) -> list[str]:
        for name in list(self._entry_points()):
            self.has(name)
        return sorted(self._classes)

    def primary_names(self) -> list[str]:
        """The first name of each executor, for listings that should not repeat aliases."""
        self.names()
        return sorted({cls.names[0] for cls in self._classes.values()})

    def has(self, name: str) -> bool:
        if name in self._classes:
            return True
        if name in self.broken:
            return False
        built_in = BUILT_IN.get(name)
        entry = None if built_in else self._entry_points().get(name)
        if entry is None and built_in is None:
            return False
        try:
            loaded = entry.load() if entry else _load_built_in(name)
        except Exception as error:  # a broken plugin must not take the others down
            self.broken[name] = f"{entry.value if entry else built_in} failed to load: {error!r}"
            return False
        for alias in loaded.names:
            self._classes.setdefault(alias, loaded)
        self._classes.setdefault(name, loaded)
        return True

    def executor_class(self, name: str) -> type[Executor]:
        if not self.has(name):
            raise KeyError(name)
        return self._classes[name]

    def executor(self, name: str) -> Executor:
        cls = self.executor_class(name)
        if cls not in self._instances:
            self._instances[cls] = cls()
        return self._instances[cls]

    def config_model(self, name: str) -> type[BaseModel]:
        return self.executor_class(name).config_model

    def _entry_points(self) -> dict[str, Any]:
        if self._entries is None:
            from importlib.metadata import entry_points

            self._entries = {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}
        return self._entries


def _load_built_in(name: str) -> type[Executor]:
    module_name, _, attribute = BUILT_IN[name].partition(":")
    loaded: type[Executor] = getattr(importlib.import_module(module_name), attribute)
    return loaded


registry = Registry()
