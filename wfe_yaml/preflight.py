"""Tool and capability detection: what a preflight step and `requires:` ask of the machine.

Versions are compared as numeric release tuples, without the `packaging` dependency. A version
read from a tool's output is the first dotted number in it (`Python 3.12.0rc1` → `3.12.0`):
pre-release and build suffixes are dropped, so a release candidate counts as its release.
Missing trailing parts are zeros (`3.11` == `3.11.0`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHECK_TIMEOUT = 10.0
"""Seconds a `check:` or capability command may take before it counts as failed."""
VERSION_TIMEOUT = 5.0
"""Seconds `<tool> --version` may take."""
PING_TIMEOUT = 2.0
"""Seconds a container engine has to answer `GET /_ping`."""

_SHELL = "/bin/sh"
_OUTPUT_LIMIT = 64 * 1024
_DOTTED_VERSION = re.compile(r"\d+(?:\.\d+)+")
_RELEASE = re.compile(r"\d+(?:\.\d+)*")
_CLAUSE = re.compile(r"(~=|==|!=|>=|<=|>|<)\s*(\d+(?:\.\d+)*)(\.\*)?")
_CONSTRAINT_FORMS = "use >=, <=, >, <, ==, != or ~= and a version, e.g. '>=3.11' or '>=1.0,<2'"

Release = tuple[int, ...]


# --- versions -------------------------------------------------------------------------------


def find_version(text: str) -> str | None:
    """The first dotted version number in a tool's output, without any suffix."""
    match = _DOTTED_VERSION.search(text)
    return match.group(0) if match else None


def release_of(version: str) -> Release:
    """The numeric parts of a version string: `v3.12.0rc1` → (3, 12, 0)."""
    match = _RELEASE.search(version)
    if match is None:
        raise ValueError(f"not a version number: {version!r}")
    return tuple(int(part) for part in match.group(0).split("."))


def _padded(release: Release, length: int) -> Release:
    return release + (0,) * (length - len(release))


def _compare(left: Release, right: Release) -> int:
    length = max(len(left), len(right))
    a, b = _padded(left, length), _padded(right, length)
    return (a > b) - (a < b)


_ORDERINGS: dict[str, Callable[[int], bool]] = {
    ">=": lambda order: order >= 0,
    "<=": lambda order: order <= 0,
    ">": lambda order: order > 0,
    "<": lambda order: order < 0,
    "==": lambda order: order == 0,
    "!=": lambda order: order != 0,
}


@dataclass(frozen=True)
class VersionClause:
    """One comparison of a constraint: `>=3.11`, `~=3.1`, `==3.11.*`."""

    operator: str
    release: Release
    prefix: bool = False

    def allows(self, version: Release) -> bool:
        if self.prefix:
            same = _padded(version, len(self.release))[: len(self.release)] == self.release
            return same if self.operator == "==" else not same
        if self.operator == "~=":
            series = self.release[:-1]
            in_series = _padded(version, len(series))[: len(series)] == series
            return in_series and _compare(version, self.release) >= 0
        return _ORDERINGS[self.operator](_compare(version, self.release))


@dataclass(frozen=True)
class VersionConstraint:
    """Comma-joined clauses that must all hold: `>=1.0,<2`."""

    text: str
    clauses: tuple[VersionClause, ...]

    @classmethod
    def parse(cls, text: str) -> VersionConstraint:
        """ValueError `invalid version constraint '>>3': ...` when malformed."""
        clauses = tuple(_parse_clause(part, text) for part in text.split(","))
        return cls(text.strip(), clauses)

    def allows(self, version: str) -> bool:
        release = release_of(version)
        return all(clause.allows(release) for clause in self.clauses)

    def __str__(self) -> str:
        return self.text


def _parse_clause(part: str, whole: str) -> VersionClause:
    match = _CLAUSE.fullmatch(part.strip())
    if match is None:
        raise ValueError(f"invalid version constraint '{whole}': {_CONSTRAINT_FORMS}")
    operator, number, wildcard = match.groups()
    release = tuple(int(piece) for piece in number.split("."))
    if wildcard and operator not in ("==", "!="):
        raise ValueError(f"invalid version constraint '{whole}': '.*' only goes with == and !=")
    if operator == "~=" and len(release) < 2:
        raise ValueError(f"invalid version constraint '{whole}': ~= needs two parts, e.g. ~=3.1")
    return VersionClause(operator, release, prefix=bool(wildcard))


