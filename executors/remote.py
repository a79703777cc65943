"""Steps on Celery workers over Redis (DESIGN §8): the orchestrator's side, the worker's side,
and what travels between them.

The orchestrating `wfe run` sends a step's rendered request as a Celery task (JSON only) to
the queue of its first `runs_on` label. Everything else about that attempt travels through
Redis, on the broker's own server, under keys named after a fresh attempt id:

    worker → orchestrator   one stream: start, log batches in order, heartbeats, the result
    orchestrator → worker   a cancel key, plus a message on the cancel channel of that name

The result is the last entry of the stream that carries the log lines, so it never overtakes
them. Every entry names its delivery: when a started delivery stops sending heartbeats, the
orchestrator sends the step again as the next delivery (the worker is presumed dead) and
ignores whatever an older delivery still says; a worker that finds itself superseded stops
its step. Celery's late acknowledgement keeps the message until a worker has run it; our
own fence (the current delivery number, a claim per delivery) makes a message that comes
back after that (the broker restores unacknowledged messages) a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError

from executors.base import Executor, StepRequest, StepResult, StepStatus, registry
from wfe_yaml.durations import format_duration, parse_duration
from wfe_yaml.engine.events import Notice
from wfe_yaml.errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from wfe_yaml.plan import Plan, PlanStep

TASK_NAME = "wfe.run_step"
DEFAULT_QUEUE = "default"
HEARTBEAT_TIMEOUT_VARIABLE = "WFE_HEARTBEAT_TIMEOUT"
DEFAULT_HEARTBEAT_TIMEOUT = 30.0
"""Seconds without a word from a started step before its worker is presumed lost."""
HEARTBEATS_PER_TIMEOUT = 5
MAX_DELIVERIES = 3
"""Deliveries of one attempt (lost workers included) before the attempt fails."""
CANCEL_WAIT_MARGIN = 5.0
"""Seconds, beyond the kill grace, to wait for a worker to confirm a cancelled step ended."""
KEY_TTL_SECONDS = 24 * 3600
"""Redis keys of an attempt expire by themselves even when nobody cleans up."""
BROKER_CHECK_SECONDS = 3.0
INSTALL_HINT = "install the extra: pip install 'wfe-yaml[distributed]'"

Dispatch = Callable[["PlanStep", Executor], Executor]
Emit = Callable[[Any], None]


# -- the broker ----------------------------------------------------------------------------


def celery_app(broker: str) -> Any:
    """The Celery application both sides use: JSON only, late ack, one message per slot."""
    from celery import Celery

    app = Celery("wfe", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        # Only so that revoking a task can be recorded (else every worker warns).
        result_backend=broker,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
    )
    return app


def check_broker(url: str) -> None:
    """ConfigError unless `url` is a Redis server that answers, with the extra installed."""
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"unsupported broker {shown_url(url)}: workers need Redis",
            hint="use a URL such as redis://host:6379/0",
        )
    try:
        import celery  # noqa: F401
        import redis
    except ImportError:
        raise ConfigError("distributed runs need celery and redis", hint=INSTALL_HINT) from None
    client = redis.Redis.from_url(
        url, socket_connect_timeout=BROKER_CHECK_SECONDS, socket_timeout=BROKER_CHECK_SECONDS
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        raise ConfigError(
            f"broker {shown_url(url)} is unreachable: {error}",
            hint="start Redis there, or fix --broker / WFE_BROKER",
        ) from None
    finally:
        client.close()


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def asyncio_redis(url: str) -> Redis:
    import redis.asyncio

    # With a socket timeout, redis-py sends through asyncio.wait_for, which on Python 3.11
    # can swallow a cancellation: a cancelled step would keep running. Blocking reads are
    # bounded by asyncio.timeout here instead.
    return redis.asyncio.Redis.from_url(
        url, decode_responses=True, socket_timeout=None, socket_keepalive=True
    )


@dataclass(frozen=True)
class AttemptKeys:
    """The Redis names of one attempt."""

    attempt: str

    @property
    def events(self) -> str:
        return f"wfe:attempt:{self.attempt}:events"

    @property
    def delivery(self) -> str:
        return f"wfe:attempt:{self.attempt}:delivery"

    @property
    def cancel(self) -> str:
        """A key (read when a worker starts) and a channel of the same name."""
        return f"wfe:attempt:{self.attempt}:cancel"

    def claim(self, delivery: int) -> str:
        return f"wfe:attempt:{self.attempt}:claim:{delivery}"


FORCE = "force"
"""The cancel message of a second Ctrl-C: kill at once, no grace."""


# -- where steps run -----------------------------------------------------------------------


def plan_uses_workers(plan: Plan) -> bool:
    from wfe_yaml.plan import walk_steps

    return any(
        step.runs_on
        for workflow in plan.workflows.values()
        for step in walk_steps(workflow.steps + workflow.ensure)
    )


def heartbeat_timeout_from_env() -> float:
    text = os.environ.get(HEARTBEAT_TIMEOUT_VARIABLE)
    if text is None:
        return DEFAULT_HEARTBEAT_TIMEOUT
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise ConfigError(f"{HEARTBEAT_TIMEOUT_VARIABLE}: {error}") from None
    if seconds <= 0:
        raise ConfigError(f"{HEARTBEAT_TIMEOUT_VARIABLE} must be more than 0, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Distribution:
    """Where a run's steps go: this machine, or Celery workers through a Redis broker."""

    broker: str | None = None
    distribute: bool = False
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT

    @classmethod
    def from_options(cls, broker: str | None, distribute: bool, plan: Plan) -> Distribution:
        """Checks the broker now when the plan will use it: no step starts before that."""
        if distribute and not broker:
            raise ConfigError(
                "--distribute needs a broker", hint="pass --broker redis://host:6379/0"
            )
        if broker and (distribute or plan_uses_workers(plan)):
            check_broker(broker)
        return cls(broker or None, distribute, heartbeat_timeout_from_env())

    def dispatcher(self, emit: Emit) -> Dispatch:
        """The engine's dispatch hook for one run; `emit` is the engine's event bus."""
        if self.broker is None:
            return _local_dispatch(emit)
        client = RemoteClient(self.broker, self.heartbeat_timeout, emit)
        distribute = self.distribute

        def dispatch(step: PlanStep, executor: Executor) -> Executor:
            # Steps that hold no slot orchestrate others (child workflows): they need the
            # engine, so they stay here; their own steps are dispatched one by one.
            if not executor.holds_slot or not (step.runs_on or distribute):
                return executor
            return RemoteExecutor(client, step.runs_on[0] if step.runs_on else DEFAULT_QUEUE)

        return dispatch


