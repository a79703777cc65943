"""What the engine tells its subscribers (reporters, the store). Nothing here prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    workflow: str
    started_at: float
    steps: tuple[StepInfo, ...] = ()
    """Every step known before the run starts (matrix instances included), in plan order."""
    attempt: int = 1
    """1 for a new run; resuming a run starts its next attempt under the same id."""
    source: str = ""
    """The workflows file the plan was loaded from."""
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepInfo:
    path: str
    workflow: str
    name: str
    type: str
    depth: int


@dataclass(frozen=True)
class WorkflowStarted:
    path: str
    workflow: str
    steps: tuple[StepInfo, ...] = ()


@dataclass(frozen=True)
class WorkflowFinished:
    path: str
    workflow: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class StepStarted:
    path: str
    workflow: str
    name: str
    type: str
    attempt: int
    note: str | None = None


@dataclass(frozen=True)
class StepLog:
    path: str
    stream: str
    lines: Sequence[str]


@dataclass(frozen=True)
class StepFinished:
    path: str
    workflow: str
    name: str
    type: str
    status: str
    attempts: int = 0
    exit_code: int | None = None
    started_at: float | None = None
    duration_ms: int = 0
    error: str | None = None
    skip_reason: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    message: str
    level: str = "info"
    path: str | None = None


@dataclass(frozen=True)
class RunFinished:
    result: Any
    """The run's RunResult (wfe_yaml.engine.result)."""


Event = (
    RunStarted
    | WorkflowStarted
    | WorkflowFinished
    | StepStarted
    | StepLog
    | StepFinished
    | Notice
    | RunFinished
)
Subscriber = Callable[[Event], None]


class EventBus:
    """Fans events out to subscribers synchronously, in subscription order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            subscriber(event)
