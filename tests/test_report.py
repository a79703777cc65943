"""Console reporters, the end-of-run summary, and the JSON and JUnit reports (DESIGN §7)."""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wfe_yaml.engine.events import (
    Event,
    EventBus,
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
    ASCII_SYMBOLS,
    UNICODE_SYMBOLS,
    PipeSafe,
    Reporter,
    display_width,
    make_console_reporter,
    one_line,
    split_path,
    symbols_for,
    truncate,
)
from wfe_yaml.report.json_report import REPORT_SCHEMA, schema_errors, write_json_report
from wfe_yaml.report.junit import junit_xml, write_junit
from wfe_yaml.report.live import LiveReporter
from wfe_yaml.report.plain import PlainReporter
from wfe_yaml.report.summary import TailCollector, render_summary

T0 = 1_700_000_000.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class TtyStringIO(io.StringIO):
    """A terminal stand-in: records output, says it is a TTY."""

    def isatty(self) -> bool:
        return True


def terminal(columns: int = 80, lines: int = 24) -> os.terminal_size:
    return os.terminal_size((columns, lines))


def info(path: str, type_: str = "shell") -> StepInfo:
    parts = path.split("/")
    return StepInfo(path, parts[0], parts[-1], type_, len(parts) - 1)


def finished(path: str, status: str, **fields: Any) -> StepFinished:
    name = path.rsplit("/", 1)[-1]
    return StepFinished(path=path, workflow="ci", name=name, type="shell", status=status, **fields)


def started(path: str, attempt: int = 1, note: str | None = None) -> StepStarted:
    return StepStarted(path, "ci", path.rsplit("/", 1)[-1], "shell", attempt, note)


def record(path: str, status: str, **fields: Any) -> StepRecord:
    workflow = "cover" if path.startswith("ci/cover/") else "ci"
    name = path.rsplit("/", 1)[-1]
    return StepRecord(
        path=path, workflow=workflow, name=name, type="shell", status=status, **fields
    )


def small_result() -> RunResult:
    return RunResult(
        run_id="r1",
        workflow="ci",
        status="failed",
        started_at=T0,
        finished_at=T0 + 3.2,
        outputs={"coverage": 87.5},
        steps=[
            record("ci/lint", "succeeded", attempts=1, exit_code=0, duration_ms=1200),
            record("ci/tests", "failed", attempts=1, duration_ms=310, error="unit failed"),
            record("ci/tests/unit", "failed", attempts=2, exit_code=1, duration_ms=300),
            record("ci/tests/integration", "skipped", skip_reason="requires docker: not available"),
            record("ci/cover", "skipped", skip_reason="upstream failed: tests"),
        ],
    )


def small_run_events(result: RunResult | None = None) -> list[Event]:
    return [
        RunStarted(
            "r1",
            "ci",
            T0,
            (
                info("ci/lint"),
                info("ci/tests", "parallel"),
                info("ci/tests/unit"),
                info("ci/tests/integration"),
                info("ci/cover", "workflow"),
            ),
        ),
        WorkflowStarted("ci", "ci"),
        started("ci/lint"),
        StepLog("ci/lint", "stdout", ["All checks passed!"]),
        finished(
            "ci/lint", "succeeded", attempts=1, exit_code=0, duration_ms=1200, outputs={"n": 0}
        ),
        started("ci/tests"),
        started("ci/tests/unit"),
        StepLog("ci/tests/unit", "stdout", ["collected 2 items", "test_a PASSED"]),
        StepLog("ci/tests/unit", "stderr", ["E   assert 1 == 2"]),
        Notice("exited with code 1; retrying in 1.0s", "warning", "ci/tests/unit"),
        started("ci/tests/unit", attempt=2),
        StepLog("ci/tests/unit", "stderr", ["E   assert 1 == 2"]),
        finished("ci/tests/unit", "failed", attempts=2, exit_code=1, duration_ms=300),
        finished("ci/tests/integration", "skipped", skip_reason="requires docker: not available"),
        finished("ci/tests", "failed", attempts=1, duration_ms=310, error="unit failed"),
        finished("ci/cover", "skipped", skip_reason="upstream failed: tests"),
        WorkflowFinished("ci", "ci", "failed", "tests failed"),
        RunFinished(result or small_result()),
    ]


