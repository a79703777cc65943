"""YAML text to plain Python data, with the file:line:col of every value and key.

The data is built straight from PyYAML's event stream (libyaml's parser when available) rather
than from its composer: the C composer recurses without limit and crashes the interpreter on
deeply nested input, and libyaml slows down quadratically with nesting, so depth must be
capped while events are still being read. Building from events also lets aliases be counted
before they are expanded, which is what keeps alias bombs cheap to refuse.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from wfe_yaml.errors import ConfigError, Mark, raise_all

MAX_DEPTH = 200
MAX_NODES = 1_000_000
MAX_FILE_BYTES = 64 * 1024 * 1024

PathKey = tuple[str | int, ...]
Spot = tuple[int, int]
"""A 1-based (line, column) pair; Mark objects are only made when someone asks."""

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# A path element no real key or index can take: where a `<<:` value is built before its keys
# are merged into the enclosing mapping.
_MERGE_SLOT = -1

_CORE = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (
    f"{_CORE}str",
    f"{_CORE}int",
    f"{_CORE}float",
    f"{_CORE}bool",
    f"{_CORE}null",
)
_TIMESTAMP, _SEQ, _MAP = f"{_CORE}timestamp", f"{_CORE}seq", f"{_CORE}map"
_SCALAR_TAGS = {"!", _STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP}
_SUPPORTED_TAGS = "!!str, !!int, !!float, !!bool, !!null, !!seq, !!map"

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_DECIMAL = re.compile(r"[-+]?[0-9]+")
_OCTAL = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT_TEXT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INFINITY = re.compile(r"([-+]?)\.(?:inf|Inf|INF)")
_NAN = frozenset({".nan", ".NaN", ".NAN"})
_MAY_NOT_BE_STRING = frozenset("0123456789+-.~nNtTfF")

# What YAML allows in a stream; a BOM is only allowed first, and is stripped before this check.
_FORBIDDEN_ASCII = re.compile("[^\t\n\r\x20-\x7e]")
_FORBIDDEN_CHARACTER_PATTERN = (
    "[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


@dataclass(frozen=True)
class Positions:
    """Where each value and key of a file was written, by path from the document root.

    Values that came from an alias or a `<<:` merge are found where they were written,
    inside the anchored node.
    """

    file: str
    value_spots: dict[PathKey, Spot] = field(default_factory=dict, repr=False)
    key_spots: dict[PathKey, Spot] = field(default_factory=dict, repr=False)
    aliases: dict[PathKey, PathKey] = field(default_factory=dict, repr=False)
    quoted_spots: set[Spot] = field(default_factory=set, repr=False)
    """Where quoted scalars were written: `"((x))"` stays text, as quotes say."""

    def is_quoted(self, path: PathKey) -> bool:
        return self.value_spots.get(self._written(path)) in self.quoted_spots

    def value(self, path: PathKey) -> Mark:
        """The value at `path`, or its nearest ancestor when that path was never written."""
        written = self._written(path)
        for end in range(len(written), -1, -1):
            spot = self.value_spots.get(written[:end])
            if spot is not None:
                return self._mark(spot)
        return Mark(self.file, 1, 1)

    def key(self, path: PathKey) -> Mark:
        """The mapping key that ends `path`; the value's mark when there is no such key."""
        spot = self.key_spots.get(path) or self.key_spots.get(self._written(path))
        return self._mark(spot) if spot is not None else self.value(path)

    def _written(self, path: PathKey) -> PathKey:
        # Each redirect moves to an anchor defined earlier in the file, so the chain is finite;
        # the bound only guards against a bug turning into a hang.
        for _ in range(len(self.aliases) + 1):
            for end in range(len(path), 0, -1):
                prefix = path[:end]
                if prefix in self.value_spots:
                    return path
                target = self.aliases.get(prefix)
                if target is not None:
                    path = target + path[end:]
                    break
            else:
                return path
        return path

    def _mark(self, spot: Spot) -> Mark:
        return Mark(self.file, spot[0], spot[1])


@dataclass(frozen=True)
class SourceFile:
    """One parsed file: its text, its plain data and where each piece of it was written."""

    path: Path
    text: str
    data: Any
    positions: Positions


