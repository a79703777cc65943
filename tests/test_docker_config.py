"""Docker and Kubernetes step configs, sizes, and engine discovery: no Docker engine needed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import wfe_yaml
from executors.docker import (
    DockerConfig,
    KubernetesConfig,
    Volume,
    kubernetes_cpus,
    memory_bytes,
)
from tests.conftest import write_workflows
from wfe_yaml.errors import ConfigError
from wfe_yaml.preflight import CapabilityProbe, engine_addresses


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (67108864, 67108864),
        ("1024", 1024),
        ("64m", 64 * 1024**2),
        ("64MB", 64 * 1024**2),
        ("512Mi", 512 * 1024**2),
        ("1.5g", int(1.5 * 1024**3)),
        ("2Gi", 2 * 1024**3),
        ("100k", 100 * 1024),
        ("10b", 10),
    ],
)
def test_memory_sizes_read_as_docker_and_kubernetes_write_them(text: str | int, size: int) -> None:
    assert memory_bytes(text) == size


@pytest.mark.parametrize("text", ["lots", "-1m", "0", "64 mega", "1e3"])
def test_bad_memory_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="memory size"):
        memory_bytes(text)


@pytest.mark.parametrize(("text", "cpus"), [("500m", 0.5), ("2", 2.0), ("0.25", 0.25)])
def test_kubernetes_cpu_quantities(text: str, cpus: float) -> None:
    assert kubernetes_cpus(text) == cpus


def test_volumes_are_host_paths_or_named_volumes(tmp_path: Path) -> None:
    assert Volume.parse("./fixtures:/data:ro").bind(tmp_path) == f"{tmp_path}/fixtures:/data:ro"
    assert Volume.parse("/etc/ssl:/ssl").bind(tmp_path) == "/etc/ssl:/ssl:rw"
    assert Volume.parse("cache:/root/.cache").bind(tmp_path) == "cache:/root/.cache:rw"
    assert (
        Volume.parse("out/reports:/reports").bind(tmp_path) == f"{tmp_path}/out/reports:/reports:rw"
    )


def test_kubernetes_step_becomes_a_docker_step() -> None:
    config = KubernetesConfig(
        image="alpine",
        run="make test",
        shell="/bin/bash -e",
        cpu="250m",
        memory="128Mi",
        pull_policy="Never",
        namespace="ci",
    )
    assert config.as_docker() == DockerConfig(
        image="alpine",
        run="make test",
        entrypoint=["/bin/bash", "-e"],
        cpus=0.25,
        memory="128Mi",
        pull="never",
    )
    command = KubernetesConfig(image="alpine", command=["make", "lint"]).as_docker()
    assert (command.entrypoint, command.command, command.run) == (["make", "lint"], None, None)


def load_errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        wfe_yaml.load(write_workflows(tmp_path, text))
    return caught.value.format().splitlines()


def test_config_mistakes_are_reported_at_their_line(tmp_path: Path) -> None:
    errors = load_errors(
        tmp_path,
        """
        workflow:
          id: ci
          steps:
            - name: a
              type: docker
              config:
                image: alpine
                volumes: ["data"]
                memory: lots
            - name: b
              type: k8s
              config: {image: alpine, cpu: fast, run: "true"}
            - name: c
              type: docker
              config: {image: alpine, run: "true", command: [x]}
        """,
    )
    file = tmp_path / "workflows.yaml"
    assert errors[:3] == [
        f"{file}:9:18: error: volumes: invalid volume 'data': use source:target or "
        "source:target:ro",
        f"{file}:10:17: error: invalid memory size 'lots': use bytes or e.g. 64m, 512Mi, 2g",
        f"{file}:13:36: error: invalid cpu 'fast': use e.g. 500m or 2",
    ]
    assert any("'run' and 'command' exclude each other" in line for line in errors[3:])


def test_importing_the_executors_does_not_import_the_docker_sdk() -> None:
    code = "import executors.docker, executors.services, sys; print('docker' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.stdout.strip() == "False"


# --- engine discovery -------------------------------------------------------------------------


@pytest.fixture
def docker_config_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes: pytest's tmp_path can be too long.
    with tempfile.TemporaryDirectory(prefix="wfe", dir="/tmp") as directory:
        yield Path(directory)


def write_context(config_dir: Path, name: str, host: str, *, current: bool = True) -> None:
    meta = config_dir / "contexts" / "meta" / f"digest-of-{name}"
    meta.mkdir(parents=True)
    endpoints = {"docker": {"Host": host, "SkipTLSVerify": False}}
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": endpoints}))
    if current:
        (config_dir / "config.json").write_text(json.dumps({"currentContext": name}))


def test_the_current_docker_context_is_tried_first(docker_config_dir: Path) -> None:
    write_context(docker_config_dir, "other", "unix:///nowhere/other.sock", current=False)
    write_context(docker_config_dir, "colima", "unix:///nowhere/colima.sock")
    env = {"DOCKER_CONFIG": str(docker_config_dir)}
    assert engine_addresses(env)[:2] == [
        "unix:///nowhere/colima.sock",
        "unix:///var/run/docker.sock",
    ]
    assert engine_addresses({**env, "DOCKER_CONTEXT": "other"})[0] == "unix:///nowhere/other.sock"
    assert (
        engine_addresses({**env, "DOCKER_CONTEXT": "default"})[0] == "unix:///var/run/docker.sock"
    )
    assert engine_addresses({**env, "DOCKER_HOST": "tcp://build:2375"}) == ["tcp://build:2375"]


def test_requires_docker_finds_the_engine_of_the_current_context(docker_config_dir: Path) -> None:
    socket_path = docker_config_dir / "engine.sock"
    write_context(docker_config_dir, "desktop", f"unix://{socket_path}")

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
        await writer.drain()
        writer.close()

    async def check() -> tuple[tuple[bool, str], str | None]:
        async with await asyncio.start_unix_server(engine, path=str(socket_path)):
            probe = CapabilityProbe(env={"DOCKER_CONFIG": str(docker_config_dir)})
            return await probe.check("docker"), probe.docker_url

    assert asyncio.run(check()) == ((True, ""), f"unix://{socket_path}")
