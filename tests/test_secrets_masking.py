"""Secrets are masked in every sink, and only the steps that list them see them."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import wfe_yaml

SECRET = "hunter2-super-secret"
PIPELINE = """
secrets: [API_TOKEN]
workflow:
  id: ci
  steps:
    - name: leaky
      type: shell
      secrets: [API_TOKEN]
      config:
        run: |
          echo "token is $API_TOKEN"
          printf 'b64 %s\\n' "$(printf %s "$API_TOKEN" | base64)"
          printf 'split %s' "${API_TOKEN:0:6}"; sleep 0.2; printf '%s done\\n' "${API_TOKEN:6}"
          echo "##wfe[output tok=$API_TOKEN]"
          echo "##wfe[mask runtime-value-123]"
          echo "later runtime-value-123"
    - name: blind
      type: shell
      config:
        run: |
          echo "blind sees [${API_TOKEN:-nothing}]"
          echo "earlier mask still applies: runtime-value-123"
    - name: reference
      type: shell
      config:
        env: {T: "secret:API_TOKEN"}
        run: 'test "$T" = "$EXPECTED" && echo "reference resolved: $T"'
    - name: compare
      type: shell
      when: {field: .tok, gt: 3}
      config: {run: "true"}
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    work = tmp_path_factory.mktemp("secrets")
    (work / "workflows.yaml").write_text(PIPELINE)
    env = {**os.environ, "API_TOKEN": SECRET, "EXPECTED": SECRET}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "wfe_yaml",
            "run",
            "--plain",
            "--report",
            "r.json",
            "--junit",
            "r.xml",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return work, completed.stdout + completed.stderr, completed.returncode


def every_file(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_console_output_is_masked(finished_run: tuple[Path, str, int]) -> None:
    _, output, code = finished_run
    assert code == 1  # `compare` fails: gt on a string
    assert SECRET not in output
    assert "[ci/leaky] token is ***" in output
    assert "[ci/leaky] b64 ***" in output
    assert "[ci/leaky] split *** done" in output
    assert "[ci/leaky] later ***" in output


def test_a_step_that_does_not_list_the_secret_does_not_see_it(
    finished_run: tuple[Path, str, int],
) -> None:
    _, output, _ = finished_run
    assert "[ci/blind] blind sees [nothing]" in output


def test_runtime_masks_apply_to_later_steps(finished_run: tuple[Path, str, int]) -> None:
    _, output, _ = finished_run
    assert "[ci/blind] earlier mask still applies: ***" in output


def test_secret_references_resolve_in_config_and_stay_masked(
    finished_run: tuple[Path, str, int],
) -> None:
    _, output, _ = finished_run
    assert "[ci/reference] reference resolved: ***" in output


def test_error_messages_are_masked(finished_run: tuple[Path, str, int]) -> None:
    work, output, _ = finished_run
    report = json.loads((work / "r.json").read_text())
    compare = next(step for step in report["steps"] if step["name"] == "compare")
    assert compare["status"] == "failed"
    assert "***" in compare["error"]
    assert SECRET not in output


def test_reports_log_files_and_store_hold_no_secret(
    finished_run: tuple[Path, str, int],
) -> None:
    work, _, _ = finished_run
    encoded = base64.b64encode(SECRET.encode())
    files = every_file(work)
    assert any(path.suffix == ".log" for path in files)
    for path in files:
        if path.name == "workflows.yaml":
            continue
        data = path.read_bytes()
        assert SECRET.encode() not in data, path
        assert encoded not in data, path
    report = json.loads((work / "r.json").read_text())
    assert report["outputs"]["tok"] == "***"
    with sqlite3.connect(work / ".wfe" / "wfe.db") as db:
        outputs = [row[0] for row in db.execute("select outputs from step_runs")]
    assert any('"***"' in (text or "") for text in outputs)


def test_missing_declared_secret_fails_before_any_step(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(
        "secrets: [DEPLOY_KEY]\nworkflow:\n  id: ci\n  steps:\n"
        "    - {name: a, type: shell, config: {run: 'touch ran'}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DEPLOY_KEY"}
    completed = subprocess.run(
        [sys.executable, "-m", "wfe_yaml", "run", "--plain"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "declared secret not set: DEPLOY_KEY" in completed.stderr
    assert not (tmp_path / "ran").exists()


def test_secret_from_flag_and_file(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(
        "secrets: [A, B]\nworkflow:\n  id: ci\n  steps:\n"
        "    - {name: a, type: shell, secrets: [A, B],"
        " config: {run: 'echo \"$A/$B\" > seen'}}\n"
    )
    (tmp_path / "s.env").write_text("A=from-file-a\nB=from-file-b\n")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "wfe_yaml",
            "run",
            "--plain",
            "--secret-file",
            "s.env",
            "--secret",
            "B=from-flag-b",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "seen").read_text() == "from-file-a/from-flag-b\n"


def test_python_api_result_is_masked(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(
        "secrets: [A]\nworkflow:\n  id: ci\n  steps:\n"
        "    - {name: a, type: shell, secrets: [A], config: {run: 'echo \"##wfe[output x=$A]\"'}}\n"
    )
    plan = wfe_yaml.load(tmp_path / "workflows.yaml")
    result = wfe_yaml.Engine().run(plan, secrets={"A": SECRET})
    assert result.outputs["x"] == "***"
    assert result.step("ci/a").outputs == {"x": "***"}


def test_undeclared_secret_reference_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(
        "workflow:\n  id: ci\n  steps:\n"
        "    - {name: a, type: shell, config: {run: 'true', env: {T: 'secret:NOPE'}}}\n"
    )
    with pytest.raises(wfe_yaml.ConfigError) as caught:
        wfe_yaml.load(tmp_path / "workflows.yaml")
    assert "refers to secret 'NOPE' that the file does not declare" in caught.value.format()
