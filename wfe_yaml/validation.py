"""Pydantic validation errors → positioned ConfigErrors a user can act on."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from wfe_yaml.errors import ConfigError, Mark, did_you_mean
from wfe_yaml.source import Positions
from wfe_yaml.types import describe_value

Loc = tuple[str | int, ...]
_PREFIXES = ("Value error, ", "Assertion failed, ")
_UNKNOWN: Any = object()
_STEP_LISTS = {"steps", "parallel", "ensure", "on_success", "on_failure", "compensate"}
_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "null",
}
"""Pydantic's type errors, by the form of value they ask for."""
_BOUNDS = {
    "greater_than_equal": "at least",
    "greater_than": "greater than",
    "less_than_equal": "at most",
    "less_than": "less than",
}


def errors_from_validation(
    error: ValidationError,
    positions: Positions,
    base: Loc = (),
    skip: Callable[[Any], bool] = lambda problem: False,
    data: Any = _UNKNOWN,
    context: str | None = None,
) -> list[ConfigError]:
    """One ConfigError per mistake, pointing at the key or value at fault.

    `data` is the validated input (the value at `base`): with it, pydantic's union-member tags
    are told apart from data keys, and the problems of one value are merged into one message.
    `context` names the validated value itself in messages (`the shell config of step 'x'`).
    """
    place = _Place(base, data, context)
    model = _model_class(error)
    grouped: dict[Loc, list[Any]] = {}
    for problem in error.errors():
        if not skip(problem):
            grouped.setdefault(_data_loc(problem, data), []).append(problem)
    found = []
    for loc, problems in grouped.items():
        found.extend(_convert(problems, loc, positions, place, model))
    return found


@dataclass(frozen=True)
class _Place:
    """What was validated: its path in the file, its data, and how messages name it."""

    base: Loc
    data: Any
    context: str | None

    def where(self, loc: Loc) -> str:
        """` in step 'build'`-like context for the mapping at `loc`, kept short."""
        if not loc and self.context:
            return f" in {self.context}"
        return _where(loc, self.base, self.data)


def _convert(
    problems: list[Any],
    loc: Loc,
    positions: Positions,
    place: _Place,
    model: type[BaseModel] | None,
) -> list[ConfigError]:
    specific = [problem for problem in problems if problem["type"] not in _EXPECTED]
    if not specific:
        return [_wrong_type(problems, loc, positions.value(place.base + loc), model)]
    return [_convert_one(problem, loc, positions, place, model) for problem in specific]


def _convert_one(
    problem: Any,
    loc: Loc,
    positions: Positions,
    place: _Place,
    model: type[BaseModel] | None,
) -> ConfigError:
    base = place.base
    kind = problem["type"]
    context = problem.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_keys(model, loc[:-1])
        return ConfigError(
            f"unknown key '{key}'{place.where(loc[:-1])}",
            positions.key(base + loc),
            did_you_mean(key, known) or (f"known keys: {', '.join(known)}" if known else None),
        )
    if kind == "missing":
        return ConfigError(
            f"missing required key '{loc[-1]}'{place.where(loc[:-1])}",
            positions.value(base + loc[:-1]),
        )
    mark = positions.value(base + loc)
    label = _label(loc, model)
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(context.get("expected", "")))
        value = problem.get("input")
        return ConfigError(
            f"{label} must be one of {', '.join(choices)}; got {describe_value(value)}",
            mark,
            did_you_mean(value, choices) if isinstance(value, str) else None,
        )
    if kind in _BOUNDS:
        limit = next(iter(context.values()), "?")
        got = describe_value(problem.get("input"))
        return ConfigError(f"{label} must be {_BOUNDS[kind]} {limit}, got {got}", mark)
    if kind == "string_too_short":
        return ConfigError(f"{label} must not be empty", mark)
    if kind == "too_short":
        least = context.get("min_length", 1)
        return ConfigError(f"{label} needs at least {least} item{'s' if least != 1 else ''}", mark)
    message = _clean(problem["msg"])
    return ConfigError(message if _mentions(message, label) else f"{label}: {message}", mark)


def _mentions(message: str, label: str) -> bool:
    """Whether a message written by a validator already names the value it is about."""
    return not label or re.search(rf"(?<![\w.]){re.escape(label)}(?![\w])", message) is not None


def _wrong_type(
    problems: list[Any], loc: Loc, mark: Mark, model: type[BaseModel] | None
) -> ConfigError:
    """`command must be a list or a string, got integer 5`: every accepted form at once."""
    wanted: list[str] = []
    for problem in problems:
        expected = _EXPECTED[problem["type"]]
        if expected not in wanted:
            wanted.append(expected)
    got = describe_value(problems[0].get("input"))
    label = _label(loc, model) or "the value"
    return ConfigError(f"{label} must be {' or '.join(wanted)}, got {got}", mark)


