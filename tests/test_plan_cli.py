"""`wfe plan`, `wfe graph` and `wfe schema`: what a user reads before anything runs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from executors.base import registry
from wfe_yaml.cli.main import main
from wfe_yaml.source import parse_file

RESOURCES = Path(__file__).resolve().parent / "resources" / "loader"
PLAN = "plan/workflows.yaml"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(RESOURCES)
    monkeypatch.delenv("WFE_CONFIG", raising=False)
    return CliRunner()


def invoke(cli: CliRunner, *args: str) -> Result:
    result = cli.invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


# --- wfe plan -----------------------------------------------------------------------------

CI_TREE = [
    "workflow ci (v1) — Build and test",
    "  inputs: deploy: bool",
    "  - build [shell]  (timeout 2m00s)",
    "      run: make dist",
    "      - on_failure notify [shell]",
    "          run: echo build failed",
    "  - checks [parallel]  (after build)",
    "      - lint [shell]",
    "          run: ruff check .",
    "      - unit[py=3.11] [shell]",
    "          run: pytest",
    "      - unit[py=3.12] [shell]",
    "          run: pytest",
    "  - deploy [workflow]  (after build; when .inputs.deploy == true; requires docker;"
    " on error retry)",
    "      workflow: release",
    "  - ensure clean [shell]",
    "      run: make clean",
]
RELEASE_TREE = [
    "workflow release (v1)",
    "  - upload [shell]",
    "      run: twine check dist/* … (+1 line)",
]


def test_plan_shows_every_workflow_as_a_tree(cli: CliRunner) -> None:
    result = invoke(cli, "plan", PLAN)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == CI_TREE + RELEASE_TREE


def test_plan_shows_the_workflow_settings_interpolated(cli: CliRunner) -> None:
    result = invoke(cli, "plan", "valid/full.yaml", "ci")
    assert result.stdout.splitlines()[:5] == [
        "workflow ci (v2) — Continuous integration",
        "  inputs: branch: string?, shards: list<integer>?",
        "  outputs: coverage: number",
        "  timeout: 1h00m",
        '  env: {"PYTHON": "3.11"}',
    ]


def test_plan_of_one_workflow(cli: CliRunner) -> None:
    assert invoke(cli, "plan", PLAN, "release").stdout.splitlines() == RELEASE_TREE


def test_plan_shows_configs_interpolated_with_command_line_values(cli: CliRunner) -> None:
    result = invoke(cli, "plan", PLAN, "ci", "-c", "target=wheelhouse")
    assert result.stdout.splitlines()[3] == "      run: make wheelhouse"


def test_plan_of_an_unknown_workflow_lists_the_known_ones(cli: CliRunner) -> None:
    result = invoke(cli, "plan", PLAN, "deploy")
    assert result.exit_code == 2
    assert (
        result.stderr == "error: no workflow 'deploy' in workflows.yaml; workflows: ci, release\n"
    )


def test_plan_json_is_the_resolved_plan(cli: CliRunner) -> None:
    result = invoke(cli, "plan", PLAN, "ci", "--json")
    assert result.exit_code == 0
    plan = json.loads(result.stdout)
    assert plan["source"] == str(RESOURCES / PLAN)
    assert plan["entry"] == "ci"
    [ci] = plan["workflows"]
    assert (ci["id"], ci["name"], ci["inputs"]) == ("ci", "Build and test", {"deploy": "bool"})
    assert [(s["name"], s["type"], s["needs"]) for s in ci["steps"]] == [
        ("build", "shell", []),
        ("checks", "parallel", ["build"]),
        ("deploy", "workflow", ["build"]),
    ]
    build, checks, deploy = ci["steps"]
    assert (build["config"], build["timeout"]) == ({"run": "make dist"}, "120000ms")
    assert [hook["name"] for hook in build["on_failure"]] == ["notify"]
    assert [(c["name"], c["matrix"]) for c in checks["parallel"]] == [
        ("lint", None),
        ("unit[py=3.11]", {"py": "3.11"}),
        ("unit[py=3.12]", {"py": "3.12"}),
    ]
    assert deploy["when"] == {"field": ".inputs.deploy", "equals": True}
    assert deploy["requires"] == ["docker"]
    assert deploy["error_behavior"] == {
        "type": "retry",
        "interval": "1000ms",
        "max_retries": 2,
        "backoff": 1.0,
        "max_interval": None,
        "on_exit_codes": None,
    }
    assert [hook["name"] for hook in ci["ensure"]] == ["clean"]


def test_plan_json_keeps_stdout_clean_of_warnings(cli: CliRunner) -> None:
    result = invoke(cli, "plan", "valid/warnings.yaml", "--json")
    assert json.loads(result.stdout)["workflows"][0]["id"] == "ci"
    assert result.stderr.count("warning:") == 3


# --- wfe graph ----------------------------------------------------------------------------


def test_graph_mermaid_of_the_entry_workflow(cli: CliRunner) -> None:
    result = invoke(cli, "graph", PLAN)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "flowchart TD",
        '  n_ci_build["build (shell)"]',
        '  subgraph n_ci_checks["checks (parallel)"]',
        '    n_ci_checks_lint["lint (shell)"]',
        '    n_ci_checks_unit_py_3_11_["unit[py=3.11] (shell)"]',
        '    n_ci_checks_unit_py_3_12_["unit[py=3.12] (shell)"]',
        "  end",
        '  n_ci_deploy["deploy (workflow)"]',
        "  n_ci_build --> n_ci_checks",
        "  n_ci_build --> n_ci_deploy",
    ]


def test_graph_dot(cli: CliRunner) -> None:
    result = invoke(cli, "graph", PLAN, "--format", "dot")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        'digraph "ci" {',
        "  rankdir=TB;",
        "  node [shape=box];",
        '  n_ci_build [label="build (shell)"];',
        "  subgraph cluster_n_ci_checks {",
        '    label="checks (parallel)";',
        '    n_ci_checks [label="checks", shape=point];',
        '    n_ci_checks_lint [label="lint (shell)"];',
        '    n_ci_checks_unit_py_3_11_ [label="unit[py=3.11] (shell)"];',
        '    n_ci_checks_unit_py_3_12_ [label="unit[py=3.12] (shell)"];',
        "  }",
        '  n_ci_deploy [label="deploy (workflow)"];',
        "  n_ci_build -> n_ci_checks;",
        "  n_ci_build -> n_ci_deploy;",
        "}",
    ]


def test_graph_of_a_named_workflow(cli: CliRunner) -> None:
    result = invoke(cli, "graph", PLAN, "release")
    assert result.stdout == 'flowchart TD\n  n_release_upload["upload (shell)"]\n'


def test_graph_picks_the_only_workflow_nobody_calls(cli: CliRunner) -> None:
    result = invoke(cli, "graph", "selection/one_root.yaml")
    assert result.stdout.splitlines()[1] == '  n_ci_lint["lint (workflow)"]'


def test_graph_with_several_candidates_asks_which(cli: CliRunner) -> None:
    result = invoke(cli, "graph", "selection/two_roots.yaml")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: two_roots.yaml has several workflows; say which one to run: lint, test, ci\n"
        "  hint: pass the workflow id as an argument, or set `entry:` in the file\n"
    )


def test_graph_rejects_an_unknown_format(cli: CliRunner) -> None:
    result = invoke(cli, "graph", PLAN, "--format", "svg")
    assert result.exit_code == 2
    assert "'svg' is not one of 'mermaid', 'dot'" in result.stderr


# --- wfe schema ---------------------------------------------------------------------------
# No JSON Schema library is a dependency, so a small checker of the keywords the schema uses
# stands in for an editor; a test below fails if the schema starts using any other keyword.

ANNOTATIONS = {"$schema", "$defs", "title", "description", "default", "examples"}
CHECKED = {
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "patternProperties",
    "additionalProperties",
    "required",
    "items",
    "minItems",
    "anyOf",
    "allOf",
    "if",
    "then",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "minLength",
    "pattern",
}
JSON_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class SchemaChecker:
    def __init__(self, root: dict[str, Any]):
        self.root = root

    def problems(self, value: Any, schema: Any, at: str = "$") -> list[str]:
        if schema is True or schema == {}:
            return []
        if schema is False:
            return [f"{at}: not allowed"]
        found: list[str] = []
        for keyword, argument in schema.items():
            if keyword not in ANNOTATIONS:
                found.extend(self.keyword(keyword, argument, value, schema, at))
        return found

    def keyword(self, keyword: str, arg: Any, value: Any, schema: dict[str, Any], at: str) -> Any:
        if keyword == "$ref":
            return self.problems(value, self.resolve(arg), at)
        if keyword == "type":
            kinds = arg if isinstance(arg, list) else [arg]
            ok = any(JSON_TYPES[kind](value) for kind in kinds)
            return [] if ok else [f"{at}: {value!r} is not of type {arg}"]
        if keyword in ("enum", "const"):
            allowed = arg if keyword == "enum" else [arg]
            same = any(type(value) is type(item) and value == item for item in allowed)
            return [] if same else [f"{at}: {value!r} is not one of {allowed}"]
        if keyword == "anyOf":
            return self.any_of(arg, value, at)
        if keyword == "allOf":
            return [problem for part in arg for problem in self.problems(value, part, at)]
        if keyword == "if":
            if self.problems(value, arg, at):
                return []
            return self.problems(value, schema.get("then", True), at)
        if isinstance(value, dict):
            return self.object_keyword(keyword, arg, value, schema, at)
        if isinstance(value, list):
            return self.array_keyword(keyword, arg, value, at)
        return self.scalar_keyword(keyword, arg, value, at)

    def any_of(self, options: list[Any], value: Any, at: str) -> list[str]:
        """Nothing when an option fits; else the mistakes inside the option of the value's
        shape (`workflow: {...}` against `Workflow | null`), as an editor shows them."""
        results = [self.problems(value, option, at) for option in options]
        if any(not problems for problems in results):
            return []
        for problems in results:
            if not any(problem.startswith(f"{at}: ") for problem in problems):
                return problems
        return [f"{at}: {value!r} matches no anyOf option"]

    def object_keyword(
        self, keyword: str, arg: Any, value: dict[str, Any], schema: dict[str, Any], at: str
    ) -> list[str]:
        if keyword == "required":
            return [f"{at}: missing {key!r}" for key in arg if key not in value]
        if keyword == "properties":
            return [
                p
                for k, s in arg.items()
                if k in value
                for p in self.problems(value[k], s, f"{at}.{k}")
            ]
        if keyword == "patternProperties":
            return [
                problem
                for pattern, sub in arg.items()
                for key in value
                if re.search(pattern, key)
                for problem in self.problems(value[key], sub, f"{at}.{key}")
            ]
        if keyword == "additionalProperties":
            patterns = schema.get("patternProperties", {})
            extra = [
                key
                for key in value
                if key not in schema.get("properties", {})
                and not any(re.search(pattern, key) for pattern in patterns)
            ]
            return [p for key in extra for p in self.problems(value[key], arg, f"{at}.{key}")]
        return []

    def array_keyword(self, keyword: str, arg: Any, value: list[Any], at: str) -> list[str]:
        if keyword == "items":
            return [
                p for i, item in enumerate(value) for p in self.problems(item, arg, f"{at}[{i}]")
            ]
        if keyword == "minItems" and len(value) < arg:
            return [f"{at}: fewer than {arg} items"]
        return []

    def scalar_keyword(self, keyword: str, arg: Any, value: Any, at: str) -> list[str]:
        number = JSON_TYPES["number"](value)
        failed = (
            (keyword == "minimum" and number and value < arg)
            or (keyword == "maximum" and number and value > arg)
            or (keyword == "exclusiveMinimum" and number and value <= arg)
            or (keyword == "minLength" and isinstance(value, str) and len(value) < arg)
            or (keyword == "pattern" and isinstance(value, str) and not re.search(arg, value))
        )
        return [f"{at}: {value!r} fails {keyword} {arg!r}"] if failed else []

    def resolve(self, reference: str) -> Any:
        assert reference.startswith("#/"), reference
        node: Any = self.root
        for part in reference[2:].split("/"):
            node = node[part]
        return node


def subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema object inside a schema (not the data inside `default` or `const`)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for keyword in ("properties", "patternProperties", "$defs"):
        for sub in schema.get(keyword, {}).values():
            yield from subschemas(sub)
    for keyword in ("items", "additionalProperties", "if", "then"):
        yield from subschemas(schema.get(keyword))
    for keyword in ("anyOf", "allOf"):
        for sub in schema.get(keyword, []):
            yield from subschemas(sub)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_schema_is_a_draft_2020_12_document(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "wfe-yaml workflows file"
    assert schema["type"] == "object"


def test_schema_uses_only_keywords_the_checker_knows_and_its_refs_resolve(
    schema: dict[str, Any],
) -> None:
    checker = SchemaChecker(schema)
    for sub in subschemas(schema):
        assert set(sub) <= CHECKED | ANNOTATIONS, set(sub) - CHECKED - ANNOTATIONS
        if "$ref" in sub:
            assert isinstance(checker.resolve(sub["$ref"]), dict), sub["$ref"]


def test_schema_lists_every_registered_step_type(schema: dict[str, Any]) -> None:
    step_type = schema["$defs"]["Step"]["properties"]["type"]
    assert step_type["anyOf"][0]["enum"] == registry.names()
    builtin = ["deno", "docker", "javascript", "js", "k8s", "kubernetes", "preflight", "shell"]
    assert {*builtin, "workflow"} <= set(registry.names())


@pytest.mark.parametrize(
    "name",
    [
        "valid/full.yaml",
        "valid/anchors.yaml",
        "valid/forms.yaml",
        "valid/durations.yaml",
        "valid/order.yaml",
        "valid/private_keys.yaml",
        "valid/workflow_versions.yaml",
        "valid/warnings.yaml",
        "includes/nested/main.yaml",
        PLAN,
    ],
)
def test_schema_accepts_valid_files(schema: dict[str, Any], name: str) -> None:
    data = parse_file(RESOURCES / name).data
    assert SchemaChecker(schema).problems(data, schema) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wrong_types", "$.workflow.id: 42 is not of type string"),
        ("unknown_key_step", "$.workflow.steps[0].timout: not allowed"),
        ("unknown_step_type", "$.workflow.steps[0].type: 'terraform' matches no anyOf option"),
        ("unknown_key_config", "$.workflow.steps[0].config.rnu: not allowed"),
        ("yaml11_booleans", "$.workflow.steps[0].continue_on_error: 'yes' is not of type boolean"),
        ("unknown_key_document", "$.entri: not allowed"),
    ],
)
def test_schema_rejects_what_the_loader_rejects(
    schema: dict[str, Any], name: str, expected: str
) -> None:
    data = parse_file(RESOURCES / "errors" / f"{name}.yaml").data
    assert expected in SchemaChecker(schema).problems(data, schema)


def test_schema_rejects_a_bad_duration(schema: dict[str, Any]) -> None:
    data = parse_file(RESOURCES / "errors" / "durations.yaml").data
    assert "$.workflow.timeout: '1 hour' matches no anyOf option" in SchemaChecker(schema).problems(
        data, schema
    )
