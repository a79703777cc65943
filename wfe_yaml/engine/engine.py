"""The public engine: run a plan's workflow with inputs, from sync or async code."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from executors.base import Executor, Registry, StepStatus, registry
from wfe_yaml.engine.context import RunContext
from wfe_yaml.engine.events import EventBus, RunFinished, RunStarted, StepInfo, Subscriber
from wfe_yaml.engine.result import RunResult
from wfe_yaml.engine.workflow_run import WorkflowRun
from wfe_yaml.errors import ConfigError
from wfe_yaml.plan import Plan, PlanStep, PlanWorkflow
from wfe_yaml.preflight import CapabilityProbe
from wfe_yaml.types import check_inputs

RUN_STATUS = {
    StepStatus.SUCCEEDED: "succeeded",
    StepStatus.SKIPPED: "succeeded",
    StepStatus.FAILED: "failed",
    StepStatus.COMPENSATED: "failed",
    StepStatus.CANCELLED: "cancelled",
    StepStatus.SUSPENDED: "suspended",
}


class Engine:
    """Runs workflows of a Plan. Subscribers receive every event of every run."""

    def __init__(
        self,
        *,
        jobs: int | None = None,
        executors: Registry = registry,
        kill_grace: float = 10.0,
        subscribers: tuple[Subscriber, ...] = (),
        dispatch: Callable[[PlanStep, Executor], Executor] | None = None,
    ):
        self.jobs = jobs or os.cpu_count() or 2
        self.registry = executors
        self.kill_grace = kill_grace
        self.dispatch = dispatch
        self.bus = EventBus()
        for subscriber in subscribers:
            self.bus.subscribe(subscriber)
        self._contexts: list[tuple[asyncio.AbstractEventLoop, RunContext]] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self.bus.subscribe(subscriber)

    def run(
        self,
        plan: Plan,
        workflow: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        replay: Mapping[str, Mapping[str, Any]] | None = None,
        attempt: int = 1,
    ) -> RunResult:
        """Run to the end from synchronous code (not from inside a running event loop)."""
        return asyncio.run(
            self.run_async(plan, workflow, inputs, run_id, replay=replay, attempt=attempt)
        )

    async def run_async(
        self,
        plan: Plan,
        workflow: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        replay: Mapping[str, Mapping[str, Any]] | None = None,
        attempt: int = 1,
    ) -> RunResult:
        """Run a workflow. `replay` maps step paths that already succeeded (in an earlier
        attempt of this run) to their recorded outputs: those steps are restored, not re-run."""
        target = plan.workflow(workflow)
        values = dict(inputs or {})
        check_run_inputs(target, values)
        ctx = RunContext(
            run_id=run_id or new_run_id(),
            plan=plan,
            root=target.id,
            bus=self.bus,
            registry=self.registry,
            slots=asyncio.Semaphore(self.jobs),
            probe=CapabilityProbe(plan.capabilities, cwd=plan.source.parent),
            secrets=read_secrets(plan),
            kill_grace=self.kill_grace,
            replay=dict(replay or {}),
            dispatch=self.dispatch,
        )
        entry = (asyncio.get_running_loop(), ctx)
        self._contexts.append(entry)
        try:
            return await self._run(ctx, target, values, attempt)
        finally:
            self._contexts.remove(entry)
            await ctx.probe.close()

    def cancel(self) -> None:
        """Cancel every run in progress (thread-safe); a second call stops hooks too."""
        for loop, ctx in list(self._contexts):
            loop.call_soon_threadsafe(ctx.cancel)

    async def _run(
        self, ctx: RunContext, target: PlanWorkflow, inputs: dict[str, Any], attempt: int
    ) -> RunResult:
        root = WorkflowRun(ctx, target, target.id, inputs)
        ctx.bus.emit(
            RunStarted(
                ctx.run_id,
                target.id,
                ctx.started_at,
                tuple(root.step_infos()),
                attempt=attempt,
                source=str(ctx.plan.source),
                inputs=dict(inputs),
            )
        )
        outcome = await root.execute()
        records = sorted(ctx.records.values(), key=lambda r: r.started_at or 0.0)
        result = RunResult(
            run_id=ctx.run_id,
            workflow=target.id,
            status=RUN_STATUS[outcome.status],
            started_at=ctx.started_at,
            finished_at=time.time(),
            outputs=outcome.data,
            steps=records,
            error=outcome.error,
        )
        ctx.bus.emit(RunFinished(result))
        return result


def check_run_inputs(workflow: PlanWorkflow, inputs: Mapping[str, Any]) -> None:
    problems = check_inputs(inputs, workflow.inputs)
    if problems:
        raise ConfigError(
            f"workflow '{workflow.id}' inputs: " + "; ".join(problems),
            hint="pass inputs with -i name=value",
        )


def read_secrets(plan: Plan) -> dict[str, str]:
    missing = [name for name in plan.secrets if name not in os.environ]
    if missing:
        raise ConfigError(
            f"declared secret{'s' if len(missing) > 1 else ''} not set: {', '.join(missing)}",
            hint="set them in the environment before running",
        )
    return {name: os.environ[name] for name in plan.secrets}


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


__all__ = ["Engine", "RunResult", "StepInfo"]
