"""Helpers for executor tests: step requests built by hand, log capture, process checks."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from executors.base import StepRequest

T = TypeVar("T")

PROC = Path("/proc")


@dataclass
class LogCapture:
    """A LogSink that keeps every line, per stream, and the batches as they came."""

    batches: list[tuple[str, list[str]]] = field(default_factory=list)

    def __call__(self, stream: str, lines: list[str]) -> None:
        self.batches.append((stream, list(lines)))

    def lines(self, stream: str = "stdout") -> list[str]:
        return [line for name, batch in self.batches if name == stream for line in batch]


def make_request(
    workspace: Path,
    config: Any,
    *,
    log: LogCapture | None = None,
    working_dir: Path | None = None,
    **overrides: Any,
) -> StepRequest:
    return StepRequest(
        run_id="run-1",
        workflow="ci",
        path="ci/step",
        name="step",
        type="shell",
        config=config,
        working_dir=working_dir or workspace,
        workspace=workspace,
        log=log if log is not None else LogCapture(),
        **overrides,
    )


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def cancel_after(awaitable: Awaitable[T], ready: asyncio.Event, delay: float = 0.0) -> None:
    """Start awaitable, wait until `ready` is set (plus delay), cancel it, expect the cancel."""
    task = asyncio.ensure_future(awaitable)
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED, timeout=5)
    waiter.cancel()
    assert not task.done(), "the process ended before it could be cancelled"
    await asyncio.sleep(delay)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return
    raise AssertionError("the cancelled task did not raise CancelledError")


def process_alive(pid: int) -> bool:
    """Running, and not a zombie (an orphan stays one where init does not reap)."""
    try:
        state = (PROC / str(pid) / "stat").read_bytes().rpartition(b")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != b"Z"


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))
