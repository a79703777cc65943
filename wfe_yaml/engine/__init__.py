"""The engine: schedules a plan's steps and emits events; it never prints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfe_yaml.engine.engine import Engine
    from wfe_yaml.engine.result import RunResult, StepRecord

__all__ = ["Engine", "RunResult", "StepRecord"]


def __getattr__(name: str) -> Any:
    # Lazy: reporters import engine.events without paying for the scheduler's imports.
    if name == "Engine":
        from wfe_yaml.engine.engine import Engine

        return Engine
    if name in ("RunResult", "StepRecord"):
        from wfe_yaml.engine import result

        return getattr(result, name)
    raise AttributeError(name)
