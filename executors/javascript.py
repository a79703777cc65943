"""The `javascript` step (aliases `js`, `deno`): a script run in a fresh V8 context (mini-racer).

The script runs as the body of an async function, so top-level `await` works. It sees
`inputs`, `output`, `log`, `console`, `readFile`, `writeFile`, `env`, `fetch`, the same under
`Wfe`, and timers. Everything that touches the host is done here in Python, after the step's
`permissions:` allow it.

How the two sides talk, and why: mini-racer's own bridge (`wrap_py_function`) reads call
arguments with blocking calls into the V8 thread, so a script that spins right after a host
call would freeze the asyncio loop, and with it the timeout meant to stop the script. Here
Python never waits on V8 while a script runs:
- JS → Python: messages (log lines, host calls, the final result) go through a ring buffer in
  a SharedArrayBuffer that Python reads directly from memory; a bare JS callback only says
  "look at the buffer", and its arguments are never read.
- Python → JS: answers are queued as evaluations (`eval_cancelable`), which just wait their
  turn while the script spins.
So the timeout always fires, and closing the context terminates whatever JS is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import re
import struct
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPMessage
from pathlib import Path
from types import ModuleType
from typing import IO, Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from executors.base import Executor, ExecutorConfig, StepRequest, StepResult, StepStatus
from wfe_yaml.durations import Duration
from wfe_yaml.models import Env, empty_list

INSTALL_HINT = "JavaScript steps need the 'js' extra: pip install 'wfe-yaml[js]'"
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_MEMORY_LIMIT = 256 * 1024**2
MIN_MEMORY_LIMIT = 8 * 1024**2
# V8 aborts the whole process (not just the script) near its own heap ceiling, ~1.4 GB here.
MAX_MEMORY_LIMIT = 1024**3
FETCH_TIMEOUT_SECONDS = 30.0
FETCH_MAX_BYTES = 10 * 1024**2
INLINE_SCRIPT_NAME = "script.js"

_POLL_SECONDS = 0.1
_RING_UNITS = 1 << 16
_HEADER = struct.Struct("=ii")
_READ_COUNTER = 4
_WAKE_FLAG = 8
_RING_OFFSET = 12
_UTF16 = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"
_SCRIPT_PREFIX = "(async function () {"
_SCRIPT_SUFFIX = (
    "\n})().then(() => __wfe.bodySettled(), (error) => __wfe.bodyFailed(error));"
    "\n//# sourceURL={name}"
)


# -- config ------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_SIZE_EXAMPLES = "a number of bytes, or 64MB, 512Mi, 1G (units are binary: 1 MB = 1024 KB)"


def parse_memory_size(value: Any) -> int:
    """Bytes for a memory size: an int (bytes) or a string such as `256MB`, `512Mi`, `1G`."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a memory size ({_SIZE_EXAMPLES}), got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        if not match or (match.group(3) and not match.group(2)):
            raise ValueError(f"invalid memory size {value!r}: use {_SIZE_EXAMPLES}")
        power = " kmgt".index(match.group(2).lower() or " ")
        size = int(float(match.group(1)) * 1024**power)
    if not MIN_MEMORY_LIMIT <= size <= MAX_MEMORY_LIMIT:
        raise ValueError(
            f"memory_limit must be between {size_text(MIN_MEMORY_LIMIT)} and "
            f"{size_text(MAX_MEMORY_LIMIT)}, got {size_text(size)}"
        )
    return size


def size_text(size: int) -> str:
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


MemorySize = Annotated[
    int,
    BeforeValidator(parse_memory_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": MIN_MEMORY_LIMIT, "maximum": MAX_MEMORY_LIMIT},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]i?)?[bB]?\s*$"},
            ],
            "description": f"A memory size: {_SIZE_EXAMPLES}",
        }
    ),
]