# --- short-lived check processes ----------------------------------------------------------


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # These are probes with nothing to save, so they get SIGKILL without a grace period.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def _reaped_on_error(process: asyncio.subprocess.Process) -> AsyncIterator[None]:
    """On timeout, cancel or any error: kill the process group, reap it, re-raise."""
    try:
        yield
    except BaseException:
        _kill_group(process)
        await process.wait()
        raise


async def _start(
    argv: list[str], env: Mapping[str, str], cwd: Path | None, *, capture: bool
) -> asyncio.subprocess.Process:
    output = asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL
    return await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=output,
        stderr=asyncio.subprocess.STDOUT if capture else asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )


def _describe_exit(code: int) -> str | None:
    if code == 0:
        return None
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    if code == 127:
        return "exited 127 (command not found)"
    return f"exited {code}"


def _describe_os_error(error: OSError) -> str:
    reason = (error.strerror or str(error)).lower()
    return f"{reason}: {error.filename}" if error.filename else reason


async def run_check(
    command: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = CHECK_TIMEOUT,
) -> str | None:
    """Run `sh -c command`: None when it exits 0, else what happened (`exited 1`, ...)."""
    try:
        process = await _start([_SHELL, "-c", command], env, cwd, capture=False)
    except OSError as error:
        return f"could not start: {_describe_os_error(error)}"
    try:
        async with _reaped_on_error(process), asyncio.timeout(timeout):
            code = await process.wait()
    except TimeoutError:
        return f"timed out after {timeout:g}s"
    return _describe_exit(code)


async def _read_bounded(stream: asyncio.StreamReader, into: bytearray) -> bool:
    """Append the stream to `into` up to the limit; whether the stream ended."""
    while len(into) < _OUTPUT_LIMIT:
        chunk = await stream.read(_OUTPUT_LIMIT - len(into))
        if not chunk:
            return True
        into += chunk
    return False


async def read_version_output(
    executable: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = VERSION_TIMEOUT,
) -> str:
    """Stdout and stderr of `<executable> --version`; what arrived before a timeout."""
    try:
        process = await _start([executable, "--version"], env, cwd, capture=True)
    except OSError:
        return ""
    assert process.stdout is not None
    output = bytearray()
    with contextlib.suppress(TimeoutError):
        async with _reaped_on_error(process), asyncio.timeout(timeout):
            if not await _read_bounded(process.stdout, output):
                _kill_group(process)
            await process.wait()
    return output.decode("utf-8", "replace")


