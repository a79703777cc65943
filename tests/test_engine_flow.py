"""The engine's data flow and order through real runs: outputs between steps, the step
environment, `needs:`, `parallel:`, `--jobs`, and matrix fan-out (DESIGN §4.1, §4.2)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

RunPlan = Callable[..., Any]


def statuses(result: Any) -> dict[str, str]:
    return {record.path: record.status for record in result.steps}


# -- outputs and data ----------------------------------------------------------------------------

TYPED_OUTPUTS = r"""
workflows:
  - id: ci
    steps:
      - name: emit
        type: shell
        config:
          run: |
            echo "##wfe[output count=42]"
            echo "##wfe[output ratio=0.5]"
            echo "##wfe[output ok=true]"
            echo "##wfe[output off=false]"
            echo "##wfe[output nothing=null]"
            echo "##wfe[output text=hello world]"
            echo "##wfe[output equation=a=b=c]"
            echo "##wfe[output  padded  = kept as is ]"
            echo "  ##wfe[output indented=1]"
            echo "##wfe[output trailing=1] "
            echo "##wfe[output from_stderr=1]" >&2
            echo "##wfe[output twice=first]"
            echo "##wfe[output twice=second]"
      - name: use
        type: shell
        config:
          run: |
            echo "${{ outputs.count + 1 }} ${{ outputs.ratio * 2 }}" > use.out
            echo "${{ outputs.ok and not outputs.off }}" >> use.out
            echo "${{ outputs.nothing is none }} ${{ steps.emit.outputs.twice }}" >> use.out
"""


def test_outputs_are_typed_and_flow_into_later_steps(run_plan: RunPlan, tmp_path: Path) -> None:
    result = run_plan(TYPED_OUTPUTS)
    assert result.status == "succeeded"
    assert result.step("ci/emit").outputs == {
        "count": 42,
        "ratio": 0.5,
        "ok": True,
        "off": False,
        "nothing": None,
        "text": "hello world",
        "equation": "a=b=c",
        "padded": " kept as is ",
        "twice": "second",
    }
    assert (tmp_path / "use.out").read_text() == "43 1.0\ntrue\ntrue second\n"


def test_steps_outputs_keep_each_steps_value_while_outputs_is_the_last_write(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - {name: a, type: shell, config: {run: 'echo "##wfe[output x=1]"'}}
              - {name: b, type: shell, config: {run: 'echo "##wfe[output x=2]"'}}
              - name: c
                type: shell
                config: {run: 'echo "${{ outputs.x }} ${{ steps.a.outputs.x }} $X" > c.out'}
        """
    )
    assert result.status == "succeeded"
    assert (tmp_path / "c.out").read_text() == "2 1 2\n"
    assert result.outputs["x"] == 2


def test_data_reaches_the_environment_upper_cased_strings_raw_others_json(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            inputs: {tags: "list<string>", region: string}
            steps:
              - {name: a, type: shell, config: {run: 'echo "##wfe[output build_id=7]"'}}
              - name: b
                type: shell
                config: {run: 'printf "%s|%s|%s\\n" "$TAGS" "$REGION" "$BUILD_ID" > b.out'}
        """,
        inputs={"tags": ["x", "y"], "region": "eu west"},
    )
    assert result.status == "succeeded"
    assert (tmp_path / "b.out").read_text() == '["x", "y"]|eu west|7\n'


def test_data_never_overrides_protected_variables(run_plan: RunPlan, tmp_path: Path) -> None:
    protected = ["path", "home", "shell", "user", "logname", "term", "ld_preload"]
    emit = "; ".join(f'echo "##wfe[output {name}=/hijacked]"' for name in protected)
    show = " ".join(f'"${name.upper()}"' for name in protected)
    result = run_plan(
        f"""
        workflows:
          - id: ci
            steps:
              - {{name: a, type: shell, config: {{run: '{emit}'}}}}
              - name: b
                type: shell
                config: {{run: 'printf "%s\\n" {show} > b.out; ls > /dev/null'}}
        """
    )
    assert result.status == "succeeded", result.step("ci/b").error
    seen = (tmp_path / "b.out").read_text().splitlines()
    assert "/hijacked" not in seen
    assert seen[0] == os.environ["PATH"]
    assert result.outputs["path"] == "/hijacked"


def test_a_failed_steps_outputs_are_not_kept(run_plan: RunPlan, tmp_path: Path) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: broken
                continue_on_error: true
                type: shell
                config: {run: 'echo "##wfe[output x=1]"; exit 1'}
              - name: next
                type: shell
                config: {run: 'echo "${{ outputs.x is defined }}" > n.out'}
        """
    )
    assert result.status == "succeeded"
    assert (tmp_path / "n.out").read_text() == "false\n"
    assert result.step("ci/broken").outputs == {}


