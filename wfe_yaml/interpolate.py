"""Load-time `((name))` interpolation into string values, and the sources of its variables."""

from __future__ import annotations

import bisect
import copy
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from executors.outputs import auto_type
from wfe_yaml.errors import ConfigError, Mark, did_you_mean, raise_all
from wfe_yaml.source import MAX_DEPTH, PathKey, SourceFile, kind_of, parse_file

_NAME = r"[A-Za-z0-9_.-]+"
_WHOLE = re.compile(rf"\(\(({_NAME})\)\)")
# `$((` opens shell arithmetic, which is skipped whole; anything else is a reference.
_TOKEN = re.compile(rf"\$\(\(|\(\(({_NAME})\)\)")
_ASSIGNMENT_NAME = re.compile(_NAME)
_INTEGER = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_HINT_NAMES = 12
_NO_VARIABLES = "no variables are defined: add them under config: or pass -c name=value"
# Top-level keys whose values are never interpolated: `config:` is a source of variables, not a
# consumer, and `_`-keys are ignored by the format (their anchors were already copied out).
_SOURCE_ONLY_KEY = "config"
_CONFIG_IN_EXPRESSION = re.compile(r"\$\{\{(?:(?!\}\}).)*\bconfig\b", re.DOTALL)
_ENV_EXAMPLE = """for example: WFE_CONFIG='{"coverage_threshold": 90}'"""


def collect_variables(sources: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge variable sources, later ones winning; nested mappings merge deeply.

    A dotted key (`a.b`) is shorthand for nesting, so `-c a.b=1` overrides just `a.b`.
    """
    merged: dict[str, Any] = {}
    for source in sources:
        _merge_into(merged, source)
    return merged


def interpolate(
    source: SourceFile, variables: Mapping[str, Any], used: set[str] | None = None
) -> Any:
    """The file's data with every `((name))` in its string values resolved; the names it
    resolved are added to `used`."""
    resolver = _Resolver(source, variables, set() if used is None else used)
    data = source.data
    if isinstance(data, dict):
        result = {
            key: value if _is_source_only(key) else resolver.resolve(value, (key,))
            for key, value in data.items()
        }
    else:
        result = resolver.resolve(data, ())
    raise_all(resolver.errors)
    return result


def unused_assignments(
    keys: Iterable[str], known: Iterable[str], *, expressions_read_config: bool
) -> list[ConfigError]:
    """A warning for each `-c` key that sets nothing the files use: no `((name))` resolved it
    and no `config:` declares it, so a mistyped name would otherwise pass silently. Files whose
    `${{ }}` expressions read `config` may use any key, so they get no warnings."""
    if expressions_read_config:
        return []
    known = sorted(set(known))
    warnings = []
    for key in keys:
        if not any(_related(key, name) for name in known):
            message = f"-c {key}=… sets a variable that nothing in the files uses"
            warnings.append(ConfigError(message, hint=_known_hint(key, known)))
    return warnings


def _known_hint(key: str, known: list[str]) -> str:
    if not known:
        return "the files use no ((variables))"
    shown = ", ".join(known[:_HINT_NAMES])
    more = f" and {len(known) - _HINT_NAMES} more" if len(known) > _HINT_NAMES else ""
    return did_you_mean(key, known) or f"variables the files use: {shown}{more}"


def reads_config(text: str) -> bool:
    """Whether a `${{ }}` expression of the text may read the `config` variables."""
    return _CONFIG_IN_EXPRESSION.search(text) is not None


def _related(key: str, name: str) -> bool:
    """Whether setting `key` changes what `((name))` resolves to."""
    return key == name or key.startswith(f"{name}.") or name.startswith(f"{key}.")


def load_config_file(path: Path) -> dict[str, Any]:
    """Variables from `--config-file`: a YAML or JSON file holding one mapping."""
    source = parse_file(path)
    if not isinstance(source.data, dict):
        raise ConfigError(
            f"config file must hold a mapping of names to values, got {kind_of(source.data)}",
            source.positions.value(()),
            hint="for example: coverage_threshold: 90",
        )
    return source.data


def parse_config_env(text: str) -> dict[str, Any]:
    """Variables from the WFE_CONFIG environment variable: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        problem = f"{error.msg} at line {error.lineno} column {error.colno}"
        raise ConfigError(
            f"WFE_CONFIG is not a JSON object: {problem}", hint=_ENV_EXAMPLE
        ) from None
    except RecursionError:
        raise ConfigError("WFE_CONFIG is not a JSON object: nested too deeply") from None
    if not isinstance(value, dict):
        raise ConfigError(
            f"WFE_CONFIG is not a JSON object: got {kind_of(value)}", hint=_ENV_EXAMPLE
        )
    if _depth(value) > MAX_DEPTH:
        raise ConfigError(f"WFE_CONFIG is nested deeper than {MAX_DEPTH} levels")
    return value


def parse_assignment(text: str) -> tuple[str, Any]:
    """A `-c name=value` argument: the (possibly dotted) name and the auto-typed value."""
    name, equals, raw = text.partition("=")
    name = name.strip()
    if not equals or not name:
        raise ConfigError(f"expected key=value, got '{text}'")
    if not _ASSIGNMENT_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid variable name '{name}' in '{text}'",
            hint="names use letters, digits, '_', '-' and '.' (for nesting)",
        )
    return name, auto_type(raw)


