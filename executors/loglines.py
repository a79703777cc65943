"""A batch of output lines that stays one piece of text until someone needs single lines.

Process output arrives in blocks of up to a megabyte. Most consumers take a batch whole (the
log file, the plain output, the last lines kept for a failure), so the block is handed on as
text and cut into separate strings only on demand: cutting a 200 MB output into 2.6 million
strings took as long as everything else wfe did with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload


class LogLines(Sequence[str]):
    """Lines held as one text in which every line ends with a newline."""

    __slots__ = ("_lines", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._lines: list[str] | None = None

    def lines(self) -> list[str]:
        if self._lines is None:
            lines = self.text.split("\n")
            lines.pop()
            self._lines = lines
        return self._lines

    def __len__(self) -> int:
        return self.text.count("\n")

    def __bool__(self) -> bool:
        return bool(self.text)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self.lines()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines())

    def __reversed__(self) -> Iterator[str]:
        return reversed(self.lines())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LogLines):
            return self.text == other.text
        if isinstance(other, list):
            return self.lines() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like the list it stands for

    def __repr__(self) -> str:
        return f"LogLines({self.lines()!r})"


def as_text(lines: Sequence[str]) -> str:
    """The lines as one text, each line ended by a newline."""
    if isinstance(lines, LogLines):
        return lines.text
    return "\n".join(lines) + "\n" if lines else ""


def last_lines(lines: Sequence[str], count: int) -> Sequence[str]:
    """At most the last `count` lines, without cutting a whole batch into strings (nor
    copying the text before them, as `rsplit` would)."""
    if count <= 0 or not lines:
        return []
    if not isinstance(lines, LogLines):
        return lines[-count:]
    text = lines.text
    end = start = len(text) - 1
    for _ in range(count):
        start = text.rfind("\n", 0, start)
        if start < 0:
            break
    return text[start + 1 : end].split("\n")