def drive(reporter: Reporter, events: list[Event]) -> None:
    bus = EventBus()
    bus.subscribe(reporter)
    for event in events:
        bus.emit(event)
    reporter.close()


def plain_output(verbosity: int = 0, color: bool = False, summary: bool = False) -> str:
    stream = io.StringIO()
    drive(PlainReporter(stream, verbosity, color, summary=summary), small_run_events())
    return stream.getvalue()


# --- console helpers -----------------------------------------------------------------------


def test_split_path_keeps_slashes_inside_matrix_brackets() -> None:
    assert split_path("ci/tests/unit") == ["ci", "tests", "unit"]
    assert split_path("ci/unit[os=ubuntu/22.04]") == ["ci", "unit[os=ubuntu/22.04]"]


def test_truncate_counts_wide_characters_and_adds_an_ellipsis() -> None:
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("日本語テキスト", 6) == "日本…"
    assert display_width("日本…") <= 6


def test_one_line_drops_escapes_controls_and_carriage_return_redraws() -> None:
    assert one_line("\x1b[31mred\x1b[0m\tx\x07") == "red    x"
    assert one_line(" 10%\r 50%\r100% done") == "100% done"


def test_ascii_symbols_for_streams_that_cannot_encode_unicode() -> None:
    latin = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert symbols_for(latin) is ASCII_SYMBOLS
    assert symbols_for(io.StringIO()) is UNICODE_SYMBOLS


# --- plain reporter ------------------------------------------------------------------------


def test_plain_lines_are_prefixed_with_the_step_path() -> None:
    assert plain_output().splitlines() == [
        "[ci] $ run r1 started",
        "[ci/lint] $ started",
        "[ci/lint] All checks passed!",
        "[ci/lint] ✓ succeeded in 1.2s",
        "[ci/tests] $ started",
        "[ci/tests/unit] $ started",
        "[ci/tests/unit] collected 2 items",
        "[ci/tests/unit] test_a PASSED",
        "[ci/tests/unit] E   assert 1 == 2",
        "[ci/tests/unit] warning: exited with code 1; retrying in 1.0s",
        "[ci/tests/unit] $ started (attempt 2)",
        "[ci/tests/unit] E   assert 1 == 2",
        "[ci/tests/unit] ✗ failed in 300ms: exited with code 1 (after 2 attempts)",
        "[ci/tests/integration] - skipped: requires docker: not available",
        "[ci/tests] ✗ failed in 310ms: unit failed",
        "[ci/cover] - skipped: upstream failed: tests",
    ]


def test_plain_quiet_prints_only_failures_and_the_summary() -> None:
    output = plain_output(verbosity=-1, summary=True)
    events_part, summary = output.split("\n\n", 1)
    assert events_part.splitlines() == [
        "[ci/tests/unit] ✗ failed in 300ms: exited with code 1 (after 2 attempts)",
        "[ci/tests] ✗ failed in 310ms: unit failed",
    ]
    assert summary.rstrip().endswith("✗ ci failed in 3.2s (1 failed, 2 skipped)")


def test_plain_verbose_adds_types_outputs_and_workflow_boundaries() -> None:
    lines = plain_output(verbosity=1).splitlines()
    assert "[ci] $ workflow ci started" in lines
    assert "[ci/lint] $ started [shell]" in lines
    assert "[ci/lint]   output n = 0" in lines
    assert "[ci] ✗ workflow ci failed: tests failed" in lines


def test_plain_verbose_outputs_show_strings_raw_and_others_as_json() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream, verbosity=1)
    outputs = {"version": "1.2", "flag": True, "multi": "a\nb", "items": [1, "x"]}
    reporter(finished("ci/build", "succeeded", duration_ms=5, outputs=outputs))
    assert stream.getvalue().splitlines()[1:] == [
        "[ci/build]   output version = 1.2",
        "[ci/build]   output flag = true",
        '[ci/build]   output multi = "a\\nb"',
        '[ci/build]   output items = [1, "x"]',
    ]


