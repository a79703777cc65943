"""Typed inputs and outputs: parsing type strings and checking values against them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from wfe_yaml.types import (
    ParsedType,
    TypeSpec,
    TypeString,
    check_inputs,
    check_value,
    parse_schema,
    parse_type,
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("string", "string"),
        ("number", "number"),
        ("integer", "integer"),
        ("bool", "bool"),
        ("any", "any"),
        ("string?", "string?"),
        ("list<string>", "list<string>"),
        ("map<integer>", "map<integer>"),
        ("list<map<integer>>", "list<map<integer>>"),
        ("list<string>?", "list<string>?"),
        ("list<string?>", "list<string?>"),
        ("  list< map< bool > >? ", "list<map<bool>>?"),
    ],
)
def test_every_type_form_parses_to_its_canonical_text(text: str, canonical: str) -> None:
    assert str(parse_type(text)) == canonical


def test_parsed_type_has_kind_item_and_optional() -> None:
    spec = parse_type("list<integer?>?")
    assert spec == TypeSpec("list", TypeSpec("integer", optional=True), optional=True)
    assert spec.required == TypeSpec("list", TypeSpec("integer", optional=True))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "strng",
            "unknown type 'strng': use string, number, integer, bool, any, T?, list<T>, "
            "map<T>; did you mean 'string'?",
        ),
        ("list<strng>", "unknown type 'strng' in 'list<strng>'"),
        ("lst<string>", "did you mean 'list'?"),
        ("", "empty type"),
        ("list<>", "empty type in 'list<>'"),
        ("list<string", "malformed type 'list<string'"),
        ("string??", "optional twice"),
        ("map<string, integer>", "unknown type 'string, integer'"),
    ],
)
def test_invalid_type_strings_are_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_type(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("value", "type_text"),
    [
        ("main", "string"),
        (5, "integer"),
        (5, "number"),
        (2.5, "number"),
        (True, "bool"),
        (None, "string?"),
        (None, "any"),
        ({"a": [1]}, "any"),
        ([], "list<string>"),
        (["a", None], "list<string?>"),
        ({"a": {"b": 1}}, "map<map<integer>>"),
        ([{"x": 1}, {}], "list<map<integer>>"),
        (None, "list<string>?"),
    ],
)
def test_values_that_fit(value: Any, type_text: str) -> None:
    assert check_value(value, parse_type(type_text), "inputs.x") is None


@pytest.mark.parametrize(
    ("value", "type_text", "message"),
    [
        (True, "integer", "inputs.x: expected integer, got bool true"),
        (True, "number", "inputs.x: expected number, got bool true"),
        (2.0, "integer", "inputs.x: expected integer, got number 2.0"),
        (1, "bool", "inputs.x: expected bool, got integer 1"),
        (5, "string", "inputs.x: expected string, got integer 5"),
        ("5", "number", "inputs.x: expected number, got string '5'"),
        (None, "string", "inputs.x: expected string, got null"),
        ("a", "list<string>", "inputs.x: expected list<string>, got string 'a'"),
        (["a", 5], "list<string>", "inputs.x[1]: expected string, got integer 5"),
        ({"a": "b"}, "map<integer>", "inputs.x.a: expected integer, got string 'b'"),
        ({"a b": "c"}, "map<integer>", 'inputs.x["a b"]: expected integer'),
        ({1: 2}, "map<integer>", "inputs.x: map keys must be strings, got integer 1"),
        ([{"k": [1, "2"]}], "list<map<list<integer>>>", "inputs.x[0].k[1]: expected integer"),
        ([None], "list<string>?", "inputs.x[0]: expected string, got null"),
    ],
)
def test_mismatches_name_the_path_and_the_expected_type(
    value: Any, type_text: str, message: str
) -> None:
    problem = check_value(value, parse_type(type_text), "inputs.x")
    assert problem is not None
    assert problem.startswith(message)


def test_long_values_are_shortened_in_messages() -> None:
    problem = check_value("x" * 500, parse_type("integer"), "inputs.x")
    assert problem is not None and len(problem) < 100


def test_check_inputs_reports_missing_required_and_wrong_types() -> None:
    schema = parse_schema({"branch": "string", "tags": "list<string>", "note": "string?"})
    problems = check_inputs({"tags": ["a", 5], "extra": 1}, schema)
    assert problems == [
        "missing required input 'branch' (string)",
        "inputs.tags[1]: expected string, got integer 5",
    ]


def test_check_inputs_allows_missing_optionals_and_names_the_kind() -> None:
    assert check_inputs({}, parse_schema({"note": "string?"})) == []
    assert check_inputs({}, {"coverage": parse_type("number")}, kind="outputs") == [
        "missing required output 'coverage' (number)"
    ]


def test_check_inputs_accepts_type_strings_too() -> None:
    assert check_inputs({"n": "x"}, {"n": "integer"}) == [
        "inputs.n: expected integer, got string 'x'"
    ]


class _Workflow(BaseModel):
    inputs: dict[str, TypeString] = {}
    outputs: dict[str, ParsedType] = {}


def test_type_string_validates_and_normalizes_in_models() -> None:
    workflow = _Workflow.model_validate(
        {"inputs": {"branch": "string?", "tags": "list< string >"}, "outputs": {"n": "integer"}}
    )
    assert workflow.inputs == {"branch": "string?", "tags": "list<string>"}
    assert workflow.outputs == {"n": TypeSpec("integer")}
    assert workflow.model_dump()["outputs"] == {"n": "integer"}


@pytest.mark.parametrize("field", ["inputs", "outputs"])
def test_type_string_errors_carry_the_parse_message_and_location(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Workflow.model_validate({field: {"branch": "strng"}})
    (error,) = caught.value.errors()
    assert error["loc"] == (field, "branch")
    assert error["msg"].startswith("unknown type 'strng': use string")
    assert "did you mean 'string'?" in error["msg"]


def test_a_type_must_be_a_string() -> None:
    with pytest.raises(ValidationError) as caught:
        _Workflow.model_validate({"inputs": {"n": 5}})
    assert "a type is a string like" in caught.value.errors()[0]["msg"]
