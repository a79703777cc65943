"""One workflow instance: ready-set scheduling of its steps, hooks and failure handling."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from executors.base import StepRequest, StepResult, StepStatus
from wfe_yaml import conditions, expressions
from wfe_yaml.durations import format_duration
from wfe_yaml.engine.context import MAX_WORKFLOW_DEPTH, RunContext
from wfe_yaml.engine.environment import step_environment
from wfe_yaml.engine.events import Notice, StepInfo, StepLog, StepStarted, WorkflowStarted
from wfe_yaml.engine.result import StepRecord
from wfe_yaml.plan import PlanStep, PlanWorkflow
from wfe_yaml.secrets import resolve_references

S = StepStatus


@dataclass
class Outcome:
    """How a step (or block) ended, as its scope needs to know."""

    status: StepStatus
    hard_failure: bool = False
    """Failed in a way that fails the workflow (not `continue`)."""


@dataclass
class WorkflowOutcome:
    status: StepStatus
    data: dict[str, Any]
    error: str | None = None


@dataclass
class _Stop:
    """Why the workflow starts nothing new, and what not-started steps become."""

    status: StepStatus
    reason: str


@dataclass
class WorkflowRun:
    ctx: RunContext
    workflow: PlanWorkflow
    path: str
    inputs: dict[str, Any]
    depth: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    step_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stop: _Stop | None = None
    failed: bool = False
    error: str | None = None
    succeeded_order: list[tuple[PlanStep, str]] = field(default_factory=list)
    running: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    children: list[WorkflowRun] = field(default_factory=list)
    fail_fast_groups: dict[str, str] = field(default_factory=dict)
    group_limits: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    first_started: dict[str, float] = field(default_factory=dict)
    """When each running step's first attempt began: after any wait for a --jobs slot."""

    async def execute(self) -> WorkflowOutcome:
        self.data = dict(self.inputs)
        self.ctx.bus.emit(WorkflowStarted(self.path, self.workflow.id, tuple(self.step_infos())))
        missing = await self.missing_requirement(self.workflow.requires)
        if missing:
            self.skip_all(self.workflow.steps, self.path, missing)
            return WorkflowOutcome(S.SKIPPED, self.data, missing)
        timer = self.start_timer()
        async with self.services() as services_ready:
            try:
                if services_ready:
                    await self.run_scope(self.workflow.steps, self.path)
                if self.stop and self.stop.status is S.COMPENSATED:
                    await self.run_compensation()
            finally:
                if timer:
                    timer.cancel()
            for hook in self.workflow.ensure:
                if not await self.run_hook(hook, self.path):
                    self.failed = True
        return WorkflowOutcome(self.status(), self.data, self.error)

    def services(self) -> contextlib.AbstractAsyncContextManager[bool]:
        """The workflow's service containers around its steps (Docker, imported only then)."""
        if not self.workflow.services:
            return _no_services()
        from executors.services import workflow_services

        return workflow_services(self)

    def status(self) -> StepStatus:
        if self.stop is not None and self.stop.status is not S.SKIPPED:
            return self.stop.status
        if self.ctx.cancelled:
            return S.CANCELLED
        return S.FAILED if self.failed or self.stop else S.SUCCEEDED

    # -- scheduling ------------------------------------------------------------------------

    async def run_scope(self, steps: tuple[PlanStep, ...], prefix: str) -> bool:
        """Run steps as their dependencies allow; True when one of them failed hard."""
        blockers = {step.name: len(set(step.needs)) for step in steps}
        dependents: dict[str, list[PlanStep]] = {}
        for step in steps:
            for need in set(step.needs):
                dependents.setdefault(need, []).append(step)
        ready = [step for step in steps if not blockers[step.name]]
        running: dict[asyncio.Task[Outcome], PlanStep] = {}
        hard_failure = False

        def ended(step: PlanStep) -> None:
            for dependent in dependents.get(step.name, ()):
                blockers[dependent.name] -= 1
                if not blockers[dependent.name]:
                    ready.append(dependent)

        while ready or running:
            while ready:
                step = ready.pop(0)
                path = f"{prefix}/{step.name}"
                reason = self.reason_not_to_start(step)
                if reason is not None:
                    self.record_not_started(step, path, reason)
                    ended(step)
                    continue
                running[asyncio.create_task(self.run_node(step, path))] = step
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                step = running.pop(task)
                hard_failure |= task.result().hard_failure
                ended(step)
        return hard_failure

    def reason_not_to_start(self, step: PlanStep) -> _Stop | None:
        if step.group and step.group in self.fail_fast_groups:
            return _Stop(S.CANCELLED, f"fail-fast: {self.fail_fast_groups[step.group]} failed")
        if self.stop is not None:
            return self.stop
        if self.ctx.cancelled:
            return _Stop(S.CANCELLED, "run cancelled")
        return None

    def trip_fail_fast(self, failed: PlanStep) -> None:
        assert failed.group is not None
        self.fail_fast_groups.setdefault(failed.group, failed.name)
        for path, task in list(self.running.items()):
            name = path.rsplit("/", 1)[-1]
            if name.startswith(f"{failed.group}[") and name != failed.name:
                task.cancel()

    async def run_node(self, step: PlanStep, path: str) -> Outcome:
        if path in self.ctx.replay:
            return self.restore(step, path)
        try:
            skip_reason = await self.skip_reason(step)
        except _StepError as error:
            self.ctx.finish(self.failed_record(step, path, str(error)))
            return Outcome(S.FAILED, hard_failure=await self.handle_failure(step, path))
        if skip_reason is not None:
            self.skip_all((step,), path.rsplit("/", 1)[0], skip_reason)
            return Outcome(S.SKIPPED)
        if step.is_parallel:
            return await self.run_block(step, path)
        limit = self.group_limit(step)
        if limit is None:
            return await self.run_step(step, path)
        async with limit:
            return await self.run_step(step, path)

    def restore(self, step: PlanStep, path: str) -> Outcome:
        """A step that succeeded in an earlier attempt of this run: its outputs, not a re-run."""
        record = self.new_record(step, path, step.type or "parallel", S.SUCCEEDED, time.time())
        record.outputs = self.merge_outputs(step, self.ctx.replay[path])
        record.restored = True
        self.succeeded_order.append((step, path))
        self.ctx.bus.emit(Notice("restored from an earlier attempt", "info", path))
        self.ctx.finish(record)
        return Outcome(S.SUCCEEDED)

    def group_limit(self, step: PlanStep) -> asyncio.Semaphore | None:
        if step.group is None or step.max_parallel is None:
            return None
        return self.group_limits.setdefault(step.group, asyncio.Semaphore(step.max_parallel))

    async def skip_reason(self, step: PlanStep) -> str | None:
        missing = await self.missing_requirement(step.requires)
        if missing:
            return missing
        if step.when is None:
            return None
        try:
            if not conditions.evaluate(step.when, self.data, self.render_condition(step)):
                return f"condition not met: {conditions.describe(step.when)}"
        except (conditions.ConditionError, expressions.ExpressionError) as error:
            raise _StepError(f"when: {error}") from error
        return None

    async def missing_requirement(self, requires: tuple[str, ...]) -> str | None:
        return await self.ctx.probe.skip_reason(requires) if requires else None

    # -- blocks and leaf steps -------------------------------------------------------------

    async def run_block(self, step: PlanStep, path: str) -> Outcome:
        started = time.time()
        self.ctx.bus.emit(StepStarted(path, self.workflow.id, step.name, "parallel", 1))
        hard = await self.run_scope(step.children, path)
        status = S.FAILED if hard else S.SUCCEEDED
        if self.ctx.cancelled and not hard:
            status = S.CANCELLED
        record = self.new_record(step, path, "parallel", status, started)
        record.attempts = 1
        if hard:
            record.error = "a step of this block failed"
        self.ctx.finish(record)
        if status is S.SUCCEEDED:
            self.succeeded_order.append((step, path))
        return Outcome(status, hard_failure=await self.after_run(step, path, status))

    async def run_step(self, step: PlanStep, path: str, is_hook: bool = False) -> Outcome:
        assert step.type is not None
        started = time.time()
        try:
            attempts, result = await self.attempts(step, path, is_hook)
        except _NotStarted as not_started:
            return Outcome(self.record_not_started(step, path, not_started.stop))
        started = self.first_started.pop(path, started)
        record = self.new_record(step, path, step.type, result.status, started)
        record.attempts, record.exit_code, record.error = attempts, result.exit_code, result.error
        if result.status is S.SUCCEEDED:
            record.outputs = self.merge_outputs(step, result.outputs)
            self.succeeded_order.append((step, path))
        self.ctx.finish(record)
        return Outcome(result.status, hard_failure=await self.after_run(step, path, result.status))

    async def after_run(self, step: PlanStep, path: str, status: StepStatus) -> bool:
        """Hooks and error behaviour once a step or block has run; True when that fails the
        workflow."""
        hard = False
        if status is S.SUCCEEDED:
            hard = not await self.run_hooks(step, step.on_success, path)
        elif status is S.FAILED:
            # Decided before on_failure runs, so that nothing new starts meanwhile.
            hard = await self.handle_failure(step, path)
            await self.run_hooks(step, step.on_failure, path)
        elif status is S.SUSPENDED:
            hard = self.suspend_after(step)
        hard |= not await self.run_hooks(step, step.ensure, path)
        return hard

    async def attempts(self, step: PlanStep, path: str, is_hook: bool) -> tuple[int, StepResult]:
        behavior = step.error_behavior
        attempt = 0
        while True:
            attempt += 1
            result = await self.attempt(step, path, attempt, is_hook)
            if not self.should_retry(step, result, attempt):
                return attempt, result
            delay = behavior.interval * behavior.backoff ** (attempt - 1)
            if behavior.max_interval is not None:
                delay = min(delay, behavior.max_interval)
            self.ctx.bus.emit(
                Notice(
                    f"{result.error}; retrying in {format_duration(delay)} "
                    f"(attempt {attempt + 1} of {behavior.max_retries + 1})",
                    "warning",
                    path,
                )
            )
            if not await self.pause_before_retry(path, delay, is_hook):
                stop = self.interruption(step)
                reason = stop.reason if stop else "cancelled"
                return attempt, StepResult(S.CANCELLED, exit_code=result.exit_code, error=reason)

    async def pause_before_retry(self, path: str, delay: float, is_hook: bool) -> bool:
        """Waits out a retry interval; False when Ctrl-C, a timeout or fail-fast cut it short."""
        pause = asyncio.create_task(asyncio.sleep(delay))
        with self.tracked(path, pause, is_hook):
            await asyncio.wait({pause})
        return not pause.cancelled()

    def should_retry(self, step: PlanStep, result: StepResult, attempt: int) -> bool:
        behavior = step.error_behavior
        if result.status is not S.FAILED or behavior.type != "retry":
            return False
        if self.interruption(step) is not None:
            return False
        if attempt > behavior.max_retries:
            return False
        codes = behavior.on_exit_codes
        return codes is None or result.exit_code in codes

    async def attempt(self, step: PlanStep, path: str, attempt: int, is_hook: bool) -> StepResult:
        assert step.type is not None
        executor = self.ctx.registry.executor(step.type)
        if self.ctx.dispatch is not None:
            executor = self.ctx.dispatch(step, executor)
        try:
            request = self.request(step, path)
        except _StepError as error:
            return StepResult.failed(str(error))
        note = getattr(executor, "start_note", None)
        slot = self.ctx.slots if executor.holds_slot else None
        if slot:
            await slot.acquire()
        try:
            stop = self.reason_not_to_run(step, is_hook)
            if stop is not None:
                if attempt == 1:
                    raise _NotStarted(stop)
                return StepResult(S.CANCELLED, error=stop.reason)
            self.first_started.setdefault(path, time.time())
            self.ctx.bus.emit(
                StepStarted(path, self.workflow.id, step.name, step.type, attempt, note)
            )
            result = await self.execute_leaf(executor.run(request), path, step.timeout, is_hook)
            for value in result.masks:
                self.ctx.bus.masker.add(value)
            return result
        finally:
            if slot:
                slot.release()

    def reason_not_to_run(self, step: PlanStep, is_hook: bool) -> _Stop | None:
        """Why an attempt whose turn has come (a --jobs slot freed) must not run after all."""
        if self.ctx.forced:
            return _Stop(S.CANCELLED, "run killed")
        return None if is_hook else self.interruption(step)

    def interruption(self, step: PlanStep) -> _Stop | None:
        """Why a step under way must stop: fail-fast, Ctrl-C, or its workflow's timeout (or
        the cancel of the step that runs its workflow). A `terminate` elsewhere is no reason:
        steps already under way finish."""
        if step.group and step.group in self.fail_fast_groups:
            return _Stop(S.CANCELLED, f"fail-fast: {self.fail_fast_groups[step.group]} failed")
        if self.ctx.cancelled:
            return _Stop(S.CANCELLED, "run cancelled")
        if self.error:
            return self.stop or _Stop(S.CANCELLED, self.error)
        return None

    @contextlib.contextmanager
    def tracked(self, path: str, task: asyncio.Task[Any], is_hook: bool) -> Iterator[None]:
        """Registers a running task where Ctrl-C, the workflow timeout and fail-fast find it."""
        tasks = self.ctx.hook_tasks if is_hook else self.ctx.leaf_tasks
        tasks.add(task)
        self.running[path] = task
        try:
            yield
        finally:
            tasks.discard(task)
            self.running.pop(path, None)

    async def execute_leaf(
        self, work: Any, path: str, timeout: float | None, is_hook: bool
    ) -> StepResult:
        task: asyncio.Task[StepResult] = asyncio.create_task(work)
        with self.tracked(path, task, is_hook):
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if not task.cancelled() and task.exception() is None:
                    return task.result()
                assert timeout is not None
                return StepResult.failed(f"timed out after {format_duration(timeout)}")
            if task.cancelled():
                return StepResult(S.CANCELLED, error=self.cancel_reason(path))
            error = task.exception()
            if error is not None:
                return StepResult.failed(f"internal error in executor: {error!r}")
            return task.result()

    def cancel_reason(self, path: str) -> str:
        if self.ctx.cancelled:
            return "run cancelled"
        if self.error:
            return self.error
        return "cancelled by fail-fast"

    # -- requests, expressions, outputs ----------------------------------------------------

    def request(self, step: PlanStep, path: str) -> StepRequest:
        assert step.type is not None
        config = self.rendered_config(step)
        return StepRequest(
            run_id=self.ctx.run_id,
            workflow=self.workflow.id,
            path=path,
            name=step.name,
            type=step.type,
            config=config,
            working_dir=self.workflow.workspace,
            workspace=self.workflow.workspace,
            env=step_environment(
                self.data,
                {name: self.ctx.secrets[name] for name in step.secrets if name in self.ctx.secrets},
                self.render(step, dict(self.workflow.env)),
                self.render(step, dict(step.env)),
                {
                    "WFE_RUN_ID": self.ctx.run_id,
                    "WFE_WORKFLOW": self.workflow.id,
                    "WFE_STEP": step.name,
                    "WFE_WORKSPACE": str(self.workflow.workspace),
                },
            ),
            hidden_env=self.ctx.hidden_env,
            base_env=self.ctx.runner_env(),
            data=dict(self.data),
            timeout=step.timeout,
            kill_grace=self.ctx.kill_grace,
            log=self.log_sink(path),
            context=StepContext(self, step, path),
        )

    def rendered_config(self, step: PlanStep) -> Any:
        if step.static_config is not None:
            return step.static_config
        assert step.type is not None
        try:
            raw = resolve_references(self.render(step, dict(step.config)), self.ctx.secrets)
        except KeyError as error:
            raise _StepError(f"config refers to undeclared secret {error}") from error
        try:
            return self.ctx.registry.config_model(step.type).model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            raise _StepError(
                f"config after rendering expressions is invalid: {problems}"
            ) from error

    def render(self, step: PlanStep, value: Any) -> Any:
        if not expressions.has_expression(value):
            return value
        try:
            return expressions.render_value(value, self.expression_context(step))
        except expressions.ExpressionError as error:
            raise _StepError(str(error)) from error

    def render_condition(self, step: PlanStep) -> Any:
        return lambda text: expressions.render_condition(text, self.expression_context(step))

    def expression_context(self, step: PlanStep) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "outputs": self.data,
            "steps": {name: {"outputs": outputs} for name, outputs in self.step_outputs.items()},
            "matrix": dict(step.matrix or {}),
            "env": self.ctx.runner_env(),
            "config": self.ctx.plan.variables,
            "secrets": dict(self.ctx.secrets),
            "run": {"id": self.ctx.run_id, "workflow": self.workflow.id, "path": self.path},
        }

    def log_sink(self, path: str) -> Any:
        emit = self.ctx.bus.emit

        def log(stream: str, lines: Sequence[str]) -> None:
            emit(StepLog(path, stream, lines))

        return log

    def merge_outputs(self, step: PlanStep, outputs: Mapping[str, Any]) -> dict[str, Any]:
        outputs = dict(outputs)
        self.data.update(outputs)
        self.step_outputs[step.name] = outputs
        if step.group:
            self.step_outputs.setdefault(step.group, {}).update(outputs)
        return outputs

    # -- failure handling ------------------------------------------------------------------

    async def handle_failure(self, step: PlanStep, path: str) -> bool:
        """Apply the step's error behaviour; True when the failure fails the workflow."""
        if step.group and step.fail_fast:
            self.trip_fail_fast(step)
        kind = step.error_behavior.type
        if kind == "continue":
            return False
        self.failed = True
        if self.stop is None:
            if kind == "suspend":
                self.stop = _Stop(S.SUSPENDED, f"run suspended at {step.name}")
            elif kind == "compensate":
                self.stop = _Stop(S.COMPENSATED, f"compensating after {step.name} failed")
            else:
                self.stop = _Stop(S.SKIPPED, f"upstream failed: {step.name}")
        return True

    def suspend_after(self, step: PlanStep) -> bool:
        """A step ended suspended (its child workflow did): this workflow stops as suspended."""
        self.failed = True
        self.stop = self.stop or _Stop(S.SUSPENDED, f"run suspended at {step.name}")
        return True

    async def run_compensation(self) -> None:
        for step, path in reversed(self.succeeded_order):
            if step.compensate:
                await self.run_hooks(step, step.compensate, path)
                record = self.ctx.records[path]
                record.status = S.COMPENSATED
                self.ctx.finish(record)

    async def run_hooks(
        self, owner: PlanStep, hooks: tuple[PlanStep, ...], owner_path: str
    ) -> bool:
        """Run hooks in order; True when all of them succeeded (or were skipped)."""
        ok = True
        for hook in instance_hooks(owner, hooks):
            ok &= await self.run_hook(hook, owner_path.rsplit("/", 1)[0])
        return ok

    async def run_hook(self, hook: PlanStep, prefix: str) -> bool:
        path = f"{prefix}/{hook.name}"
        try:
            reason = await self.skip_reason(hook)
        except _StepError as error:
            self.ctx.finish(self.failed_record(hook, path, str(error)))
            return False
        if reason is not None:
            self.skip_all((hook,), prefix, reason)
            return True
        outcome = await self.run_step(hook, path, is_hook=True)
        return outcome.status is not S.FAILED or hook.error_behavior.type == "continue"

    # -- records ---------------------------------------------------------------------------

    def new_record(
        self, step: PlanStep, path: str, type_: str, status: StepStatus, started: float
    ) -> StepRecord:
        return StepRecord(
            path=path,
            workflow=self.workflow.id,
            name=step.name,
            type=type_,
            status=status,
            duration_ms=round((time.time() - started) * 1000),
            started_at=started,
        )

    def failed_record(self, step: PlanStep, path: str, error: str) -> StepRecord:
        record = self.new_record(step, path, step.type or "parallel", S.FAILED, time.time())
        record.error = error
        return record

    def record_not_started(self, step: PlanStep, path: str, stop: _Stop) -> StepStatus:
        status = S.CANCELLED if stop.status is S.CANCELLED else S.SKIPPED
        record = self.new_record(step, path, step.type or "parallel", status, time.time())
        record.skip_reason = stop.reason
        self.ctx.finish(record)
        self.record_children(step, path, stop.reason)
        return status

    def skip_all(self, steps: tuple[PlanStep, ...], prefix: str, reason: str) -> None:
        for step in steps:
            path = f"{prefix}/{step.name}"
            self.ctx.skip(path, self.workflow.id, step.name, step.type or "parallel", reason)
            self.record_children(step, path, reason)

    def record_children(self, step: PlanStep, path: str, reason: str) -> None:
        if step.children:
            self.skip_all(step.children, path, reason)

    def step_infos(self) -> list[StepInfo]:
        infos: list[StepInfo] = []

        def walk(steps: tuple[PlanStep, ...], prefix: str, depth: int) -> None:
            for step in steps:
                path = f"{prefix}/{step.name}"
                infos.append(
                    StepInfo(path, self.workflow.id, step.name, step.type or "parallel", depth)
                )
                walk(step.children, path, depth + 1)

        walk(self.workflow.steps, self.path, self.depth + 1)
        return infos

    # -- workflow timeout and cancellation -------------------------------------------------

    def start_timer(self) -> asyncio.TimerHandle | None:
        timeout = self.workflow.timeout
        if timeout is None:
            return None
        loop = asyncio.get_running_loop()
        return loop.call_later(timeout, self.time_out, timeout)

    def time_out(self, timeout: float) -> None:
        self.error = f"workflow '{self.workflow.id}' timed out after {format_duration(timeout)}"
        self.failed = True
        self.stop = self.stop or _Stop(S.SKIPPED, self.error)
        self.cancel_running()

    def cancel_running(self) -> None:
        for task in list(self.running.values()):
            # A task already being cancelled (Ctrl-C reached it first) is left alone: a second
            # cancel means "kill now" to the process control, skipping the grace period.
            if not task.cancelling():
                task.cancel()
        for child in self.children:
            child.error = child.error or self.error
            child.stop = child.stop or self.stop
            child.cancel_running()


