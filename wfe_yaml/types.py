"""Typed workflow inputs and outputs: `string number integer bool any`, `T?`, `list<T>`, `map<T>`.

A type string is parsed into a `TypeSpec`; values are checked against it with `check_value`
(one value) or `check_inputs` (a whole `inputs:`/`outputs:` schema against a data mapping).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from wfe_yaml.errors import did_you_mean

SCALAR_KINDS = ("string", "number", "integer", "bool", "any")
CONTAINER_KINDS = ("list", "map")
_FORMS = "use string, number, integer, bool, any, T?, list<T>, map<T>"
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_SHOWN_CHARS = 40


@dataclass(frozen=True)
class TypeSpec:
    """A parsed type: `kind` is a scalar kind, `list` or `map`; `item` is set for containers."""

    kind: str
    item: TypeSpec | None = None
    optional: bool = False

    def __str__(self) -> str:
        text = f"{self.kind}<{self.item}>" if self.item is not None else self.kind
        return f"{text}?" if self.optional else text

    @property
    def required(self) -> TypeSpec:
        """The same type without the `?`."""
        return replace(self, optional=False)


def parse_type(text: str) -> TypeSpec:
    """The TypeSpec for a type string; ValueError naming the accepted forms otherwise."""
    return _parse(text, whole=text)


def _parse(text: str, whole: str) -> TypeSpec:
    stripped = text.strip()
    if not stripped:
        raise ValueError(_in_context("empty type", whole, stripped))
    if stripped.endswith("?"):
        return _parse_optional(stripped[:-1], whole)
    if "<" in stripped or ">" in stripped:
        return _parse_container(stripped, whole)
    if stripped in SCALAR_KINDS:
        return TypeSpec(stripped)
    raise ValueError(_unknown(stripped, whole, SCALAR_KINDS + CONTAINER_KINDS))


def _parse_optional(inner_text: str, whole: str) -> TypeSpec:
    inner = _parse(inner_text, whole)
    if inner.optional:
        raise ValueError(_in_context(f"'{inner_text.strip()}?' is optional twice", whole, ""))
    return replace(inner, optional=True)


def _parse_container(text: str, whole: str) -> TypeSpec:
    head, _, rest = text.partition("<")
    head = head.strip()
    if not rest.endswith(">"):
        raise ValueError(_in_context(f"malformed type '{text}': expected {head}<T>", whole, text))
    if head not in CONTAINER_KINDS:
        raise ValueError(_unknown(head or text, whole, CONTAINER_KINDS))
    return TypeSpec(head, item=_parse(rest[:-1], whole))


def _unknown(word: str, whole: str, choices: tuple[str, ...]) -> str:
    message = _in_context(f"unknown type '{word}'", whole, word) + f": {_FORMS}"
    hint = did_you_mean(word, choices)
    return f"{message}; {hint}" if hint else message


def _in_context(problem: str, whole: str, part: str) -> str:
    # Nested mistakes are easier to find when the full type string is quoted too.
    if part == whole.strip():
        return problem
    return f"{problem} in '{whole.strip()}'"


def check_value(value: Any, spec: TypeSpec, where: str) -> str | None:
    """None when `value` fits `spec`, else a message naming the field path and expected type."""
    if value is None:
        return None if spec.optional or spec.kind == "any" else _mismatch(value, spec, where)
    if spec.kind == "list":
        return _check_list(value, spec, where)
    if spec.kind == "map":
        return _check_map(value, spec, where)
    return None if _fits_scalar(value, spec.kind) else _mismatch(value, spec, where)


def _fits_scalar(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, int | float)
    return isinstance(value, str)


def _check_list(value: Any, spec: TypeSpec, where: str) -> str | None:
    if not isinstance(value, list | tuple):
        return _mismatch(value, spec, where)
    assert spec.item is not None
    for index, item in enumerate(value):
        problem = check_value(item, spec.item, f"{where}[{index}]")
        if problem:
            return problem
    return None


def _check_map(value: Any, spec: TypeSpec, where: str) -> str | None:
    if not isinstance(value, Mapping):
        return _mismatch(value, spec, where)
    assert spec.item is not None
    for key, item in value.items():
        if not isinstance(key, str):
            return f"{where}: map keys must be strings, got {describe_value(key)}"
        problem = check_value(item, spec.item, _member_path(where, key))
        if problem:
            return problem
    return None


def _member_path(where: str, key: str) -> str:
    return f"{where}.{key}" if _PLAIN_KEY.match(key) else f"{where}[{json.dumps(key)}]"


def _mismatch(value: Any, spec: TypeSpec, where: str) -> str:
    return f"{where}: expected {spec}, got {describe_value(value)}"


def describe_value(value: Any) -> str:
    """A short human description of a data value: `integer 5`, `string 'main'`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {_shorten(repr(value))}"
    if isinstance(value, list | tuple):
        return f"list {_shorten(_as_json(value))}"
    if isinstance(value, Mapping):
        return f"map {_shorten(_as_json(value))}"
    return type(value).__name__


def _as_json(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), default=str)


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def check_inputs(
    values: Mapping[str, Any], schema: Mapping[str, TypeSpec | str], kind: str = "inputs"
) -> list[str]:
    """Every way `values` breaks `schema`; keys the schema does not name are allowed."""
    singular = kind[:-1] if kind.endswith("s") else kind
    problems = []
    for name, spec in parse_schema(schema).items():
        if name not in values:
            if not spec.optional:
                problems.append(f"missing required {singular} '{name}' ({spec})")
            continue
        problem = check_value(values[name], spec, _member_path(kind, name))
        if problem:
            problems.append(problem)
    return problems


def parse_schema(schema: Mapping[str, str | TypeSpec]) -> dict[str, TypeSpec]:
    """A name → TypeSpec mapping from declared type strings (already parsed specs pass through)."""
    return {
        name: spec if isinstance(spec, TypeSpec) else parse_type(spec)
        for name, spec in schema.items()
    }


def _require_text(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "type_string",
            "a type is a string like 'string', 'integer?' or 'list<string>', got {got}",
            {"got": describe_value(value)},
        )
    return value


def _spec_from(value: Any) -> TypeSpec:
    if isinstance(value, TypeSpec):
        return value
    text = _require_text(value)
    try:
        return parse_type(text)
    except ValueError as error:
        # A custom error keeps the message as written, without pydantic's "Value error, ".
        raise PydanticCustomError("type_string", "{reason}", {"reason": str(error)}) from None


def _canonical_type(value: Any) -> str:
    return str(_spec_from(value))


_TYPE_JSON_SCHEMA = WithJsonSchema(
    {
        "type": "string",
        "description": "A type: string, number, integer, bool, any, T?, list<T>, map<T>",
        "examples": ["string", "integer?", "list<string>", "map<list<integer>>"],
    }
)

TypeString = Annotated[str, PlainValidator(_canonical_type), _TYPE_JSON_SCHEMA]
"""A type string, validated and stored in canonical form (`list< string >` → `list<string>`)."""

ParsedType = Annotated[
    TypeSpec, PlainValidator(_spec_from), PlainSerializer(str, return_type=str), _TYPE_JSON_SCHEMA
]
"""A type string parsed into a TypeSpec at validation time."""