def test_plain_without_color_writes_no_escape_sequences() -> None:
    assert "\x1b" not in plain_output(verbosity=1, summary=True)


def test_plain_with_color_paints_statuses_and_stderr() -> None:
    output = plain_output(color=True)
    assert "\x1b[32m✓ succeeded in 1.2s\x1b[0m" in output
    assert "\x1b[33mE   assert 1 == 2\x1b[0m" in output
    assert ANSI.sub("", output) == plain_output()


def test_plain_writes_each_log_batch_with_one_write() -> None:
    class CountingStream(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    stream = CountingStream()
    reporter = PlainReporter(stream)
    reporter(StepLog("ci/big", "stdout", [f"line {n}" for n in range(10_000)]))
    assert stream.writes == 1
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10_000
    assert lines[0] == "[ci/big] line 0"
    assert lines[-1] == "[ci/big] line 9999"


def test_plain_notices_without_a_path_use_the_run_workflow() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream, verbosity=-1)
    reporter(RunStarted("r1", "ci", T0))
    reporter(Notice("shared_volume is not supported", "warning"))
    reporter(Notice("store unavailable", "error"))
    assert stream.getvalue() == "[ci] error: store unavailable\n"


# --- choosing the console reporter ---------------------------------------------------------


def is_colored(reporter: Reporter, stream: io.StringIO) -> bool:
    reporter(Notice("careful", "error", "ci/x"))
    reporter.close()
    return "\x1b[31m" in stream.getvalue()


@pytest.mark.parametrize(
    ("tty", "plain", "verbosity", "env", "expected", "colored"),
    [
        (True, False, 0, {}, LiveReporter, True),
        (True, False, 0, {"NO_COLOR": "1"}, LiveReporter, False),
        (True, False, 0, {"CI": "true"}, PlainReporter, True),
        (True, False, 0, {"CI": "false"}, LiveReporter, True),
        (True, False, 0, {"TERM": "dumb"}, PlainReporter, False),
        (True, True, 0, {}, PlainReporter, True),
        (True, True, 0, {"NO_COLOR": "yes"}, PlainReporter, False),
        (True, False, -1, {}, PlainReporter, True),
        (False, False, 0, {}, PlainReporter, False),
        (False, True, 1, {}, PlainReporter, False),
    ],
)
def test_make_console_reporter_picks_live_only_on_an_interactive_terminal(
    tty: bool, plain: bool, verbosity: int, env: dict[str, str], expected: type, colored: bool
) -> None:
    stream = TtyStringIO() if tty else io.StringIO()
    reporter = make_console_reporter(stream, plain=plain, verbosity=verbosity, env=env)
    assert isinstance(reporter, PipeSafe)
    assert type(reporter.reporter) is expected
    assert is_colored(reporter, stream) is colored


# --- live reporter -------------------------------------------------------------------------


def live_reporter(stream: io.StringIO, columns: int = 80, lines: int = 24) -> LiveReporter:
    return LiveReporter(
        stream, color=False, refresh_interval=60, terminal_size=lambda: terminal(columns, lines)
    )


def last_frame(output: str) -> list[str]:
    """The lines written after the last clear-to-end, before the summary."""
    frame = output.rsplit("\x1b[J", 1)[1]
    return frame.split("\x1b[?25h", 1)[0].splitlines()


def test_live_final_frame_shows_the_tree_with_icons_and_restores_the_cursor() -> None:
    stream = TtyStringIO()
    drive(live_reporter(stream), small_run_events())
    output = stream.getvalue()
    assert output.startswith("\x1b[?25l")
    assert "\x1b[?25h" in output
    assert last_frame(output) == [
        "[ci/tests/unit] warning: exited with code 1; retrying in 1.0s",
        "✗ ci  3.2s  tests failed",
        "  ✓ lint  1.2s",
        "  ✗ tests  310ms  unit failed",
        "    ✗ unit  300ms  exited with code 1",
        "    - integration  skipped: requires docker: not available",
        "  - cover  skipped: upstream failed: tests",
    ]
    assert "All checks passed!" not in output  # log lines stay out of the live view
    assert output.rstrip().endswith("✗ ci failed in 3.2s (1 failed, 2 skipped)")


