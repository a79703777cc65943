"""Workflow `services:` (WFE's shape): containers that live as long as one workflow instance.

Before the first step the services start on a Docker network of their own (one per workflow
instance, labelled with the run id) and their readiness checks are awaited. Steps then reach
them two ways:
- shell steps, on the host, through ports published on 127.0.0.1: the workflow data gets
  `<NAME>_HOST` = 127.0.0.1 and `<NAME>_PORT` (the first port), `<NAME>_PORT_<port>` (each);
- docker steps join the network and get the same variables pointing at the service by name:
  `<NAME>_HOST` = name, `<NAME>_PORT` = the container's port.
Whatever happens (failure, timeout, Ctrl-C), the containers and the network are removed after
the workflow's ensure hooks.

The engine calls `workflow_services(run)` around a workflow's steps; the active services are
a context variable, so the steps (and child workflows) started inside see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from executors.docker import (
    RUN_LABEL,
    ContainerProblem,
    ContainerSpec,
    create_container,
    engine_clients,
    engine_error_text,
    ensure_image,
    finish_despite_cancel,
    kubernetes_cpus,
    memory_bytes,
    remove_container,
)
from wfe_yaml.durations import format_duration
from wfe_yaml.engine.events import Notice
from wfe_yaml.models import Readiness, Service

if TYPE_CHECKING:
    from wfe_yaml.engine.workflow_run import WorkflowRun

SERVICE_LABEL = "wfe.service"
WORKFLOW_LABEL = "wfe.workflow"
LOG_TAIL_LINES = 20
PUBLISHED_HOST = "127.0.0.1"
PROXY_SETTLE_SECONDS = 0.25
"""How long a connection through a published port must stay open to count: Docker's port
proxy accepts every connection and closes it at once when nothing listens behind it."""

T = TypeVar("T")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
CONNECT_SECONDS = 0.5
"""How long a readiness connection may take before the address counts as unreachable."""
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
_current: ContextVar[ServiceNetwork | None] = ContextVar("wfe_services", default=None)


def current_services() -> ServiceNetwork | None:
    """The services of the innermost workflow (or enclosing one) with `services:`."""
    return _current.get()


class ServiceFailure(Exception):
    """A service could not be started or never became ready."""

    def __init__(self, message: str, skip_reason: str) -> None:
        super().__init__(message)
        self.skip_reason = skip_reason


# --- running services -------------------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "tcp"
    host_port: int | None = None
    """A fixed port on 127.0.0.1 (`"15432:5432"`); None lets the engine pick a free one."""

    @classmethod
    def parse(cls, value: int | str, service: str) -> Port:
        text = str(value).strip()
        host, _, rest = text.rpartition(":")
        number, _, protocol = rest.partition("/")
        try:
            return cls(int(number), protocol or "tcp", int(host) if host else None)
        except ValueError:
            raise ContainerProblem(
                f"service '{service}': invalid port {value!r}: use e.g. 5432, '53/udp' or "
                "'15432:5432'"
            ) from None

    @property
    def key(self) -> str:
        return f"{self.number}/{self.protocol}"


@dataclass
class RunningService:
    name: str
    container: str
    ports: list[Port]
    published: dict[str, int] = field(default_factory=dict)
    """Port key (`5432/tcp`) → port on 127.0.0.1."""
    address: str = ""
    """The container's address on the services network."""

    @property
    def variable(self) -> str:
        return self.name.upper().replace("-", "_").replace(".", "_")

    def host_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {f"{self.variable}_HOST": PUBLISHED_HOST}
        data.update(self._port_data(lambda port: self.published[port.key]))
        return data

    def container_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {f"{self.variable}_HOST": self.name}
        data.update(self._port_data(lambda port: port.number))
        return data

    def _port_data(self, value: Callable[[Port], int]) -> dict[str, int]:
        data = {f"{self.variable}_PORT_{port.number}": value(port) for port in self.ports}
        if self.ports:
            data[f"{self.variable}_PORT"] = value(self.ports[0])
        return data


