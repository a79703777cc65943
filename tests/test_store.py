"""The store's API: schema and migrations, what the recorder writes for a run, replay rules,
`--only`/`--from` narrowing, and how a dead runner is told from a live one."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import wfe_yaml
from wfe_yaml.engine.result import RunResult
from wfe_yaml.errors import ConfigError
from wfe_yaml.plan import Plan
from wfe_yaml.store import RunRecorder, Store
from wfe_yaml.store.logs import log_name
from wfe_yaml.store.records import STALE_SECONDS, StoredRun
from wfe_yaml.store.replay import current_view, resume_replay, select
from wfe_yaml.store.schema import MIGRATIONS
from wfe_yaml.store.sources import describe_changes

EXIT_CODES = {"succeeded": 0, "failed": 1}


@pytest.fixture(autouse=True)
def api_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "tok-12345")


def load(tmp_path: Path, text: str) -> Plan:
    path = tmp_path / "workflows.yaml"
    path.write_text(textwrap.dedent(text))
    return wfe_yaml.load(path)


def record(
    store: Store,
    plan: Plan,
    workflow: str | None = None,
    **engine_arguments: Any,
) -> RunResult:
    recorder = RunRecorder(store, plan, exit_code_of=lambda status: EXIT_CODES.get(status, 9))
    try:
        return wfe_yaml.Engine(subscribers=(recorder,), kill_grace=0.3).run(
            plan, workflow, **engine_arguments
        )
    finally:
        recorder.close()


def test_new_store_is_wal_with_the_current_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "sub" / "wfe.db")

    assert store.version == len(MIGRATIONS)
    assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (tmp_path / "sub").stat().st_mode & 0o777 == 0o700


def test_migrations_run_forward_and_keep_data(tmp_path: Path) -> None:
    path = tmp_path / "wfe.db"
    Store(path).save_source("h1", {"workflows.yaml": "text"})
    added = "ALTER TABLE sources ADD COLUMN note TEXT NOT NULL DEFAULT 'migrated'"

    upgraded = Store(path, migrations=(*MIGRATIONS, added))

    assert upgraded.version == len(MIGRATIONS) + 1
    row = upgraded.connection.execute("SELECT hash, note FROM sources").fetchone()
    assert tuple(row) == ("h1", "migrated")
    upgraded.close()
    with pytest.raises(ConfigError, match=r"written by a newer wfe \(schema 2, this one knows 1\)"):
        Store(path)


LINEAR = """
secrets: [API_TOKEN]
config: {token_value: plain}
workflows:
  - id: ci
    steps:
      - name: make
        type: shell
        config: {shell: sh, run: 'echo "making $API_TOKEN"; echo "##wfe[output version=3]"'}
        secrets: [API_TOKEN]
        ensure: {name: tidy, type: shell, config: {shell: sh, run: 'true'}}
      - name: checks
        parallel:
          - {name: unit, type: shell, config: {shell: sh, run: 'echo "##wfe[output unit=ok]"'}}
          - {name: lint, type: shell, config: {shell: sh, run: 'exit 2'}}
      - {name: cover, type: workflow, config: {workflow: cover}, outputs: [{name: pct}]}
  - id: cover
    steps:
      - {name: measure, type: shell, config: {shell: sh, run: 'echo "##wfe[output pct=91]"'}}
