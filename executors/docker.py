"""Docker steps (`type: docker`) and WFE's Kubernetes steps (`kubernetes`/`k8s`) run locally.

A step runs in a fresh container of its image with the workspace (the YAML file's directory)
mounted at `/workspace`. Output is streamed line by line and scanned for `##wfe[` commands;
the container is removed however the step ends. The Docker SDK (extra `docker`) is imported
only when a step runs, so loading this module stays cheap.

The SDK blocks, so its calls run in threads: short calls through `asyncio.to_thread`; the
output stream and the wait for the exit in threads of their own, since they last as long as
the container and would otherwise starve the small default pool (parallel steps overlap).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import posixpath
import re
import shlex
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, field_validator, model_validator

from executors.base import Executor, ExecutorConfig, LogSink, StepRequest, StepResult, StepStatus
from executors.outputs import OutputParser, redact
from executors.process import LineSplitter
from executors.shell import ENGINE_VARIABLES
from wfe_yaml.durations import Duration
from wfe_yaml.models import Env
from wfe_yaml.preflight import find_docker_engine

CONTAINER_WORKSPACE = "/workspace"
RUN_LABEL = "wfe.run"
"""Every container and network wfe creates carries the id of its run under this label."""
STEP_LABEL = "wfe.step"
INSTALL_HINT = "docker steps need the 'docker' extra: pip install 'wfe-yaml[docker]'"
ENGINE_HINT = "start Docker (or Podman) or set DOCKER_HOST; `requires: [docker]` skips the step"
MAX_BUFFERED_BYTES = 1024 * 1024
"""Output per stream read from the engine but not yet handled by the event loop: a
container that prints faster than the loop handles its lines waits, memory stays flat."""

SIGKILL_EXIT = 137
OOM_REPORT_WAIT = 2.0
OOM_REPORT_POLL = 0.05
DRAIN_SECONDS = 1.0
"""How long output may still arrive after a cancelled container stopped."""
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:ib?|b)?|b)?", re.IGNORECASE)
_UNIT_POWER = {"k": 1, "m": 2, "g": 3, "t": 4}
_K8S_CPU = re.compile(r"(\d+(?:\.\d+)?)(m?)")
PullPolicy = Literal["always", "if-not-present", "never"]
_PULL_POLICIES: dict[str, PullPolicy] = {
    "Always": "always",
    "IfNotPresent": "if-not-present",
    "Never": "never",
}
T = TypeVar("T")


# --- quantities -------------------------------------------------------------------------------


def memory_bytes(value: str | int) -> int:
    """Bytes of a memory size: `67108864`, `64m`, `64MB`, `512Mi`, `1.5g` (units are powers
    of 1024, as Docker reads them; Kubernetes' `Mi`/`Gi` mean the same)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"a memory size must be positive: {value}")
        return value
    match = _MEMORY.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"invalid memory size {value!r}: use bytes or e.g. 64m, 512Mi, 2g")
    number, unit = match.groups()
    size = int(float(number) * 1024 ** _UNIT_POWER.get((unit or "").lower(), 0))
    if size <= 0:
        raise ValueError(f"a memory size must be positive: {value!r}")
    return size


def kubernetes_cpus(value: str) -> float:
    """CPUs of a Kubernetes quantity: `500m` → 0.5, `2` → 2.0."""
    match = _K8S_CPU.fullmatch(value.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"invalid cpu {value!r}: use e.g. 500m or 2")
    number = float(match.group(1))
    return number / 1000 if match.group(2) else number


def _check_memory(value: str | int | None) -> str | int | None:
    if value is not None:
        memory_bytes(value)
    return value


# --- volumes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Volume:
    """`source:target[:ro|rw]`. A source with a `/`, or starting with `.` or `~`, is a host
    path (relative ones against the workspace); a bare name is a named Docker volume."""

    source: str
    target: str
    read_only: bool = False

    @classmethod
    def parse(cls, text: str) -> Volume:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise ValueError(f"invalid volume {text!r}: use source:target or source:target:ro")
        mode = parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            raise ValueError(f"invalid volume {text!r}: the mode is 'ro' or 'rw', not {mode!r}")
        if not parts[1].startswith("/"):
            raise ValueError(f"invalid volume {text!r}: the target must be an absolute path")
        return cls(parts[0], parts[1], mode == "ro")

    @property
    def is_path(self) -> bool:
        return "/" in self.source or self.source.startswith((".", "~"))

    def bind(self, workspace: Path) -> str:
        source = self.source
        if self.is_path:
            source = str((workspace / Path(source).expanduser()).resolve())
        return f"{source}:{self.target}:{'ro' if self.read_only else 'rw'}"


