"""The javascript executor against real V8 (mini-racer), with requests built by hand."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from executors.base import StepRequest, StepResult, StepStatus
from executors.javascript import (
    INSTALL_HINT,
    JavaScriptConfig,
    JavaScriptExecutor,
    parse_memory_size,
)
from tests._requests import LogCapture, make_request

HAVE_V8 = importlib.util.find_spec("py_mini_racer") is not None
if not HAVE_V8 and os.environ.get("CI") == "true":
    raise RuntimeError(
        "py_mini_racer is missing: CI must run the JavaScript tests (pip install -e '.[js]')"
    )
needs_v8 = pytest.mark.skipif(not HAVE_V8, reason="mini-racer is not installed (the 'js' extra)")

RUNAWAY_TIMEOUT = 1.0
STOP_MARGIN = 3.0
"""The contract is a stop within timeout + 1 s; the assertion leaves room for a busy machine."""


@dataclass
class FakeContext:
    """What the engine's step context tells the executor about where the script lives."""

    source_file: str = "workflows.yaml"
    script_line: int = 14


def request_for(workspace: Path, log: LogCapture | None = None, **kwargs: Any) -> StepRequest:
    """A request for a step whose config is `kwargs`, except the StepRequest fields named here
    (so a test cannot set `config.env` this way)."""
    step = {k: kwargs.pop(k) for k in ("data", "env", "hidden_env", "context") if k in kwargs}
    return make_request(workspace, JavaScriptConfig(**kwargs), log=log, **step)


def run_js(workspace: Path, script: str | None = None, **kwargs: Any) -> StepResult:
    if script is not None:
        kwargs["script"] = script
    return asyncio.run(JavaScriptExecutor().run(request_for(workspace, **kwargs)))


def succeeded(result: StepResult) -> dict[str, Any]:
    assert result.status == StepStatus.SUCCEEDED, result.error
    return result.outputs


def failure(result: StepResult) -> str:
    assert result.status == StepStatus.FAILED, result.outputs
    assert result.error is not None
    return result.error


def contexts_alive() -> int:
    from py_mini_racer._context import context_count

    return context_count()


# -- data in and out ------------------------------------------------------------------------


@needs_v8
def test_inputs_and_outputs_keep_their_types(tmp_path: Path) -> None:
    data = {"n": 3, "f": 2.5, "s": "text", "b": True, "z": None, "l": [1, "a"], "m": {"k": [1]}}
    script = """
        const data = inputs();
        for (const [key, value] of Object.entries(data)) output(key, value);
        output("sum", data.n + data.f);
        output("whole", 4.0);
        output("missing", undefined);
    """
    outputs = succeeded(run_js(tmp_path, script, data=data))
    assert outputs == {**data, "sum": 5.5, "whole": 4, "missing": None}
    assert type(outputs["n"]) is int and type(outputs["whole"]) is int
    assert type(outputs["f"]) is float


@needs_v8
def test_inputs_returns_a_fresh_copy_each_time(tmp_path: Path) -> None:
    script = "const a = inputs(); a.l.push(9); output('l', inputs().l)"
    assert succeeded(run_js(tmp_path, script, data={"l": [1]})) == {"l": [1]}


@needs_v8
def test_unicode_survives_the_round_trip(tmp_path: Path) -> None:
    log = LogCapture()
    script = "output('s', inputs().s + ' ✓ 🚀'); log('héllo 🚀')"
    outputs = succeeded(run_js(tmp_path, script, data={"s": "zürich"}, log=log))
    assert outputs == {"s": "zürich ✓ 🚀"}
    assert log.lines() == ["héllo 🚀"]


@needs_v8
def test_last_output_wins_and_values_are_snapshots(tmp_path: Path) -> None:
    script = "const v = {a: 1}; output('v', v); v.a = 2; output('k', 1); output('k', 'two')"
    assert succeeded(run_js(tmp_path, script)) == {"v": {"a": 1}, "k": "two"}


