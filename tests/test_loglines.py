"""A batch of output lines kept as one text: it reads like the list of its lines."""

from __future__ import annotations

import pytest

from executors.loglines import LogLines, as_text, last_lines
from executors.process import LineSplitter


def test_a_batch_reads_like_the_list_of_its_lines() -> None:
    batch = LogLines("a\n\nc\n")
    assert batch == ["a", "", "c"]
    assert ["a", "", "c"] == batch  # noqa: SIM300 - a list on the left compares too
    assert (len(batch), batch[0], batch[-1], batch[1:]) == (3, "a", "c", ["", "c"])
    assert list(reversed(batch)) == ["c", "", "a"]
    assert bool(batch) and not LogLines("")


@pytest.mark.parametrize("lines", [LogLines("a\nb\nc\n"), ["a", "b", "c"]])
def test_text_and_last_lines_are_the_same_for_batches_and_lists(lines: list[str]) -> None:
    assert as_text(lines) == "a\nb\nc\n"
    assert [list(last_lines(lines, count)) for count in range(5)] == [
        [],
        ["c"],
        ["b", "c"],
        ["a", "b", "c"],
        ["a", "b", "c"],
    ]


def test_empty_lines_survive_at_both_ends() -> None:
    assert list(last_lines(LogLines("\n"), 3)) == [""]
    assert as_text([]) == "" and list(last_lines(LogLines(""), 3)) == []


def test_split_output_arrives_whole_and_in_order() -> None:
    got: list[str] = []
    splitter = LineSplitter(lambda lines, _marked: got.extend(lines))
    for chunk in (b"one\ntw", b"o\r\nthree\nfo", b"ur\n", b"five"):
        splitter.feed(chunk)
    splitter.close()
    assert got == ["one", "two", "three", "four", "five"]
