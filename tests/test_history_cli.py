"""The history verbs: `wfe runs`, `show`, `logs`, `graph --run`, `gc`, and where the store is.

Runs are real `wfe run` processes; the read-only verbs run in-process (click's runner) on the
store those processes wrote, from the project directory as a user would.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import WAIT_LIMIT, WFE, wait_for, wfe_environment
from wfe_yaml.cli.main import main

HISTORY = """
secrets: [TOKEN]
config: {greeting: hello}
workflows:
  - id: ci
    steps:
      - name: a
        type: shell
        secrets: [TOKEN]
        config:
          shell: sh
          run: 'echo "a says ((greeting))"; echo "token $TOKEN"; echo "##wfe[output x=1]"'
      - name: unit
        type: shell
        matrix: {shard: [1, 2]}
        config: {shell: sh, run: 'echo "shard ${{ matrix.shard }}"'}
      - {name: b, type: shell, config: {shell: sh, run: 'echo broken >&2; exit 3'}}
      - {name: c, type: shell, config: {shell: sh, run: 'true'}}
  - id: docs
    steps:
      - {name: build, type: shell, config: {shell: sh, run: 'echo built'}}
"""
SECRET = "s3cr3t-value"


def wfe_process(directory: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WFE, *args],
        cwd=directory,
        env=wfe_environment(**env),
        capture_output=True,
        text=True,
        timeout=WAIT_LIMIT * 2,
    )


class History:
    def __init__(self, root: Path):
        self.root = root
        (root / "workflows.yaml").write_text(textwrap.dedent(HISTORY))
        failed = wfe_process(
            root, "run", "workflows.yaml", "ci", "-c", f"greeting={SECRET}", TOKEN=SECRET
        )
        assert failed.returncode == 1, failed.stdout
        succeeded = wfe_process(root, "run", "workflows.yaml", "docs", TOKEN=SECRET)
        assert succeeded.returncode == 0, succeeded.stdout
        self.ci_id, self.docs_id = self.ids_oldest_first()

    def ids_oldest_first(self) -> list[str]:
        listed = json.loads(self.wfe("runs", "--json").output)
        return [run["id"] for run in reversed(listed)]

    def wfe(self, *args: str) -> Result:
        cwd = Path.cwd()
        os.chdir(self.root)
        try:
            return CliRunner().invoke(main, list(args), env={"WFE_STORE": None, "NO_COLOR": "1"})
        finally:
            os.chdir(cwd)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    return History(tmp_path_factory.mktemp("history"))


def test_runs_lists_newest_first_with_filters(history: History) -> None:
    listed = history.wfe("runs")
    header, newest, oldest = listed.output.splitlines()

    assert listed.exit_code == 0
    assert header.split() == ["ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"]
    assert newest.split()[:3] == [history.docs_id, "docs", "succeeded"]
    assert oldest.split()[:3] == [history.ci_id, "ci", "failed"]

    def ids(*args: str) -> list[str]:
        return [run["id"] for run in json.loads(history.wfe("runs", "--json", *args).output)]

    assert ids("--status", "failed") == [history.ci_id]
    assert ids("--workflow", "docs") == [history.docs_id]
    assert ids("--limit", "1") == [history.docs_id]
    assert history.wfe("runs", "--status", "cancelled").output == (
        "no runs recorded matching the filters\n"
    )
    [ci] = json.loads(history.wfe("runs", "--json", "--workflow", "ci").output)
    assert (ci["status"], ci["attempt"], ci["exit_code"]) == ("failed", 1, 1)
    assert ci["file"] == str(history.root / "workflows.yaml")


def test_show_gives_steps_outputs_skip_reasons_and_errors(history: History) -> None:
    differ = next(
        i for i, (x, y) in enumerate(zip(history.ci_id, history.docs_id, strict=True)) if x != y
    )
    shared = history.ci_id[:differ]
    ambiguous = history.wfe("show", shared)
    assert ambiguous.exit_code == 2
    assert f"'{shared}' matches several runs" in ambiguous.output

    shown = history.wfe("show", history.ci_id[: differ + 1])
    text = shown.output

    assert shown.exit_code == 0
    assert text.startswith(f"run {history.ci_id}: ci failed (attempt 1)\n")
    table = text.split("\n\n")[1].splitlines()
    assert [line.split()[:2] for line in table] == [
        ["STEP", "STATUS"],
        ["ci/a", "succeeded"],
        ["ci/unit[shard=1]", "succeeded"],
        ["ci/unit[shard=2]", "succeeded"],
        ["ci/b", "failed"],
        ["ci/c", "skipped"],
    ]
    assert "Outputs:\n  ci/a: x = 1\n" in text
    assert "Skipped:\n  ci/c: upstream failed: b\n" in text
    assert "Errors:\n  ci/b: " in text


def test_show_json_masks_secret_values_and_keeps_matrix_values(history: History) -> None:
    document = json.loads(history.wfe("show", "--json", history.ci_id).output)

    assert document["config"] == {"greeting": "***"}
    steps = {step["path"]: step for step in document["steps"]}
    assert steps["ci/unit[shard=2]"]["matrix"] == {"shard": 2}
    assert steps["ci/b"]["exit_code"] == 3
    assert steps["ci/a"]["outputs"] == {"x": 1}
    assert SECRET not in json.dumps(document)


def test_logs_by_run_step_name_path_and_matrix_group(history: History) -> None:
    def logs(*args: str) -> str:
        result = history.wfe("logs", history.ci_id, *args)
        assert result.exit_code == 0, result.output
        return result.output

    assert logs("a") == "a says ***\ntoken ***\n##wfe[output x=1]\n"
    assert logs("ci/b") == "broken\n"
    assert logs("unit") == (
        "==> ci/unit[shard=1] <==\nshard 1\n\n==> ci/unit[shard=2] <==\nshard 2\n"
    )
    assert logs().startswith("==> ci/a <==\na says ***\n")
    assert logs().endswith("==> ci/b <==\nbroken\n")

    unknown = history.wfe("logs", history.ci_id, "nope")
    assert unknown.exit_code == 2
    assert f"no step 'nope' in run {history.ci_id}" in unknown.output


def test_logs_without_a_run_read_the_newest_run(history: History) -> None:
    newest = history.wfe("logs")
    assert (newest.exit_code, newest.output) == (0, "==> docs/build <==\nbuilt\n")
    step = history.wfe("logs", "build")
    assert (step.exit_code, step.output) == (0, "built\n")

    unknown = history.wfe("logs", "nope")
    assert unknown.exit_code == 2
    assert "no run or step 'nope'" in unknown.output
    assert f"the newest run ({history.docs_id}) has steps: docs/build" in unknown.output


def test_log_files_are_private(history: History) -> None:
    logs = history.root / ".wfe" / "logs" / history.ci_id
    assert (logs / "ci__unit[shard=1].log").read_text() == "shard 1\n"
    assert logs.stat().st_mode & 0o777 == 0o700
    assert (logs / "ci__a.log").stat().st_mode & 0o777 == 0o600
    assert (history.root / ".wfe" / "wfe.db").stat().st_mode & 0o777 == 0o600


def test_graph_colours_steps_by_recorded_status(history: History) -> None:
    mermaid = history.wfe("graph", "--run", history.ci_id).output.splitlines()
    assert "  classDef failed fill:#ffcdd2" in mermaid
    assert "  class n_ci_b failed" in mermaid
    assert "  class n_ci_a,n_ci_unit_shard_1_,n_ci_unit_shard_2_ succeeded" in mermaid
    assert "  class n_ci_c skipped" in mermaid

    dot = history.wfe("graph", "--run", history.ci_id, "--format", "dot").output
    assert 'n_ci_b [label="b (shell)", style=filled, fillcolor="#ffcdd2"];' in dot


def test_gc_keeps_the_newest_runs_and_deletes_the_logs_of_others(
    history: History, tmp_path: Path
) -> None:
    copy = History.__new__(History)
    copy.root = tmp_path / "copy"
    shutil.copytree(history.root, copy.root)

    collected = copy.wfe("gc", "--keep", "1")

    assert collected.output == "deleted 1 run, kept 1\n"
    assert copy.ids_oldest_first() == [history.docs_id]
    assert not (copy.root / ".wfe" / "logs" / history.ci_id).exists()
    assert (copy.root / ".wfe" / "logs" / history.docs_id / "docs__build.log").exists()


def test_history_verbs_need_a_store(tmp_path: Path) -> None:
    listed = wfe_process(tmp_path, "runs")
    assert listed.returncode == 2
    assert f"no run history at {tmp_path}/.wfe/wfe.db" in listed.stderr


def test_store_location_options(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(
        "workflow:\n  id: ci\n  steps:\n    - {name: a, type: shell, config: {run: 'true'}}\n"
    )
    assert wfe_process(tmp_path, "run", "--no-store").returncode == 0
    assert not (tmp_path / ".wfe").exists()

    custom = tmp_path / "elsewhere" / "runs.db"
    verbose = wfe_process(tmp_path, "run", "--store", str(custom), "-v", "--plain")
    assert verbose.stdout.splitlines()[0] == f"store: {custom}"
    assert not (tmp_path / ".wfe").exists()
    by_env = wfe_process(tmp_path, "runs", "--json", WFE_STORE=str(custom))
    assert [run["status"] for run in json.loads(by_env.stdout)] == ["succeeded"]


def test_logs_follow_prints_lines_as_a_running_step_writes_them(tmp_path: Path) -> None:
    (tmp_path / "workflows.yaml").write_text(
        textwrap.dedent(
            """
            workflow:
              id: ci
              steps:
                - name: talk
                  type: shell
                  config:
                    shell: sh
                    run: 'echo one; touch talking; while [ ! -e go ]; do sleep 0.05; done; echo two'
            """
        )
    )
    runner = subprocess.Popen(
        [*WFE, "run", "--plain"], cwd=tmp_path, env=wfe_environment(), stdout=subprocess.DEVNULL
    )
    try:
        # Not the store file: it exists before the run is recorded in it. A step runs only
        # once its run is recorded.
        wait_for((tmp_path / "talking").exists, "the step to run")
        run_id = json.loads(wfe_process(tmp_path, "runs", "--json").stdout)[0]["id"]
        follower = subprocess.Popen(
            [*WFE, "logs", run_id, "talk", "-f"],
            cwd=tmp_path,
            env=wfe_environment(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert follower.stdout is not None
        ready, _, _ = select.select([follower.stdout], [], [], WAIT_LIMIT)
        assert ready, "no line followed"
        assert follower.stdout.readline() == "one\n"

        (tmp_path / "go").touch()

        assert follower.stdout.read() == "two\n"
        assert follower.wait(timeout=WAIT_LIMIT) == 0
        assert runner.wait(timeout=WAIT_LIMIT) == 0
    finally:
        runner.kill()
        runner.wait()
