"""Run-time `${{ expr }}` rendering in a Jinja2 sandbox.

Only `${{ ... }}` is special: Jinja's block and comment tags are moved to strings no YAML file
can hold, so shell text such as `${#arr[@]}`, `{% raw %}` or `$((1 + 2))` passes through.
A string that is exactly one `${{ expr }}` keeps the expression's native value (a list stays a
list); expressions embedded in text render as text (null as "", booleans as true/false, lists
and maps as JSON). Undefined names are errors.

The context holds `inputs`, `outputs`, `steps`, `matrix`, `env`, `config`, `secrets` and `run`.
Names with dashes need brackets: `${{ steps['unit-tests'].outputs.coverage }}`.
A literal `${{` is written `${{ '${{' }}`.

Jinja is imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import shlex
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from wfe_yaml.errors import did_you_mean
from wfe_yaml.types import describe_value

if TYPE_CHECKING:
    from jinja2.environment import Template, TemplateExpression
    from jinja2.sandbox import SandboxedEnvironment

MAX_REPEAT = 10_000_000
"""The most characters or items a `*`, a padding method or a format width may produce."""
MAX_POWER_BITS = 100_000
"""The largest integer, in bits, that `**` may produce."""

_CACHE_SIZE = 512
_START, _END = "${{", "}}"
_SPAN = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
_SHOWN_CHARS = 120
_DASHED_MEMBER = re.compile(r"([A-Za-z_][\w.]*)\.([A-Za-z_]\w*(?:-\w+)+)")
_UNKNOWN_FILTER = re.compile(r"No filter named '([^']+)'")
_PRINTF_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?")
_FORMAT_WIDTHS = re.compile(r"\{[^{}]*:[^{}\d]*(\d*)(?:\.(\d*))?[^{}]*\}")
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_FORMAT_METHODS = frozenset({"format", "format_map"})
_PLAIN_TYPES = (str, int, float, bool, type(None))


class ExpressionError(Exception):
    """An expression that cannot be rendered: `${{ inputs.brnch }}: 'brnch' is undefined`."""

    def __init__(self, expression: str, reason: str):
        super().__init__(f"{expression}: {reason}")
        self.expression = expression
        self.reason = reason


# -- public API --------------------------------------------------------------------------------


def has_expression(value: Any) -> bool:
    """Whether a value holds `${{ }}` anywhere (so it must be rendered when its step starts)."""
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, dict):
        return any(has_expression(item) for item in value.values())
    if isinstance(value, list):
        return any(has_expression(item) for item in value)
    return False


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """`value` with every `${{ }}` in its strings rendered; dicts and lists are walked, not keys."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, Mapping):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(item, context) for item in value]
    return value


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    """A native value for a whole-string `${{ expr }}`, else the text with expressions rendered."""
    if _START not in text:
        return text
    with _translated_errors(text, context):
        inner = _whole_expression(text)
        if inner is not None:
            return _evaluate(inner, context)
        return _template(text).render(dict(context))


def render_condition(expr: str, context: Mapping[str, Any]) -> bool:
    """The truth of a `when:` expression, given as `${{ expr }}` or bare."""
    shown = expr if _START in expr else f"{_START} {expr.strip()} {_END}"
    with _translated_errors(shown, context):
        inner = _whole_expression(expr) if _START in expr else expr
        if inner is None:
            raise ExpressionError(shown, f"a condition must be exactly one {_START} expr {_END}")
        return bool(_evaluate(inner, context))


def syntax_problem(text: str) -> str | None:
    """A load-time check of a string's `${{ }}` expressions: the error message, or None."""
    if _START not in text:
        return None
    try:
        with _translated_errors(text, {}):
            inner = _whole_expression(text)
            if inner is None:
                _template(text)
            else:
                _expression(inner)
    except ExpressionError as error:
        return str(error)
    return None


def condition_problem(text: str) -> str | None:
    """A load-time check of a `when:` string: it must be one well-formed `${{ expr }}`."""
    problem = syntax_problem(text)
    if problem:
        return problem
    if _whole_expression(text) is None:
        return f"{_shorten(text.strip())}: a condition must be exactly one {_START} expr {_END}"
    return None


def shquote(value: Any) -> str:
    """The value as one shell word (null → '')."""
    return shlex.quote(str(as_text(value)))


