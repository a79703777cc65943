"""`--junit FILE.xml` (DESIGN §7): one testcase per step, in the common JUnit XML shape
(testsuites > testsuite > properties, testcase*, system-out, system-err)."""

from __future__ import annotations

import os
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from wfe_yaml.engine.result import RunResult, StepRecord
from wfe_yaml.report.console import outcome_detail, strip_ansi
from wfe_yaml.report.json_report import write_atomically

FAILED_STATUSES = frozenset({"failed", "suspended"})
SKIPPED_STATUSES = frozenset({"skipped", "cancelled", "pending", "running"})
"""A cancelled step, or one the run never reached, did not run to a verdict: JUnit's skipped."""

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot hold at all, escaped or not (controls, lone surrogates)."""


def write_junit(
    result: RunResult,
    path: str | os.PathLike[str],
    tails: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Writes the JUnit XML report; a failed step's message is its error, its text the error
    followed by its last log lines (`tails`, e.g. a TailCollector's)."""
    write_atomically(Path(path), junit_xml(result, tails or {}))


def junit_xml(result: RunResult, tails: Mapping[str, Sequence[str]]) -> bytes:
    suite = _testsuite(result)
    for record in result.steps:
        suite.append(_testcase(record, tails.get(record.path, ())))
    ET.SubElement(suite, "system-out")
    ET.SubElement(suite, "system-err")
    suites = ET.Element("testsuites", _clean_attributes(_counts(result)))
    suites.set("name", _clean(result.workflow))
    suites.set("time", _seconds(result.duration_ms))
    suites.append(suite)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def _testsuite(result: RunResult) -> ET.Element:
    started = datetime.fromtimestamp(result.started_at, UTC)
    attributes = {
        "name": result.workflow,
        "package": result.workflow,
        "id": "0",
        "hostname": socket.gethostname() or "localhost",
        "timestamp": started.strftime("%Y-%m-%dT%H:%M:%S"),
        "time": _seconds(result.duration_ms),
        **_counts(result),
    }
    suite = ET.Element("testsuite", _clean_attributes(attributes))
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run_id", result.run_id), ("status", result.status)):
        ET.SubElement(properties, "property", {"name": name, "value": _clean(value)})
    if result.error:
        ET.SubElement(properties, "property", {"name": "error", "value": _clean(result.error)})
    return suite


def _counts(result: RunResult) -> dict[str, str]:
    statuses = [record.status for record in result.steps]
    return {
        "tests": str(len(statuses)),
        "failures": str(sum(status in FAILED_STATUSES for status in statuses)),
        "errors": "0",
        "skipped": str(sum(status in SKIPPED_STATUSES for status in statuses)),
    }


def _testcase(record: StepRecord, tail: Sequence[str]) -> ET.Element:
    ran = record.status not in SKIPPED_STATUSES
    attributes = {
        "classname": record.workflow,
        "name": record.path,
        "time": _seconds(record.duration_ms if ran else 0),
    }
    case = ET.Element("testcase", _clean_attributes(attributes))
    detail = outcome_detail(
        record.status,
        error=record.error,
        exit_code=record.exit_code,
        skip_reason=record.skip_reason,
    )
    if record.status in FAILED_STATUSES:
        message = detail or record.status
        failure = ET.SubElement(
            case, "failure", {"message": _clean(message), "type": record.status}
        )
        failure.text = _clean("\n".join([message, "", *tail]) if tail else message)
    elif record.status in SKIPPED_STATUSES:
        ET.SubElement(case, "skipped", {"message": _clean(_skip_message(record, detail))})
    elif record.status == "compensated":
        ET.SubElement(case, "system-out").text = "succeeded, then undone by its compensate hook"
    return case


def _skip_message(record: StepRecord, detail: str | None) -> str:
    if record.status == "skipped":
        return detail or "skipped"
    if record.status == "cancelled":
        return f"cancelled: {detail}" if detail else "cancelled"
    return "not run"


def _seconds(duration_ms: int) -> str:
    return f"{duration_ms / 1000:.3f}"


def _clean(text: str) -> str:
    """Text XML 1.0 can hold: terminal escapes and other control characters removed."""
    return _NOT_XML.sub("", strip_ansi(text))


def _clean_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    return {name: _clean(value) for name, value in attributes.items()}
