"""The outcome of a run: the same data as the JSON report (DESIGN §7)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class StepRecord:
    path: str
    workflow: str
    name: str
    type: str
    status: str
    attempts: int = 0
    exit_code: int | None = None
    duration_ms: int = 0
    skip_reason: str | None = None
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    restored: bool = False
    """Succeeded in an earlier attempt of the run: outputs restored, not run again."""


@dataclass
class RunResult:
    run_id: str
    workflow: str
    status: str
    started_at: float
    finished_at: float
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: list[StepRecord] = field(default_factory=list)
    error: str | None = None

    @property
    def duration_ms(self) -> int:
        return round((self.finished_at - self.started_at) * 1000)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def step(self, path: str) -> StepRecord:
        for record in self.steps:
            if record.path == path:
                return record
        raise KeyError(path)

    def to_report(self) -> dict[str, Any]:
        """The JSON report, exactly as DESIGN §7 lists its keys."""
        steps = []
        for record in self.steps:
            item = asdict(record)
            item.pop("started_at")
            item.pop("restored")
            steps.append(item)
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_ms": self.duration_ms,
            "outputs": self.outputs,
            "steps": steps,
        }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
