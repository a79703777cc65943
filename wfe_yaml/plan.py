"""The immutable plan the engine runs: workflows of steps with resolved dependencies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wfe_yaml.conditions import Condition
from wfe_yaml.errors import ConfigError, Mark
from wfe_yaml.models import ErrorBehavior, OutputRef, Service
from wfe_yaml.types import TypeSpec

HOOK_KINDS = ("on_success", "on_failure", "ensure", "compensate")


@dataclass(frozen=True)
class PlanStep:
    name: str
    """Unique in its workflow; a matrix instance is named `unit[shard=2]`."""
    type: str | None
    """The step type, or None for a `parallel:` block."""
    mark: Mark
    config: Mapping[str, Any] = field(default_factory=dict)
    """Raw config: `${{ }}` still unrendered; validated at load where it has no expressions."""
    static_config: Any = None
    """The validated config model when the config has no `${{ }}` (else rendered at start)."""
    needs: tuple[str, ...] = ()
    children: tuple[PlanStep, ...] = ()
    when: Condition | None = None
    requires: tuple[str, ...] = ()
    matrix: Mapping[str, Any] | None = None
    group: str | None = None
    """The step name a matrix instance was expanded from."""
    max_parallel: int | None = None
    fail_fast: bool = True
    timeout: float | None = None
    error_behavior: ErrorBehavior = field(default_factory=ErrorBehavior)
    on_success: tuple[PlanStep, ...] = ()
    on_failure: tuple[PlanStep, ...] = ()
    ensure: tuple[PlanStep, ...] = ()
    compensate: tuple[PlanStep, ...] = ()
    outputs: tuple[OutputRef, ...] = ()
    runs_on: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    script_line: int | None = None
    """1-based line where an inline `script:`/`run:` text starts, for error positions."""

    @property
    def is_parallel(self) -> bool:
        return self.type is None

    def hooks(self, kind: str) -> tuple[PlanStep, ...]:
        hooks: tuple[PlanStep, ...] = getattr(self, kind)
        return hooks


@dataclass(frozen=True)
class PlanWorkflow:
    id: str
    version: int
    mark: Mark
    source: Path
    name: str | None = None
    description: str | None = None
    inputs: Mapping[str, TypeSpec] = field(default_factory=dict)
    outputs: Mapping[str, TypeSpec] = field(default_factory=dict)
    steps: tuple[PlanStep, ...] = ()
    ensure: tuple[PlanStep, ...] = ()
    timeout: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    services: Mapping[str, Service] = field(default_factory=dict)

    @property
    def workspace(self) -> Path:
        return self.source.parent

    def calls(self) -> set[str]:
        """Ids of the workflows this one starts through `type: workflow` steps."""
        return {
            str(step.config.get("workflow"))
            for step in walk_steps(self.steps + self.ensure)
            if step.type == "workflow"
        }


@dataclass(frozen=True)
class Plan:
    source: Path
    workflows: Mapping[str, PlanWorkflow]
    entry: str | None = None
    secrets: tuple[str, ...] = ()
    capabilities: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[ConfigError, ...] = ()
    files: tuple[Path, ...] = ()

    def workflow(self, name: str | None = None) -> PlanWorkflow:
        """The workflow to run: the argument, else `entry:`, else the only one nobody calls."""
        chosen = name or self.entry or self._only_root()
        if chosen not in self.workflows:
            known = ", ".join(sorted(self.workflows))
            raise ConfigError(f"no workflow '{chosen}' in {self.source.name}; workflows: {known}")
        return self.workflows[chosen]

    def _only_root(self) -> str:
        called = set().union(*(wf.calls() for wf in self.workflows.values()))
        roots = [wf_id for wf_id in self.workflows if wf_id not in called]
        if len(roots) == 1:
            return roots[0]
        candidates = ", ".join(roots or list(self.workflows))
        raise ConfigError(
            f"{self.source.name} has several workflows; say which one to run: {candidates}",
            hint="pass the workflow id as an argument, or set `entry:` in the file",
        )


def walk_steps(steps: tuple[PlanStep, ...]) -> list[PlanStep]:
    """Every step below these, depth-first: parallel children and hooks included."""
    found: list[PlanStep] = []
    for step in steps:
        found.append(step)
        found.extend(walk_steps(step.children))
        for kind in HOOK_KINDS:
            found.extend(walk_steps(step.hooks(kind)))
    return found