@needs_v8
@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("output('', 1)", "key must be a non-empty string"),
        ("output('f', () => 1)", "output 'f': the value is not JSON-serializable"),
        ("output('big', 10n)", "output 'big': the value is not JSON-serializable"),
    ],
)
def test_bad_outputs_throw_catchable_type_errors(tmp_path: Path, call: str, message: str) -> None:
    script = f"try {{ {call} }} catch (e) {{ output('error', e.name + ': ' + e.message) }}"
    error = succeeded(run_js(tmp_path, script))["error"]
    assert error.startswith("TypeError: ") and message in error


@needs_v8
def test_empty_script_succeeds_with_no_outputs(tmp_path: Path) -> None:
    result = run_js(tmp_path, "")
    assert result.status == StepStatus.SUCCEEDED and result.outputs == {}


@needs_v8
def test_wfe_object_holds_the_same_functions_as_the_globals(tmp_path: Path) -> None:
    script = """
        const pairs = {getData: inputs, setOutput: output, log, readFile, writeFile, env, fetch};
        for (const [name, bare] of Object.entries(pairs)) {
            if (Wfe[name] !== bare) throw new Error(`Wfe.${name} differs`);
        }
        Wfe.setOutput("x", Wfe.getData().x + 1);
    """
    assert succeeded(run_js(tmp_path, script, data={"x": 1})) == {"x": 2}


@needs_v8
def test_top_level_await_and_return(tmp_path: Path) -> None:
    script = "const v = await Promise.resolve(5); output('v', v); return; output('never', 1)"
    assert succeeded(run_js(tmp_path, script)) == {"v": 5}


# -- logging ----------------------------------------------------------------------------------


@needs_v8
def test_console_and_log_reach_the_log_sink_like_node(tmp_path: Path) -> None:
    log = LogCapture()
    script = """
        log("plain", 1, {a: [1, "x"]}, null, undefined, true);
        console.log("two\\nlines");
        console.info("info"); console.debug("debug");
        console.warn("warn"); console.error("error", {code: 2});
    """
    succeeded(run_js(tmp_path, script, log=log))
    assert log.lines("stdout") == [
        'plain 1 {"a":[1,"x"]} null undefined true',
        "two",
        "lines",
        "info",
        "debug",
    ]
    assert log.lines("stderr") == ["warn", 'error {"code":2}']


@needs_v8
def test_logs_bigger_than_the_channel_arrive_whole_and_in_order(tmp_path: Path) -> None:
    log = LogCapture()
    script = "log('x'.repeat(1000000)); for (let i = 0; i < 20000; i++) log('line ' + i)"
    succeeded(run_js(tmp_path, script, log=log))
    lines = log.lines()
    assert lines[0] == "x" * 1_000_000
    assert lines[1:] == [f"line {i}" for i in range(20000)]


# -- files -------------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """allowed/ (readable, writable), allowedx/, secret.txt, and symlinks out of allowed/."""
    root = tmp_path / "ws"
    (root / "allowed").mkdir(parents=True)
    (root / "allowedx").mkdir()
    (root / "allowed" / "a.txt").write_text("inside ✓")
    (root / "allowedx" / "b.txt").write_text("neighbour")
    (root / "secret.txt").write_text("secret")
    (root / "allowed" / "link.txt").symlink_to(root / "secret.txt")
    (root / "allowed" / "outdir").symlink_to(root / "allowedx")
    return root


def read_outcome(workspace: Path, path: str) -> str:
    script = f"""
        try {{ output("r", "ok:" + await readFile({json.dumps(path)})) }}
        catch (e) {{ output("r", e.name + ": " + e.message) }}
    """
    return succeeded(run_js(workspace, script, permissions={"read": ["allowed"]}))["r"]


@needs_v8
@pytest.mark.parametrize(
    "path", ["allowed/a.txt", "./allowed/../allowed/a.txt", "{ws}/allowed/a.txt"]
)
def test_read_inside_the_allowlist(workspace: Path, path: str) -> None:
    assert read_outcome(workspace, path.format(ws=workspace)) == "ok:inside ✓"


