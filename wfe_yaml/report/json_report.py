"""`--report FILE.json` (DESIGN §7): the run result as JSON, its JSON Schema, and a validator
for the part of JSON Schema that schema uses (no jsonschema dependency)."""

from __future__ import annotations

import json
import math
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from wfe_yaml.engine.result import RunResult

RUN_STATUSES = ("succeeded", "failed", "cancelled", "suspended", "waiting")
STEP_STATUSES = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "compensated",
    "suspended",
)

_STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "path",
        "workflow",
        "name",
        "type",
        "status",
        "attempts",
        "exit_code",
        "duration_ms",
        "skip_reason",
        "error",
        "outputs",
    ],
    "properties": {
        "path": {"type": "string", "minLength": 1},
        "workflow": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "type": {"type": "string"},
        "status": {"enum": list(STEP_STATUSES)},
        "attempts": {"type": "integer", "minimum": 0},
        "exit_code": {"type": ["integer", "null"]},
        "duration_ms": {"type": "integer", "minimum": 0},
        "skip_reason": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "outputs": {"type": "object"},
    },
}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "wfe-yaml run report",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "run_id",
        "workflow",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
        "outputs",
        "steps",
    ],
    "properties": {
        "run_id": {"type": "string", "minLength": 1},
        "workflow": {"type": "string", "minLength": 1},
        "status": {"enum": list(RUN_STATUSES)},
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": "string", "format": "date-time"},
        "duration_ms": {"type": "integer", "minimum": 0},
        "outputs": {"type": "object", "description": "final flat data of the root workflow"},
        "steps": {"type": "array", "items": _STEP_SCHEMA},
    },
}


def write_json_report(result: RunResult, path: str | os.PathLike[str]) -> None:
    """Writes the report as UTF-8 JSON, indented by 2; readers never see a half-written file."""
    text = json.dumps(_jsonable(result.to_report()), indent=2, ensure_ascii=False, default=str)
    write_atomically(Path(path), (text + "\n").encode("utf-8"))


def write_atomically(path: Path, data: bytes) -> None:
    """Writes to a temporary file beside the target, then renames it over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as a plain open() would.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    """The value with NaN and infinities as null: `json` would write them, but they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


# --- a validator for the JSON Schema subset used above -------------------------------------

_TYPE_CHECKS = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
}


def schema_errors(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Every way the instance breaks the schema, as `$.steps[0].status: ...` messages.

    Supports type, enum, minimum, minLength, format date-time, properties, required,
    additionalProperties (boolean) and items: what REPORT_SCHEMA uses.
    """
    errors = _scalar_errors(instance, schema, where)
    if errors:
        return errors
    if isinstance(instance, dict):
        errors.extend(_object_errors(instance, schema, where))
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            errors.extend(schema_errors(item, schema["items"], f"{where}[{index}]"))
    return errors


def _scalar_errors(instance: Any, schema: dict[str, Any], where: str) -> list[str]:
    if "type" in schema and not _has_type(instance, schema["type"]):
        return [f"{where}: expected {schema['type']}, got {type(instance).__name__}"]
    if "enum" in schema and instance not in schema["enum"]:
        return [f"{where}: {instance!r} is not one of {schema['enum']}"]
    if "minimum" in schema and isinstance(instance, int | float) and instance < schema["minimum"]:
        return [f"{where}: {instance} is below {schema['minimum']}"]
    if "minLength" in schema and isinstance(instance, str) and len(instance) < schema["minLength"]:
        return [f"{where}: shorter than {schema['minLength']}"]
    if schema.get("format") == "date-time" and not _is_date_time(instance):
        return [f"{where}: {instance!r} is not an ISO-8601 date-time with a time zone"]
    return []


def _object_errors(instance: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    properties = schema.get("properties", {})
    errors = [
        f"{where}: missing {name!r}" for name in schema.get("required", ()) if name not in instance
    ]
    for name, value in instance.items():
        if name in properties:
            errors.extend(schema_errors(value, properties[name], f"{where}.{name}"))
        elif schema.get("additionalProperties", True) is False:
            errors.append(f"{where}: unexpected key {name!r}")
    return errors


def _has_type(instance: Any, expected: str | list[str]) -> bool:
    names = [expected] if isinstance(expected, str) else expected
    return any(_TYPE_CHECKS[name](instance) for name in names)


def _is_date_time(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False
