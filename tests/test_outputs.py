from __future__ import annotations

import pytest

from executors.outputs import OutputParser, auto_type, holds_marker, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("null", None),
        ("42", 42),
        ("-3", -3),
        ("007", 7),
        ("+5", 5),
        ("0", 0),
        ("3.5", 3.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("-2.5E-1", -0.25),
        ("1.", 1.0),
        ("inf", None),
        ("-Infinity", None),
        ("NaN", None),
        ("1e999", None),
        ("True", "True"),
        ("FALSE", "FALSE"),
        ("Null", "Null"),
        (" 5", " 5"),
        ("5 ", "5 "),
        ("1,000", "1,000"),
        ("1_000", "1_000"),
        ("yes", "yes"),
        ("", ""),
        ("/usr/bin", "/usr/bin"),
        ("e5", "e5"),
        (".", "."),
        ("١٢", "١٢"),
    ],
)
def test_auto_type(text: str, expected: object) -> None:
    value = auto_type(text)
    assert value == expected
    assert type(value) is type(expected)


def test_integer_beyond_64_bits_becomes_a_float() -> None:
    assert auto_type("99999999999999999999") == 1e20
    assert auto_type(str(2**63 - 1)) == 2**63 - 1


def parse(*lines: str) -> OutputParser:
    parser = OutputParser()
    parser.feed(list(lines))
    return parser


def test_output_lines_are_parsed_and_typed() -> None:
    parser = parse("##wfe[output count=3]", "##wfe[output ok=true]", "##wfe[output name=x y]")
    assert parser.outputs == {"count": 3, "ok": True, "name": "x y"}


def test_value_after_the_first_equals_sign_is_verbatim() -> None:
    assert parse("##wfe[output a=b=c]").outputs == {"a": "b=c"}
    assert parse("##wfe[output  spaced name = v ]").outputs == {"spaced name": " v "}
    assert parse("##wfe[output x=a]b]").outputs == {"x": "a]b"}
    assert parse("##wfe[output empty=]").outputs == {"empty": ""}


@pytest.mark.parametrize(
    "line",
    [
        "  ##wfe[output a=1]",
        "##wfe[output a=1] ",
        "##wfe[output a=1",
        "##wfe[outputa=1]",
        "##wfe[output a]",
        "##WFE[output a=1]",
        "echo ##wfe[output a=1]",
    ],
)
def test_lines_that_do_not_count(line: str) -> None:
    assert parse(line).outputs == {}


def test_last_write_wins_across_batches() -> None:
    parser = OutputParser()
    parser.feed(["##wfe[output v=1]", "##wfe[output v=2]"])
    parser.feed(["noise", "##wfe[output v=3]"])
    parser.feed(["no markers here"])
    assert parser.outputs == {"v": 3}


def test_mask_lines_collect_masks_once() -> None:
    parser = parse("##wfe[mask s3cret]", "##wfe[mask two words]", "##wfe[mask s3cret]")
    assert parser.masks == ["s3cret", "two words"]
    assert parser.outputs == {}


def test_empty_mask_is_ignored() -> None:
    assert parse("##wfe[mask ]").masks == []


def test_redact_hides_longest_mask_first() -> None:
    lines = ["token abc and abcdef", "clean"]
    assert redact(lines, ["abc", "abcdef"]) == ["token *** and ***", "clean"]
    assert redact(lines, []) is lines


def test_holds_marker_on_bytes_and_ranges() -> None:
    data = b"# comment\nplain\n##wfe[output a=1]\n"
    assert holds_marker(data)
    assert not holds_marker(b"no hash at all")
    assert not holds_marker(b"# only a comment")
    assert not holds_marker(data, 0, 16)
    assert holds_marker(bytearray(data), 16)


def test_a_large_batch_without_markers_is_skipped_quickly() -> None:
    parser = OutputParser()
    parser.feed(["x" * 80] * 100_000 + ["##wfe[output last=1]"])
    assert parser.outputs == {"last": 1}