def test_live_shows_running_steps_with_spinner_duration_and_last_log_line() -> None:
    stream = TtyStringIO()
    clock = [100.0]
    reporter = LiveReporter(
        stream,
        color=False,
        refresh_interval=60,
        terminal_size=lambda: terminal(40, 24),
        clock=lambda: clock[0],
    )
    reporter(RunStarted("r1", "ci", T0, (info("ci/build"), info("ci/deploy"))))
    reporter(started("ci/build"))
    reporter(StepLog("ci/build", "stdout", ["compiling a very long module name here", ""]))
    clock[0] += 2.5
    with reporter._lock:
        reporter._draw(final=False)
    frame = last_frame(stream.getvalue())
    assert frame[0] == "⠋ ci  2.5s  0/2 steps"
    assert frame[1] == "  ⠋ build  2.5s  compiling a very long…"
    assert frame[2] == "  · deploy"
    assert max(display_width(line) for line in frame) == 39
    reporter.close()
    assert stream.getvalue().endswith("\x1b[?25h")


def test_live_redraw_moves_the_cursor_up_over_the_previous_frame() -> None:
    stream = TtyStringIO()
    reporter = live_reporter(stream)
    reporter(RunStarted("r1", "ci", T0, (info("ci/a"), info("ci/b"))))
    with reporter._lock:
        reporter._draw(final=False)
        reporter._draw(final=False)
    assert "\x1b[3F\x1b[J" in stream.getvalue()
    reporter.close()


def test_live_places_child_workflow_steps_under_their_step() -> None:
    stream = TtyStringIO()
    reporter = live_reporter(stream)
    reporter(RunStarted("r1", "ci", T0, (info("ci/cover", "workflow"), info("ci/docs"))))
    reporter(started("ci/cover"))
    reporter(WorkflowStarted("ci/cover", "cover", (info("ci/cover/measure"),)))
    reporter(StepStarted("ci/unit[shard=2]", "ci", "unit", "shell", 1))
    reporter.close()
    names = [line.strip()[2:].split("  ")[0] for line in last_frame(stream.getvalue())]
    assert names == ["ci", "cover", "measure", "docs", "unit[shard=2]"]


def test_live_tree_taller_than_the_terminal_keeps_running_steps_and_counts_the_rest() -> None:
    stream = TtyStringIO()
    reporter = live_reporter(stream, lines=6)
    reporter(RunStarted("r1", "ci", T0, tuple(info(f"ci/s{n}") for n in range(20))))
    for n in range(10):
        reporter(finished(f"ci/s{n}", "succeeded", duration_ms=10))
    reporter(started("ci/s12"))
    with reporter._lock:
        reporter._draw(final=False)
    frame = last_frame(stream.getvalue())
    assert len(frame) <= 5
    assert frame[1].startswith("  ⠋ s12")
    assert frame[-1] == "… 19 more: 10 succeeded, 9 pending"
    reporter.close()
    assert len(last_frame(stream.getvalue())) == 21  # the final tree is whole


def test_live_redraws_from_a_background_thread_at_most_ten_times_a_second() -> None:
    stream = TtyStringIO()
    reporter = LiveReporter(stream, color=False, refresh_interval=0.01)
    reporter(RunStarted("r1", "ci", T0, (info("ci/a"),)))
    reporter(started("ci/a"))
    time.sleep(0.55)
    reporter.close()
    frames = stream.getvalue().count("\x1b[J")
    assert 2 <= frames <= 8  # ~5 timed frames and the final one


