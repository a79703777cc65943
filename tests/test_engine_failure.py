"""Failure handling through real runs: each error behaviour, hooks, ensure, and timeouts that
leave no process behind (DESIGN §4.4)."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wfe_yaml
from tests.conftest import WAIT_LIMIT, group_members, process_alive
from wfe_yaml.engine.events import Event, Notice

RunPlan = Callable[..., Any]


def outcomes(result: Any) -> dict[str, tuple[str, str | None]]:
    """Each step's status with its skip reason (skipped) or error (anything else)."""
    return {
        r.path: (r.status, r.skip_reason if r.status == "skipped" else r.error)
        for r in result.steps
    }


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# -- terminate -------------------------------------------------------------------------------------

TERMINATE = """
workflows:
  - id: ci
    ensure: {name: wf-ensure, type: shell, config: {run: 'echo wf-ensure >> hooks'}}
    steps:
      - name: block
        parallel:
          - name: bad
            type: shell
            config: {run: 'while [ ! -e sibling.running ]; do sleep 0.02; done; exit 3'}
            on_failure:
              name: bad-on-failure
              type: shell
              config: {run: 'echo on-failure >> hooks; touch bad.failed'}
            on_success: {name: bad-success, type: shell, config: {run: 'echo on-success >> hooks'}}
            ensure: {name: bad-ensure, type: shell, config: {run: 'echo ensure >> hooks'}}
          - name: sibling
            type: shell
            timeout: 20s
            config: {run: 'touch sibling.running; while [ ! -e bad.failed ]; do sleep 0.02; done'}
          - {name: dependent, needs: [bad], type: shell, config: {run: 'touch dependent-ran'}}
      - {name: next, type: shell, config: {run: 'touch next-ran'}}
"""


def test_terminate_skips_what_has_not_started_and_lets_running_siblings_finish(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    # `sibling` is still running when `bad` fails (it waits for bad's on_failure hook).
    result = run_plan(TERMINATE)
    assert outcomes(result) == {
        "ci/block": ("failed", "a step of this block failed"),
        "ci/block/bad": ("failed", "exited with code 3"),
        "ci/block/sibling": ("succeeded", None),
        "ci/block/bad-on-failure": ("succeeded", None),
        "ci/block/bad-ensure": ("succeeded", None),
        "ci/block/dependent": ("skipped", "upstream failed: bad"),
        "ci/next": ("skipped", "upstream failed: bad"),
        "ci/wf-ensure": ("succeeded", None),
    }
    assert result.status == "failed"
    assert lines(tmp_path / "hooks") == ["on-failure", "ensure", "wf-ensure"]
    assert not (tmp_path / "dependent-ran").exists()
    assert not (tmp_path / "next-ran").exists()


def test_terminate_through_the_cli_exits_1_and_shows_the_reasons(run_wfe: Any) -> None:
    code, stdout, _ = run_wfe(TERMINATE, "run", "--plain")
    assert code == 1
    assert "[ci/next] - skipped: upstream failed: bad" in stdout
    assert "[ci/block/bad] ✗ failed" in stdout
    assert "Skipped:\n  ci/block/dependent: upstream failed: bad\n" in stdout
    assert "✗ ci failed" in stdout


# -- retry -----------------------------------------------------------------------------------------


def test_max_retries_counts_retries_after_the_first_attempt(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: never-works
                type: shell
                error_behavior: {type: retry, max_retries: 2, interval: 1ms}
                config: {run: 'echo try >> tries; exit 1'}
              - {name: after, type: shell, config: {run: 'true'}}
        """
    )
    record = result.step("ci/never-works")
    assert (record.status, record.attempts) == ("failed", 3)
    assert lines(tmp_path / "tries") == ["try"] * 3
    # Then it terminates like any failure.
    assert result.step("ci/after").skip_reason == "upstream failed: never-works"


def test_a_retry_that_succeeds_leaves_a_succeeded_step(run_plan: RunPlan, tmp_path: Path) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: flaky
                type: shell
                error_behavior: {type: retry, max_retries: 5, interval: 1ms}
                config: {run: 'echo try >> tries; [ $(wc -l < tries) -ge 3 ]'}
        """
    )
    record = result.step("ci/flaky")
    assert (record.status, record.attempts, record.exit_code) == ("succeeded", 3, 0)
    assert result.status == "succeeded"


def test_max_retries_0_means_no_retry(run_plan: RunPlan) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: once
                type: shell
                error_behavior: {type: retry, max_retries: 0, interval: 1ms}
                config: {run: 'exit 1'}
        """
    )
    assert result.step("ci/once").attempts == 1


def test_on_exit_codes_retries_only_those_codes(run_plan: RunPlan, tmp_path: Path) -> None:
    # Exit 75 (listed) on the first attempt, 1 (not listed) on the second: no third attempt.
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - name: picky
                type: shell
                error_behavior: {type: retry, max_retries: 5, interval: 1ms, on_exit_codes: [75]}
                config: {run: 'echo try >> tries; [ $(wc -l < tries) -ge 2 ] && exit 1; exit 75'}
        """
    )
    record = result.step("ci/picky")
    assert (record.status, record.attempts, record.exit_code) == ("failed", 2, 1)