def parse_text(text: str, filename: str) -> SourceFile:
    """Parse YAML text; `filename` is what error marks will name."""
    return _parse(text, filename, Path(os.path.realpath(filename)))


def parse_file(path: Path) -> SourceFile:
    """Read and parse one YAML file (no includes)."""
    return _parse_file(path, str(path))


def load_with_includes(path: Path) -> list[SourceFile]:
    """The main file, then the files it includes, depth-first in list order, each once."""
    return _IncludeWalk(parse_file(path)).run()


def kind_of(value: Any) -> str:
    """How a value's type reads in an error message: 'a list', 'a string', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _parse_file(path: Path, display: str) -> SourceFile:
    return _parse(_read_text(path, display), display, Path(os.path.realpath(path)))


def _read_text(path: Path, display: str) -> str:
    data = _read_bytes(path, display)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(data, error.start, display) from None


def _read_bytes(path: Path, display: str) -> bytes:
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{display} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{display} is not a regular file")
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"file not found: {display}") from None
    except PermissionError:
        raise ConfigError(f"cannot read {display}: permission denied") from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"cannot read {display}: {reason}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{display} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return data


def _not_utf8(data: bytes, offset: int, display: str) -> ConfigError:
    line = data.count(b"\n", 0, offset) + 1
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return ConfigError(
        f"file is not valid UTF-8 text (byte 0x{data[offset]:02x} at line {line})",
        Mark(display, line, column),
        hint="save the file as UTF-8; a YAML workflow file is text",
    )


def _parse(text: str, display: str, path: Path) -> SourceFile:
    text = text.removeprefix("\ufeff")
    _check_characters(text, display)
    builder = _Builder(display)
    loader = _Loader(text)
    try:
        data = builder.build(loader)
    except yaml.MarkedYAMLError as error:
        raise_all([*builder.errors, _syntax_error(error, display)])
    except yaml.YAMLError as error:
        raise_all([*builder.errors, ConfigError(f"invalid YAML: {error}", Mark(display, 1, 1))])
    except ConfigError as error:
        raise_all([*builder.errors, error])
    finally:
        loader.dispose()
    raise_all(builder.errors)
    return SourceFile(path, text, data, builder.positions)


def _check_characters(text: str, display: str) -> None:
    found = _forbidden_character(text.isascii()).search(text)
    if found is None:
        return
    offset = found.start()
    line = text.count("\n", 0, offset) + 1
    mark = Mark(display, line, offset - text.rfind("\n", 0, offset))
    if found.group() == "\0":
        raise ConfigError("file contains a NUL byte", mark, hint="is it a binary file?")
    raise ConfigError(
        f"file contains the control character U+{ord(found.group()):04X}, not allowed in YAML",
        mark,
    )


@functools.cache
def _forbidden_character(ascii_only: bool) -> re.Pattern[str]:
    # Compiling the full pattern costs about 9 ms (its Unicode ranges); most files are ASCII.
    return _FORBIDDEN_ASCII if ascii_only else re.compile(_FORBIDDEN_CHARACTER_PATTERN)


def _syntax_error(error: yaml.MarkedYAMLError, display: str) -> ConfigError:
    where = error.problem_mark or error.context_mark
    mark = Mark(display, where.line + 1, where.column + 1) if where else None
    hint = None
    if error.context and error.problem:
        context_line = f" (line {error.context_mark.line + 1})" if error.context_mark else ""
        hint = f"{error.context}{context_line}"
    return ConfigError(f"YAML syntax error: {error.problem or error.context}", mark, hint)


def _spot(event: Any) -> Spot:
    return (event.start_mark.line + 1, event.start_mark.column + 1)


def _resolve_plain(text: str) -> Any:
    """A plain (unquoted, untagged) scalar under the YAML 1.2 core schema."""
    if not text:
        return None
    if text[0] not in _MAY_NOT_BE_STRING:
        return text
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if _DECIMAL.fullmatch(text):
        return _integer(text, text, 10)
    if _HEX.fullmatch(text):
        return _integer(text, text[2:], 16)
    if _OCTAL.fullmatch(text):
        return _integer(text, text[2:], 8)
    if _FLOAT_TEXT.fullmatch(text):
        return float(text)
    infinity = _INFINITY.fullmatch(text)
    if infinity:
        return float(f"{infinity.group(1)}inf")
    if text in _NAN:
        return float("nan")
    return text


def _integer(text: str, digits: str, base: int) -> int | str:
    try:
        return int(digits, base)
    except ValueError:  # more digits than Python converts; nobody means that as a number
        return text


def _show_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


@dataclass
class _Anchor:
    value: Any
    size: int
    depth: int
    path: PathKey
    spot: Spot
    text: str | None  # the scalar's source text, for an alias used as a key; None for collections


@dataclass
class _Frame:
    """A mapping or sequence whose closing event has not arrived yet."""

    path: PathKey
    spot: Spot
    items: Any
    is_map: bool
    anchor: str | None
    key: str | int | None = None  # the mapping key awaiting its value; _MERGE_SLOT for `<<`
    merges: list[tuple[PathKey, dict[str, Any]]] | None = None
    size: int = 1
    depth: int = 0


class _Builder:
    """Turns one document's events into plain data plus positions, enforcing the limits."""

    def __init__(self, file: str):
        self.file = file
        self.positions = Positions(file)
        self.errors: list[ConfigError] = []
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.root: Any = None

    def build(self, loader: Any) -> Any:
        documents = 0
        while True:
            event = loader.get_event()
            kind = event.__class__
            if kind is ScalarEvent:
                self._scalar(event)
            elif kind is MappingStartEvent:
                self._open(event, is_map=True)
            elif kind is SequenceStartEvent:
                self._open(event, is_map=False)
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                self._close()
            elif kind is AliasEvent:
                self._alias(event)
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise ConfigError(
                        "a second YAML document starts here",
                        self._mark(_spot(event)),
                        hint="a workflow file holds one document: remove the extra '---'",
                    )
            elif kind is StreamEndEvent:
                return self.root

    def _scalar(self, event: ScalarEvent) -> None:
        spot = _spot(event)
        value = self._scalar_value(event, spot)
        if event.anchor:
            self.anchors[event.anchor] = _Anchor(value, 1, 0, (), spot, event.value)
        if self._expects_key():
            self._key(event.value, spot, plain=event.tag is None and event.implicit[0])
            return
        self._count(1, spot)
        self.positions.value_spots[self._child_path()] = spot
        if event.style in ("'", '"'):
            self.positions.quoted_spots.add(spot)
        self._attach(value, 1, 0, spot)

    def _scalar_value(self, event: ScalarEvent, spot: Spot) -> Any:
        if event.tag is None:
            return _resolve_plain(event.value) if event.implicit[0] else event.value
        return self._tagged_scalar(event.tag, event.value, spot)

    def _tagged_scalar(self, tag: str, text: str, spot: Spot) -> Any:
        if tag in ("!", _STR, _TIMESTAMP):
            return text
        if tag not in _SCALAR_TAGS:
            self._tag_error(tag, spot, "a scalar")
            return text
        value = _resolve_plain(text)
        if tag == _INT and type(value) is int:
            return value
        if tag == _FLOAT and type(value) in (int, float):
            return float(value)
        if (tag == _BOOL and type(value) is bool) or (tag == _NULL and value is None):
            return value
        self.errors.append(
            ConfigError(f"'{text}' does not fit its tag {_show_tag(tag)}", self._mark(spot))
        )
        return text

    def _tag_error(self, tag: str, spot: Spot, node: str) -> None:
        if tag.startswith(_CORE):
            message = f"tag '{_show_tag(tag)}' cannot be used on {node}"
        else:
            message = f"unknown tag '{tag}'"
        self.errors.append(
            ConfigError(message, self._mark(spot), hint=f"supported tags: {_SUPPORTED_TAGS}")
        )

    def _open(self, event: MappingStartEvent | SequenceStartEvent, is_map: bool) -> None:
        spot = _spot(event)
        if self._expects_key():
            raise self._non_scalar_key(is_map, spot)
        if len(self.stack) >= MAX_DEPTH:
            raise ConfigError(f"nesting deeper than {MAX_DEPTH} levels", self._mark(spot))
        if event.tag not in (None, "!", _MAP if is_map else _SEQ):
            self._tag_error(event.tag, spot, "a mapping" if is_map else "a list")
        self._count(1, spot)
        path = self._child_path()
        self.positions.value_spots[path] = spot
        if event.anchor:
            self.open_anchors.add(event.anchor)
        items: Any = {} if is_map else []
        self.stack.append(_Frame(path, spot, items, is_map, event.anchor))

    def _close(self) -> None:
        frame = self.stack.pop()
        value = self._merged(frame) if frame.merges else frame.items
        depth = frame.depth + 1
        if frame.anchor:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = _Anchor(
                value, frame.size, depth, frame.path, frame.spot, None
            )
        self._attach(value, frame.size, depth, frame.spot)

    def _alias(self, event: AliasEvent) -> None:
        spot = _spot(event)
        name = event.anchor or ""
        anchor = self._anchor(name, spot)
        if self._expects_key():
            self._key(self._alias_key(anchor, name, spot), spot, plain=False)
            return
        if anchor is None:
            self._count(1, spot)
            self.positions.value_spots[self._child_path()] = spot
            self._attach(None, 1, 0, spot)
            return
        if len(self.stack) + anchor.depth > MAX_DEPTH:
            raise ConfigError(f"nesting deeper than {MAX_DEPTH} levels", self._mark(spot))
        self._count(anchor.size, spot)
        path = self._child_path()
        if anchor.text is not None:
            self.positions.value_spots[path] = anchor.spot
        else:
            self.positions.aliases[path] = anchor.path
        self._attach(_copy(anchor.value), anchor.size, anchor.depth, spot)

    def _alias_key(self, anchor: _Anchor | None, name: str, spot: Spot) -> str:
        if anchor is None:
            return f"*{name}"
        if anchor.text is None:
            raise self._non_scalar_key(isinstance(anchor.value, dict), spot)
        return anchor.text

    def _anchor(self, name: str, spot: Spot) -> _Anchor | None:
        if name in self.open_anchors:
            message = f"alias '*{name}' is inside the node it refers to"
        elif name not in self.anchors:
            message = f"unknown alias '*{name}': no anchor '&{name}' is defined before it"
        else:
            return self.anchors[name]
        self.errors.append(ConfigError(message, self._mark(spot)))
        return None

    def _key(self, text: str, spot: Spot, plain: bool) -> None:
        frame = self.stack[-1]
        if plain and text == "<<":
            if frame.merges is not None:
                self._duplicate_key(text, (*frame.path, _MERGE_SLOT), spot)
            frame.merges = frame.merges or []
            self.positions.key_spots.setdefault((*frame.path, _MERGE_SLOT), spot)
            frame.key = _MERGE_SLOT
            return
        if text in frame.items:
            self._duplicate_key(text, (*frame.path, text), spot)
        else:
            self.positions.key_spots[(*frame.path, text)] = spot
        frame.key = text

    def _duplicate_key(self, text: str, first_path: PathKey, spot: Spot) -> None:
        first_line = self.positions.key_spots[first_path][0]
        self.errors.append(
            ConfigError(
                f"duplicate key '{text}' (first defined at line {first_line})",
                self._mark(spot),
            )
        )

    def _attach(self, value: Any, size: int, depth: int, spot: Spot) -> None:
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        frame.size += size
        frame.depth = max(frame.depth, depth)
        if not frame.is_map:
            frame.items.append(value)
            return
        key, frame.key = frame.key, None
        if key == _MERGE_SLOT:
            self._add_merge(frame, value, spot)
        else:
            frame.items[key] = value

    def _add_merge(self, frame: _Frame, value: Any, spot: Spot) -> None:
        assert frame.merges is not None
        slot = (*frame.path, _MERGE_SLOT)
        if isinstance(value, dict):
            frame.merges.append((slot, value))
            return
        if not isinstance(value, list):
            self._merge_error(value, self._mark(spot))
            return
        for index, item in enumerate(value):
            if isinstance(item, dict):
                frame.merges.append(((*slot, index), item))
            else:
                self._merge_error(item, self.positions.value((*slot, index)))

    def _merge_error(self, value: Any, mark: Mark) -> None:
        self.errors.append(
            ConfigError(
                f"a merge key '<<' needs a mapping or a list of mappings, got {kind_of(value)}",
                mark,
            )
        )

    def _merged(self, frame: _Frame) -> dict[str, Any]:
        """Explicit keys win over merged ones; among merged mappings, earlier ones win."""
        assert frame.merges is not None
        merged: dict[str, Any] = {}
        for source_path, source in frame.merges:
            for key, value in source.items():
                if key not in merged and key not in frame.items:
                    merged[key] = value
                    self.positions.aliases[(*frame.path, key)] = (*source_path, key)
        merged.update(frame.items)
        return merged

    def _expects_key(self) -> bool:
        return bool(self.stack) and self.stack[-1].is_map and self.stack[-1].key is None

    def _child_path(self) -> PathKey:
        if not self.stack:
            return ()
        frame = self.stack[-1]
        if frame.is_map:
            assert frame.key is not None
            return (*frame.path, frame.key)
        return (*frame.path, len(frame.items))

    def _count(self, nodes: int, spot: Spot) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise ConfigError(
                "document expands to too many nodes (alias bomb?)",
                self._mark(spot),
                hint=f"aliases here expand the document past {MAX_NODES:,} values",
            )

    def _non_scalar_key(self, is_map: bool, spot: Spot) -> ConfigError:
        kind = "a mapping" if is_map else "a list"
        return ConfigError(f"a mapping key must be a plain value, not {kind}", self._mark(spot))

    def _mark(self, spot: Spot) -> Mark:
        return Mark(self.file, spot[0], spot[1])