@needs_v8
@pytest.mark.parametrize(
    "path",
    [
        "secret.txt",
        "allowed/../secret.txt",
        "{ws}/allowed/../secret.txt",
        "allowed/../../../../../etc/passwd",
        "/etc/passwd",
        "allowed/link.txt",
        "allowed/outdir/b.txt",
        "allowedx/b.txt",
    ],
)
def test_read_outside_the_allowlist_is_denied(workspace: Path, path: str) -> None:
    path = path.format(ws=workspace)
    assert read_outcome(workspace, path) == f"Error: Permission denied: read access to '{path}'"


@needs_v8
def test_read_is_denied_without_a_permission(workspace: Path) -> None:
    script = "await readFile('allowed/a.txt')"
    result = run_js(workspace, script)
    assert failure(result).startswith("Error: Permission denied: read access to 'allowed/a.txt'")


@needs_v8
def test_host_errors_reach_js_without_host_paths(workspace: Path) -> None:
    message = read_outcome(workspace, "allowed/missing.txt")
    assert (
        message == "Error: readFile: cannot read 'allowed/missing.txt': No such file or directory"
    )
    assert str(workspace) not in message


@needs_v8
def test_write_inside_the_allowlist(workspace: Path) -> None:
    script = """
        await writeFile("allowed/new.txt", "written ✓\\n");
        await Wfe.writeFile("allowed/a.txt", "x");
    """
    succeeded(run_js(workspace, script, permissions={"write": ["allowed"]}))
    assert (workspace / "allowed" / "new.txt").read_text() == "written ✓\n"
    assert (workspace / "allowed" / "a.txt").read_text() == "x"


@needs_v8
@pytest.mark.parametrize(
    "path", ["secret.txt", "allowed/../new.txt", "allowed/link.txt", "allowed/outdir/c.txt"]
)
def test_write_outside_the_allowlist_is_denied(workspace: Path, path: str) -> None:
    script = f"""
        try {{ await writeFile({json.dumps(path)}, "bad") }}
        catch (e) {{ output("r", e.message) }}
    """
    outputs = succeeded(
        run_js(workspace, script, permissions={"write": ["allowed"], "read": ["."]})
    )
    assert outputs == {"r": f"Permission denied: write access to '{path}'"}
    assert (workspace / "secret.txt").read_text() == "secret"
    assert not (workspace / "new.txt").exists() and not (workspace / "allowedx" / "c.txt").exists()


@needs_v8
def test_a_large_file_round_trips(workspace: Path) -> None:
    text = "0123456789abcdef" * 400_000  # 6.4 MB, many times the channel's size
    (workspace / "allowed" / "big.txt").write_text(text)
    script = """
        const text = await readFile("allowed/big.txt");
        await writeFile("allowed/copy.txt", text);
        output("length", text.length);
    """
    result = run_js(workspace, script, permissions={"read": ["allowed"], "write": ["allowed"]})
    assert succeeded(result) == {"length": len(text)}
    assert (workspace / "allowed" / "copy.txt").read_text() == text


@needs_v8
def test_file_script_runs_relative_to_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "check.js").write_text(
        "output('ok', true);\n\nthrow new Error('late');\n"
    )
    result = run_js(tmp_path, file="scripts/check.js")
    assert failure(result).splitlines()[:3] == [
        "Error: late",
        "  at scripts/check.js:3",
        "    at scripts/check.js:3:7",
    ]


@needs_v8
def test_missing_script_file_fails_the_step(tmp_path: Path) -> None:
    result = run_js(tmp_path, file="nope.js")
    assert failure(result) == "JavaScript file not found: nope.js"


# -- environment --------------------------------------------------------------------------------


