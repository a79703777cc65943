"""`wfe_yaml.load`: whole files in, a Plan or every positioned mistake out.

The files are in tests/resources/loader/. Unit tests of the YAML reader and of `((var))` live in
test_source.py and test_interpolate.py; these go through the public loader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import wfe_yaml
from executors.base import registry
from wfe_yaml.errors import ConfigError
from wfe_yaml.plan import Plan, PlanStep, PlanWorkflow

RESOURCES = Path(__file__).resolve().parent / "resources" / "loader"


def load(name: str, **options: Any) -> Plan:
    options.setdefault("environ", {})
    return wfe_yaml.load(RESOURCES / name, **options)


def reported(name: str, **options: Any) -> list[str]:
    """Every mistake of a file as `path:line:col: message` (plus hint), path from RESOURCES."""
    options.setdefault("environ", {})
    with pytest.raises(ConfigError) as caught:
        wfe_yaml.load(RESOURCES / name, **options)
    return [shown(error) for error in caught.value.errors]


def shown(error: ConfigError) -> str:
    assert error.mark is not None, error.message
    where = f"{os.path.relpath(error.mark.file, RESOURCES)}:{error.mark.line}:{error.mark.col}"
    return f"{where}: {error.message}" + (f"\n  hint: {error.hint}" if error.hint else "")


def step(workflow: PlanWorkflow, name: str) -> PlanStep:
    found = {s.name: s for s in _walk(workflow.steps + workflow.ensure)}
    return found[name]


def _walk(steps: tuple[PlanStep, ...]) -> list[PlanStep]:
    found: list[PlanStep] = []
    for item in steps:
        found.append(item)
        found.extend(_walk(item.children))
        for kind in ("on_success", "on_failure", "ensure", "compensate"):
            found.extend(_walk(item.hooks(kind)))
    return found


def run_text(plan: Plan, workflow: str, name: str) -> Any:
    return step(plan.workflows[workflow], name).config["run"]


# --- a realistic file ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def full() -> Plan:
    return wfe_yaml.load(RESOURCES / "valid" / "full.yaml", environ={})


def test_the_python_api_is_the_loader() -> None:
    from wfe_yaml.loader import load as loader_load

    assert wfe_yaml.load is loader_load
    assert wfe_yaml.ConfigError is ConfigError


def test_full_file_compiles_every_workflow_in_file_order(full: Plan) -> None:
    assert list(full.workflows) == ["ci", "cover"]
    ci = full.workflows["ci"]
    assert (ci.name, ci.description, ci.version, ci.timeout) == (
        "Continuous integration",
        "lint, test, measure coverage",
        2,
        3600.0,
    )
    assert {k: str(v) for k, v in ci.inputs.items()} == {
        "branch": "string?",
        "shards": "list<integer>?",
    }
    assert full.secrets == ("PYPI_TOKEN",)
    assert full.capabilities == {"gpu": "nvidia-smi"}
    assert full.warnings == ()


def test_steps_run_in_order_unless_they_say_what_they_need(full: Plan) -> None:
    ci = full.workflows["ci"]
    assert [(s.name, s.type, s.needs) for s in ci.steps] == [
        ("preflight", "preflight", ()),
        ("lint", "shell", ("preflight",)),
        ("tests", None, ("lint",)),
        ("docs", "javascript", ("lint",)),
        ("cover", "workflow", ("docs",)),
        ("publish", "shell", ("cover",)),
    ]


def test_parallel_children_and_hooks_are_attached_where_written(full: Plan) -> None:
    ci = full.workflows["ci"]
    tests = step(ci, "tests")
    assert [(child.name, child.needs) for child in tests.children] == [
        ("unit", ()),
        ("integration", ()),
    ]
    assert [hook.name for hook in step(ci, "integration").ensure] == ["compose-down"]
    assert step(ci, "integration").requires == ("docker",)
    assert [hook.name for hook in ci.ensure] == ["clean"]


def test_the_workflow_error_behavior_is_the_default_of_its_steps(full: Plan) -> None:
    ci = full.workflows["ci"]
    lint = step(ci, "lint").error_behavior
    assert (lint.type, lint.max_retries, lint.interval, lint.backoff) == ("retry", 2, 5.0, 2.0)
    assert step(ci, "unit").error_behavior.type == "retry"
    assert step(ci, "publish").error_behavior.type == "continue"
    assert full.workflows["cover"].steps[0].error_behavior.type == "terminate"


def test_configs_are_validated_by_their_executor(full: Plan) -> None:
    docs = step(full.workflows["ci"], "docs")
    assert docs.static_config.script == "output('pages', 3)"
    assert docs.static_config.timeout == 30.0
    assert docs.timeout == 30.0


# --- anchors, merge keys, templates -----------------------------------------------------


def test_an_alias_reuses_a_template_whole() -> None:
    whole = step(load("valid/anchors.yaml").workflows["ci"], "whole")
    assert whole.config == {
        "shell": "bash",
        "timeout": "5m",
        "run": "make all",
        "env": {"CI": "true", "LANG": "C"},
    }
    assert (whole.error_behavior.type, whole.error_behavior.max_retries) == ("retry", 4)


def test_a_merge_key_takes_the_template_and_explicit_keys_override_it() -> None:
    override = step(load("valid/anchors.yaml").workflows["ci"], "override")
    assert override.config == {
        "shell": "bash",
        "env": {"CI": "true", "LANG": "C"},
        "timeout": "30s",
        "run": "make",
    }
    assert override.timeout == 30.0


def test_merge_is_shallow_so_a_nested_map_replaces_the_templates() -> None:
    shallow = step(load("valid/anchors.yaml").workflows["ci"], "shallow")
    assert shallow.config["env"] == {"DEBUG": "1"}
    assert shallow.config["shell"] == "bash"


def test_keys_starting_with_underscore_are_ignored_at_every_level() -> None:
    ci = load("valid/private_keys.yaml").workflows["ci"]
    assert [s.name for s in _walk(ci.steps)] == ["build", "clean"]


# --- short forms, order, durations, versions --------------------------------------------


def test_a_single_item_stands_for_a_list_and_env_scalars_become_text() -> None:
    plan = load("valid/forms.yaml")
    ci = plan.workflows["ci"]
    build = step(ci, "build")
    assert plan.secrets == ("PYPI_TOKEN",)
    assert ci.requires == ("git",)
    assert ci.env == {"CI": "true", "JOBS": "4", "RATIO": "0.5"}
    assert [hook.name for hook in ci.ensure] == ["clean"]
    assert (build.requires, build.secrets, build.runs_on) == (("gpu",), ("PYPI_TOKEN",), ("linux",))
    assert [(ref.name, ref.path) for ref in build.outputs] == [
        ("wheel", None),
        ("sdist", "dist_file"),
    ]
    assert [hook.name for hook in build.on_failure] == ["notify"]


def test_needs_and_matrix_decide_the_order() -> None:
    ci = load("valid/order.yaml").workflows["ci"]
    instances = ["test[py=3.11,os=linux]", "test[py=3.11,os=mac]"]
    instances += ["test[py=3.12,os=linux]", "test[py=3.12,os=mac]"]
    assert [(s.name, s.needs) for s in ci.steps] == [
        ("fetch", ()),
        ("build", ("fetch",)),
        ("docs", ()),
        *[(name, ("build", "docs")) for name in instances],
        ("report", tuple(instances)),
    ]
    assert ci.steps[3].matrix == {"py": "3.11", "os": "linux"}
    assert ci.steps[3].group == "test"


def test_durations_in_every_accepted_form() -> None:
    ci = load("valid/durations.yaml").workflows["ci"]
    assert ci.timeout == 5400.0
    assert [s.timeout for s in ci.steps] == [0.25, 30.0, 300.0, 1.5, 120.0, None]
    retry = ci.steps[-1].error_behavior
    assert (retry.interval, retry.max_interval, retry.backoff, retry.max_retries) == (
        2.0,
        60.0,
        2.0,
        0,
    )


def test_workflow_steps_accept_version_and_workflow_version() -> None:
    ci = load("valid/workflow_versions.yaml").workflows["ci"]
    assert [(s.static_config.version, s.static_config.workflow_version) for s in ci.steps] == [
        (None, 2),
        (2, None),
        (2, 2),
    ]


def test_step_names_are_unique_per_workflow_not_per_file() -> None:
    plan = load("valid/same_names_in_two_workflows.yaml")
    assert [wf.steps[0].name for wf in plan.workflows.values()] == ["check", "check"]


def test_unimplemented_wfe_keys_and_unknown_outputs_are_warnings() -> None:
    plan = load("valid/warnings.yaml")
    assert [shown(warning) for warning in plan.warnings] == [
        "valid/warnings.yaml:4:3: shared_volume is a WFE Kubernetes setting and is ignored here",
        "valid/warnings.yaml:8:7: a step's `inputs:` is a WFE key with no effect here; it is"
        " ignored",
        "valid/warnings.yaml:12:21: condition reads output 'wheel' that neither the workflow's"
        " `outputs:` nor any step's `outputs:` declares",
    ]


# --- includes -----------------------------------------------------------------------------


def test_nested_includes_bring_their_workflows_relative_to_each_file() -> None:
    plan = load("includes/nested/main.yaml")
    assert list(plan.workflows) == ["ci", "lint", "release"]
    assert [os.path.relpath(path, RESOURCES) for path in plan.files] == [
        "includes/nested/main.yaml",
        "includes/nested/ci/lint.yaml",
        "includes/nested/ci/lib/release.yaml",
    ]
    assert plan.workflows["release"].source == RESOURCES / "includes/nested/ci/lib/release.yaml"


def test_a_diamond_include_loads_the_shared_file_once() -> None:
    plan = load("includes/diamond/main.yaml")
    assert list(plan.workflows) == ["ci", "left", "shared", "right"]
    assert [path.name for path in plan.files] == [
        "main.yaml",
        "left.yaml",
        "shared.yaml",
        "right.yaml",
    ]


def test_an_include_cycle_is_an_error_naming_the_chain() -> None:
    assert reported("includes/cycle/main.yaml") == [
        "includes/cycle/b.yaml:2:5: include cycle: main.yaml -> a.yaml -> b.yaml -> main.yaml"
    ]


def test_every_missing_include_is_reported_at_its_entry() -> None:
    missing = RESOURCES / "includes" / "missing"
    assert reported("includes/missing/main.yaml") == [
        "includes/missing/main.yaml:2:5: included file not found: common.yaml"
        f" (resolved to {missing / 'common.yaml'})",
        "includes/missing/main.yaml:3:5: included file not found: ci/gone.yaml"
        f" (resolved to {missing / 'ci' / 'gone.yaml'})",
    ]


def test_on_duplicate_ids_across_files_the_first_definition_wins() -> None:
    plan = load("includes/override/main.yaml")
    assert list(plan.workflows) == ["ci", "build"]
    assert [s.name for s in plan.workflows["ci"].steps] == ["mine"]


def test_a_mistake_in_an_included_file_names_that_file() -> None:
    assert reported("includes/broken/main.yaml") == [
        "includes/broken/steps.yaml:5:15: unknown step type 'shel'\n  hint: did you mean 'shell'?"
    ]


def test_an_included_file_must_define_workflows() -> None:
    assert reported("includes/empty/main.yaml") == [
        "includes/empty/empty.yaml:1:1: empty.yaml is empty: it needs a `workflow:` or"
        " `workflows:` section"
    ]


# --- interpolation ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interpolated() -> PlanWorkflow:
    plan = wfe_yaml.load(RESOURCES / "interpolation" / "variables.yaml", environ={})
    return plan.workflows["ci"]


def test_a_whole_scalar_reference_keeps_the_variables_type(interpolated: PlanWorkflow) -> None:
    first = interpolated.steps[0]
    assert [s.name for s in interpolated.steps] == ["test[shard=1]", "test[shard=2]"]
    assert first.error_behavior.max_retries == 3
    assert first.timeout == 90.0
    assert interpolated.env == {"VERBOSE": "true"}


def test_embedded_references_and_nested_paths_become_text(interpolated: PlanWorkflow) -> None:
    assert interpolated.steps[0].config["run"].splitlines()[0] == 'echo "testing on python:3.12"'


def test_shell_arithmetic_is_left_alone(interpolated: PlanWorkflow) -> None:
    assert interpolated.steps[0].config["run"].splitlines()[1] == 'echo "shard $((1 + 2)) of 3"'


def test_an_unresolved_variable_is_an_error_at_its_line_inside_a_script() -> None:
    assert reported("interpolation/unresolved.yaml") == [
        "interpolation/unresolved.yaml:10:27: unresolved variable 'regoin'\n"
        "  hint: did you mean 'region'?",
        "interpolation/unresolved.yaml:10:44: unresolved variable 'release.tag'\n"
        "  hint: defined variables: region",
    ]


PRECEDENCE = "interpolation/precedence.yaml"
PRECEDENCE_CONFIG = RESOURCES / "interpolation" / "precedence-config.yaml"
WFE_CONFIG = {"WFE_CONFIG": '{"c": "env", "d": "env"}'}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "echo file file file file"),
        ({"config_file": PRECEDENCE_CONFIG}, "echo file config-file config-file config-file"),
        (
            {"config_file": PRECEDENCE_CONFIG, "environ": WFE_CONFIG},
            "echo file config-file env env",
        ),
        (
            {
                "config_file": PRECEDENCE_CONFIG,
                "environ": WFE_CONFIG,
                "assignments": [("d", "cli")],
            },
            "echo file config-file env cli",
        ),
        ({"environ": WFE_CONFIG, "assignments": [("c", "cli")]}, "echo file file cli env"),
        ({"assignments": [("a", "cli")], "config": {"a": "api"}}, "echo api file file file"),
    ],
    ids=["file", "config-file", "WFE_CONFIG", "-c", "-c over WFE_CONFIG", "config argument"],
)
def test_variable_sources_in_rising_precedence(options: dict[str, Any], expected: str) -> None:
    assert run_text(load(PRECEDENCE, **options), "ci", "show") == expected


def test_an_assignment_to_a_dotted_name_overrides_one_nested_value() -> None:
    plan = load("interpolation/variables.yaml", assignments=[("image.tag", "3.13")])
    assert run_text(plan, "ci", "test[shard=1]").splitlines()[0] == 'echo "testing on python:3.13"'


def test_a_bad_wfe_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load(PRECEDENCE, environ={"WFE_CONFIG": "[1, 2]"})
    assert caught.value.format() == (
        "error: WFE_CONFIG is not a JSON object: got a list\n"
        """  hint: for example: WFE_CONFIG='{"coverage_threshold": 90}'"""
    )


# --- choosing the workflow ----------------------------------------------------------------


def test_the_workflow_argument_wins_over_entry() -> None:
    assert load("selection/entry.yaml").workflow("ci").id == "ci"


def test_without_an_argument_entry_decides() -> None:
    assert load("selection/entry.yaml").workflow().id == "release"


def test_without_entry_the_only_workflow_nobody_calls_is_chosen() -> None:
    assert load("selection/one_root.yaml").workflow().id == "ci"


def test_several_candidates_are_an_error_listing_them() -> None:
    with pytest.raises(ConfigError) as caught:
        load("selection/two_roots.yaml").workflow()
    assert caught.value.format() == (
        "error: two_roots.yaml has several workflows; say which one to run: lint, test, ci\n"
        "  hint: pass the workflow id as an argument, or set `entry:` in the file"
    )


def test_an_unknown_workflow_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        load("selection/one_root.yaml").workflow("deploy")
    assert (
        caught.value.format() == "error: no workflow 'deploy' in one_root.yaml; workflows: ci, lint"
    )


# --- every mistake, with its exact text and position --------------------------------------

HINT_UNIQUE = (
    "\n  hint: step names must be unique within a workflow, hooks and parallel children too"
)
DURATIONS = "use 250ms, 30s, 5m, 1h, 1h30m, or a whole number of milliseconds"
TYPES = "use string, number, integer, bool, any, T?, list<T>, map<T>"
# Other tests may register executors of their own: these lists are filled in from the registry
# when a test runs.
KNOWN_TYPES = "\n  hint: known types: <names>"
PRIMARY_TYPES = "<primary names>"

MISTAKES: dict[str, list[str]] = {
    # the document's shape
    "both_shapes": ["4:1: use either `workflow:` or `workflows:`, not both"],
    "no_workflow": [
        "1:1: no_workflow.yaml defines no workflow: add a `workflow:` or `workflows:` section"
    ],
    "empty_workflows": ["1:12: `workflows:` is empty"],
    "null_workflow": ["1:10: `workflow:` is empty"],
    "not_a_reference": ["2:11: workflow must be a mapping, got string '(('"],
    "top_level_list": [
        "1:1: the top level of top_level_list.yaml must be a mapping with `workflow:`, not a list"
    ],
    "duplicate_workflow_id": [
        "4:9: duplicate workflow id 'ci'\n  hint: workflow ids must be unique in a file"
    ],
    "entry_unknown": [
        "1:8: entry 'deploy' is not a workflow of this file\n  hint: workflows: ci, release"
    ],
    # unknown keys, anywhere, with a did-you-mean
    "unknown_key_document": [
        "1:1: unknown key 'entri' at the top level\n  hint: did you mean 'entry'?"
    ],
    "unknown_key_workflow": [
        "3:3: unknown key 'versoin' in workflow 'ci'\n  hint: did you mean 'version'?"
    ],
    "unknown_key_step": [
        "6:7: unknown key 'timout' in step 'test'\n  hint: did you mean 'timeout'?"
    ],
    "unknown_key_hook": [
        "10:9: unknown key 'confg' in step 'cleanup'\n  hint: did you mean 'config'?"
    ],
    "unknown_key_config": [
        "7:9: unknown key 'rnu' in the shell config of step 'test'\n  hint: did you mean 'run'?"
    ],
    "unknown_key_nested": [
        "6:30: unknown key 'intervall' in readiness\n  hint: did you mean 'interval'?",
        "10:37: unknown key 'max_retry' in error_behavior\n  hint: did you mean 'max_retries'?",
    ],
    "unknown_step_type": ["5:13: unknown step type 'terraform'" + KNOWN_TYPES],
    # a mistake in a template is shown where the template says it, not where it is used
    "anchor_error": [f"4:14: timeout: invalid duration '5 minutes': {DURATIONS}"],
    # values of the wrong kind
    "wrong_types": [
        "2:7: id must be a string, got integer 42",
        '3:16: env.PATHS must be a string, got list ["a", "b"]',
        "7:14: needs must be a list, got string 'setup'",
        "8:15: config must be a mapping, got string 'run make'",
        "9:7: steps[1] must be a mapping, got string 'just a string'",
    ],
    "union_types": [
        "6:16: command must be a list or a string, got integer 5",
        "7:25: http must be a mapping or a whole number, got string '/health'",
    ],
    "yaml11_booleans": [
        "6:26: continue_on_error must be true or false, got string 'yes'",
        "7:18: fail_fast must be true or false, got string 'off'",
    ],
    "numbers": [
        "3:12: version must be a whole number, got string '2'",
        "7:21: max_parallel must be at least 1, got integer 0",
        "9:50: max_retries must be at least 0, got integer -1",
        "9:63: backoff must be at least 1.0, got number 0.5",
    ],
    "choices": [
        "6:30: type must be one of terminate, retry, continue, suspend, compensate; got string"
        " 'retyr'\n  hint: did you mean 'retry'?",
        "10:42: pull must be one of always, if-not-present, never; got string 'sometimes'",
    ],
    "durations": [
        f"3:12: timeout: invalid duration '1 hour': {DURATIONS}",
        "7:16: timeout: expected a duration (250ms, 30s, 5m, 1h, 1h30m, or a whole number of"
        " milliseconds), got 1.5: add a unit",
        f"8:47: interval: invalid duration '5 sec': {DURATIONS}",
        f"9:38: timeout: invalid duration '1d': {DURATIONS}",
    ],
    "type_strings": [
        f"3:20: inputs.branch: unknown type 'strin': {TYPES}; did you mean 'string'?",
        f"3:35: inputs.shards: unknown type 'int' in 'list<int>': {TYPES}; did you mean 'integer'?",
        "3:57: inputs.retries: a type is a string like 'string', 'integer?' or 'list<string>',"
        " got integer 3",
    ],
    # steps and their configs
    "step_shapes": [
        "5:7: step 'both' has both 'type' and 'parallel': a parallel block runs its children and"
        " has no type of its own",
        f"8:7: step 'neither' needs a 'type' ({PRIMARY_TYPES}) or a 'parallel' list",
        "11:17: parallel block 'empty-block' has no steps",
        "12:7: missing required key 'name' in step",
    ],
    "shell_config": [
        "6:15: a shell step needs 'run' or 'file'",
        "9:15: 'run' and 'file' exclude each other",
        "11:13: step 'no-config' has no config: a shell step needs 'run' or 'file'",
    ],
    "hooks": [
        "10:9: hook 'clean' cannot have 'needs'",
        "14:9: a hook cannot be a parallel block",
    ],
    "matrix_empty": ["8:13: matrix key 'os' has no values"],
    "expression_syntax": [
        "6:21: ${{ inputs.name : syntax error: unexpected end of template, expected 'end of"
        " print statement'"
    ],
    "undeclared_secret": [
        "7:29: step 'publish' lists secret 'GITHUB_TOKEN' that the file does not declare\n"
        "  hint: add it to the top-level `secrets: [GITHUB_TOKEN]`"
    ],
    "undeclared_secret_reference": [
        "8:21: step 'notify' refers to secret 'SLACK_HOOK' that the file does not declare\n"
        "  hint: add it to the top-level `secrets: [SLACK_HOOK]`"
    ],
    # names and dependencies
    "duplicate_step": [
        "7:13: duplicate step name 'build' in workflow 'ci' (first used at line 4)" + HINT_UNIQUE
    ],
    "duplicate_hook": [
        "11:13: duplicate step name 'notify' in workflow 'ci' (first used at line 8)" + HINT_UNIQUE
    ],
    "duplicate_parallel_child": [
        "12:17: duplicate step name 'lint' in workflow 'ci' (first used at line 4)" + HINT_UNIQUE
    ],
    "needs_unknown": [
        "9:22: step 'deploy' needs unknown step 'tset'\n  hint: did you mean 'test'?"
    ],
    "needs_other_level": [
        "9:15: step 'report' needs unknown step 'unit'\n"
        "  hint: 'unit' is not at this level: a step can only need its siblings"
    ],
    "step_cycle": ["6:14: steps depend on each other in a cycle: a -> c -> b -> a"],
    # workflows calling workflows
    "workflow_unknown": [
        "6:28: step 'cover' calls unknown workflow 'covr'\n  hint: did you mean 'cover'?"
    ],
    "workflow_cycle": ["2:5: workflows call each other in a cycle: a -> b -> a"],
    "workflow_versions": ["6:17: 'version' and 'workflow_version' disagree: give one of them"],
    "undeclared_output": [
        "3:31: workflow 'ci' declares output 'report' that no step produces\n"
        "  hint: add `outputs: [{name: report}]` to the step that produces it"
    ],
    # conditions
    "when_structure": [
        "6:56: comparison on '.branch' has 2 operators (equals, not_equals): use exactly one",
        "12:14: a condition needs exactly one of all, any, none, one_of, not, but has 2 (all, any)",
        "16:13: when: comparison on '.branch' needs an operator (equals, not_equals, gt, gte, lt,"
        " lte, contains, is_null, is_not_null)",
        "20:37: unknown key 'equal' in condition; did you mean 'equals'?",
        "24:13: a string `when:` must be an expression like ${{ inputs.deploy }}",
        "28:33: gt needs a number, got string 'many'",
    ],
    "when_types": [
        "7:21: condition reads undeclared input 'brnch'; declared inputs: branch, count, tag;"
        " did you mean 'branch'?",
        "11:41: gt needs a number, but input 'branch' is string",
        "15:46: contains needs a string or a list, but input 'count' is integer",
        "19:45: is_null needs an optional type (like string?) or any, but input 'count' is integer",
    ],
    # several at once
    "three_mistakes": [
        "6:13: unknown step type 'terraform'" + KNOWN_TYPES,
        "10:7: unknown key 'timout' in step 'test'\n  hint: did you mean 'timeout'?",
        "14:15: step 'deploy' needs unknown step 'tset'\n  hint: did you mean 'test'?",
    ],
}


def test_the_built_in_step_types_are_registered() -> None:
    builtin = ["deno", "docker", "javascript", "js", "k8s", "kubernetes", "preflight", "shell"]
    assert {*builtin, "workflow"} <= set(registry.names())
    primary = ["docker", "javascript", "kubernetes", "preflight", "shell", "workflow"]
    assert set(primary) <= set(registry.primary_names())


@pytest.mark.parametrize(("name", "expected"), MISTAKES.items(), ids=list(MISTAKES))
def test_each_mistake_is_reported_exactly_where_it_is(name: str, expected: list[str]) -> None:
    assert reported(f"errors/{name}.yaml") == [
        f"errors/{name}.yaml:{with_step_types(line)}" for line in expected
    ]


def with_step_types(text: str) -> str:
    text = text.replace("<primary names>", ", ".join(registry.primary_names()))
    return text.replace("<names>", ", ".join(registry.names()))


def test_every_mistake_file_is_in_the_table() -> None:
    assert sorted(path.stem for path in (RESOURCES / "errors").glob("*.yaml")) == sorted(MISTAKES)