def test_live_survives_events_from_several_threads() -> None:
    stream = TtyStringIO()
    reporter = LiveReporter(stream, color=True, refresh_interval=0.1)
    reporter(RunStarted("r1", "ci", T0, tuple(info(f"ci/s{n}") for n in range(4))))

    def work(n: int) -> None:
        reporter(started(f"ci/s{n}"))
        for i in range(2000):
            reporter(StepLog(f"ci/s{n}", "stdout", [f"line {i}"]))
        reporter(finished(f"ci/s{n}", "succeeded", duration_ms=5))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reporter.close()
    frame = [ANSI.sub("", line) for line in last_frame(stream.getvalue())]
    assert frame[1:] == [f"  ✓ s{n}  5ms" for n in range(4)]


def test_live_restores_the_cursor_when_the_run_raises() -> None:
    stream = TtyStringIO()
    with pytest.raises(RuntimeError), live_reporter(stream) as reporter:
        reporter(RunStarted("r1", "ci", T0, (info("ci/a"),)))
        raise RuntimeError("engine crashed")
    assert stream.getvalue().endswith("\x1b[?25h")


def test_live_close_without_events_writes_nothing() -> None:
    stream = TtyStringIO()
    live_reporter(stream).close()
    assert stream.getvalue() == ""


def test_live_takes_final_statuses_from_the_run_result() -> None:
    stream = TtyStringIO()
    result = RunResult(
        "r1", "ci", "cancelled", T0, T0 + 1, steps=[record("ci/a", "cancelled", duration_ms=900)]
    )
    reporter = live_reporter(stream)
    reporter(RunStarted("r1", "ci", T0, (info("ci/a"),)))
    reporter(started("ci/a"))
    reporter(RunFinished(result))
    assert last_frame(stream.getvalue())[:2] == ["⊘ ci  1.0s", "  ⊘ a  900ms"]


# --- summary -------------------------------------------------------------------------------


def test_summary_has_table_skips_failure_tails_and_verdict() -> None:
    tails = {"ci/tests/unit": ["collected 2 items", "E   assert 1 == 2"]}
    assert render_summary(small_result(), tails, color=False) == (
        "STEP                  STATUS       ATTEMPTS  DURATION  EXIT\n"
        "ci/lint               ✓ succeeded         1      1.2s     0\n"
        "ci/tests              ✗ failed            1     310ms     -\n"
        "ci/tests/unit         ✗ failed            2     300ms     1\n"
        "ci/tests/integration  - skipped           -         -     -\n"
        "ci/cover              - skipped           -         -     -\n"
        "\n"
        "Skipped:\n"
        "  ci/tests/integration: requires docker: not available\n"
        "  ci/cover: upstream failed: tests\n"
        "\n"
        "── ci/tests/unit (failed: exited with code 1) ──\n"
        "collected 2 items\n"
        "E   assert 1 == 2\n"
        "\n"
        "✗ ci failed in 3.2s (1 failed, 2 skipped)\n"
    )


def test_summary_shows_the_last_twenty_lines_of_a_failed_step() -> None:
    collector = TailCollector()
    collector(StepLog("ci/lint", "stdout", [f"line {n}" for n in range(1, 21)]))
    collector(StepLog("ci/lint", "stderr", [f"line {n}" for n in range(21, 31)]))
    result = RunResult("r", "ci", "failed", T0, T0 + 1, steps=[record("ci/lint", "failed")])
    summary = render_summary(result, collector.tails, color=False)
    section = summary.split("── ci/lint (failed) ──\n", 1)[1].split("\n\n", 1)[0]
    assert section.splitlines() == [f"line {n}" for n in range(11, 31)]


def test_summary_of_a_failed_step_without_output_says_so() -> None:
    result = RunResult(
        "r", "ci", "failed", T0, T0 + 1, steps=[record("ci/x", "failed", error="boom")]
    )
    assert "── ci/x (failed: boom) ──\n(no log output)\n" in render_summary(result, {}, False)


def test_summary_verdict_of_a_green_run_and_a_suspended_one() -> None:
    green = RunResult("r", "ci", "succeeded", T0, T0 + 0.25, steps=[record("ci/a", "succeeded")])
    assert render_summary(green, {}, False).splitlines()[-1] == "✓ ci succeeded in 250ms"
    suspended = RunResult("r9", "ci", "suspended", T0, T0 + 2, steps=[record("ci/a", "suspended")])
    assert render_summary(suspended, {}, False).splitlines()[-1] == (
        "‖ ci suspended in 2.0s (1 suspended)"
    )