def test_an_undefined_expression_fails_the_step_naming_it(run_plan: RunPlan) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - {name: a, type: shell, config: {run: 'echo ${{ outputs.versoin }}'}}
        """
    )
    assert result.status == "failed"
    assert result.step("ci/a").error == "${{ outputs.versoin }}: 'versoin' is undefined"


def test_shquote_makes_a_value_safe_in_a_command(run_plan: RunPlan, tmp_path: Path) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            inputs: {title: string}
            steps:
              - name: a
                type: shell
                config: {run: 'printf "%s\\n" ${{ inputs.title | shquote }} > a.out'}
        """,
        inputs={"title": "it's $(rm -rf nothing); `x`"},
    )
    assert result.status == "succeeded"
    assert (tmp_path / "a.out").read_text() == "it's $(rm -rf nothing); `x`\n"


# -- order -----------------------------------------------------------------------------------------


def test_steps_run_in_file_order_by_default(run_plan: RunPlan, tmp_path: Path) -> None:
    steps = "\n".join(
        f"      - {{name: s{i}, type: shell, config: {{run: 'echo {i} >> order'}}}}"
        for i in range(5)
    )
    result = run_plan(f"workflows:\n  - id: ci\n    steps:\n{steps}\n")
    assert result.status == "succeeded"
    assert (tmp_path / "order").read_text().split() == ["0", "1", "2", "3", "4"]


def test_needs_waits_for_exactly_the_named_steps(run_plan: RunPlan, tmp_path: Path) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - {name: build, needs: [], type: shell, config: {run: 'touch built'}}
              - {name: lint, needs: [], type: shell, config: {run: 'touch linted'}}
              - name: report
                needs: [build, lint]
                type: shell
                config: {run: 'test -e built && test -e linted'}
        """
    )
    assert statuses(result) == {
        "ci/build": "succeeded",
        "ci/lint": "succeeded",
        "ci/report": "succeeded",
    }


def test_needs_nothing_starts_at_once_beside_earlier_steps(run_plan: RunPlan) -> None:
    # `waiter` comes first and waits for a file that only `free` creates: without
    # `needs: []`, free would wait for waiter, and waiter would time out.
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: waiter
                type: shell
                timeout: 20s
                config: {run: 'while [ ! -e free.done ]; do sleep 0.02; done'}
              - {name: free, needs: [], type: shell, config: {run: 'touch free.done'}}
              - {name: last, needs: [waiter], type: shell, config: {run: 'true'}}
        """
    )
    assert result.status == "succeeded"


def test_needs_a_matrix_step_means_all_of_its_instances(run_plan: RunPlan, tmp_path: Path) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: unit
                matrix: {shard: [1, 2, 3]}
                type: shell
                config: {run: 'touch shard-${{ matrix.shard }}'}
              - {name: other, needs: [], type: shell, config: {run: 'true'}}
              - name: merge
                needs: [unit]
                type: shell
                config: {run: 'test -e shard-1 && test -e shard-2 && test -e shard-3'}
        """
    )
    assert result.status == "succeeded"


# -- parallelism -----------------------------------------------------------------------------------

MEET = """
workflows:
  - id: ci
    steps:
      - name: both
        parallel:
          - name: left
            type: shell
            timeout: 20s
            config: {run: 'touch left.here; while [ ! -e right.here ]; do sleep 0.02; done'}
          - name: right
            type: shell
            timeout: 20s
            config: {run: 'touch right.here; while [ ! -e left.here ]; do sleep 0.02; done'}
      - {name: after, type: shell, config: {run: 'test -e left.here && test -e right.here'}}
