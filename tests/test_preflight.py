"""Tool detection, version constraints, the preflight step and `requires:` capabilities."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from executors.base import StepRequest, StepStatus
from executors.preflight import PreflightConfig, PreflightExecutor
from tests.conftest import WAIT_LIMIT
from wfe_yaml.preflight import (
    CapabilityProbe,
    ToolReport,
    ToolSpec,
    VersionConstraint,
    detect_tool,
    find_version,
)

SYSTEM_PATH = "/usr/bin:/bin"

FAKE_TOOLS = {
    "fakepy": 'echo "Python 3.9.2"',
    "fakegit": 'echo "git version 2.43.0"',
    "fakejava": "echo 'openjdk version \"17.0.2\" 2022-01-18' >&2",
    "my-tool.x": 'echo "my-tool 1.2.0"',
    "quiet": 'echo "usage: quiet [options]"',
}


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, body in FAKE_TOOLS.items():
        script = directory / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return directory


@pytest.fixture
def env(bindir: Path) -> dict[str, str]:
    return {"PATH": f"{bindir}:{SYSTEM_PATH}"}


def detect(spec: ToolSpec, env: dict[str, str], **options: Any) -> ToolReport:
    return asyncio.run(detect_tool(spec, env, **options))


# --- versions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "version", "allowed"),
    [
        (">=3.11", "3.11.0", True),
        (">=3.11", "3.9.2", False),
        (">=3.11", "3.12.0", True),
        ("<2", "1.9.9", True),
        ("<2", "2.0", False),
        ("==1.2", "1.2.0", True),
        ("==1.2", "1.2.1", False),
        ("!=1.2", "1.2.1", True),
        ("==3.11.*", "3.11.7", True),
        ("==3.11.*", "3.12.0", False),
        ("!=3.11.*", "3.12.0", True),
        ("~=3.1", "3.9", True),
        ("~=3.1", "3.0", False),
        ("~=3.1", "4.0", False),
        ("~=3.1.2", "3.1.5", True),
        ("~=3.1.2", "3.2.0", False),
        (">=1.0,<2", "1.5", True),
        (">=1.0, <2", "2.1", False),
        (">1.0", "1.0.0", False),
        ("<=1.0", "1", True),
    ],
)
def test_version_constraints(constraint: str, version: str, allowed: bool) -> None:
    assert VersionConstraint.parse(constraint).allows(version) is allowed


@pytest.mark.parametrize("text", [">>3", "3.11", "~=3", ">=", ">=1.0,", ">=1.*", "latest"])
def test_invalid_version_constraints_name_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=f"invalid version constraint '{text}'"):
        VersionConstraint.parse(text)


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("Python 3.9.2", "3.9.2"),
        ("Python 3.12.0rc1", "3.12.0"),
        ("v20.11.1", "20.11.1"),
        ("go version go1.21.3 linux/amd64", "1.21.3"),
        ("usage: tool [options]", None),
    ],
)
def test_find_version_takes_the_first_dotted_number(output: str, version: str | None) -> None:
    assert find_version(output) == version


# --- detect_tool ------------------------------------------------------------------------------


def test_tool_on_path_reports_path_and_version(bindir: Path, env: dict[str, str]) -> None:
    report = detect(ToolSpec("fakegit"), env)
    assert report.found and report.usable
    assert report.path == str(bindir / "fakegit")
    assert report.version == "2.43.0"
    assert report.version_ok is None


def test_missing_tool_says_which_path_was_searched(bindir: Path) -> None:
    report = detect(ToolSpec("nope"), {"PATH": str(bindir)})
    assert not report.found
    assert report.how == f"not on PATH ({bindir})"


def test_too_old_tool_is_found_but_not_usable(env: dict[str, str]) -> None:
    report = detect(ToolSpec("fakepy", version=">=3.11"), env)
    assert report.found and not report.usable
    assert report.version == "3.9.2"
    assert report.version_ok is False
    assert report.how == "found 3.9.2, needs >=3.11"


def test_new_enough_tool_passes_its_constraint(env: dict[str, str]) -> None:
    report = detect(ToolSpec("fakepy", version=">=3.9,<4"), env)
    assert report.usable and report.version_ok is True


def test_version_printed_on_stderr_is_read(env: dict[str, str]) -> None:
    report = detect(ToolSpec("fakejava", version="~=17.0"), env)
    assert report.version == "17.0.2"
    assert report.usable


def test_tool_without_version_output_fails_a_constraint(env: dict[str, str]) -> None:
    report = detect(ToolSpec("quiet", version=">=1"), env)
    assert report.found and not report.usable
    assert "no version number" in report.how and "needs >=1" in report.how


def test_passing_check_replaces_the_path_lookup(env: dict[str, str]) -> None:
    report = detect(ToolSpec("postgres-ready", check="exit 0"), env)
    assert report.found and report.path is None
    assert report.how == "check `exit 0` passed"


def test_failing_check_reports_its_exit_code(env: dict[str, str]) -> None:
    report = detect(ToolSpec("fakegit", check="exit 3"), env)
    assert not report.found
    assert report.how == "check `exit 3` exited 3"


def test_check_timeout_kills_the_whole_process_group(tmp_path: Path, env: dict[str, str]) -> None:
    pid_file = tmp_path / "sleeper.pid"
    check = f"sleep 30 & echo $! > {pid_file}; wait"
    started = time.monotonic()
    # Time enough to start the sleep and write its pid first, also on a loaded machine.
    report = detect(ToolSpec("slow", check=check), env, check_timeout=2)
    assert time.monotonic() - started < 4.5
    assert report.how == f"check `{check}` timed out after 2s"
    assert_process_gone(int(pid_file.read_text()))


def test_cancelling_detection_kills_the_check(tmp_path: Path, env: dict[str, str]) -> None:
    pid_file = tmp_path / "sleeper.pid"
    spec = ToolSpec("slow", check=f"sleep 30 & echo $! > {pid_file}; wait")

    async def cancel_midway() -> None:
        task = asyncio.create_task(detect_tool(spec, env))
        await wait_for_file(pid_file)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert_process_gone(int(pid_file.read_text()))


async def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


def assert_process_gone(pid: int) -> None:
    """Gone, or a zombie nobody reaped yet (PID 1 in a container may not reap)."""
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still running")


# --- the preflight step -----------------------------------------------------------------------


def run_step(config: Any, env: dict[str, str], tmp_path: Path) -> tuple[Any, list[str]]:
    lines: list[str] = []
    request = StepRequest(
        run_id="run",
        workflow="ci",
        path="ci/preflight",
        name="preflight",
        type="preflight",
        config=config,
        working_dir=tmp_path,
        workspace=tmp_path,
        env=env,
        log=lambda stream, new: lines.extend(new),
    )
    return asyncio.run(PreflightExecutor().run(request)), lines


def test_step_outputs_use_underscores_for_dashes_and_dots(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = PreflightConfig(essential=["my-tool.x"], optional=["absent-tool"])
    result, _ = run_step(config, env, tmp_path)
    assert result.status is StepStatus.SUCCEEDED
    assert result.outputs == {
        "has_my_tool_x": True,
        "my_tool_x_version": "1.2.0",
        "has_absent_tool": False,
        "absent_tool_version": None,
    }


def test_step_logs_a_table_with_how_missing_tools_were_sought(
    bindir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    config = {"essential": ["fakegit"], "optional": ["nope", {"name": "db", "check": "exit 1"}]}
    _, lines = run_step(config, env, tmp_path)
    assert lines[0].split() == ["tool", "found", "version", "path", "kind", "note"]
    assert lines[1].split() == ["fakegit", "✓", "2.43.0", f"{bindir}/fakegit", "essential"]
    assert lines[2].split()[:5] == ["nope", "✗", "-", "-", "optional"]
    assert lines[2].endswith("not on PATH (" + f"{env['PATH']})"[:32] + "…)")
    assert lines[3].endswith("check `exit 1` exited 1")
    assert lines[0].index("kind") == lines[1].index("essential") == lines[2].index("optional")


def test_missing_essential_tools_fail_the_step_with_reasons(bindir: Path, tmp_path: Path) -> None:
    config = {"essential": ["fakegit", "git", {"name": "fakepy", "version": ">=3.11"}]}
    result, _ = run_step(config, {"PATH": str(bindir)}, tmp_path)
    assert result.status is StepStatus.FAILED
    assert result.error == (
        f"missing essential tools: git (not on PATH ({bindir})), fakepy (found 3.9.2, needs >=3.11)"
    )
    assert result.outputs["has_fakepy"] is False
    assert result.outputs["fakepy_version"] == "3.9.2"


def test_missing_optional_tools_still_succeed(env: dict[str, str], tmp_path: Path) -> None:
    config = {"essential": ["fakegit"], "optional": ["nope", {"name": "fakepy", "version": ">=4"}]}
    result, _ = run_step(config, env, tmp_path)
    assert result.status is StepStatus.SUCCEEDED
    assert result.outputs["has_nope"] is False and result.outputs["has_fakepy"] is False


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"essential": [{"name": "x", "version": ">>3"}]}, "invalid version constraint '>>3'"),
        ({}, "at least one tool"),
        ({"essential": [], "optional": []}, "at least one tool"),
        ({"essential": ["git"], "optional": ["git"]}, "tool 'git' is listed twice"),
        ({"essential": ["a-b", "a.b"]}, "would both set the output has_a_b"),
        ({"essential": [{"name": "x", "versoin": "1"}]}, "Extra inputs are not permitted"),
        ({"essential": [{"name": "two words"}]}, "a tool name is one word"),
        ({"essential": [7]}, "a tool is a name or"),
    ],
)
def test_config_mistakes_are_caught_at_load(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PreflightConfig.model_validate(config)


# --- capabilities -----------------------------------------------------------------------------


def probe_check(probe: CapabilityProbe, name: str) -> tuple[bool, str]:
    return asyncio.run(probe.check(name))


def test_capability_tool_on_path(env: dict[str, str]) -> None:
    probe = CapabilityProbe(env=env)
    assert probe_check(probe, "fakegit") == (True, "")


def test_capability_tool_missing(env: dict[str, str]) -> None:
    probe = CapabilityProbe(env=env)
    assert probe_check(probe, "redis-server-nope") == (
        False,
        "'redis-server-nope' not found on PATH",
    )


def test_custom_capability_runs_its_command(env: dict[str, str]) -> None:
    probe = CapabilityProbe({"gpu": "exit 9", "net": "true"}, env=env)
    assert probe_check(probe, "gpu") == (False, "capability 'gpu' check `exit 9` exited 9")
    assert probe_check(probe, "net") == (True, "")


def test_custom_capability_named_like_a_tool_wins(env: dict[str, str]) -> None:
    probe = CapabilityProbe({"fakegit": "exit 1"}, env=env)
    assert probe_check(probe, "fakegit")[0] is False


def test_capability_is_probed_once_for_concurrent_callers(
    tmp_path: Path, env: dict[str, str]
) -> None:
    counter = tmp_path / "counter"
    probe = CapabilityProbe({"db": f"sleep 0.2; echo probed >> {counter}"}, env=env)

    async def fifty_steps() -> list[tuple[bool, str]]:
        return await asyncio.gather(*(probe.check("db") for _ in range(50)))

    assert asyncio.run(fifty_steps()) == [(True, "")] * 50
    assert counter.read_text().splitlines() == ["probed"]


def test_skip_reason_lists_every_missing_requirement(env: dict[str, str]) -> None:
    probe = CapabilityProbe({"gpu": "exit 9"}, env=env)

    async def reasons() -> tuple[str | None, str | None]:
        return (
            await probe.skip_reason(["fakegit", "gpu", "nope", "gpu"]),
            await probe.skip_reason(["fakegit"]),
        )

    missing, none_missing = asyncio.run(reasons())
    assert missing == (
        "requires gpu: capability 'gpu' check `exit 9` exited 9; "
        "requires nope: 'nope' not found on PATH"
    )
    assert none_missing is None


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes: pytest's tmp_path can be too long.
    with tempfile.TemporaryDirectory(prefix="wfe", dir="/tmp") as directory:
        yield Path(directory)


def test_docker_available_when_the_engine_answers_ping(socket_dir: Path) -> None:
    socket_path = socket_dir / "engine.sock"
    requests: list[bytes] = []

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK")
        await writer.drain()
        writer.close()

    async def ping() -> tuple[bool, str]:
        server = await asyncio.start_unix_server(engine, path=str(socket_path))
        async with server:
            probe = CapabilityProbe(env={"DOCKER_HOST": f"unix://{socket_path}"})
            answer = await probe.check("docker")
            assert probe.docker_url == f"unix://{socket_path}"
            return answer

    assert asyncio.run(ping()) == (True, "")
    assert requests[0].startswith(b"GET /_ping HTTP/1.")


def test_docker_unavailable_names_the_address(socket_dir: Path) -> None:
    address = f"unix://{socket_dir}/missing.sock"
    available, reason = probe_check(CapabilityProbe(env={"DOCKER_HOST": address}), "docker")
    assert not available
    assert reason.startswith(f"no engine reachable at {address}")


def test_docker_engine_with_a_wrong_answer_is_unavailable(socket_dir: Path) -> None:
    socket_path = socket_dir / "engine.sock"

    async def not_docker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    async def ping() -> tuple[bool, str]:
        async with await asyncio.start_unix_server(not_docker, path=str(socket_path)):
            return await CapabilityProbe(env={"DOCKER_HOST": f"unix://{socket_path}"}).check(
                "docker"
            )

    available, reason = asyncio.run(ping())
    assert not available and "404" in reason


def test_podman_socket_is_tried_when_docker_host_is_unset(socket_dir: Path) -> None:
    probe = CapabilityProbe(env={"XDG_RUNTIME_DIR": str(socket_dir), "PATH": SYSTEM_PATH})
    if os.path.exists("/var/run/docker.sock") or os.path.exists("/run/podman/podman.sock"):
        pytest.skip("a real engine socket exists on this machine")
    available, reason = probe_check(probe, "docker")
    assert not available
    assert f"unix://{socket_dir}/podman/podman.sock" in reason
