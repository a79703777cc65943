"""Child workflows, typed inputs and outputs, `requires:` skipping and the flag pattern."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

import wfe_yaml
from wfe_yaml.engine.result import RunResult
from wfe_yaml.errors import ConfigError


def run(tmp_path: Path, text: str, workflow: str | None = None, **inputs: object) -> RunResult:
    path = tmp_path / "workflows.yaml"
    path.write_text(textwrap.dedent(text))
    plan = wfe_yaml.load(path)
    return wfe_yaml.Engine(kill_grace=0.5).run(plan, workflow, inputs)


def load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "workflows.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        wfe_yaml.load(path)
    return caught.value.format()


def step_error(result: RunResult, path: str) -> str:
    error = result.step(path).error
    assert error is not None
    return error


THREE_LEVELS = """
workflows:
  - id: parent
    steps:
      - name: seed
        type: shell
        config: {run: 'echo "##wfe[output repo=wfe]"'}
      - name: middle
        type: workflow
        config: {workflow: child, inputs: {depth: 1}}
        outputs: [{name: deep_result, path: result}, {name: child_depth}]
  - id: child
    inputs: {repo: string, depth: integer}
    outputs: {result: string, child_depth: integer}
    steps:
      - name: grand
        type: workflow
        config: {workflow: grandchild, inputs: {depth: 2}}
        outputs: [{name: result, path: made}]
      - name: depth
        type: shell
        outputs: [{name: child_depth}]
        config: {run: 'echo "##wfe[output child_depth=$DEPTH]"'}
  - id: grandchild
    inputs: {repo: string, depth: integer}
    steps:
      - name: make
        type: shell
        config: {run: 'echo "##wfe[output made=$REPO-at-$DEPTH]"; echo "##wfe[output extra=1]"'}
"""


def test_data_flows_parent_to_grandchild_and_back_with_renaming(tmp_path: Path) -> None:
    result = run(tmp_path, THREE_LEVELS)
    assert result.status == "succeeded"
    assert result.outputs["deep_result"] == "wfe-at-2"
    assert result.outputs["child_depth"] == 1
    assert "extra" not in result.outputs
    assert "made" not in result.outputs
    paths = [record.path for record in result.steps]
    assert "parent/middle/grand/make" in paths


def test_empty_outputs_list_copies_all_child_data(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        workflows:
          - id: parent
            steps:
              - {name: call, type: workflow, config: {workflow: child}}
          - id: child
            steps:
              - {name: a, type: shell, config: {run: 'echo "##wfe[output one=1]"'}}
              - {name: b, type: shell, config: {run: 'echo "##wfe[output two=2]"'}}
        """,
    )
    assert result.outputs["one"] == 1
    assert result.outputs["two"] == 2


CHILD_WITH_INPUTS = """
workflows:
  - id: parent
    steps:
      - name: call
        type: workflow
        config: {workflow: child, inputs: INPUTS}
  - id: child
    inputs: {count: integer, tags: "list<string>", limits: "map<number>", note: string?}
    steps:
      - {name: ok, type: shell, config: {run: "true"}}
"""


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            "{tags: [a], limits: {}}",
            "inputs of workflow 'child': missing required input 'count' (integer)",
        ),
        (
            "{count: many, tags: [a], limits: {}}",
            "inputs of workflow 'child': inputs.count: expected integer, got string 'many'",
        ),
        (
            "{count: 1, tags: [a, 5], limits: {}}",
            "inputs of workflow 'child': inputs.tags[1]: expected string, got integer 5",
        ),
        (
            "{count: 1, tags: [a], limits: {cpu: lots}}",
            "inputs of workflow 'child': inputs.limits.cpu: expected number, got string 'lots'",
        ),
    ],
)
def test_typed_input_violations_fail_the_step_naming_field_and_type(
    tmp_path: Path, inputs: str, message: str
) -> None:
    result = run(tmp_path, CHILD_WITH_INPUTS.replace("INPUTS", inputs))
    assert result.status == "failed"
    assert step_error(result, "parent/call") == message
    assert "parent/call/ok" not in [record.path for record in result.steps]


