"""Run-time `${{ }}` rendering: native values, text, filters, errors and the sandbox."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from wfe_yaml.expressions import (
    MAX_REPEAT,
    ExpressionError,
    condition_problem,
    render_condition,
    render_string,
    render_value,
    syntax_problem,
)

CONTEXT: dict[str, Any] = {
    "inputs": {"branch": "main", "count": 3, "tags": ["a", "b"], "deploy": True, "note": None},
    "outputs": {"coverage": 91.5, "meta": {"id": 7, "ok": False}},
    "steps": {"unit-tests": {"outputs": {"passed": 12}}},
    "matrix": {"shard": 2},
    "env": {"HOME": "/home/ci"},
}


def _error(text: str) -> str:
    with pytest.raises(ExpressionError) as caught:
        render_string(text, CONTEXT)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("${{ inputs.count }}", 3),
        ("  ${{ inputs.tags }}\n", ["a", "b"]),
        ("${{ outputs.meta }}", {"id": 7, "ok": False}),
        ("${{ inputs.note }}", None),
        ("${{ inputs.deploy }}", True),
        ("${{ inputs.count * 2 + 1 }}", 7),
        ("${{ range(3) }}", [0, 1, 2]),
        ("${{ inputs.tags | map('upper') }}", ["A", "B"]),
        ("${{ steps['unit-tests'].outputs.passed }}", 12),
        ("${{ {'a': {'b': 1}} }}", {"a": {"b": 1}}),
    ],
)
def test_a_whole_string_expression_keeps_its_native_type(text: str, value: Any) -> None:
    assert render_string(text, CONTEXT) == value


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("branch=${{ inputs.branch }}", "branch=main"),
        ("n=${{ inputs.count }}!", "n=3!"),
        ("${{ inputs.count }}${{ inputs.count }}", "33"),
        ("tags=${{ inputs.tags }}", 'tags=["a","b"]'),
        ("meta=${{ outputs.meta }}", 'meta={"id":7,"ok":false}'),
        ("deploy=${{ inputs.deploy }}", "deploy=true"),
        ("note=[${{ inputs.note }}]", "note=[]"),
        ("json=${{ outputs.meta | tojson }}", 'json={"id":7,"ok":false}'),
        ("shard ${{ matrix.shard }} of 3\n", "shard 2 of 3\n"),
    ],
)
def test_embedded_expressions_render_as_text(text: str, rendered: str) -> None:
    assert render_string(text, CONTEXT) == rendered


def test_shquote_makes_values_safe_for_the_shell() -> None:
    context = {"v": "it's $(rm -rf /)", "n": None, "l": [1, "a b"], "i": 3, "b": False}
    rendered = render_string(
        "echo ${{ v|shquote }} ${{ n|shquote }} ${{ l|shquote }} ${{ i|shquote }} ${{ b|shquote }}",
        context,
    )
    assert rendered == "echo 'it'\"'\"'s $(rm -rf /)' '' '[1,\"a b\"]' 3 false"


def test_strings_without_expressions_are_returned_as_they_are() -> None:
    text = "echo ${#arr[@]} {% raw %} {{ x }} {# not a comment $((1+2))"
    assert render_string(text, {}) is text


def test_shell_syntax_around_expressions_is_left_alone() -> None:
    script = (
        'arr=(a b); echo "${#arr[@]}" {% raw %}{% endraw %} {# x #}\n'
        "echo $((1+2)) {{ jinja }} ${HOME} ${{ inputs.branch }}\n"
    )
    assert render_string(script, CONTEXT) == script.replace("${{ inputs.branch }}", "main")


def test_render_value_walks_mappings_and_lists_but_not_keys() -> None:
    value = {
        "${{ key }}": "${{ inputs.count }}",
        "list": ["${{ inputs.tags }}", "x-${{ matrix.shard }}", 5, None],
        "nested": {"flag": "${{ inputs.deploy }}"},
    }
    assert render_value(value, CONTEXT) == {
        "${{ key }}": 3,
        "list": [["a", "b"], "x-2", 5, None],
        "nested": {"flag": True},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "${{ inputs.brnch }}",
            "${{ inputs.brnch }}: 'brnch' is undefined; did you mean 'branch'?",
        ),
        (
            "${{ inptus.branch }}",
            "${{ inptus.branch }}: 'inptus' is undefined; did you mean 'inputs'?",
        ),
        (
            "echo ${{ inputs.branch }} ${{ outputs.coverag }}",
            "${{ outputs.coverag }}: 'coverag' is undefined; did you mean 'coverage'?",
        ),
        ("${{ nothing_close }}", "${{ nothing_close }}: 'nothing_close' is undefined"),
        ("${{ inputs.tags[5] }}", "${{ inputs.tags[5] }}: index 5 is out of range (the list has 2"),
        ("${{ inputs.branch.name }}", "${{ inputs.branch.name }}: string 'main' has no attribute"),
        ("${{ [missing] }}", "${{ [missing] }}: 'missing' is undefined"),
        (
            "${{ steps.unit-tests.outputs.passed }}",
            "${{ steps.unit-tests.outputs.passed }}: 'unit-tests' has dashes, so it needs "
            "brackets: steps['unit-tests']",
        ),
    ],
)
def test_undefined_names_are_errors_that_name_the_expression(text: str, message: str) -> None:
    assert _error(text).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${{ inputs. }}", "${{ inputs. }}: syntax error: "),
        ("run ${{ inputs.count + }} now", "${{ inputs.count + }}: syntax error: "),
        ("${{ inputs.branch | shqoute }}", "unknown filter 'shqoute'; did you mean 'shquote'?"),
        ("${{ 1 / 0 }}", "${{ 1 / 0 }}: division by zero"),
        ("${{ inputs.items }}", "${{ inputs.items }}: this is a function; call it with ()"),
    ],
)
def test_other_errors_are_expression_errors(text: str, message: str) -> None:
    assert message in _error(text)


@pytest.mark.parametrize(
    "text",
    [
        "${{ ''.__class__.__mro__ }}",
        "${{ ''.__class__ }}",
        "${{ inputs.__class__.__init__.__globals__ }}",
        "${{ cycler.__init__.__globals__.os }}",
    ],
)
def test_sandbox_escapes_are_refused(text: str) -> None:
    assert "unsafe" in _error(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${{ range(10**9) | list }}", "MAX_RANGE"),
        ("${{ 'a' * 10**9 }}", f"limit {MAX_REPEAT}"),
        ("${{ 10**9 * 'a' }}", f"limit {MAX_REPEAT}"),
        ("${{ [0] * 10**8 }}", f"limit {MAX_REPEAT}"),
        ("${{ 2 ** 10000000 }}", "too large"),
        ("${{ 'a'.ljust(10**9) }}", "too large"),
        ("${{ 'a' | center(1000000000) }}", "too large"),
        ("${{ '%999999999d' % 1 }}", "too large"),
        ("${{ '{:>999999999}'.format(1) }}", "too large"),
        ("${{ '%999999999d' | format(1) }}", "too large"),
    ],
)
def test_huge_results_are_refused_quickly(text: str, message: str) -> None:
    assert message in _error(text)


def test_reasonable_repetition_still_works() -> None:
    assert render_string("${{ '-' * 3 }}${{ 2 ** 10 }}", {}) == "---1024"
    assert render_string("${{ '%05d' % 42 }}", {}) == "00042"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("${{ inputs.deploy }}", True),
        ("${{ inputs.count > 5 }}", False),
        ("${{ inputs.note }}", False),
        ("${{ 'a' in inputs.tags and matrix.shard == 2 }}", True),
        ("inputs.count == 3", True),
    ],
)
def test_render_condition(expr: str, expected: bool) -> None:
    assert render_condition(expr, CONTEXT) is expected


def test_render_condition_errors() -> None:
    with pytest.raises(ExpressionError, match="'brnch' is undefined"):
        render_condition("${{ inputs.brnch == 'main' }}", CONTEXT)
    with pytest.raises(ExpressionError, match="exactly one"):
        render_condition("${{ inputs.deploy }} and ${{ inputs.deploy }}", CONTEXT)


def test_load_time_checks() -> None:
    assert syntax_problem("no expressions") is None
    assert syntax_problem("echo ${{ inputs.x }}") is None
    assert "syntax error" in (syntax_problem("echo ${{ inputs. }}") or "")
    assert condition_problem("${{ inputs.x }}") is None
    assert "exactly one" in (condition_problem("${{ a }} ${{ b }}") or "")


def test_a_literal_expression_marker_can_be_written() -> None:
    assert render_string("echo ${{ '${{' }} x }}", {}) == "echo ${{ x }}"


def test_importing_the_module_does_not_import_jinja() -> None:
    code = "import sys, wfe_yaml.expressions; print('jinja2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"
