"""Docker steps, Kubernetes steps run locally, and workflow services, on a real Docker engine.

Needs an engine and the local image `wfe-test-busybox:latest` (built from the static busybox
by `.ci/docker-setup.sh`, no registry involved). Without them these tests skip, except under
CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import wfe_yaml
from tests.conftest import WAIT_LIMIT, WFE, RunWfe, wfe_environment, write_workflows
from wfe_yaml.engine.events import Notice, StepLog
from wfe_yaml.engine.result import RunResult
from wfe_yaml.preflight import find_docker_engine

IMAGE = "wfe-test-busybox:latest"
SETUP_HINT = "run .ci/docker-setup.sh (starts dockerd, builds the image)"


@pytest.fixture(scope="module")
def docker_api() -> Iterator[Any]:
    """A client of the engine the executor will find; skips (fails under CI=true) when there
    is no engine or no test image."""
    client, problem = _engine_with_test_image()
    if client is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}: CI must run the Docker tests; {SETUP_HINT}")
        pytest.skip(f"{problem}; {SETUP_HINT}")
    with client:
        yield client


def _engine_with_test_image() -> tuple[Any, str]:
    """(client, "") or (None, what is missing)."""
    try:
        import docker
    except ImportError:
        return None, "the Docker SDK is missing (pip install -e '.[docker]')"
    search = asyncio.run(find_docker_engine(os.environ))
    if search.url is None:
        return None, search.reason
    client = docker.APIClient(base_url=search.url)
    try:
        client.inspect_image(IMAGE)
    except docker.errors.ImageNotFound:
        client.close()
        return None, f"image {IMAGE} is missing"
    return client, ""


@dataclass
class Events:
    """Log lines per step path and notices, as a reporter would receive them."""

    logs: dict[str, list[str]] = field(default_factory=dict)
    streams: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    def __call__(self, event: object) -> None:
        if isinstance(event, StepLog):
            self.logs.setdefault(event.path, []).extend(event.lines)
            self.streams.setdefault(event.path, []).extend((event.stream, x) for x in event.lines)
        elif isinstance(event, Notice):
            self.notices.append(event.message)


def run_yaml(tmp_path: Path, text: str, jobs: int = 4) -> tuple[RunResult, Events]:
    plan = wfe_yaml.load(write_workflows(tmp_path, text))
    events = Events()
    result = wfe_yaml.Engine(jobs=jobs, kill_grace=0.3, subscribers=(events,)).run(plan)
    return result, events


def new_run_id() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def leftovers(api: Any, run_id: str) -> list[str]:
    """Containers and networks of the run that still exist."""
    label = {"label": f"wfe.run={run_id}"}
    containers = [c["Id"][:12] for c in api.containers(all=True, filters=label)]
    return containers + [n["Name"] for n in api.networks(filters=label)]


def failures(result: RunResult) -> dict[str, str | None]:
    """What failed, for assertion messages."""
    failed = {r.path: r.error for r in result.steps if r.status == "failed"}
    return {**failed, "(run)": result.error} if result.error else failed


def step_error(result: RunResult, path: str) -> str:
    error = result.step(path).error
    assert error is not None
    return error


# --- docker steps -----------------------------------------------------------------------------


def test_run_streams_both_streams_parses_outputs_and_removes_the_container(
    docker_api: Any, tmp_path: Path
) -> None:
    result, events = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: build
              type: docker
              config:
                image: {IMAGE}
                run: |
                  echo "compiling"
                  echo "warning: slow" >&2
                  echo "##wfe[output version=1.4]"
                  echo "##wfe[output artifact=app.tar]"
                  echo "##wfe[output ok=true]"
            - name: use
              type: shell
              config: {{run: 'echo "got $VERSION $ARTIFACT"'}}
        """,
    )
    assert result.status == "succeeded", failures(result)
    assert result.step("ci/build").exit_code == 0
    assert result.outputs["version"] == 1.4
    assert result.outputs["artifact"] == "app.tar"
    assert result.outputs["ok"] is True
    assert ("stdout", "compiling") in events.streams["ci/build"]
    assert ("stderr", "warning: slow") in events.streams["ci/build"]
    assert events.logs["ci/use"] == ["got 1.4 app.tar"]
    assert leftovers(docker_api, result.run_id) == []


