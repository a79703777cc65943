"""`wfe validate` as a user runs it: every mistake positioned, exit codes, no traceback ever."""

from __future__ import annotations

import gc
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

import wfe_yaml
from tests.conftest import WFE, wfe_environment
from wfe_yaml import __version__
from wfe_yaml.cli.main import VERBS, main

RESOURCES = Path(__file__).resolve().parent / "resources" / "loader"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def wfe(*args: str, cwd: Path = RESOURCES) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WFE, *args],
        cwd=cwd,
        env=wfe_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """In-process `wfe`, run from the resources folder so paths print as written here."""
    monkeypatch.chdir(RESOURCES)
    for name in ("WFE_CONFIG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def invoke(cli: CliRunner, *args: str, env: dict[str, str] | None = None) -> Result:
    result = cli.invoke(main, list(args), env=env)
    # A crash would show up as an exception other than the exit.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


# --- real processes: exit codes, streams ----------------------------------------------------


def test_three_different_mistakes_are_printed_in_one_run() -> None:
    completed = wfe("validate", "errors/three_mistakes.yaml")
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.splitlines() == [
        "errors/three_mistakes.yaml:6:13: error: unknown step type 'terraform'",
        "  hint: known types: deno, docker, javascript, js, k8s, kubernetes, preflight, shell,"
        " workflow",  # a fresh process: only the built-in executors
        "errors/three_mistakes.yaml:10:7: error: unknown key 'timout' in step 'test'",
        "  hint: did you mean 'timeout'?",
        "errors/three_mistakes.yaml:14:15: error: step 'deploy' needs unknown step 'tset'",
        "  hint: did you mean 'test'?",
        "3 errors",
    ]


def test_a_valid_file_says_ok_on_stdout_and_exits_0() -> None:
    completed = wfe("validate", "valid/full.yaml")
    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout == "full.yaml: ok (2 workflows: ci, cover; 8 steps)\n"


def test_an_alias_bomb_is_refused_quickly_and_cleanly() -> None:
    completed = wfe("validate", "bad_inputs/bomb.yaml")
    assert completed.returncode == 2
    assert completed.stderr == (
        "bad_inputs/bomb.yaml:7:8: error: document expands to too many nodes (alias bomb?)\n"
        "  hint: aliases here expand the document past 1,000,000 values\n"
    )


def imported_modules(*args: str) -> set[str]:
    """Top-level packages a `wfe` command imports, read from `python -X importtime`."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "wfe_yaml", *args],
        cwd=RESOURCES,
        env=wfe_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.startswith("import time:")]
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines}
    assert "wfe_yaml" in names  # the measure works
    return names


def test_version_imports_neither_pydantic_nor_jinja2() -> None:
    modules = imported_modules("--version")
    assert "click" in modules
    assert {"pydantic", "pydantic_core", "jinja2", "yaml"} & modules == set()


def test_validate_imports_no_docker_mini_racer_or_celery() -> None:
    modules = imported_modules("validate", "valid/full.yaml")
    assert "pydantic" in modules
    assert {"docker", "py_mini_racer", "celery", "kombu", "redis"} & modules == set()


# --- every kind of bad input: a positioned message, exit 2, no traceback ------------------

BAD = {
    "empty.yaml": [
        "bad_inputs/empty.yaml:1:1: error: empty.yaml is empty: it needs a `workflow:` or"
        " `workflows:` section"
    ],
    "garbage.bin": [
        "bad_inputs/garbage.bin:1:1: error: file is not valid UTF-8 text (byte 0x89 at line 1)",
        "  hint: save the file as UTF-8; a YAML workflow file is text",
    ],
    "latin1.yaml": [
        "bad_inputs/latin1.yaml:2:10: error: file is not valid UTF-8 text (byte 0xe9 at line 2)",
        "  hint: save the file as UTF-8; a YAML workflow file is text",
    ],
    "deep.yaml": ["bad_inputs/deep.yaml:1:210: error: nesting deeper than 200 levels"],
    "syntax.yaml": [
        "bad_inputs/syntax.yaml:5:1: error: YAML syntax error: did not find expected ',' or '}'",
        "  hint: while parsing a flow mapping (line 4)",
    ],
    "": ["error: bad_inputs is a directory, not a file"],
    "missing.yaml": ["error: file not found: bad_inputs/missing.yaml"],
}


@pytest.mark.parametrize(("name", "expected"), BAD.items(), ids=[n or "directory" for n in BAD])
def test_bad_input_is_a_config_error(cli: CliRunner, name: str, expected: list[str]) -> None:
    result = invoke(cli, "validate", f"bad_inputs/{name}")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == expected


@pytest.mark.parametrize("verb", ["plan", "graph"])
def test_other_verbs_report_config_errors_the_same_way(cli: CliRunner, verb: str) -> None:
    result = invoke(cli, verb, "errors/needs_unknown.yaml")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "errors/needs_unknown.yaml:9:22: error: step 'deploy' needs unknown step 'tset'",
        "  hint: did you mean 'test'?",
    ]


def test_warnings_go_to_stderr_and_do_not_fail(cli: CliRunner) -> None:
    result = invoke(cli, "validate", "valid/warnings.yaml")
    assert result.exit_code == 0
    assert result.stdout == "warnings.yaml: ok (1 workflow: ci; 2 steps)\n"
    assert result.stderr.splitlines() == [
        "valid/warnings.yaml:4:3: warning: shared_volume is a WFE Kubernetes setting and is"
        " ignored here",
        "valid/warnings.yaml:8:7: warning: a step's `inputs:` is a WFE key with no effect here;"
        " it is ignored",
        "valid/warnings.yaml:12:21: warning: condition reads output 'wheel' that neither the"
        " workflow's `outputs:` nor any step's `outputs:` declares",
    ]


def test_a_single_error_has_no_count_line(cli: CliRunner) -> None:
    result = invoke(cli, "validate", "errors/step_cycle.yaml")
    assert result.stderr == (
        "errors/step_cycle.yaml:6:14: error: steps depend on each other in a cycle:"
        " a -> c -> b -> a\n"
    )


# --- which file ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        ("yaml", "workflows.yaml: ok (1 workflow: from-workflows-yaml; 1 step)"),
        ("yml", "workflows.yml: ok (1 workflow: from-workflows-yml; 1 step)"),
        ("wfe", "wfe.yaml: ok (1 workflow: from-wfe-yaml; 1 step)"),
        ("both", "workflows.yml: ok (1 workflow: from-workflows-yml; 1 step)"),
    ],
)
def test_without_a_file_the_default_names_are_tried_in_order(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, directory: str, expected: str
) -> None:
    monkeypatch.chdir(RESOURCES / "default" / directory)
    result = invoke(cli, "validate")
    assert (result.exit_code, result.stdout) == (0, expected + "\n")


def test_without_any_workflows_file_the_error_names_what_was_looked_for(tmp_path: Path) -> None:
    completed = wfe("validate", cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr == (
        f"error: no workflows file in {tmp_path}: looked for workflows.yaml, workflows.yml,"
        " wfe.yaml\n  hint: pass the file as an argument: wfe run path/to/workflows.yaml\n"
    )


# --- variables from the command line ------------------------------------------------------


def test_dash_c_supplies_variables_the_file_lacks(cli: CliRunner) -> None:
    args = ["validate", "interpolation/unresolved.yaml", "-c", "regoin=eu"]
    result = invoke(cli, *args, "-c", "release.tag=v1")
    assert (result.exit_code, result.stdout) == (
        0,
        "unresolved.yaml: ok (1 workflow: ci; 1 step)\n",
    )


def test_a_dash_c_that_nothing_uses_is_named_with_the_likely_name(
    cli: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "workflows.yaml").write_text(
        "config: {coverage_threshold: 85, build: {tag: dev}}\n"
        "workflow:\n  id: ci\n  steps:\n"
        "    - {name: a, type: shell, config: {run: 'echo ((coverage_threshold)) ((build.tag))'}}\n"
    )
    file = str(tmp_path / "workflows.yaml")
    result = invoke(cli, "validate", file, "-c", "coverge_threshold=90", "-c", "nothing=1")
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: -c coverge_threshold=… sets a variable that nothing in the files uses\n"
        "  hint: did you mean 'coverage_threshold'?\n"
        "warning: -c nothing=… sets a variable that nothing in the files uses\n"
        "  hint: variables the files use: build, build.tag, coverage_threshold\n"
    )
    used = ("coverage_threshold=90", "build.tag=v1", "build.tag.x=1")
    for assignment in used:
        assert invoke(cli, "validate", file, "-c", assignment).stderr == "", assignment


def test_a_dash_c_is_not_questioned_where_expressions_read_config(
    cli: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "workflows.yaml").write_text(
        "workflow:\n  id: ci\n  steps:\n"
        "    - {name: a, type: shell, config: {run: 'echo ${{ config.region }}'}}\n"
    )
    result = invoke(cli, "validate", str(tmp_path / "workflows.yaml"), "-c", "region=eu")
    assert (result.exit_code, result.stderr) == (0, "")


def test_config_file_and_wfe_config_supply_variables(cli: CliRunner) -> None:
    result = invoke(
        cli,
        "validate",
        "interpolation/unresolved.yaml",
        "--config-file",
        "interpolation/precedence-config.yaml",
        env={"WFE_CONFIG": '{"regoin": "eu", "release": {"tag": "v1"}}'},
    )
    assert result.exit_code == 0, result.stderr


def test_a_missing_config_file_is_an_error(cli: CliRunner) -> None:
    result = invoke(cli, "validate", "valid/full.yaml", "--config-file", "nowhere.yaml")
    assert (result.exit_code, result.stderr) == (2, "error: file not found: nowhere.yaml\n")


def test_a_dash_c_without_equals_is_an_error(cli: CliRunner) -> None:
    result = invoke(cli, "validate", "valid/full.yaml", "-c", "threshold")
    assert (result.exit_code, result.stderr) == (2, "error: expected key=value, got 'threshold'\n")


# --- the command itself -------------------------------------------------------------------


def test_version(cli: CliRunner) -> None:
    result = invoke(cli, "--version")
    assert (result.exit_code, result.stdout) == (0, f"wfe, version {__version__}\n")


def test_help_lists_every_verb(cli: CliRunner) -> None:
    result = invoke(cli, "--help")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line]
    assert listed == list(VERBS)


def test_the_cli_reference_documents_every_command_and_option() -> None:
    sections = re.split(r"^## ", (DOCS / "cli.md").read_text(), flags=re.MULTILINE)
    by_title = {section.splitlines()[0].strip("`"): section for section in sections[1:]}
    context = click.Context(main)
    for verb in VERBS:
        section = by_title[f"wfe {verb}"]
        command = main.get_command(context, verb)
        assert command is not None
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                longest = max(param.opts, key=len)
                assert f"`{longest}" in section, f"wfe {verb}: {longest} is not documented"


def test_an_unknown_option_is_a_usage_error(cli: CliRunner) -> None:
    result = invoke(cli, "validate", "--strict")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith("Error: No such option")


# --- the reference's examples -------------------------------------------------------------

FENCE = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
FILE_DIRECTIVE = re.compile(r"^# file: (.+)$", re.MULTILINE)


def reference_examples() -> list[tuple[str, dict[str, str]]]:
    """(id, files) per example of yaml-reference.md; a `# file: NAME` example is a file the
    next example uses, as in the guides."""
    found = []
    pending: dict[str, str] = {}
    for index, text in enumerate(FENCE.findall((DOCS / "yaml-reference.md").read_text())):
        named = FILE_DIRECTIVE.search(text)
        pending[named.group(1).strip() if named else "workflows.yaml"] = text
        if not named:
            found.append((f"yaml-reference.md#{index}", pending))
            pending = {}
    return found


EXAMPLES = reference_examples()


@pytest.mark.parametrize("files", [files for _, files in EXAMPLES], ids=[i for i, _ in EXAMPLES])
def test_every_reference_example_is_a_valid_file(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    plan = wfe_yaml.load(tmp_path / "workflows.yaml", environ={})
    assert plan.warnings == ()


def test_the_reference_has_examples() -> None:
    assert len(EXAMPLES) > 30


@pytest.mark.parametrize("enabled_before", [True, False])
def test_loading_leaves_the_garbage_collector_as_it_was(
    cli: CliRunner, enabled_before: bool
) -> None:
    # Loading pauses the collector; a long-lived `wfe` must not be left without one.
    (gc.enable if enabled_before else gc.disable)()
    try:
        assert invoke(cli, "validate", "valid/full.yaml").exit_code == 0
        assert invoke(cli, "validate", "errors/three_mistakes.yaml").exit_code == 2
        assert gc.isenabled() is enabled_before
    finally:
        gc.enable()