@dataclass
class ServiceNetwork:
    network: str
    services: dict[str, RunningService] = field(default_factory=dict)

    def host_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for service in self.services.values():
            data.update(service.host_data())
        return data

    def addresses(self) -> dict[str, str]:
        """Service name → its address on the network."""
        return {name: s.address for name, s in self.services.items() if s.address}

    def point_at_containers(self, env: dict[str, str]) -> None:
        """For a container on the services network: the service variables that still hold
        their host-side values (no `env:` changed them) name the containers instead."""
        for service in self.services.values():
            host = service.host_data()
            for name, value in service.container_data().items():
                if env.get(name) == str(host[name]):
                    env[name] = str(value)


# --- the engine hook --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def workflow_services(run: WorkflowRun) -> AsyncIterator[bool]:
    """Provide the workflow's services around its steps; yields whether the steps may run.
    When the services cannot be made ready, the workflow fails with the reason (and the
    service's last log lines) and its steps are skipped."""
    declared = run.workflow.services
    if not declared:
        yield True
        return
    services = _Services(run)
    token = None
    try:
        try:
            network = await services.start(declared)
        except ServiceFailure as failure:
            _fail(run, failure)
        else:
            run.data.update(network.host_data())
            token = _current.set(network)
        yield token is not None
    finally:
        if token is not None:
            _current.reset(token)
        await finish_despite_cancel(services.tear_down())


def _fail(run: WorkflowRun, failure: ServiceFailure) -> None:
    if not run.ctx.cancelled:
        run.failed = True
    run.error = str(failure)
    run.skip_all(run.workflow.steps, run.path, failure.skip_reason)


class _Services:
    """The services of one workflow instance, from start to removal."""

    def __init__(self, run: WorkflowRun) -> None:
        self._run = run
        self._api: Any = None
        self._network: str | None = None
        self._containers: list[str] = []

    async def start(self, declared: Mapping[str, Service]) -> ServiceNetwork:
        try:
            self._api = (await engine_clients(self._run.ctx.runner_env())).api
            network = ServiceNetwork(await self._create_network())
            started = await _all_or_first_failure(
                [self._start(name, service, network.network) for name, service in declared.items()]
            )
            network.services = {service.name: service for service in started}
            await _all_or_first_failure(
                [self._await_ready(service, declared[service.name]) for service in started]
            )
        except ContainerProblem as problem:
            raise ServiceFailure(f"services: {problem}", "services could not start") from None
        except ServiceFailure:
            raise
        except Exception as error:
            text = engine_error_text(error)
            if text is None:
                raise
            raise ServiceFailure(f"services: {text}", "services could not start") from None
        return network

    async def tear_down(self) -> None:
        if self._api is None:
            return
        try:
            await asyncio.gather(*(remove_container(self._api, c) for c in self._containers))
            if self._network is not None:
                await asyncio.to_thread(self._api.remove_network, self._network)
        except Exception as error:
            text = engine_error_text(error)
            if text is None:
                raise
            self._notice(f"could not remove the services: {text}", "warning")

    async def _create_network(self) -> str:
        name = f"wfe-{self._run.ctx.run_id}-{uuid.uuid4().hex[:8]}"
        labels = {RUN_LABEL: self._run.ctx.run_id, WORKFLOW_LABEL: self._run.path}
        await asyncio.to_thread(self._api.create_network, name, driver="bridge", labels=labels)
        self._network = name
        return name

    async def _start(self, name: str, service: Service, network: str) -> RunningService:
        if not _SERVICE_NAME.fullmatch(name):
            raise ContainerProblem(
                f"service name '{name}' cannot be a host name: use letters, digits, '-', '_', '.'"
            )
        ports = [Port.parse(value, name) for value in service.ports]
        spec = _container_spec(name, service, ports, network, self._run)
        await ensure_image(self._api, service.image, "if-not-present", self._pull_notice)
        container = await create_container(self._api, spec)
        self._containers.append(container)
        await asyncio.to_thread(self._api.start, container)
        details = await asyncio.to_thread(self._api.inspect_container, container)
        settings = details["NetworkSettings"]
        # A container that already exited has neither published ports nor an address.
        bindings = settings.get("Ports") or {}
        return RunningService(
            name=name,
            container=container,
            ports=ports,
            published={
                port.key: int(bindings[port.key][0]["HostPort"])
                for port in ports
                if bindings.get(port.key)
            },
            address=settings["Networks"].get(network, {}).get("IPAddress", ""),
        )

    def _pull_notice(self, _stream: str, lines: Sequence[str]) -> None:
        for line in lines:
            self._notice(line)

    async def _await_ready(self, service: RunningService, declared: Service) -> None:
        started = time.monotonic()
        await self._check_running(service)
        probe = readiness_probe(self._api, service, declared.readiness)
        if probe is not None:
            await self._poll(service, probe, declared.readiness or Readiness())
        took = format_duration(time.monotonic() - started)
        where = ", ".join(
            f"{key} → {PUBLISHED_HOST}:{host_port}" for key, host_port in service.published.items()
        )
        self._notice(f"service {service.name} ready in {took}" + (f" ({where})" if where else ""))

    async def _poll(self, service: RunningService, probe: _Probe, readiness: Readiness) -> None:
        started = time.monotonic()
        deadline = started + readiness.timeout
        attempts = 0
        while True:
            attempts += 1
            remaining = deadline - time.monotonic()
            if await _passes(probe.check, max(min(remaining, max(readiness.interval, 1.0)), 0.1)):
                return
            await self._check_running(service)
            self._check_interrupted()
            if attempts >= max(readiness.retries, 1) or remaining <= readiness.interval:
                break
            await asyncio.sleep(readiness.interval)
        took = format_duration(time.monotonic() - started)
        await self._never_ready(
            service,
            f"{probe.description} failed {attempts} time{'s' if attempts > 1 else ''} in {took}",
        )

    async def _check_running(self, service: RunningService) -> None:
        details = await asyncio.to_thread(self._api.inspect_container, service.container)
        state = details["State"]
        if not state.get("Running"):
            await self._never_ready(service, f"it exited with code {state.get('ExitCode')}")

    def _check_interrupted(self) -> None:
        if self._run.ctx.cancelled:
            raise ServiceFailure("run cancelled", "run cancelled")
        if self._run.stop is not None:
            raise ServiceFailure(self._run.stop.reason, self._run.stop.reason)

    async def _never_ready(self, service: RunningService, why: str) -> None:
        logs = await asyncio.to_thread(
            self._api.logs, service.container, stdout=True, stderr=True, tail=LOG_TAIL_LINES
        )
        lines = logs.decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
        tail = "\n".join(f"  {line}" for line in lines) if lines else "  (no log output)"
        raise ServiceFailure(
            f"service '{service.name}' never became ready: {why}\n"
            f"last log lines of {service.name}:\n{tail}",
            f"service '{service.name}' never became ready",
        )

    def _notice(self, message: str, level: str = "info") -> None:
        self._run.ctx.bus.emit(Notice(message, level, self._run.path))


