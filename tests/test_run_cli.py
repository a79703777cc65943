"""`wfe run` as a user runs it: exit codes, reports, typed inputs, `--dry-run`, `-c`."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from wfe_yaml.report.json_report import REPORT_SCHEMA, schema_errors

RESOURCES = Path(__file__).parent / "resources" / "engine"


def test_json_report_matches_the_schema_and_tells_every_step(run_wfe: Any, tmp_path: Path) -> None:
    code, _, _ = run_wfe(
        (RESOURCES / "report.yaml").read_text(), "run", "-i", "branch=dev", "--report", "r.json"
    )
    assert code == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert schema_errors(report, REPORT_SCHEMA) == []
    assert (report["workflow"], report["status"]) == ("ci", "failed")
    assert report["outputs"] == {"branch": "dev", "version": "1.4.2", "build": 17}
    started = datetime.fromisoformat(report["started_at"])
    assert datetime.fromisoformat(report["finished_at"]) >= started
    steps = {s["path"]: s for s in report["steps"]}
    assert {path: s["status"] for path, s in steps.items()} == {
        "ci/version": "succeeded",
        "ci/checks": "succeeded",
        "ci/checks/lint": "failed",
        "ci/checks/unit[shard=1]": "succeeded",
        "ci/checks/unit[shard=2]": "succeeded",
        "ci/docs": "skipped",
        "ci/package": "failed",
        "ci/upload": "skipped",
    }
    assert steps["ci/version"]["outputs"] == {"version": "1.4.2", "build": 17}
    assert steps["ci/checks"]["type"] == "parallel"
    package = steps["ci/package"]
    assert (package["exit_code"], package["error"], package["attempts"]) == (
        4,
        "exited with code 4",
        1,
    )
    assert steps["ci/docs"]["skip_reason"] == 'condition not met: .inputs.branch == "main"'
    assert steps["ci/upload"]["skip_reason"] == "upstream failed: package"
    assert (steps["ci/upload"]["attempts"], steps["ci/upload"]["exit_code"]) == (0, None)


def test_junit_report_has_one_testcase_per_step_with_failures_and_skips(
    run_wfe: Any, tmp_path: Path
) -> None:
    code, _, _ = run_wfe(
        (RESOURCES / "report.yaml").read_text(), "run", "-i", "branch=dev", "--junit", "j.xml"
    )
    assert code == 1
    suites = ET.parse(tmp_path / "j.xml").getroot()
    assert suites.tag == "testsuites"
    (suite,) = suites.findall("testsuite")
    assert {k: suite.get(k) for k in ("name", "tests", "failures", "errors", "skipped")} == {
        "name": "ci",
        "tests": "8",
        "failures": "2",
        "errors": "0",
        "skipped": "2",
    }
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == [
        "ci/version",
        "ci/checks",
        "ci/checks/lint",
        "ci/checks/unit[shard=1]",
        "ci/checks/unit[shard=2]",
        "ci/docs",
        "ci/package",
        "ci/upload",
    ]
    failure = cases["ci/package"].find("failure")
    assert failure is not None
    assert failure.get("message") == "exited with code 4"
    assert failure.text == "exited with code 4\n\npacking 1.4.2\ndisk full"
    skipped = cases["ci/upload"].find("skipped")
    assert skipped is not None and skipped.get("message") == "upstream failed: package"
    assert list(cases["ci/version"]) == []
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["status"] == "failed"


EXIT_CASES = {
    "succeeded": ("{name: ok, type: shell, config: {run: 'true'}}", 0),
    "failed": ("{name: bad, type: shell, config: {run: 'exit 9'}}", 1),
    "suspended": (
        "{name: wait, type: shell, error_behavior: {type: suspend}, config: {run: 'exit 1'}}",
        3,
    ),
    "config error": ("{name: typo, type: shell, confg: {run: 'true'}}", 2),
}


@pytest.mark.parametrize(("step", "expected"), EXIT_CASES.values(), ids=list(EXIT_CASES))
def test_exit_codes(run_wfe: Any, step: str, expected: int) -> None:
    code, stdout, stderr = run_wfe(f"workflows:\n  - id: ci\n    steps:\n      - {step}\n", "run")
    assert code == expected, stdout + stderr


def test_a_config_error_names_the_place_and_runs_nothing(run_wfe: Any, tmp_path: Path) -> None:
    code, stdout, stderr = run_wfe(
        """
        workflows:
          - id: ci
            steps:
              - {name: first, type: shell, config: {run: 'touch ran'}}
              - {name: second, type: shell, timeout: soon, config: {run: 'true'}}
        """,
        "run",
    )
    assert code == 2
    assert stderr.startswith("workflows.yaml:6:")
    assert "error: timeout: invalid duration 'soon'" in stderr
    assert stdout == ""
    assert not (tmp_path / "ran").exists()


def test_an_unknown_workflow_is_a_usage_error(run_wfe: Any) -> None:
    code, _, stderr = run_wfe(
        "workflow: {id: ci, steps: [{name: a, type: shell, config: {run: 'true'}}]}",
        "run",
        "workflows.yaml",
        "deploy",
    )
    assert code == 2
    assert stderr == "error: no workflow 'deploy' in workflows.yaml; workflows: ci\n"


TYPED_INPUTS = """
workflows:
  - id: release
    inputs: {version: string, count: integer, tags: "list<string>", dry: "bool?"}
    steps:
      - name: show
        type: shell
        config:
          run: echo "$VERSION|$COUNT|${{ inputs.tags | join(',') }}|${{ inputs.dry }}" > shown