@needs_v8
def test_env_reads_only_listed_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFE_JS_TEST_RUNNER", "runner")
    monkeypatch.setenv("WFE_JS_TEST_SECRET", "hidden from steps")
    script = """
        output("step", env("STEP_VAR"));
        output("runner", env("WFE_JS_TEST_RUNNER"));
        output("unset", env("UNSET_BUT_LISTED") === undefined);
        output("secret", env("WFE_JS_TEST_SECRET") === undefined);
        try { Wfe.env("NOT_LISTED") } catch (e) { output("denied", e.message) }
    """
    listed = ["STEP_VAR", "WFE_JS_TEST_RUNNER", "UNSET_BUT_LISTED", "WFE_JS_TEST_SECRET"]
    result = run_js(
        tmp_path,
        script,
        env={"STEP_VAR": "step", "NOT_LISTED": "x"},
        hidden_env=frozenset({"WFE_JS_TEST_SECRET"}),
        permissions={"env": listed},
    )
    assert succeeded(result) == {
        "step": "step",
        "runner": "runner",
        "unset": True,
        "secret": True,
        "denied": "Permission denied: env access to 'NOT_LISTED'",
    }


@needs_v8
def test_config_env_is_readable_without_a_permission(tmp_path: Path) -> None:
    request = make_request(
        tmp_path,
        JavaScriptConfig(script="output('own', env('OWN'))", env={"OWN": 1}),
    )
    result = asyncio.run(JavaScriptExecutor().run(request))
    assert succeeded(result) == {"own": "1"}


# -- network ------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        if self.path == "/json":
            self._reply(200, json.dumps({"hello": "world"}).encode(), "application/json")
        elif self.path == "/redirect-out":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/json")
            self.end_headers()
        elif self.path == "/huge":
            self._reply(200, b"x" * (10 * 1024 * 1024 + 1), "text/plain")
        else:
            self._reply(404, b"not here", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = {"body": body.decode(), "type": self.headers["Content-Type"]}
        self._reply(201, json.dumps(echo).encode(), "application/json")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


def fetch_outcome(tmp_path: Path, code: str, net: list[str]) -> dict[str, Any]:
    script = f"try {{ {code} }} catch (e) {{ output('error', e.name + ': ' + e.message) }}"
    return succeeded(run_js(tmp_path, script, permissions={"net": net}))


@needs_v8
def test_fetch_get_from_an_allowed_host(tmp_path: Path, server: str) -> None:
    code = f"""
        const r = await fetch("{server}/json");
        output("status", r.status); output("ok", r.ok);
        output("type", r.headers.get("Content-Type"));
        output("body", await r.json());
    """
    assert fetch_outcome(tmp_path, code, ["127.0.0.1"]) == {
        "status": 200,
        "ok": True,
        "type": "application/json",
        "body": {"hello": "world"},
    }


@needs_v8
def test_fetch_post_and_error_statuses(tmp_path: Path, server: str) -> None:
    code = f"""
        const r = await Wfe.fetch("{server}/echo", {{
            method: "POST", body: "payload", headers: {{"Content-Type": "text/x-test"}}
        }});
        output("post", [r.status, await r.json()]);
        const missing = await fetch("{server}/missing");
        output("missing", [missing.status, missing.ok, await missing.text()]);
    """
    assert fetch_outcome(tmp_path, code, ["127.0.0.1"]) == {
        "post": [201, {"body": "payload", "type": "text/x-test"}],
        "missing": [404, False, "not here"],
    }


@needs_v8
def test_fetch_to_a_host_not_listed_is_denied(tmp_path: Path, server: str) -> None:
    code = f"await fetch('{server}/json')"
    outputs = fetch_outcome(tmp_path, code, ["example.com"])
    assert outputs == {"error": "Error: Permission denied: net access to '127.0.0.1'"}


@needs_v8
def test_fetch_redirect_to_a_host_not_listed_is_denied(tmp_path: Path, server: str) -> None:
    code = f"await fetch('{server}/redirect-out')"
    outputs = fetch_outcome(tmp_path, code, ["127.0.0.1"])
    assert outputs == {"error": "Error: Permission denied: net access to 'localhost'"}


@needs_v8
@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("await fetch('file:///etc/passwd')", "TypeError: fetch: only http and https URLs"),
        ("await fetch('{server}/json', {method: 'TRACE'})", "TypeError: fetch: unsupported method"),
        ("await fetch('{server}/json', {body: 'x'})", "TypeError: fetch: a GET request cannot"),
        ("await fetch('{server}/huge')", "Error: fetch: the response is larger than 10 MB"),
    ],
)
def test_fetch_rejects_bad_requests(tmp_path: Path, server: str, code: str, error: str) -> None:
    outputs = fetch_outcome(tmp_path, code.replace("{server}", server), ["127.0.0.1"])
    assert outputs["error"].startswith(error)