class JavaScriptPermissions(BaseModel):
    """What a script may touch; everything is denied unless listed (WFE's Deno permissions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    net: list[str] = Field(default_factory=empty_list)
    """Host names `fetch` may reach (exact match, any port)."""
    read: list[str] = Field(default_factory=empty_list)
    """Files and folders `readFile` may read (relative to the workspace)."""
    write: list[str] = Field(default_factory=empty_list)
    """Files and folders `writeFile` may write (relative to the workspace)."""
    env: list[str] = Field(default_factory=empty_list)
    """Environment variables `env()` may read."""
    run: bool = False
    """Always false: JavaScript steps cannot start processes."""
    dynamic_import: bool = False
    """Whether `import()` is allowed; it is not supported either way (no module loader)."""

    @field_validator("run")
    @classmethod
    def _no_subprocesses(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "JavaScript steps cannot run subprocesses: permissions.run must be false"
            )
        return value

    @field_validator("net")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if "/" in host or re.fullmatch(r"([^:\[\]]+|\[.*\]):\d+", host):
                raise ValueError(
                    f"permissions.net lists host names (like api.github.com), without scheme, "
                    f"port or path: {host!r}"
                )
        return [host.strip("[]").lower() for host in hosts]

    @field_validator("read", "write")
    @classmethod
    def _non_empty_paths(cls, paths: list[str]) -> list[str]:
        if any(not path for path in paths):
            raise ValueError("an empty path; use '.' for the workspace")
        if any("\0" in path for path in paths):
            raise ValueError("a path with a NUL character")
        return paths


class JavaScriptConfig(ExecutorConfig):
    script: str | None = None
    file: str | None = None
    """A script file, relative to the workspace."""
    permissions: JavaScriptPermissions = Field(default_factory=JavaScriptPermissions)
    timeout: Duration = DEFAULT_TIMEOUT_SECONDS
    """Hard stop: the script is terminated, whatever it is doing."""
    memory_limit: MemorySize = DEFAULT_MEMORY_LIMIT
    modules: list[str] = Field(default_factory=empty_list)
    """WFE key, accepted for compatibility; modules cannot be loaded (a warning says so)."""
    env: Env = {}
    """Variables `env()` can read without a permission (they come from the file, not the host)."""

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("timeout must be longer than 0")
        return value

    @model_validator(mode="after")
    def _script_or_file(self) -> JavaScriptConfig:
        if self.script is None and self.file is None:
            raise ValueError("a JavaScript step needs 'script' or 'file'")
        if self.script is not None and self.file is not None:
            raise ValueError("'script' and 'file' exclude each other")
        return self


# -- the sandbox: permission checks ------------------------------------------------------


class HostError(Exception):
    """A failed host call, with a message safe to show to the script (no host paths)."""

    js_type: ClassVar[str] = "Error"


class ScriptTypeError(HostError):
    js_type = "TypeError"


class PermissionDenied(HostError):
    def __init__(self, kind: str, resource: str):
        super().__init__(f"Permission denied: {kind} access to '{resource}'")


@dataclass(frozen=True)
class Sandbox:
    """The step's allowlists, resolved: paths are real paths (`..` and symlinks resolved)."""

    workspace: Path
    readable: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def of(cls, permissions: JavaScriptPermissions, workspace: Path) -> Sandbox:
        return cls(
            workspace=workspace,
            readable=tuple(real_path(workspace, path) for path in permissions.read),
            writable=tuple(real_path(workspace, path) for path in permissions.write),
            hosts=frozenset(permissions.net),
        )

    def readable_path(self, requested: str) -> Path:
        return self._allowed("read", requested, self.readable)

    def writable_path(self, requested: str) -> Path:
        return self._allowed("write", requested, self.writable)

    def check_url(self, url: str) -> None:
        """Raise unless `url` is http(s) to a listed host; also used for each redirect."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ScriptTypeError(f"fetch: only http and https URLs are supported, got '{url}'")
        host = (parts.hostname or "").lower()
        if host not in self.hosts:
            raise PermissionDenied("net", host)

    def _allowed(self, kind: str, requested: str, roots: tuple[Path, ...]) -> Path:
        try:
            resolved = real_path(self.workspace, requested)
        except ValueError:
            raise ScriptTypeError(f"invalid path '{requested}'") from None
        # is_relative_to compares whole components: /tmp allows /tmp/a, never /tmpx.
        if any(resolved.is_relative_to(root) for root in roots):
            return resolved
        raise PermissionDenied(kind, requested)


def real_path(base: Path, path: str) -> Path:
    return Path(os.path.realpath(base / path))


# -- host calls ----------------------------------------------------------------------------


@functools.cache
def _fetch_threads() -> ThreadPoolExecutor:
    # Own threads, so slow servers cannot starve the loop's default executor.
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="wfe-js-fetch")


@dataclass(frozen=True)
class Host:
    """The Python side of readFile, writeFile and fetch."""

    sandbox: Sandbox
    max_read_bytes: int

    async def call(self, op: str, args: list[Any]) -> Any:
        if op == "readFile":
            return await asyncio.to_thread(self.read_file, _text(args, 0))
        if op == "writeFile":
            return await asyncio.to_thread(self.write_file, _text(args, 0), _text(args, 1))
        if op == "fetch":
            request = FetchRequest.of(args)
            self.sandbox.check_url(request.url)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(_fetch_threads(), request.send, self.sandbox)
        raise ScriptTypeError(f"unknown host call '{op}'")

    def read_file(self, requested: str) -> str:
        path = self.sandbox.readable_path(requested)
        try:
            if path.stat().st_size > self.max_read_bytes:
                raise HostError(
                    f"readFile: '{requested}' is larger than the step's memory limit "
                    f"({size_text(self.max_read_bytes)})"
                )
            return path.read_bytes().decode("utf-8")
        except OSError as error:
            raise HostError(f"readFile: cannot read '{requested}': {_reason(error)}") from None
        except UnicodeDecodeError:
            raise HostError(f"readFile: '{requested}' is not UTF-8 text") from None

    def write_file(self, requested: str, text: str) -> None:
        path = self.sandbox.writable_path(requested)
        try:
            path.write_text(text, encoding="utf-8", newline="")
        except OSError as error:
            raise HostError(f"writeFile: cannot write '{requested}': {_reason(error)}") from None
        except UnicodeEncodeError:
            raise HostError("writeFile: the text is not valid Unicode") from None


def _text(args: list[Any], index: int) -> str:
    if index >= len(args) or not isinstance(args[index], str):
        raise ScriptTypeError("expected a string argument")
    return args[index]


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


@dataclass(frozen=True)
class FetchRequest:
    url: str
    method: str
    headers: dict[str, str]
    body: str | None

    @classmethod
    def of(cls, args: list[Any]) -> FetchRequest:
        url, method, headers, body = (args + [None] * 4)[:4]
        if not isinstance(url, str) or not isinstance(method, str):
            raise ScriptTypeError("fetch: expected a URL")
        if not isinstance(headers, dict) or not isinstance(body, str | None):
            raise ScriptTypeError("fetch: bad request options")
        return cls(url, method, {str(k): str(v) for k, v in headers.items()}, body)

    def send(self, sandbox: Sandbox) -> dict[str, Any]:
        """Blocking: performs the request (run in a thread) and returns the response data."""
        headers = {"User-Agent": "wfe-yaml", **self.headers}
        data = None if self.body is None else self.body.encode("utf-8")
        request = urllib.request.Request(self.url, data, headers, method=self.method)
        opener = urllib.request.build_opener(_AllowlistRedirects(sandbox))
        try:
            response = opener.open(request, timeout=FETCH_TIMEOUT_SECONDS)
        except urllib.error.HTTPError as error:
            response = error  # an HTTP error status is still a response for fetch
        except urllib.error.URLError as error:
            raise HostError(f"fetch failed: {_url_error_reason(error)}") from None
        except TimeoutError:
            raise HostError(f"fetch timed out after {FETCH_TIMEOUT_SECONDS:.0f}s") from None
        with response:
            return _response_data(response)


class _AllowlistRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect must lead to an allowed host too, or it would bypass `net`."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        self.sandbox.check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _url_error_reason(error: urllib.error.URLError) -> str:
    reason = error.reason
    if isinstance(reason, OSError):
        return _reason(reason)
    return str(reason)


def _response_data(response: Any) -> dict[str, Any]:
    try:
        body = response.read(FETCH_MAX_BYTES + 1)
    except TimeoutError:
        raise HostError(f"fetch timed out after {FETCH_TIMEOUT_SECONDS:.0f}s") from None
    if len(body) > FETCH_MAX_BYTES:
        raise HostError(f"fetch: the response is larger than {size_text(FETCH_MAX_BYTES)}")
    headers: Message = response.headers
    return {
        "status": response.status,
        "statusText": response.reason or "",
        "url": response.url,
        "headers": _header_map(headers),
        "body": _decoded(body, headers.get_content_charset() or "utf-8"),
    }


def _decoded(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _header_map(headers: Message) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


# -- the script and its failures -------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """The source to run and where its lines live, for error messages."""

    source: str
    name: str
    """The name stack frames show: the file as given, or `script.js` for inline scripts."""
    yaml_file: str | None = None
    yaml_line: int | None = None
    """1-based line of `yaml_file` holding the script's first line (inline scripts only)."""

    def wrapped(self) -> str:
        # The prefix shares line 1 with the script, so JS line numbers are script lines.
        return _SCRIPT_PREFIX + self.source + _SCRIPT_SUFFIX.replace("{name}", self.name)

    @property
    def line_count(self) -> int:
        return self.source.count("\n") + 1

    def location(self, line: int) -> str:
        if self.yaml_line is None:
            return (
                f"{self.name}:{line}" if self.name != INLINE_SCRIPT_NAME else f"script line {line}"
            )
        return f"{self.yaml_file}:{self.yaml_line + line - 1} (script line {line})"

    def text_at(self, line: int, column: int) -> str:
        """The script's text from a 1-based line and column to the end of that line."""
        lines = self.source.split("\n")
        if not 1 <= line <= len(lines):
            return ""
        return lines[line - 1][max(column - 1, 0) :]

    @staticmethod
    def column(line: int, js_column: int) -> int:
        """The script's column for a column V8 reports (line 1 starts after our prefix)."""
        return js_column - len(_SCRIPT_PREFIX) if line == 1 else js_column