"""


def test_parallel_children_really_run_at_the_same_time(run_plan: RunPlan) -> None:
    # Each child waits for the other's marker: they can only both finish side by side.
    result = run_plan(MEET, jobs=2)
    assert statuses(result) == {
        "ci/both": "succeeded",
        "ci/both/left": "succeeded",
        "ci/both/right": "succeeded",
        "ci/after": "succeeded",
    }


EXCLUSIVE = "mkdir lock.d || exit 9; sleep 0.05; rmdir lock.d"
"""Fails when another step holds the lock: two of these at once cannot both succeed."""

NESTED = f"""
workflows:
  - id: ci
    steps:
      - name: outer
        parallel:
          - name: inner
            parallel:
              - {{name: a, type: shell, config: {{run: '{EXCLUSIVE}'}}}}
              - {{name: b, type: shell, config: {{run: '{EXCLUSIVE}'}}}}
          - {{name: call, type: workflow, config: {{workflow: child}}}}
          - name: c
            type: shell
            config: {{run: '{EXCLUSIVE}'}}
            ensure: {{name: c-ensure, type: shell, config: {{run: '{EXCLUSIVE}'}}}}
  - id: child
    steps:
      - name: fan
        parallel:
          - {{name: d, type: shell, config: {{run: '{EXCLUSIVE}'}}}}
          - {{name: grand, type: workflow, config: {{workflow: grandchild}}}}
  - id: grandchild
    steps:
      - {{name: e, type: shell, config: {{run: '{EXCLUSIVE}'}}}}
"""


def test_jobs_1_serialises_every_leaf_and_nesting_never_deadlocks(run_wfe: Any) -> None:
    code, stdout, stderr = run_wfe(NESTED, "run", "--jobs", "1")
    assert code == 0, stdout + stderr
    assert "✓ ci succeeded" in stdout
    for path in ("ci/outer/inner/a", "ci/outer/call/fan/grand/e", "ci/outer/c-ensure"):
        assert f"[{path}] ✓ succeeded" in stdout


def test_a_step_s_duration_leaves_out_its_wait_for_a_jobs_slot(run_plan: RunPlan) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: both
                parallel:
                  - {name: slow, type: shell, config: {run: sleep 1.5}}
                  - {name: quick, type: shell, config: {run: 'true'}}
        """,
        jobs=1,
    )
    records = {record.name: record for record in result.steps}
    slow, quick = records["slow"], records["quick"]
    assert quick.started_at - slow.started_at >= 1.4  # quick waited for slow's slot…
    assert quick.duration_ms < 1000  # …and that wait is not part of its duration
    assert slow.duration_ms >= 1400


# -- matrix ----------------------------------------------------------------------------------------


