"""`wfe resume`, `--only`/`--from`, suspend, compensate, cancel and concurrent runs, driven as a
user drives them: real `wfe` processes on a real store. Counter files prove what ran."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from tests.conftest import WFE, RunWfe, wait_for, wfe_environment

COUNT = "echo ran >> count-$WFE_STEP"
"""Appended to a step's command: one line per completed run of the step."""


def runs(run_wfe: RunWfe) -> list[dict[str, object]]:
    listed = run_wfe(None, "runs", "--json")
    assert listed.code == 0, listed.stderr
    result: list[dict[str, object]] = json.loads(listed.stdout)
    return result


def show(run_wfe: RunWfe, run_id: str = "") -> dict[str, object]:
    shown = run_wfe(None, "show", "--json", *([run_id] if run_id else []))
    assert shown.code == 0, shown.stderr
    result: dict[str, object] = json.loads(shown.stdout)
    return result


def statuses(document: dict[str, object]) -> dict[str, str]:
    steps = document["steps"]
    assert isinstance(steps, list)
    return {step["path"]: step["status"] for step in steps}


def completed(directory: Path, name: str) -> int:
    counter = directory / f"count-{name}"
    return len(counter.read_text().splitlines()) if counter.exists() else 0


FIXABLE = f"""
_sh: &sh {{type: shell}}
workflow:
  id: ci
  steps:
    - {{<<: *sh, name: build, config: {{run: '{COUNT}; echo "##wfe[output artifact=app-1.2]"'}}}}
    - {{<<: *sh, name: test, needs: [build], config: {{run: 'test -e fixed && {COUNT}'}}}}
    - {{<<: *sh, name: package, needs: [test], config: {{run: '{COUNT}; echo "got $ARTIFACT"'}}}}
    - {{<<: *sh, name: docs, needs: [build], config: {{run: '{COUNT}'}}}}
"""


def test_resume_after_a_fix_runs_only_the_failed_step_and_its_dependants(
    run_wfe: RunWfe, tmp_path: Path
) -> None:
    first = run_wfe(FIXABLE, "run", "--plain", "--jobs", "4")
    assert first.code == 1
    [run] = runs(run_wfe)
    assert f"resume with: wfe resume {run['id']}" in first.stdout
    assert statuses(show(run_wfe)) == {
        "ci/build": "succeeded",
        "ci/test": "failed",
        "ci/docs": "succeeded",
        "ci/package": "skipped",
    }

    (tmp_path / "fixed").touch()
    resumed = run_wfe(None, "resume", "--plain")

    assert resumed.code == 0, resumed.stdout
    assert "[ci/package] got app-1.2" in resumed.stdout
    counts = {name: completed(tmp_path, name) for name in ("build", "test", "package", "docs")}
    assert counts == {"build": 1, "test": 1, "package": 1, "docs": 1}
    [run] = runs(run_wfe)
    assert (run["status"], run["attempt"]) == ("succeeded", 2)
    document = show(run_wfe)
    assert statuses(document) == dict.fromkeys(
        ["ci/build", "ci/test", "ci/docs", "ci/package"], "succeeded"
    )
    attempts = {step["path"]: step["run_attempt"] for step in document["steps"]}  # type: ignore[attr-defined]
    assert attempts == {"ci/build": 1, "ci/test": 2, "ci/docs": 1, "ci/package": 2}


SUSPENDING = f"""
workflow:
  id: release
  steps:
    - {{name: build, type: shell, config: {{shell: sh, run: '{COUNT}'}}}}
    - name: approve
      type: shell
      error_behavior: {{type: suspend}}
      config: {{shell: sh, run: 'test -e approved && {COUNT}'}}
    - {{name: ship, type: shell, config: {{shell: sh, run: '{COUNT}'}}}}
"""