def test_optional_input_may_be_missing(tmp_path: Path) -> None:
    result = run(tmp_path, CHILD_WITH_INPUTS.replace("INPUTS", "{count: 1, tags: [], limits: {}}"))
    assert result.status == "succeeded"


def test_declared_child_output_not_produced_fails_the_step(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        workflows:
          - id: parent
            steps:
              - {name: call, type: workflow, config: {workflow: child}}
          - id: child
            outputs: {version: string}
            steps:
              - {name: v, type: shell, outputs: [version], config: {run: "true"}}
        """,
    )
    assert result.status == "failed"
    assert step_error(result, "parent/call") == (
        "workflow 'child' did not produce its declared output 'version' (string)"
    )


FAILING_CHILD = """
workflows:
  - id: parent
    steps:
      - name: call
        type: workflow
        BEHAVIOUR
        config: {workflow: child}
      - {name: after, type: shell, config: {run: 'echo "##wfe[output after=yes]"'}}
  - id: child
    steps:
      - {name: boom, type: shell, config: {run: "exit 7"}}
      - {name: never, type: shell, config: {run: "true"}}
"""


def test_child_failure_fails_the_parent_step_and_stops_the_parent(tmp_path: Path) -> None:
    result = run(tmp_path, FAILING_CHILD.replace("BEHAVIOUR", ""))
    assert result.status == "failed"
    assert result.step("parent/call/boom").exit_code == 7
    assert result.step("parent/call/never").skip_reason == "upstream failed: boom"
    assert result.step("parent/call").status == "failed"
    assert result.step("parent/after").skip_reason == "upstream failed: call"


def test_continue_on_the_parent_step_lets_the_parent_go_on(tmp_path: Path) -> None:
    result = run(tmp_path, FAILING_CHILD.replace("BEHAVIOUR", "continue_on_error: true"))
    assert result.status == "succeeded"
    assert result.step("parent/call").status == "failed"
    assert result.outputs["after"] == "yes"


def test_cycle_between_workflows_is_rejected_at_load(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        """
        workflows:
          - id: a
            steps: [{name: to-b, type: workflow, config: {workflow: b}}]
          - id: b
            steps:
              - name: block
                parallel: [{name: to-a, type: workflow, config: {workflow: a}}]
        """,
    )
    assert "workflows call each other in a cycle: a -> b -> a" in message


def test_recursion_through_expressions_is_bounded(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        workflow:
          id: again
          steps:
            - name: deeper
              type: workflow
              config: {workflow: "${{ 'again' }}"}
        """,
    )
    assert result.status == "failed"
    innermost = [r for r in result.steps if r.error and "nested deeper" in r.error]
    assert innermost
    assert innermost[0].error == "child workflows nested deeper than 32 levels"


def test_child_steps_appear_under_the_parent_step_path_in_the_report(tmp_path: Path) -> None:
    result = run(tmp_path, THREE_LEVELS)
    report = result.to_report()
    paths = {step["path"]: step["workflow"] for step in report["steps"]}
    assert paths["parent/middle/depth"] == "child"
    assert paths["parent/middle/grand/make"] == "grandchild"


def test_requires_docker_without_an_engine_skips_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = run(
        tmp_path,
        """
        workflow:
          id: ci
          steps:
            - {name: integration, type: shell, requires: [docker], config: {run: "exit 1"}}
            - {name: after, type: shell, config: {run: "true"}}
        """,
    )
    assert result.status == "succeeded"
    skipped = result.step("ci/integration")
    assert skipped.status == "skipped"
    assert skipped.skip_reason is not None
    assert skipped.skip_reason.startswith(
        f"requires docker: no engine reachable at unix://{tmp_path}/no-engine.sock"
    )
    assert result.step("ci/after").status == "succeeded"