def test_summary_verdict_shows_a_run_error_no_step_explains() -> None:
    result = RunResult("r", "ci", "failed", T0, T0 + 1, error="input 'n' must be an integer")
    assert render_summary(result, {}, False) == (
        "✗ ci failed in 1.0s: input 'n' must be an integer\n"
    )


def test_summary_colors_only_when_asked() -> None:
    assert "\x1b" not in render_summary(small_result(), {}, color=False)
    colored = render_summary(small_result(), {}, color=True)
    assert "\x1b[1;31m✗ ci failed in 3.2s (1 failed, 2 skipped)\x1b[0m" in colored
    assert "ci/tests              \x1b[31m✗ failed\x1b[0m            1" in colored


def test_tail_collector_keeps_only_the_last_attempt() -> None:
    collector = TailCollector()
    collector(StepLog("ci/a", "stdout", ["first try"]))
    collector(started("ci/a", attempt=2))
    collector(StepLog("ci/a", "stdout", ["second try"]))
    assert list(collector.tails["ci/a"]) == ["second try"]


def test_tail_collector_forgets_steps_that_succeeded() -> None:
    collector = TailCollector()
    collector(StepLog("ci/a", "stdout", ["a"]))
    collector(StepLog("ci/b", "stdout", ["b"]))
    collector(finished("ci/a", "succeeded"))
    collector(finished("ci/b", "failed"))
    assert {path: list(lines) for path, lines in collector.tails.items()} == {"ci/b": ["b"]}


# --- JSON report ---------------------------------------------------------------------------


def test_json_report_validates_against_the_schema_and_round_trips(tmp_path: Path) -> None:
    result = small_result()
    path = tmp_path / "out" / "report.json"
    write_json_report(result, path)
    text = path.read_text(encoding="utf-8")
    report = json.loads(text)
    assert schema_errors(report, REPORT_SCHEMA) == []
    assert report == result.to_report()
    assert text.startswith('{\n  "run_id": "r1",')
    assert list(tmp_path.joinpath("out").iterdir()) == [path]