def test_command_and_entrypoint_keep_dockers_meaning(docker_api: Any, tmp_path: Path) -> None:
    result, events = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: command
              type: docker
              config: {{image: {IMAGE}, command: [echo, "two words", "$NOT_EXPANDED"]}}
            - name: entrypoint
              type: docker
              config: {{image: {IMAGE}, entrypoint: [echo, from-entrypoint], command: [arg]}}
            - name: strict-shell
              type: docker
              config: {{image: {IMAGE}, entrypoint: sh -e, run: "echo before; false; echo after"}}
        """,
    )
    assert events.logs["ci/command"] == ["two words $NOT_EXPANDED"]
    assert events.logs["ci/entrypoint"] == ["from-entrypoint arg"]
    assert events.logs["ci/strict-shell"] == ["before"]
    assert step_error(result, "ci/strict-shell") == "exited with code 1"
    assert result.step("ci/strict-shell").exit_code == 1


def test_container_gets_the_step_environment_not_the_runners(
    docker_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_ONLY", "from the runner")
    result, events = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          env: {{STAGE: test}}
          steps:
            - name: seed
              type: shell
              config: {{run: 'echo "##wfe[output shards=3]"; echo "##wfe[output region=eu]"'}}
            - name: show
              type: docker
              env: {{STEP_LEVEL: yes-step}}
              config:
                image: {IMAGE}
                env: {{PORT: 8080}}
                run: |
                  echo "shards=$SHARDS region=$REGION stage=$STAGE step=$STEP_LEVEL port=$PORT"
                  echo "runner=${{RUNNER_ONLY:-unset}}"
                  echo "wfe=$WFE_WORKFLOW/$WFE_STEP ws=$WFE_WORKSPACE run=$WFE_RUN_ID"
        """,
    )
    assert result.status == "succeeded", failures(result)
    assert events.logs["ci/show"] == [
        "shards=3 region=eu stage=test step=yes-step port=8080",
        "runner=unset",
        f"wfe=ci/show ws=/workspace run={result.run_id}",
    ]


def test_failing_container_reports_its_exit_code(docker_api: Any, tmp_path: Path) -> None:
    result, _ = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: fails
              type: docker
              config: {{image: {IMAGE}, run: "echo '##wfe[output partial=yes]'; exit 3"}}
            - name: after
              type: shell
              config: {{run: "true"}}
        """,
    )
    assert result.status == "failed"
    assert result.step("ci/fails").exit_code == 3
    assert step_error(result, "ci/fails") == "exited with code 3"
    assert result.step("ci/after").skip_reason == "upstream failed: fails"
    assert leftovers(docker_api, result.run_id) == []


def test_a_container_that_cannot_start_is_a_clear_error_and_is_removed(
    docker_api: Any, tmp_path: Path
) -> None:
    result, _ = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: typo
              type: docker
              config: {{image: {IMAGE}, command: [no-such-program, --help]}}
        """,
    )
    error = step_error(result, "ci/typo")
    assert error.startswith("docker: "), error
    assert '"no-such-program": executable file not found' in error
    assert leftovers(docker_api, result.run_id) == []


def test_large_output_arrives_whole_with_the_last_line_marker(
    docker_api: Any, tmp_path: Path
) -> None:
    result, events = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: chatty
              type: docker
              config:
                image: {IMAGE}
                run: 'seq 1 200000; seq 1 1000 >&2; printf "##wfe[output total=200000]"'
        """,
    )
    stdout = [line for stream, line in events.streams["ci/chatty"] if stream == "stdout"]
    stderr = [line for stream, line in events.streams["ci/chatty"] if stream == "stderr"]
    assert stdout == [*(str(n) for n in range(1, 200001)), "##wfe[output total=200000]"]
    assert stderr == [str(n) for n in range(1, 1001)]
    assert result.outputs["total"] == 200000


def test_workspace_is_mounted_read_write_and_is_the_working_dir(
    docker_api: Any, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "input.txt").write_text("from the host\n")
    result, events = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: default-dir
              type: docker
              config: {{image: {IMAGE}, run: "pwd; cat src/input.txt; echo made > out.txt"}}
            - name: sub-dir
              type: docker
              config: {{image: {IMAGE}, working_dir: src, run: "pwd; ls"}}
        """,
    )
    assert result.status == "succeeded", failures(result)
    assert events.logs["ci/default-dir"] == ["/workspace", "from the host"]
    assert (tmp_path / "out.txt").read_text() == "made\n"
    assert events.logs["ci/sub-dir"] == ["/workspace/src", "input.txt"]