def _clean(message: str) -> str:
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _data_loc(problem: Any, data: Any) -> Loc:
    """Pydantic adds union and validator tags to a loc; keep the parts that are data keys."""
    loc = problem["loc"]
    if data is _UNKNOWN:
        return tuple(
            part
            for part in loc
            if isinstance(part, int) or not (("[" in part) or part.startswith("function-"))
        )
    missing_key = loc[-1] if problem["type"] == "missing" else None
    kept: list[str | int] = []
    current = data
    for part in loc:
        found, current = _child(current, part)
        if found:
            kept.append(part)
    if missing_key is not None:
        kept.append(missing_key)
    return tuple(kept)


def _child(container: Any, part: str | int) -> tuple[bool, Any]:
    """The item `part` of a mapping or list, when the data has it; else the container itself.

    Parts the data lacks are union tags, or the index pydantic gives a single item it wrapped
    into a list (`ensure: {...}`), and are skipped.
    """
    if isinstance(container, dict) and part in container:
        return True, container[part]
    if isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container):
        return True, container[part]
    return False, container


def _field_name(loc: Loc) -> str:
    for part in reversed(loc):
        if isinstance(part, str):
            return part
    return ""


def _label(loc: Loc, model: type[BaseModel] | None) -> str:
    """How the value at `loc` is named in a message: `timeout`, `needs[0]`, `env.HOME`."""
    if len(loc) > 1 and isinstance(loc[-2], str):
        if isinstance(loc[-1], int):
            return f"{loc[-2]}[{loc[-1]}]"
        if _is_mapping_of_names(model, loc[:-1]):
            return f"{loc[-2]}.{loc[-1]}"
    return _field_name(loc)


def _is_mapping_of_names(model: type[BaseModel] | None, loc: Loc) -> bool:
    """Whether `loc` holds a mapping whose keys the user chose (`env:`, `inputs:`)."""
    current: Any = model
    for part in loc:
        current = _descend(current, part)
        if current is None:
            return False
    return typing.get_origin(current) is dict


def _where(loc: Loc, base: Loc, data: Any) -> str:
    full = base + loc
    if not full:
        return " at the top level"
    parent = [part for part in full if isinstance(part, str)]
    last = parent[-1] if parent else ""
    container = _lookup(data, loc)
    if last in _STEP_LISTS:
        name = container.get("name") if isinstance(container, dict) else None
        return f" in step '{name}'" if isinstance(name, str) and name else " in step"
    if last in {"workflows", "workflow"}:
        wf_id = container.get("id") if isinstance(container, dict) else None
        return f" in workflow '{wf_id}'" if isinstance(wf_id, str) and wf_id else " in workflow"
    return f" in {last}" if last else ""


def _lookup(data: Any, loc: Loc) -> Any:
    current = data
    for part in loc:
        found, current = _child(current, part)
        if not found:
            return None
    return current


def _model_class(error: ValidationError) -> type[BaseModel] | None:
    title = error.title
    from wfe_yaml import models

    candidate = getattr(models, title, None)
    if isinstance(candidate, type) and issubclass(candidate, BaseModel):
        return candidate
    return _registered_config(title)


def _registered_config(title: str) -> type[BaseModel] | None:
    from executors.base import registry

    for name in registry.names():
        config = registry.config_model(name)
        if config.__name__ == title:
            return config
    return None


def _known_keys(model: type[BaseModel] | None, loc: Loc) -> list[str]:
    """The field names of the model that validates the mapping at `loc`."""
    current: Any = model
    for part in loc:
        current = _descend(current, part)
        if current is None:
            return []
    current = _item_of(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _item_of(annotation: Any) -> Any:
    """A list's item type; data locs skip the index of a single item written without a list."""
    while typing.get_origin(annotation) is list:
        annotation = _unwrap(typing.get_args(annotation)[0])
    return annotation


def _descend(annotation: Any, part: str | int) -> Any:
    if isinstance(part, str):
        annotation = _item_of(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(part, str) or part not in annotation.model_fields:
            return None
        return _unwrap(annotation.model_fields[part].annotation)
    origin = typing.get_origin(annotation)
    if origin is list and isinstance(part, int):
        return _unwrap(typing.get_args(annotation)[0])
    if origin is dict and isinstance(part, str):
        return _unwrap(typing.get_args(annotation)[1])
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Union to the one model or container inside, when there is one."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        structured = [o for o in options if typing.get_origin(o) or _is_model(o)]
        return _unwrap(structured[0]) if len(structured) == 1 else None
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
