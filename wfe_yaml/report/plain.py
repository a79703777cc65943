"""Plain log lines prefixed with the step path, for CI boxes, pipes and `--plain` (DESIGN §7)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

from executors.loglines import as_text
from wfe_yaml.engine.events import (
    Event,
    Notice,
    RunFinished,
    RunStarted,
    StepFinished,
    StepLog,
    StepStarted,
    WorkflowFinished,
    WorkflowStarted,
)
from wfe_yaml.report.console import (
    FAILURE_STATUSES,
    RESET,
    Painter,
    outcome_detail,
    status_phrase,
    symbols_for,
)
from wfe_yaml.report.summary import TailCollector, render_summary

QUIET, NORMAL, VERBOSE = -1, 0, 1

_FLUSH_INTERVAL = 0.2
"""Log batches are flushed at most this often (seconds); every other event flushes at once."""

_NOTICE_MIN_VERBOSITY = {"debug": VERBOSE, "error": QUIET}


class PlainReporter:
    """Writes one line per step start, log line, and step end, each prefixed `[workflow/step]`.

    Quiet (-1) writes only failures and the summary; verbose (1) adds workflow boundaries, step
    types and the outputs each step set.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        verbosity: int = NORMAL,
        color: bool = False,
        *,
        summary: bool = True,
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._verbosity = verbosity
        self._paint = Painter(color)
        self._symbols = symbols_for(self._stream)
        self._summary = summary
        self._root = "wfe"
        self._prefixes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._last_flush = 0.0
        self.tails = TailCollector()

    def __call__(self, event: Event) -> None:
        self.tails(event)
        if isinstance(event, StepLog):
            self._write_logs(event)
            return
        text = self._render(event)
        if text:
            self._write(text, flush=True)

    def close(self) -> None:
        with self._lock:
            self._stream.flush()

    def _render(self, event: Event) -> str:
        match event:
            case RunStarted():
                return self._run_started(event)
            case WorkflowStarted():
                return self._workflow_started(event)
            case StepStarted():
                return self._step_started(event)
            case StepFinished():
                return self._step_finished(event)
            case WorkflowFinished():
                return self._workflow_finished(event)
            case Notice():
                return self._notice(event)
            case RunFinished():
                return self._run_finished(event)
        return ""

    def _run_started(self, event: RunStarted) -> str:
        self._root = event.workflow
        if self._verbosity < NORMAL:
            return ""
        return self._line(event.workflow, f"$ run {event.run_id} started")

    def _workflow_started(self, event: WorkflowStarted) -> str:
        if self._verbosity < VERBOSE:
            return ""
        return self._line(event.path, f"$ workflow {event.workflow} started")

    def _step_started(self, event: StepStarted) -> str:
        if self._verbosity < NORMAL:
            return ""
        text = "$ started"
        if event.attempt > 1:
            text += f" (attempt {event.attempt})"
        if self._verbosity >= VERBOSE:
            text += f" [{event.type}]"
        if event.note:
            text += f": {event.note}"
        return self._line(event.path, text)

    def _step_finished(self, event: StepFinished) -> str:
        failed = event.status in FAILURE_STATUSES
        if self._verbosity < NORMAL and not failed:
            return ""
        detail = outcome_detail(
            event.status,
            error=event.error,
            exit_code=event.exit_code,
            skip_reason=event.skip_reason,
        )
        text = status_phrase(event.status, event.duration_ms, detail)
        if event.attempts > 1:
            text += f" (after {event.attempts} attempts)"
        lines = [self._line(event.path, self._status_text(event.status, text))]
        if self._verbosity >= VERBOSE:
            lines.extend(
                self._line(event.path, _output_text(k, v)) for k, v in event.outputs.items()
            )
        return "".join(lines)

    def _workflow_finished(self, event: WorkflowFinished) -> str:
        if self._verbosity < VERBOSE:
            return ""
        detail = f": {event.error}" if event.error else ""
        text = f"workflow {event.workflow} {event.status}{detail}"
        return self._line(event.path, self._status_text(event.status, text))

    def _notice(self, event: Notice) -> str:
        if self._verbosity < _NOTICE_MIN_VERBOSITY.get(event.level, NORMAL):
            return ""
        label = "" if event.level == "info" else f"{event.level}: "
        style = {"warning": "yellow", "error": "red"}.get(event.level)
        return self._line(event.path or self._root, self._paint(f"{label}{event.message}", style))

    def _run_finished(self, event: RunFinished) -> str:
        if not self._summary:
            return ""
        summary = render_summary(
            event.result, self.tails.tails, self._paint.enabled, symbols=self._symbols
        )
        return f"\n{summary}"

    def _status_text(self, status: str, text: str) -> str:
        return self._paint.status(f"{self._symbols.icon(status)} {text}", status)

    def _line(self, path: str, text: str) -> str:
        return f"{self._prefix(path)} {text}\n"

    def _prefix(self, path: str) -> str:
        prefix = self._prefixes.get(path)
        if prefix is None:
            prefix = self._prefixes[path] = self._paint(f"[{path}]", "cyan")
        return prefix

    def _write_logs(self, event: StepLog) -> None:
        if self._verbosity < NORMAL or not event.lines:
            return
        # The hot path of a 200 MB log: one replace and one write per batch, no per-line calls.
        head = f"{self._prefix(event.path)} "
        end = "\n"
        if self._paint.enabled and event.stream == "stderr":
            head += "\x1b[33m"
            end = f"{RESET}\n"
        block = as_text(event.lines)
        self._write(head + block[:-1].replace("\n", end + head) + end, flush=False)

    def _write(self, text: str, flush: bool) -> None:
        """Writes the text; flushes when asked, and log batches at most every 0.2 s."""
        with self._lock:
            self._stream.write(text)
            now = time.monotonic()
            if flush or now - self._last_flush >= _FLUSH_INTERVAL:
                self._stream.flush()
                self._last_flush = now


def _output_text(name: str, value: Any) -> str:
    shown = value if isinstance(value, str) and "\n" not in value else _json(value)
    return f"  output {name} = {shown}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