def test_suspended_run_resumes_to_success(run_wfe: RunWfe, tmp_path: Path) -> None:
    first = run_wfe(SUSPENDING, "run", "--plain")
    [run] = runs(run_wfe)

    assert first.code == 3
    assert f"resume with: wfe resume {run['id']}" in first.stdout
    assert run["status"] == "suspended"
    assert statuses(show(run_wfe))["release/ship"] == "skipped"

    (tmp_path / "approved").touch()
    resumed = run_wfe(None, "resume", "--plain")

    assert resumed.code == 0, resumed.stdout
    assert [completed(tmp_path, name) for name in ("build", "approve", "ship")] == [1, 1, 1]
    assert runs(run_wfe)[0]["status"] == "succeeded"


COMPENSATING = """
workflow:
  id: order
  steps:
    - name: reserve
      type: shell
      config: {shell: sh, run: 'true'}
      compensate:
        {name: release-stock, type: shell, config: {shell: sh, run: echo release-stock >> undo}}
    - name: charge
      type: shell
      config: {shell: sh, run: 'true'}
      compensate: {name: refund, type: shell, config: {shell: sh, run: echo refund >> undo}}
    - name: ship
      type: shell
      error_behavior: {type: compensate}
      config: {shell: sh, run: 'exit 4'}
"""


def test_compensation_runs_in_reverse_order_and_is_recorded(
    run_wfe: RunWfe, tmp_path: Path
) -> None:
    first = run_wfe(COMPENSATING, "run", "--plain")

    assert first.code == 1
    assert (tmp_path / "undo").read_text() == "refund\nrelease-stock\n"
    document = show(run_wfe)
    assert document["status"] == "failed"
    assert list(statuses(document).items()) == [
        ("order/reserve", "compensated"),
        ("order/charge", "compensated"),
        ("order/ship", "failed"),
        ("order/refund", "succeeded"),
        ("order/release-stock", "succeeded"),
    ]


SELECTIVE = """
workflow:
  id: ci
  steps:
    - name: version
      type: shell
      config:
        run: 'echo ran >> count-version; echo "##wfe[output version=$(wc -l < count-version)]"'
    - name: build
      type: shell
      config: {run: 'echo ran >> count-build; echo "##wfe[output image=app:$VERSION]"'}
    - name: deploy
      type: shell
      config: {run: 'echo ran >> count-deploy; echo "deploying $IMAGE"'}
"""


def test_only_and_from_run_a_new_run_fed_by_recorded_outputs(
    run_wfe: RunWfe, tmp_path: Path
) -> None:
    assert run_wfe(SELECTIVE, "run", "--plain").code == 0

    only = run_wfe(None, "run", "--plain", "--only", "deploy")
    assert only.code == 0, only.stdout
    assert "[ci/deploy] deploying app:1" in only.stdout
    assert "--only deploy: 2 step(s) restored from earlier runs" in only.stdout
    counts = [completed(tmp_path, name) for name in ("version", "build", "deploy")]
    assert counts == [1, 1, 2]

    start = run_wfe(None, "run", "--plain", "--from", "ci/build")
    assert start.code == 0, start.stdout
    assert "[ci/deploy] deploying app:1" in start.stdout
    assert [completed(tmp_path, name) for name in ("version", "build", "deploy")] == [1, 2, 3]

    listed = runs(run_wfe)
    assert [run["status"] for run in listed] == ["succeeded"] * 3
    assert len({run["id"] for run in listed}) == 3
    newest = show(run_wfe)
    assert newest["selection"] == {"mode": "from", "step": "ci/build", "omitted": []}
    restored = {step["path"]: step["restored"] for step in newest["steps"]}  # type: ignore[attr-defined]
    assert restored == {"ci/version": True, "ci/build": False, "ci/deploy": False}


def test_only_leaves_out_steps_that_never_succeeded_and_rejects_unknown_steps(
    run_wfe: RunWfe, tmp_path: Path
) -> None:
    never_run = run_wfe(SELECTIVE, "run", "--plain", "--only", "build")
    assert never_run.code == 0, never_run.stdout
    assert "left out (no successful record): ci/version, ci/deploy" in never_run.stdout
    assert [completed(tmp_path, name) for name in ("version", "build", "deploy")] == [0, 1, 0]

    unknown = run_wfe(None, "run", "--only", "deplyo")
    assert unknown.code == 2
    assert "no step 'deplyo' in workflow 'ci'" in unknown.stderr
    assert "did you mean 'deploy'?" in unknown.stderr