def _local_dispatch(emit: Emit) -> Dispatch:
    told = False

    def dispatch(step: PlanStep, executor: Executor) -> Executor:
        nonlocal told
        if step.runs_on and not told:
            told = True
            emit(
                Notice(
                    "runs_on is ignored without a broker (--broker URL or WFE_BROKER): "
                    "those steps run on this machine",
                    "warning",
                )
            )
        return executor

    return dispatch


# -- the orchestrator's side ---------------------------------------------------------------


class RemoteClient:
    """The orchestrator's handle on the broker, shared by the remote steps of a run."""

    def __init__(self, broker: str, heartbeat_timeout: float, emit: Emit) -> None:
        self.broker = broker
        self.heartbeat_timeout = heartbeat_timeout
        self.emit = emit
        self._app: Any = None
        self._redis: Redis | None = None
        self._users = 0

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Redis]:
        """One Redis pool for the steps running at once; closed when the last one ends (the
        engine has no end-of-run hook, and a pool must not outlive its event loop)."""
        if self._redis is None:
            self._redis = asyncio_redis(self.broker)
        redis = self._redis
        self._users += 1
        try:
            yield redis
        finally:
            self._users -= 1
            if self._users == 0:
                self._redis = None
                await redis.aclose()

    # Celery's client is synchronous. Publishing is a single quick write, done on the event
    # loop: from a thread it would contend for the GIL with the loop and slow every step.

    def send(self, payload: dict[str, Any], queue: str, task_id: str) -> None:
        self._celery().send_task(
            TASK_NAME,
            args=[payload],
            queue=queue,
            task_id=task_id,
            # What workers log and monitors show of the task: the step, not its environment
            # (secrets), and no time spent rendering the whole request.
            argsrepr=repr(payload["request"]["path"]),
            kwargsrepr="{}",
        )

    def revoke(self, task_id: str) -> None:
        self._celery().control.revoke(task_id, terminate=True)

    def _celery(self) -> Any:
        if self._app is None:
            self._app = celery_app(self.broker)
        return self._app


