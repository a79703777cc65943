"""The live tree for an interactive terminal (DESIGN §7): workflow → steps, spinners, timings.

Events arrive on the engine's thread and only change the tree's state; a background thread
redraws at most ten times a second. Log lines are not shown (they go to the log files), except
each running step's last line, cut to the terminal width.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

from wfe_yaml.durations import format_duration
from wfe_yaml.engine.events import (
    Event,
    Notice,
    RunFinished,
    RunStarted,
    StepFinished,
    StepInfo,
    StepLog,
    StepStarted,
    WorkflowFinished,
    WorkflowStarted,
)
from wfe_yaml.engine.result import RunResult, StepRecord
from wfe_yaml.report.console import (
    CLEAR_TO_END,
    HIDE_CURSOR,
    SHOW_CURSOR,
    STATUS_STYLE,
    Painter,
    display_width,
    one_line,
    outcome_detail,
    parent_path,
    split_path,
    symbols_for,
    truncate,
)
from wfe_yaml.report.summary import TailCollector, render_summary

MIN_REFRESH_INTERVAL = 0.1
"""Seconds between redraws, at least: never more than ten frames a second."""

_DETAIL_SHOWN = frozenset({"failed", "cancelled", "suspended", "compensated"})

Segment = tuple[str, str | None]
"""A piece of a tree line: its text and its style."""


@dataclass
class _Node:
    path: str
    name: str
    depth: int
    status: str = "pending"
    started: float | None = None
    duration_ms: int | None = None
    detail: str | None = None
    last_line: str = ""
    attempt: int = 1


class LiveReporter:
    """Draws the run as a tree that redraws in place; leaves the final tree and the summary."""

    def __init__(
        self,
        stream: TextIO | None = None,
        color: bool = True,
        *,
        summary: bool = True,
        refresh_interval: float = MIN_REFRESH_INTERVAL,
        terminal_size: Callable[[], os.terminal_size] = shutil.get_terminal_size,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._paint = Painter(color)
        self._symbols = symbols_for(self._stream)
        self._summary = summary
        self._interval = max(refresh_interval, MIN_REFRESH_INTERVAL)
        self._terminal_size = terminal_size
        self._clock = clock
        self.tails = TailCollector()
        self._nodes: dict[str, _Node] = {}
        self._order: list[str] = []
        self._root: _Node | None = None
        self._notices: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "idle"  # idle → live → finishing → done
        self._drawn_lines = 0
        self._frame = 0

    def __call__(self, event: Event) -> None:
        self.tails(event)
        with self._lock:
            if self._state == "done":
                self._write_late(event)
                return
            self._apply(event)
            if self._state == "idle":
                self._start()
        if isinstance(event, RunFinished):
            self._finish(event.result)

    def close(self) -> None:
        """Stops redrawing, leaves the final tree on screen and shows the cursor again."""
        self._finish(None)

    def __enter__(self) -> LiveReporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- state -----------------------------------------------------------------------------

    def _apply(self, event: Event) -> None:
        match event:
            case RunStarted():
                self._run_started(event)
            case WorkflowStarted():
                self._add_steps(event.steps, under=self._ensure(event.path))
            case StepStarted():
                self._step_started(event)
            case StepLog():
                self._step_log(event)
            case StepFinished():
                self._step_finished(event)
            case WorkflowFinished():
                self._workflow_finished(event)
            case Notice():
                self._notices.append(self._notice_text(event))
            case RunFinished():
                self._run_finished(event.result)

    def _run_started(self, event: RunStarted) -> None:
        root = self._ensure(event.workflow)
        root.status, root.started = "running", self._clock()
        self._add_steps(event.steps, under=root)

    def _add_steps(self, steps: Iterable[StepInfo], under: _Node) -> None:
        for info in steps:
            self._ensure(info.path)
        if under is self._root and under.status == "pending":
            under.status, under.started = "running", self._clock()

    def _step_started(self, event: StepStarted) -> None:
        node = self._ensure(event.path)
        node.status, node.started, node.attempt = "running", self._clock(), event.attempt
        node.detail, node.last_line, node.duration_ms = event.note, "", None

    def _step_log(self, event: StepLog) -> None:
        node = self._nodes.get(event.path)
        if node is None:
            return
        for line in reversed(event.lines):
            if line.strip():
                node.last_line = line
                return

    def _step_finished(self, event: StepFinished) -> None:
        node = self._ensure(event.path)
        node.status, node.duration_ms, node.last_line = event.status, event.duration_ms, ""
        node.detail = outcome_detail(
            event.status,
            error=event.error,
            exit_code=event.exit_code,
            skip_reason=event.skip_reason,
        )

    def _workflow_finished(self, event: WorkflowFinished) -> None:
        node = self._ensure(event.path)
        if node is self._root:
            node.status, node.detail = event.status, event.error
            node.duration_ms = self._elapsed_ms(node)

    def _run_finished(self, result: RunResult) -> None:
        root = self._ensure(result.workflow)
        root.status, root.duration_ms = result.status, result.duration_ms
        # The result is the truth: it settles steps whose events never came (a cancelled run).
        for record in result.steps:
            self._settle(record)

    def _settle(self, record: StepRecord) -> None:
        node = self._ensure(record.path)
        node.status, node.last_line = record.status, ""
        if record.status not in ("pending", "skipped"):
            node.duration_ms = record.duration_ms
        node.detail = outcome_detail(
            record.status,
            error=record.error,
            exit_code=record.exit_code,
            skip_reason=record.skip_reason,
        )

    def _ensure(self, path: str) -> _Node:
        node = self._nodes.get(path)
        if node is not None:
            return node
        parent = parent_path(path)
        if parent is not None:
            self._ensure(parent)
        parts = split_path(path)
        node = self._nodes[path] = _Node(path=path, name=parts[-1], depth=len(parts) - 1)
        self._insert(path, parent)
        if self._root is None and parent is None:
            self._root = node
        return node

    def _insert(self, path: str, parent: str | None) -> None:
        """Places the path after its parent's last descendant (plan order appends directly)."""
        if parent is None or _is_within(self._order[-1], parent):
            self._order.append(path)
            return
        index = self._order.index(parent) + 1
        while index < len(self._order) and _is_within(self._order[index], parent):
            index += 1
        self._order.insert(index, path)

    def _elapsed_ms(self, node: _Node) -> int | None:
        if node.started is None:
            return node.duration_ms
        return round((self._clock() - node.started) * 1000)

    # --- drawing ---------------------------------------------------------------------------

    def _start(self) -> None:
        self._state = "live"
        self._stream.write(HIDE_CURSOR)
        self._stream.flush()
        atexit.register(self.close)
        self._thread = threading.Thread(target=self._redraw_loop, name="wfe-live", daemon=True)
        self._thread.start()

    def _redraw_loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                if self._state != "live":
                    return
                self._frame += 1
                try:
                    self._draw(final=False)
                except (OSError, ValueError):  # the terminal went away: stop drawing
                    return

    def _finish(self, result: RunResult | None) -> None:
        with self._lock:
            if self._state != "live":
                return
            self._state = "finishing"
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            try:
                self._draw(final=True)
            finally:
                self._state = "done"
                atexit.unregister(self.close)
                self._stream.write(SHOW_CURSOR + self._summary_text(result))
                self._stream.flush()

    def _summary_text(self, result: RunResult | None) -> str:
        if result is None or not self._summary:
            return ""
        summary = render_summary(
            result, self.tails.tails, self._paint.enabled, symbols=self._symbols
        )
        return f"\n{summary}"

    def _write_late(self, event: Event) -> None:
        if isinstance(event, Notice):
            self._stream.write(self._notice_text(event) + "\n")
            self._stream.flush()

    def _draw(self, final: bool) -> None:
        """Replaces the last frame: cursor up over it, clear, notices, then the tree."""
        lines = self._frame_lines(final)
        parts = [f"\x1b[{self._drawn_lines}F" if self._drawn_lines else "", CLEAR_TO_END]
        parts.extend(f"{notice}\n" for notice in self._notices)
        parts.extend(f"{line}\n" for line in lines)
        self._notices.clear()
        self._stream.write("".join(parts))
        self._stream.flush()
        self._drawn_lines = len(lines)

    def _frame_lines(self, final: bool) -> list[str]:
        size = self._terminal_size()
        width = max(size.columns - 1, 10)  # the last column would make some terminals wrap
        nodes = [self._nodes[path] for path in self._order]
        footer: list[str] = []
        if not final and len(nodes) > size.lines - 1:
            nodes, hidden = _fit_height(nodes, max(size.lines - 1, 3))
            footer = [self._fit([(self._hidden_text(hidden), "dim")], width)]
        now = self._clock()
        return [self._fit(self._segments(node, now), width) for node in nodes] + footer

    def _segments(self, node: _Node, now: float) -> list[Segment]:
        segments: list[Segment] = [("  " * node.depth, None), self._icon(node)]
        segments.append(
            (f" {one_line(node.name)}{self._attempt_text(node)}", self._name_style(node))
        )
        duration = self._duration_ms(node, now)
        if duration is not None:
            segments.append((f"  {format_duration(duration / 1000)}", "dim"))
        segments.append(self._trailer(node))
        return segments

    def _icon(self, node: _Node) -> Segment:
        if node.status == "running":
            spinner = self._symbols.spinner
            return spinner[self._frame % len(spinner)], STATUS_STYLE["running"]
        return self._symbols.icon(node.status), STATUS_STYLE.get(node.status)

    def _name_style(self, node: _Node) -> str | None:
        if node is self._root:
            return "bold"
        return "dim" if node.status in ("pending", "skipped") else None

    @staticmethod
    def _attempt_text(node: _Node) -> str:
        return f" (attempt {node.attempt})" if node.attempt > 1 and node.status == "running" else ""

    @staticmethod
    def _duration_ms(node: _Node, now: float) -> int | None:
        if node.status == "running" and node.started is not None:
            return round((now - node.started) * 1000)
        if node.status in ("pending", "skipped"):
            return None
        return node.duration_ms

    def _trailer(self, node: _Node) -> Segment:
        if node is self._root and node.status == "running":
            return f"  {self._progress_text()}", "dim"
        if node.status == "running":
            return f"  {one_line(node.last_line or node.detail or '')}", "dim"
        if node.status == "skipped":
            return f"  skipped: {one_line(node.detail or '')}", "dim"
        if node.status in _DETAIL_SHOWN and node.detail:
            return f"  {one_line(node.detail)}", STATUS_STYLE[node.status]
        return "", None

    def _progress_text(self) -> str:
        steps = [node for node in self._nodes.values() if node is not self._root]
        done = sum(node.status not in ("pending", "running") for node in steps)
        return f"{done}/{len(steps)} steps"

    def _hidden_text(self, hidden: list[_Node]) -> str:
        counts: dict[str, int] = {}
        for node in hidden:
            counts[node.status] = counts.get(node.status, 0) + 1
        listed = ", ".join(f"{count} {status}" for status, count in counts.items())
        return f"{self._symbols.ellipsis} {len(hidden)} more: {listed}"

    def _fit(self, segments: list[Segment], width: int) -> str:
        """The segments painted, cut to `width` columns (styles never count as width)."""
        painted, room = [], width
        for text, style in segments:
            if not text:
                continue
            shown = truncate(text, room, self._symbols.ellipsis)
            painted.append(self._paint(shown, style))
            room -= display_width(shown)
            if shown != text or room <= 0:
                break
        return "".join(painted)

    def _notice_text(self, event: Notice) -> str:
        label = "" if event.level == "info" else f"{event.level}: "
        where = f"[{event.path}] " if event.path else ""
        style = {"warning": "yellow", "error": "red"}.get(event.level)
        return self._paint(f"{where}{label}{event.message}", style)


def _is_within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + "/")


def _fit_height(nodes: list[_Node], rows: int) -> tuple[list[_Node], list[_Node]]:
    """When the tree is taller than the terminal: the root, then running and failed steps, and
    the rest counted in a footer (moving the cursor above the screen's top is impossible)."""
    root, rest = nodes[0], nodes[1:]
    wanted = [node for node in rest if node.status in ("running", "failed")][: rows - 2]
    shown = set(map(id, wanted))
    hidden = [node for node in rest if id(node) not in shown]
    return [root, *wanted], hidden
