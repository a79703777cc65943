"""`when:` conditions: WFE's comparison/combinator structure, or a `${{ expr }}` string.

Parsing builds frozen pydantic models whose validation-error locations follow the YAML path
(`('all', 0, 'gt')`), `static_problems` checks field paths against declared types at load time,
and `evaluate` decides a condition against a workflow's flat data at run time.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from wfe_yaml.errors import did_you_mean
from wfe_yaml.types import TypeSpec, describe_value, parse_type

OPERATORS = ("equals", "not_equals", "gt", "gte", "lt", "lte", "contains", "is_null", "is_not_null")
NUMERIC_OPERATORS = ("gt", "gte", "lt", "lte")
NULL_OPERATORS = ("is_null", "is_not_null")
COMBINATORS = ("all", "any", "none", "one_of", "not")
COMPARISON_KEYS = ("field", *OPERATORS)

_EXPRESSION = re.compile(r"\s*\$\{\{.*\}\}\s*", re.DOTALL)
_EXPRESSION_EXAMPLE = "a string `when:` must be an expression like ${{ inputs.deploy }}"
_SYMBOLS = {
    "equals": "==",
    "not_equals": "!=",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "contains": "contains",
}

Loc = tuple[str | int, ...]


class ConditionError(Exception):
    """A condition that cannot be decided on the data it met (e.g. `gt` on a string)."""


class Problem(NamedTuple):
    """A load-time finding: where (relative to the `when:` value), what, whether it only warns."""

    loc: Loc
    message: str
    is_warning: bool


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


# -- the models --------------------------------------------------------------------------------


class Comparison(_Frozen):
    """`field` plus exactly one operator; which one is known from the keys the YAML set."""

    field: str
    equals: Any = None
    not_equals: Any = None
    gt: int | float | None = None
    gte: int | float | None = None
    lt: int | float | None = None
    lte: int | float | None = None
    contains: Any = None
    is_null: Literal[True] | None = None
    is_not_null: Literal[True] | None = None

    @property
    def operator(self) -> str:
        return next(name for name in OPERATORS if name in self.model_fields_set)

    @property
    def value(self) -> Any:
        return getattr(self, self.operator)

    @model_validator(mode="wrap")
    @classmethod
    def _check_keys(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Comparison:
        if not isinstance(value, Mapping):
            return handler(value)
        problems = _unknown_key_errors(value, COMPARISON_KEYS, _COMPARISON_SHAPE)
        if not problems:
            problems = _missing_field_errors(value) + _operator_count_errors(value)
        return _validate_known(handler, value, COMPARISON_KEYS, problems)

    @field_validator(*NUMERIC_OPERATORS, mode="before")
    @classmethod
    def _number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PydanticCustomError(
                "condition_number",
                "{operator} needs a number, got {got}",
                {"operator": info.field_name, "got": describe_value(value)},
            )
        return value

    @field_validator(*NULL_OPERATORS, mode="before")
    @classmethod
    def _only_true(cls, value: Any, info: ValidationInfo) -> Any:
        if value is False:
            other = "is_not_null" if info.field_name == "is_null" else "is_null"
            raise PydanticCustomError(
                "condition_null_false",
                "{operator}: false is not an operator; use {other}: true",
                {"operator": info.field_name, "other": other},
            )
        if value is not True:
            raise PydanticCustomError(
                "condition_null_true",
                "{operator} takes only `true`, got {got}",
                {"operator": info.field_name, "got": describe_value(value)},
            )
        return value

    @model_serializer
    def _as_yaml(self) -> dict[str, Any]:
        return {"field": self.field, self.operator: self.value}


class Combinator(_Frozen):
    """Exactly one of `all any none one_of` (lists of conditions) or `not` (one condition)."""

    all: tuple[Condition, ...] | None = None
    any: tuple[Condition, ...] | None = None
    none: tuple[Condition, ...] | None = None
    one_of: tuple[Condition, ...] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @property
    def key(self) -> str:
        """The combinator's YAML key: all, any, none, one_of or not."""
        return next(key for key in COMBINATORS if _field_name(key) in self.model_fields_set)

    @property
    def children(self) -> tuple[Condition, ...]:
        if self.not_ is not None:
            return (self.not_,)
        return getattr(self, self.key) or ()

    def located_children(self) -> Iterator[tuple[Loc, Condition]]:
        """Each child with its location relative to this combinator."""
        if self.key == "not":
            yield ("not",), self.children[0]
            return
        for index, child in enumerate(self.children):
            yield (self.key, index), child

    @model_validator(mode="wrap")
    @classmethod
    def _check_keys(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Combinator:
        if not isinstance(value, Mapping):
            return handler(value)
        problems = _unknown_key_errors(value, COMBINATORS, _COMBINATOR_SHAPE)
        if not problems:
            problems = _combinator_count_errors(value)
        return _validate_known(handler, value, COMBINATORS, problems)

    @model_serializer
    def _as_yaml(self) -> dict[str, Any]:
        if self.key == "not":
            return {"not": _dump(self.children[0])}
        return {self.key: [_dump(child) for child in self.children]}


class ExpressionCondition(_Frozen):
    """A `when:` string: one `${{ expr }}`, decided by the expression renderer at run time."""

    text: str

    @property
    def expression(self) -> str:
        """The expression between `${{` and `}}`."""
        return self.text.strip()[3:-2].strip()

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not _EXPRESSION.fullmatch(value):
                raise PydanticCustomError("condition_expression", _EXPRESSION_EXAMPLE)
            return {"text": value}
        return value

    @model_serializer
    def _as_yaml(self) -> str:
        return self.text


def _dump(condition: Comparison | Combinator | ExpressionCondition) -> Any:
    return condition.model_dump(by_alias=True)


def _parse_condition(value: Any) -> Comparison | Combinator | ExpressionCondition:
    # Dispatching by hand (not a left-to-right union) keeps error locations on the YAML path.
    if isinstance(value, Comparison | Combinator | ExpressionCondition):
        return value
    if isinstance(value, str):
        return ExpressionCondition.model_validate(value)
    if isinstance(value, Mapping):
        if _looks_like_comparison(value):
            return Comparison.model_validate(value)
        return Combinator.model_validate(value)
    raise PydanticCustomError(
        "condition_type",
        "a condition is a mapping (field plus an operator, or one of all, any, none, one_of, "
        "not) or a ${{ expr }} string, got {got}",
        {"got": describe_value(value)},
    )


def _looks_like_comparison(value: Mapping[Any, Any]) -> bool:
    # An operator without `field` is a comparison with a typo, not a combinator with junk.
    if "field" in value:
        return True
    return any(key in OPERATORS for key in value) and not any(key in COMBINATORS for key in value)


_ExpressionText = Annotated[str, WithJsonSchema({"type": "string", "pattern": r"^\s*\$\{\{"})]

Condition = Annotated[
    Comparison | Combinator | ExpressionCondition,
    PlainValidator(
        _parse_condition, json_schema_input_type=Comparison | Combinator | _ExpressionText
    ),
    PlainSerializer(_dump),
]
"""A `when:` value; use it as a field type (`when: Condition | None = None`)."""

# Combinator refers to Condition, defined after it: pydantic resolves that at first use.


@functools.cache
def _adapter() -> TypeAdapter[Comparison | Combinator | ExpressionCondition]:
    return TypeAdapter(Condition)


def parse_condition(value: Any) -> Comparison | Combinator | ExpressionCondition:
    """The condition model for a `when:` value; pydantic ValidationError when it is invalid."""
    return _adapter().validate_python(value)


# -- structural validation helpers -------------------------------------------------------------

_COMPARISON_SHAPE = "a comparison has `field` and one operator (" + ", ".join(OPERATORS) + ")"
_COMBINATOR_SHAPE = "a combinator has one of " + ", ".join(COMBINATORS)


def _field_name(key: str) -> str:
    return "not_" if key == "not" else key


def _error(loc: Loc, kind: str, message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


def _unknown_key_errors(
    value: Mapping[Any, Any], known: tuple[str, ...], shape: str
) -> list[InitErrorDetails]:
    problems = []
    for key in value:
        if key in known:
            continue
        if key in COMPARISON_KEYS + COMBINATORS:
            detail = f"a condition cannot mix comparison and combinator keys; {shape}"
        else:
            detail = did_you_mean(str(key), COMPARISON_KEYS + COMBINATORS) or shape
        message = f"unknown key '{key}' in condition; {detail}"
        problems.append(_error((str(key),), "condition_unknown_key", message, value[key]))
    return problems


def _missing_field_errors(value: Mapping[Any, Any]) -> list[InitErrorDetails]:
    if "field" in value:
        return []
    message = "a comparison needs `field:`, the data path it reads (like .inputs.deploy)"
    return [_error((), "condition_field", message, dict(value))]


def _operator_count_errors(value: Mapping[Any, Any]) -> list[InitErrorDetails]:
    present = [key for key in value if key in OPERATORS]
    subject = f"comparison on '{value['field']}'" if "field" in value else "comparison"
    if not present:
        message = f"{subject} needs an operator ({', '.join(OPERATORS)})"
        return [_error((), "condition_operator", message, dict(value))]
    if len(present) > 1:
        message = f"{subject} has {len(present)} operators ({', '.join(present)}): use exactly one"
        return [_error((present[1],), "condition_operator", message, value[present[1]])]
    return []


def _combinator_count_errors(value: Mapping[Any, Any]) -> list[InitErrorDetails]:
    present = [key for key in value if key in COMBINATORS]
    if len(present) == 1 and value[present[0]] is None:
        wanted = "a condition" if present[0] == "not" else "a list of conditions"
        message = f"{present[0]} needs {wanted}, got null"
        return [_error((present[0],), "condition_combinator", message, None)]
    if len(present) == 1:
        return []
    message = "a condition needs exactly one of " + ", ".join(COMBINATORS)
    if present:
        message += f", but has {len(present)} ({', '.join(present)})"
        return [_error((present[1],), "condition_combinator", message, value[present[1]])]
    return [_error((), "condition_combinator", message, dict(value))]


def _validate_known(
    handler: ValidatorFunctionWrapHandler,
    value: Mapping[Any, Any],
    known: tuple[str, ...],
    problems: list[InitErrorDetails],
) -> Any:
    # Unknown keys are already reported with a hint; pydantic's "extra" errors would repeat them.
    known_part = {key: item for key, item in value.items() if key in known}
    try:
        model = handler(known_part)
    except ValidationError as error:
        raise _validation_error(problems + _details(error)) from None
    if problems:
        raise _validation_error(problems)
    return model


def _details(error: ValidationError) -> list[InitErrorDetails]:
    # `field` is the only required key: reported in our words above, or implied by a typo.
    return [
        _error(tuple(item["loc"]), item["type"], item["msg"], item.get("input"))
        for item in error.errors()
        if not (item["type"] == "missing" and len(item["loc"]) == 1)
    ]


def _validation_error(problems: list[InitErrorDetails]) -> ValidationError:
    return ValidationError.from_exception_data("Condition", problems)


# -- load-time checks --------------------------------------------------------------------------


class _Declared(NamedTuple):
    inputs: Mapping[str, TypeSpec | None] | None
    outputs: Mapping[str, TypeSpec | None] | None
    step_outputs: set[str]

    @property
    def knows_outputs(self) -> bool:
        # A workflow that declares no outputs anywhere is schema-less: nothing to warn about.
        return self.outputs is not None or bool(self.step_outputs)

    def declares_output(self, name: str) -> bool:
        return name in (self.outputs or {}) or name in self.step_outputs


def static_problems(
    cond: Comparison | Combinator | ExpressionCondition,
    inputs: Mapping[str, TypeSpec | str] | None,
    outputs: Mapping[str, TypeSpec | str] | None,
    step_outputs: set[str],
) -> list[Problem]:
    """Load-time findings (DESIGN §4.3); `inputs`/`outputs` are None when not declared."""
    declared = _Declared(_lenient_schema(inputs), _lenient_schema(outputs), set(step_outputs))
    return list(_problems(cond, (), declared))


def _lenient_schema(
    schema: Mapping[str, TypeSpec | str] | None,
) -> dict[str, TypeSpec | None] | None:
    if schema is None:
        return None
    return {name: _lenient_type(spec) for name, spec in schema.items()}


def _lenient_type(spec: TypeSpec | str) -> TypeSpec | None:
    if isinstance(spec, TypeSpec):
        return spec
    try:
        return parse_type(spec)
    except ValueError:
        return None  # reported where the type is declared; no type checks here


def _problems(
    cond: Comparison | Combinator | ExpressionCondition, loc: Loc, declared: _Declared
) -> Iterator[Problem]:
    if isinstance(cond, Combinator):
        for child_loc, child in cond.located_children():
            yield from _problems(child, loc + child_loc, declared)
    elif isinstance(cond, Comparison):
        yield from _comparison_problems(cond, loc, declared)
    else:
        yield from _expression_problems(cond, loc)


def _expression_problems(cond: ExpressionCondition, loc: Loc) -> Iterator[Problem]:
    from wfe_yaml.expressions import condition_problem

    problem = condition_problem(cond.text)
    if problem:
        yield Problem(loc, problem, False)


def _comparison_problems(cond: Comparison, loc: Loc, declared: _Declared) -> Iterator[Problem]:
    segments = _segments(cond.field)
    if not segments:
        return
    if len(segments) >= 2 and segments[0] == "inputs":
        yield from _input_name_problems(segments[1], loc, declared)
    elif len(segments) >= 2 and segments[0] == "outputs":
        yield from _output_name_problems(segments[1], loc, declared)
    label, name, spec, rest = _declaration(segments, declared)
    field_type = _member_type(spec, rest)
    if field_type is not None:
        subject = f"{label} '{'.'.join([name, *rest])}'"
        yield from _operator_problems(cond, loc, subject, field_type)


def _declaration(
    segments: list[str], declared: _Declared
) -> tuple[str, str, TypeSpec | None, list[str]]:
    """What a field path reads: (input/output/field, declared name, its type, deeper path)."""
    inputs, outputs = declared.inputs or {}, declared.outputs or {}
    if len(segments) >= 2 and segments[0] == "inputs":
        return "input", segments[1], inputs.get(segments[1]), segments[2:]
    if len(segments) >= 2 and segments[0] == "outputs":
        return "output", segments[1], outputs.get(segments[1]), segments[2:]
    name, rest = segments[0], segments[1:]
    if name in inputs:
        return "input", name, inputs[name], rest
    if name in outputs:
        return "output", name, outputs[name], rest
    return "field", name, None, rest


def _input_name_problems(name: str, loc: Loc, declared: _Declared) -> Iterator[Problem]:
    if declared.inputs is None or name in declared.inputs:
        return
    names = ", ".join(declared.inputs) or "none"
    message = f"condition reads undeclared input '{name}'; declared inputs: {names}"
    hint = did_you_mean(name, declared.inputs)
    yield Problem((*loc, "field"), f"{message}; {hint}" if hint else message, False)


def _output_name_problems(name: str, loc: Loc, declared: _Declared) -> Iterator[Problem]:
    if not declared.knows_outputs or declared.declares_output(name):
        return
    message = (
        f"condition reads output '{name}' that neither the workflow's `outputs:` nor any "
        "step's `outputs:` declares"
    )
    hint = did_you_mean(name, [*(declared.outputs or {}), *declared.step_outputs])
    yield Problem((*loc, "field"), f"{message}; {hint}" if hint else message, True)


def _member_type(spec: TypeSpec | None, segments: list[str]) -> TypeSpec | None:
    """The declared type of a deeper path (`tags.0` of `list<string>`), when it is known."""
    for segment in segments:
        if spec is None or spec.kind == "any":
            return spec
        if spec.kind == "map" or (spec.kind == "list" and segment.isdigit()):
            spec = spec.item
        else:
            return None
    return spec


def _operator_problems(
    cond: Comparison, loc: Loc, subject: str, field_type: TypeSpec
) -> Iterator[Problem]:
    operator, kind = cond.operator, field_type.kind
    need = None
    if operator in NUMERIC_OPERATORS and kind not in ("number", "integer", "any"):
        need = "a number"
    elif operator == "contains" and kind not in ("string", "list", "any"):
        need = "a string or a list"
    elif operator in NULL_OPERATORS and not (field_type.optional or kind == "any"):
        need = "an optional type (like string?) or any"
    if need:
        message = f"{operator} needs {need}, but {subject} is {field_type}"
        yield Problem((*loc, operator), message, False)


# -- run-time evaluation -----------------------------------------------------------------------


class _Absent:
    """The value of a field path that leads nowhere in the data."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def resolve(path: str, data: Mapping[str, Any]) -> Any:
    """The value at a `field` path, or ABSENT (WFE rules: `.inputs.x` falls back to flat `x`)."""
    segments = _segments(path)
    if len(segments) >= 2 and segments[0] in ("inputs", "outputs") and segments[0] not in data:
        segments = segments[1:]
    current: Any = data
    for segment in segments:
        current = _member(current, segment)
        if current is ABSENT:
            break
    return current


def _segments(path: str) -> list[str]:
    text = path[1:] if path.startswith(".") else path
    return text.split(".") if text else []


def _member(container: Any, segment: str) -> Any:
    if isinstance(container, Mapping):
        return container.get(segment, ABSENT)
    if isinstance(container, list | tuple) and segment.isascii() and segment.isdigit():
        index = int(segment)
        return container[index] if index < len(container) else ABSENT
    return ABSENT


def evaluate(
    cond: Comparison | Combinator | ExpressionCondition,
    data: Mapping[str, Any],
    render: Callable[[str], Any] | None = None,
) -> bool:
    """Whether the condition holds on `data`; ConditionError when it cannot be decided."""
    if isinstance(cond, Comparison):
        return _compare(cond, resolve(cond.field, data))
    if isinstance(cond, Combinator):
        return _combine(cond, data, render)
    if render is None:
        raise ConditionError(f"{cond.text}: no expression renderer was given")
    return bool(render(cond.text))


def _combine(
    cond: Combinator, data: Mapping[str, Any], render: Callable[[str], Any] | None
) -> bool:
    results = (evaluate(child, data, render) for child in cond.children)
    if cond.key == "all":
        return all(results)
    if cond.key == "any":
        return any(results)
    if cond.key == "none":
        return not any(results)
    if cond.key == "not":
        return not next(results)
    return _exactly_one(results)


def _exactly_one(results: Iterator[bool]) -> bool:
    found = False
    for result in results:
        if result and found:
            return False
        found = found or result
    return found


def _compare(cond: Comparison, actual: Any) -> bool:
    operator, expected = cond.operator, cond.value
    if actual is ABSENT:
        return operator in ("not_equals", "is_null")
    if operator == "equals":
        return same_value(actual, expected)
    if operator == "not_equals":
        return not same_value(actual, expected)
    if operator == "is_null":
        return actual is None
    if operator == "is_not_null":
        return actual is not None
    if operator == "contains":
        return _contains(actual, expected, cond.field)
    return _order(operator, _as_number(actual, operator, cond.field), expected)


def _order(operator: str, actual: float, expected: float) -> bool:
    if operator == "gt":
        return actual > expected
    if operator == "gte":
        return actual >= expected
    if operator == "lt":
        return actual < expected
    return actual <= expected


def _as_number(value: Any, operator: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConditionError(f"{operator} needs numbers, but '{field}' is {_the(value)}")
    return value


def _contains(actual: Any, expected: Any, field: str) -> bool:
    if isinstance(actual, str):
        if not isinstance(expected, str):
            raise ConditionError(
                f"contains on the string '{field}' needs a string, got {describe_value(expected)}"
            )
        return expected in actual
    if isinstance(actual, list | tuple):
        return any(same_value(item, expected) for item in actual)
    raise ConditionError(f"contains needs a string or a list, but '{field}' is {_the(actual)}")


def _the(value: Any) -> str:
    return "null" if value is None else f"the {describe_value(value)}"


def same_value(left: Any, right: Any) -> bool:
    """Data equality: numbers by value (1 == 1.0), but bools are not numbers and "1" != 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) or isinstance(right, int | float):
        return isinstance(left, int | float) and isinstance(right, int | float) and left == right
    if isinstance(left, list | tuple) or isinstance(right, list | tuple):
        return _same_list(left, right)
    if isinstance(left, Mapping) or isinstance(right, Mapping):
        return _same_map(left, right)
    return type(left) is type(right) and bool(left == right)


def _same_list(left: Any, right: Any) -> bool:
    if not (isinstance(left, list | tuple) and isinstance(right, list | tuple)):
        return False
    return len(left) == len(right) and all(map(same_value, left, right))


def _same_map(left: Any, right: Any) -> bool:
    if not (isinstance(left, Mapping) and isinstance(right, Mapping)):
        return False
    if left.keys() != right.keys():
        return False
    return all(same_value(value, right[key]) for key, value in left.items())


# -- description, for skip reasons -------------------------------------------------------------


def describe(cond: Comparison | Combinator | ExpressionCondition) -> str:
    """A one-line text of a condition, for "skipped: condition ... is false" messages."""
    if isinstance(cond, Comparison):
        if cond.operator in NULL_OPERATORS:
            return f"{cond.field} {cond.operator.replace('_', ' ')}"
        value = json.dumps(cond.value, default=str)
        return f"{cond.field} {_SYMBOLS[cond.operator]} {value}"
    if isinstance(cond, Combinator):
        inner = ", ".join(describe(child) for child in cond.children)
        return f"{cond.key}({inner})"
    return cond.text.strip()