@dataclass(frozen=True)
class _Entry:
    """One `include:` entry as written, and where."""

    text: str
    mark: Mark


class _IncludeWalk:
    """Depth-first loading of `include:` entries, each file once; real cycles are errors."""

    def __init__(self, main: SourceFile):
        self.root_dir = main.path.parent
        self.loaded: dict[Path, SourceFile] = {main.path: main}
        self.errors: list[ConfigError] = []

    def run(self) -> list[SourceFile]:
        main = next(iter(self.loaded.values()))
        stack: list[tuple[SourceFile, Iterator[_Entry]]] = [(main, self._entries(main))]
        while stack:
            source, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            target = Path(os.path.realpath(source.path.parent / entry.text))
            chain = [including.path for including, _ in stack]
            if target in chain:
                self._cycle([*chain[chain.index(target) :], target], entry)
            elif target not in self.loaded:
                included = self._load(source, entry, target)
                if included is not None:
                    self.loaded[target] = included
                    stack.append((included, self._entries(included)))
        raise_all(self.errors)
        return list(self.loaded.values())

    def _entries(self, source: SourceFile) -> Iterator[_Entry]:
        data = source.data
        value = data.get("include") if isinstance(data, dict) else None
        where = source.positions
        if value is None:
            return iter(())
        if isinstance(value, str):
            entries = [(value, where.value(("include",)))]
        elif isinstance(value, list):
            entries = [(item, where.value(("include", index))) for index, item in enumerate(value)]
        else:
            self._error(
                f"include expects a file path or a list of file paths, got {kind_of(value)}",
                where.value(("include",)),
            )
            return iter(())
        return iter(self._checked(entries))

    def _checked(self, entries: list[tuple[Any, Mark]]) -> list[_Entry]:
        kept = []
        for text, mark in entries:
            if isinstance(text, str) and text:
                kept.append(_Entry(text, mark))
            else:
                what = "an empty path" if text == "" else kind_of(text)
                self._error(f"an include entry must be a file path, got {what}", mark)
        return kept

    def _load(self, source: SourceFile, entry: _Entry, target: Path) -> SourceFile | None:
        if not target.exists():
            self._error(f"included file not found: {entry.text} (resolved to {target})", entry.mark)
            return None
        display = os.path.normpath(os.path.join(os.path.dirname(source.positions.file), entry.text))
        try:
            return _parse_file(target, display)
        except ConfigError as failure:
            # A file that cannot be read at all is best shown at the entry that named it.
            self.errors.extend(
                error if error.mark else ConfigError(error.message, entry.mark, error.hint)
                for error in failure.errors
            )
        return None

    def _cycle(self, cycle: list[Path], entry: _Entry) -> None:
        names = " -> ".join(os.path.relpath(path, self.root_dir) for path in cycle)
        self._error(f"include cycle: {names}", entry.mark)

    def _error(self, message: str, mark: Mark) -> None:
        self.errors.append(ConfigError(message, mark))