class RemoteExecutor(Executor):
    """Runs a step on whichever worker consumes `queue`, as if it ran here."""

    def __init__(self, client: RemoteClient, queue: str) -> None:
        self.client = client
        self.queue = queue
        self.start_note = f"queue {queue}"

    async def run(self, request: StepRequest) -> StepResult:
        from kombu.exceptions import KombuError
        from redis import RedisError

        try:
            async with self.client.connection() as redis:
                return await RemoteAttempt(self.client, self.queue, request, redis).run()
        except (RedisError, KombuError, OSError, TimeoutError) as error:
            return StepResult.failed(f"lost the broker {shown_url(self.client.broker)}: {error}")


def wire_request(request: StepRequest) -> dict[str, Any]:
    """What a worker needs of the request, as JSON: the step's own variables, never ours."""
    config = request.config
    if isinstance(config, BaseModel):
        config = config.model_dump(mode="json")
    return {
        "run_id": request.run_id,
        "workflow": request.workflow,
        "path": request.path,
        "name": request.name,
        "type": request.type,
        "config": config,
        "env": dict(request.env),
        "hidden_env": sorted(request.hidden_env),
        "data": dict(request.data),
        "timeout": request.timeout,
        "kill_grace": request.kill_grace,
        "working_dir": os.path.relpath(request.working_dir, request.workspace),
    }


@dataclass
class RemoteAttempt:
    """One attempt of a step on the workers: its deliveries, its stream, its cancellation."""

    client: RemoteClient
    queue: str
    request: StepRequest
    redis: Redis
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    delivery: int = 0
    worker: str | None = None
    last_heard: float | None = None
    """When the current delivery last spoke; None until it has started."""
    cursor: str = "0-0"
    result: StepResult | None = None

    @property
    def keys(self) -> AttemptKeys:
        return AttemptKeys(self.id)

    @property
    def task_id(self) -> str:
        return f"{self.id}-{self.delivery}"

    async def run(self) -> StepResult:
        try:
            await self.deliver()
            return await self.follow()
        except asyncio.CancelledError:
            await self.stop()
            raise
        finally:
            await settle(self.redis.delete(self.keys.events, self.keys.delivery))

    async def deliver(self) -> None:
        self.delivery += 1
        self.worker, self.last_heard = None, None
        await self.redis.set(self.keys.delivery, self.delivery, ex=KEY_TTL_SECONDS)
        payload = {
            "attempt": self.id,
            "delivery": self.delivery,
            "heartbeat": self.client.heartbeat_timeout / HEARTBEATS_PER_TIMEOUT,
            "request": wire_request(self.request),
        }
        self.client.send(payload, self.queue, self.task_id)

    async def follow(self) -> StepResult:
        poll = self.client.heartbeat_timeout / HEARTBEATS_PER_TIMEOUT
        while self.result is None:
            await self.read(poll)
            if self.result is None and self.lost():
                lost = await self.lost_worker()
                if lost is not None:
                    return lost
        return self.result

    def lost(self) -> bool:
        if self.last_heard is None:
            return False  # queued: waiting for a worker is not losing one
        return time.monotonic() - self.last_heard > self.client.heartbeat_timeout

    async def lost_worker(self) -> StepResult | None:
        """Send the step again, or give up after MAX_DELIVERIES: the failed result."""
        silence = format_duration(self.client.heartbeat_timeout)
        why = f"worker {self.worker} lost: no heartbeat for {silence}"
        if self.delivery >= MAX_DELIVERIES:
            return StepResult.failed(f"{why} (sent {self.delivery} times)")
        self.client.emit(Notice(f"{why}; sending the step again", "warning", self.request.path))
        await self.deliver()
        return None

    async def read(self, block: float) -> None:
        """Handle what the stream holds, waiting up to `block` seconds for something."""
        async with asyncio.timeout(block + BROKER_CHECK_SECONDS):
            replies: Any = await self.redis.xread(
                {self.keys.events: self.cursor}, block=max(1, round(block * 1000))
            )
        for _stream, entries in replies:
            for entry_id, fields in entries:
                self.cursor = entry_id
                self.handle(json.loads(fields["m"]))
            await self.redis.xdel(self.keys.events, *(entry_id for entry_id, _ in entries))

    def handle(self, message: dict[str, Any]) -> None:
        if message["d"] != self.delivery:
            return  # a lost or superseded delivery
        self.last_heard = time.monotonic()
        kind = message["k"]
        if kind == "log":
            for stream, lines in message["batches"]:
                self.request.log(stream, lines)
        elif kind == "start":
            self.worker = message["worker"]
            self.client.emit(Notice(f"on worker {self.worker}", "debug", self.request.path))
        elif kind == "result":
            self.result = result_from_wire(message["result"])

    async def stop(self) -> None:
        """Ctrl-C, a timeout or fail-fast: stop the step on its worker and wait (up to the
        kill grace) until the worker says it has ended; another cancel kills it at once."""
        from redis import RedisError

        try:
            await settle(self.order_stop())
            await self.read(0)  # the worker may have started meanwhile
            deadline = time.monotonic() + self.request.kill_grace + CANCEL_WAIT_MARGIN
            while self.last_heard is not None and self.result is None:
                if time.monotonic() >= deadline:
                    return
                await self.read(min(1.0, max(deadline - time.monotonic(), 0.001)))
        except asyncio.CancelledError:
            await settle(self.send_cancel(FORCE))
        except (RedisError, OSError, TimeoutError):
            return  # the broker is gone: there is no one left to tell

    async def order_stop(self) -> None:
        await self.send_cancel("cancel")
        # A task still in its queue is dropped by the workers; a running one is signalled.
        self.client.revoke(self.task_id)

    async def send_cancel(self, how: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.cancel, how, ex=KEY_TTL_SECONDS)
            pipe.publish(self.keys.cancel, how)
            await pipe.execute()