"""


def test_recorder_writes_runs_steps_hooks_and_masked_logs(tmp_path: Path) -> None:
    plan = wfe_yaml.load(_write(tmp_path, LINEAR), assignments=[("token_value", "tok-12345")])
    store = Store(tmp_path / ".wfe" / "wfe.db")
    recorder = RunRecorder(
        store, plan, exit_code_of=EXIT_CODES.__getitem__, secret_values={"API_TOKEN": "tok-12345"}
    )
    result = wfe_yaml.Engine(subscribers=(recorder,)).run(plan, "ci")
    recorder.close()

    [run] = store.runs()
    assert (run.id, run.status, run.exit_code, run.attempt) == (result.run_id, "failed", 1, 1)
    assert run.config == {"token_value": "***"}
    assert run.steps == ["ci/make", "ci/checks", "ci/checks/unit", "ci/checks/lint", "ci/cover"]
    steps = {step.path: step for step in store.steps(run.id)}
    assert {path: step.status for path, step in steps.items()} == {
        "ci/make": "succeeded",
        "ci/tidy": "succeeded",
        "ci/checks": "failed",
        "ci/checks/unit": "succeeded",
        "ci/checks/lint": "failed",
        "ci/cover": "skipped",
    }
    assert steps["ci/tidy"].hook and not steps["ci/make"].hook
    assert steps["ci/make"].outputs == {"version": 3}
    assert steps["ci/checks/lint"].exit_code == 2
    assert steps["ci/cover"].skip_reason == "upstream failed: lint"
    log = store.root / str(steps["ci/make"].log_file)
    assert log.read_text() == "making ***\n##wfe[output version=3]\n"


def test_resume_replays_succeeded_leaves_and_restores_them(tmp_path: Path) -> None:
    plan = load(tmp_path, LINEAR)
    store = Store(tmp_path / "wfe.db")
    first = record(store, plan, "ci")
    replay = resume_replay(store.steps(first.run_id))

    # No parallel block (its record has no outputs) and no hook: those run again.
    assert replay == {"ci/make": {"version": 3}, "ci/checks/unit": {"unit": "ok"}}

    fixed = load(tmp_path, LINEAR.replace("exit 2", "true"))
    second = record(store, fixed, "ci", run_id=first.run_id, replay=replay, attempt=2)

    assert second.status == "succeeded"
    assert second.outputs["version"] == 3 and second.outputs["pct"] == 91
    latest = {step.path: step for step in current_view(store.steps(first.run_id))}
    assert latest["ci/make"].attempt == 1 and not latest["ci/make"].restored
    assert latest["ci/checks/lint"].attempt == 2
    assert [run.attempt for run in store.runs()] == [2]


def test_a_failed_child_workflow_replays_its_succeeded_steps_one_by_one(tmp_path: Path) -> None:
    text = """
    workflows:
      - id: ci
        steps:
          - {name: cover, type: workflow, config: {workflow: cover}}
      - id: cover
        steps:
          - {name: measure, type: shell, config: {shell: sh, run: 'echo "##wfe[output pct=91]"'}}
          - {name: gate, type: shell, config: {shell: sh, run: 'exit 1'}}
    """
    store = Store(tmp_path / "wfe.db")
    first = record(store, load(tmp_path, text), "ci")

    assert resume_replay(store.steps(first.run_id)) == {"ci/cover/measure": {"pct": 91}}


SELECTABLE = """
workflow:
  id: ci
  steps:
    - {name: fetch, type: shell, config: {shell: sh, run: 'echo "##wfe[output src=v1]"'}}
    - {name: gen, type: shell, config: {shell: sh, run: 'true'}}
    - {name: build, type: shell, needs: [gen], config: {shell: sh, run: 'true'}}
    - name: checks
      parallel:
        - {name: unit, type: shell, config: {shell: sh, run: 'true'}}
        - {name: lint, type: shell, config: {shell: sh, run: 'true'}}
    - {name: ship, type: shell, config: {shell: sh, run: 'true'}}