# --- configs ----------------------------------------------------------------------------------


class DockerConfig(ExecutorConfig):
    image: str = Field(min_length=1)
    run: str | None = None
    """A script run as `sh -c <run>` (or `<entrypoint> -c <run>` when `entrypoint` is set)."""
    command: list[str] | None = None
    entrypoint: str | list[str] | None = None
    env: Env = {}
    volumes: list[str] = []
    working_dir: str | None = None
    """Inside the container; relative to /workspace unless absolute. Default: /workspace."""
    user: str | None = None
    network: str | None = None
    """none, bridge, host or a network name. Default: the workflow's services network when
    it has `services:`, else bridge."""
    pull: PullPolicy = "if-not-present"
    memory: str | int | None = None
    cpus: float | None = Field(default=None, gt=0)
    timeout: Duration | None = None
    """Enforced by the engine, which cancels the step; the executor never reads it."""

    _memory = field_validator("memory")(_check_memory)

    @field_validator("volumes")
    @classmethod
    def _volumes_parse(cls, value: list[str]) -> list[str]:
        for text in value:
            Volume.parse(text)
        return value

    @field_validator("network")
    @classmethod
    def _network_named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("'network' is empty: use none, bridge, host or a network name")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint_words(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and not entrypoint_words(value):
            raise ValueError("'entrypoint' names no program")
        return value

    @model_validator(mode="after")
    def _run_or_command(self) -> DockerConfig:
        if self.run is not None and self.command is not None:
            raise ValueError("'run' and 'command' exclude each other")
        return self


def entrypoint_words(entrypoint: str | list[str]) -> list[str]:
    if isinstance(entrypoint, list):
        return entrypoint
    try:
        return shlex.split(entrypoint)
    except ValueError as error:
        raise ValueError(f"'entrypoint' cannot be split into words: {error}") from None


class KubernetesConfig(ExecutorConfig):
    image: str = Field(min_length=1)
    run: str | None = None
    command: list[str] | None = None
    shell: str = "/bin/sh"
    env: Env = {}
    working_dir: str | None = None
    memory: str | None = None
    cpu: str | None = None
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    namespace: str | None = None
    """Accepted for WFE files; a local run has no namespace."""
    kubeconfig: str | None = None
    """Accepted for WFE files; a local run uses no cluster."""
    timeout: Duration | None = None

    _memory = field_validator("memory")(_check_memory)

    @field_validator("cpu")
    @classmethod
    def _cpu_quantity(cls, value: str | None) -> str | None:
        if value is not None:
            kubernetes_cpus(value)
        return value

    @model_validator(mode="after")
    def _run_or_command(self) -> KubernetesConfig:
        if self.run is not None and self.command is not None:
            raise ValueError("'run' and 'command' exclude each other")
        return self

    def as_docker(self) -> DockerConfig:
        """The docker step this Kubernetes step runs as. As in a pod spec, `command` replaces
        the image's entrypoint."""
        return DockerConfig(
            image=self.image,
            run=self.run,
            entrypoint=self.command or (entrypoint_words(self.shell) if self.run else None),
            env=self.env,
            working_dir=self.working_dir,
            pull=_PULL_POLICIES[self.pull_policy],
            memory=self.memory,
            cpus=kubernetes_cpus(self.cpu) if self.cpu else None,
            timeout=self.timeout,
        )


# --- the engine -------------------------------------------------------------------------------


class ContainerProblem(Exception):
    """Why a container step or service cannot run, reported as a failure, not raised."""


@dataclass(frozen=True)
class EngineClients:
    api: Any
    """For calls, with the SDK's timeout: a hung engine ends in an error, not a hang."""
    streams: Any
    """For output streams, without a timeout: a container may stay silent for hours."""


_clients: dict[str, EngineClients] = {}
_clients_lock = threading.Lock()


async def engine_clients(env: Mapping[str, str]) -> EngineClients:
    """Docker API clients for the first engine that answers (DESIGN §5 discovery order)."""
    search = await find_docker_engine(env)
    if search.url is None:
        raise ContainerProblem(f"{search.reason}; {ENGINE_HINT}")
    try:
        import docker  # noqa: F401  (heavy: imported when a container is about to run)
    except ImportError:
        raise ContainerProblem(INSTALL_HINT) from None
    return await asyncio.to_thread(_clients_for, search.url, dict(env))


def _clients_for(url: str, env: dict[str, str]) -> EngineClients:
    # Made once per engine for the whole process: they keep pools of connections, and
    # making one asks the engine for its API version.
    with _clients_lock:
        clients = _clients.get(url)
        if clients is None:
            import docker

            tls = docker.utils.kwargs_from_env(environment=env).get("tls", False)
            api = docker.APIClient(base_url=url, tls=tls)
            streams = docker.APIClient(base_url=url, tls=tls, version=api.api_version, timeout=None)
            clients = _clients[url] = EngineClients(api, streams)
        return clients


def engine_error_text(error: BaseException) -> str | None:
    """What an exception from the Docker SDK means for the user; None for anything else."""
    import docker.errors
    import requests.exceptions

    if isinstance(error, docker.errors.APIError):
        return f"docker: {error.explanation or error}"
    if isinstance(error, requests.exceptions.RequestException):
        return f"lost the connection to the Docker engine: {error}"
    if isinstance(error, docker.errors.DockerException):
        return f"docker: {error}"
    return None


async def ensure_image(api: Any, image: str, pull: str, log: LogSink) -> None:
    """Make `image` present locally as the pull policy allows."""
    if pull != "always":
        if await asyncio.to_thread(_image_present, api, image):
            return
        if pull == "never":
            raise ContainerProblem(
                f"image '{image}' is not present locally and pull is 'never': "
                "build or load it first (docker build, docker load)"
            )
    log("stderr", [f"pulling image {image}"])
    await asyncio.to_thread(_pull, api, image)


def _image_present(api: Any, image: str) -> bool:
    import docker.errors

    try:
        api.inspect_image(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(api: Any, image: str) -> None:
    import docker.errors
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(image)
    try:
        for event in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise ContainerProblem(f"could not pull image '{image}': {event['error']}")
    except docker.errors.APIError as error:
        raise ContainerProblem(
            f"could not pull image '{image}': {error.explanation or error}"
        ) from None


# --- containers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerSpec:
    """What to create; shared by steps and services."""

    image: str
    labels: dict[str, str]
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    network: str = "bridge"
    aliases: tuple[str, ...] = ()
    """Names the container answers to on a user-defined network."""
    hosts: dict[str, str] = field(default_factory=dict)
    """Host name → address lines for /etc/hosts."""
    binds: tuple[str, ...] = ()
    ports: tuple[tuple[int, str, int | None], ...] = ()
    """(port, protocol, host port) published on 127.0.0.1; host port None: the engine picks."""
    memory: str | int | None = None
    cpus: float | None = None

    def create(self, api: Any) -> str:
        """Create the container (blocking); its id."""
        memory = None if self.memory is None else memory_bytes(self.memory)
        host_config = api.create_host_config(
            binds=list(self.binds),
            network_mode=self.network,
            # Swap as large as the limit: no swap, so the limit means what it says.
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=None if self.cpus is None else int(self.cpus * 1e9),
            extra_hosts=self.hosts or None,
            port_bindings={
                f"{port}/{protocol}": ("127.0.0.1", host_port)
                for port, protocol, host_port in self.ports
            },
        )
        networking = None
        if self.aliases:
            endpoint = api.create_endpoint_config(aliases=list(self.aliases))
            networking = api.create_networking_config({self.network: endpoint})
        created = api.create_container(
            self.image,
            command=self.command,
            entrypoint=self.entrypoint,
            environment=self.env,
            working_dir=self.working_dir,
            user=self.user,
            labels=self.labels,
            ports=[(port, protocol) for port, protocol, _host_port in self.ports],
            host_config=host_config,
            networking_config=networking,
        )
        return str(created["Id"])


async def create_container(api: Any, spec: ContainerSpec) -> str:
    """Create a container; when cancelled meanwhile, the container is removed all the same."""
    creating = asyncio.ensure_future(asyncio.to_thread(spec.create, api))
    try:
        return await asyncio.shield(creating)
    except asyncio.CancelledError:
        await finish_despite_cancel(_remove_once_created(api, creating))
        raise


async def _remove_once_created(api: Any, creating: asyncio.Future[str]) -> None:
    try:
        container = await creating
    except Exception:
        return  # never created: nothing to remove
    await remove_container(api, container)


async def remove_container(api: Any, container: str) -> None:
    await asyncio.to_thread(_remove, api, container)


def _remove(api: Any, container: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        api.remove_container(container, force=True, v=True)


async def finish_despite_cancel(work: Coroutine[Any, Any, T]) -> T:
    """Await cleanup work to its end even when cancelled meanwhile (a second Ctrl-C must not
    leave a container behind); a cancel that arrived is re-raised afterwards."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


@dataclass(frozen=True)
class ContainerEnd:
    exit_code: int
    oom_killed: bool


class OutputLines:
    """Cuts a container's two streams into lines. Stdout batches that may hold `##wfe[`
    commands go to the parser before being logged, so a mask hides its own line."""

    def __init__(self, log: LogSink, parser: OutputParser) -> None:
        self._log = log
        self._parser = parser
        self._splitters = {
            "stdout": LineSplitter(self._stdout),
            "stderr": LineSplitter(lambda lines, _marked: self._emit("stderr", lines)),
        }

    def feed(self, stream: str, chunk: bytes | bytearray | None) -> None:
        """A chunk of a stream; None when the stream ended."""
        if chunk is None:
            self._splitters[stream].close()
        else:
            self._splitters[stream].feed(chunk)

    def _stdout(self, lines: Sequence[str], marked: bool) -> None:
        if marked:
            self._parser.feed(lines)
        self._emit("stdout", lines)

    def _emit(self, stream: str, lines: Sequence[str]) -> None:
        self._log(stream, redact(lines, self._parser.masks))


class _OutputPump:
    """Carries a container's output from the reader thread to the event loop. What arrives
    while the loop is busy is joined into one batch, so a chatty container costs a callback
    per batch, not per write; past MAX_BUFFERED_BYTES unread, the reader waits (and with it
    the container's writes). An error of the consumer is kept, not raised in the callback."""

    def __init__(self, consume: Callable[[str, bytes | bytearray | None], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._consume = consume
        self._lock = threading.Condition()
        self._pending = {"stdout": bytearray(), "stderr": bytearray()}
        self._ended = False
        self._scheduled = False
        self._stopped = False
        self.failed: asyncio.Future[BaseException] = self._loop.create_future()
        self.delivered = 0
        """Batches handed on so far: tells a slow stream from a stuck one."""

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    def read(self, frames: Any) -> None:
        """Follow an attached container's (stdout, stderr) frames to their end (in a thread)."""
        try:
            for stdout, stderr in frames:
                if not (self._put("stdout", stdout) and self._put("stderr", stderr)):
                    return
            with self._lock:
                self._ended = True
                self._schedule()
        finally:
            frames.close()

    def _put(self, stream: str, data: bytes | None) -> bool:
        with self._lock:
            while len(self._pending[stream]) >= MAX_BUFFERED_BYTES and not self._stopped:
                self._lock.wait()
            if self._stopped:
                return False
            if data:
                self._pending[stream] += data
                self._schedule()
            return True

    def _schedule(self) -> None:
        """Ask the loop for a flush unless one is already asked for (holding the lock)."""
        if self._scheduled or self._stopped:
            return
        self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopped = True

    def _flush(self) -> None:
        with self._lock:
            batches = [(stream, data) for stream, data in self._pending.items() if data]
            self._pending = {"stdout": bytearray(), "stderr": bytearray()}
            ended, self._scheduled = self._ended, False
            stopped = self._stopped
            self._lock.notify_all()
        if stopped:
            return
        try:
            for stream, data in batches:
                self._consume(stream, data)
            if ended:
                self._consume("stdout", None)
                self._consume("stderr", None)
        except Exception as error:
            self.stop()
            if not self.failed.done():
                self.failed.set_result(error)
        self.delivered += 1


async def run_container(
    clients: EngineClients, spec: ContainerSpec, output: OutputLines, kill_grace: float
) -> ContainerEnd:
    """Create, start and follow a container to its end; it is removed in every case.

    Cancelling stops it (SIGTERM, `kill_grace` seconds, SIGKILL; a second cancel kills at
    once), removes it and re-raises CancelledError.
    """
    container = await create_container(clients.api, spec)
    try:
        end = await _follow(clients, container, output, kill_grace)
        if end.exit_code == SIGKILL_EXIT and spec.memory is not None and not end.oom_killed:
            return ContainerEnd(end.exit_code, await _reported_oom_kill(clients.api, container))
        return end
    finally:
        await finish_despite_cancel(remove_container(clients.api, container))


async def _follow(
    clients: EngineClients, container: str, output: OutputLines, kill_grace: float
) -> ContainerEnd:
    api = clients.api
    # Attached before the start, so that no output can be missed.
    frames = await asyncio.to_thread(
        clients.streams.attach, container, stream=True, logs=True, demux=True
    )
    pump = _OutputPump(output.feed)
    reader = in_own_thread(pump.read, frames)
    exited: asyncio.Future[Any] | None = None
    try:
        await asyncio.to_thread(api.start, container)
        exited = in_own_thread(api.wait, container)
        ending: list[asyncio.Future[Any]] = [exited, pump.failed]
        await asyncio.wait(ending, return_when=asyncio.FIRST_COMPLETED)
        if not pump.failed.done():
            await _drain(reader, pump)
        if pump.failed.done():
            raise pump.failed.result()
        exit_code = exited.result()["StatusCode"]
    except asyncio.CancelledError:
        await _stop(api, container, kill_grace)
        # What the container printed while stopping (a trap's last words) is still shown.
        await asyncio.wait([reader], timeout=DRAIN_SECONDS)
        raise
    finally:
        pump.stop()
        reader.cancel()
        if exited is not None:
            exited.cancel()
    return ContainerEnd(int(exit_code), await _oom_killed(api, container))


async def _oom_killed(api: Any, container: str) -> bool:
    state = (await asyncio.to_thread(api.inspect_container, container))["State"]
    return bool(state.get("OOMKilled"))


async def _reported_oom_kill(api: Any, container: str) -> bool:
    """The engine learns of an OOM kill from its own event, which may arrive after the exit
    event (containerd#12260), so a SIGKILL under a memory limit waits a moment for it."""
    deadline = time.monotonic() + OOM_REPORT_WAIT
    while time.monotonic() < deadline:
        await asyncio.sleep(OOM_REPORT_POLL)
        if await _oom_killed(api, container):
            return True
    return False


async def _drain(reader: asyncio.Future[Any], pump: _OutputPump) -> None:
    """After the exit, read the output to its end (it may lag behind), but give up on a
    stream that stays silent for DRAIN_SECONDS without ending: engines do not all end an
    attached stream together with its container."""
    while True:
        delivered = pump.delivered
        await asyncio.wait([reader], timeout=DRAIN_SECONDS)
        if reader.done():
            reader.result()  # an engine error while reading
            return
        if pump.delivered == delivered:
            return


async def _stop(api: Any, container: str, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; at once when cancelled meanwhile."""
    # The engine counts whole seconds; rounding up never cuts a grace period short.
    seconds = math.ceil(grace)
    stopping = in_own_thread(_quietly, api.stop, container, seconds)
    try:
        await asyncio.shield(stopping)
    except asyncio.CancelledError:
        await finish_despite_cancel(asyncio.to_thread(_quietly, api.kill, container))
        raise


def _quietly(action: Callable[..., Any], *args: Any) -> None:
    """Stop or kill, ignoring the engine's answer that the container is gone or stopped."""
    import docker.errors

    with contextlib.suppress(docker.errors.APIError):
        action(*args)


def in_own_thread(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run a long blocking call in a daemon thread of its own; its result as a future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        result, error = None, None
        try:
            result = function(*args)
        except BaseException as caught:
            error = caught
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name="wfe-docker-logs", daemon=True).start()
    return future


# --- steps ------------------------------------------------------------------------------------


def step_container(config: DockerConfig, request: StepRequest) -> ContainerSpec:
    """The container of one step; on the workflow's services network unless told otherwise."""
    from executors.services import current_services

    services = current_services()
    network = config.network or (services.network if services else "bridge")
    env = dict(request.env)
    hosts: dict[str, str] = {}
    if services is not None and network == services.network:
        services.point_at_containers(env)
        # Names resolve through the network's DNS; these lines also serve engines without it
        # (Podman with CNI and no dnsname plugin).
        hosts = services.addresses()
    env.update(config.env)
    # The engine's WFE_* variables rank above every `env:` (DESIGN 4.1); the workspace is
    # where the container sees it.
    env.update({name: request.env[name] for name in ENGINE_VARIABLES if name in request.env})
    env["WFE_WORKSPACE"] = CONTAINER_WORKSPACE
    entrypoint, command = _argv(config)
    return ContainerSpec(
        image=config.image,
        labels={RUN_LABEL: request.run_id, STEP_LABEL: request.path},
        entrypoint=entrypoint,
        command=command,
        env=env,
        working_dir=posixpath.join(CONTAINER_WORKSPACE, config.working_dir or "."),
        user=config.user,
        network=network,
        hosts=hosts,
        binds=tuple(_binds(config.volumes, request.workspace)),
        memory=config.memory,
        cpus=config.cpus,
    )


def _argv(config: DockerConfig) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint, command): `run` goes through `sh -c` (or `<entrypoint> -c`); `command`
    keeps Docker's meaning (arguments of the entrypoint)."""
    entrypoint = None if config.entrypoint is None else entrypoint_words(config.entrypoint)
    if config.run is not None:
        return entrypoint or ["sh"], ["-c", config.run]
    return entrypoint, config.command


def _binds(volumes: Iterable[str], workspace: Path) -> list[str]:
    parsed = [Volume.parse(text) for text in volumes]
    binds = [volume.bind(workspace) for volume in parsed]
    # A volume of the user's own at /workspace takes the workspace's place.
    if all(volume.target.rstrip("/") != CONTAINER_WORKSPACE for volume in parsed):
        binds.insert(0, f"{workspace.resolve()}:{CONTAINER_WORKSPACE}:rw")
    return binds


def _result(end: ContainerEnd, parser: OutputParser, memory: str | int | None) -> StepResult:
    if end.exit_code == 0:
        return StepResult(StepStatus.SUCCEEDED, 0, parser.outputs, masks=parser.masks)
    limit = f" (limit {memory})" if memory is not None else ""
    if end.oom_killed:
        error = f"killed: out of memory{limit}"
    elif end.exit_code == SIGKILL_EXIT and memory is not None:
        # Some engines (Podman on cgroup v1) never set OOMKilled.
        error = f"killed (exit code {SIGKILL_EXIT}), probably out of memory{limit}"
    else:
        error = f"exited with code {end.exit_code}"
    return StepResult.failed(error, end.exit_code, outputs=parser.outputs, masks=parser.masks)


async def run_docker_step(config: DockerConfig, request: StepRequest) -> StepResult:
    clients = await engine_clients(os.environ)
    await ensure_image(clients.api, config.image, config.pull, request.log)
    parser = OutputParser()
    output = OutputLines(request.log, parser)
    spec = step_container(config, request)
    end = await run_container(clients, spec, output, request.kill_grace)
    return _result(end, parser, config.memory)


class DockerExecutor(Executor):
    names: ClassVar[tuple[str, ...]] = ("docker",)
    config_model: ClassVar[type[ExecutorConfig]] = DockerConfig

    async def run(self, request: StepRequest) -> StepResult:
        try:
            return await run_docker_step(self.docker_config(request), request)
        except ContainerProblem as problem:
            return StepResult.failed(str(problem))
        except Exception as error:
            text = engine_error_text(error)
            if text is None:
                raise
            return StepResult.failed(text)

    def docker_config(self, request: StepRequest) -> DockerConfig:
        # A remote worker receives the config as plain data.
        if isinstance(request.config, DockerConfig):
            return request.config
        return DockerConfig.model_validate(request.config)


class KubernetesExecutor(DockerExecutor):
    """WFE's Kubernetes step, run on this machine as a docker step (no cluster needed)."""

    names = ("kubernetes", "k8s")
    config_model = KubernetesConfig
    start_note = "kubernetes step run locally as a docker container"

    def docker_config(self, request: StepRequest) -> DockerConfig:
        config = request.config
        if not isinstance(config, KubernetesConfig):
            config = KubernetesConfig.model_validate(config)
        return config.as_docker()