def test_a_capability_is_probed_once_for_many_steps(tmp_path: Path) -> None:
    counter = tmp_path / "probes.txt"
    steps = "\n".join(
        f"        - {{name: s{i}, type: shell, requires: [gpu], config: {{run: 'true'}}}}"
        for i in range(12)
    )
    text = f"""
    capabilities:
      gpu: echo probed >> {counter}; exit 3
    workflow:
      id: ci
      steps:
        - name: all
          parallel:
    {steps}
    """
    result = run(tmp_path, text)
    assert result.status == "succeeded"
    assert counter.read_text().splitlines() == ["probed"]
    reasons = {r.skip_reason for r in result.steps if r.path.startswith("ci/all/")}
    assert reasons == {
        f"requires gpu: capability 'gpu' check `echo probed >> {counter}; exit 3` exited 3"
    }


def test_workflow_level_requires_skips_every_step(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        workflow:
          id: ci
          requires: [no-such-tool-here]
          steps:
            - {name: a, type: shell, config: {run: "exit 1"}}
        """,
    )
    assert result.status == "succeeded"
    assert result.step("ci/a").skip_reason == (
        "requires no-such-tool-here: 'no-such-tool-here' not found on PATH"
    )


FLAG_PATTERN = """
workflow:
  id: ci
  steps:
    - name: docker-up
      type: shell
      config:
        run: |
          if [ -e "$MARKER_DIR/engine" ]; then
            echo "##wfe[output docker_started=true]"
          else
            echo "no engine here; later steps will skip"
            echo "##wfe[output docker_started=false]"
          fi
      ensure:
        name: docker-down
        type: shell
        config: {run: 'echo down >> "$MARKER_DIR/cleanup"'}
    - name: integration
      type: shell
      when: {field: .outputs.docker_started, equals: true}
      config: {run: 'echo ran >> "$MARKER_DIR/integration"'}
    - name: report
      type: shell
      config: {run: 'echo "##wfe[output reported=true]"'}
"""


@pytest.mark.parametrize("engine_up", [True, False])
def test_flag_pattern_runs_or_skips_and_always_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine_up: bool
) -> None:
    monkeypatch.setenv("MARKER_DIR", str(tmp_path))
    if engine_up:
        (tmp_path / "engine").touch()
    result = run(tmp_path, FLAG_PATTERN)
    assert result.status == "succeeded"
    assert result.outputs["docker_started"] is engine_up
    assert (tmp_path / "cleanup").read_text() == "down\n"
    assert (tmp_path / "integration").exists() is engine_up
    if not engine_up:
        assert result.step("ci/integration").skip_reason == (
            "condition not met: .outputs.docker_started == true"
        )
    assert result.outputs["reported"] is True


def test_wfe_run_of_the_repository_pipeline_validates() -> None:
    root = Path(__file__).resolve().parent.parent
    plan = wfe_yaml.load(root / "workflows.yaml")
    assert plan.workflow().id == "ci"
    assert {"lint", "test", "cover", "package", "release"} <= set(plan.workflows)
    release = next(step for step in plan.workflow("ci").steps if step.name == "release")
    assert release.when is not None
    assert os.path.basename(plan.source) == "workflows.yaml"


def test_hooks_of_a_parallel_block_run_after_the_block(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        workflow:
          id: ci
          steps:
            - name: block
              parallel:
                - {name: a, type: shell, config: {run: "true"}}
                - {name: b, type: shell, config: {run: "exit 1"}}
              on_failure: {name: block-failed, type: shell, config: {run: "true"}}
              on_success: {name: block-ok, type: shell, config: {run: "true"}}
              ensure: {name: block-ensure, type: shell, config: {run: "true"}}
        """,
    )
    assert result.status == "failed"
    assert result.step("ci/block-failed").status == "succeeded"
    assert result.step("ci/block-ensure").status == "succeeded"
    assert "ci/block-ok" not in [record.path for record in result.steps]