def test_read_only_volume_can_be_read_but_not_written(docker_api: Any, tmp_path: Path) -> None:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "data.txt").write_text("fixture data\n")
    result, events = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: read
              type: docker
              config:
                image: {IMAGE}
                volumes: ["./fixtures:/data:ro"]
                run: cat /data/data.txt
            - name: write
              type: docker
              config:
                image: {IMAGE}
                volumes: ["fixtures:/data:ro"]
                run: touch /data/new.txt
        """,
    )
    assert events.logs["ci/read"] == ["fixture data"]
    assert result.step("ci/write").status == "failed"
    assert events.logs["ci/write"] == ["touch: /data/new.txt: Read-only file system"]
    assert not (tmp_path / "fixtures" / "new.txt").exists()


def test_network_none_leaves_only_loopback(docker_api: Any, tmp_path: Path) -> None:
    _, events = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - {{name: isolated, type: docker, config: {{image: {IMAGE}, network: none,
                run: "ls /sys/class/net"}}}}
            - {{name: default, type: docker, config: {{image: {IMAGE}, run: "ls /sys/class/net"}}}}
        """,
    )
    assert events.logs["ci/isolated"] == ["lo"]
    assert events.logs["ci/default"] == ["eth0", "lo"]


def test_timeout_kills_and_removes_the_container(docker_api: Any, tmp_path: Path) -> None:
    result, events = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: hangs
              type: docker
              config: {{image: {IMAGE}, run: "echo started; sleep 60", timeout: 5s}}
        """,
    )
    # The timeout also covers creating and starting the container, which can take a second
    # or more on a loaded machine: "started" must be printed well before it.
    assert result.status == "failed"
    assert step_error(result, "ci/hangs") == "timed out after 5.0s"
    assert events.logs["ci/hangs"] == ["started"]
    assert leftovers(docker_api, result.run_id) == []


def test_cancelling_the_run_removes_the_container(docker_api: Any, tmp_path: Path) -> None:
    plan = wfe_yaml.load(
        write_workflows(
            tmp_path,
            f"""
            workflow:
              id: ci
              steps:
                - name: long
                  type: docker
                  config: {{image: {IMAGE}, run: "echo started; sleep 60"}}
            """,
        )
    )
    events = Events()
    engine = wfe_yaml.Engine(kill_grace=0.3, subscribers=(events,))

    async def run_then_cancel() -> RunResult:
        running = asyncio.create_task(engine.run_async(plan, run_id=run_id))
        while "ci/long" not in events.logs:
            await asyncio.sleep(0.02)
        engine.cancel()
        return await asyncio.wait_for(running, WAIT_LIMIT)

    run_id = new_run_id()
    result = asyncio.run(run_then_cancel())
    assert result.status == "cancelled"
    assert result.step("ci/long").status == "cancelled"
    assert leftovers(docker_api, run_id) == []


def test_ctrl_c_on_wfe_run_removes_the_container(docker_api: Any, tmp_path: Path) -> None:
    write_workflows(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: long
              type: docker
              config:
                image: {IMAGE}
                run: "trap 'echo got TERM; exit 143' TERM; echo started; sleep 60 & wait"
        """,
    )
    process = subprocess.Popen(
        [*WFE, "run", "--plain"],
        cwd=tmp_path,
        env=wfe_environment(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("[ci/long] started"):
            break
    run_id = lines[0].split()[3]
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=WAIT_LIMIT)[0]
    assert process.returncode == 130
    assert "[ci/long] got TERM" in output
    assert leftovers(docker_api, run_id) == []


def test_memory_limit_kill_is_reported_as_out_of_memory(docker_api: Any, tmp_path: Path) -> None:
    result, _ = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: hungry
              type: docker
              config: {{image: {IMAGE}, memory: 16m, run: "tail -c 64m /dev/zero"}}
        """,
    )
    components = {part["Name"] for part in docker_api.version().get("Components", [])}
    if "Podman Engine" in components:  # Podman on cgroup v1 does not say it was an OOM kill
        assert step_error(result, "ci/hungry") == (
            "killed (exit code 137), probably out of memory (limit 16m)"
        )
    else:
        assert step_error(result, "ci/hungry") == "killed: out of memory (limit 16m)"
    assert result.step("ci/hungry").exit_code == 137


def test_missing_image_with_pull_never_is_a_clear_error(docker_api: Any, tmp_path: Path) -> None:
    result, _ = run_yaml(
        tmp_path,
        """
        workflow:
          id: ci
          steps:
            - name: offline
              type: docker
              config: {image: "wfe-no-such-image:1.0", pull: never, run: "true"}
        """,
    )
    assert step_error(result, "ci/offline") == (
        "image 'wfe-no-such-image:1.0' is not present locally and pull is 'never': "
        "build or load it first (docker build, docker load)"
    )


def test_parallel_docker_steps_run_at_the_same_time(docker_api: Any, tmp_path: Path) -> None:
    # Each step waits (bounded) until all three have started: serialised steps would fail.
    steps = "\n".join(
        f"""
                - name: s{n}
                  type: docker
                  config:
                    image: {IMAGE}
                    run: |
                      touch started-{n}
                      for i in $(seq 300); do
                        [ -e started-1 ] && [ -e started-2 ] && [ -e started-3 ] && exit 0
                        sleep 0.1
                      done
                      exit 1"""
        for n in (1, 2, 3)
    )
    result, _ = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: all
              parallel:{steps}
        """,
    )
    assert result.status == "succeeded", failures(result)