# -- timers ---------------------------------------------------------------------------------------


@needs_v8
def test_timers_and_the_event_loop_run_to_completion(tmp_path: Path) -> None:
    script = """
        await new Promise((resolve) => setTimeout(resolve, 5));
        setTimeout((v) => output("late", v), 20, "arg");
        const cancelled = setTimeout(() => output("cancelled", true), 10);
        clearTimeout(cancelled);
        let ticks = 0;
        const interval = setInterval(() => { if (++ticks === 3) clearInterval(interval) }, 1);
        setTimeout(() => output("ticks", ticks), 50);
        readFile("missing.txt").catch((e) => output("unawaited", e.message));
        queueMicrotask(() => output("micro", true));
    """
    assert succeeded(run_js(tmp_path, script)) == {
        "late": "arg",
        "ticks": 3,
        "unawaited": "Permission denied: read access to 'missing.txt'",
        "micro": True,
    }


@needs_v8
def test_an_error_thrown_in_a_timer_fails_the_step(tmp_path: Path) -> None:
    result = run_js(tmp_path, "setTimeout(() => { throw new Error('in timer') }, 1)")
    assert failure(result).startswith("Error: in timer")


# -- errors ---------------------------------------------------------------------------------------


@needs_v8
def test_thrown_error_names_the_yaml_line(tmp_path: Path) -> None:
    script = "const a = 1;\nfunction check() {\n  throw new Error('boom');\n}\ncheck();\n"
    result = run_js(tmp_path, script, context=FakeContext(script_line=14))
    assert failure(result).splitlines() == [
        "Error: boom",
        "  at workflows.yaml:16 (script line 3)",
        "    at check (script.js:3:9)",
        "    at script.js:5:1",
    ]


@needs_v8
def test_error_on_the_first_line_has_script_columns(tmp_path: Path) -> None:
    result = run_js(tmp_path, "null.x", context=FakeContext(script_line=7))
    assert failure(result).splitlines() == [
        "TypeError: Cannot read properties of null (reading 'x')",
        "  at workflows.yaml:7 (script line 1)",
        "    at script.js:1:6",
    ]


@needs_v8
def test_syntax_error_names_the_yaml_line(tmp_path: Path) -> None:
    result = run_js(tmp_path, "log('a');\nlet x = ;\n", context=FakeContext(script_line=20))
    assert failure(result).splitlines() == [
        "SyntaxError: Unexpected token ';'",
        "  at workflows.yaml:21 (script line 2)",
        "  let x = ;",
        "          ^",
    ]


@needs_v8
def test_errors_without_a_yaml_position_name_the_script_line(tmp_path: Path) -> None:
    result = run_js(tmp_path, "\nthrow new RangeError('r')")
    assert failure(result).splitlines()[:2] == ["RangeError: r", "  at script line 2"]


@needs_v8
def test_thrown_non_errors_and_module_syntax(tmp_path: Path) -> None:
    assert failure(run_js(tmp_path, "throw {code: 3}")) == 'Uncaught {"code":3}'
    module = failure(run_js(tmp_path, "import fs from 'fs'"))
    assert module.startswith("SyntaxError: Cannot use import statement outside a module")
    assert "hint: a JavaScript step runs as the body of an async function" in module


