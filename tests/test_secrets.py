"""Secret sources and the masker."""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path

import pytest

from wfe_yaml.errors import ConfigError
from wfe_yaml.secrets import (
    Masker,
    load_secrets,
    parse_dotenv,
    references,
    resolve_references,
)

TOKEN = "tok_9f8e7d6c5b4a"


def test_masker_replaces_value_and_its_encoded_forms() -> None:
    masker = Masker([TOKEN + " /&="])
    value = TOKEN + " /&="
    lines = [
        f"token={value}",
        base64.b64encode(value.encode()).decode(),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
    ]
    assert masker.lines(lines) == ["token=***", "***", "***", "***"]


def test_masker_masks_each_line_of_a_multiline_secret() -> None:
    key = "-----BEGIN KEY-----\nMIIEabcdefgh\n-----END KEY-----"
    masker = Masker([key])
    assert masker.lines(["MIIEabcdefgh", "-----END KEY-----"]) == ["***", "***"]


def test_masker_prefers_the_longest_overlapping_value() -> None:
    masker = Masker(["abcd", "abcdefgh"])
    assert masker.text("x abcdefgh y") == "x *** y"


def test_short_values_are_not_masked() -> None:
    masker = Masker(["ab"])
    assert not masker
    assert masker.text("ab cab") == "ab cab"


def test_masker_masks_nested_values() -> None:
    masker = Masker([TOKEN])
    value = {"a": [f"x{TOKEN}", 3, None], "b": {"c": TOKEN}}
    assert masker.value(value) == {"a": ["x***", 3, None], "b": {"c": "***"}}


def test_a_mask_added_later_applies_from_then_on() -> None:
    masker = Masker()
    assert masker.text(TOKEN) == TOKEN
    masker.add(TOKEN)
    assert masker.text(TOKEN) == "***"


def test_secrets_come_from_flag_then_file_then_environment(tmp_path: Path) -> None:
    dotenv = tmp_path / "secrets.env"
    dotenv.write_text('# comment\nexport B=\'from file\'\nC="quoted \\"x\\""\n')
    values = load_secrets(
        ["A", "B", "C"],
        environ={"A": "env-a", "B": "env-b", "C": "env-c"},
        assignments=["A=flag=a"],
        files=[dotenv],
    )
    assert values == {"A": "flag=a", "B": "from file", "C": 'quoted "x"'}


def test_missing_declared_secret_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_secrets(["DEPLOY_TOKEN", "OTHER"], environ={"OTHER": "x"})
    assert caught.value.message == "declared secret not set: DEPLOY_TOKEN"


def test_bad_dotenv_line_is_reported_without_its_content(tmp_path: Path) -> None:
    dotenv = tmp_path / "s.env"
    dotenv.write_text("GOOD=1\nthis-is-the-secret-itself\n")
    with pytest.raises(ConfigError) as caught:
        parse_dotenv(dotenv)
    assert caught.value.mark is not None
    assert caught.value.mark.line == 2
    assert "this-is-the-secret-itself" not in caught.value.format()


def test_secret_references_resolve_in_nested_config() -> None:
    config = {"env": {"TOKEN": "secret:API"}, "args": ["secret:API", "secret: API"]}
    assert references(config) == ["API", "API"]
    assert resolve_references(config, {"API": TOKEN}) == {
        "env": {"TOKEN": TOKEN},
        "args": [TOKEN, "secret: API"],
    }