def _container_spec(
    name: str, service: Service, ports: list[Port], network: str, run: WorkflowRun
) -> ContainerSpec:
    try:
        cpus = _service_cpus(service)
        if service.memory is not None:
            memory_bytes(service.memory)
    except ValueError as error:
        raise ContainerProblem(f"service '{name}': {error}") from None
    command = service.command
    entrypoint = shlex.split(command) if isinstance(command, str) else command
    return ContainerSpec(
        image=service.image,
        labels={RUN_LABEL: run.ctx.run_id, WORKFLOW_LABEL: run.path, SERVICE_LABEL: name},
        # As in a pod spec: `command` replaces the entrypoint, `args` the image's CMD.
        entrypoint=entrypoint or None,
        command=service.args or None,
        env=dict(service.env),
        network=network,
        aliases=(name,),
        ports=tuple((port.number, port.protocol, port.host_port) for port in ports),
        memory=service.memory,
        cpus=cpus,
    )


def _service_cpus(service: Service) -> float | None:
    """`cpus: 1.5`, or Kubernetes' `cpu: 500m` (either key takes either form)."""
    value = service.cpus if service.cpus is not None else service.cpu
    if value is None:
        return None
    if isinstance(value, float | int):
        return float(value)
    return kubernetes_cpus(value)


async def _all_or_first_failure(work: list[Awaitable[T]]) -> list[T]:
    """Run all concurrently; the first failure cancels the others (and waits for them to
    undo what they did) and is raised."""
    tasks = [asyncio.ensure_future(item) for item in work]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            error = task.exception() if task.done() and not task.cancelled() else None
            if error is not None:
                raise error
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- readiness --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Probe:
    description: str
    check: Callable[[], Awaitable[bool]]