# --- tools ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    """A tool to look for. `check` (a shell command, exit 0 = present) replaces the PATH lookup;
    `version` is a constraint such as `>=3.11` or `>=1.0,<2`."""

    name: str
    check: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class ToolReport:
    name: str
    found: bool
    path: str | None
    version: str | None
    version_ok: bool | None
    """None when no version was asked for."""
    how: str
    """How it was looked for: `not on PATH (/usr/bin:/bin)`, `found 3.9.2, needs >=3.11`."""

    @property
    def usable(self) -> bool:
        """Found, and new enough when a version was asked for."""
        return self.found and self.version_ok is not False


def search_path(env: Mapping[str, str]) -> str:
    return env.get("PATH", os.defpath)


async def detect_tool(
    spec: ToolSpec,
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    check_timeout: float = CHECK_TIMEOUT,
    version_timeout: float = VERSION_TIMEOUT,
) -> ToolReport:
    """Look for one tool. Its version is read whenever its executable is on PATH."""
    path = shutil.which(spec.name, path=search_path(env))
    found, how = await _presence(spec, path, env, cwd, check_timeout)
    if not found:
        return ToolReport(spec.name, False, path, None, None, how)
    version = None
    if path is not None:
        version = find_version(await read_version_output(path, env, cwd, version_timeout))
    return _judge_version(spec, path, version, how)


async def _presence(
    spec: ToolSpec, path: str | None, env: Mapping[str, str], cwd: Path | None, timeout: float
) -> tuple[bool, str]:
    if spec.check is not None:
        failure = await run_check(spec.check, env, cwd, timeout)
        return failure is None, f"check `{spec.check}` {failure or 'passed'}"
    if path is None:
        return False, f"not on PATH ({search_path(env)})"
    return True, "on PATH"


def _judge_version(spec: ToolSpec, path: str | None, version: str | None, how: str) -> ToolReport:
    if spec.version is None:
        return ToolReport(spec.name, True, path, version, None, how)
    constraint = VersionConstraint.parse(spec.version)
    if version is None:
        source = f"`{spec.name} --version`" if path else "PATH (to ask `--version`)"
        how = f"found, but no version number in {source}, needs {constraint}"
        return ToolReport(spec.name, True, path, None, False, how)
    if constraint.allows(version):
        return ToolReport(spec.name, True, path, version, True, how)
    return ToolReport(spec.name, True, path, version, False, f"found {version}, needs {constraint}")


# --- container engine -------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSearch:
    url: str | None
    """The first address whose engine answered, e.g. `unix:///run/podman/podman.sock`."""
    reason: str
    """Why none answered; empty when one did."""


def engine_addresses(env: Mapping[str, str]) -> list[str]:
    """Where to look for a Docker-API engine: DOCKER_HOST alone, else the current docker
    context's engine, the default socket, a rootless Docker socket, then Podman's sockets."""
    host = env.get("DOCKER_HOST", "").strip()
    if host:
        return [host]
    addresses = []
    context_host = docker_context_host(env)
    if context_host:
        addresses.append(context_host)
    addresses.append("unix:///var/run/docker.sock")
    runtime_dir = env.get("XDG_RUNTIME_DIR", "").strip()
    if runtime_dir:
        addresses.append(f"unix://{runtime_dir}/docker.sock")
        addresses.append(f"unix://{runtime_dir}/podman/podman.sock")
    addresses.append("unix:///run/podman/podman.sock")
    return list(dict.fromkeys(addresses))


def docker_context_host(env: Mapping[str, str]) -> str | None:
    """The engine address of the current docker context (`DOCKER_CONTEXT`, else
    `currentContext` of the docker CLI's config.json); None for the default context."""
    config_dir = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME") or Path.home()) / ".docker")
    name = env.get("DOCKER_CONTEXT", "").strip()
    if not name:
        current = _read_json(config_dir / "config.json").get("currentContext")
        name = current if isinstance(current, str) else ""
    if not name or name == "default":
        return None
    # Each context lives in a folder named after the digest of its name; reading the names
    # avoids depending on how the digest is made.
    for meta_file in sorted((config_dir / "contexts" / "meta").glob("*/meta.json")):
        meta = _read_json(meta_file)
        if meta.get("Name") == name:
            return _docker_endpoint(meta)
    return None


def _docker_endpoint(meta: dict[str, Any]) -> str | None:
    endpoints = meta.get("Endpoints")
    docker = endpoints.get("docker") if isinstance(endpoints, dict) else None
    host = docker.get("Host") if isinstance(docker, dict) else None
    return host if isinstance(host, str) and host else None


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; empty when the file is missing or not a JSON object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


async def find_docker_engine(env: Mapping[str, str], timeout: float = PING_TIMEOUT) -> EngineSearch:
    failures = []
    for address in engine_addresses(env):
        failure = await ping_engine(address, env, timeout)
        if failure is None:
            return EngineSearch(address, "")
        failures.append(f"{address} ({failure})")
    return EngineSearch(None, "no engine reachable at " + ", ".join(failures))


async def ping_engine(address: str, env: Mapping[str, str], timeout: float) -> str | None:
    """None when the engine at `address` answers `GET /_ping` with OK, else why not."""
    scheme = address.partition("://")[0].lower()
    if scheme not in ("unix", "tcp", "http", "https"):
        # ssh:// and friends need the docker CLI's transport; let the CLI do the asking.
        failure = await run_check("docker version", env, timeout=CHECK_TIMEOUT)
        return None if failure is None else f"`docker version` {failure}"
    try:
        async with asyncio.timeout(timeout):
            return await _http_ping(_connect(address, scheme, env))
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except OSError as error:
        return _describe_os_error(error)
    except ValueError as error:
        return f"invalid address: {error}"


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _connect(address: str, scheme: str, env: Mapping[str, str]) -> Awaitable[Connection]:
    if scheme == "unix":
        return asyncio.open_unix_connection(address[len("unix://") :])
    parts = urlsplit(address)
    tls = _tls_context(env) if scheme == "https" or _tls_wanted(env) else None
    port = parts.port or (2376 if tls else 2375)
    return asyncio.open_connection(parts.hostname or "localhost", port, ssl=tls)


def _tls_wanted(env: Mapping[str, str]) -> bool:
    return env.get("DOCKER_TLS_VERIFY", "") not in ("", "0")


def _tls_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """The client certificates the docker CLI uses (DOCKER_CERT_PATH, else ~/.docker)."""
    cert_dir = Path(env.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
    context = ssl.create_default_context(cafile=str(cert_dir / "ca.pem"))
    context.load_cert_chain(cert_dir / "cert.pem", cert_dir / "key.pem")
    return context


async def _http_ping(connecting: Awaitable[Connection]) -> str | None:
    reader, writer = await connecting
    try:
        # HTTP/1.0 keeps the answer unchunked and the connection closing.
        writer.write(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        await writer.drain()
        return await _read_ping_answer(reader)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return "no HTTP answer"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _read_ping_answer(reader: asyncio.StreamReader) -> str | None:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    status = status_line.split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/") or not status[1].isdigit():
        return "no HTTP answer"
    length = _content_length(header_lines)
    body = await (reader.readexactly(length) if length is not None else reader.read(1024))
    if status[1] != "200" or body.strip() != b"OK":
        return f"unexpected answer: {status_line.strip()}"
    return None


def _content_length(header_lines: list[str]) -> int | None:
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            return min(int(value.strip()), 1024)
    return None


# --- capabilities for `requires:` -----------------------------------------------------------


class CapabilityProbe:
    """Answers `requires:` names for one run; each name is probed once, however many ask.

    A name is, in this order: a custom capability declared under the file's `capabilities:`
    (its command must exit 0), `docker` (a Docker-API engine answers a ping), or a tool on PATH.
    """

    def __init__(
        self,
        capabilities: Mapping[str, str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        check_timeout: float = CHECK_TIMEOUT,
        ping_timeout: float = PING_TIMEOUT,
    ) -> None:
        self._capabilities = dict(capabilities or {})
        self._env = dict(os.environ if env is None else env)
        self._cwd = cwd
        self._check_timeout = check_timeout
        self._ping_timeout = ping_timeout
        self._probes: dict[str, asyncio.Task[tuple[bool, str]]] = {}
        self.docker_url: str | None = None
        """The engine address that answered, once `docker` has been checked and found."""

    async def check(self, name: str) -> tuple[bool, str]:
        """(available, why not); the reason is empty when available."""
        probe = self._probes.get(name)
        if probe is None or probe.cancelled():
            probe = asyncio.create_task(self._probe(name), name=f"capability {name}")
            self._probes[name] = probe
        # Shielded: one waiting step being cancelled must not cancel the probe others share.
        return await asyncio.shield(probe)

    async def skip_reason(self, names: Iterable[str]) -> str | None:
        """Why a step needing all of `names` must be skipped, or None when all are there."""
        unique = list(dict.fromkeys(names))
        answers = await asyncio.gather(*(self.check(name) for name in unique))
        missing = [
            f"requires {name}: {reason}"
            for name, (available, reason) in zip(unique, answers, strict=True)
            if not available
        ]
        return "; ".join(missing) or None

    async def close(self) -> None:
        """Stop probes still running (their check processes are killed)."""
        for probe in self._probes.values():
            probe.cancel()
        await asyncio.gather(*self._probes.values(), return_exceptions=True)

    async def _probe(self, name: str) -> tuple[bool, str]:
        if name in self._capabilities:
            return await self._custom(name, self._capabilities[name])
        if name == "docker":
            return await self._docker()
        return self._tool(name)

    async def _custom(self, name: str, command: str) -> tuple[bool, str]:
        failure = await run_check(command, self._env, self._cwd, self._check_timeout)
        if failure is None:
            return True, ""
        return False, f"capability '{name}' check `{command}` {failure}"

    async def _docker(self) -> tuple[bool, str]:
        search = await find_docker_engine(self._env, self._ping_timeout)
        self.docker_url = search.url
        return search.url is not None, search.reason

    def _tool(self, name: str) -> tuple[bool, str]:
        if shutil.which(name, path=search_path(self._env)):
            return True, ""
        return False, f"'{name}' not found on PATH"
