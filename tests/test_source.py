"""YAML files become plain data with positions; every bad input becomes a ConfigError."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from wfe_yaml.errors import ConfigError, Mark
from wfe_yaml.source import (
    MAX_DEPTH,
    SourceFile,
    load_with_includes,
    parse_file,
    parse_text,
)

RESOURCES = Path(__file__).resolve().parent / "resources" / "source"
INCLUDES = RESOURCES / "includes"


def parse(name: str) -> SourceFile:
    return parse_file(RESOURCES / name)


def failure(name: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(name)
    return caught.value


def messages(error: ConfigError) -> list[tuple[int | None, str]]:
    return [(e.mark.line if e.mark else None, e.message) for e in error.errors]


# --- anchors and merge keys -------------------------------------------------------------


def test_aliases_reuse_scalars_lists_and_mappings_whole() -> None:
    steps = parse("anchors.yaml").data["workflow"]["steps"]
    assert steps[0] == {
        "name": "lint",
        "type": "shell",
        "watch": ["src", "tests"],
        "config": {"shell": "bash", "timeout": "10m"},
    }
    assert steps[1]["config"] == {"shell": "bash", "timeout": "10m"}


def test_aliased_values_are_independent_copies() -> None:
    steps = parse("anchors.yaml").data["workflow"]["steps"]
    steps[0]["config"]["shell"] = "zsh"
    assert steps[1]["config"]["shell"] == "bash"


def test_positions_of_an_aliased_value_point_into_the_anchor() -> None:
    positions = parse("anchors.yaml").positions
    assert positions.value(("workflow", "steps", 0, "config", "timeout")).line == 6
    assert positions.key(("workflow", "steps", 0, "config")).line == 13


def test_merge_key_explicit_keys_override_merged_ones() -> None:
    config = parse("merge.yaml").data["steps"][0]["config"]
    assert config == {
        "shell": "bash",
        "timeout": "30s",
        "env": {"CI": "true", "LANG": "C"},
        "run": "make",
    }


def test_merge_is_shallow_so_a_nested_env_replaces_the_template_env() -> None:
    config = parse("merge.yaml").data["steps"][1]["config"]
    assert config["env"] == {"DEBUG": "1"}
    assert config["shell"] == "bash"


def test_merge_list_earlier_mappings_win_and_explicit_keys_win_over_all() -> None:
    config = parse("merge.yaml").data["steps"][2]["config"]
    assert config == {"retries": 1, "extra": "only-second", "label": "explicit"}


def test_merge_of_an_inline_mapping() -> None:
    assert parse("merge.yaml").data["steps"][3]["config"] == {"a": 1, "b": 3}


def test_merged_values_keep_the_position_where_they_were_written() -> None:
    positions = parse("merge.yaml").positions
    assert positions.value(("steps", 0, "config", "shell")) == Mark(
        str(RESOURCES / "merge.yaml"), 3, 12
    )
    assert positions.key(("steps", 0, "config", "env", "LANG")).line == 7
    assert positions.value(("steps", 0, "config", "timeout")).line == 14
    assert positions.value(("steps", 2, "config", "extra")).line == 9
    assert positions.value(("steps", 3, "config", "a")) == Mark(
        str(RESOURCES / "merge.yaml"), 26, 22
    )


def test_merge_value_that_is_not_a_mapping_is_an_error() -> None:
    error = failure("merge_not_mapping.yaml")
    assert messages(error) == [
        (4, "a merge key '<<' needs a mapping or a list of mappings, got a string")
    ]


def test_alias_to_an_unknown_anchor_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text("a: 1\nb: *missing\n", "t.yaml")
    assert (
        caught.value.message
        == "unknown alias '*missing': no anchor '&missing' is defined before it"
    )
    assert caught.value.mark == Mark("t.yaml", 2, 4)


# --- keys -------------------------------------------------------------------------------


def test_duplicate_key_names_both_lines() -> None:
    error = failure("duplicate_key.yaml")
    assert error.message == "duplicate key 'name' (first defined at line 4)"
    assert error.mark == Mark(str(RESOURCES / "duplicate_key.yaml"), 6, 7)


def test_every_duplicate_key_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text("a: 1\nb: {x: 1, x: 2}\na: 3\n", "t.yaml")
    assert messages(caught.value) == [
        (2, "duplicate key 'x' (first defined at line 2)"),
        (3, "duplicate key 'a' (first defined at line 1)"),
    ]


def test_non_scalar_key_is_an_error() -> None:
    error = failure("non_scalar_key.yaml")
    assert messages(error) == [(3, "a mapping key must be a plain value, not a list")]


def test_keys_become_strings_as_written() -> None:
    data = parse_text("1: a\ntrue: b\n1.50: c\n~: d\n", "t.yaml").data
    assert data == {"1": "a", "true": "b", "1.50": "c", "~": "d"}


def test_underscore_keys_are_kept() -> None:
    assert "_templates" in parse("anchors.yaml").data


# --- scalars ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scalars() -> dict[str, object]:
    data = parse("scalars.yaml").data
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("key", ["yes_", "no_", "on_", "off_", "y_", "n_"])
def test_yaml_1_1_booleans_stay_strings(scalars: dict[str, object], key: str) -> None:
    assert scalars[key] == key.rstrip("_")


def test_only_true_and_false_are_booleans(scalars: dict[str, object]) -> None:
    assert scalars["true_"] is True
    assert scalars["True_"] is True
    assert scalars["FALSE_"] is False


def test_quoted_booleans_and_numbers_are_strings(scalars: dict[str, object]) -> None:
    assert scalars["quoted_true"] == "true"
    assert scalars["single_quoted_false"] == "false"
    assert scalars["quoted_number"] == "42"
    assert scalars["block"] == "42\n"


@pytest.mark.parametrize("key", ["null_", "Null_", "NULL_", "tilde", "empty"])
def test_null_forms(scalars: dict[str, object], key: str) -> None:
    assert key in scalars
    assert scalars[key] is None


def test_numbers(scalars: dict[str, object]) -> None:
    assert [scalars[key] for key in ("int", "negative", "leading_zero", "hex", "octal")] == [
        42,
        -7,
        7,
        31,
        15,
    ]
    assert scalars["float"] == 1.5
    assert scalars["exponent"] == 1000.0
    assert scalars["infinity"] == math.inf
    assert scalars["negative_infinity"] == -math.inf
    assert math.isnan(scalars["not_a_number"])  # type: ignore[arg-type]


def test_things_that_only_look_like_numbers_or_dates_stay_strings(
    scalars: dict[str, object],
) -> None:
    assert scalars["timestamp"] == "2024-01-15"
    assert scalars["underscored"] == "1_000"
    assert scalars["version_like"] == "1.2.3"


def test_explicit_tags_are_respected(scalars: dict[str, object]) -> None:
    assert scalars["tagged_str"] == "42"
    assert scalars["tagged_int"] == 42
    assert scalars["tagged_float"] == 3.0
    assert scalars["tagged_bool"] is True
    assert scalars["tagged_null"] is None
    assert scalars["non_specific"] == "42"


def test_unknown_tag_is_an_error_at_its_position() -> None:
    error = failure("unknown_tag.yaml")
    assert error.message == "unknown tag '!include'"
    assert (error.mark.line, error.mark.col) == (5, 15)  # type: ignore[union-attr]


def test_value_that_does_not_fit_its_tag_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text("retries: !!int three\n", "t.yaml")
    assert caught.value.message == "'three' does not fit its tag !!int"
    assert caught.value.mark == Mark("t.yaml", 1, 10)


# --- includes ---------------------------------------------------------------------------


def test_includes_load_depth_first_relative_to_the_including_file() -> None:
    sources = load_with_includes(INCLUDES / "nested" / "main.yaml")
    assert [source.path for source in sources] == [
        (INCLUDES / "nested" / path).resolve()
        for path in ("main.yaml", "ci/a.yaml", "ci/lib/b.yaml", "c.yaml")
    ]
    assert sources[2].data == {"workflows": [{"id": "b"}]}


def test_included_files_are_named_relative_to_the_main_file_as_given() -> None:
    sources = load_with_includes(INCLUDES / "nested" / "main.yaml")
    assert sources[2].positions.file == str(INCLUDES / "nested" / "ci" / "lib" / "b.yaml")


def test_diamond_include_loads_the_shared_file_once() -> None:
    sources = load_with_includes(INCLUDES / "diamond" / "main.yaml")
    assert [source.path.name for source in sources] == [
        "main.yaml",
        "left.yaml",
        "shared.yaml",
        "right.yaml",
    ]


def test_include_cycle_names_the_chain_at_the_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        load_with_includes(INCLUDES / "cycle" / "main.yaml")
    assert caught.value.message == "include cycle: main.yaml -> a.yaml -> main.yaml"
    assert caught.value.mark == Mark(str(INCLUDES / "cycle" / "a.yaml"), 2, 11)


def test_missing_includes_are_all_reported_at_their_entries() -> None:
    with pytest.raises(ConfigError) as caught:
        load_with_includes(INCLUDES / "missing" / "main.yaml")
    ci = (INCLUDES / "missing" / "ci").resolve()
    assert [(e.mark, e.message) for e in caught.value.errors] == [
        (
            Mark(str(INCLUDES / "missing" / "ci" / "present.yaml"), 1, 10),
            f"included file not found: gone.yaml (resolved to {ci / 'gone.yaml'})",
        ),
        (
            Mark(str(INCLUDES / "missing" / "main.yaml"), 4, 5),
            f"included file not found: ci/common.yaml (resolved to {ci / 'common.yaml'})",
        ),
    ]


def test_include_of_a_directory_is_reported_at_the_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        load_with_includes(INCLUDES / "directory" / "main.yaml")
    assert caught.value.message == f"{INCLUDES / 'nested' / 'ci'} is a directory, not a file"
    assert caught.value.mark == Mark(str(INCLUDES / "directory" / "main.yaml"), 1, 11)


def test_include_that_is_a_mapping_is_an_error(tmp_path: Path) -> None:
    main = tmp_path / "main.yaml"
    main.write_text("workflow: {id: ci}\ninclude: {file: a.yaml}\n")
    with pytest.raises(ConfigError) as caught:
        load_with_includes(main)
    assert messages(caught.value) == [
        (2, "include expects a file path or a list of file paths, got a mapping")
    ]


def test_include_value_of_the_wrong_type(tmp_path: Path) -> None:
    main = tmp_path / "main.yaml"
    main.write_text("include:\n  - 42\n")
    with pytest.raises(ConfigError) as caught:
        load_with_includes(main)
    assert messages(caught.value) == [(2, "an include entry must be a file path, got a number")]


# --- hostile and broken input -----------------------------------------------------------


def test_empty_file_has_no_data() -> None:
    assert parse("empty.yaml").data is None
    assert parse("comments_only.yaml").data is None


def test_directory_is_an_error() -> None:
    error = failure("includes")
    assert error.message == f"{RESOURCES / 'includes'} is a directory, not a file"


def test_missing_file_is_an_error() -> None:
    error = failure("no_such_file.yaml")
    assert error.message == f"file not found: {RESOURCES / 'no_such_file.yaml'}"
    assert error.mark is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("a: 1\n")
    secret.chmod(0)
    with pytest.raises(ConfigError, match="permission denied"):
        parse_file(secret)


def test_non_utf8_file_names_the_byte_and_line() -> None:
    error = failure("not_utf8.yaml")
    assert error.message == "file is not valid UTF-8 text (byte 0xff at line 3)"
    assert (error.mark.line, error.mark.col) == (3, 12)  # type: ignore[union-attr]


def test_binary_garbage_is_a_config_error() -> None:
    assert "not valid UTF-8" in failure("garbage.bin").message


def test_nul_byte_is_an_error_at_its_position() -> None:
    error = failure("nul.yaml")
    assert error.message == "file contains a NUL byte"
    assert (error.mark.line, error.mark.col) == (2, 8)  # type: ignore[union-attr]


def test_yaml_syntax_error_points_at_the_problem() -> None:
    error = failure("syntax_error.yaml")
    assert error.message == "YAML syntax error: did not find expected ',' or ']'"
    assert error.mark is not None and error.mark.line == 4
    assert error.hint == "while parsing a flow sequence (line 3)"


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    error = failure("deep.yaml")
    assert error.message == f"nesting deeper than {MAX_DEPTH} levels"
    assert (error.mark.line, error.mark.col) == (1, MAX_DEPTH + 1)  # type: ignore[union-attr]


def test_deep_nesting_through_an_alias_is_refused() -> None:
    text = "a: &a " + "[" * 150 + "]" * 150 + "\nb: " + "[" * 100 + "*a" + "]" * 100 + "\n"
    with pytest.raises(ConfigError, match="nesting deeper than 200 levels"):
        parse_text(text, "t.yaml")


def test_billion_laughs_is_refused() -> None:
    error = failure("billion_laughs.yaml")
    assert error.message == "document expands to too many nodes (alias bomb?)"


def test_multiple_documents_are_an_error_at_the_second() -> None:
    error = failure("two_documents.yaml")
    assert messages(error) == [(3, "a second YAML document starts here")]


def test_alias_inside_its_own_anchor_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text("a: &a [1, *a]\n", "t.yaml")
    assert caught.value.message == "alias '*a' is inside the node it refers to"


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    file = tmp_path / "bom.yaml"
    file.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert parse_file(file).data == {"a": 1}


# --- positions --------------------------------------------------------------------------


def test_positions_of_values_and_keys_and_their_fallback() -> None:
    source = parse_text("workflow:\n  id: ci\n  steps:\n    - name: build\n", "t.yaml")
    assert source.positions.value(("workflow", "id")) == Mark("t.yaml", 2, 7)
    assert source.positions.key(("workflow", "id")) == Mark("t.yaml", 2, 3)
    assert source.positions.value(("workflow", "steps", 0, "name")) == Mark("t.yaml", 4, 13)
    assert source.positions.value(("workflow", "steps", 0, "type")) == Mark("t.yaml", 4, 7)
    assert source.positions.key(("workflow", "steps", 0)) == Mark("t.yaml", 4, 7)


def test_parse_of_a_1000_step_file_keeps_anchor_positions(tmp_path: Path) -> None:
    lines = ["_templates:", "  sh: &sh {shell: bash, timeout: 10m}", "workflow:", "  steps:"]
    for index in range(1000):
        lines += [
            f"    - name: step-{index}",
            "      type: shell",
            "      config:",
            "        <<: *sh",
            f"        run: echo {index}",
            "      needs: []",
        ]
    file = tmp_path / "big.yaml"
    file.write_text("\n".join(lines) + "\n")
    source = parse_file(file)
    assert len(source.data["workflow"]["steps"]) == 1000
    assert source.positions.value(("workflow", "steps", 999, "config", "shell")).line == 2
