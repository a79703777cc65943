"""Steps on Celery workers (`runs_on:`, `wfe worker`, `wfe run --broker`), for real: a
redis-server on a free loopback port and `wfe worker` processes. Each worker has its own
WORKER_NAME in its environment, which the steps report as an output, to show where they ran.
The project folder is also the workers' --workdir (the "shared path" set-up).

Without redis-server or the `distributed` extra these tests skip, except under CI=true,
where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    WAIT_LIMIT,
    WFE,
    WfeResult,
    process_alive,
    wait_for,
    wfe_environment,
    write_workflows,
)

SETUP_HINT = "apt-get install -y redis-server; pip install -e '.[distributed]'"
NO_BROKER_NOTICE = (
    "warning: runs_on is ignored without a broker (--broker URL or WFE_BROKER): "
    "those steps run on this machine"
)


def _missing_service() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        return "celery[redis] is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def distributed_installed() -> None:
    problem = _missing_service()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}: CI must run the distributed tests; {SETUP_HINT}")
        pytest.skip(f"{problem}; {SETUP_HINT}")


@pytest.fixture(scope="session")
def redis_port(
    distributed_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        cwd=tmp_path_factory.mktemp("redis"),
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _listening(port), "redis-server to listen")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=WAIT_LIMIT)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def ready(self) -> bool:
        return f"{self.name}@test ready." in self.log.read_text(errors="replace")

    def process_tree(self) -> list[int]:
        """The worker, its pool processes and the steps they run."""
        tree = [self.process.pid]
        for pid in tree:
            tree.extend(_children(pid))
        return tree


def _children(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rpartition(b")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(entry.name))
    return children


@contextlib.contextmanager
def started_workers(
    broker: str, workdir: Path, queues: dict[str, str]
) -> Iterator[dict[str, Worker]]:
    """`wfe worker` processes named `<name>@test`, each taking the given queues."""
    workers: dict[str, Worker] = {}
    try:
        for name, labels in queues.items():
            log = workdir / f"worker-{name}.log"
            command = [*WFE, "worker", "--broker", broker, "--queues", labels]
            command += ["--concurrency", "2", "--workdir", str(workdir), "--name", f"{name}@test"]
            with log.open("wb") as output:
                process = subprocess.Popen(
                    command,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=wfe_environment(WORKER_NAME=name),
                )
            workers[name] = Worker(name, process, log)
        for worker in workers.values():
            wait_for(worker.ready, f"worker {worker.name} to be ready")
        yield workers
    finally:
        for worker in workers.values():
            worker.process.terminate()
        for worker in workers.values():
            try:
                worker.process.wait(timeout=WAIT_LIMIT)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="module")
def broker(redis_port: int) -> str:
    return f"redis://127.0.0.1:{redis_port}/0"


@pytest.fixture(scope="module")
def workers(broker: str, project: Path) -> Iterator[dict[str, Worker]]:
    queues = {"alpha": "alpha,shared,default", "beta": "beta,shared"}
    with started_workers(broker, project, queues) as started:
        yield started


def run_wfe(project: Path, file: str, *args: str, **env: str) -> WfeResult:
    completed = subprocess.run(
        [*WFE, "run", file, "--plain", "--no-store", *args],
        cwd=project,
        env=wfe_environment(**env),
        capture_output=True,
        text=True,
        timeout=WAIT_LIMIT * 2,
    )
    return WfeResult(completed.returncode, completed.stdout, completed.stderr)


def start_wfe(project: Path, file: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """`wfe run` in the background, its output going to `<file>.out`."""
    with (project / f"{file}.out").open("w") as output:
        return subprocess.Popen(
            [*WFE, "run", file, "--plain", "--no-store", *args],
            cwd=project,
            env=wfe_environment(**env),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )


def steps_of(report: Path) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in json.loads(report.read_text())["steps"]}


ROUTING = """
workflow:
  id: routing
  steps:
    - name: on-alpha
      type: shell
      runs_on: [alpha]
      env: {GREETING: hello}
      config:
        run: |
          echo "$GREETING from $WORKER_NAME, secret: [${ORCHESTRATOR_ONLY:-not here}]"
          echo "##wfe[output first=$WORKER_NAME]"
    - name: on-beta
      type: shell
      runs_on: [beta, linux]
      config:
        run: |
          echo "##wfe[output second=$WORKER_NAME]"
          echo "first ran on $FIRST" >&2
          exit 3
      error_behavior: {type: continue}
    - name: unlabelled
      type: shell
      config: {run: 'echo "##wfe[output third=${WORKER_NAME:-orchestrator}]"'}
