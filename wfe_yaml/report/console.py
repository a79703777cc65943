"""What every console reporter shares: colours, status symbols and words, text fitting, and the
choice between the live tree and plain lines (DESIGN §7)."""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TextIO

from wfe_yaml.durations import format_duration
from wfe_yaml.engine.events import Event

RESET = "\x1b[0m"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
CLEAR_TO_END = "\x1b[J"

_STYLE_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}

STATUS_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "skipped": "dim",
    "cancelled": "yellow",
    "compensated": "magenta",
    "suspended": "yellow",
    "waiting": "yellow",
}

FAILURE_STATUSES = frozenset({"failed", "suspended"})
"""Step statuses that mean the step itself went wrong (a cancelled step is collateral)."""

_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


class Reporter(Protocol):
    """A subscriber of the event bus that writes to a console stream."""

    def __call__(self, event: Event) -> None: ...

    def close(self) -> None: ...


@cache
def _style_prefix(style: str) -> str:
    codes = ";".join(_STYLE_CODES[name] for name in style.split())
    return f"\x1b[{codes}m"


class Painter:
    """Wraps text in ANSI styles ("red", "bold green"), or leaves it alone when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str | None) -> str:
        if not self.enabled or not style or not text:
            return text
        return f"{_style_prefix(style)}{text}{RESET}"

    def status(self, text: str, status: str, bold: bool = False) -> str:
        style = STATUS_STYLE.get(status, "")
        return self(text, f"bold {style}".strip() if bold else style)


@dataclass(frozen=True)
class Symbols:
    icons: Mapping[str, str]
    spinner: tuple[str, ...]
    ellipsis: str
    rule: str

    def icon(self, status: str) -> str:
        return self.icons.get(status, "?")


UNICODE_SYMBOLS = Symbols(
    icons={
        "pending": "·",
        "running": "▸",
        "succeeded": "✓",
        "failed": "✗",
        "skipped": "-",
        "cancelled": "⊘",
        "compensated": "↺",
        "suspended": "‖",
        "waiting": "‖",
    },
    spinner=("⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"),
    ellipsis="…",
    rule="─",
)

ASCII_SYMBOLS = Symbols(
    icons={
        "pending": ".",
        "running": ">",
        "succeeded": "+",
        "failed": "x",
        "skipped": "-",
        "cancelled": "!",
        "compensated": "~",
        "suspended": "=",
        "waiting": "=",
    },
    spinner=("|", "/", "-", "\\"),
    ellipsis="...",
    rule="-",
)

_UNICODE_SAMPLE = "".join(UNICODE_SYMBOLS.icons.values()) + "".join(UNICODE_SYMBOLS.spinner) + "…─"


def symbols_for(stream: TextIO) -> Symbols:
    """Unicode symbols, or ASCII ones when the stream's encoding can't hold them (a cp1252 pipe)."""
    encoding = getattr(stream, "encoding", None)
    if not encoding:
        return UNICODE_SYMBOLS
    try:
        _UNICODE_SAMPLE.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_SYMBOLS
    return UNICODE_SYMBOLS


def outcome_detail(
    status: str,
    *,
    error: str | None = None,
    exit_code: int | None = None,
    skip_reason: str | None = None,
) -> str | None:
    """Why a step ended as it did: the skip reason, the error, or a non-zero exit code."""
    if status == "skipped":
        return skip_reason or "no reason given"
    if error:
        return error
    if exit_code:
        return f"exited with code {exit_code}"
    return skip_reason


def status_phrase(status: str, duration_ms: int | None, detail: str | None) -> str:
    """`succeeded in 1.2s`, `failed in 0.3s: exited with code 1`, `skipped: <reason>`."""
    phrase = status
    if duration_ms is not None and status not in ("skipped", "pending"):
        phrase += f" in {format_duration(duration_ms / 1000)}"
    return f"{phrase}: {detail}" if detail else phrase


_PATH_SEPARATOR = re.compile(r"/(?![^\[]*\])")
"""A `/` outside matrix brackets: `ci/unit[os=a/b]` is two parts."""


def split_path(path: str) -> list[str]:
    return _PATH_SEPARATOR.split(path)


def parent_path(path: str) -> str | None:
    parts = split_path(path)
    return "/".join(parts[:-1]) if len(parts) > 1 else None


_ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_ansi(text: str) -> str:
    return _ANSI_ESCAPE.sub("", text)


def one_line(text: str) -> str:
    """Text safe to draw on one terminal line: no escapes, no controls, last `\\r` segment only
    (progress bars redraw with `\\r`)."""
    text = strip_ansi(text).rstrip("\r\n")
    text = text.rsplit("\r", 1)[-1].replace("\t", "    ").replace("\n", " ")
    return _CONTROL.sub("", text)


def char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal columns the text takes (CJK and other wide characters count two)."""
    if text.isascii():
        return len(text)
    return sum(char_width(char) for char in text)


def truncate(text: str, width: int, ellipsis: str = "…") -> str:
    """Text cut to at most `width` columns, ending in the ellipsis when cut."""
    if display_width(text) <= width:
        return text
    room = width - display_width(ellipsis)
    if room < 0:
        return ""
    kept, used = [], 0
    for char in text:
        used += char_width(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept) + ellipsis


def pad(text: str, width: int, align_right: bool = False) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if align_right else text + gap


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """True when the variable is set to something other than empty, 0, false, no, off."""
    return env.get(name, "").strip().lower() not in _FALSE_WORDS


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def color_wanted(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Colour only on a terminal and unless NO_COLOR is set (https://no-color.org: non-empty)."""
    return _is_tty(stream) and not env.get("NO_COLOR") and env.get("TERM") != "dumb"


def live_wanted(stream: TextIO, plain: bool, verbosity: int, env: Mapping[str, str]) -> bool:
    """The live tree needs a real terminal; CI, --plain, TERM=dumb and --quiet get plain lines."""
    if plain or verbosity < 0 or env_flag(env, "CI") or env.get("TERM") == "dumb":
        return False
    return _is_tty(stream)


class PipeSafe:
    """A console reporter that goes quiet when its reader goes away (`wfe run | head`): the
    run goes on to its real verdict instead of failing on a closed pipe."""

    def __init__(self, reporter: Reporter, stream: TextIO) -> None:
        self.reporter = reporter
        self.stream = stream
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reporter, name)

    def __call__(self, event: Any) -> None:
        if not self.closed:
            self._guard(self.reporter, event)

    def close(self) -> None:
        if not self.closed:
            self._guard(lambda _: self.reporter.close(), None)

    def _guard(self, action: Callable[[Any], None], event: Any) -> None:
        try:
            action(event)
        except BrokenPipeError:
            self.closed = True
            # Later writes and the interpreter's final flush must not fail either.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())


def make_console_reporter(
    stream: TextIO,
    plain: bool = False,
    verbosity: int = 0,
    env: Mapping[str, str] | None = None,
) -> Reporter:
    """The live tree on an interactive terminal, plain prefixed lines everywhere else."""
    # Imported here (and only the one in use): both modules import this one.
    env = os.environ if env is None else env
    color = color_wanted(stream, env)
    reporter: Reporter
    if live_wanted(stream, plain, verbosity, env):
        from wfe_yaml.report.live import LiveReporter

        reporter = LiveReporter(stream, color=color)
    else:
        from wfe_yaml.report.plain import PlainReporter

        reporter = PlainReporter(stream, verbosity=verbosity, color=color)
    return PipeSafe(reporter, stream)
