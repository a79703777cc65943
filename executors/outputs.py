"""The `##wfe[...]` stdout protocol shared by every executor: outputs, masks, auto-typing.

A line counts only when it starts exactly with the command prefix and ends exactly with `]`:
`##wfe[output name=value]` sets an output, `##wfe[mask value]` hides a value from the logs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

MARKER = "##wfe["
MARKER_BYTES = MARKER.encode()
"""What every command line starts with; readers use it to skip marker-free output cheaply."""

OUTPUT_PREFIX = "##wfe[output "
MASK_PREFIX = "##wfe[mask "
MASK_REPLACEMENT = "***"

# WFE parses with Rust's i64/f64 rules, stricter than Python's int()/float(): no surrounding
# whitespace, no underscores, no non-ASCII digits.
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NON_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.ASCII | re.IGNORECASE)
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


def auto_type(text: str) -> Any:
    """The JSON value a marker's text stands for: bool, null, integer, float, else the text."""
    if text in _LITERALS:
        return _LITERALS[text]
    if _INTEGER.fullmatch(text):
        number = int(text)
        if _I64_MIN <= number <= _I64_MAX:
            return number
        return _finite_or_none(float(text))
    if _FLOAT.fullmatch(text):
        return _finite_or_none(float(text))
    if _NON_FINITE.fullmatch(text):
        return None
    return text


def _finite_or_none(number: float) -> float | None:
    # JSON cannot hold inf or nan; WFE's serde_json stores them as null.
    return number if math.isfinite(number) else None


class OutputParser:
    """Collects outputs and masks from stdout lines, fed in batches as they arrive."""

    def __init__(self) -> None:
        self.outputs: dict[str, Any] = {}
        self.masks: list[str] = []

    def feed(self, lines: Sequence[str]) -> None:
        # Joining and searching run in C; the per-line loop only runs when a marker is present.
        text = "\n".join(lines)
        first_hash = text.find("#")
        if first_hash < 0 or text.find(MARKER, first_hash) < 0:
            return
        for line in lines:
            if line.startswith(MARKER) and line.endswith("]"):
                self._read_command(line)

    def _read_command(self, line: str) -> None:
        if line.startswith(OUTPUT_PREFIX):
            self._read_output(line[len(OUTPUT_PREFIX) : -1])
        elif line.startswith(MASK_PREFIX):
            self._add_mask(line[len(MASK_PREFIX) : -1])

    def _read_output(self, body: str) -> None:
        name, equals, raw = body.partition("=")
        if equals:
            self.outputs[name.strip()] = auto_type(raw)

    def _add_mask(self, value: str) -> None:
        # An empty mask would replace the gaps between all characters of every line.
        if value and value not in self.masks:
            self.masks.append(value)


def redact(lines: Sequence[str], masks: list[str]) -> Sequence[str]:
    """The lines with every mask replaced by `***`; the same list when nothing is masked."""
    if not masks:
        return lines
    longest_first = sorted(masks, key=len, reverse=True)
    return [_redact_line(line, longest_first) for line in lines]


def _redact_line(line: str, masks: list[str]) -> str:
    for mask in masks:
        if mask in line:
            line = line.replace(mask, MASK_REPLACEMENT)
    return line


def holds_marker(data: bytes | bytearray, start: int = 0, end: int | None = None) -> bool:
    """Whether data[start:end] contains `##wfe[`. Searching for a single byte runs at memchr
    speed, so output without any `#` costs next to nothing."""
    stop = len(data) if end is None else end
    first_hash = data.find(b"#", start, stop)
    return first_hash >= 0 and data.find(MARKER_BYTES, first_hash, stop) >= 0
