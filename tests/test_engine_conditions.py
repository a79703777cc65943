"""`when:` and `requires:` through real runs: every operator and combinator, absent fields, and
what a skip means for the steps after it (DESIGN §4.3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

RunPlan = Callable[..., Any]

SEED = r"""
workflows:
  - id: ci
    inputs: {tags: "list<string>", mode: string}
    steps:
      - name: seed
        type: shell
        config:
          run: |
            echo "##wfe[output n=5]"
            echo "##wfe[output ratio=0.5]"
            echo "##wfe[output s=hello world]"
            echo "##wfe[output z=null]"
            echo "##wfe[output yes=true]"
"""

CASES: list[tuple[str, str, bool]] = [
    # name, when (YAML flow), whether the step runs
    ("equals-int", "{field: .outputs.n, equals: 5}", True),
    ("equals-other", "{field: .outputs.n, equals: 6}", False),
    ("equals-string", "{field: .s, equals: hello world}", True),
    ("equals-bool", "{field: .yes, equals: true}", True),
    ("equals-input", "{field: .inputs.mode, equals: fast}", True),
    ("not-equals", "{field: .n, not_equals: 6}", True),
    ("not-equals-same", "{field: .n, not_equals: 5}", False),
    ("gt", "{field: .n, gt: 4}", True),
    ("gt-equal", "{field: .n, gt: 5}", False),
    ("gte", "{field: .n, gte: 5}", True),
    ("lt-float", "{field: .ratio, lt: 1}", True),
    ("lt-no", "{field: .n, lt: 5}", False),
    ("lte", "{field: .n, lte: 5}", True),
    ("contains-text", "{field: .s, contains: world}", True),
    ("contains-text-no", "{field: .s, contains: moon}", False),
    ("contains-list", "{field: .inputs.tags, contains: b}", True),
    ("contains-list-no", "{field: .tags, contains: z}", False),
    ("is-null-null", "{field: .z, is_null: true}", True),
    ("is-null-set", "{field: .n, is_null: true}", False),
    ("is-not-null-set", "{field: .n, is_not_null: true}", True),
    ("is-not-null-null", "{field: .z, is_not_null: true}", False),
    # A field nobody wrote is absent: only not_equals and is_null hold on it.
    ("absent-equals", "{field: .outputs.ghost, equals: 1}", False),
    ("absent-not-equals", "{field: .outputs.ghost, not_equals: 1}", True),
    ("absent-gt", "{field: .ghost, gt: 0}", False),
    ("absent-lte", "{field: .ghost, lte: 0}", False),
    ("absent-contains", "{field: .ghost, contains: a}", False),
    ("absent-is-null", "{field: .ghost, is_null: true}", True),
    ("absent-is-not-null", "{field: .ghost, is_not_null: true}", False),
    ("absent-member", "{field: .s.deeper, equals: 1}", False),
    # Combinators are ordinary boolean logic over those answers.
    ("all-true", "{all: [{field: .n, equals: 5}, {field: .ghost, is_null: true}]}", True),
    ("all-false", "{all: [{field: .n, equals: 5}, {field: .ghost, equals: 1}]}", False),
    ("any-true", "{any: [{field: .ghost, equals: 1}, {field: .n, gt: 1}]}", True),
    ("any-false", "{any: [{field: .ghost, equals: 1}, {field: .n, gt: 9}]}", False),
    ("none-true", "{none: [{field: .ghost, equals: 1}, {field: .n, gt: 9}]}", True),
    ("none-false", "{none: [{field: .ghost, equals: 1}, {field: .n, gt: 1}]}", False),
    ("one-of-one", "{one_of: [{field: .n, equals: 5}, {field: .n, gt: 9}]}", True),
    ("one-of-two", "{one_of: [{field: .n, equals: 5}, {field: .n, gt: 1}]}", False),
    ("one-of-none", "{one_of: [{field: .ghost, equals: 5}, {field: .n, gt: 9}]}", False),
    ("not-absent", "{not: {field: .ghost, equals: 1}}", True),
    ("not-true", "{not: {field: .n, equals: 5}}", False),
    (
        "nested",
        "{all: [{any: [{field: .ghost, gt: 1}, {not: {field: .s, contains: moon}}]},"
        " {none: [{field: .z, is_not_null: true}]}]}",
        True,
    ),
    # Expression conditions see the same data, and `is defined` tests for absence.
    ("expr-true", "'${{ outputs.n > 4 and steps.seed.outputs.s.startswith(\"hello\") }}'", True),
    ("expr-false", "'${{ inputs.mode == \"slow\" }}'", False),
    ("expr-defined", "'${{ outputs.ghost is defined }}'", False),
    ("expr-list", "'${{ \"a\" in inputs.tags }}'", True),
]


def conditions_file() -> str:
    steps = "".join(
        f"      - {{name: {name}, type: shell, when: {when}, config: {{run: 'true'}}}}\n"
        for name, when, _ in CASES
    )
    return SEED + steps


def test_every_operator_and_combinator_decides_through_a_real_run(run_plan: RunPlan) -> None:
    result = run_plan(conditions_file(), inputs={"tags": ["a", "b"], "mode": "fast"})
    ran = {record.name: record.status == "succeeded" for record in result.steps}
    assert {name: ran[name] for name, _, _ in CASES} == {
        name: expected for name, _, expected in CASES
    }
    assert result.status == "succeeded"


def test_a_skipped_step_records_which_condition_was_false(run_plan: RunPlan) -> None:
    result = run_plan(conditions_file(), inputs={"tags": ["a"], "mode": "fast"})
    reasons = {record.name: record.skip_reason for record in result.steps}
    assert reasons["gt-equal"] == "condition not met: .n > 5"
    assert reasons["absent-is-not-null"] == "condition not met: .ghost is not null"
    assert reasons["one-of-two"] == "condition not met: one_of(.n == 5, .n > 1)"
    assert reasons["expr-false"] == 'condition not met: ${{ inputs.mode == "slow" }}'


def test_an_undefined_name_in_an_expression_condition_fails_the_step(
    run_plan: RunPlan,
) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - {name: check, type: shell, when: '${{ outputs.ghost == 1 }}', config: {run: 'true'}}
              - {name: after, type: shell, config: {run: 'true'}}
        """
    )
    record = result.step("ci/check")
    assert (record.status, record.error) == (
        "failed",
        "when: ${{ outputs.ghost == 1 }}: 'ghost' is undefined",
    )
    assert result.step("ci/after").skip_reason == "upstream failed: check"


