"""Secrets never leave the engine: every event is masked before any subscriber sees it.

One filter here covers every sink (live output, plain logs, log files, the store, JSON and
JUnit reports), so no sink has to remember to mask.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from wfe_yaml.engine.events import (
    Event,
    EventBus,
    Notice,
    RunFinished,
    StepFinished,
    StepLog,
    StepStarted,
    WorkflowFinished,
)
from wfe_yaml.engine.result import RunResult
from wfe_yaml.secrets import Masker


class MaskingBus(EventBus):
    """Passes events on to a parent bus with every secret value replaced by `***`."""

    def __init__(self, parent: EventBus, masker: Masker) -> None:
        super().__init__()
        self.parent = parent
        self.masker = masker

    def emit(self, event: Event) -> None:
        self.parent.emit(mask_event(event, self.masker) if self.masker else event)


def mask_event(event: Event, masker: Masker) -> Event:
    if isinstance(event, StepLog):
        return StepLog(event.path, event.stream, masker.lines(event.lines))
    if isinstance(event, StepFinished):
        return dataclasses.replace(
            event,
            error=masker.value(event.error),
            skip_reason=masker.value(event.skip_reason),
            outputs=masker.value(event.outputs),
        )
    if isinstance(event, Notice):
        return dataclasses.replace(event, message=masker.text(event.message))
    if isinstance(event, StepStarted | WorkflowFinished):
        return _mask_text_fields(event, masker)
    if isinstance(event, RunFinished):
        return RunFinished(mask_result(event.result, masker))
    return event


def mask_result(result: RunResult, masker: Masker) -> RunResult:
    """The run's result as reports and API callers get it: secrets masked."""
    if not masker:
        return result
    steps = [
        dataclasses.replace(
            record,
            error=masker.value(record.error),
            skip_reason=masker.value(record.skip_reason),
            outputs=masker.value(record.outputs),
        )
        for record in result.steps
    ]
    return dataclasses.replace(
        result, outputs=masker.value(result.outputs), steps=steps, error=masker.value(result.error)
    )


def _mask_text_fields(event: StepStarted | WorkflowFinished, masker: Masker) -> Event:
    changes: dict[str, Any] = {
        field.name: masker.text(value)
        for field in dataclasses.fields(event)
        if isinstance(value := getattr(event, field.name), str)
    }
    return dataclasses.replace(event, **changes)