"""


def test_steps_run_on_the_worker_of_their_first_label_and_report_back(
    broker: str, workers: dict[str, Worker], project: Path
) -> None:
    write_workflows(project, ROUTING, "routing.yaml")
    code, out, _ = run_wfe(
        project, "routing.yaml", "--broker", broker, "--report", "routing.json",
        ORCHESTRATOR_ONLY="orchestrator environment",
    )  # fmt: skip
    assert code == 0, out
    steps = steps_of(project / "routing.json")
    assert steps["on-alpha"]["outputs"] == {"first": "alpha"}
    assert "[routing/on-alpha] hello from alpha, secret: [not here]" in out.splitlines()
    # The data of earlier steps travels with the request; a failure comes back whole.
    assert "[routing/on-beta] first ran on alpha" in out.splitlines()
    beta = steps["on-beta"]
    assert (beta["status"], beta["exit_code"], beta["error"]) == (
        "failed",
        3,
        "exited with code 3",
    )
    assert steps["unlabelled"]["outputs"] == {"third": "orchestrator"}


def test_distribute_sends_unlabelled_steps_to_the_default_queue(
    broker: str, workers: dict[str, Worker], project: Path
) -> None:
    write_workflows(project, ROUTING, "routing.yaml")
    code, out, _ = run_wfe(
        project, "routing.yaml", "--broker", broker, "--distribute", "--report", "all.json"
    )
    assert code == 0, out
    assert steps_of(project / "all.json")["unlabelled"]["outputs"] == {"third": "alpha"}


def test_log_lines_stream_back_in_order_while_the_step_runs(
    broker: str, workers: dict[str, Worker], project: Path
) -> None:
    write_workflows(
        project,
        """
        workflow:
          id: talk
          steps:
            - name: chatty
              type: shell
              runs_on: [beta]
              config:
                run: |
                  for i in $(seq 1 300); do echo "line $i"; done
                  echo "to stderr" >&2
                  echo waiting
                  until [ -e talk.release ]; do sleep 0.02; done
                  echo "released"
        """,
        "talk.yaml",
    )
    run = start_wfe(project, "talk.yaml", "--broker", broker)
    output = project / "talk.yaml.out"
    wait_for(lambda: "[talk/chatty] waiting" in output.read_text(), "the step's log line")
    assert "released" not in output.read_text()
    (project / "talk.release").touch()
    assert run.wait(timeout=WAIT_LIMIT) == 0
    prefix = "[talk/chatty] "
    logged = [x.removeprefix(prefix) for x in output.read_text().splitlines() if prefix in x]
    stdout = [line for line in logged if line.startswith(("line ", "waiting", "released"))]
    assert stdout == [f"line {i}" for i in range(1, 301)] + ["waiting", "released"]
    assert "to stderr" in logged


def test_a_matrix_of_20_shards_spreads_over_both_workers(
    broker: str, workers: dict[str, Worker], project: Path
) -> None:
    # Each shard waits until 4 shards have started: with 2 slots per worker, that can only
    # happen when both workers take shards.
    write_workflows(
        project,
        """
        workflow:
          id: fan
          steps:
            - name: shard
              type: shell
              runs_on: [shared]
              matrix: {n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}
              max_parallel: 4
              config:
                run: |
                  mkdir -p fan.started && touch "fan.started/${{ matrix.n }}"
                  for i in $(seq 1200); do
                    [ "$(ls fan.started | wc -l)" -ge 4 ] && break
                    sleep 0.025
                  done
                  [ "$(ls fan.started | wc -l)" -ge 4 ]
                  echo "##wfe[output worker=$WORKER_NAME]"
        """,
        "fan.yaml",
    )
    code, out, _ = run_wfe(project, "fan.yaml", "--broker", broker, "-j", "8", "--report", "f.json")
    assert code == 0, out
    steps = steps_of(project / "f.json")
    assert len(steps) == 20
    assert {step["status"] for step in steps.values()} == {"succeeded"}
    assert {step["outputs"]["worker"] for step in steps.values()} == {"alpha", "beta"}


def test_cancelling_the_run_kills_the_step_on_its_worker(
    broker: str, workers: dict[str, Worker], project: Path
) -> None:
    write_workflows(
        project,
        """
        workflow:
          id: stop
          steps:
            - name: long
              type: shell
              runs_on: [alpha]
              config:
                run: |
                  echo $$ > stop.shell
                  sleep 300 &
                  echo $! > stop.child
                  wait
        """,
        "stop.yaml",
    )
    run = start_wfe(project, "stop.yaml", "--broker", broker)
    pid_files = [project / "stop.shell", project / "stop.child"]
    wait_for(lambda: all(f.exists() and f.read_text() for f in pid_files), "the step's pids")
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=WAIT_LIMIT) == 130
    assert "[stop/long] ⊘ cancelled" in (project / "stop.yaml.out").read_text()
    pids = [int(f.read_text()) for f in pid_files]
    assert [pid for pid in pids if process_alive(pid)] == []


def test_a_step_timeout_kills_the_step_on_its_worker(
    broker: str, workers: dict[str, Worker], project: Path
) -> None:
    write_workflows(
        project,
        """
        workflow:
          id: slow
          steps:
            - name: slow
              type: shell
              runs_on: [beta]
              timeout: 5s
              config: {run: 'echo $$ > slow.pid; exec sleep 300'}
        """,
        "slow.yaml",
    )
    # The timeout also covers the trip through the broker to a worker and the start of the
    # step there, which takes a second or more on a loaded machine.
    code, out, _ = run_wfe(project, "slow.yaml", "--broker", broker)
    assert code == 1
    assert "[slow/slow] ✗ failed" in out
    assert "timed out after 5.0s" in out
    assert not process_alive(int((project / "slow.pid").read_text()))


def test_a_worker_killed_mid_step_hands_the_step_to_another_worker(
    redis_port: int, project: Path
) -> None:
    broker = f"redis://127.0.0.1:{redis_port}/1"  # its own database: its own workers
    write_workflows(
        project,
        """
        workflow:
          id: crash
          steps:
            - name: fragile
              type: shell
              runs_on: [fragile]
              config:
                run: |
                  touch "crash.started-$WORKER_NAME"
                  until [ -e crash.go ]; do sleep 0.02; done
                  echo "##wfe[output ran_on=$WORKER_NAME]"
        """,
        "crash.yaml",
    )
    with started_workers(broker, project, {"gamma": "fragile", "delta": "fragile"}) as pair:
        run = start_wfe(
            project, "crash.yaml", "--broker", broker, "--report", "crash.json",
            WFE_HEARTBEAT_TIMEOUT="1s",
        )  # fmt: skip
        wait_for(lambda: any(project.glob("crash.started-*")), "the step to start")
        first = next(project.glob("crash.started-*")).name.removeprefix("crash.started-")
        for pid in pair[first].process_tree():  # the machine goes down
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        (project / "crash.go").touch()
        assert run.wait(timeout=WAIT_LIMIT) == 0
    other = ({"gamma", "delta"} - {first}).pop()
    assert steps_of(project / "crash.json")["fragile"]["outputs"] == {"ran_on": other}
    assert (
        f"[crash/fragile] warning: worker {first}@test lost: no heartbeat for 1.0s; "
        "sending the step again"
    ) in (project / "crash.yaml.out").read_text().splitlines()


def test_workers_lists_the_live_workers_and_their_queues(
    broker: str, workers: dict[str, Worker], project: Path
) -> None:
    listed = subprocess.run(
        [*WFE, "workers", "--broker", broker],
        env=wfe_environment(),
        capture_output=True,
        text=True,
        timeout=WAIT_LIMIT,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "WORKER      QUEUES",
        "alpha@test  alpha, default, shared",
        "beta@test   beta, shared",
    ]


def test_an_unreachable_broker_is_an_error_before_any_step_runs(
    distributed_installed: None, tmp_path: Path
) -> None:
    write_workflows(
        tmp_path,
        """
        workflow:
          id: nowhere
          steps:
            - {name: first, type: shell, config: {run: touch ran}}
            - {name: remote, type: shell, runs_on: [linux], config: {run: "true"}}
        """,
    )
    closed = f"redis://127.0.0.1:{_free_port()}/0"
    code, out, err = run_wfe(tmp_path, "workflows.yaml", "--broker", closed)
    assert code == 2
    assert err.startswith(f"error: broker {closed} is unreachable: ")
    assert "hint: start Redis there, or fix --broker / WFE_BROKER" in err
    assert out == ""
    assert not (tmp_path / "ran").exists()


def test_without_a_broker_runs_on_is_ignored_with_one_notice(tmp_path: Path) -> None:
    write_workflows(
        tmp_path,
        """
        workflow:
          id: here
          steps:
            - {name: one, type: shell, runs_on: [linux], config: {run: echo one}}
            - {name: two, type: shell, runs_on: [gpu], config: {run: echo two}}
        """,
    )
    code, out, _ = run_wfe(tmp_path, "workflows.yaml")
    assert code == 0
    assert out.splitlines().count(f"[here] {NO_BROKER_NOTICE}") == 1
    assert "[here/one] one" in out.splitlines()
    assert "[here/two] two" in out.splitlines()


def test_the_broker_password_never_shows_in_messages(
    distributed_installed: None, tmp_path: Path
) -> None:
    write_workflows(
        tmp_path,
        """
        workflow:
          id: hidden
          steps:
            - {name: remote, type: shell, runs_on: [linux], config: {run: "true"}}
        """,
    )
    port = _free_port()
    code, _, err = run_wfe(
        tmp_path, "workflows.yaml", WFE_BROKER=f"redis://ci:s3cret@127.0.0.1:{port}/2"
    )
    assert code == 2
    assert err.startswith(f"error: broker redis://ci:***@127.0.0.1:{port}/2 is unreachable: ")
    assert "s3cret" not in err