SKIPS = """
workflows:
  - id: ci
    steps:
      - name: deploy
        type: shell
        when: {field: .inputs.deploy, equals: true}
        config: {run: 'echo "##wfe[output url=https://example.test]"'}
        ensure: {name: deploy-ensure, type: shell, config: {run: 'touch ensure-ran'}}
        on_success: {name: deploy-success, type: shell, config: {run: 'touch success-ran'}}
      - name: docker-only
        type: shell
        requires: [no-such-tool-for-wfe-tests]
        config: {run: 'touch docker-ran'}
      - name: smoke
        type: shell
        needs: [deploy, docker-only]
        config: {run: "echo '${{ outputs.url | default(\\"no url\\") }}' > smoke.out"}
      - name: block
        when: {field: .nope, is_not_null: true}
        parallel:
          - {name: inner, type: shell, config: {run: 'touch inner-ran'}}
      - {name: last, type: shell, config: {run: 'touch last-ran'}}
"""


def test_a_skip_is_not_a_failure_what_comes_after_still_runs(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(SKIPS)
    assert {r.path: (r.status, r.skip_reason) for r in result.steps} == {
        "ci/deploy": ("skipped", "condition not met: .inputs.deploy == true"),
        "ci/docker-only": (
            "skipped",
            "requires no-such-tool-for-wfe-tests: 'no-such-tool-for-wfe-tests' not found on PATH",
        ),
        "ci/smoke": ("succeeded", None),
        "ci/block": ("skipped", "condition not met: .nope is not null"),
        "ci/block/inner": ("skipped", "condition not met: .nope is not null"),
        "ci/last": ("succeeded", None),
    }
    assert result.status == "succeeded"
    # The skipped step's outputs are absent, and its hooks never ran.
    assert (tmp_path / "smoke.out").read_text() == "no url\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last-ran",
        "smoke.out",
        "workflows.yaml",
    ]