def load_script(config: JavaScriptConfig, request: StepRequest) -> Script:
    if config.script is not None:
        yaml_file = getattr(request.context, "source_file", None)
        yaml_line = getattr(request.context, "script_line", None)
        if not (isinstance(yaml_file, str) and isinstance(yaml_line, int)):
            yaml_file, yaml_line = None, None
        return Script(config.script, INLINE_SCRIPT_NAME, yaml_file, yaml_line)
    assert config.file is not None
    path = request.workspace / config.file
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StepFailure(f"JavaScript file not found: {config.file}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise StepFailure(f"cannot read JavaScript file {config.file}: {error}") from None
    return Script(source, urllib.parse.quote(config.file, safe="/._-~"))


class StepFailure(Exception):
    """A reason the step cannot start, reported as a failed step rather than raised."""


def describe_js_error(error: dict[str, Any], script: Script, dynamic_import: bool) -> str:
    """`Error: boom`, then where in the YAML file (or script file) it was thrown, then the
    JS stack frames."""
    header = str(error.get("header") or "Error")
    frames = _stack_frames(str(error.get("stack") or ""), script)
    position = _first_position(frames, script)
    if position and header == "Error: Not supported" and _is_import(script, *position):
        header = _dynamic_import_error(dynamic_import)
    lines = [header]
    if position:
        lines.append(f"  at {script.location(position[0])}")
    lines.extend(frames)
    return "\n".join(lines)


_IMPORT_CALL = re.compile(r"(?:await\s+)?import\s*\(")


def _is_import(script: Script, line: int, column: int) -> bool:
    # V8 without a module loader rejects import() with a bare "Not supported", located at
    # the import (or at the await in front of it).
    return _IMPORT_CALL.match(script.text_at(line, column)) is not None


def _dynamic_import_error(allowed: bool) -> str:
    if allowed:
        return "Error: dynamic import is not supported: JavaScript steps cannot load modules"
    return "Error: Permission denied: dynamic import (permissions.dynamic_import is false)"


def _frame_pattern(script: Script) -> re.Pattern[str]:
    name = re.escape(script.name)
    return re.compile(
        rf"(?P<open>\(|at (?:async )?){name}:(?P<line>\d+):(?P<column>\d+)(?P<close>\)?)$"
    )


def _stack_frames(stack: str, script: Script) -> list[str]:
    """The frames of a JS stack, minus the runtime's, with columns as the script counts them."""
    pattern = _frame_pattern(script)
    frames = []
    for line in stack.split("\n"):
        text = line.strip()
        if not text.startswith("at ") or "wfe:runtime" in text:
            continue
        match = pattern.search(text)
        if match and int(match["line"]) > script.line_count:
            continue  # the wrapper's call of the script's function
        frames.append("    " + pattern.sub(lambda match: _script_frame(match, script), text))
    return frames


def _script_frame(match: re.Match[str], script: Script) -> str:
    line = int(match["line"])
    column = script.column(line, int(match["column"]))
    return f"{match['open']}{script.name}:{line}:{column}{match['close']}"


def _first_position(frames: list[str], script: Script) -> tuple[int, int] | None:
    pattern = _frame_pattern(script)
    for frame in frames:
        match = pattern.search(frame.strip())
        if match:
            return int(match["line"]), int(match["column"])
    return None


_PARSE_HEADER = re.compile(r"^[^\n]*?:(\d+): (.*)$")
_MODULE_SYNTAX = ("Cannot use import statement outside a module", "Unexpected token 'export'")


def describe_syntax_error(text: str, script: Script) -> str:
    """A compile error from V8 (`<anonymous>:3: SyntaxError: ...`, source line, caret)."""
    lines = text.split("\n")
    match = _PARSE_HEADER.match(lines[0])
    if not match:
        return text.strip()
    line, header = int(match.group(1)), match.group(2)
    if line > script.line_count:  # found in our wrapper, after the script's last line
        return f"{header}\n  at the end of the script: {_UNBALANCED}"
    described = [header, f"  at {script.location(line)}", *_snippet(lines, line)]
    if any(marker in header for marker in _MODULE_SYNTAX):
        described.append(f"  hint: {_NO_MODULES}")
    return "\n".join(described)


_UNBALANCED = "are all brackets, braces, strings and comments closed, and none closed twice?"
_NO_MODULES = (
    "a JavaScript step runs as the body of an async function; "
    "ES module syntax (import/export) is not supported"
)


def _snippet(lines: list[str], line: int) -> list[str]:
    """V8's copy of the offending line and its caret underline, as the script has them."""
    if len(lines) < 3 or not lines[2].strip().startswith("^"):
        return []
    source, caret = lines[1], lines[2]
    if line == 1:
        source, caret = source[len(_SCRIPT_PREFIX) :], caret[len(_SCRIPT_PREFIX) :]
    return ["  " + source, "  " + caret[: max(len(source), 1)]]


def memory_failure(limit: int) -> StepResult:
    return StepResult.failed(f"JavaScript step exceeded its memory limit of {size_text(limit)}")


def timeout_failure(seconds: float) -> StepResult:
    return StepResult.failed(f"JavaScript step timed out after {duration_text(seconds)}")


def duration_text(seconds: float) -> str:
    milliseconds = round(seconds * 1000)
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    whole = milliseconds // 1000
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


# -- the channel: messages from JS, read straight from shared memory -------------------------


class Channel:
    """Reads the JSON messages the runtime writes into its ring buffer.

    The buffer is a SharedArrayBuffer: two int32 counters (UTF-16 units written by JS, units
    read by us; both wrap at 2**32), a wake flag, then the ring of UTF-16 units. A message is
    its length in two units, then its text. JS is the only writer of the first counter, we of
    the second. JS notifies us only when it sets the wake flag; we clear it before reading.
    """

    def __init__(self, memory: memoryview):
        self._memory: memoryview | None = memory
        self._pending = bytearray()
        self._fence = threading.Lock()

    def release(self) -> None:
        """Forget the memory: it belongs to the context, which is about to be closed."""
        self._memory = None

    def messages(self) -> list[dict[str, Any]]:
        self._read_available()
        return list(self._complete_messages())

    def _read_available(self) -> None:
        memory = self._memory
        if memory is None:
            return
        struct.pack_into("=i", memory, _WAKE_FLAG, 0)
        self._barrier()
        written, read = _HEADER.unpack_from(memory, 0)
        available = (written - read) % 2**32
        if not available:
            return
        self._barrier()
        start = read % _RING_UNITS
        first = min(available, _RING_UNITS - start)
        self._pending += memory[_unit_offset(start) : _unit_offset(start + first)]
        self._pending += memory[_unit_offset(0) : _unit_offset(available - first)]
        self._barrier()
        struct.pack_into("=i", memory, _READ_COUNTER, _int32(read + available))

    def _barrier(self) -> None:
        # JS uses Atomics (sequentially consistent); a lock round trip is our closest thing
        # to a memory fence, keeping our loads and stores of shared memory in program order.
        # Should a wake-up still slip through, the session's poll reads the ring anyway.
        with self._fence:
            pass

    def _complete_messages(self) -> Iterator[dict[str, Any]]:
        while len(self._pending) >= 4:
            low, high = struct.unpack_from("=HH", self._pending, 0)
            end = 4 + 2 * (low | high << 16)
            if len(self._pending) < end:
                return
            text = bytes(self._pending[4:end]).decode(_UTF16, errors="surrogatepass")
            del self._pending[:end]
            yield json.loads(text)


def _unit_offset(unit: int) -> int:
    return _RING_OFFSET + 2 * unit


def _int32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


# -- one step's V8 context -----------------------------------------------------------------


@dataclass
class Session:
    """One run of one script: owns the V8 context from creation to close."""

    mini_racer: ModuleType
    config: JavaScriptConfig
    request: StepRequest
    script: Script
    host: Host
    racer: Any = None
    channel: Channel | None = None
    outcome: asyncio.Future[StepResult] = field(init=False)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _notification: Any = None
    _closing: bool = False

    async def run(self) -> StepResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        self.outcome = loop.create_future()
        try:
            try:
                self._open()
            except Exception as error:
                return StepResult.failed(f"could not start the JavaScript engine: {error}")
            self._spawn(self._evaluate())
            return await self._wait(deadline)
        finally:
            self._close()

    def _open(self) -> None:
        self.racer = self.mini_racer.MiniRacer()
        self.racer.set_hard_memory_limit(self.config.memory_limit)
        # A bare JS→Python callback whose arguments we never read (see the module docstring);
        # mini-racer has no public API for one.
        self._notification = self.racer._ctx._register_js_notification(self._on_notify)
        notify = self._notification.__enter__()
        install = self.racer.eval(_RUNTIME_JS)
        self.channel = Channel(install(notify, json.dumps(self._setup())))

    def _setup(self) -> dict[str, Any]:
        values, names = readable_env(self.config, self.request)
        return {
            "ring": _RING_UNITS,
            "data": _json_text(dict(self.request.data)),
            "env": values,
            "envNames": names,
        }

    async def _evaluate(self) -> None:
        errors = self.mini_racer
        try:
            await self.racer.eval_cancelable(self.script.wrapped())
        except errors.JSParseException as error:
            self._conclude(StepResult.failed(describe_syntax_error(str(error), self.script)))
        except errors.JSOOMException:
            self._conclude(memory_failure(self.config.memory_limit))
        except errors.JSEvalException as error:
            self._conclude(StepResult.failed(f"JavaScript step stopped: {error}"))

    async def _wait(self, deadline: float) -> StepResult:
        loop = asyncio.get_running_loop()
        while not self.outcome.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._safe_pump()
                return timeout_failure(self.config.timeout)
            await asyncio.wait({self.outcome}, timeout=min(remaining, _POLL_SECONDS))
            if not self.outcome.done():
                self._safe_pump()  # in case a notification got lost; it costs little
            if self.racer.was_hard_memory_limit_reached():
                return memory_failure(self.config.memory_limit)
        return self.outcome.result()

    def _close(self) -> None:
        self._closing = True
        self._safe_pump()  # the last log lines, even of a script that is still spinning
        for task in self.tasks:
            task.cancel()
        if self.channel is not None:
            self.channel.release()
        if self._notification is not None:
            self._notification.__exit__(None, None, None)
        if self.racer is not None:
            # Terminates any JS still running (even an endless loop) and frees the isolate.
            self.racer.close()

    def _on_notify(self, _arguments: Any) -> None:
        if not self._closing:
            self._safe_pump()

    def _safe_pump(self) -> None:
        # Called from mini-racer's callback too, where an exception would only be logged by
        # asyncio and the step would hang until its timeout.
        try:
            self._pump()
        except Exception as error:
            self._conclude(StepResult.failed(f"JavaScript step: bad message from V8: {error!r}"))

    def _pump(self) -> None:
        if self.channel is None:
            return
        log = LogBatch(self.request.log)
        for message in self.channel.messages():
            self._dispatch(message, log)
        log.flush()

    def _dispatch(self, message: dict[str, Any], log: LogBatch) -> None:
        kind = message.get("k")
        if kind == "log":
            log.add(str(message["s"]), str(message["t"]))
        elif kind == "call" and not self._closing:
            self._spawn(self._serve(int(message["id"]), str(message["op"]), message["a"]))
        elif kind == "done":
            self._conclude(StepResult(StepStatus.SUCCEEDED, outputs=dict(message["o"])))
        elif kind == "fail":
            error = describe_js_error(message["e"], self.script, self._dynamic_import)
            self._conclude(StepResult.failed(error))

    @property
    def _dynamic_import(self) -> bool:
        return self.config.permissions.dynamic_import

    async def _serve(self, call_id: int, op: str, args: list[Any]) -> None:
        try:
            ok, value = True, await self.host.call(op, args)
        except HostError as error:
            ok, value = False, {"type": error.js_type, "message": str(error)}
        except Exception as error:  # JS must never see a Python traceback or a host path
            ok, value = False, {"type": "Error", "message": f"{op} failed: {type(error).__name__}"}
        answer = f"__wfe.settle({call_id}, {json.dumps(ok)}, {json.dumps(value)})"
        with contextlib.suppress(Exception):  # the context may be gone, or out of memory
            await self.racer.eval_cancelable(answer)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _conclude(self, result: StepResult) -> None:
        if not self.outcome.done():
            self.outcome.set_result(result)


@dataclass
class LogBatch:
    """Log lines of one read of the channel, passed on as one call per run of a stream."""

    sink: Callable[[str, list[str]], None]
    stream: str | None = None
    lines: list[str] = field(default_factory=list)

    def add(self, stream: str, text: str) -> None:
        if stream != self.stream:
            self.flush()
            self.stream = stream
        self.lines.extend(line.removesuffix("\r") for line in text.split("\n"))

    def flush(self) -> None:
        if self.stream is not None and self.lines:
            self.sink(self.stream, self.lines)
        self.lines = []


def readable_env(
    config: JavaScriptConfig, request: StepRequest
) -> tuple[dict[str, str], list[str]]:
    """The variables `env()` may return, and the names it may ask for: the `env` permission
    over the step's environment, plus the step's own `config.env`."""
    environment = request.process_env()
    values = {name: environment[name] for name in config.permissions.env if name in environment}
    values.update(config.env)
    return values, sorted({*config.permissions.env, *config.env})


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError:  # NaN or infinity somewhere: JSON has no spelling for them
        return json.dumps(_finite(value), default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


# -- the executor -----------------------------------------------------------------------------


class MiniRacerMissing(Exception):
    pass


def import_mini_racer() -> ModuleType:
    """py_mini_racer, imported on first use (it costs ~70 ms and is an optional extra)."""
    try:
        import py_mini_racer
    except ImportError:
        raise MiniRacerMissing(INSTALL_HINT) from None
    if not hasattr(py_mini_racer.MiniRacer, "eval_cancelable"):
        raise MiniRacerMissing(
            "JavaScript steps need mini-racer 0.14, not the old py-mini-racer: "
            "pip uninstall py-mini-racer && pip install 'wfe-yaml[js]'"
        )
    return py_mini_racer


class JavaScriptExecutor(Executor):
    """Runs a JavaScript step in a fresh V8 context; see the module docstring."""

    names = ("javascript", "js", "deno")
    config_model = JavaScriptConfig

    async def run(self, request: StepRequest) -> StepResult:
        try:
            mini_racer = import_mini_racer()
            config = _config_of(request)
            script = load_script(config, request)
        except (MiniRacerMissing, StepFailure) as failure:
            return StepResult.failed(str(failure))
        if config.modules:
            request.log("stderr", [_MODULES_WARNING])
        sandbox = Sandbox.of(config.permissions, real_path(request.workspace, "."))
        host = Host(sandbox, max_read_bytes=config.memory_limit)
        return await Session(mini_racer, config, request, script, host).run()


_MODULES_WARNING = (
    "warning: config.modules has no effect: JavaScript steps cannot load modules "
    "(use fetch() with a permissions.net entry to get data from the network)"
)


def _config_of(request: StepRequest) -> JavaScriptConfig:
    # A remote worker receives the config as plain data.
    if isinstance(request.config, JavaScriptConfig):
        return request.config
    return JavaScriptConfig.model_validate(request.config)


# -- the JavaScript side ------------------------------------------------------------------------

_RUNTIME_JS = r"""
(function install(notify, setupText) {
  "use strict";
  // Our own references: a script replacing these globals must not break the channel.
  const { stringify, parse } = JSON;
  const { load, store, exchange, wait, waitAsync } = Atomics;
  const wakeWaiter = Atomics.notify;
  const setup = parse(setupText);

  // The channel to Python (see Channel in javascript.py).
  const RING = setup.ring;
  const MASK = RING - 1;
  const buffer = new SharedArrayBuffer(12 + 2 * RING);
  const head = new Int32Array(buffer, 0, 3);
  const ring = new Uint16Array(buffer, 12, RING);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  let written = 0;

  function room() {
    for (;;) {
      const free = RING - ((written - load(head, 1)) >>> 0);
      if (free > 0) return free;
      store(head, 0, written);
      wake();
      wait(pause, 0, 0, 5);
    }
  }

  function send(message) {
    const text = stringify(message);
    for (const unit of [text.length & 0xffff, text.length >>> 16]) {
      room();
      ring[written & MASK] = unit;
      written = (written + 1) | 0;
    }
    for (let i = 0; i < text.length; ) {
      const end = Math.min(text.length, i + room());
      for (; i < end; i++) {
        ring[written & MASK] = text.charCodeAt(i);
        written = (written + 1) | 0;
      }
    }
    store(head, 0, written);
    wake();
  }

  // One notification until Python has looked: it clears the flag before it reads.
  function wake() {
    if (exchange(head, 2, 1) === 0) notify();
  }

  // Logging: strings as they are, other values as JSON.
  function show(value) {
    if (typeof value === "string") return value;
    if (value instanceof Error) return String(value.stack || value);
    if (value === undefined || typeof value === "function" || typeof value === "symbol" ||
        typeof value === "bigint") return String(value);
    try {
      const text = stringify(value);
      return text === undefined ? String(value) : text;
    } catch (error) {
      return String(value);
    }
  }

  function emit(stream, args) {
    send({ k: "log", s: stream, t: Array.prototype.map.call(args, show).join(" ") });
  }

  function log(...args) { emit("stdout", args); }

  // Data in and out.
  function inputs() { return parse(setup.data); }

  const outputs = Object.create(null);
  function output(key, value) {
    if (typeof key !== "string" || key === "") {
      throw new TypeError("output(key, value): key must be a non-empty string");
    }
    let text;
    try {
      text = stringify(value === undefined ? null : value);
    } catch (error) {
      throw new TypeError(`output '${key}': the value is not JSON-serializable (${error.message})`);
    }
    if (text === undefined) {
      throw new TypeError(`output '${key}': the value is not JSON-serializable`);
    }
    outputs[key] = parse(text);
  }

  function denied(kind, resource) {
    return new Error(`Permission denied: ${kind} access to '${resource}'`);
  }

  const envNames = new Set(setup.envNames);
  function env(name) {
    const key = String(name);
    if (!envNames.has(key)) throw denied("env", key);
    return Object.prototype.hasOwnProperty.call(setup.env, key) ? setup.env[key] : undefined;
  }

  // Host calls: a message to Python, answered later by __wfe.settle().
  const waiting = new Map();
  let lastCall = 0;

  function call(op, args) {
    const site = new Error();
    return new Promise((resolve, reject) => {
      const id = ++lastCall;
      waiting.set(id, { resolve, reject, site });
      send({ k: "call", id, op, a: args });
    });
  }

  function settle(id, ok, value) {
    const waiter = waiting.get(id);
    if (waiter === undefined) return;
    waiting.delete(id);
    if (ok) waiter.resolve(value);
    else waiter.reject(rejection(value, waiter.site));
    later(finishIfQuiet);
  }

  function rejection(info, site) {
    const error = info.type === "TypeError" ? new TypeError(info.message) : new Error(info.message);
    const frames = String(site.stack).split("\n").slice(1)
      .filter((line) => !line.includes("wfe:runtime"));
    error.stack = [`${error.name}: ${info.message}`, ...frames].join("\n");
    return error;
  }

  function text(value, what) {
    if (typeof value !== "string") throw new TypeError(`${what} must be a string`);
    return value;
  }

  async function readFile(path) {
    return call("readFile", [text(path, "readFile(path): path")]);
  }

  async function writeFile(path, content) {
    await call("writeFile", [text(path, "writeFile(path, text): path"),
                             text(content, "writeFile(path, text): text")]);
  }

  const METHODS = new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]);
  const headerMethods = {
    get(name) {
      const value = this[String(name).toLowerCase()];
      return value === undefined ? null : value;
    },
    has(name) { return Object.prototype.hasOwnProperty.call(this, String(name).toLowerCase()); },
  };

  async function fetch(url, init = {}) {
    const method = String(init.method === undefined ? "GET" : init.method).toUpperCase();
    if (!METHODS.has(method)) throw new TypeError(`fetch: unsupported method '${method}'`);
    const body = init.body === undefined ? null : init.body;
    if (body !== null && typeof body !== "string") {
      throw new TypeError("fetch: body must be a string");
    }
    if (body !== null && (method === "GET" || method === "HEAD")) {
      throw new TypeError(`fetch: a ${method} request cannot have a body`);
    }
    const given = init.headers || {};
    const headers = {};
    for (const [name, value] of Array.isArray(given) ? given : Object.entries(given)) {
      headers[String(name)] = String(value);
    }
    return response(await call("fetch", [String(url), method, headers, body]));
  }

  function response(data) {
    const headers = Object.assign(Object.create(headerMethods), data.headers);
    return Object.freeze({
      status: data.status,
      statusText: data.statusText,
      ok: data.status >= 200 && data.status < 300,
      url: data.url,
      headers,
      text: async () => data.body,
      json: async () => parse(data.body),
    });
  }

  // Timers, on Atomics.waitAsync: each fires as a task of its own, after pending microtasks.
  const timers = new Map();
  let lastTimer = 0;

  function later(callback, ms = 0) {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    const delay = Math.max(Number(ms) || 0, 0) + 0.001;
    waitAsync(cell, 0, 0, delay).value.then(callback);
    return cell;
  }

  function startTimer(callback, ms, args, repeat) {
    if (typeof callback !== "function") throw new TypeError("a timer needs a function");
    const id = ++lastTimer;
    const arm = () => {
      const cell = later(() => {
        if (timers.get(id) !== cell) return;
        if (repeat) arm(); else timers.delete(id);
        try { callback(...args); } catch (error) { fail(error); }
        later(finishIfQuiet);
      }, ms);
      timers.set(id, cell);
    };
    arm();
    return id;
  }

  function stopTimer(id) {
    const cell = timers.get(id);
    if (cell === undefined) return;
    timers.delete(id);
    wakeWaiter(cell, 0);
    later(finishIfQuiet);
  }

  // The end: the body has settled and no host call or timer is pending (Deno also runs the
  // event loop to completion), or the first uncaught error.
  let bodyDone = false;
  let finished = false;

  function finish(message) {
    if (finished) return;
    finished = true;
    send(message);
  }

  function finishIfQuiet() {
    if (bodyDone && waiting.size === 0 && timers.size === 0) finish({ k: "done", o: outputs });
  }

  function fail(error) {
    let header, stack = "";
    try {
      if (error instanceof Error) {
        header = String(error);
        stack = String(error.stack || "");
      } else {
        header = `Uncaught ${show(error)}`;
      }
    } catch (problem) {
      header = "Uncaught exception";
    }
    finish({ k: "fail", e: { header, stack } });
  }

  const console = globalThis.console || {};
  for (const [name, stream] of [["log", "stdout"], ["info", "stdout"], ["debug", "stdout"],
                                ["dir", "stdout"], ["warn", "stderr"], ["error", "stderr"],
                                ["trace", "stderr"]]) {
    console[name] = (...args) => emit(stream, args);
  }
  console.assert = (condition, ...args) => {
    if (!condition) emit("stderr", ["Assertion failed" + (args.length ? ":" : ""), ...args]);
  };

  const api = { inputs, output, log, readFile, writeFile, env, fetch };
  Object.assign(globalThis, api, {
    console,
    setTimeout: (callback, ms, ...args) => startTimer(callback, ms, args, false),
    setInterval: (callback, ms, ...args) => startTimer(callback, ms, args, true),
    clearTimeout: stopTimer,
    clearInterval: stopTimer,
    queueMicrotask: (callback) => {
      if (typeof callback !== "function") throw new TypeError("queueMicrotask needs a function");
      Promise.resolve().then(() => { try { callback(); } catch (error) { fail(error); } });
    },
    Wfe: Object.freeze({
      getData: inputs, setOutput: output, log, readFile, writeFile, env, fetch,
    }),
  });
  Object.defineProperty(globalThis, "__wfe", {
    value: Object.freeze({
      settle,
      bodySettled() { bodyDone = true; later(finishIfQuiet); },
      bodyFailed: fail,
    }),
  });
  return buffer;
})
//# sourceURL=wfe:runtime
"""