def _is_source_only(key: str) -> bool:
    return key == _SOURCE_ONLY_KEY or key.startswith("_")


def _merge_into(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        parts = key.split(".") if isinstance(key, str) else [key]
        if "" in parts:  # not a usable dotted path: keep the key as it is
            parts = [key]
        node = target
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        _set(node, parts[-1], value)


def _set(node: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, Mapping):
        existing = node.get(key)
        if not isinstance(existing, dict):
            existing = node[key] = {}
        _merge_into(existing, value)
    else:
        node[key] = copy.deepcopy(value)


def _depth(value: Any) -> int:
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in node)
    return deepest


def _lookup(variables: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """(found, value) for a dotted name; integer segments index lists."""
    value: Any = variables
    for segment in name.split("."):
        if isinstance(value, Mapping) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return False, None
    return True, value


def _render(value: Any) -> str:
    """How a value reads inside a longer string."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _arithmetic_end(text: str, start: int) -> int:
    """The index just past the `))` closing the `$((` whose first `(` is at `start`."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(text)


def variable_names(variables: Mapping[str, Any], prefix: str = "", levels: int = 4) -> list[str]:
    """The names `((name))` can resolve in these variables, nested ones dotted (4 levels)."""
    names = []
    for key, value in variables.items():
        name = f"{prefix}{key}"
        names.append(name)
        if isinstance(value, Mapping) and levels > 1:
            names.extend(variable_names(value, f"{name}.", levels - 1))
    return names


class _Resolver:
    """Walks the data, replacing references and collecting every unresolved one."""

    def __init__(self, source: SourceFile, variables: Mapping[str, Any], used: set[str]):
        self.source = source
        self.variables = variables
        self.used = used
        self.errors: list[ConfigError] = []
        self._line_starts: list[int] | None = None

    def resolve(self, value: Any, path: PathKey) -> Any:
        if isinstance(value, str):
            return self._string(value, path) if "((" in value else value
        if isinstance(value, dict):
            return {key: self.resolve(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item, (*path, index)) for index, item in enumerate(value)]
        return value

    def _string(self, text: str, path: PathKey) -> Any:
        whole = _WHOLE.fullmatch(text)
        if whole and not self.source.positions.is_quoted(path):
            found, value = _lookup(self.variables, whole.group(1))
            if found:
                self.used.add(whole.group(1))
                return copy.deepcopy(value)
            self._unresolved(whole.group(1), text, path, 0)
            return text
        return self._embedded(text, path)

    def _embedded(self, text: str, path: PathKey) -> str:
        pieces: list[str] = []
        unresolved: list[tuple[str, str]] = []
        position = 0
        while match := _TOKEN.search(text, position):
            name = match.group(1)
            if name is None:
                end = _arithmetic_end(text, match.start() + 1)
                pieces.append(text[position:end])
                position = end
                continue
            pieces.append(text[position : match.start()])
            found, value = _lookup(self.variables, name)
            pieces.append(_render(value) if found else match.group())
            if found:
                self.used.add(name)
            else:
                unresolved.append((name, match.group()))
            position = match.end()
        pieces.append(text[position:])
        tokens = [token for _, token in unresolved]
        for index, (name, token) in enumerate(unresolved):
            self._unresolved(name, token, path, tokens[:index].count(token))
        return "".join(pieces)

    def _unresolved(self, name: str, token: str, path: PathKey, occurrence: int) -> None:
        mark = self._token_mark(token, path, occurrence)
        self.errors.append(ConfigError(f"unresolved variable '{name}'", mark, self._hint(name)))

    def _hint(self, name: str) -> str:
        names = variable_names(self.variables)
        if not names:
            return _NO_VARIABLES
        close = did_you_mean(name, names)
        if close:
            return close
        shown = ", ".join(sorted(names)[:_HINT_NAMES])
        more = f" and {len(names) - _HINT_NAMES} more" if len(names) > _HINT_NAMES else ""
        return f"defined variables: {shown}{more}"

    def _token_mark(self, token: str, path: PathKey, occurrence: int) -> Mark:
        """Where the token itself was written: a script's tenth line, not its `run: |` line.

        Falls back to the value's own mark when the token is not found as written (an escape
        sequence in a quoted string can hide it).
        """
        value_mark = self.source.positions.value(path)
        text = self.source.text
        starts = self._starts()
        if value_mark.line > len(starts):
            return value_mark
        offset = starts[value_mark.line - 1] + value_mark.col - 1
        for _ in range(occurrence + 1):
            offset = text.find(token, offset)
            if offset < 0:
                return value_mark
            offset += len(token)
        offset -= len(token)
        line = bisect.bisect_right(starts, offset)
        return Mark(value_mark.file, line, offset - starts[line - 1] + 1)

    def _starts(self) -> list[int]:
        if self._line_starts is None:
            text = self.source.text
            self._line_starts = [0] + [match.end() for match in re.finditer("\n", text)]
        return self._line_starts
