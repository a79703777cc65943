"""Pydantic validation errors → positioned ConfigErrors a user can act on."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from wfe_yaml.errors import ConfigError, did_you_mean
from wfe_yaml.source import Positions

Loc = tuple[str | int, ...]
_PREFIXES = ("Value error, ", "Assertion failed, ")


def errors_from_validation(
    error: ValidationError,
    positions: Positions,
    base: Loc = (),
    skip: Callable[[Any], bool] = lambda problem: False,
) -> list[ConfigError]:
    """One ConfigError per pydantic problem, pointing at the key or value at fault."""
    model = _model_class(error)
    found = []
    for problem in error.errors():
        if skip(problem):
            continue
        loc = _data_loc(problem["loc"])
        found.append(_convert(problem, loc, positions, base, model))
    return found


def _convert(
    problem: Any, loc: Loc, positions: Positions, base: Loc, model: type[BaseModel] | None
) -> ConfigError:
    kind = problem["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_keys(model, loc[:-1])
        return ConfigError(
            f"unknown key '{key}'{_where(base + loc[:-1])}",
            positions.key(base + loc),
            did_you_mean(key, known) or (f"known keys: {', '.join(known)}" if known else None),
        )
    if kind == "missing":
        return ConfigError(
            f"missing required key '{loc[-1]}'{_where(base + loc[:-1])}",
            positions.value(base + loc[:-1]),
        )
    message = _clean(problem["msg"])
    field = _field_name(loc)
    return ConfigError(
        f"{field}: {message}" if field else message,
        positions.value(base + loc),
    )


def _clean(message: str) -> str:
    for prefix in _PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _data_loc(loc: tuple[Any, ...]) -> Loc:
    """Pydantic adds union and validator tags to a loc; keep the parts that are data keys."""
    return tuple(
        part
        for part in loc
        if isinstance(part, int) or not (("[" in part) or part.startswith("function-"))
    )


def _field_name(loc: Loc) -> str:
    for part in reversed(loc):
        if isinstance(part, str):
            return part
    return ""


def _where(loc: Loc) -> str:
    """` in step 'x'`-like context from a data path, kept short."""
    if not loc:
        return " at the top level"
    parent = [part for part in loc if isinstance(part, str)]
    last = parent[-1] if parent else ""
    if last in {"steps", "parallel", "ensure", "on_success", "on_failure", "compensate"}:
        return " in step"
    if last in {"workflows", "workflow"}:
        return " in workflow"
    return f" in {last}" if last else ""


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
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _descend(annotation: Any, part: str | int) -> Any:
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