def test_resume_refuses_a_changed_file_unless_forced(run_wfe: RunWfe, tmp_path: Path) -> None:
    failing = """
    workflow:
      id: ci
      steps:
        - {name: lint, type: shell, config: {shell: sh, run: 'true'}}
        - {name: test, type: shell, config: {shell: sh, run: 'exit 1'}}
    """
    assert run_wfe(failing, "run", "--plain").code == 1
    (tmp_path / "workflows.yaml").write_text(
        textwrap.dedent(failing).replace("exit 1", "echo fixed")
    )

    refused = run_wfe(None, "resume", "--plain")
    assert refused.code == 2
    assert "workflows.yaml changed since run" in refused.stderr
    assert "-    - {name: test, type: shell, config: {shell: sh, run: 'exit 1'}}" in refused.stderr
    assert (
        "+    - {name: test, type: shell, config: {shell: sh, run: 'echo fixed'}}" in refused.stderr
    )
    assert "resume anyway with --force" in refused.stderr

    forced = run_wfe(None, "resume", "--plain", "--force")
    assert forced.code == 0, forced.stdout
    assert "[ci/test] fixed" in forced.stdout
    assert "[ci/lint] restored from an earlier attempt" in forced.stdout


def test_cancel_from_another_process_runs_ensure_hooks_and_records_cancelled(
    tmp_path: Path, run_wfe: RunWfe
) -> None:
    (tmp_path / "workflows.yaml").write_text(
        textwrap.dedent(
            """
            workflow:
              id: ci
              steps:
                - name: slow
                  type: shell
                  config: {shell: sh, run: 'touch started; sleep 30'}
                  ensure: {name: cleanup, type: shell, config: {shell: sh, run: touch cleaned}}
                - {name: after, type: shell, config: {shell: sh, run: 'true'}}
            """
        )
    )
    runner = subprocess.Popen(
        [*WFE, "run", "--plain"],
        cwd=tmp_path,
        env=wfe_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / "started").exists(), "the slow step to start")
        [run] = runs(run_wfe)
        assert run["status"] == "running"

        cancelled = run_wfe(None, "cancel", str(run["id"]), "--wait")

        assert cancelled.code == 0, cancelled.stderr
        assert cancelled.stdout.splitlines()[-1] == f"run {run['id']} cancelled"
        assert runner.wait(timeout=30) == 130
    finally:
        runner.kill()
        runner.communicate()
    assert (tmp_path / "cleaned").exists()
    document = show(run_wfe)
    assert document["status"] == "cancelled"
    assert statuses(document) == {
        "ci/slow": "cancelled",
        "ci/cleanup": "succeeded",
        "ci/after": "cancelled",
    }


def test_two_concurrent_runs_share_one_store(run_wfe: RunWfe, tmp_path: Path) -> None:
    steps = "\n".join(
        f"    - {{name: s{i}, type: shell, config: {{shell: sh, run: 'true'}}}}" for i in range(30)
    )
    for workflow in ("first", "second"):
        (tmp_path / f"{workflow}.yaml").write_text(
            f"workflow:\n  id: {workflow}\n  steps:\n{steps}\n"
        )
    runners = [
        subprocess.Popen(
            [*WFE, "run", f"{workflow}.yaml", "-q"],
            cwd=tmp_path,
            env=wfe_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for workflow in ("first", "second")
    ]
    outputs = [runner.communicate(timeout=60)[0] for runner in runners]

    assert [runner.returncode for runner in runners] == [0, 0], outputs
    listed = runs(run_wfe)
    assert sorted((run["workflow"], run["status"]) for run in listed) == [
        ("first", "succeeded"),
        ("second", "succeeded"),
    ]
    for run in listed:
        assert len(show(run_wfe, str(run["id"]))["steps"]) == 30  # type: ignore[arg-type]
