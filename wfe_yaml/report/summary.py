"""The end-of-run summary (DESIGN §7): step table, skip reasons, failure log tails, verdict."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice

from executors.loglines import last_lines
from wfe_yaml.durations import format_duration
from wfe_yaml.engine.events import Event, StepFinished, StepLog, StepStarted
from wfe_yaml.engine.result import RunResult, StepRecord
from wfe_yaml.report.console import (
    FAILURE_STATUSES,
    UNICODE_SYMBOLS,
    Painter,
    Symbols,
    display_width,
    outcome_detail,
    pad,
    parent_path,
)

TAIL_LINES = 20

_HEADERS = ("STEP", "STATUS", "ATTEMPTS", "DURATION", "EXIT")
_RIGHT_ALIGNED = (False, False, True, True, True)
_COUNTED_STATUSES = ("failed", "suspended", "cancelled", "compensated", "skipped")


class TailCollector:
    """A subscriber keeping the last 20 log lines of each step, for the summary and JUnit.

    A retried step's tail restarts with each attempt: the last attempt is the one that failed.
    Lines of steps that succeeded or were skipped are dropped when they finish: only failures
    show a tail, and a 5,000-step run should not keep 100,000 lines around.
    """

    def __init__(self, max_lines: int = TAIL_LINES) -> None:
        self._max_lines = max_lines
        self.tails: dict[str, deque[str]] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepLog):
            self._keep(event)
        elif isinstance(event, StepStarted) or (
            isinstance(event, StepFinished) and event.status in ("succeeded", "skipped")
        ):
            self.tails.pop(event.path, None)

    def _keep(self, event: StepLog) -> None:
        tail = self.tails.get(event.path)
        if tail is None:
            tail = self.tails[event.path] = deque(maxlen=self._max_lines)
        tail.extend(last_lines(event.lines, self._max_lines))


def render_summary(
    result: RunResult,
    tails: Mapping[str, Sequence[str]],
    color: bool,
    *,
    symbols: Symbols = UNICODE_SYMBOLS,
) -> str:
    """The summary as text ending in a newline: table, `Skipped:`, failure tails, verdict."""
    paint = Painter(color)
    sections = [_table(result.steps, paint, symbols)] if result.steps else []
    skipped = _skipped_section(result.steps)
    if skipped:
        sections.append(skipped)
    sections.extend(_failure_sections(result.steps, tails, paint, symbols))
    sections.append(_verdict(result, paint, symbols))
    return "\n\n".join(sections) + "\n"


def _table(steps: Sequence[StepRecord], paint: Painter, symbols: Symbols) -> str:
    rows = [_row(record, symbols) for record in steps]
    widths = [
        max(len(header), *(display_width(row[i]) for row in rows))
        for i, header in enumerate(_HEADERS)
    ]
    lines = [paint(_format_row(_HEADERS, widths), "bold")]
    for record, row in zip(steps, rows, strict=True):
        status = row[1]
        cells = _format_cells(row, widths)
        cells[1] = paint.status(status, record.status) + cells[1][len(status) :]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _row(record: StepRecord, symbols: Symbols) -> tuple[str, ...]:
    ran = record.status not in ("skipped", "pending") and not record.restored
    status = "restored" if record.restored else record.status
    return (
        record.path,
        f"{symbols.icon(record.status)} {status}",
        str(record.attempts) if record.attempts else "-",
        format_duration(record.duration_ms / 1000) if ran else "-",
        "-" if record.exit_code is None else str(record.exit_code),
    )


def _format_cells(cells: Sequence[str], widths: Sequence[int]) -> list[str]:
    return [
        pad(cell, width, align_right)
        for cell, width, align_right in zip(cells, widths, _RIGHT_ALIGNED, strict=True)
    ]


def _format_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(_format_cells(cells, widths)).rstrip()


def _skipped_section(steps: Iterable[StepRecord]) -> str | None:
    lines = [
        f"  {record.path}: {outcome_detail('skipped', skip_reason=record.skip_reason)}"
        for record in steps
        if record.status == "skipped"
    ]
    return "\n".join(["Skipped:", *lines]) if lines else None


def _failure_sections(
    steps: Sequence[StepRecord],
    tails: Mapping[str, Sequence[str]],
    paint: Painter,
    symbols: Symbols,
) -> list[str]:
    explained_below = _ancestors_of_failures(steps)
    sections = []
    for record in steps:
        if record.status not in FAILURE_STATUSES:
            continue
        tail = _last_lines(tails.get(record.path, ()), TAIL_LINES)
        # A failed parallel block or child-workflow step just echoes its failed child.
        if not tail and record.path in explained_below:
            continue
        sections.append(_failure_section(record, tail, paint, symbols))
    return sections


def _ancestors_of_failures(steps: Iterable[StepRecord]) -> set[str]:
    ancestors: set[str] = set()
    for record in steps:
        if record.status in FAILURE_STATUSES:
            parent = parent_path(record.path)
            while parent is not None and parent not in ancestors:
                ancestors.add(parent)
                parent = parent_path(parent)
    return ancestors


def _last_lines(lines: Sequence[str], count: int) -> list[str]:
    return list(islice(lines, max(0, len(lines) - count), None))


def _failure_section(record: StepRecord, tail: list[str], paint: Painter, symbols: Symbols) -> str:
    detail = outcome_detail(record.status, error=record.error, exit_code=record.exit_code)
    title = (
        f"{record.path} ({record.status}: {detail})"
        if detail
        else f"{record.path} ({record.status})"
    )
    rule = symbols.rule * 2
    header = paint(f"{rule} {title} {rule}", "red bold")
    return "\n".join([header, *(tail or ["(no log output)"])])


def _verdict(result: RunResult, paint: Painter, symbols: Symbols) -> str:
    verdict = (
        f"{symbols.icon(result.status)} {result.workflow} {result.status}"
        f" in {format_duration(result.duration_ms / 1000)}"
    )
    counts = _leaf_counts(result.steps)
    if counts:
        verdict += f" ({counts})"
    if result.error and not any(step.status in FAILURE_STATUSES for step in result.steps):
        verdict += f": {result.error}"
    return paint.status(verdict, result.status, bold=True)


def _leaf_counts(steps: Sequence[StepRecord]) -> str:
    """`2 failed, 1 skipped`, counting leaf steps only: a parallel block failing because its
    child failed is one failure, not two."""
    containers = {parent_path(record.path) for record in steps}
    counts = Counter(record.status for record in steps if record.path not in containers)
    return ", ".join(f"{counts[status]} {status}" for status in _COUNTED_STATUSES if counts[status])
