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
from wfe_yaml.engine.masking import MaskingBus, mask_result
from wfe_yaml.engine.result import RunResult
from wfe_yaml.engine.workflow_run import WorkflowRun
from wfe_yaml.errors import ConfigError
from wfe_yaml.plan import Plan, PlanStep, PlanWorkflow
from wfe_yaml.preflight import CapabilityProbe
from wfe_yaml.secrets import Masker, load_secrets
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
        secrets: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Run to the end from synchronous code (not from inside a running event loop)."""
        return asyncio.run(
            self.run_async(
                plan, workflow, inputs, run_id, replay=replay, attempt=attempt, secrets=secrets
            )
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
        secrets: Mapping[str, str] | None = None,
    ) -> RunResult:
        """Run a workflow. `replay` maps step paths that already succeeded (in an earlier
        attempt of this run) to their recorded outputs: those steps are restored, not re-run.
        `secrets` are the values of the plan's declared secrets (default: the environment's);
        they are masked in every event and in the result."""
        target = plan.workflow(workflow)
        values = dict(inputs or {})
        check_run_inputs(target, values)
        secret_values = (
            dict(secrets) if secrets is not None else load_secrets(plan.secrets, os.environ)
        )
        ctx = RunContext(
            run_id=run_id or new_run_id(),
            plan=plan,
            root=target.id,
            bus=MaskingBus(self.bus, Masker(secret_values.values())),
            registry=self.registry,
            slots=asyncio.Semaphore(self.jobs),
            probe=CapabilityProbe(plan.capabilities, cwd=plan.source.parent),
            secrets=secret_values,
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
        return mask_result(result, ctx.bus.masker)


def check_run_inputs(workflow: PlanWorkflow, inputs: Mapping[str, Any]) -> None:
    problems = check_inputs(inputs, workflow.inputs)
    if problems:
        raise ConfigError(
            f"workflow '{workflow.id}' inputs: " + "; ".join(problems),
            hint="pass inputs with -i name=value",
        )


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


__all__ = ["Engine", "RunResult", "StepInfo"]