@needs_v8
@pytest.mark.parametrize(
    ("allowed", "header"),
    [
        (False, "Error: Permission denied: dynamic import (permissions.dynamic_import is false)"),
        (True, "Error: dynamic import is not supported: JavaScript steps cannot load modules"),
    ],
)
def test_dynamic_import(tmp_path: Path, allowed: bool, header: str) -> None:
    (tmp_path / "lib.js").write_text("export const x = 1;\n")
    permissions = {"dynamic_import": allowed, "read": ["."]}
    result = run_js(tmp_path, "log('a');\nawait import('./lib.js')", permissions=permissions)
    assert failure(result).splitlines()[:2] == [header, "  at script line 2"]


# -- limits ----------------------------------------------------------------------------------------

RUNAWAYS = {
    "sync loop": "while (true) {}",
    "loop after await": "await null;\nwhile (true) {}",
    "loop after a host call": "try { await readFile('x') } catch (e) {}\nwhile (true) {}",
    "loop after a log line": "log('spinning');\nawait null;\nwhile (true) {}",
    "never-settling promise": "await new Promise(() => {})",
    "endless timers": "setInterval(() => {}, 1)",
}


@needs_v8
@pytest.mark.parametrize("script", RUNAWAYS.values(), ids=RUNAWAYS.keys())
def test_runaway_scripts_are_stopped_by_the_timeout(tmp_path: Path, script: str) -> None:
    alive_before = contexts_alive()
    started = time.monotonic()
    result = run_js(tmp_path, script, timeout=f"{RUNAWAY_TIMEOUT:.0f}s")
    elapsed = time.monotonic() - started
    assert failure(result) == "JavaScript step timed out after 1s"
    assert elapsed < RUNAWAY_TIMEOUT + STOP_MARGIN
    assert contexts_alive() == alive_before
    assert succeeded(run_js(tmp_path, "output('after', 1)")) == {"after": 1}


@needs_v8
def test_log_lines_before_a_runaway_are_kept(tmp_path: Path) -> None:
    log = LogCapture()
    # The timeout also covers starting V8, which can take a while on a loaded machine.
    result = run_js(tmp_path, "log('before');\nwhile (true) {}", timeout="2s", log=log)
    assert failure(result) == "JavaScript step timed out after 2s"
    assert log.lines() == ["before"]


@needs_v8
def test_cancelling_the_task_stops_a_runaway_script(tmp_path: Path) -> None:
    async def scenario() -> None:
        spinning = asyncio.Event()

        def sink(stream: str, lines: list[str]) -> None:
            spinning.set()

        request = make_request(
            tmp_path,
            JavaScriptConfig(script="log('go'); await null; while (true) {}", timeout="60s"),
            log=sink,  # type: ignore[arg-type]
        )
        alive_before = contexts_alive()
        task = asyncio.ensure_future(JavaScriptExecutor().run(request))
        await asyncio.wait_for(spinning.wait(), timeout=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)
        assert contexts_alive() == alive_before
        after = await JavaScriptExecutor().run(request_for(tmp_path, script="output('a', 1)"))
        assert succeeded(after) == {"a": 1}

    asyncio.run(scenario())


@needs_v8
@pytest.mark.parametrize(
    "script",
    [
        "const a = []; while (true) a.push('x'.repeat(1000) + a.length);",
        "await null; const a = []; while (true) a.push({n: a.length, s: 'y'.repeat(100)});",
    ],
    ids=["sync", "after await"],
)
def test_memory_bomb_fails_with_the_memory_message(tmp_path: Path, script: str) -> None:
    result = run_js(tmp_path, script, memory_limit="64MB", timeout="60s")
    assert failure(result) == "JavaScript step exceeded its memory limit of 64 MB"
    assert succeeded(run_js(tmp_path, "output('after', 1)")) == {"after": 1}