def test_cancel_during_a_retry_interval_ends_the_step_at_once(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(
        textwrap.dedent(
            """
            workflows:
              - id: ci
                steps:
                  - name: flaky
                    type: shell
                    error_behavior: {type: retry, max_retries: 3, interval: 1h}
                    config: {run: 'exit 1'}
                    ensure: {name: cleanup, type: shell, config: {run: 'touch cleaned'}}
            """
        )
    )
    plan = wfe_yaml.load(tmp_path / "workflows.yaml")

    async def run_and_cancel_when_retrying() -> Any:
        def on_event(event: Event) -> None:
            if isinstance(event, Notice) and "retrying in 1h" in event.message:
                engine.cancel()

        engine = wfe_yaml.Engine(subscribers=(on_event,))
        return await asyncio.wait_for(engine.run_async(plan), WAIT_LIMIT)

    result = asyncio.run(run_and_cancel_when_retrying())
    record = result.step("ci/flaky")
    assert (record.status, record.attempts, record.error) == ("cancelled", 1, "run cancelled")
    assert (tmp_path / "cleaned").exists()
    assert result.status == "cancelled"


def test_interval_and_backoff_space_the_attempts(run_wfe: Any) -> None:
    code, stdout, _ = run_wfe(
        """
        workflows:
          - id: ci
            steps:
              - name: flaky
                type: shell
                error_behavior: {type: retry, max_retries: 3, interval: 10ms, backoff: 2}
                config: {run: 'exit 1'}
        """,
        "run",
        "--plain",
    )
    assert code == 1
    notices = [line for line in stdout.splitlines() if "retrying" in line]
    assert notices == [
        "[ci/flaky] warning: exited with code 1; retrying in 10ms (attempt 2 of 4)",
        "[ci/flaky] warning: exited with code 1; retrying in 20ms (attempt 3 of 4)",
        "[ci/flaky] warning: exited with code 1; retrying in 40ms (attempt 4 of 4)",
    ]
    assert "[ci/flaky] ✗ failed" in stdout and "(after 4 attempts)" in stdout


# -- continue, suspend, compensate -----------------------------------------------------------------


def test_continue_and_continue_on_error_record_the_failure_and_go_on(
    run_plan: RunPlan,
) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            steps:
              - {name: a, type: shell, error_behavior: {type: continue}, config: {run: 'exit 2'}}
              - {name: b, type: shell, continue_on_error: true, config: {run: 'exit 3'}}
              - {name: c, type: shell, config: {run: 'true'}}
        """
    )
    assert outcomes(result) == {
        "ci/a": ("failed", "exited with code 2"),
        "ci/b": ("failed", "exited with code 3"),
        "ci/c": ("succeeded", None),
    }
    assert result.status == "succeeded"


SUSPEND = """
workflows:
  - id: ci
    steps:
      - name: approval
        type: shell
        error_behavior: {type: suspend}
        config: {run: 'exit 1'}
        ensure: {name: approval-ensure, type: shell, config: {run: 'touch ensured'}}
      - {name: deploy, type: shell, config: {run: 'touch deployed'}}
"""


def test_suspend_stops_the_run_as_suspended_with_exit_code_3(run_wfe: Any, tmp_path: Path) -> None:
    code, stdout, _ = run_wfe(SUSPEND, "run", "--report", "report.json")
    assert code == 3
    assert "[ci/deploy] - skipped: run suspended at approval" in stdout
    assert (tmp_path / "ensured").exists()
    assert not (tmp_path / "deployed").exists()
    assert '"status": "suspended"' in (tmp_path / "report.json").read_text()


def test_a_suspended_child_workflow_suspends_its_parent(run_plan: RunPlan) -> None:
    result = run_plan(
        """
        workflows:
          - id: parent
            steps:
              - {name: call, type: workflow, config: {workflow: child}}
              - {name: after, type: shell, config: {run: 'true'}}
          - id: child
            steps:
              - {name: gate, type: shell, error_behavior: {type: suspend}, config: {run: 'exit 1'}}
        """,
        "parent",
    )
    assert outcomes(result) == {
        "parent/call": ("suspended", "workflow 'child' suspended"),
        "parent/call/gate": ("failed", "exited with code 1"),
        "parent/after": ("skipped", "run suspended at call"),
    }
    assert result.status == "suspended"


COMPENSATE = """
workflows:
  - id: ci
    ensure: {name: wf-ensure, type: shell, config: {run: 'echo wf-ensure >> order'}}
    steps:
      - name: reserve
        type: shell
        config: {run: 'echo reserve >> order'}
        compensate: {name: release, type: shell, config: {run: 'echo release >> order'}}
      - name: both
        parallel:
          - name: slow
            type: shell
            timeout: 20s
            config: {run: 'while [ ! -e fast.done ]; do sleep 0.02; done; echo slow >> order'}
            compensate: {name: undo-slow, type: shell, config: {run: 'echo undo-slow >> order'}}
          - name: fast
            type: shell
            config: {run: 'echo fast >> order'}
            # A hook runs once its step has finished: slow cannot finish first.
            on_success: {name: fast-done, type: shell, config: {run: 'touch fast.done'}}
            compensate: {name: undo-fast, type: shell, config: {run: 'echo undo-fast >> order'}}
      - {name: plain, type: shell, config: {run: 'echo plain >> order'}}
      - name: charge
        type: shell
        error_behavior: {type: compensate}
        config: {run: 'exit 1'}
        compensate: {name: undo-charge, type: shell, config: {run: 'echo undo-charge >> order'}}
      - {name: ship, type: shell, config: {run: 'echo ship >> order'}}
"""


def test_compensate_undoes_succeeded_steps_in_reverse_completion_order(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(COMPENSATE)
    # fast finished before slow (slow waited for it), so slow is undone first.
    assert lines(tmp_path / "order") == [
        "reserve",
        "fast",
        "slow",
        "plain",
        "undo-slow",
        "undo-fast",
        "release",
        "wf-ensure",
    ]
    status = {r.path: r.status for r in result.steps}
    assert [status[p] for p in ("ci/reserve", "ci/both/slow", "ci/both/fast")] == [
        "compensated"
    ] * 3
    assert status["ci/plain"] == "succeeded"
    assert status["ci/charge"] == "failed"
    assert result.step("ci/ship").skip_reason == "compensating after charge failed"
    assert result.status == "failed"


# -- hooks and ensure ------------------------------------------------------------------------------

HOOKS = """
workflows:
  - id: ci
    steps:
      - name: ok
        type: shell
        config: {run: 'true'}
        on_success: {name: ok-success, type: shell, config: {run: 'echo ok-success >> hooks'}}
        on_failure: {name: ok-failure, type: shell, config: {run: 'echo ok-failure >> hooks'}}
        ensure: {name: ok-ensure, type: shell, config: {run: 'echo ok-ensure >> hooks'}}
      - name: bad
        type: shell
        continue_on_error: true
        config: {run: 'exit 1'}
        on_success: {name: bad-success, type: shell, config: {run: 'echo bad-success >> hooks'}}
        on_failure: {name: bad-failure, type: shell, config: {run: 'echo bad-failure >> hooks'}}
        ensure: {name: bad-ensure, type: shell, config: {run: 'echo bad-ensure >> hooks'}}
      - name: slow
        type: shell
        timeout: 300ms
        continue_on_error: true
        config: {run: 'sleep 1000'}
        ensure: {name: slow-ensure, type: shell, config: {run: 'echo slow-ensure >> hooks'}}
"""


def test_on_success_on_failure_and_ensure_run_when_they_should(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(HOOKS)
    assert lines(tmp_path / "hooks") == [
        "ok-success",
        "ok-ensure",
        "bad-failure",
        "bad-ensure",
        "slow-ensure",
    ]
    assert result.step("ci/slow").error == "timed out after 300ms"
    assert result.status == "succeeded"


def test_a_failing_ensure_fails_an_otherwise_green_run(run_wfe: Any) -> None:
    code, stdout, _ = run_wfe(
        """
        workflows:
          - id: ci
            steps:
              - name: build
                type: shell
                config: {run: 'true'}
                ensure: {name: cleanup, type: shell, config: {run: 'echo cannot clean; exit 7'}}
        """,
        "run",
    )
    assert code == 1
    assert "[ci/cleanup] ✗ failed" in stdout
    assert "── ci/cleanup (failed: exited with code 7) ──\ncannot clean\n" in stdout


def test_workflow_ensure_hooks_all_run_and_a_failing_one_fails_a_green_run(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(
        """
        workflows:
          - id: ci
            ensure:
              - {name: collect, type: shell, config: {run: 'echo collect >> hooks'}}
              - {name: teardown, type: shell, config: {run: 'echo teardown >> hooks; exit 5'}}
            steps:
              - {name: build, type: shell, config: {run: 'true'}}
        """
    )
    assert lines(tmp_path / "hooks") == ["collect", "teardown"]
    assert result.step("ci/teardown").status == "failed"
    assert result.status == "failed"


# -- timeouts --------------------------------------------------------------------------------------

# The timeout leaves the step time to start its grandchild and write both pids, also on a
# loaded machine.
LEAVES_A_GRANDCHILD = """
workflows:
  - id: ci
    steps:
      - name: server
        type: shell
        timeout: 2s
        config:
          run: |
            TRAP
            echo $$ > group.pid
            sleep 1000 &
            echo $! > grandchild.pid
            while true; do sleep 0.05; done
        ensure: {name: after-timeout, type: shell, config: {run: 'touch ensured'}}
"""


def test_a_step_timeout_kills_the_whole_process_group(run_plan: RunPlan, tmp_path: Path) -> None:
    result = run_plan(LEAVES_A_GRANDCHILD.replace("TRAP", ""))
    assert outcomes(result)["ci/server"] == ("failed", "timed out after 2.0s")
    assert (tmp_path / "ensured").exists()
    assert not process_alive(int((tmp_path / "grandchild.pid").read_text()))
    assert group_members(int((tmp_path / "group.pid").read_text())) == []


def test_a_step_that_ignores_sigterm_is_killed_after_the_grace(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    # `trap "" TERM` is inherited by the sleep: only SIGKILL, after the 0.3 s grace, ends them.
    result = run_plan(LEAVES_A_GRANDCHILD.replace("TRAP", "trap '' TERM"))
    assert outcomes(result)["ci/server"] == ("failed", "timed out after 2.0s")
    assert not process_alive(int((tmp_path / "grandchild.pid").read_text()))
    assert group_members(int((tmp_path / "group.pid").read_text())) == []


WORKFLOW_TIMEOUT = """
workflows:
  - id: ci
    timeout: 300ms
    ensure: {name: wf-ensure, type: shell, config: {run: 'touch wf-ensured'}}
    steps:
      - name: long
        type: shell
        config: {run: 'sleep 1000'}
        ensure: {name: long-ensure, type: shell, config: {run: 'touch long-ensured'}}
      - {name: next, type: shell, config: {run: 'touch next-ran'}}
"""


def test_a_workflow_timeout_cancels_running_steps_and_skips_the_rest(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    result = run_plan(WORKFLOW_TIMEOUT)
    timed_out = "workflow 'ci' timed out after 300ms"
    assert outcomes(result) == {
        "ci/long": ("cancelled", timed_out),
        "ci/long-ensure": ("succeeded", None),
        "ci/next": ("skipped", timed_out),
        "ci/wf-ensure": ("succeeded", None),
    }
    assert (result.status, result.error) == ("failed", timed_out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "long-ensured",
        "wf-ensured",
        "workflows.yaml",
    ]


def test_a_workflow_timeout_also_ends_a_step_waiting_to_retry(
    run_plan: RunPlan, tmp_path: Path
) -> None:
    # The first attempt fails at once (well within the timeout, also on a loaded machine); the
    # timeout falls inside the 10 s retry interval.
    result = run_plan(
        """
        workflows:
          - id: ci
            timeout: 2s
            steps:
              - name: flaky
                type: shell
                error_behavior: {type: retry, max_retries: 1, interval: 10s}
                config: {run: 'echo try >> tries; exit 1'}
        """
    )
    record = result.step("ci/flaky")
    assert (record.status, record.attempts, record.error) == (
        "cancelled",
        1,
        "workflow 'ci' timed out after 2.0s",
    )
    assert lines(tmp_path / "tries") == ["try"]
    assert result.status == "failed"


def test_a_child_workflow_timeout_fails_the_calling_step(run_plan: RunPlan, tmp_path: Path) -> None:
    result = run_plan(
        """
        workflows:
          - id: parent
            steps:
              - {name: call, type: workflow, config: {workflow: child}}
          - id: child
            timeout: 300ms
            ensure: {name: child-ensure, type: shell, config: {run: 'touch child-ensured'}}
            steps:
              - {name: long, type: shell, config: {run: 'sleep 1000'}}
        """,
        "parent",
    )
    assert outcomes(result)["parent/call"] == ("failed", "workflow 'child' timed out after 300ms")
    assert outcomes(result)["parent/call/long"][0] == "cancelled"
    assert (tmp_path / "child-ensured").exists()