def readiness_probe(
    api: Any, service: RunningService, readiness: Readiness | None
) -> _Probe | None:
    """WFE's precedence: exec, then tcp, then http; a `readiness:` naming none of them checks
    TCP on the first port. No `readiness:`: ready once running."""
    if readiness is None:
        return None
    if readiness.exec is not None:
        argv = readiness.exec if isinstance(readiness.exec, list) else ["sh", "-c", readiness.exec]
        return _Probe(
            f"exec {shlex.join(argv)}",
            lambda: asyncio.to_thread(_exec_succeeds, api, service.container, argv),
        )
    if readiness.tcp is not None or readiness.http is None:
        port = readiness.tcp if readiness.tcp is not None else _first_port(service)
        return _Probe(f"tcp {port}", lambda: _tcp_accepts(service, port))
    port, path = _http_target(service, readiness.http)
    return _Probe(f"http :{port}{path}", lambda: _http_answers(service, port, path))


def _first_port(service: RunningService) -> int:
    if not service.ports:
        raise ContainerProblem(
            f"service '{service.name}': readiness needs exec, tcp or http (no ports to check)"
        )
    return service.ports[0].number


def _http_target(service: RunningService, http: dict[str, Any] | int) -> tuple[int, str]:
    if isinstance(http, int):
        return http, "/"
    port = http.get("port", _first_port(service) if service.ports else None)
    if not isinstance(port, int):
        raise ContainerProblem(f"service '{service.name}': readiness http needs a port")
    path = str(http.get("path", "/"))
    return port, path if path.startswith("/") else f"/{path}"


async def _passes(check: Callable[[], Awaitable[bool]], limit: float) -> bool:
    try:
        async with asyncio.timeout(limit):
            return await check()
    except (TimeoutError, OSError):
        return False
    except Exception as error:
        if engine_error_text(error) is None:
            raise
        return False


def _exec_succeeds(api: Any, container: str, argv: list[str]) -> bool:
    execution = api.exec_create(container, argv, stdout=True, stderr=True)["Id"]
    api.exec_start(execution)
    return api.exec_inspect(execution)["ExitCode"] == 0


def _endpoints(service: RunningService, port: int) -> list[tuple[str, int, bool]]:
    """Where to reach a container port from here: (host, port, through the proxy). The
    container's own address first (Linux hosts route to it), then the published port."""
    endpoints = [(service.address, port, False)] if service.address else []
    published = service.published.get(f"{port}/tcp")
    if published is not None:
        endpoints.append((PUBLISHED_HOST, published, True))
    return endpoints


async def _connect(host: str, port: int) -> Connection | None:
    """A connection; None when the address cannot be reached from here (try the next one).
    ConnectionRefusedError when it can, but nothing listens."""
    try:
        async with asyncio.timeout(CONNECT_SECONDS):
            return await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        raise
    except (OSError, TimeoutError):
        return None


async def _reach(service: RunningService, port: int) -> tuple[Connection, bool] | None:
    """A connection to the first endpoint of the port reachable from here, and whether it
    goes through Docker's proxy; None when none is, or when the first reachable one refuses
    (nothing listens yet)."""
    for host, number, proxied in _endpoints(service, port):
        try:
            connection = await _connect(host, number)
        except ConnectionRefusedError:
            return None
        if connection is not None:
            return connection, proxied
    return None


async def _tcp_accepts(service: RunningService, port: int) -> bool:
    reached = await _reach(service, port)
    if reached is None:
        return False
    (reader, writer), proxied = reached
    try:
        return not proxied or await _stays_open(reader)
    finally:
        writer.close()


async def _stays_open(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(PROXY_SETTLE_SECONDS):
            return bool(await reader.read(1))
    except TimeoutError:
        return True


async def _http_answers(service: RunningService, port: int, path: str) -> bool:
    reached = await _reach(service, port)
    if reached is None:
        return False
    (reader, writer), _proxied = reached
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {service.name}\r\n\r\n".encode())
        await writer.drain()
        status = (await reader.readline()).split()
    finally:
        writer.close()
    return len(status) >= 2 and status[1].isdigit() and 200 <= int(status[1]) < 400