@needs_v8
def test_parallel_steps_run_at_the_same_time(tmp_path: Path) -> None:
    """Each step writes its file, then waits for the other's: run one after the other, the
    first would wait forever (until its timeout). Then both spin 300 ms synchronously; their
    intervals overlap only if the two V8 contexts really run in parallel."""

    def side(mine: str, theirs: str) -> str:
        return f"""
            await writeFile("{mine}", "ready");
            for (;;) {{
                try {{ await readFile("{theirs}"); break; }}
                catch (e) {{ await new Promise((resolve) => setTimeout(resolve, 5)); }}
            }}
            const start = Date.now();
            while (Date.now() < start + 300) {{}}
            output("interval", [start, Date.now()]);
        """

    async def both() -> list[StepResult]:
        permissions = {"read": ["."], "write": ["."]}
        steps = [
            request_for(tmp_path, script=side(*files), permissions=permissions, timeout="20s")
            for files in (("a.txt", "b.txt"), ("b.txt", "a.txt"))
        ]
        return await asyncio.gather(*(JavaScriptExecutor().run(step) for step in steps))

    first, second = (succeeded(result)["interval"] for result in asyncio.run(both()))
    assert first[0] < second[1] and second[0] < first[1]


# -- config -----------------------------------------------------------------------------------


def test_run_permission_is_refused_at_validation() -> None:
    with pytest.raises(ValidationError) as caught:
        JavaScriptConfig.model_validate({"script": "1", "permissions": {"run": True}})
    (error,) = caught.value.errors()
    assert error["loc"] == ("permissions", "run")
    assert "JavaScript steps cannot run subprocesses: permissions.run must be false" in error["msg"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "needs 'script' or 'file'"),
        ({"script": "1", "file": "a.js"}, "'script' and 'file' exclude each other"),
        ({"script": "1", "permissions": {"net": ["https://api.github.com"]}}, "host names"),
        ({"script": "1", "permissions": {"net": ["localhost:8080"]}}, "host names"),
        ({"script": "1", "permissions": {"nett": []}}, "Extra inputs are not permitted"),
        ({"script": "1", "timeout": "soon"}, "invalid duration"),
        ({"script": "1", "timeout": 0}, "timeout must be longer than 0"),
        ({"script": "1", "memory_limit": "lots"}, "invalid memory size"),
        ({"script": "1", "memory_limit": "4GB"}, "memory_limit must be between 8 MB and 1 GB"),
    ],
)
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        JavaScriptConfig.model_validate(config)


def test_config_defaults_and_wfe_keys() -> None:
    config = JavaScriptConfig.model_validate(
        {"script": "1", "modules": ["npm:lodash"], "env": {"A": 1, "B": True}}
    )
    assert config.timeout == 300 and config.memory_limit == 256 * 1024**2
    assert config.permissions.run is False and config.permissions.net == []
    assert config.env == {"A": "1", "B": "true"}


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (64 * 1024**2, 64 * 1024**2),
        ("256MB", 256 * 1024**2),
        ("512Mi", 512 * 1024**2),
        ("1G", 1024**3),
        ("1gib", 1024**3),
        ("65536K", 64 * 1024**2),
        ("0.5G", 512 * 1024**2),
    ],
)
def test_memory_sizes(value: Any, size: int) -> None:
    assert parse_memory_size(value) == size


def test_executor_names() -> None:
    assert JavaScriptExecutor.names == ("javascript", "js", "deno")
    assert JavaScriptExecutor.config_model is JavaScriptConfig


def test_importing_the_executor_does_not_import_v8() -> None:
    code = "import sys, executors.javascript; print('py_mini_racer' in sys.modules)"
    printed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert printed.stdout.strip() == "False"


def test_missing_mini_racer_fails_the_step_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "py_mini_racer", None)  # makes `import` raise ImportError
    error = failure(run_js(tmp_path, "output('a', 1)"))
    assert (
        error == INSTALL_HINT == "JavaScript steps need the 'js' extra: pip install 'wfe-yaml[js]'"
    )


@needs_v8
def test_modules_are_accepted_with_a_warning(tmp_path: Path) -> None:
    log = LogCapture()
    result = run_js(tmp_path, "output('a', 1)", modules=["npm:lodash@4"], log=log)
    assert succeeded(result) == {"a": 1}
    assert log.lines("stderr")[0].startswith("warning: config.modules has no effect")