def instance_hooks(owner: PlanStep, hooks: tuple[PlanStep, ...]) -> tuple[PlanStep, ...]:
    """A matrix instance's hooks see its `matrix` values and carry its `[key=value]` label, so
    that the hooks of `unit[shard=1]` and `unit[shard=2]` are two steps, not one."""
    if owner.group is None or owner.matrix is None:
        return hooks
    label = owner.name[len(owner.group) :]
    return tuple(replace(hook, name=hook.name + label, matrix=owner.matrix) for hook in hooks)


async def wait_out(task: asyncio.Task[Any]) -> None:
    """Await a task to its end through further cancels: a second Ctrl-C kills the steps of a
    child workflow at once, and the child must still end (and be recorded) before its step."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)


class _StepError(Exception):
    """A step fails before its executor starts (expression or config error)."""


class _NotStarted(Exception):
    """A step whose turn came after its workflow stopped starting steps: it never ran."""

    def __init__(self, stop: _Stop):
        super().__init__(stop.reason)
        self.stop = stop


@dataclass
class StepContext:
    """What an executor may ask of the engine (DESIGN §2: executors get it, not import it)."""

    run: WorkflowRun
    step: PlanStep
    path: str

    @property
    def source_file(self) -> str:
        return str(self.run.workflow.source)

    @property
    def script_line(self) -> int | None:
        return self.step.script_line

    @property
    def plan(self) -> Any:
        return self.run.ctx.plan

    async def run_workflow(self, workflow_id: str, data: dict[str, Any]) -> WorkflowOutcome:
        """Run a child workflow as a nested instance of this run, under this step's path."""
        if self.run.depth + 1 > MAX_WORKFLOW_DEPTH:
            return WorkflowOutcome(
                S.FAILED, data, f"child workflows nested deeper than {MAX_WORKFLOW_DEPTH} levels"
            )
        child = WorkflowRun(
            ctx=self.run.ctx,
            workflow=self.run.ctx.plan.workflows[workflow_id],
            path=self.path,
            inputs=data,
            depth=self.run.depth + 1,
        )
        self.run.children.append(child)
        task = asyncio.create_task(child.execute())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # The child stops its own steps and still runs its ensure hooks before we go.
            child.error = child.error or "cancelled"
            child.stop = child.stop or _Stop(S.CANCELLED, "parent step cancelled")
            child.cancel_running()
            await wait_out(task)
            raise
        finally:
            self.run.children.remove(child)


@contextlib.asynccontextmanager
async def _no_services() -> AsyncIterator[bool]:
    yield True
