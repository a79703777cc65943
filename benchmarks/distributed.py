"""100 `sleep 0.1` steps over 2 Celery workers vs the same run on this machine (DESIGN §10).

Starts its own redis-server on a free loopback port and two `wfe worker`s (each with half of
--jobs as concurrency), runs the same file once with `--broker` and once without (where
`runs_on` is ignored), both with the same --jobs, and prints both wall times and the ratio.
Target: remote ≤ 1.3× local. Before the timed run, one untimed run of --jobs `true` steps
lets each pool process of the workers set itself up, as long-running workers have.

    python benchmarks/distributed.py [--jobs 8] [--steps 100]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TARGET_RATIO = 1.3
READY_SECONDS = 30.0


def main() -> int:
    options = parse_arguments()
    load = os.getloadavg()[0]  # other work on the machine skews both runs
    if shutil.which("redis-server") is None:
        print("redis-server not found: apt-get install -y redis-server", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="wfe-bench-") as folder:
        workspace = Path(folder)
        workflow = write_workflow(workspace, "workflows.yaml", options.steps, "sleep 0.1")
        warm_up = write_workflow(workspace, "warm-up.yaml", options.jobs, "true")
        with redis_server(workspace) as broker, workers(broker, workspace, options.jobs):
            timed_run(warm_up, options.jobs, broker)
            remote = timed_run(workflow, options.jobs, broker)
        local = timed_run(workflow, options.jobs, None)
    ratio = remote / local
    print(f"{options.steps} × sleep 0.1, --jobs {options.jobs} (load average {load:.1f})")
    print(f"local:             {local:6.2f} s")
    print(f"2 Celery workers:  {remote:6.2f} s")
    verdict = "ok" if ratio <= TARGET_RATIO else "over target"
    print(f"ratio:             {ratio:6.2f}×  (target ≤ {TARGET_RATIO}×: {verdict})")
    return 0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="--jobs of both runs [8]")
    parser.add_argument("--steps", type=int, default=100, help="number of steps [100]")
    return parser.parse_args()


def write_workflow(workspace: Path, name: str, steps: int, command: str) -> Path:
    path = workspace / name
    path.write_text(
        "workflow:\n"
        "  id: bench\n"
        "  steps:\n"
        "    - name: sleep\n"
        "      type: shell\n"
        "      runs_on: [bench]\n"
        f"      matrix: {{n: {list(range(steps))}}}\n"
        f"      config: {{run: '{command}', shell: sh}}\n"
    )
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(workspace: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        cwd=workspace,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait()


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return
        time.sleep(0.01)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def workers(broker: str, workspace: Path, jobs: int) -> Iterator[None]:
    concurrency = str(max(jobs // 2, 1))
    processes = []
    try:
        for name in ("one", "two"):
            log = workspace / f"worker-{name}.log"
            command = ["wfe", "worker", "--broker", broker, "--queues", "bench"]
            command += ["--concurrency", concurrency, "--workdir", str(workspace)]
            command += ["--name", f"{name}@bench"]
            with log.open("w") as output:
                processes.append(subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT))
        for name in ("one", "two"):
            wait_for_text(workspace / f"worker-{name}.log", f"{name}@bench ready.")
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()


def wait_for_text(path: Path, text: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{path.name} never said {text!r}:\n{path.read_text()}")


def timed_run(workflow: Path, jobs: int, broker: str | None) -> float:
    command = ["wfe", "run", str(workflow), "--plain", "--quiet", "--jobs", str(jobs)]
    if broker:
        command += ["--broker", broker]
    env = {key: value for key, value in os.environ.items() if key != "WFE_BROKER"}
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{finished.stdout}{finished.stderr}")
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