def test_without_an_engine_a_step_fails_clearly_or_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"unix://{tmp_path}/stopped-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", dead)
    result, _ = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          steps:
            - name: guarded
              type: docker
              requires: [docker]
              config: {{image: {IMAGE}, run: "true"}}
            - name: unguarded
              type: docker
              config: {{image: {IMAGE}, run: "true"}}
        """,
    )
    assert result.step("ci/guarded").status == "skipped"
    reason = result.step("ci/guarded").skip_reason
    assert reason == f"requires docker: no engine reachable at {dead} (no such file or directory)"
    assert step_error(result, "ci/unguarded") == (
        f"no engine reachable at {dead} (no such file or directory); start Docker (or Podman) "
        "or set DOCKER_HOST; `requires: [docker]` skips the step"
    )


def test_kubernetes_step_runs_as_a_local_container_and_says_so(
    docker_api: Any, run_wfe: RunWfe
) -> None:
    code, stdout, _ = run_wfe(
        f"""
        workflow:
          id: ci
          steps:
            - name: k8s-job
              type: kubernetes
              config:
                image: {IMAGE}
                namespace: ci
                cpu: 500m
                memory: 64Mi
                pull_policy: Never
                working_dir: /tmp
                env: {{TARGET: cluster}}
                run: |
                  echo "in $(pwd) for $TARGET"
                  echo "##wfe[output deployed=true]"
            - name: k8s-command
              type: k8s
              config: {{image: {IMAGE}, command: [echo, no shell here]}}
        """,
        "run",
        "--plain",
        "--verbose",
    )
    assert code == 0, stdout
    assert (
        "[ci/k8s-job] $ started [kubernetes]: kubernetes step run locally as a docker container"
    ) in stdout
    assert "[ci/k8s-job] in /tmp for cluster" in stdout
    assert "[ci/k8s-job]   output deployed = true" in stdout
    assert "[ci/k8s-command] no shell here" in stdout


# --- services ---------------------------------------------------------------------------------

SERVICES = f"""
workflow:
  id: ci
  services:
    web:
      image: {IMAGE}
      command: [httpd, -f, -p, "8080", -h, /www]
      ports: [8080]
      readiness: {{http: {{port: 8080, path: /index.html}}, interval: 100ms, timeout: 20s}}
    echo-server:
      image: {IMAGE}
      command: [sh, -c, "sleep 0.5; echo listening; nc -ll -p 9000 -e echo hello"]
      ports: [9000]
      readiness: {{tcp: 9000, interval: 100ms, timeout: 20s}}
    marker:
      image: {IMAGE}
      command: [sh, -c, "sleep 0.5; touch /tmp/ready; exec sleep 600"]
      readiness: {{exec: [test, -e, /tmp/ready], interval: 100ms, timeout: 20s}}
  steps:
    - name: in-container
      type: docker
      config:
        image: {IMAGE}
        run: |
          echo "web=$WEB_HOST:$WEB_PORT echo=$ECHO_SERVER_HOST:$ECHO_SERVER_PORT"
          wget -qO- "http://$WEB_HOST:$WEB_PORT/"
          nc "$ECHO_SERVER_HOST" "$ECHO_SERVER_PORT" </dev/null
          echo "marker=$MARKER_HOST"
    - name: on-host
      type: shell
      config:
        run: |
          python3 - <<'EOF'
          import os, socket, urllib.request
          web = f"http://{{os.environ['WEB_HOST']}}:{{os.environ['WEB_PORT']}}/"
          print(urllib.request.urlopen(web).read().decode().strip())
          with socket.create_connection(
              (os.environ["ECHO_SERVER_HOST"], int(os.environ["ECHO_SERVER_PORT_9000"]))
          ) as connection:
              print(connection.makefile().readline().strip())
          EOF
