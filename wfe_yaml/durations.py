"""Durations as written in the format: `250ms`, `30s`, `5m`, `1h`, `1h30m`; bare integers are ms."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_EXAMPLES = "250ms, 30s, 5m, 1h, 1h30m, or a whole number of milliseconds"


def parse_duration(value: Any) -> float:
    """Seconds for a duration value; ValueError naming the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration ({_EXAMPLES}), got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        return value / 1000
    if isinstance(value, float):
        raise ValueError(f"expected a duration ({_EXAMPLES}), got {value!r}: add a unit")
    if not isinstance(value, str):
        raise ValueError(f"expected a duration ({_EXAMPLES}), got {type(value).__name__}")
    text = value.strip()
    if text.isdigit():
        return int(text) / 1000
    position, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"invalid duration {value!r}: use {_EXAMPLES}")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form: 850ms, 4.2s, 3m05s."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda seconds: f"{round(seconds * 1000)}ms", return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|h|m|s))+\s*$|^\d+$"},
                {"type": "integer", "minimum": 0},
            ],
            "description": f"A duration: {_EXAMPLES}",
        }
    ),
]
"""A duration in seconds, parsed from the format's duration strings."""