async def settle(work: Awaitable[Any]) -> None:
    """Runs `work`, a few messages to the broker, to its end (or BROKER_CHECK_SECONDS) even
    when cancelled meanwhile, since a stop order cut in half stops nothing; a cancellation
    that came meanwhile is raised afterwards."""
    task = asyncio.ensure_future(work)
    # Its error is of no interest when we were cancelled meanwhile; this marks it as seen.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    deadline = time.monotonic() + BROKER_CHECK_SECONDS
    cancelled = False
    while not task.done() and time.monotonic() < deadline:
        try:
            await asyncio.wait({task}, timeout=deadline - time.monotonic())
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        task.cancel()
        raise asyncio.CancelledError
    if not task.done():
        task.cancel()
        raise TimeoutError(f"no answer from the broker in {BROKER_CHECK_SECONDS:g}s")
    task.result()


def result_to_wire(result: StepResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "exit_code": result.exit_code,
        "outputs": result.outputs,
        "error": result.error,
        "masks": result.masks,
    }


def result_from_wire(data: dict[str, Any]) -> StepResult:
    return StepResult(
        StepStatus(data["status"]),
        exit_code=data["exit_code"],
        outputs=data["outputs"],
        error=data["error"],
        masks=data["masks"],
    )


# -- the worker's side ---------------------------------------------------------------------


def worker_app(broker: str, workdir: Path) -> Any:
    """The Celery application of `wfe worker`, with the step task registered."""
    app = celery_app(broker)
    runtime = WorkerRuntime(broker, workdir)
    # Load the executors and the Redis client before the pool forks: every pool process
    # then has them, instead of each paying for the imports on its first step.
    registry.names()
    import redis.asyncio  # noqa: F401

    @app.task(name=TASK_NAME, bind=True)
    def run_step(task: Any, payload: dict[str, Any]) -> dict[str, Any]:
        return runtime.run(payload, task.request.hostname)

    return app