"""


def test_inputs_are_auto_typed_and_fit_their_declared_types(run_wfe: Any, tmp_path: Path) -> None:
    # 1.10 stays text for a string input; a JSON list fills a list<string>.
    code, stdout, stderr = run_wfe(
        TYPED_INPUTS,
        "run",
        "-i",
        "version=1.10",
        "-i",
        "count=3",
        "-i",
        'tags=["a", "b"]',
        "-i",
        "dry=true",
    )
    assert code == 0, stdout + stderr
    assert (tmp_path / "shown").read_text() == "1.10|3|a,b|true\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-i", "version=1", "-i", "tags=[]"],
            "error: workflow 'release' inputs: missing required input 'count' (integer)",
        ),
        (
            ["-i", "version=1", "-i", "count=many", "-i", "tags=[]"],
            "error: workflow 'release' inputs: inputs.count: expected integer, got string 'many'",
        ),
        (
            ["-i", "version=1", "-i", "count=1", "-i", "tags=a", "-i", "dry=maybe"],
            "error: workflow 'release' inputs: inputs.tags: expected list<string>, got string "
            "'a'; inputs.dry: expected bool?, got string 'maybe'",
        ),
        (["-i", "count"], "error: expected key=value, got 'count'"),
    ],
    ids=["missing", "wrong-type", "several", "no-equals"],
)
def test_bad_inputs_stop_the_run_before_anything_runs(
    run_wfe: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    code, stdout, stderr = run_wfe(TYPED_INPUTS, "run", *args)
    assert code == 2
    assert stderr.splitlines()[0] == message
    assert stdout == ""
    assert not (tmp_path / "shown").exists()


def test_dry_run_shows_the_plan_and_runs_nothing(run_wfe: Any, tmp_path: Path) -> None:
    code, stdout, _ = run_wfe(
        """
        config: {target: staging}
        workflows:
          - id: ci
            steps:
              - {name: build, type: shell, config: {run: 'touch built'}}
              - {name: deploy, type: shell, config: {run: 'echo to ((target))'}}
        """,
        "run",
        "--dry-run",
        "-c",
        "target=production",
    )
    assert code == 0
    assert stdout.splitlines() == [
        "workflow ci (v1)",
        "  - build [shell]",
        "      run: touch built",
        "  - deploy [shell]  (after build)",
        "      run: echo to production",
    ]
    assert not (tmp_path / "built").exists()


def test_config_values_from_the_command_line_are_interpolated_and_typed(
    run_wfe: Any, tmp_path: Path
) -> None:
    code, _, _ = run_wfe(
        """
        config: {greeting: hello, retries: 1}
        workflows:
          - id: ci
            steps:
              - name: greet
                type: shell
                error_behavior: {type: retry, max_retries: ((retries)), interval: 1ms}
                config: {run: 'echo ((greeting)) >> said; exit 1'}
        """,
        "run",
        "-c",
        "greeting=bonjour",
        "-c",
        "retries=2",
    )
    assert code == 1
    assert (tmp_path / "said").read_text() == "bonjour\nbonjour\nbonjour\n"


def test_plain_output_prefixes_lines_and_ends_with_a_summary(run_wfe: Any) -> None:
    code, stdout, _ = run_wfe(
        """
        workflows:
          - id: ci
            steps:
              - {name: hello, type: shell, config: {run: 'echo hi; echo oops >&2'}}
              - {name: later, type: shell, when: {field: .x, equals: 1}, config: {run: 'true'}}
        """,
        "run",
        "--plain",
    )
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].startswith("[ci] $ run ") and lines[0].endswith(" started")
    assert lines[1:5] == [
        "[ci/hello] $ started",
        "[ci/hello] hi",
        "[ci/hello] oops",
        lines[4],
    ]
    assert lines[4].startswith("[ci/hello] ✓ succeeded in ")
    assert lines[5] == "[ci/later] - skipped: condition not met: .x == 1"
    assert "Skipped:\n  ci/later: condition not met: .x == 1\n" in stdout
    assert lines[-1].startswith("✓ ci succeeded in ") and lines[-1].endswith("(1 skipped)")


def test_a_closed_stdout_does_not_change_the_verdict(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(
        "workflow:\n  id: ci\n  steps:\n"
        "    - {name: a, type: shell, config: {run: 'seq 1 20000'}}\n"
        "    - {name: b, type: shell, config: {run: 'touch b-ran'}}\n"
    )
    wfe = subprocess.Popen(
        [sys.executable, "-m", "wfe_yaml", "run", "--plain", "--no-store"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert wfe.stdout is not None and wfe.stderr is not None
    wfe.stdout.readline()
    wfe.stdout.close()  # like `wfe run | head -1`
    assert wfe.wait(timeout=60) == 0
    assert wfe.stderr.read() == b""
    assert (tmp_path / "b-ran").exists()
