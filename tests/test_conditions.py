"""`when:` conditions: parsing with YAML-path error locations, load-time checks, evaluation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from wfe_yaml.conditions import (
    ABSENT,
    OPERATORS,
    Combinator,
    Comparison,
    Condition,
    ConditionError,
    ExpressionCondition,
    describe,
    evaluate,
    parse_condition,
    resolve,
    same_value,
    static_problems,
)
from wfe_yaml.types import parse_type


class _Step(BaseModel):
    when: Condition | None = None


def _errors(when: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        _Step.model_validate({"when": when})
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


def _holds(when: Any, data: dict[str, Any]) -> bool:
    return evaluate(parse_condition(when), data)


# -- parsing -----------------------------------------------------------------------------------


def test_a_mapping_with_field_is_a_comparison() -> None:
    cond = parse_condition({"field": ".inputs.count", "gt": 5})
    assert isinstance(cond, Comparison)
    assert (cond.field, cond.operator, cond.value) == (".inputs.count", "gt", 5)


def test_equals_null_is_a_real_operator() -> None:
    cond = parse_condition({"field": ".x", "equals": None})
    assert isinstance(cond, Comparison)
    assert (cond.operator, cond.value) == ("equals", None)


def test_a_mapping_without_field_is_a_combinator() -> None:
    cond = parse_condition({"not": {"field": ".x", "is_null": True}})
    assert isinstance(cond, Combinator)
    assert cond.key == "not"
    assert isinstance(cond.children[0], Comparison)


def test_an_expression_string_is_an_expression_condition() -> None:
    cond = parse_condition(" ${{ inputs.deploy }} ")
    assert isinstance(cond, ExpressionCondition)
    assert cond.expression == "inputs.deploy"


def test_conditions_dump_back_to_their_yaml_shape() -> None:
    when = {"all": [{"field": ".a", "equals": None}, "${{ x }}", {"not": {"any": []}}]}
    step = _Step.model_validate({"when": when})
    assert step.model_dump()["when"] == when
    assert _Step.model_validate_json(step.model_dump_json()) == step


@pytest.mark.parametrize(
    ("when", "loc", "message"),
    [
        ({"field": ".x", "gt": "1.2"}, ("when", "gt"), "gt needs a number, got string '1.2'"),
        ({"field": ".x", "lte": True}, ("when", "lte"), "lte needs a number, got bool true"),
        (
            {"field": ".x", "is_null": False},
            ("when", "is_null"),
            "is_null: false is not an operator; use is_not_null: true",
        ),
        (
            {"field": ".x", "is_not_null": "yes"},
            ("when", "is_not_null"),
            "is_not_null takes only `true`, got string 'yes'",
        ),
        (
            {"field": ".x"},
            ("when",),
            "comparison on '.x' needs an operator (equals, not_equals, gt, gte, lt, lte, "
            "contains, is_null, is_not_null)",
        ),
        (
            {"field": ".x", "equals": 1, "gt": 2},
            ("when", "gt"),
            "comparison on '.x' has 2 operators (equals, gt): use exactly one",
        ),
        (
            {"field": ".x", "equal": 1},
            ("when", "equal"),
            "unknown key 'equal' in condition; did you mean 'equals'?",
        ),
        (
            {"feild": ".x", "equals": 1},
            ("when", "feild"),
            "unknown key 'feild' in condition; did you mean 'field'?",
        ),
        (
            {"equals": 1},
            ("when",),
            "a comparison needs `field:`, the data path it reads (like .inputs.deploy)",
        ),
        ({}, ("when",), "a condition needs exactly one of all, any, none, one_of, not"),
        (
            {"all": [], "any": []},
            ("when", "any"),
            "a condition needs exactly one of all, any, none, one_of, not, but has 2 (all, any)",
        ),
        ({"al": []}, ("when", "al"), "unknown key 'al' in condition; did you mean 'all'?"),
        ({"not": None}, ("when", "not"), "not needs a condition, got null"),
        ("deploy", ("when",), "a string `when:` must be an expression like ${{ inputs.deploy }}"),
        ([1], ("when",), "a condition is a mapping"),
    ],
)
def test_structural_errors_point_at_the_yaml_path(
    when: Any, loc: tuple[Any, ...], message: str
) -> None:
    errors = _errors(when)
    assert len(errors) == 1, errors
    assert errors[0][0] == loc
    assert errors[0][1].startswith(message)


def test_nested_error_locations_follow_the_yaml_path() -> None:
    when = {
        "all": [
            {"field": ".a", "equals": 1},
            {"any": [{"field": ".b", "lt": "z"}]},
            {"not": {"field": ".c", "equal": 2}},
        ]
    }
    assert _errors(when) == [
        (("when", "all", 1, "any", 0, "lt"), "lt needs a number, got string 'z'"),
        (
            ("when", "all", 2, "not", "equal"),
            "unknown key 'equal' in condition; did you mean 'equals'?",
        ),
    ]


def test_mixing_comparison_and_combinator_keys_is_an_error() -> None:
    (error,) = _errors({"field": ".x", "equals": 1, "all": []})
    assert error[0] == ("when", "all")
    assert "cannot mix comparison and combinator keys" in error[1]


# -- load-time checks --------------------------------------------------------------------------

_INPUTS = {
    "branch": parse_type("string"),
    "count": parse_type("integer"),
    "note": parse_type("string?"),
    "tags": parse_type("list<string>"),
    "blob": parse_type("any"),
    "ratio": parse_type("number?"),
}
_OUTPUTS = {"coverage": parse_type("number")}


def _problems(when: Any, step_outputs: set[str] | None = None) -> list[tuple[Any, str, bool]]:
    found = static_problems(parse_condition(when), _INPUTS, _OUTPUTS, step_outputs or set())
    return [(problem.loc, problem.message, problem.is_warning) for problem in found]


def test_declared_inputs_and_outputs_pass() -> None:
    when = {
        "all": [
            {"field": ".inputs.count", "gt": 1},
            {"field": ".outputs.coverage", "gte": 80},
            {"field": ".outputs.version", "equals": "1"},
            {"field": "inputs.tags", "contains": "x"},
            {"field": ".note", "is_null": True},
            {"field": ".blob", "lt": 3},
            {"field": ".ratio", "lt": 3},
        ]
    }
    assert _problems(when, {"version"}) == []


def test_undeclared_input_is_an_error_with_did_you_mean() -> None:
    (problem,) = _problems({"all": [{"field": ".inputs.brnch", "equals": "main"}]})
    loc, message, is_warning = problem
    assert loc == ("all", 0, "field")
    assert message.startswith("condition reads undeclared input 'brnch'; declared inputs: branch,")
    assert message.endswith("did you mean 'branch'?")
    assert not is_warning


def test_undeclared_output_is_only_a_warning() -> None:
    (problem,) = _problems({"field": ".outputs.coverag", "gt": 1}, {"version"})
    assert problem[0] == ("field",)
    assert "output 'coverag'" in problem[1] and "did you mean 'coverage'?" in problem[1]
    assert problem[2] is True


def test_schema_less_workflows_are_not_checked() -> None:
    cond = parse_condition({"field": ".inputs.anything", "gt": 1})
    assert static_problems(cond, None, None, set()) == []
    outputs_only = parse_condition({"field": ".outputs.anything", "gt": 1})
    assert static_problems(outputs_only, None, None, set()) == []


@pytest.mark.parametrize(
    ("when", "loc", "message"),
    [
        (
            {"field": ".inputs.branch", "gt": 1},
            ("gt",),
            "gt needs a number, but input 'branch' is string",
        ),
        (
            {"field": ".inputs.tags", "lte": 1},
            ("lte",),
            "lte needs a number, but input 'tags' is list<string>",
        ),
        (
            {"field": ".count", "contains": 1},
            ("contains",),
            "contains needs a string or a list, but input 'count' is integer",
        ),
        (
            {"field": ".inputs.branch", "is_null": True},
            ("is_null",),
            "is_null needs an optional type (like string?) or any, but input 'branch' is string",
        ),
        (
            {"field": ".outputs.coverage", "is_not_null": True},
            ("is_not_null",),
            "is_not_null "
            "needs an optional type (like string?) or any, but output 'coverage' is number",
        ),
        (
            {"field": ".inputs.tags.0", "gt": 1},
            ("gt",),
            "gt needs a number, but input 'tags.0' is string",
        ),
    ],
)
def test_operator_type_mismatches_are_errors(when: Any, loc: tuple[Any, ...], message: str) -> None:
    assert _problems(when) == [(loc, message, False)]


def test_equals_fits_every_type_and_type_strings_are_accepted() -> None:
    cond = parse_condition({"field": ".inputs.branch", "equals": 5})
    assert static_problems(cond, {"branch": "string"}, {}, set()) == []


def test_expression_conditions_are_syntax_checked_at_load() -> None:
    (problem,) = static_problems(parse_condition({"not": "${{ inputs. }}"}), None, None, set())
    assert problem[0] == ("not",)
    assert "syntax error" in problem[1]
    assert not problem[2]


# -- evaluation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equals", 5, True),
        ("equals", 6, False),
        ("not_equals", 6, True),
        ("not_equals", 5, False),
        ("gt", 4, True),
        ("gt", 5, False),
        ("gte", 5, True),
        ("gte", 5.5, False),
        ("lt", 6, True),
        ("lt", 5, False),
        ("lte", 5, True),
        ("lte", 4.9, False),
        ("is_null", True, False),
        ("is_not_null", True, True),
    ],
)
def test_every_operator_on_a_number(operator: str, value: Any, expected: bool) -> None:
    assert _holds({"field": ".n", operator: value}, {"n": 5}) is expected


@pytest.mark.parametrize("operator", OPERATORS)
def test_absent_fields_are_false_except_not_equals_and_is_null(operator: str) -> None:
    value = True if operator in ("is_null", "is_not_null") else 1
    expected = operator in ("not_equals", "is_null")
    assert _holds({"field": ".inputs.missing", operator: value}, {"other": 1}) is expected


def test_null_values_are_present() -> None:
    assert _holds({"field": ".x", "is_null": True}, {"x": None})
    assert _holds({"field": ".x", "equals": None}, {"x": None})
    assert not _holds({"field": ".x", "is_not_null": True}, {"x": None})


def test_inputs_prefix_falls_back_to_flat_data() -> None:
    assert resolve(".inputs.branch", {"branch": "main"}) == "main"
    assert resolve("outputs.coverage", {"coverage": 90}) == 90
    assert resolve(".branch", {"branch": "main"}) == "main"


def test_inputs_prefix_reads_a_real_inputs_key_when_there_is_one() -> None:
    data = {"inputs": {"branch": "dev"}, "branch": "main"}
    assert resolve(".inputs.branch", data) == "dev"
    assert resolve(".inputs.missing", data) is ABSENT


def test_paths_index_lists_and_miss_cleanly() -> None:
    data = {"items": [{"name": "a"}, {"name": "b"}], "s": "text"}
    assert resolve(".items.1.name", data) == "b"
    assert resolve(".items.2.name", data) is ABSENT
    assert resolve(".items.x", data) is ABSENT
    assert resolve(".s.0", data) is ABSENT
    assert resolve(".", data) == data


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        ("1", 1, False),
        (None, None, True),
        ([1, {"a": 2.0}], [1.0, {"a": 2}], True),
        ([1, 2], [2, 1], False),
        ({"a": True}, {"a": 1}, False),
        ({"a": 1}, {"a": 1, "b": 2}, False),
    ],
)
def test_equality_rules(left: Any, right: Any, expected: bool) -> None:
    assert same_value(left, right) is expected
    assert _holds({"field": ".x", "equals": right}, {"x": left}) is expected


def test_gt_on_a_string_raises() -> None:
    with pytest.raises(
        ConditionError, match=r"gt needs numbers, but '.version' is the string '1.2'"
    ):
        _holds({"field": ".version", "gt": 1}, {"version": "1.2"})


def test_gt_on_a_bool_raises() -> None:
    with pytest.raises(ConditionError, match="is the bool true"):
        _holds({"field": ".x", "lt": 1}, {"x": True})


def test_contains_on_strings_and_lists() -> None:
    assert _holds({"field": ".s", "contains": "ell"}, {"s": "hello"})
    assert not _holds({"field": ".s", "contains": "xyz"}, {"s": "hello"})
    assert _holds({"field": ".l", "contains": 2}, {"l": [1, 2.0]})
    assert _holds({"field": ".l", "contains": {"a": 1}}, {"l": [{"a": 1}]})
    assert not _holds({"field": ".l", "contains": True}, {"l": [1]})


@pytest.mark.parametrize(
    ("data", "needle", "message"),
    [
        ({"x": 5}, 5, "contains needs a string or a list, but '.x' is the integer 5"),
        ({"x": {"a": 1}}, "a", "contains needs a string or a list, but '.x' is the map"),
        ({"x": "abc"}, 1, "contains on the string '.x' needs a string, got integer 1"),
    ],
)
def test_contains_on_other_values_raises(data: dict[str, Any], needle: Any, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        _holds({"field": ".x", "contains": needle}, data)
    assert str(caught.value).startswith(message)


_TRUE = {"field": ".t", "equals": True}
_FALSE = {"field": ".t", "equals": False}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"all": [_TRUE, _TRUE]}, True),
        ({"all": [_TRUE, _FALSE]}, False),
        ({"all": []}, True),
        ({"any": [_FALSE, _TRUE]}, True),
        ({"any": [_FALSE]}, False),
        ({"any": []}, False),
        ({"none": [_FALSE, _FALSE]}, True),
        ({"none": [_FALSE, _TRUE]}, False),
        ({"none": []}, True),
        ({"one_of": [_FALSE, _TRUE, _FALSE]}, True),
        ({"one_of": [_TRUE, _TRUE]}, False),
        ({"one_of": []}, False),
        ({"not": _FALSE}, True),
        ({"not": _TRUE}, False),
    ],
)
def test_combinators(when: Any, expected: bool) -> None:
    assert _holds(when, {"t": True}) is expected


def test_absent_fields_do_not_cascade_through_combinators() -> None:
    missing = {"field": ".nope", "equals": 1}
    assert _holds({"not": missing}, {})
    assert _holds({"any": [missing, {"field": ".x", "equals": 1}]}, {"x": 1})
    assert _holds({"none": [missing]}, {})


def test_expression_conditions_use_the_renderer() -> None:
    seen: list[str] = []

    def render(text: str) -> Any:
        seen.append(text)
        return [1]

    assert evaluate(parse_condition({"all": ["${{ inputs.deploy }}"]}), {}, render)
    assert seen == ["${{ inputs.deploy }}"]


def test_expression_conditions_need_a_renderer() -> None:
    with pytest.raises(ConditionError, match="no expression renderer"):
        evaluate(parse_condition("${{ x }}"), {})


def test_expression_conditions_render_with_the_expressions_module() -> None:
    from wfe_yaml.expressions import render_condition

    cond = parse_condition("${{ inputs.deploy and outputs.n > 2 }}")
    context = {"inputs": {"deploy": True}, "outputs": {"n": 3}}
    assert evaluate(cond, {}, lambda text: render_condition(text, context))


def test_describe_gives_a_one_line_summary() -> None:
    cond = parse_condition(
        {"all": [{"field": ".a", "equals": "x"}, {"not": {"field": ".b", "is_null": True}}]}
    )
    assert describe(cond) == 'all(.a == "x", not(.b is null))'