class WorkerRuntime:
    """What a pool process keeps from one step to the next: its event loop, its Redis pool
    and its subscriber connection (new ones per step cost more than a short step)."""

    def __init__(self, broker: str, workdir: Path) -> None:
        self.broker = broker
        self.workdir = workdir
        self._pid: int | None = None
        self._runner: asyncio.Runner | None = None
        self._redis: Redis | None = None
        self._pubsub: PubSub | None = None

    def run(self, payload: dict[str, Any], worker: str) -> dict[str, Any]:
        if self._runner is None or self._pid != os.getpid():
            # First step of this pool process (forked: nothing of the parent's is reused).
            self._pid, self._runner, self._redis = os.getpid(), asyncio.Runner(), None
        return self._runner.run(self._run(payload, worker))

    async def _run(self, payload: dict[str, Any], worker: str) -> dict[str, Any]:
        if self._redis is None:
            self._redis = asyncio_redis(self.broker)
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub()
        step = WorkerStep(payload, self.workdir, worker, self._redis, self._pubsub)
        try:
            return await step.run()
        except BaseException:
            # Cut off half-way, the subscriber may still hold the step's channel.
            pubsub, self._pubsub = self._pubsub, None
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise


@dataclass
class WorkerStep:
    """One delivery of a step on a worker: runs it with the local executors and reports."""

    payload: dict[str, Any]
    workdir: Path
    worker: str
    redis: Redis
    pubsub: PubSub
    pending: list[tuple[str, list[str]]] = field(default_factory=list)
    logged: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_requested: bool = False
    forced: bool = False

    @property
    def keys(self) -> AttemptKeys:
        return AttemptKeys(self.payload["attempt"])

    @property
    def delivery(self) -> int:
        delivery: int = self.payload["delivery"]
        return delivery

    @property
    def path(self) -> str:
        path: str = self.payload["request"]["path"]
        return path

    async def run(self) -> dict[str, Any]:
        """The task's value, for the worker's log: the step's path and how it ended."""
        if not await self.claim():
            return {"path": self.path, "status": "not run: stale or duplicate delivery"}
        await self.publish("start", worker=self.worker)
        step = asyncio.create_task(self.execute())
        # Until the result is out, SIGTERM (a revoke with terminate) cancels the step
        # rather than killing this pool process, which would orphan the step's processes.
        with self.sigterm_cancels(step):
            result = await self.supervise(step)
        return {"path": self.path, "status": result.status.value, "exit_code": result.exit_code}

    async def claim(self) -> bool:
        """Whether this delivery is the current one, not yet run elsewhere, not cancelled."""
        lease = self.payload["heartbeat"] * HEARTBEATS_PER_TIMEOUT
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.claim(self.delivery), self.worker, nx=True, ex=round(lease) + 1)
            pipe.get(self.keys.delivery)
            pipe.get(self.keys.cancel)
            claimed, current, cancelled = await pipe.execute()
        return bool(claimed) and current == str(self.delivery) and cancelled is None

    @contextlib.contextmanager
    def sigterm_cancels(self, step: asyncio.Task[StepResult]) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        pool_handler = signal.getsignal(signal.SIGTERM)
        loop.add_signal_handler(signal.SIGTERM, self.cancel, step, False)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            if pool_handler is not None:
                signal.signal(signal.SIGTERM, pool_handler)

    async def supervise(self, step: asyncio.Task[StepResult]) -> StepResult:
        """Waits for the step while heartbeats go out, log lines are forwarded and cancel
        requests (the cancel channel, being superseded) are heard; then sends the result."""
        helpers = [
            asyncio.create_task(self.stop_on_failure(work, step))
            for work in (
                self.forward_logs(step),
                self.heartbeat(step),
                self.listen_for_cancel(step),
            )
        ]
        forwarder, heartbeat, listener = helpers
        try:
            await asyncio.wait({step})
            heartbeat.cancel()
            self.logged.set()
            await forwarder
            result = (
                StepResult(StepStatus.CANCELLED, error="cancelled")  # before it began
                if step.cancelled()
                else step.result()
            )
            await self.publish("result", result=result_to_wire(result))
            # Ends the listener without breaking the connection, which the next step reuses.
            await self.pubsub.unsubscribe(self.keys.cancel)
            await listener
            return result
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def stop_on_failure(self, work: Awaitable[None], step: asyncio.Task[StepResult]) -> None:
        """A helper fails when the broker is gone: then nobody can hear or stop the step any
        more (the orchestrator gives it up), so it is stopped here."""
        try:
            await work
        except Exception:
            self.cancel(step, False)
            raise

    def log(self, stream: str, lines: Sequence[str]) -> None:
        """The step's log sink: lines wait here until the forwarder sends them (as JSON)."""
        self.pending.append((stream, list(lines)))
        self.logged.set()

    async def forward_logs(self, step: asyncio.Task[StepResult]) -> None:
        """The only writer of log batches, so they arrive in order; ends after the step."""
        while True:
            await self.logged.wait()
            self.logged.clear()
            batches, self.pending = self.pending, []
            if batches:
                await self.publish("log", batches=batches)
            if step.done() and not self.pending:
                return

    async def execute(self) -> StepResult:
        wire = self.payload["request"]
        try:
            executor = registry.executor(wire["type"])
            config = registry.config_model(wire["type"]).model_validate(wire["config"])
        except KeyError:
            return StepResult.failed(f"worker {self.worker} has no '{wire['type']}' executor")
        except ValidationError as error:
            return StepResult.failed(f"worker {self.worker} rejects the config: {error}")
        request = self.step_request(wire, config)
        try:
            async with asyncio.timeout(wire["timeout"]):
                return await executor.run(request)
        except TimeoutError:
            return StepResult.failed(f"timed out after {format_duration(wire['timeout'])}")
        except asyncio.CancelledError:
            return StepResult(StepStatus.CANCELLED, error="cancelled")
        except Exception as error:
            return StepResult.failed(f"internal error in executor on {self.worker}: {error!r}")

    def step_request(self, wire: dict[str, Any], config: Any) -> StepRequest:
        workspace = self.workdir
        env = dict(wire["env"])
        env["WFE_WORKSPACE"] = str(workspace)
        return StepRequest(
            run_id=wire["run_id"],
            workflow=wire["workflow"],
            path=wire["path"],
            name=wire["name"],
            type=wire["type"],
            config=config,
            working_dir=workspace / wire["working_dir"],
            workspace=workspace,
            env=env,
            hidden_env=frozenset(wire["hidden_env"]),
            data=wire["data"],
            timeout=wire["timeout"],
            kill_grace=wire["kill_grace"],
            log=self.log,
        )

    async def heartbeat(self, step: asyncio.Task[StepResult]) -> None:
        every = self.payload["heartbeat"]
        lease = round(every * HEARTBEATS_PER_TIMEOUT) + 1
        while True:
            await asyncio.sleep(every)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(self.keys.events, {"m": self.message("beat")})
                pipe.expire(self.keys.events, KEY_TTL_SECONDS)
                pipe.expire(self.keys.claim(self.delivery), lease)
                pipe.get(self.keys.delivery)
                *_, current = await pipe.execute()
            if current != str(self.delivery):
                self.cancel(step, False)  # the orchestrator gave up on us, or is done

    async def listen_for_cancel(self, step: asyncio.Task[StepResult]) -> None:
        """Until the step's cancel channel is unsubscribed."""
        await self.pubsub.subscribe(self.keys.cancel)
        # A cancel sent before we subscribed is still in the key.
        how = await self.redis.get(self.keys.cancel)
        if how is not None:
            self.cancel(step, how == FORCE)
        async for message in self.pubsub.listen():
            if message["type"] == "message" and message["channel"] == self.keys.cancel:
                self.cancel(step, message["data"] == FORCE)

    def cancel(self, step: asyncio.Task[StepResult], force: bool) -> None:
        """The first request stops the step gracefully (the same request may come by several
        ways); a forced one cancels it once more, which the executors take as "kill now"."""
        if not self.cancel_requested:
            self.cancel_requested = True
            step.cancel()
        if force and not self.forced:
            self.forced = True
            # Queued behind the first, so that a step not yet cancelled gets both.
            asyncio.get_running_loop().call_soon(step.cancel)

    def message(self, kind: str, **fields: Any) -> str:
        return json.dumps({"d": self.delivery, "k": kind, **fields})

    async def publish(self, kind: str, **fields: Any) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.keys.events, {"m": self.message(kind, **fields)})
            pipe.expire(self.keys.events, KEY_TTL_SECONDS)
            await pipe.execute()