"""


def test_only_restores_recorded_steps_and_rewires_around_missing_ones(tmp_path: Path) -> None:
    plan = load(tmp_path, SELECTABLE)
    workflow = plan.workflow()
    fetched = record(Store(tmp_path / "wfe.db"), plan)
    successes = {
        path: step
        for path, step in Store(tmp_path / "wfe.db")
        .latest_successes("ci", str(plan.source))
        .items()
        if path in ("ci/fetch", "ci/checks/unit")
    }
    assert fetched.succeeded

    selection = select(plan, workflow, "only", "build", successes)

    assert selection.replay == {"ci/fetch": {"src": "v1"}, "ci/checks/unit": {}}
    assert selection.omitted == ["ci/gen", "ci/checks/lint", "ci/ship"]
    steps = {step.name: step for step in selection.plan.workflow().steps}
    assert list(steps) == ["fetch", "build", "checks"]
    # build needed gen, which is left out: it now waits for what gen waited for.
    assert steps["build"].needs == ("fetch",)
    assert [child.name for child in steps["checks"].children] == ["unit"]


def test_from_runs_the_step_and_all_after_it_and_resolves_names(tmp_path: Path) -> None:
    plan = load(tmp_path, SELECTABLE)
    store = Store(tmp_path / "wfe.db")
    record(store, plan)
    successes = store.latest_successes("ci", str(plan.source))

    selection = select(plan, plan.workflow(), "from", "checks/lint", successes)

    assert sorted(selection.replay) == ["ci/build", "ci/checks/unit", "ci/fetch", "ci/gen"]
    assert selection.omitted == []
    with pytest.raises(ConfigError, match="no step 'shipp' in workflow 'ci'"):
        select(plan, plan.workflow(), "from", "shipp", successes)


def test_liveness_from_pid_program_and_heartbeat(tmp_path: Path) -> None:
    store = Store(tmp_path / "wfe.db")
    run_id = record(store, load(tmp_path, SELECTABLE)).run_id
    finished = store.runs()[0]
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # wfe run"])
    other = subprocess.Popen(["sleep", "60"])
    gone = subprocess.Popen(["true"])
    gone.wait()

    def status(pid: int | None, host: str, heartbeat: float) -> str:
        fields = {**finished.__dict__, "recorded_status": "running"}
        fields.update(owner_pid=pid, owner_host=host, heartbeat=heartbeat)
        return StoredRun(**fields).status

    here, now, stale = socket.gethostname(), time.time(), time.time() - STALE_SECONDS - 1
    try:
        assert status(runner.pid, here, now) == "running"
        assert status(gone.pid, here, now) == "interrupted"
        assert status(other.pid, here, now) == "interrupted"  # the pid was reused
        assert status(runner.pid, here, stale) == "interrupted"
        assert status(None, "elsewhere", now) == "running"
        assert status(None, "elsewhere", stale) == "interrupted"

        store.connection.execute(
            "UPDATE runs SET status = 'running', owner_pid = ?, owner_host = ?, heartbeat = ?"
            " WHERE id = ?",
            (runner.pid, here, now, run_id),
        )
        with pytest.raises(ConfigError, match=f"run {run_id} is still running"):
            store.claim_run(run_id)
    finally:
        runner.kill()
        other.kill()
        runner.wait()
        other.wait()


def test_concurrent_writers_wait_for_each_other(tmp_path: Path) -> None:
    path = tmp_path / "wfe.db"
    Store(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    store = Store(path)
    store.connection.execute("PRAGMA busy_timeout = 100")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store.save_source("h", {})
    blocker.execute("COMMIT")
    store.save_source("h", {})
    assert store.source_files("h") == {}


def test_log_names_and_diff_summaries() -> None:
    assert log_name("ci/unit[os=a/b]") == "ci__unit[os=a__b].log"
    long = log_name("ci/" + "x" * 300)
    assert len(long) <= 204 and long.endswith(".log")
    assert long != log_name("ci/" + "x" * 299 + "y")

    old = {"workflows.yaml": "".join(f"line {i}\n" for i in range(100))}
    new = {"workflows.yaml": "".join(f"LINE {i}\n" for i in range(100))}
    lines = describe_changes(old, new)
    assert lines[:2] == ["--- workflows.yaml (recorded)", "+++ workflows.yaml (now)"]
    assert len(lines) == 41 and lines[-1] == "... (163 more diff lines)"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workflows.yaml"
    path.write_text(textwrap.dedent(text))
    return path