def test_json_report_keeps_unicode_and_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    result = small_result()
    result.outputs = {"msg": "naïve ✓ 日本", "nan": float("nan"), "nested": {"inf": float("inf")}}
    write_json_report(result, path)
    text = path.read_text(encoding="utf-8")
    assert "naïve ✓ 日本" in text
    assert json.loads(text)["outputs"] == {
        "msg": "naïve ✓ 日本",
        "nan": None,
        "nested": {"inf": None},
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("steps"), "$: missing 'steps'"),
        (lambda r: r.update(status="done"), "$.status: 'done' is not one of"),
        (lambda r: r.update(extra=1), "$: unexpected key 'extra'"),
        (lambda r: r.update(duration_ms=True), "$.duration_ms: expected integer"),
        (lambda r: r.update(duration_ms=-1), "$.duration_ms: -1 is below 0"),
        (lambda r: r.update(started_at="yesterday"), "$.started_at: 'yesterday' is not"),
        (lambda r: r["steps"][1].update(exit_code="1"), "$.steps[1].exit_code: expected"),
        (lambda r: r["steps"][0].pop("outputs"), "$.steps[0]: missing 'outputs'"),
    ],
)
def test_report_schema_rejects_wrong_shapes(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    report = small_result().to_report()
    change(report)
    errors = schema_errors(report, REPORT_SCHEMA)
    assert any(error.startswith(message) for error in errors), errors


# --- JUnit ---------------------------------------------------------------------------------

REQUIRED_SUITE_ATTRIBUTES = ("name", "tests", "failures", "errors", "time", "timestamp", "hostname")


def parse_junit(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    for attribute in REQUIRED_SUITE_ATTRIBUTES:
        assert attribute in suite.attrib, attribute
    cases = suite.findall("testcase")
    assert suite.get("tests") == root.get("tests") == str(len(cases))
    assert suite.get("failures") == str(sum(case.find("failure") is not None for case in cases))
    assert suite.get("skipped") == str(sum(case.find("skipped") is not None for case in cases))
    assert suite.get("errors") == str(sum(case.find("error") is not None for case in cases))
    tags = [child.tag for child in suite]
    assert tags[0] == "properties"
    assert tags[-2:] == ["system-out", "system-err"]
    for case in cases:
        assert {"name", "classname", "time"} <= set(case.keys())
        float(case.get("time", ""))
    for failure in suite.iter("failure"):
        assert {"message", "type"} <= set(failure.keys())
    return suite


def test_junit_has_one_testcase_per_step(tmp_path: Path) -> None:
    tails = {"ci/tests/unit": ["collected 2 items", "E   assert 1 == 2"]}
    path = tmp_path / "junit.xml"
    write_junit(small_result(), path, tails)
    suite = parse_junit(path.read_bytes())
    assert suite.get("name") == "ci"
    assert suite.get("time") == "3.200"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "2", "2")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == [
        "ci/lint",
        "ci/tests",
        "ci/tests/unit",
        "ci/tests/integration",
        "ci/cover",
    ]
    assert cases["ci/lint"].get("time") == "1.200"
    assert list(cases["ci/lint"]) == []
    failure = cases["ci/tests/unit"].find("failure")
    assert failure is not None
    assert failure.get("message") == "exited with code 1"
    assert failure.text == "exited with code 1\n\ncollected 2 items\nE   assert 1 == 2"
    skipped = cases["ci/tests/integration"].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "requires docker: not available"


def test_junit_marks_cancelled_steps_skipped_and_records_the_run() -> None:
    result = RunResult(
        "r2",
        "ci",
        "cancelled",
        T0,
        T0 + 1,
        steps=[record("ci/a", "cancelled", error="run cancelled")],
    )
    suite = parse_junit(junit_xml(result, {}))
    skipped = suite.find("testcase/skipped")
    assert skipped is not None
    assert skipped.get("message") == "cancelled: run cancelled"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {"run_id": "r2", "status": "cancelled"}


def test_junit_holds_odd_characters_and_strips_control_characters() -> None:
    odd = "say \"hi\" & <b>'bye'</b> ünïcødé 日本 😀"
    result = RunResult(
        "r3",
        "ci",
        "failed",
        T0,
        T0 + 1,
        steps=[
            record(f"ci/{odd}", "failed", error=f"bad\x00 \x1b[31m{odd}\x1b[0m\x07", exit_code=2),
            record("ci/skip", "skipped", skip_reason="no\x0bpe ]]> <![CDATA["),
        ],
    )
    tails = {f"ci/{odd}": ["\x1b[1mbold\x1b[0m line", "form\x0cfeed \ud800 tab\tok"]}
    data = junit_xml(result, tails)
    data.decode("utf-8")
    suite = parse_junit(data)
    case = suite.find("testcase")
    assert case is not None
    assert case.get("name") == f"ci/{odd}"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == f"bad {odd}"
    assert failure.text == f"bad {odd}\n\nbold line\nformfeed  tab\tok"
    skipped = suite.find("testcase[@name='ci/skip']/skipped")
    assert skipped is not None
    assert skipped.get("message") == "nope ]]> <![CDATA["


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_junit_write_is_atomic_and_leaves_no_temporary_file(no_leftovers: Path) -> None:
    path = no_leftovers / "junit.xml"
    path.write_text("old")
    write_junit(small_result(), path)
    assert path.read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")


def test_a_restored_step_says_so_in_the_summary() -> None:
    restored = StepRecord("ci/a", "ci", "a", "shell", "succeeded", outputs={"v": 1})
    restored.restored = True
    result = RunResult("r1", "ci", "succeeded", 0.0, 1.0, steps=[restored])
    rows = [line for line in render_summary(result, {}, False).splitlines() if "ci/a" in line]
    assert rows[0].split() == ["ci/a", "✓", "restored", "-", "-", "-"]
    assert "restored" not in result.to_report()["steps"][0]
