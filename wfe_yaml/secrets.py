"""Secret values: where they come from, and masking them everywhere they could show."""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from wfe_yaml.errors import ConfigError, Mark

MASK = "***"
MIN_LENGTH = 4
"""Shorter values are not masked: masking `1` or `ab` would garble every log line."""
REFERENCE = re.compile(r"^secret:([A-Za-z_][A-Za-z0-9_]*)$")


class Masker:
    """Replaces every known secret value (and its base64 and URL-encoded forms) by `***`."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def add(self, value: str) -> None:
        if len(value) < MIN_LENGTH:
            return
        forms = {value, *_encoded_forms(value)}
        # A multi-line value (a key file) reaches logs one line at a time.
        forms.update(line.strip() for line in value.splitlines())
        new = {form for form in forms if len(form) >= MIN_LENGTH} - self._values
        if not new:
            return
        self._values |= new
        longest_first = sorted(self._values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(form) for form in longest_first))

    def text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def lines(self, lines: Sequence[str]) -> Sequence[str]:
        if self._pattern is None:
            return lines
        sub = self._pattern.sub
        return [sub(MASK, line) for line in lines]

    def value(self, value: Any) -> Any:
        """A deep copy of a JSON-like value with secrets masked in every string."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


def _encoded_forms(value: str) -> list[str]:
    raw = value.encode()
    b64 = base64.b64encode(raw).decode()
    return [
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
    ]


def load_secrets(
    names: Iterable[str],
    environ: Mapping[str, str],
    assignments: Iterable[str] = (),
    files: Iterable[str | Path] = (),
) -> dict[str, str]:
    """The value of every declared secret: `--secret` beats `--secret-file` beats the env."""
    supplied: dict[str, str] = {}
    for file in files:
        supplied.update(parse_dotenv(Path(file)))
    for text in assignments:
        name, separator, value = text.partition("=")
        if not separator or not name:
            raise ConfigError(f"--secret expects NAME=value, got '{name}'")
        supplied[name] = value
    values, missing = {}, []
    for name in names:
        if name in supplied:
            values[name] = supplied[name]
        elif name in environ:
            values[name] = environ[name]
        else:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"declared secret{'s' if len(missing) > 1 else ''} not set: {', '.join(missing)}",
            hint="set it in the environment, or pass --secret NAME=value or --secret-file FILE",
        )
    return values


def parse_dotenv(path: Path) -> dict[str, str]:
    """`NAME=value` lines; `#` comments, `export ` prefixes and quotes as dotenv files have."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read secret file {path}: {error.strerror}") from error
    values = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, separator, value = line.partition("=")
        if not separator or not name.strip().isidentifier():
            # Never echo the line: it may hold a secret.
            raise ConfigError("expected NAME=value", Mark(str(path), number, 1))
        values[name.strip()] = _unquote(value.strip())
    return values


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        return _DOUBLE_QUOTED_ESCAPE.sub(_escape, inner) if value[0] == '"' else inner
    return value.split(" #", 1)[0].rstrip()


_DOUBLE_QUOTED_ESCAPE = re.compile(r"\\([nrt\"\\])")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _escape(match: re.Match[str]) -> str:
    return _ESCAPES[match.group(1)]


def resolve_references(value: Any, secrets: Mapping[str, str]) -> Any:
    """Config strings that are exactly `secret:NAME` become the secret's value."""
    if isinstance(value, str):
        match = REFERENCE.match(value)
        if match is None:
            return value
        if match.group(1) not in secrets:
            raise KeyError(match.group(1))
        return secrets[match.group(1)]
    if isinstance(value, dict):
        return {key: resolve_references(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_references(item, secrets) for item in value]
    return value


def references(value: Any) -> list[str]:
    """Names of the secrets a config refers to with `secret:NAME`."""
    if isinstance(value, str):
        match = REFERENCE.match(value)
        return [match.group(1)] if match else []
    if isinstance(value, dict):
        return [name for item in value.values() for name in references(item)]
    if isinstance(value, list):
        return [name for item in value for name in references(item)]
    return []
