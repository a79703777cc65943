"""Run-wide state shared by every workflow instance of one run."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from executors.base import Executor, Registry, StepStatus
from wfe_yaml.engine.events import StepFinished
from wfe_yaml.engine.masking import MaskingBus
from wfe_yaml.engine.result import StepRecord
from wfe_yaml.plan import Plan, PlanStep
from wfe_yaml.preflight import CapabilityProbe

MAX_WORKFLOW_DEPTH = 32


@dataclass
class RunContext:
    run_id: str
    plan: Plan
    root: str
    bus: MaskingBus
    registry: Registry
    slots: asyncio.Semaphore
    probe: CapabilityProbe
    secrets: Mapping[str, str]
    kill_grace: float
    started_at: float = field(default_factory=time.time)
    replay: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Step path → recorded outputs of a step that already succeeded: restored, not re-run."""
    dispatch: Callable[[PlanStep, Executor], Executor] | None = None
    """Chooses where a step runs (e.g. a remote worker) given its local executor."""
    records: dict[str, StepRecord] = field(default_factory=dict)
    leaf_tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    """Running step executions and retry pauses: the first Ctrl-C stops them."""
    hook_tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    """Running hooks: cleanup the first Ctrl-C lets finish; only a second one stops them."""
    _runner_env: dict[str, str] | None = None
    cancelled: bool = False
    forced: bool = False

    @property
    def hidden_env(self) -> frozenset[str]:
        """Declared secrets never reach a step through the inherited environment."""
        return frozenset(self.plan.secrets)

    def runner_env(self) -> dict[str, str]:
        """The runner's environment minus declared secrets, read once per run."""
        if self._runner_env is None:
            self._runner_env = {k: v for k, v in os.environ.items() if k not in self.hidden_env}
        return self._runner_env

    def cancel(self) -> None:
        """Ctrl-C: stop running steps; hooks still run. A second call kills everything now."""
        if self.cancelled:
            self.forced = True
            self.kill_grace = 0.0
            for task in [*self.leaf_tasks, *self.hook_tasks]:
                kill_now(task)
            return
        self.cancelled = True
        for task in list(self.leaf_tasks):
            task.cancel()

    def finish(self, record: StepRecord) -> None:
        self.records[record.path] = record
        self.bus.emit(
            StepFinished(
                path=record.path,
                workflow=record.workflow,
                name=record.name,
                type=record.type,
                status=record.status,
                attempts=record.attempts,
                exit_code=record.exit_code,
                started_at=record.started_at,
                duration_ms=record.duration_ms,
                error=record.error,
                skip_reason=record.skip_reason,
                outputs=record.outputs,
            )
        )

    def skip(self, path: str, workflow: str, name: str, type_: str, reason: str) -> None:
        record = StepRecord(path, workflow, name, type_, StepStatus.SKIPPED, skip_reason=reason)
        record.started_at = time.time()
        self.finish(record)


def kill_now(task: asyncio.Task[Any]) -> None:
    """Cancel twice: an executor takes a cancel that arrives while it waits out its kill grace
    as the order to SIGKILL at once. The second cancel is queued behind the delivery of the
    first, so a task that had not been cancelled yet gets both."""
    task.cancel()
    asyncio.get_running_loop().call_soon(task.cancel)
