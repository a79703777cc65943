"""The one error type for user mistakes, with the position it points at."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Mark:
    """A position in a source file; line and column are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{_display_path(self.file)}:{self.line}:{self.col}"


def _display_path(file: str) -> str:
    """Relative to the working directory when the file is below it, as a user typed it."""
    if os.path.isabs(file):
        try:
            relative = os.path.relpath(file)
        except ValueError:
            return file
        if not relative.startswith(".."):
            return relative
    return file


class ConfigError(Exception):
    """A mistake in the user's input: printed as `file:line:col: message` plus a hint."""

    def __init__(self, message: str, mark: Mark | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.hint = hint

    @property
    def errors(self) -> list[ConfigError]:
        return [self]

    def format(self) -> str:
        where = f"{self.mark}: " if self.mark else ""
        text = f"{where}error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self.format()


class ConfigErrors(ConfigError):
    """Several mistakes found in one pass, reported together in file order."""

    def __init__(self, errors: Iterable[ConfigError]):
        flat: list[ConfigError] = []
        for error in errors:
            flat.extend(error.errors)
        flat.sort(key=_position_key)
        self._errors = _unique(flat)
        first = self._errors[0] if self._errors else ConfigError("no errors")
        super().__init__(first.message, first.mark, first.hint)

    @property
    def errors(self) -> list[ConfigError]:
        return list(self._errors)

    def format(self) -> str:
        return "\n".join(error.format() for error in self._errors)


def raise_all(errors: list[ConfigError]) -> None:
    """Raise the collected errors, if any, as one exception."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigErrors(errors)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest known word, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _position_key(error: ConfigError) -> tuple[str, int, int]:
    if error.mark is None:
        return ("", 0, 0)
    return (error.mark.file, error.mark.line, error.mark.col)


def _unique(errors: list[ConfigError]) -> list[ConfigError]:
    seen: set[tuple[object, str]] = set()
    kept = []
    for error in errors:
        key = (error.mark, error.message)
        if key not in seen:
            seen.add(key)
            kept.append(error)
    return kept