def test_matrix_expands_into_named_instances_that_see_their_values(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: test
                matrix: {os: [linux, mac], py: ["3.11", 3.12]}
                type: shell
                config: {run: 'echo "${{ matrix.os }}-${{ matrix.py }}" >> seen'}
        """
    )
    assert statuses(result) == {
        "ci/test[os=linux,py=3.11]": "succeeded",
        "ci/test[os=linux,py=3.12]": "succeeded",
        "ci/test[os=mac,py=3.11]": "succeeded",
        "ci/test[os=mac,py=3.12]": "succeeded",
    }
    assert sorted((tmp_path / "seen").read_text().split()) == [
        "linux-3.11",
        "linux-3.12",
        "mac-3.11",
        "mac-3.12",
    ]


def test_max_parallel_caps_the_instances_running_at_once(run_plan: RunPlan) -> None:
    result = run_plan(
        f"""
        workflows:
          - id: ci
            steps:
              - name: unit
                matrix: {{shard: [1, 2, 3, 4]}}
                max_parallel: 1
                type: shell
                config: {{run: '{EXCLUSIVE}'}}
        """,
        jobs=4,
    )
    assert set(statuses(result).values()) == {"succeeded"}


FAIL_FAST = """
workflows:
  - id: ci
    steps:
      - name: unit
        matrix: {shard: [1, 2, 3]}
        BEHAVIOUR
        type: shell
        timeout: 20s
        config:
          run: |
            touch started-${{ matrix.shard }}
            if [ ${{ matrix.shard }} = 2 ]; then
              while [ ! -e started-1 ] || [ ! -e started-3 ]; do sleep 0.02; done
              exit 4
            fi
            while true; do sleep 0.02; done
      - {name: after, type: shell, config: {run: 'true'}}
"""


def test_a_failing_instance_cancels_the_running_others(run_plan: RunPlan) -> None:
    result = run_plan(FAIL_FAST.replace("BEHAVIOUR", ""), jobs=3)
    assert statuses(result) == {
        "ci/unit[shard=1]": "cancelled",
        "ci/unit[shard=2]": "failed",
        "ci/unit[shard=3]": "cancelled",
        "ci/after": "skipped",
    }
    assert result.step("ci/unit[shard=1]").error == "cancelled by fail-fast"
    assert result.step("ci/after").skip_reason == "upstream failed: unit[shard=2]"
    assert result.status == "failed"


def test_fail_fast_with_continue_on_error_lets_the_workflow_go_on(run_plan: RunPlan) -> None:
    result = run_plan(FAIL_FAST.replace("BEHAVIOUR", "continue_on_error: true"), jobs=3)
    assert statuses(result) == {
        "ci/unit[shard=1]": "cancelled",
        "ci/unit[shard=2]": "failed",
        "ci/unit[shard=3]": "cancelled",
        "ci/after": "succeeded",
    }
    assert result.status == "succeeded"


def test_fail_fast_also_stops_instances_still_waiting_for_a_job_slot(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: unit
                matrix: {shard: [1, 2, 3]}
                error_behavior: {type: continue}
                type: shell
                config: {run: 'touch ran-${{ matrix.shard }}; exit 1'}
        """,
        jobs=1,
    )
    assert result.step("ci/unit[shard=1]").status == "failed"
    for shard in (2, 3):
        record = result.step(f"ci/unit[shard={shard}]")
        assert (record.status, record.skip_reason) == (
            "cancelled",
            "fail-fast: unit[shard=1] failed",
        )
        assert not (tmp_path / f"ran-{shard}").exists()


def test_without_fail_fast_every_instance_runs(run_plan: RunPlan) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: unit
                matrix: {shard: [1, 2, 3]}
                fail_fast: false
                type: shell
                config: {run: 'exit $(( ${{ matrix.shard }} == 2 ))'}
        """,
        jobs=1,
    )
    assert statuses(result) == {
        "ci/unit[shard=1]": "succeeded",
        "ci/unit[shard=2]": "failed",
        "ci/unit[shard=3]": "succeeded",
    }


def test_hooks_of_matrix_instances_see_the_matrix_and_are_one_step_each(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: unit
                matrix: {shard: [1, 2]}
                type: shell
                config: {run: 'true'}
                ensure:
                  name: cleanup
                  type: shell
                  config: {run: 'echo ${{ matrix.shard }} >> cleaned'}
        """
    )
    assert statuses(result) == {
        "ci/unit[shard=1]": "succeeded",
        "ci/unit[shard=2]": "succeeded",
        "ci/cleanup[shard=1]": "succeeded",
        "ci/cleanup[shard=2]": "succeeded",
    }
    assert sorted((tmp_path / "cleaned").read_text().split()) == ["1", "2"]