def tojson(value: Any, indent: int | None = None) -> str:
    """The value as JSON: compact unless `indent` is given."""
    if indent is not None:
        return json.dumps(value, indent=indent, ensure_ascii=False, default=str)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def as_text(value: Any) -> Any:
    """How a value reads inside text: null as "", true/false, lists and maps as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return tojson(value)
    return value


# -- evaluation --------------------------------------------------------------------------------


def _evaluate(inner: str, context: Mapping[str, Any]) -> Any:
    return _plain(_expression(inner)(**context))


def _plain(value: Any) -> Any:
    """A native result as plain data; undefined parts raise, iterators become lists."""
    from jinja2 import Undefined

    if isinstance(value, _PLAIN_TYPES):
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | range | set | frozenset | Iterator) or _is_view(value):
        return [_plain(item) for item in value]
    if callable(value):
        raise ValueError("this is a function; call it with ()")
    return value


def _is_view(value: Any) -> bool:
    return isinstance(value, type({}.keys()) | type({}.values()) | type({}.items()))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _whole_expression(text: str) -> str | None:
    """The expression of a string that is exactly one `${{ expr }}` (blanks around allowed)."""
    from jinja2 import nodes

    stripped = text.strip()
    if not (stripped.startswith(_START) and stripped.endswith(_END)):
        return None
    body = _environment().parse(stripped).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    if isinstance(body[0].nodes[0], nodes.TemplateData):
        return None
    return stripped[len(_START) : -len(_END)]


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _template(text: str) -> Template:
    return _environment().from_string(text)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _expression(inner: str) -> TemplateExpression:
    # Undefined stays Undefined (not None), so a bare missing name is still an error.
    return _environment().compile_expression(inner, undefined_to_none=False)


# -- the sandbox -------------------------------------------------------------------------------


@functools.cache
def _environment() -> SandboxedEnvironment:
    from jinja2 import StrictUndefined, UndefinedError
    from jinja2.runtime import missing
    from jinja2.sandbox import SandboxedEnvironment

    class _UndefinedValue(UndefinedError):
        """An undefined-value error that remembers where the lookup failed."""

        def __init__(self, message: str | None, container: Any, name: Any):
            super().__init__(message)
            self.container = container
            self.name = name

    class _Undefined(StrictUndefined):
        __slots__ = ()

        def __init__(
            self,
            hint: str | None = None,
            obj: Any = missing,
            name: str | None = None,
            exc: type[Exception] = UndefinedError,
        ):
            super().__init__(hint, obj, name, exc)  # type: ignore[arg-type]
            if exc is UndefinedError and hint is None:
                # Jinja raises `_undefined_exception(message)`: keep the lookup for the hint.
                self._undefined_exception = functools.partial(  # type: ignore[assignment]
                    _UndefinedValue, container=obj, name=name
                )

    class _Sandbox(SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(self, context: Any, function: Any, /, *args: Any, **kwargs: Any) -> Any:
            _check_padding(function, args)
            return super().call(context, function, *args, **kwargs)

        def wrap_str_format(self, value: Any) -> Any:
            owner = getattr(value, "__self__", None)
            if isinstance(owner, str) and getattr(value, "__name__", "") in _FORMAT_METHODS:
                _check_format(owner, _FORMAT_WIDTHS)
            return super().wrap_str_format(value)

    environment = _Sandbox(
        variable_start_string=_START,
        variable_end_string=_END,
        # No YAML file can hold NUL, so block and comment tags can never start by accident.
        block_start_string="\x00{%",
        block_end_string="%}\x00",
        comment_start_string="\x00{#",
        comment_end_string="#}\x00",
        undefined=_Undefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=as_text,
    )
    environment.filters.update(
        shquote=shquote,
        tojson=tojson,
        center=_guard_filter(environment.filters["center"]),
        indent=_guard_filter(environment.filters["indent"]),
        format=_guard_filter(environment.filters["format"], formats=True),
    )
    return environment


def _check_binop(operator: str, left: Any, right: Any) -> None:
    from jinja2.exceptions import SecurityError

    if operator == "*":
        size = _repeat_size(left, right) or _repeat_size(right, left)
        if size > MAX_REPEAT:
            raise SecurityError(f"the result of * would have {size} items (limit {MAX_REPEAT})")
    elif operator == "**" and _power_bits(left, right) > MAX_POWER_BITS:
        raise SecurityError(f"the result of ** would be too large (limit {MAX_POWER_BITS} bits)")
    elif operator == "%" and isinstance(left, str):
        _check_format(left, _PRINTF_WIDTHS)


def _repeat_size(sequence: Any, count: Any) -> int:
    if isinstance(sequence, str | list | tuple) and isinstance(count, int):
        return len(sequence) * count
    return 0


def _power_bits(base: Any, exponent: Any) -> float:
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) < 2 or exponent < 1:
        return 0
    return exponent * math.log2(abs(base))


def _check_padding(function: Any, args: tuple[Any, ...]) -> None:
    owner = getattr(function, "__self__", None)
    if isinstance(owner, str) and getattr(function, "__name__", "") in _PADDING_METHODS:
        _check_sizes(args)


def _check_format(text: str, widths: re.Pattern[str]) -> None:
    from jinja2.exceptions import SecurityError

    for match in widths.finditer(text):
        for number in match.groups():
            if number and int(number) > MAX_REPEAT:
                raise SecurityError(f"a format width of {number} is too large (limit {MAX_REPEAT})")


def _check_sizes(args: tuple[Any, ...]) -> None:
    from jinja2.exceptions import SecurityError

    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and arg > MAX_REPEAT:
            raise SecurityError(f"a width of {arg} is too large (limit {MAX_REPEAT})")


def _guard_filter(function: Any, formats: bool = False) -> Any:
    """A built-in filter that refuses widths (and printf widths) beyond MAX_REPEAT."""

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_sizes(args[1:] + tuple(kwargs.values()))
        if formats and args and isinstance(args[0], str):
            _check_format(args[0], _PRINTF_WIDTHS)
        return function(*args, **kwargs)

    return guarded


# -- errors ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _translated_errors(source: str, context: Mapping[str, Any]) -> Iterator[None]:
    """Turns anything rendering raises into an ExpressionError naming the expression."""
    try:
        yield
    except ExpressionError:
        raise
    except Exception as error:
        raise _translate(error, source, context) from None


def _translate(error: Exception, source: str, context: Mapping[str, Any]) -> ExpressionError:
    from jinja2 import TemplateSyntaxError, UndefinedError

    if isinstance(error, TemplateSyntaxError):
        line = error.lineno if _START in source else None
        return ExpressionError(_culprit(source, None, line), _syntax_reason(error))
    if isinstance(error, UndefinedError):
        name = getattr(error, "name", None)
        culprit = _culprit(source, name, None)
        reason = _dashed_hint(culprit, name) or _undefined_reason(error, context)
        return ExpressionError(culprit, reason)
    reason = str(error).rstrip(".") or type(error).__name__
    return ExpressionError(_culprit(source, None, None), reason)


def _syntax_reason(error: Exception) -> str:
    message = str(getattr(error, "message", None) or error).rstrip(".")
    unknown = _UNKNOWN_FILTER.search(message)
    if unknown:
        name = unknown.group(1)
        hint = did_you_mean(name, _environment().filters)
        return f"unknown filter '{name}'" + (f"; {hint}" if hint else "")
    return f"syntax error: {message}"


def _undefined_reason(error: Exception, context: Mapping[str, Any]) -> str:
    from jinja2.runtime import missing

    container = getattr(error, "container", missing)
    name = getattr(error, "name", None)
    if name is None:
        return str(error)
    if isinstance(container, list | tuple) and isinstance(name, int):
        return f"index {name} is out of range (the list has {len(container)} items)"
    if container is missing:
        return _missing_name(str(name), list(context))
    if isinstance(container, Mapping):
        return _missing_name(str(name), [str(key) for key in container])
    return f"{describe_value(container)} has no attribute '{name}'"


def _dashed_hint(expression: str, undefined: Any) -> str | None:
    # `steps.unit-tests` parses as `steps.unit - tests`: the real mistake is the missing brackets.
    for match in _DASHED_MEMBER.finditer(expression):
        owner, name = match.groups()
        if str(undefined) in name.split("-"):
            return f"'{name}' has dashes, so it needs brackets: {owner}['{name}']"
    return None


def _missing_name(name: str, known: list[str]) -> str:
    reason = f"'{name}' is undefined"
    dashed = [key for key in known if key.startswith(f"{name}-")]
    if dashed:
        return f"{reason}; names with dashes need brackets, like ['{dashed[0]}']"
    hint = did_you_mean(name, known)
    return f"{reason}; {hint}" if hint else reason


def _culprit(source: str, name: Any, line: int | None) -> str:
    """The `${{ }}` in `source` the error most likely comes from, for the message."""
    spans = [match.group(0) for match in _SPAN.finditer(source)]
    if line is not None:
        on_line = [span for span in spans if _line_of(source, span) == line]
        spans = on_line or spans
    if name is not None:
        word = re.compile(rf"\b{re.escape(str(name))}\b")
        spans = [span for span in spans if word.search(span)] or spans
    if spans:
        return _shorten(spans[0])
    start = source.find(_START)
    return _shorten(source[start:].splitlines()[0] if start >= 0 else source.strip())


def _line_of(source: str, span: str) -> int:
    return source[: source.find(span)].count("\n") + 1


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
