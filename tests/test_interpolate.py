"""`((name))` is resolved in string values at load time, from four sources of variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wfe_yaml.errors import ConfigError, Mark
from wfe_yaml.interpolate import (
    collect_variables,
    interpolate,
    load_config_file,
    parse_assignment,
    parse_config_env,
)
from wfe_yaml.source import parse_file, parse_text

RESOURCES = Path(__file__).resolve().parent / "resources" / "interpolate"


def resolved(name: str, variables: dict[str, Any] | None = None) -> Any:
    source = parse_file(RESOURCES / name)
    if variables is None:
        variables = collect_variables([source.data.get("config") or {}])
    return interpolate(source, variables)


def failure(name: str, variables: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        resolved(name, variables)
    return caught.value


def reported(error: ConfigError) -> list[str]:
    """Each error as `name.yaml:line:col: error: message` and its hint, however paths print."""
    return [shown(e) for e in error.errors]


def shown(error: ConfigError) -> str:
    assert error.mark is not None
    where = f"{Path(error.mark.file).name}:{error.mark.line}:{error.mark.col}"
    return f"{where}: error: {error.message}" + (f"\n  hint: {error.hint}" if error.hint else "")


# --- typed and embedded values ----------------------------------------------------------


@pytest.fixture(scope="module")
def typed() -> dict[str, Any]:
    workflow = resolved("typed.yaml")["workflow"]
    assert isinstance(workflow, dict)
    return workflow


def test_whole_scalar_takes_the_variables_type(typed: dict[str, Any]) -> None:
    assert typed["threshold"] == 85
    assert typed["strict"] is True
    assert typed["platforms"] == ["linux", "mac"]
    assert typed["build"] == {"tag": "v1.2", "os": "linux"}


def test_spaces_inside_the_parentheses_leave_it_alone_for_bash(typed: dict[str, Any]) -> None:
    # WFE matches only `((name))`: bash tests like `(( VERBOSE ))` must stay untouched.
    assert typed["spaced"] == "(( coverage_threshold ))"


def test_dotted_names_look_into_mappings_and_index_lists(typed: dict[str, Any]) -> None:
    assert typed["tag"] == "v1.2"
    assert typed["first_platform"] == "mac"


def test_embedded_references_render_as_text(typed: dict[str, Any]) -> None:
    assert typed["title"] == (
        'coverage 85% strict=true on ["linux","mac"] with {"tag":"v1.2","os":"linux"}'
    )
    assert typed["image"] == "registry/app:v1.2"


def test_embedded_null_and_float_render_like_json() -> None:
    source = parse_text("a: ((n)) ((f)) ((s))\n", "t.yaml")
    assert interpolate(source, {"n": None, "f": 0.5, "s": "text"}) == {"a": "null 0.5 text"}


def test_inserted_values_are_data_and_cannot_inject_yaml() -> None:
    message = "evil: true\nname: injected"
    data = resolved("injection.yaml", {"message": message})
    assert data == {
        "workflow": {
            "id": "ci",
            "message": message,
            "script": f"echo {message}",
            "name": "build",
        }
    }


def test_inserted_mappings_are_copies() -> None:
    variables = {"build": {"tag": "v1"}}
    source = parse_text("a: ((build))\nb: ((build))\n", "t.yaml")
    data = interpolate(source, variables)
    data["a"]["tag"] = "changed"
    assert data["b"] == {"tag": "v1"}
    assert variables == {"build": {"tag": "v1"}}


def test_source_data_is_left_unchanged() -> None:
    source = parse_text("a: ((x))\n", "t.yaml")
    interpolate(source, {"x": 1})
    assert source.data == {"a": "((x))"}


def test_keys_are_not_interpolated() -> None:
    source = parse_text("((x)): value\n", "t.yaml")
    assert interpolate(source, {"x": "k"}) == {"((x))": "value"}


def test_top_level_config_and_underscore_keys_are_not_interpolated() -> None:
    data = resolved("templates.yaml", {"greeting": "hi"})
    assert data["config"] == {"greeting": "((not_interpolated_here))"}
    assert data["_templates"]["unused"] == "((only_used_by_nobody))"
    assert data["workflow"]["config"] == {"shell": "bash", "run": "echo hi"}


def test_empty_document_interpolates_to_none() -> None:
    assert interpolate(parse_text("", "t.yaml"), {"x": 1}) is None


# --- shell arithmetic and comments ------------------------------------------------------


def test_shell_arithmetic_and_yaml_comments_are_left_alone() -> None:
    data = resolved("shell.yaml", {"greeting": "hello"})
    step = data["workflow"]["steps"][0]
    assert step["config"]["run"] == (
        'echo $((count)) $(( count + 1 )) $(( ((count)) * 2 ))\necho "hello, world"\n'
    )
    assert data["workflow"]["id"] == "ci"


def test_a_value_that_is_only_shell_arithmetic_is_left_alone() -> None:
    source = parse_text("a: $((x))\nb: $(( x + 1 ))\n", "t.yaml")
    assert interpolate(source, {"x": 1}) == {"a": "$((x))", "b": "$(( x + 1 ))"}


def test_unbalanced_arithmetic_leaves_the_rest_of_the_string_alone() -> None:
    source = parse_text("a: echo $(( ((x)) \n", "t.yaml")
    assert interpolate(source, {}) == {"a": "echo $(( ((x))"}


# --- unresolved references --------------------------------------------------------------


def test_unresolved_variable_points_at_its_line_inside_a_script() -> None:
    error = failure(
        "unresolved.yaml", {"coverage_threshold": 85, "registry": "ghcr.io", "image_name": "app"}
    )
    assert reported(error) == [
        "unresolved.yaml:12:40: error: unresolved variable 'coverage_treshold'\n"
        "  hint: did you mean 'coverage_threshold'?"
    ]


def test_all_unresolved_variables_are_reported_at_once() -> None:
    error = failure("unresolved.yaml", {"coverage_threshold": 85, "registry": "ghcr.io"})
    assert reported(error) == [
        "unresolved.yaml:12:40: error: unresolved variable 'coverage_treshold'\n"
        "  hint: did you mean 'coverage_threshold'?",
        "unresolved.yaml:15:47: error: unresolved variable 'image_name'\n"
        "  hint: defined variables: coverage_threshold, registry",
    ]


def test_unresolved_with_no_variables_at_all() -> None:
    error = failure("no_config.yaml", {})
    assert reported(error) == [
        "no_config.yaml:2:7: error: unresolved variable 'name'\n"
        "  hint: no variables are defined: add them under config: or pass -c name=value"
    ]


def test_unresolved_nested_name_suggests_the_dotted_name() -> None:
    source = parse_text("a: ((build.tga))\n", "t.yaml")
    with pytest.raises(ConfigError) as caught:
        interpolate(source, {"build": {"tag": "v1"}})
    assert caught.value.hint == "did you mean 'build.tag'?"


def test_list_index_out_of_range_is_unresolved() -> None:
    source = parse_text("a: ((items.5))\n", "t.yaml")
    with pytest.raises(ConfigError) as caught:
        interpolate(source, {"items": [1, 2]})
    assert caught.value.message == "unresolved variable 'items.5'"


def test_repeated_unresolved_reference_points_at_each_occurrence() -> None:
    source = parse_text("a: ((x)) and ((x))\n", "t.yaml")
    with pytest.raises(ConfigError) as caught:
        interpolate(source, {"y": 1})
    assert [e.mark for e in caught.value.errors] == [Mark("t.yaml", 1, 4), Mark("t.yaml", 1, 14)]


# --- sources of variables ---------------------------------------------------------------


def test_later_sources_win_and_nested_mappings_merge_deeply() -> None:
    file_config = {"coverage_threshold": 85, "registry": "ghcr.io", "build": {"os": "linux"}}
    config_file = load_config_file(RESOURCES / "config_file.yaml")
    env = parse_config_env('{"registry": "docker.io", "build": {"tag": "v2"}}')
    cli = dict([parse_assignment("coverage_threshold=99")])
    assert collect_variables([file_config, config_file, env, cli]) == {
        "coverage_threshold": 99,
        "registry": "docker.io",
        "build": {"os": "mac", "tag": "v2"},
    }


def test_dotted_assignment_overrides_one_nested_value() -> None:
    cli = dict([parse_assignment("build.tag=v3")])
    variables = collect_variables([{"build": {"tag": "v1", "os": "linux"}}, cli])
    assert variables == {"build": {"tag": "v3", "os": "linux"}}


def test_collect_variables_does_not_change_its_sources() -> None:
    first = {"build": {"os": "linux"}}
    collect_variables([first, {"build": {"tag": "v1"}}])
    assert first == {"build": {"os": "linux"}}


def test_config_file_may_be_json() -> None:
    assert load_config_file(RESOURCES / "config.json") == {
        "coverage_threshold": 95,
        "build": {"tag": "v2"},
    }


def test_config_file_that_is_not_a_mapping_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_file(RESOURCES / "config_list.yaml")
    assert shown(caught.value) == (
        "config_list.yaml:1:1: error: config file must hold a mapping of names to values, "
        "got a list\n  hint: for example: coverage_threshold: 90"
    )


def test_missing_config_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config_file(RESOURCES / "nope.yaml")


def test_wfe_config_bad_json() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_env("{coverage: 1}")
    assert caught.value.message == (
        "WFE_CONFIG is not a JSON object: "
        "Expecting property name enclosed in double quotes at line 1 column 2"
    )


def test_wfe_config_that_is_not_an_object() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_env("[1, 2]")
    assert caught.value.message == "WFE_CONFIG is not a JSON object: got a list"


def test_wfe_config_nested_too_deeply() -> None:
    with pytest.raises(ConfigError, match="WFE_CONFIG"):
        parse_config_env('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("strict=true", ("strict", True)),
        ("strict=false", ("strict", False)),
        ("tag=null", ("tag", None)),
        ("threshold=85", ("threshold", 85)),
        ("ratio=0.5", ("ratio", 0.5)),
        ("name=release", ("name", "release")),
        ("name=True", ("name", "True")),
        ("name=yes", ("name", "yes")),
        ("name=", ("name", "")),
        ("query=a=b", ("query", "a=b")),
        ("build.tag=v1", ("build.tag", "v1")),
        ("padded= 5", ("padded", " 5")),
    ],
)
def test_parse_assignment_types_the_value(text: str, expected: tuple[str, Any]) -> None:
    assert parse_assignment(text) == expected


def test_parse_assignment_without_equals_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_assignment("x")
    assert caught.value.message == "expected key=value, got 'x'"


def test_parse_assignment_with_a_bad_name_is_an_error() -> None:
    with pytest.raises(ConfigError, match="invalid variable name 'a b'"):
        parse_assignment("a b=1")


def test_a_quoted_whole_reference_stays_text() -> None:
    source = parse_text(
        'a: ((n))\nb: "((n))"\nc: \'((n))\'\nd: &x "((n))"\ne: *x\nf: [((n)), "((n))"]\n', "t.yaml"
    )
    assert interpolate(source, {"n": 42}) == {
        "a": 42,
        "b": "42",
        "c": "42",
        "d": "42",
        "e": "42",
        "f": [42, "42"],
    }