"""


def test_services_are_ready_reachable_by_name_and_by_localhost_then_removed(
    docker_api: Any, tmp_path: Path
) -> None:
    result, events = run_yaml(tmp_path, SERVICES)
    assert result.status == "succeeded", failures(result)
    assert events.logs["ci/in-container"] == [
        "web=web:8080 echo=echo-server:9000",
        "ok",
        "hello",
        "marker=marker",
    ]
    assert events.logs["ci/on-host"] == ["ok", "hello"]
    assert result.outputs["WEB_HOST"] == "127.0.0.1"
    assert isinstance(result.outputs["WEB_PORT"], int)
    assert {notice.split(" ready in ")[0] for notice in events.notices} == {
        "service web",
        "service echo-server",
        "service marker",
    }
    assert leftovers(docker_api, result.run_id) == []


NEVER_READY = f"""
workflow:
  id: ci
  services:
    db:
      image: {IMAGE}
      command: [sh, -c, "for i in $(seq 25); do echo boot step $i; done; exec sleep 600"]
      readiness: {{exec: "test -e /tmp/never", interval: 100ms, retries: 3}}
  steps:
    - {{name: migrate, type: shell, config: {{run: "echo should not run"}}}}
  ensure:
    - {{name: cleanup, type: shell, config: {{run: "echo ensure ran"}}}}
"""


def test_a_service_that_never_becomes_ready_fails_the_workflow_with_its_logs(
    docker_api: Any, tmp_path: Path
) -> None:
    result, events = run_yaml(tmp_path, NEVER_READY)
    assert result.status == "failed"
    assert result.step("ci/migrate").skip_reason == "service 'db' never became ready"
    assert result.error is not None
    head, *tail = result.error.splitlines()
    assert head.startswith(
        "service 'db' never became ready: exec sh -c 'test -e /tmp/never' failed 3 times in "
    )
    assert tail == ["last log lines of db:", *(f"  boot step {i}" for i in range(6, 26))]
    assert events.logs["ci/cleanup"] == ["ensure ran"]
    assert leftovers(docker_api, result.run_id) == []


def test_a_service_that_exits_fails_at_once(docker_api: Any, tmp_path: Path) -> None:
    result, _ = run_yaml(
        tmp_path,
        f"""
        workflow:
          id: ci
          services:
            broken:
              image: {IMAGE}
              command: [sh, -c, "echo missing config >&2; exit 3"]
              ports: [5432]
              readiness: {{interval: 100ms, timeout: 20s}}
          steps:
            - {{name: use, type: shell, config: {{run: "true"}}}}
        """,
    )
    assert result.error == (
        "service 'broken' never became ready: it exited with code 3\n"
        "last log lines of broken:\n"
        "  missing config"
    )
    assert leftovers(docker_api, result.run_id) == []


def test_services_are_removed_after_a_failed_step_and_after_a_cancel(
    docker_api: Any, tmp_path: Path
) -> None:
    workflow = """
      - id: {id}
        services:
          cache: {{image: {image}, command: [sleep, "600"]}}
        steps:
          - name: uses-cache
            type: docker
            config: {{image: {image}, run: "echo started; {action}"}}
    """
    text = "workflows:" + "".join(
        workflow.format(id=id_, image=IMAGE, action=action)
        for id_, action in (("fails", "exit 1"), ("hangs", "sleep 60"))
    )
    plan = wfe_yaml.load(write_workflows(tmp_path, text))
    failed_run, cancelled_run = new_run_id(), new_run_id()
    failed = wfe_yaml.Engine(kill_grace=0.3).run(plan, "fails", None, failed_run)
    assert failed.status == "failed"

    events = Events()
    engine = wfe_yaml.Engine(kill_grace=0.3, subscribers=(events,))

    async def run_then_cancel() -> RunResult:
        running = asyncio.create_task(engine.run_async(plan, "hangs", run_id=cancelled_run))
        while "hangs/uses-cache" not in events.logs:
            await asyncio.sleep(0.02)
        engine.cancel()
        return await asyncio.wait_for(running, WAIT_LIMIT)

    cancelled = asyncio.run(run_then_cancel())
    assert cancelled.status == "cancelled"
    assert leftovers(docker_api, failed_run) == []
    assert leftovers(docker_api, cancelled_run) == []


def test_wfe_run_shows_the_services_and_the_verdict(docker_api: Any, run_wfe: RunWfe) -> None:
    code, stdout, _ = run_wfe(NEVER_READY, "run", "--plain")
    assert code == 1
    assert "service 'db' never became ready: exec sh -c 'test -e /tmp/never' failed 3" in stdout
    assert "  boot step 25" in stdout
    assert "[ci/migrate] - skipped: service 'db' never became ready" in stdout
